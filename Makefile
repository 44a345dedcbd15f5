# ngx_passkey_module
#
#   make            build build/ngx_http_passkey_module.so against Debian's
#                   nginx-dev (or NGINX_SRC=/path/to/nginx-x.y.z)
#   make deps       install the Debian packages everything needs
#   make sdk-deps   install Node.js, npm and the pinned Beyond Identity SDK
#                   that the tests check links with (util/sdk)
#   make test       run t/ (starts Redis and the API stand-in)
#   make test-deps  install what only the tests need (promtool)
#   make test-valgrind   the same under valgrind; fails on any error
#   make test-browser    the example pages and the demo app's pages in
#                   headless Chromium (t/browser/)
#   make test-asan  the same with the module built with AddressSanitizer
#                   and UBSan (into BUILD/asan); fails on any report
#   make fuzz       build the libFuzzer harnesses of fuzz/ (into
#                   FUZZ_BUILD, build/fuzz; downloads nginx's sources)
#   make fuzz-run   build them, then run each for FUZZ_SECONDS (10) from
#                   its seed corpus (FUZZERS: some of them only)
#   make demo       nginx + module + Redis + API stand-in on 127.0.0.1
#   make bench      the module against a stock-nginx reference, and the
#                   checks that binds waiting on the API block nothing
#                   (docs/performance.md)
#   make deb        build the Debian package libnginx-mod-http-passkey
#                   into build/deb/ (BUILD/deb) and check it with lintian
#   make test-deb   make deb, then install the package into the stock
#                   nginx, bind once, purge it (util/deb-test; root)
#   make check-style

NGINX_SRC ?= /usr/share/nginx/src

# Debian's nginx-dev has headers only: build the module for /usr/sbin/nginx.
# Any other source tree: build its nginx binary too, and test with it; and
# leave Debian's nginx and nginx-dev out (nginx-dev requires Debian's nginx
# of its own version), as the machine may have nginx.org's nginx.
ifeq ($(abspath $(NGINX_SRC)),/usr/share/nginx/src)
BUILD     ?= $(CURDIR)/build
NGINX_BIN ?= /usr/sbin/nginx
TARGET     = modules
NGINX_PACKAGES = nginx nginx-dev
else
BUILD     ?= $(CURDIR)/build/$(notdir $(abspath $(NGINX_SRC)))
NGINX_BIN ?= $(BUILD)/nginx
TARGET     = build
NGINX_PACKAGES =
endif

# nginx's make runs in NGINX_SRC (-C): a relative BUILD would point there
override BUILD := $(abspath $(BUILD))

MODULE     = $(BUILD)/ngx_http_passkey_module.so

# make test-asan: the module (and an nginx built from NGINX_SRC) with
# AddressSanitizer and UBSan; Debian's nginx gets the runtime preloaded.
# The module stays mapped when nginx unloads it at exit (-z nodelete), so
# that the leaks found then name its functions.
ASAN_BUILD     ?= $(BUILD)/asan
ASAN_MODULE     = $(ASAN_BUILD)/ngx_http_passkey_module.so
ASAN_CC_OPT     = -fsanitize=address,undefined -fno-omit-frame-pointer \
                  -U_FORTIFY_SOURCE
ASAN_LD_OPT     = -fsanitize=address,undefined -Wl,-z,nodelete
ifeq ($(TARGET),build)
ASAN_NGINX_BIN ?= $(ASAN_BUILD)/nginx
else
ASAN_NGINX_BIN ?= $(NGINX_BIN)
endif

# make fuzz: clang's libFuzzer and sanitizers; the harnesses' own build
FUZZ_BUILD   ?= $(CURDIR)/build/fuzz
FUZZ_SECONDS ?= 10
FUZZ_PACKAGES = clang libclang-rt-14-dev binutils curl ca-certificates \
    libcurl4-openssl-dev libjansson-dev libhiredis-dev libssl-dev make

# where make deb puts the package (built against Debian's nginx-dev)
DEB_DIR   ?= $(BUILD)/deb

SOURCES = config $(wildcard ngx_passkey_module/*.[ch])

# what make needs to build the module (and an nginx from NGINX_SRC)
BUILD_PACKAGES = $(NGINX_PACKAGES) libcurl4-openssl-dev libjansson-dev \
    libhiredis-dev libssl-dev gcc make libpcre2-dev zlib1g-dev

# and the tests and the demo
DEB_PACKAGES = $(BUILD_PACKAGES) redis-server redis-tools \
    libtest-base-perl libtext-diff-perl libtest-longstring-perl \
    libwww-perl libhttp-message-perl libipc-run-perl liburi-perl \
    liblist-moreutils-perl libmojolicious-perl libio-socket-ssl-perl \
    valgrind curl openssl ca-certificates

# for make bench only: the load generator, and the echo module that lets
# the stock nginx playing the API read request bodies and wait
BENCH_PACKAGES = wrk libnginx-mod-http-echo

# for make deb: the packaging tools and debian/control's Build-Depends
# (dpkg-buildpackage checks that they are installed); make test-deb also
# runs Redis and the API stand-in
DEB_BUILD_PACKAGES = build-essential debhelper dpkg-dev fakeroot lintian \
    nginx nginx-dev libcurl4-openssl-dev libjansson-dev libhiredis-dev \
    libssl-dev
DEB_TEST_PACKAGES = nginx curl redis-server redis-tools \
    libmojolicious-perl

# for the tests' SDK oracle (util/sdk-deps): installed only when the node
# or npm command is missing, as a Node.js from elsewhere may conflict with
# Debian's npm
NODE_PACKAGES = nodejs npm

# for make test-browser only (util/browser-deps): Debian's Chromium, which
# playwright-core drives, and a font for its screenshots
BROWSER_PACKAGES = chromium fonts-dejavu-core

.PHONY: all deps test-deps sdk-deps test test-valgrind test-browser \
    test-asan fuzz fuzz-run demo demo-stop bench deb test-deb check-style \
    clean

all: $(MODULE)

deps:
	@util/deps $(DEB_PACKAGES)

# promtool, which checks passkey_metrics' output (t/200-metrics.t): taken
# out of Debian's prometheus package, which is not installed (it would
# start a Prometheus server)
test-deps:
	@util/promtool-deps

sdk-deps:
	@util/sdk-deps $(NODE_PACKAGES)

$(BUILD)/Makefile: config util/configure
	@util/deps $(BUILD_PACKAGES)
	util/configure "$(NGINX_SRC)" "$(BUILD)" "$(CURDIR)"

$(MODULE): $(BUILD)/Makefile $(SOURCES)
	$(MAKE) -f $(BUILD)/Makefile -C "$(NGINX_SRC)" $(TARGET)

test: deps test-deps sdk-deps $(MODULE)
	NGINX_BIN=$(NGINX_BIN) MODULE=$(MODULE) util/run-tests $(TESTS)

test-valgrind: deps test-deps sdk-deps $(MODULE)
	NGINX_BIN=$(NGINX_BIN) MODULE=$(MODULE) util/run-tests --valgrind \
	    $(TESTS)

# the pages use no HTTPS stand-in: none is started
test-browser: deps sdk-deps $(MODULE)
	@util/browser-deps $(BROWSER_PACKAGES)
	PASSKEY_BI_TLS_PORT=0 NGINX_BIN=$(NGINX_BIN) MODULE=$(MODULE) \
	    util/run-tests t/browser/

$(ASAN_BUILD)/Makefile: config util/configure
	@util/deps $(DEB_PACKAGES)
	PASSKEY_CC_OPT="$(ASAN_CC_OPT)" PASSKEY_LD_OPT="$(ASAN_LD_OPT)" \
	    util/configure "$(NGINX_SRC)" "$(ASAN_BUILD)" "$(CURDIR)"

$(ASAN_MODULE): $(ASAN_BUILD)/Makefile $(SOURCES)
	$(MAKE) -f $(ASAN_BUILD)/Makefile -C "$(NGINX_SRC)" $(TARGET)

test-asan: deps test-deps sdk-deps $(ASAN_MODULE)
	NGINX_BIN=$(ASAN_NGINX_BIN) MODULE=$(ASAN_MODULE) util/run-tests --asan \
	    $(TESTS)

fuzz:
	@util/deps $(FUZZ_PACKAGES)
	util/fuzz build $(FUZZ_BUILD)

fuzz-run: fuzz
	util/fuzz run $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZERS)

demo: deps sdk-deps $(MODULE)
	NGINX_BIN=$(NGINX_BIN) MODULE=$(MODULE) util/demo start

demo-stop:
	util/demo stop

bench: deps $(MODULE)
	@util/deps $(BENCH_PACKAGES)
	rc=0; \
	NGINX_BIN=$(NGINX_BIN) MODULE=$(MODULE) util/bench-async || rc=1; \
	NGINX_BIN=$(NGINX_BIN) MODULE=$(MODULE) util/bench || rc=1; \
	exit $$rc

deb:
ifneq ($(abspath $(NGINX_SRC)),/usr/share/nginx/src)
	$(error make deb builds against Debian's nginx-dev only, not $(NGINX_SRC))
endif
	@util/deps $(DEB_BUILD_PACKAGES)
	util/deb-build $(DEB_DIR)

test-deb: deb
	@util/deps $(DEB_TEST_PACKAGES)
	util/deb-test $(DEB_DIR)

check-style:
	util/check-style

clean:
	rm -rf $(BUILD) t/servroot*

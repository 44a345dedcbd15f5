package Test::Nginx::Socket;

# A small stand-in for openresty's Test::Nginx::Socket (test-nginx), for
# machines where it cannot be installed: it runs the same t/*.t files with
# the same meaning.  Supported features behave as in the real module;
# anything of the real module that is not supported here makes the run
# die with an "unsupported" message instead of silently passing.  The POD
# at the end lists both, and the known differences.
#
#   prove -I util/testnginx/lib -r t/
#
# Built only on Debian-packaged Perl modules: Test::Base, Test::LongString,
# HTTP::Message (HTTP::Response), plus core modules.

use strict;
use warnings;
use v5.10.1;

# Test::Base parses the __DATA__ blocks; we subclass it as the real module
# does.  We load it without importing: "use Test::Base -Base" would switch
# on Spiffy's source filter for this file, which rewrites every sub to take
# $self.  The test file's "use Test::Nginx::Socket ..." still goes through
# Test::Base::import (inherited), which handles "tests => N" / 'no_plan'
# and exports Test::Base's functions (blocks, is, like, ...) along with
# ours.
use Test::Base ();
our @ISA = ('Test::Base');

use Test::More ();
use Test::LongString ();
use Carp qw( croak );
use Encode ();
use List::Util qw( shuffle min );
use Scalar::Util qw( looks_like_number );
use Time::HiRes qw( sleep );
use HTTP::Response ();

use Test::Nginx::Lite::Server qw( :settings :functions );
use Test::Nginx::Lite::Client qw( get_req_from_block send_request
                                  parse_response );
use Test::Nginx::Lite::TcpServer qw( start_tcp_server
                                     check_tcp_server_results
                                     stop_tcp_server );

our $VERSION = '0.33';

# Test files call plan() from us, as with the real module (Test::Base
# wraps Test::Builder::plan so that its END block knows a plan was made
# and does not run its own comparisons).
BEGIN { *plan = \&Test::More::plan; }

our @EXPORT = qw(
    env_to_nginx is_str plan run_tests run_test
    repeat_each config_preamble worker_connections
    master_process_enabled
    no_long_string workers master_on master_off
    log_level no_shuffle no_root_location use_hup
    server_name
    server_addr server_root html_dir server_port server_port_for_client
    timeout no_nginx_manager check_accum_error_log
    add_block_preprocessor bail_out add_test_cleanup_handler
    add_cleanup_handler add_response_body_check
);

# --------------------------------------------------------------------------
# What this runner does not implement
# --------------------------------------------------------------------------

# Testing modes of the real module that are not implemented.  Refuse to
# run rather than run the tests in a different mode than asked for.
my @UnsupportedEnv = qw(
    TEST_NGINX_USE_HUP TEST_NGINX_USE_HTTP2 TEST_NGINX_USE_HTTP3
    TEST_NGINX_USE_STAP TEST_NGINX_USE_RR TEST_NGINX_CHECK_LEAK
    TEST_NGINX_BENCHMARK TEST_NGINX_NO_NGINX_MANAGER
);

for my $var (@UnsupportedEnv) {
    if ($ENV{$var}) {
        die "Test::Nginx::Socket (util/testnginx): unsupported environment "
            . "$var: this testing mode needs the real Test::Nginx\n";
    }
}

# Sections of the real module that are not implemented.  A block using any
# of them dies.  Sections unknown to the real module are ignored by both
# (they may be used by block preprocessors or response body checks).
my @UnsupportedSections = qw(
    http2 http3 curl curl_protocol curl_options curl_error
    stap stap_out stap_out_like stap_out_unlike
    udp_listen udp_reply udp_reply_delay udp_query
    reload_fails
);

# Records a failing subtest (so prove reports the file as failed even
# before any other subtest ran) and stops the test file.
sub unsupported ($) {
    my $what = shift;

    my $msg = "Test::Nginx::Socket (util/testnginx): unsupported $what "
              . "(not implemented by this runner; use the real Test::Nginx)";

    Test::More::fail($msg);
    die "$msg\n";
}

sub check_supported_sections ($) {
    my $block = shift;

    for my $section (@UnsupportedSections) {
        if (exists $block->{$section}) {
            unsupported("section --- $section in " . $block->name);
        }
    }
}

# --------------------------------------------------------------------------
# Exported settings functions (call them before run_tests)
# --------------------------------------------------------------------------

our @BlockPreprocessors;
our @TestCleanupHandlers;
our @ResponseBodyChecks;

our $PrevConfig;    # (expanded) --- config of the block nginx runs with
our $PrevBlock;     # for its --- shutdown_error_log

sub repeat_each (@) {
    $RepeatEach = shift if @_;
    return $RepeatEach;
}

sub workers (@) {
    if (@_) {
        $Workers = shift;
    } else {
        return $Workers;
    }
}

sub worker_connections (@) {
    if (@_) {
        $WorkerConnections = shift;
    } else {
        return $WorkerConnections;
    }
}

sub log_level (@) {
    if (@_) {
        $LogLevel = shift;
    } else {
        return $LogLevel;
    }
}

sub master_on ()  { $MasterProcessEnabled = 'on'; }
sub master_off () { $MasterProcessEnabled = 'off'; }

sub master_process_enabled (@) {
    if (@_) {
        $MasterProcessEnabled = shift() ? 'on' : 'off';
    } else {
        return $MasterProcessEnabled;
    }
}

sub no_shuffle ()            { $NoShuffle = 1; }
sub no_long_string ()        { $NoLongString = 1; }
sub no_root_location ()      { $NoRootLocation = 1; }
sub check_accum_error_log () { $CheckAccumErrLog = 1; }

sub use_hup ()          { unsupported("function use_hup()"); }
sub no_nginx_manager () { unsupported("function no_nginx_manager()"); }

sub server_name (@) {
    if (@_) {
        $ServerName = shift;
    } else {
        return $ServerName;
    }
}

sub server_addr (@) {
    if (@_) {
        $ServerAddr = shift;
    } else {
        return $ServerAddr;
    }
}

sub server_port (@) {
    if (@_) {
        $ServerPort = shift;
    } else {
        return $ServerPort;
    }
}

sub server_port_for_client (@) {
    if (@_) {
        $ServerPortForClient = shift;
    } else {
        return $ServerPortForClient;
    }
}

sub timeout (@) {
    if (@_) {
        $Timeout = shift;
    } else {
        return $Timeout;
    }
}

sub html_dir ()    { return $HtmlDir; }
sub server_root () { return $ServRoot; }

sub config_preamble ($) { $ConfigPreamble = shift; }

sub set_http_config_filter ($) { $FilterHttpConfig = shift; }

# env_to_nginx("FOO", "BAR=1", "BAZ=a b") -> "env FOO;" lines in nginx.conf
sub env_to_nginx (@) {
    croak "env_to_nginx: no arguments specified" if !@_;

    for my $v (@_) {
        if ($v !~ /^[A-Za-z_]/ || $v =~ /\n/) {
            croak "env_to_nginx: bad argument value: $v\n";
        }
        push @EnvToNginx, $v;
    }
}

# Run on each block before it runs; the one added last runs first.
sub add_block_preprocessor (&) {
    unshift @BlockPreprocessors, shift;
}

sub add_test_cleanup_handler ($) {
    unshift @TestCleanupHandlers, shift;
}

# Called for every response as
#   $check->($block, $body, $req_idx, $repeated_req_idx, $dry_run)
sub add_response_body_check ($) {
    push @ResponseBodyChecks, shift;
}

# is() that also accepts a qr// as expected value, and reports long
# strings readably unless no_long_string() was called.
sub is_str (@) {
    my ($got, $expected, $desc) = @_;

    if (ref $expected && ref $expected eq 'Regexp') {
        return Test::More::like($got, $expected, $desc);
    }

    if ($NoLongString) {
        return Test::More::is($got, $expected, $desc);
    }

    return Test::LongString::is_string($got, $expected, $desc);
}

# --------------------------------------------------------------------------
# Running the blocks
# --------------------------------------------------------------------------

sub run_tests () {
    srand($$ + Time::HiRes::time() * 1000000);

    $NginxVersion = get_nginx_version();

    if (!defined $ENV{TEST_NGINX_SERVER_PORT}) {
        $ENV{TEST_NGINX_SERVER_PORT} = $ServerPort;
    }

    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;

    for my $block (@blocks) {
        for my $hdl (@BlockPreprocessors) {
            $hdl->($block);
        }

        $block->set_value("name", $0 . " " . $block->name);

        run_test($block);

        for my $hdl (@TestCleanupHandlers) {
            $hdl->($block);
        }

        $PrevBlock = $block;
    }

    cleanup();
}

# One block: (re)start nginx with the block's configuration, then send the
# request(s) repeat_each() times and check the responses and the logs.
sub run_test ($) {
    my $block = shift;

    return if defined $block->SKIP;

    my $name = $block->name;

    check_supported_sections($block);

    $NginxVersion //= get_nginx_version();

    # TEST_NGINX_RAND_PORT_N keep their values throughout the block
    my $rand_ports = {};
    $RandPorts = $rand_ports;

    my $config = expand_env_in_text($block->config, $name, $rand_ports);

    # Without a --- config section the block runs against the nginx of the
    # previous block, which keeps running.  Otherwise nginx is restarted
    # (unless TEST_NGINX_FORCE_RESTART_ON_TEST=0 and the config is the
    # same as before).
    my $should_restart;
    if (!defined $config) {
        if (!defined $PrevConfig) {
            bail_out("$name - No '--- config' section specified and could "
                     . "not get previous one. Use TEST_NGINX_NO_NGINX_MANAGER ?");
        }
        $should_restart = 0;

    } else {
        $should_restart = (!defined $PrevConfig || $config ne $PrevConfig
                           || $ForceRestartOnTest) ? 1 : 0;
    }

    my $must_die = $block->must_die;

    # Valgrind is pointless for an nginx that must fail to start.
    my $use_valgrind = defined $must_die ? undef : $UseValgrind;

    my $skip = evaluate_skip_sections($block);

    my $dry_run = 0;

    if (!$skip->{should_skip} && $should_restart) {
        $PrevConfig = $config;

        stop_nginx_from_pidfile($name);
        check_prev_block_shutdown_error_log();

        setup_server_root();
        run_block_perl_code($block, 'post_setup_server_root');
        write_user_files($block, $rand_ports);
        write_config_file($block, $config, $rand_ports, $use_valgrind);

        if (!can_run($NginxBinary)) {
            bail_out("$name - Cannot find the nginx executable in the PATH "
                     . "environment");
        }

        my $cmd = nginx_start_command($block, $use_valgrind);

        if (defined $must_die) {
            run_must_die_checks($block, $cmd, $must_die);
            return;
        }

        if ($use_valgrind) {
            # labels this block's part of the valgrind output
            warn "$name\n";
            start_nginx_foreground($cmd);

        } else {
            $dry_run = start_nginx_with_retries($block, $cmd);
        }

        sleep $TestNginxSleep;
    }

    run_block_perl_code($block, 'init');

    $ErrLogFilePos = 0;

    for my $i (1 .. $RepeatEach) {
        # --- tcp_listen: a fresh one-shot fake server per repetition
        my $tcp = start_tcp_server($block, $rand_ports);

        if ($i > 1) {
            write_user_files($block, $rand_ports);
        }

        if ($skip->{should_skip} && defined $skip->{tests_to_skip}) {
            SKIP: {
                Test::More::skip("$name - $skip->{skip_reason}",
                                 $skip->{tests_to_skip});
                run_requests_and_checks($block, $dry_run, $i - 1);
                check_tcp_server_results($block, $tcp);
            }

        } elsif ($skip->{should_todo}) {
            TODO: {
                Test::More::todo_skip("$name - $skip->{todo_reason}",
                                      $skip->{tests_to_skip});
                run_requests_and_checks($block, $dry_run, $i - 1);
                check_tcp_server_results($block, $tcp);
            }

        } else {
            run_requests_and_checks($block, $dry_run, $i - 1);
            check_tcp_server_results($block, $tcp);
        }

        stop_tcp_server($name, $tcp);
    }

    append_to_total_error_log($name);

    if ($use_valgrind) {
        # one nginx per block under valgrind, so that each block's
        # leak report is printed right after it
        stop_foreground_nginx($name);
    }
}

# Daemonised start; nginx may still be shutting down from the previous
# block (port in use), so retry for up to 30 s before giving up on the
# whole run.  Returns the dry-run reason, if any.
sub start_nginx_with_retries ($$) {
    my ($block, $cmd) = @_;

    my $name = $block->name;
    my ($tries, $waited) = (0, 0);

    $ErrLogFilePos = 0;

    while (1) {
        my $r = start_nginx_daemon($cmd);
        return 0 if $r->{status} == 0;

        if ($ENV{TEST_NGINX_IGNORE_MISSING_DIRECTIVES}) {
            my $directive = missing_directive_in_error_log();
            return "the lack of directive $directive" if $directive;
        }

        $tries++;
        my $delay = 0.1 * $tries;
        $delay = 1 if $delay > 1;
        sleep $delay;
        $waited += $delay;

        next if $waited < 30;

        bail_out("$name - Cannot start nginx using command \"$cmd\" "
                 . "(status code $r->{status}).");
    }
}

# --- must_die: nginx must fail to start (with the given exit code, if
# one is given).  No request is sent; --- error_log and friends are checked
# against what nginx logged while failing.
sub run_must_die_checks ($$$) {
    my ($block, $cmd, $must_die) = @_;

    my $name = $block->name;
    my $runs = $RepeatEach > 1 ? $RepeatEach : 1;

    $ErrLogFilePos = 0;

    for my $i (0 .. $runs - 1) {
        my $r = start_nginx_daemon($cmd);

        if ($r->{exec_failed}) {
            Test::More::fail("$name - failed to execute the nginx command "
                             . "line");

        } elsif ($r->{coredump}) {
            Test::More::fail("$name - nginx core dumped");

        } elsif (looks_like_number($must_die)) {
            Test::More::is($must_die, $r->{exit_code},
                           "$name - die with the expected exit code");

        } else {
            Test::More::isnt($r->{status}, 0, "$name - die as expected");
        }

        check_error_log($block, undef, 0, $i, 0);

        if ($r->{status} == 0) {
            warn "WARNING: $name - nginx must die but it does not; killing "
                 . "it (req $i)\n";
            for (1 .. 15) {
                last if -f $PidFile;
                sleep $TestNginxSleep;
            }
            my $pid = get_pid_from_pidfile($name);
            kill_process($pid, 1, $name);
        }
    }
}

# --- init and --- post_setup_server_root hold Perl code.  (The real
# module evaluates it in its own package; here it runs in package main,
# where the test file's functions are.)
sub run_block_perl_code ($$) {
    my ($block, $section) = @_;

    my $code = $block->$section;
    return unless $code;

    eval "package main; $code";
    if ($@) {
        bail_out($block->name . " - $section failed: $@");
    }
}

# TEST_NGINX_ERROR_LOG=file collects the error logs of all blocks.
sub append_to_total_error_log ($) {
    my $name = shift;

    my $total = $ENV{TEST_NGINX_ERROR_LOG};
    return unless $total && -s $ErrLogFile;

    open my $out, '>>', $total
        or bail_out("Failed to append test case title to $total: $!\n");
    print $out "\n=== $0 $name\n";
    close $out;

    system("cat $ErrLogFile >> $total") == 0
        or bail_out("Failed to append $ErrLogFile to $total. Abort.\n");
}

# --- skip_eval, skip_nginx, skip_nginx2, skip_slave, skip_openssl,
# --- todo_nginx and --- todo.  Skipped blocks do not start nginx and emit
# the given number of "skip" results per repetition.
sub evaluate_skip_sections ($) {
    my $block = shift;

    my $name = $block->name;
    my %s;

    if (defined(my $spec = $block->skip_eval)) {
        if ($spec =~ /^\s*(\d+)\s*:\s*(.*)/s) {
            $s{tests_to_skip} = $1;
            $s{skip_reason} = "skip_eval";
            my $code = $2;
            $s{should_skip} = eval "package main; $code";
            if ($@) {
                bail_out("$name - skip_eval - failed to eval the Perl code "
                         . "\"$code\": $@");
            }
        }
    }

    my $version_re = qr/([<>]=?)\s*(\d+)\.(\d+)\.(\d+)/;

    if (defined(my $spec = $block->skip_nginx)) {
        if ($spec =~ /^\s*(\d+)\s*:\s*$version_re(?:\s*:\s*(.*))?\s*$/) {
            $s{tests_to_skip} = $1;
            my ($op, $ver) = ($2, get_canon_version($3, $4, $5));
            $s{skip_reason} = $6 || "nginx version $2 $3.$4.$5";
            $s{should_skip} = 1 if version_matches($NginxVersion, $op, $ver);

        } else {
            bail_out("$name - Invalid --- skip_nginx spec: $spec");
        }

    } elsif (defined(my $spec2 = $block->skip_nginx2)) {
        if ($spec2 =~ /^\s*(\d+)\s*:\s*$version_re\s*(or|and)\s*
                       $version_re(?:\s*:\s*(.*))?\s*$/x)
        {
            $s{tests_to_skip} = $1;
            my ($opa, $vera) = ($2, get_canon_version($3, $4, $5));
            my $join = $6;
            my ($opb, $verb) = ($7, get_canon_version($8, $9, $10));
            $s{skip_reason} = $11;

            my $m1 = version_matches($NginxVersion, $opa, $vera);
            my $m2 = version_matches($NginxVersion, $opb, $verb);
            if (!defined $NginxVersion
                || ($join eq 'or' ? ($m1 || $m2) : ($m1 && $m2)))
            {
                $s{should_skip} = 1;
            }

        } else {
            bail_out("$name - Invalid --- skip_nginx2 spec: $spec2");
        }

    } elsif (defined(my $spec3 = $block->skip_slave)
             and defined $BuildSlaveName)
    {
        if ($spec3 =~ /^\s*(\d+)\s*:\s*(\w+)\s*(?:(\w+)\s*)?(?:(\w+)\s*)?
                       (?:\s*:\s*(.*))?\s*$/x)
        {
            $s{tests_to_skip} = $1;
            my @slaves = grep { defined } ($2, $3, $4);
            $s{skip_reason} = $5;
            if ($slaves[0] eq 'all'
                || grep { $_ eq $BuildSlaveName } @slaves)
            {
                $s{should_skip} = 1;
            }

        } else {
            bail_out("$name - Invalid --- skip_slave spec: $spec3");
        }
    }

    if (defined(my $spec = $block->skip_openssl)) {
        if ($spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)([a-z])?
                      (?:\s*:\s*(.*))?\s*$/x)
        {
            $s{tests_to_skip} = $1;
            my ($op, $letter) = ($2, $6);
            my $ver = defined $letter
                ? sprintf("%d.%03d%03d%03d", $3, $4, $5,
                          ord($letter) - ord('a'))
                : get_canon_version($3, $4, $5);
            $s{skip_reason} = $7
                || (!defined $OpenSSLVersion ? "Not built with OpenSSL"
                    : "OpenSSL version $op $3.$4.$5" . ($letter // ''));
            if (!defined $OpenSSLVersion
                || version_matches($OpenSSLVersion, $op, $ver))
            {
                $s{should_skip} = 1;
            }

        } else {
            bail_out("$name - Invalid --- skip_openssl spec: $spec");
        }
    }

    $s{skip_reason} //= "various reasons";

    if (defined(my $spec = $block->todo_nginx)) {
        if ($spec =~ /^\s*$version_re(?:\s*:\s*(.*))?\s*$/) {
            my ($op, $ver) = ($1, get_canon_version($2, $3, $4));
            $s{todo_reason} = $5;
            $s{should_todo} = 1 if version_matches($NginxVersion, $op, $ver);

        } else {
            bail_out("$name - Invalid --- todo_nginx spec: $spec");
        }
    }

    if (defined(my $spec = $block->todo)) {
        if ($spec =~ /^\s*(\d+)\s*:\s*(.*)/s) {
            $s{should_todo} = 1;
            $s{tests_to_skip} = $1;
            $s{todo_reason} = $2;

        } else {
            bail_out("$name - Invalid --- todo spec: $spec");
        }
    }

    $s{todo_reason} //= "various reasons";

    return \%s;
}

# "$have $op $want" for canonical versions; an unknown version counts as
# older than anything.
sub version_matches ($$$) {
    my ($have, $op, $want) = @_;

    return $op =~ /^</ ? 1 : 0 if !defined $have;

    return $have <  $want if $op eq '<';
    return $have <= $want if $op eq '<=';
    return $have >  $want if $op eq '>';
    return $have >= $want if $op eq '>=';
    return 0;
}

# --------------------------------------------------------------------------
# Requests and response checks
# --------------------------------------------------------------------------

# Sends the block's request(s) once and runs all the checks.  With several
# requests (--- request eval [...] or --- pipelined_requests), the
# response checks take arrays (one entry per request) and the error log is
# checked after each request against the lines logged since the previous
# check.
sub run_requests_and_checks ($$$) {
    my ($block, $dry_run, $repeated_req_idx) = @_;

    my $name = $block->name;

    my $reqs = get_req_from_block($block);
    if (!@$reqs) {
        bail_out("$name - request empty");
    }

    my $timeout = parse_time($block->timeout);
    $timeout = $Timeout if !defined $timeout;

    my ($res, $need_array);
    my $req_idx = 0;

    for my $req (@$reqs) {
        my ($raw_resp, $head_req);

        if ($dry_run) {
            $raw_resp = "200 OK HTTP/1.0\r\nContent-Length: 0\r\n\r\n";

        } else {
            ($raw_resp, $head_req) = send_request(
                $req, $block->raw_request_middle_delay, $timeout, $block);
        }

        # With --- pipelined_requests all responses arrive on this one
        # connection and are parsed one after another from the bytes left
        # over by the previous one.  (Counted down as in the real module,
        # which also decides where the error log is checked in between.)
        my $pending = 0;

        if ($block->pipelined_requests) {
            $pending = @{ $block->pipelined_requests };
            $need_array = 1;

        } else {
            $need_array = @$reqs > 1;
        }

        while (1) {
            $raw_resp //= '';

            my ($raw_headers, $left);

            if (!defined $block->ignore_response) {
                if (defined $block->http09) {
                    $res = HTTP::Response->new(200, "OK", [], $raw_resp);
                    $raw_headers = '';

                } else {
                    ($res, $raw_headers, $left)
                        = parse_response($name, $raw_resp, $head_req);
                }
            }

            if (!$pending) {
                if ($left) {
                    $left =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}', ord $1)/eg;
                    warn "WARNING: $name - unexpected extra bytes after last "
                         . "chunk in response: \"$left\"\n";
                }

            } else {
                $raw_resp = $left;
                $pending--;
            }

            if (!defined $block->ignore_response) {
                check_error_code($block, $res, $dry_run, $req_idx,
                                 $need_array);
                check_raw_response_headers($block, $raw_headers, $dry_run,
                                           $req_idx, $need_array);
                check_response_headers($block, $res, $raw_headers, $dry_run,
                                       $req_idx, $need_array);
                transform_response_body($block, $res, $req_idx);
                check_response_body($block, $res, $dry_run, $req_idx,
                                    $repeated_req_idx, $need_array);
            }

            if ($pending || $req_idx < @$reqs - 1) {
                sleep $block->wait if $block->wait;

                check_error_log($block, $res, $dry_run, $repeated_req_idx,
                                $need_array);
                if (!defined $block->ignore_response) {
                    check_access_log($block, $dry_run, $repeated_req_idx);
                }
            }

            $req_idx++;

            last if !$pending;
        }
    }

    sleep $block->wait if $block->wait;

    check_error_log($block, $res, $dry_run, $repeated_req_idx, $need_array);

    if (!defined $block->ignore_response) {
        check_access_log($block, $dry_run, $repeated_req_idx);
    }
}

# The expected value for request $req_idx: with several requests the
# section must be an array (via eval); with one request an array is
# allowed and its first element used.
sub get_indexed_value ($$$$) {
    my ($name, $value, $req_idx, $need_array) = @_;

    if ($need_array) {
        if (ref $value && ref $value eq 'ARRAY') {
            return $value->[$req_idx];
        }

        bail_out("$name - You asked for many requests, the expected results "
                 . "should be arrays as well.");
    }

    if (ref $value && ref $value eq 'ARRAY') {
        if ($req_idx != 0) {
            bail_out("$name - SHOULD NOT HAPPEN: idx != 0 and don't need "
                     . "array.");
        }
        return $value->[0];
    }

    return $value;
}

# --- error_code (default 200) or --- error_code_like
sub check_error_code ($$$$$) {
    my ($block, $res, $dry_run, $req_idx, $need_array) = @_;

    my $name = $block->name;
    my $code = ($res && $res->code) || '';

    SKIP: {
        Test::More::skip("$name - tests skipped due to $dry_run", 1)
            if $dry_run;

        if (defined $block->error_code_like) {
            my $val = get_indexed_value($name, $block->error_code_like,
                                        $req_idx, $need_array);
            Test::More::like($code, qr/$val/sm, "$name - status code ok");

        } elsif (defined $block->error_code) {
            Test::Base::is($code,
                           get_indexed_value($name, $block->error_code,
                                             $req_idx, $need_array),
                           "$name - status code ok");

        } else {
            Test::Base::is($code, 200, "$name - status code ok");
        }
    }
}

# --- raw_response_headers_like / _unlike: regex on the raw header block
sub check_raw_response_headers ($$$$$) {
    my ($block, $raw_headers, $dry_run, $req_idx, $need_array) = @_;

    my $name = $block->name;

    for my $kind (qw( like unlike )) {
        my $section = "raw_response_headers_$kind";
        my $value = $block->$section;
        next unless defined $value;

        SKIP: {
            Test::More::skip("$name - $section - tests skipped due to "
                             . "$dry_run", 1) if $dry_run;

            my $expected = get_indexed_value($name, $value, $req_idx,
                                             $need_array);
            if ($kind eq 'like') {
                Test::More::like($raw_headers, qr/$expected/s,
                                 "$name - raw resp headers like");
            } else {
                Test::More::unlike($raw_headers, qr/$expected/s,
                                   "$name - raw resp headers unlike");
            }
        }
    }
}

# "Name: value" lines; "!Name" means the header must be absent.  Later
# lines for the same name replace earlier ones, as in the real module.
# (The real one returns a hash; we keep the order of first appearance so
# the subtest output is stable.)
sub parse_expected_headers ($) {
    my $s = shift;

    my (@keys, %val);

    for my $line (split /\n/, $s // '') {
        $line =~ s/^\s+|\s+$//g;

        my $key;
        if ($line =~ s/^!\s*//) {
            $key = $line;
            push @keys, $key if !exists $val{$key};
            $val{$key} = undef;

        } else {
            my $v;
            ($key, $v) = split /\s*:\s*/, $line, 2;
            push @keys, $key if !exists $val{$key};
            $val{$key} = $v;
        }
    }

    return map { [$_, $val{$_}] } @keys;
}

# --- response_headers (exact values; "!Name" for absent headers) or
# --- response_headers_like (each value a regex for the whole value).
sub check_response_headers ($$$$$$) {
    my ($block, $res, $raw_headers, $dry_run, $req_idx, $need_array) = @_;

    my $name = $block->name;

    if (defined $block->response_headers) {
        my @headers = parse_expected_headers(
            get_indexed_value($name, $block->response_headers, $req_idx,
                              $need_array));

        for my $h (@headers) {
            my ($key, $val) = @$h;

            if (!defined $val) {
                SKIP: {
                    Test::More::skip("$name - response_headers - tests "
                                     . "skipped due to $dry_run", 1)
                        if $dry_run;
                    Test::More::unlike($raw_headers // '',
                        qr/^\s*\Q$key\E\s*:/ms,
                        "$name - header $key not present in the raw headers");
                }
                next;
            }

            $val =~ s/\$ServerPort\b/$ServerPort/g;
            $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;

            my $actual = $res ? $res->header($key) : undef;
            $actual //= '';

            SKIP: {
                Test::More::skip("$name - response_headers - tests skipped "
                                 . "due to $dry_run", 1) if $dry_run;
                Test::Base::is($actual, $val, "$name - header $key ok");
            }
        }

    } elsif (defined $block->response_headers_like) {
        my @headers = parse_expected_headers(
            get_indexed_value($name, $block->response_headers_like,
                              $req_idx, $need_array));

        for my $h (@headers) {
            my ($key, $val) = @$h;
            $val //= '';

            my $actual = $res ? $res->header($key) : undef;
            $actual //= '';

            SKIP: {
                Test::More::skip("$name - response_headers_like - tests "
                                 . "skipped due to $dry_run", 1) if $dry_run;
                Test::More::like($actual, qr/^$val$/,
                                 "$name - header $key like ok");
            }
        }
    }
}

# --- response_body_filters: transform the actual body before comparing:
# names (md5_hex sha1_hex uc lc ucfirst lcfirst length) or code refs; a
# two-dimensional array gives the filters per request.
sub transform_response_body ($$$) {
    my ($block, $res, $req_idx) = @_;

    return unless defined $res;

    my $content = $res->content;
    return unless defined $content;

    my $name = $block->name;
    my $filters = $block->response_body_filters;
    return unless defined $filters;

    if (!ref $filters) {
        $filters =~ s/^\s+|\s+$//gs;
        $filters = [split /\s+/, $filters];

    } elsif (ref $filters ne 'ARRAY') {
        $filters = [$filters];
    }

    if (ref $filters->[0] eq 'ARRAY') {
        for my $elem (@$filters) {
            if (ref $elem ne 'ARRAY') {
                bail_out("$name - the --- response_body_filters "
                         . "two-dimensional array only be like [[uc], [lc]] "
                         . "not [[uc], lc]");
            }
        }

        $filters = $filters->[$req_idx];
        if (!defined $filters) {
            bail_out("$name - the ---response_body_filters two-dimensional "
                     . "array unmatch the specified request($req_idx)");
        }
    }

    for my $f (ref $filters eq 'ARRAY' ? @$filters : ($filters)) {
        $content = apply_body_filter($block, $f, $content);
    }

    $res->content($content);
}

my %BodyFilters = (
    md5_hex  => sub { require Digest::MD5; Digest::MD5::md5_hex($_[0]) },
    sha1_hex => sub { require Digest::SHA; Digest::SHA::sha1_hex($_[0]) },
    uc       => sub { uc $_[0] },
    lc       => sub { lc $_[0] },
    ucfirst  => sub { ucfirst $_[0] },
    lcfirst  => sub { lcfirst $_[0] },
    length   => sub { length $_[0] },
);

sub apply_body_filter ($$$) {
    my ($block, $filter, $content) = @_;

    my $name = $block->name;

    if (ref $filter && ref $filter eq 'CODE') {
        return $filter->($content);
    }

    if (ref $filter) {
        bail_out("$name - the --- response_body_filters section only "
                 . "supports subroutine reference values and string values");
    }

    my $f = $BodyFilters{$filter}
        or bail_out("$name - unknown filter, \"$filter\", specified in the "
                    . "--- response_body_filters section");

    return $f->($content);
}

# --- response_body (exact; a qr// via eval means "like"), else
# --- response_body_like, else --- response_body_unlike; then the
# add_response_body_check() hooks.
sub check_response_body ($$$$$$) {
    my ($block, $res, $dry_run, $req_idx, $repeated_req_idx, $need_array)
        = @_;

    my $name = $block->name;

    if (defined(my $file = $block->write_resp_body_file) && defined $res) {
        open my $out, '>', $file
            or bail_out("$name - failed to write to file '$file': $!");
        print $out $res->content // '';
        close $out;
    }

    if (defined $block->response_body || defined $block->response_body_eval) {
        my $content = body_for_comparison($res);

        if (defined $block->response_body_json_sort) {
            require JSON::PP;
            my $js = JSON::PP->new->canonical(1);
            my $obj;
            if (eval { $obj = $js->loose(1)->decode($content); 1 }) {
                $content = $js->encode($obj) . "\n";
            }
        }

        my $expected;
        if ($block->response_body_eval) {
            Test::More::diag("$name - response_body_eval is DEPRECATED. Use "
                             . "response_body eval instead.");
            $expected = eval get_indexed_value($name,
                                               $block->response_body_eval,
                                               $req_idx, $need_array);
            warn $@ if $@;

        } else {
            $expected = get_indexed_value($name, $block->response_body,
                                          $req_idx, $need_array);
        }

        if ($block->charset) {
            Encode::from_to($expected, 'UTF-8', $block->charset);
        }

        if (defined $expected && !ref $expected) {
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
            $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            $expected = expand_env_in_text($expected, $name, $RandPorts);
        }

        my $desc = "$name - response_body - response is expected (repeated "
                   . "req $repeated_req_idx, req $req_idx)";

        SKIP: {
            Test::More::skip("$name - response_body - tests skipped due to "
                             . "$dry_run", 1) if $dry_run;

            if (ref $expected) {
                Test::More::like($content, $expected,
                    "$name - response_body - like (repeated req "
                    . "$repeated_req_idx, req $req_idx)");

            } elsif ($NoLongString) {
                Test::Base::is($content, $expected, $desc);

            } else {
                Test::LongString::is_string($content, $expected, $desc);
            }
        }

    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike)
    {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $section = "response_body_$type";

        my $content = body_for_comparison($res);

        my $pat = get_indexed_value($name, $block->$section, $req_idx,
                                    $need_array);
        $pat =~ s/\$ServerPort\b/$ServerPort/g;
        $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;

        my $summary = one_line_summary($content);

        SKIP: {
            Test::More::skip("$name - response_body_$type - tests skipped "
                             . "due to $dry_run", 1) if $dry_run;

            my $desc = "$name - response_body_$type - response is expected "
                       . "($summary)";
            if ($type eq 'like') {
                Test::More::like($content, qr/$pat/s, $desc);
            } else {
                Test::More::unlike($content, qr/$pat/s, $desc);
            }
        }
    }

    for my $check (@ResponseBodyChecks) {
        $check->($block, $res ? $res->content : undef, $req_idx,
                 $repeated_req_idx, $dry_run);
    }
}

# The body as compared, minus two lines old LWP-based clients injected.
sub body_for_comparison ($) {
    my $res = shift;

    my $content = $res ? $res->content : undef;
    if (defined $content) {
        $content =~ s/^TE: deflate,gzip;q=0\.3\r\n//gms;
        $content =~ s/^Connection: TE, close\r\n//gms;
    }

    return $content;
}

sub one_line_summary ($) {
    my $s = shift;
    return '' if !defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\n/ /gs;
    $s =~ s/\s{2,}/ /gs;
    return $s;
}

# Printable form of a log line or pattern for test descriptions.
sub fmt_str ($) {
    my $str = shift;
    chomp $str;
    $str =~ s/"/\\"/g;
    $str =~ s/\r/\\r/g;
    $str =~ s/\n/\\n/g;
    return $str;
}

# A pattern section's value as a list: text gives one substring per line,
# a qr// one regex, an array (via eval) a mix of both.
sub pattern_list ($) {
    my $pats = shift;

    if (!ref $pats) {
        chomp $pats;
        return [split /\n+/, $pats];
    }

    return [$pats] if ref $pats eq 'Regexp';

    return [@$pats];
}

sub line_matches ($$) {
    my ($line, $pat) = @_;
    return (ref $pat && $line =~ /$pat/) || $line =~ /\Q$pat\E/;
}

sub value_contains ($$);

sub value_contains ($$) {
    my ($val, $pat) = @_;

    if (!ref $val || ref $val eq 'Regexp') {
        return $val =~ /\Q$pat\E/;
    }

    if (ref $val eq 'ARRAY') {
        for my $v (@$val) {
            return 1 if value_contains($v, $pat);
        }
    }

    return undef;
}

# Each pattern must match some line: one passing subtest per pattern
# found, one failing subtest per pattern not found.  $what describes the
# section for the messages: { section, file, suffix, context }.
sub check_patterns_present ($$$$$) {
    my ($name, $pats, $lines, $dry_run, $what) = @_;

    $lines ||= [];    # no log file (yet)

    $pats = pattern_list($pats);

    for my $line (@$lines) {
        for my $pat (@$pats) {
            next if !defined $pat;
            if (line_matches($line, $pat)) {
                SKIP: {
                    Test::More::skip("$name - $what->{section} - tests "
                                     . "skipped due to $dry_run", 1)
                        if $dry_run;
                    Test::More::pass("$name - pattern \"$pat\" matches a line "
                                     . "in $what->{file}$what->{suffix}");
                }
                undef $pat;
            }
        }
    }

    for my $pat (@$pats) {
        next if !defined $pat;
        SKIP: {
            Test::More::skip("$name - $what->{section} - tests skipped due "
                             . "to $dry_run", 1) if $dry_run;
            Test::More::fail("$name - pattern \"$pat\" should match a line in "
                             . "$what->{file}$what->{suffix}");
        }
    }
}

# No pattern may match any line: one failing subtest per matching line,
# one passing subtest per pattern that matched nothing.  (A changing
# number of subtests, so the plan count is not enforced after a failure.)
sub check_patterns_absent ($$$$$) {
    my ($name, $pats, $lines, $dry_run, $what) = @_;

    $lines ||= [];    # no log file (yet)

    $pats = pattern_list($pats);

    my %found;
    for my $i (0 .. $#$lines) {
        my $line = $lines->[$i];

        for my $pat (@$pats) {
            next if !defined $pat;
            next unless line_matches($line, $pat);

            if ($found{$pat}) {
                Test::More->builder->no_ending(1);
            } else {
                $found{$pat} = 1;
            }

            SKIP: {
                Test::More::skip("$name - $what->{section} - tests skipped "
                                 . "due to $dry_run ($line)", 1) if $dry_run;

                my $ln = fmt_str($line);
                my $p = fmt_str($pat);
                my $more = '';
                if ($what->{context}) {
                    my $last = min($i + 10, @$lines - 1);
                    $more = join '', @$lines[$i + 1 .. $last - 1]
                        if $last - 1 >= $i + 1;
                }
                Test::More::fail("$name - pattern \"$p\" should not match any "
                                 . "line in $what->{file} but matches line "
                                 . "\"$ln\"$what->{suffix}"
                                 . ($what->{context} ? "\n$more" : ''));
            }
        }
    }

    for my $pat (@$pats) {
        next if !defined $pat || $found{$pat};
        SKIP: {
            Test::More::skip("$name - $what->{section} - tests skipped due "
                             . "to $dry_run", 1) if $dry_run;
            my $p = fmt_str($pat);
            Test::More::pass("$name - pattern \"$p\" does not match a line in "
                             . "$what->{file}$what->{suffix}");
        }
    }
}

# --- grep_error_log / grep_error_log_out, --- error_log, --- no_error_log
# against the error-log lines written since the previous check; then
# warnings for unexpected [alert]/[crit]/[emerg] lines, and a failure for
# any "Assertion ... failed" line.
sub check_error_log ($$$$$) {
    my ($block, $res, $dry_run, $repeated_req_idx, $need_array) = @_;

    my $name = $block->name;
    my $lines;
    my $suffix = " (req $repeated_req_idx)";

    my %warn_about = (
        'writing a global lua variable' => 1,
        '[alert' => 1, '[crit' => 1, '[emerg' => 1,
    );

    my $grep_pats = $block->grep_error_log;
    my $grep_pat;
    if (defined $grep_pats) {
        $grep_pat = (ref $grep_pats && ref $grep_pats eq 'ARRAY')
            ? $grep_pats->[$repeated_req_idx] : $grep_pats;

    } elsif (defined $block->grep_error_log_out) {
        bail_out("$name - No --- grep_error_log defined but "
                 . "--- grep_error_log_out is defined");
    }

    if (defined $grep_pat) {
        my $expected = $block->grep_error_log_out;
        if (!defined $expected) {
            bail_out("$name - No --- grep_error_log_out defined but "
                     . "--- grep_error_log is defined");
        }

        $expected = expand_env_in_text($expected, $name, $RandPorts);
        if (ref $expected && ref $expected eq 'ARRAY') {
            $expected = $expected->[$repeated_req_idx];
        }

        SKIP: {
            Test::More::skip("$name - error_log - tests skipped due to "
                             . "$dry_run", 1) if $dry_run;

            $lines ||= error_log_data();

            my $matched = '';
            for my $line (@$lines) {
                if ((ref $grep_pat && $line =~ /$grep_pat/)
                    || $line =~ /\Q$grep_pat\E/)
                {
                    $matched .= "$&\n" if $& !~ /\n/;
                }
            }

            my $desc = "$name - grep_error_log_out$suffix";
            if (ref $expected eq 'Regexp') {
                Test::More::like($matched, $expected, $desc);
            } elsif ($NoLongString) {
                Test::Base::is($matched, $expected, $desc);
            } else {
                Test::LongString::is_string($matched, $expected, $desc);
            }
        }
    }

    for my $section (qw( error_log no_error_log )) {
        my $pats = $block->$section;
        next unless defined $pats;

        for my $key (keys %warn_about) {
            $warn_about{$key} = 0 if value_contains($pats, $key);
        }

        $lines ||= error_log_data();

        my $what = { section => $section, file => 'error.log',
                     suffix => $suffix, context => 1 };

        if ($section eq 'error_log') {
            check_patterns_present($name, $pats, $lines, $dry_run, $what);
        } else {
            check_patterns_absent($name, $pats, $lines, $dry_run, $what);
        }
    }

    if (!$dry_run) {
        $lines ||= error_log_data();

        my @warn_res;
        push @warn_res, qr/writing a global lua variable/
            if $warn_about{'writing a global lua variable'};
        push @warn_res, qr/\[alert\]/ if $warn_about{'[alert'};
        push @warn_res, qr/\[crit\]/  if $warn_about{'[crit'};
        push @warn_res, qr/\[emerg\]/ if $warn_about{'[emerg'};

        for my $re (@warn_res) {
            for my $line (@{ $lines || [] }) {
                warn "WARNING: $name - " . fmt_str($line) . "\n"
                    if $line =~ $re;
            }
        }
    }

    for my $line (@{ $lines || [] }) {
        if ($line =~ /\bAssertion .*?failed\b/) {
            Test::More->builder->no_ending(1);
            chomp(my $l = $line);
            Test::More::fail("$name - $l\n");
        }
    }
}

# --- access_log / --- no_access_log against the whole access log.
sub check_access_log ($$$) {
    my ($block, $dry_run, $repeated_req_idx) = @_;

    my $name = $block->name;
    my $lines;

    for my $section (qw( access_log no_access_log )) {
        my $pats = $block->$section;
        next unless defined $pats;

        $lines ||= access_log_data();

        my $what = { section => $section, file => 'access.log',
                     suffix => " (req $repeated_req_idx)", context => 1 };

        if ($section eq 'access_log') {
            check_patterns_present($name, $pats, $lines, $dry_run, $what);
        } else {
            check_patterns_absent($name, $pats, $lines, $dry_run, $what);
        }
    }
}

# --- shutdown_error_log / --- no_shutdown_error_log of the previous block:
# checked once its nginx has been stopped (before the next block starts,
# or at the end of the file), against the lines logged since the last
# check.
sub check_prev_block_shutdown_error_log () {
    my $block = $PrevBlock;
    return unless defined $block;

    return unless defined $block->shutdown_error_log
                  || defined $block->no_shutdown_error_log;

    my $dry_run = $ENV{TEST_NGINX_NO_CLEAN} ? 1 : 0;
    my $name = $block->name;
    my $lines;

    if (defined(my $pats = $block->shutdown_error_log)) {
        $lines ||= error_log_data();

        check_patterns_present($name, $pats, $lines, $dry_run,
            { section => 'shutdown_error_log', file => 'error.log',
              suffix => '' });

        for my $line (@$lines) {
            if ($line =~ /\bAssertion .*? failed\.$/) {
                Test::More->builder->no_ending(1);
                chomp(my $l = $line);
                Test::More::fail("$name - $l");
            }
        }
    }

    if (defined(my $pats = $block->no_shutdown_error_log)) {
        $lines ||= error_log_data();

        check_patterns_absent($name, $pats, $lines, $dry_run,
            { section => 'no_shutdown_error_log', file => 'error.log',
              suffix => '' });
    }

    # checked once only
    undef $PrevBlock;
}

# --------------------------------------------------------------------------
# End of the test file
# --------------------------------------------------------------------------

END {
    return if $Test::Nginx::Lite::Server::InSubprocess;

    # keep the exit status prove sees
    local $?;

    cleanup();

    if ($UseValgrind || !$ENV{TEST_NGINX_NO_CLEAN}) {
        stop_nginx_from_pidfile('END');
    }

    check_prev_block_shutdown_error_log();

    if ($Test::Nginx::Lite::Server::Randomize && -d $ServRoot
        && $ServRoot =~ m{/t/servroot_\d+$})
    {
        system("rm -rf $ServRoot");
    }
}

1;
__END__

=encoding utf-8

=head1 NAME

Test::Nginx::Socket - small stand-in for openresty's Test::Nginx::Socket

=head1 SYNOPSIS

    # in t/foo.t -- a normal Test::Nginx::Socket test file
    use Test::Nginx::Socket 'no_plan';
    run_tests();
    __DATA__
    === TEST 1: hello
    --- config
        location = /t { return 200 "hello\n"; }
    --- request
    GET /t
    --- response_body
    hello

    # run it
    TEST_NGINX_BINARY=/usr/sbin/nginx prove -I util/testnginx/lib -r t/

=head1 DESCRIPTION

Runs Test::Nginx::Socket test files where the real module (CPAN
Test-Nginx, github.com/openresty/test-nginx) is not installed.  Every
feature listed below has the real module's semantics (same nginx.conf
layout, same request bytes, same subtests and subtest counts); anything
else the real module offers makes the run die with an "unsupported"
message.  Test files must keep working with the real module.

=head2 Exported functions

C<plan> (via Test::Base: C<tests =E<gt> N>, C<'no_plan'>, also on the
C<use> line), C<run_tests>, C<run_test>, C<repeat_each>, C<no_shuffle>,
C<no_long_string>, C<no_root_location>, C<master_on>, C<master_off>,
C<master_process_enabled>, C<workers>, C<worker_connections>,
C<log_level>, C<check_accum_error_log>, C<env_to_nginx>, C<server_name>,
C<server_addr>, C<server_port>, C<server_port_for_client>, C<timeout>,
C<html_dir>, C<server_root>, C<config_preamble>, C<bail_out>,
C<add_block_preprocessor>, C<add_response_body_check> (called as
C<($block, $body, $req_idx, $repeated_req_idx, $dry_run)>),
C<add_cleanup_handler>, C<add_test_cleanup_handler>, C<is_str>, and
everything Test::Base exports (C<blocks>, C<is>, C<like>, C<diag>, ...).
C<use_hup> and C<no_nginx_manager> die as unsupported.

=head2 Sections

Meta: C<ONLY>, C<LAST>, C<SKIP> (Test::Base).  Server: C<main_config>,
C<post_main_config>, C<http_config>, C<config> (a block without it reuses
the previous block's running nginx), C<server_name>, C<log_level>,
C<error_log_file>, C<user_files>, C<init>, C<post_setup_server_root>,
C<must_die>, C<suppress_stderr>, C<no_mockeagain>.  Fake upstream:
C<tcp_listen>, C<tcp_reply>, C<tcp_query>, C<tcp_query_len>,
C<tcp_reply_delay>, C<tcp_shutdown>, C<tcp_shutdown_delay>,
C<tcp_no_close>, C<tcp_query_auto_timeout>.  Request:
C<request> (string, or eval array of requests, each a string or an array
of packets with optional C<delay_before>), C<request_eval>,
C<pipelined_requests>, C<raw_request>, C<raw_request_middle_delay>,
C<more_headers> (string or eval array), C<timeout>, C<abort>,
C<shutdown>, C<wait>, C<server_addr_for_client>.  Response:
C<error_code>, C<error_code_like>, C<response_headers> (C<!Name> for
absent), C<response_headers_like>, C<raw_response_headers_like>,
C<raw_response_headers_unlike>, C<response_body> (string or qr//),
C<response_body_eval>, C<response_body_like>, C<response_body_unlike>,
C<response_body_filters>, C<response_body_json_sort>, C<charset>,
C<write_resp_body_file>, C<ignore_response>, C<http09>.  Logs:
C<error_log>, C<no_error_log>, C<grep_error_log>, C<grep_error_log_out>,
C<access_log>, C<no_access_log>, C<shutdown_error_log>,
C<no_shutdown_error_log>.  Skipping: C<skip_eval>, C<skip_nginx>,
C<skip_nginx2>, C<skip_slave>, C<skip_openssl>, C<todo>, C<todo_nginx>.
Ignored as in the real module outside its special modes: C<no_check_leak>,
C<no_http2>, C<no_http3>, C<quic_max_idle_timeout>.

Unsupported (the block dies): C<http2>, C<http3>, C<curl*>, C<stap*>,
C<udp_*>, C<reload_fails>.

=head2 Environment

C<TEST_NGINX_BINARY>, C<TEST_NGINX_LOAD_MODULES>, C<TEST_NGINX_SERVROOT>,
C<TEST_NGINX_PORT>, C<TEST_NGINX_SERVER_PORT>, C<TEST_NGINX_CLIENT_PORT>,
C<TEST_NGINX_USE_VALGRIND>, C<TEST_NGINX_VALGRIND_EXIT_ON_FIRST_ERR>,
C<TEST_NGINX_NO_CLEAN>, C<TEST_NGINX_SLEEP>, C<TEST_NGINX_TIMEOUT>,
C<TEST_NGINX_LOG_LEVEL>, C<TEST_NGINX_MASTER_PROCESS>,
C<TEST_NGINX_NO_SHUFFLE>, C<TEST_NGINX_FORCE_RESTART_ON_TEST>,
C<TEST_NGINX_IGNORE_MISSING_DIRECTIVES>, C<TEST_NGINX_CHECK_ACCUM_ERR_LOG>,
C<TEST_NGINX_ERROR_LOG>, C<TEST_NGINX_EVENT_TYPE>, C<TEST_NGINX_LD_PRELOAD>,
C<TEST_NGINX_REUSE_PORT>, C<TEST_NGINX_WORKER_USER>, C<TEST_NGINX_RANDOMIZE>,
C<TEST_NGINX_FAST_SHUTDOWN>, C<TEST_NGINX_BUILDSLAVE>, C<TEST_NGINX_VERBOSE>.
C<$TEST_NGINX_*> variables are expanded where the real module expands
them: C<config>, C<http_config>, C<main_config>, C<post_main_config>,
C<error_log_file>, C<user_files>, C<pipelined_requests>, C<response_body>
(string values) and C<grep_error_log_out> -- not in C<request> or
C<more_headers> (use C<eval> and C<$ENV{...}> there).
C<$TEST_NGINX_RAND_PORT_N> is a free port, fixed for the block;
C<$TEST_NGINX_SERVER_PORT> and C<$TEST_NGINX_SERVER_ROOT> are set by the
runner.  C<$TEST_NGINX_HTML_DIR> is not (as in the real one): set it in
the test file, e.g. C<$ENV{TEST_NGINX_HTML_DIR} ||= html_dir();>.

Unsupported (the run dies): C<TEST_NGINX_USE_HUP>,
C<TEST_NGINX_USE_HTTP2>, C<TEST_NGINX_USE_HTTP3>, C<TEST_NGINX_USE_STAP>,
C<TEST_NGINX_USE_RR>, C<TEST_NGINX_CHECK_LEAK>, C<TEST_NGINX_BENCHMARK>,
C<TEST_NGINX_NO_NGINX_MANAGER>.

=head2 Valgrind mode

With C<TEST_NGINX_USE_VALGRIND=1> nginx runs per block in the foreground
(C<daemon off>, C<master_process> as configured) under
C<valgrind --num-callers=100 -q --tool=memcheck --leak-check=full
--keep-debuginfo=yes --show-possibly-lost=no --gen-suppressions=all
[--suppressions=valgrind.suppress]>; any other value of the variable is
used as the valgrind options.  Valgrind's report goes to stderr, each
block's part preceded by the block name.  As in the real module, valgrind
errors do not fail tests; grep the output.

=head2 Differences from the real module

=over

=item *

A daemonised nginx that has exited but is still a zombie (not yet reaped
by init) counts as stopped; the real module waits for it up to
C<timeout()> and then kills it.  Only timing differs.

=item *

In valgrind mode nginx is given up to 30 s to exit after QUIT (so the
leak report is printed), instead of 0.3 s + 1 s.  Also a C<must_die> block
writes C<daemon on> in valgrind mode (the real module writes C<daemon
off>, which would hang if nginx did start).

=item *

C<init>, C<post_setup_server_root> and C<skip_eval> code is evaluated in
package C<main> rather than in Test::Nginx::Util.

=item *

C<-e logs/error.log> is passed to nginx only for nginx E<gt>= 1.19.5
(older nginx has no C<-e>).

=item *

When a request given as packets has a deletion spanning two packets (for
example blank space split across them), the bytes are removed; the real
module keeps them in that corner case.  Packet hashes are copied, not
modified in place.

=item *

C<response_headers> subtests run in the order of the section's lines
(the real module uses hash order).

=item *

The C<tcp_listen> server stops reading when nginx closes the connection
before C<tcp_query_len> bytes arrived (or, with
C<tcp_query_auto_timeout>, at any end of stream); the real module spins
forever there.  Its query file is removed afterwards.

=back

=head2 Running several suites at once

Like the real module, every test file uses port C<TEST_NGINX_PORT>
(default 1984) and the server root C<TEST_NGINX_SERVROOT> (default
F<t/servroot>).  Two runs at the same time on one machine must use
different values (or C<TEST_NGINX_RANDOMIZE=1>), or one run's nginx
answers the other's requests.

=cut

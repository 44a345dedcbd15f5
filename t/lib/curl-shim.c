
/*
 * Copyright (C) ngx_passkey_module authors
 */


/*
 * A libcurl that lacks what the module needs, for the tests of its
 * configuration check (t/001-directives.t).  Preloaded into nginx, it
 * changes what curl_version_info() reports, or makes
 * curl_easy_setopt(CURLOPT_CAINFO_BLOB) fail as a TLS library without it
 * does, as PASSKEY_CURL_SHIM says: "no-asynchdns", "no-https", "old" or
 * "no-blob".  Everything else goes to the real libcurl.
 *
 *     cc -shared -fPIC -o curl-shim.so t/lib/curl-shim.c -ldl
 */


#define _GNU_SOURCE
#define CURL_DISABLE_TYPECHECK

#include <dlfcn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>


typedef curl_version_info_data *(*version_info_pt)(CURLversion age);
typedef CURLcode (*setopt_pt)(CURL *easy, CURLoption option, ...);


static int
shim(const char *what)
{
    const char  *v;

    v = getenv("PASSKEY_CURL_SHIM");

    return v != NULL && strcmp(v, what) == 0;
}


curl_version_info_data *
curl_version_info(CURLversion age)
{
    version_info_pt  real;

    static curl_version_info_data   info;
    static const char *const        protocols[] = { "http", NULL };

    real = (version_info_pt) dlsym(RTLD_NEXT, "curl_version_info");

    info = *real(age);

    if (shim("no-asynchdns")) {
        info.features &= ~CURL_VERSION_ASYNCHDNS;
    }

    if (shim("no-https")) {
        info.features &= ~CURL_VERSION_SSL;
        info.ssl_version = NULL;
        info.protocols = protocols;
    }

    if (shim("old")) {
        info.version = "7.76.1";
        info.version_num = 0x074c01;
    }

    return &info;
}


CURLcode
curl_easy_setopt(CURL *easy, CURLoption option, ...)
{
    long        n;
    void       *p;
    va_list     args;
    setopt_pt   real;
    curl_off_t  off;

    real = (setopt_pt) dlsym(RTLD_NEXT, "curl_easy_setopt");

    if (option == CURLOPT_CAINFO_BLOB && shim("no-blob")) {
        return CURLE_NOT_BUILT_IN;
    }

    va_start(args, option);

    if (option < CURLOPTTYPE_OBJECTPOINT) {
        n = va_arg(args, long);
        va_end(args);
        return real(easy, option, n);
    }

    if (option >= CURLOPTTYPE_OFF_T && option < CURLOPTTYPE_BLOB) {
        off = va_arg(args, curl_off_t);
        va_end(args);
        return real(easy, option, off);
    }

    /* objects, strings, lists, callbacks and blobs: a pointer */

    p = va_arg(args, void *);
    va_end(args);

    return real(easy, option, p);
}

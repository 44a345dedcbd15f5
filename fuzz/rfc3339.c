
/*
 * Copyright (C) ngx_passkey_module authors
 */


/*
 * RFC 3339 times from the API (a job's expire_time): read as the TTL of a
 * job's Redis key, and checked before they are stored.
 *
 * Input: the time, as the API's JSON string holds it (no NUL after it).
 * Checks: a time that reads as t writes back as a text that reads as t
 * again; a time that may be stored is 1 to 64 characters of its set.
 */


#include "../ngx_passkey_module/ngx_http_passkey_job.c"

#include "ngx_passkey_fuzz.h"


/* 10000-01-01T00:00:00Z: four-digit years only */
#define NGX_PASSKEY_FUZZ_YEAR_10000  253402300800


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_passkey_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    time_t       t, again;
    u_char       buf[sizeof("1970-01-01T00:00:00Z") - 1];
    ngx_str_t    s, text;
    ngx_uint_t   i;
    ngx_pool_t  *pool;

    pool = ngx_passkey_fuzz_pool();

    s.len = size;
    s.data = ngx_passkey_fuzz_copy(pool, data, size, 0);

    t = ngx_http_passkey_parse_rfc3339(&s);

    ngx_passkey_fuzz_check(t >= 0);

    if (t > 0 && t < NGX_PASSKEY_FUZZ_YEAR_10000) {
        ngx_http_passkey_rfc3339(t, buf);

        text.data = buf;
        text.len = sizeof(buf);

        again = ngx_http_passkey_parse_rfc3339(&text);

        ngx_passkey_fuzz_check(again == t);
        ngx_passkey_fuzz_check(
            ngx_http_passkey_valid_value(&text, 1) == NGX_OK);
    }

    if (ngx_http_passkey_valid_value(&s, 1) == NGX_OK) {
        ngx_passkey_fuzz_check(s.len >= 1
                               && s.len <= NGX_HTTP_PASSKEY_STATE_MAX);

        for (i = 0; i < s.len; i++) {
            ngx_passkey_fuzz_check(s.data[i] != '\0'
                                   && ngx_strchr("\"\\ /", s.data[i])
                                      == NULL);
        }
    }

    ngx_passkey_fuzz_done(pool);

    return 0;
}

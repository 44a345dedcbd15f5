
/*
 * Copyright (C) ngx_passkey_module authors
 */


/*
 * The API's response as libcurl hands it over: its header lines, of which
 * Retry-After is read (delta-seconds, or an HTTP-date turned into the
 * seconds until then) and passed on to clients, and the body, collected
 * up to passkey_api_buffer_size.
 *
 * Input: a first byte for the buffer size (in 64-byte units, at least
 * one), then header lines, each given with its "\n" (libcurl gives one
 * line a call); the same bytes are the body, in the same pieces.
 *
 * Checks: a Retry-After passed on is a number of seconds; the body kept
 * is the bytes given, and only while they fit.
 */


#include "../ngx_passkey_module/ngx_http_passkey_http.c"

#include "ngx_passkey_fuzz.h"


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_passkey_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                          *line;
    size_t                         n, len, kept;
    ngx_uint_t                     i, full;
    ngx_pool_t                    *pool;
    const u_char                  *p, *eol, *last;
    ngx_http_passkey_http_ctx_t    ctx;
    ngx_http_passkey_http_conf_t   conf;
    ngx_http_passkey_http_call_t   call;

    if (size == 0) {
        return 0;
    }

    pool = ngx_passkey_fuzz_pool();

    ngx_memzero(&ctx, sizeof(ngx_http_passkey_http_ctx_t));
    ngx_memzero(&conf, sizeof(ngx_http_passkey_http_conf_t));
    ngx_memzero(&call, sizeof(ngx_http_passkey_http_call_t));

    conf.max_response = (size_t) (data[0] % 64 + 1) * 64;

    call.pool = pool;
    call.log = ngx_passkey_fuzz_log;
    call.conf = &conf;
    ctx.call = &call;

    p = data + 1;
    last = data + size;
    kept = 0;
    full = 0;

    while (p < last) {
        eol = ngx_strlchr((u_char *) p, (u_char *) last, '\n');
        eol = eol ? eol + 1 : last;
        len = eol - p;

        /* each call's bytes in a buffer of their own, as libcurl's */

        line = (char *) ngx_passkey_fuzz_copy(pool, p, len, 0);

        n = ngx_http_passkey_http_header_cb(line, 1, len, &ctx);
        ngx_passkey_fuzz_check(n == len);

        n = ngx_http_passkey_http_write_cb(line, 1, len, &ctx);

        if (!full && kept + len <= conf.max_response) {
            ngx_passkey_fuzz_check(n == len && ctx.len == kept + len);
            ngx_passkey_fuzz_check(
                ngx_memcmp(ctx.buf + kept, p, len) == 0);
            kept += len;

        } else {
            /* libcurl stops at the first short write */
            ngx_passkey_fuzz_check(n == 0 && ctx.too_large);
            full = 1;
        }

        ngx_passkey_fuzz_check(ctx.len <= ctx.size
                               && ctx.size <= conf.max_response);

        if (full) {
            break;
        }

        p = eol;
    }

    ngx_passkey_fuzz_check(ctx.retry_after_len <= NGX_INT_T_LEN);

    for (i = 0; i < ctx.retry_after_len; i++) {
        ngx_passkey_fuzz_check(ctx.retry_after[i] >= '0'
                               && ctx.retry_after[i] <= '9');
    }

    if (ctx.buf) {
        ngx_free(ctx.buf);
    }

    ngx_passkey_fuzz_done(pool);

    return 0;
}

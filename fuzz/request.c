
/*
 * Copyright (C) ngx_passkey_module authors
 */


/*
 * What the module reads of a request besides its body: the headers
 * (Content-Type, Origin, Sec-Fetch-Site, Referer against Host, with and
 * without passkey_allowed_origins) and the request URI (the log-safe
 * request line and URI), and a client's value made fit for a log.
 *
 * Input, lines:
 *   1  the request URI, as the client sent it
 *   2  an allowed origin ("-": none listed, the Host must match;
 *      "off": no check)
 *   then headers, "Name: value"
 *
 * Checks: an accepted Content-Type is application/json; no token value
 * is left in the safe URI or the request line; a value made fit for a
 * log has printable ASCII only and is bounded.
 */


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
    u_char                      *q, *v, *args, *end;
    u_char                       buf[NGX_HTTP_PASSKEY_LOG_VALUE_LEN];
    ngx_str_t                    uri, origin, line, safe, out;
    ngx_uint_t                   i;
    ngx_pool_t                  *pool;
    ngx_array_t                 *origins;
    const u_char                *p, *last;
    ngx_table_elt_t             *h;
    ngx_http_request_t          *r;
    ngx_passkey_fuzz_request_t  *fr;

    pool = ngx_passkey_fuzz_pool();

    p = data;
    last = data + size;

    ngx_str_set(&uri, "/");
    ngx_str_set(&origin, "-");

    (void) ngx_passkey_fuzz_line(pool, &p, last, &uri, 0);
    (void) ngx_passkey_fuzz_line(pool, &p, last, &origin, 1);

    fr = ngx_passkey_fuzz_request(pool);
    r = &fr->r;

    /* the URI up to "?" is the path, and $args what follows */

    r->unparsed_uri = uri;
    r->uri = uri;
    ngx_str_set(&r->args, "");

    q = ngx_strlchr(uri.data, uri.data + uri.len, '?');

    if (q != NULL) {
        r->uri.len = q - uri.data;
        r->args.data = q + 1;
        r->args.len = uri.data + uri.len - (q + 1);
    }

    while (ngx_passkey_fuzz_line(pool, &p, last, &line, 0) == NGX_OK) {
        (void) ngx_passkey_fuzz_header(r, &line);
    }

    if (origin.len == 3 && ngx_strcmp(origin.data, "off") == 0) {
        origins = ngx_array_create(pool, 1, sizeof(ngx_str_t));
        if (origins == NULL) {
            abort();
        }

    } else if (origin.len == 1 && origin.data[0] == '-') {
        origins = NULL;

    } else {
        origins = ngx_array_create(pool, 1, sizeof(ngx_str_t));
        if (origins == NULL || ngx_array_push(origins) == NULL) {
            abort();
        }

        *(ngx_str_t *) origins->elts = origin;
    }

    if (ngx_http_passkey_check_content_type(r) == NGX_OK) {
        h = ngx_http_passkey_header_in(r, "Content-Type",
                                       sizeof("Content-Type") - 1, NULL);

        ngx_passkey_fuzz_check(h != NULL && h->value.len >= 16
                               && ngx_strncasecmp(h->value.data,
                                                  (u_char *)
                                                  "application/json", 16)
                                  == 0);
    }

    (void) ngx_http_passkey_check_origin(r, origins);

    /* the URI in a log: no token value left */

    if (ngx_http_passkey_safe_uri(r, &safe) != NGX_OK) {
        abort();
    }

    ngx_passkey_fuzz_check(safe.len <= uri.len);

    end = safe.data + safe.len;
    args = ngx_strlchr(safe.data, end, '?');

    /* the arguments: after the first "?", split at "&" */

    for (q = args; q && q < end; q++) {
        if (q != args && *q != '&') {
            continue;
        }

        if (end - q > 6
            && ngx_strncasecmp(q + 1, (u_char *) "token=", 6) == 0)
        {
            v = q + 7;

            ngx_passkey_fuzz_check(v == end || *v == '&'
                                   || (*v == '-'
                                       && (v + 1 == end || v[1] == '&')));
        }
    }

    /* the request line in a log: no arguments (the path has no "?" here) */

    if (ngx_http_passkey_hide_args(r) != NGX_OK) {
        abort();
    }

    ngx_passkey_fuzz_check(ngx_strlchr(r->request_line.data,
                                       r->request_line.data
                                       + r->request_line.len, '?')
                           == NULL);

    /* a client's value in a log */

    ngx_http_passkey_log_value(&uri, &out, buf);

    ngx_passkey_fuzz_check(out.len <= NGX_HTTP_PASSKEY_LOG_VALUE_LEN);

    for (i = 0; i < out.len; i++) {
        ngx_passkey_fuzz_check(out.data[i] >= 0x20 && out.data[i] < 0x7f
                               && out.data[i] != '"');
    }

    (void) ngx_http_passkey_check_redirect(&uri, origins);

    ngx_passkey_fuzz_done(pool);

    return 0;
}

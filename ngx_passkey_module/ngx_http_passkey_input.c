
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


static ngx_uint_t ngx_http_passkey_same_host(ngx_http_request_t *r,
    ngx_str_t *url);


/*
 * What a client sends: the request body in one piece, and the checks that
 * keep names and addresses Beyond Identity would refuse away from the API.
 */


/* the body in one piece, whether nginx kept it in memory or in a file */

ngx_int_t
ngx_http_passkey_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    body->len = 0;
    body->data = (u_char *) "";

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? (size_t) (b->file_last - b->file_pos)
                          : (size_t) (b->last - b->pos);
    }

    body->data = ngx_pnalloc(r->pool, len + 1);
    if (body->data == NULL) {
        return NGX_ERROR;
    }

    p = body->data;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                          b->file_pos);

        if (n != b->file_last - b->file_pos) {
            return NGX_ERROR;
        }

        p += n;
    }

    *p = '\0';
    body->len = len;

    return NGX_OK;
}


/*
 * Beyond Identity's rules for usernames and display names: 1 to 64
 * characters, none of {}[]<>;:?\/|*^%$#=~`! (nor control characters).
 */

ngx_int_t
ngx_http_passkey_check_name(ngx_str_t *s)
{
    u_char      *p, *last;
    uint32_t     ch;
    ngx_uint_t   n;

    p = s->data;
    last = s->data + s->len;
    n = 0;

    while (p < last) {

        if (*p < 0x80) {
            ch = *p++;

            if (ch < 0x20 || ch == 0x7f
                || ngx_strchr("{}[]<>;:?\\/|*^%$#=~`!", (int) ch) != NULL)
            {
                return NGX_DECLINED;
            }

        } else {
            ch = ngx_utf8_decode(&p, last - p);

            if (ch > 0x10ffff) {
                return NGX_DECLINED;
            }
        }

        if (++n > NGX_HTTP_PASSKEY_USERNAME_MAX) {
            return NGX_DECLINED;
        }
    }

    return n ? NGX_OK : NGX_DECLINED;
}


/* the practical subset of RFC 5321 addresses that mail systems accept */

ngx_int_t
ngx_http_passkey_check_email(ngx_str_t *s)
{
    u_char      *p, *at, *last;
    ngx_uint_t   dots;

    if (s->len > NGX_HTTP_PASSKEY_EMAIL_MAX) {
        return NGX_DECLINED;
    }

    last = s->data + s->len;
    at = NULL;

    for (p = s->data; p < last; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '<' || *p == '>'
            || *p == '(' || *p == ')' || *p == ',' || *p == ';'
            || *p == '"' || *p == '\\' || *p == '[' || *p == ']')
        {
            return NGX_DECLINED;
        }

        if (*p == '@') {
            if (at) {
                return NGX_DECLINED;
            }

            at = p;
        }
    }

    if (at == NULL || at == s->data || at - s->data > 64
        || last - at < 4)
    {
        return NGX_DECLINED;
    }

    dots = 0;

    for (p = at + 1; p < last; p++) {
        if (*p == '.') {
            if (p == at + 1 || p == last - 1 || p[-1] == '.') {
                return NGX_DECLINED;
            }

            dots++;
        }
    }

    return dots ? NGX_OK : NGX_DECLINED;
}


/*
 * nginx writes the request line into every error_log line of a request,
 * and $request into the access log: without the query string, a binding
 * token that a client put there by mistake is never written anywhere.
 */

ngx_int_t
ngx_http_passkey_hide_args(ngx_http_request_t *r)
{
    u_char     *p;
    ngx_str_t   line;

    if (r->args.len == 0 && ngx_strlchr(r->unparsed_uri.data,
                                        r->unparsed_uri.data
                                        + r->unparsed_uri.len, '?')
                            == NULL)
    {
        return NGX_OK;
    }

    line.len = r->method_name.len + 1 + r->uri.len
               + (r->http_protocol.len ? 1 + r->http_protocol.len : 0);

    line.data = ngx_pnalloc(r->pool, line.len);
    if (line.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(line.data, r->method_name.data, r->method_name.len);
    *p++ = ' ';
    p = ngx_cpymem(p, r->uri.data, r->uri.len);

    if (r->http_protocol.len) {
        *p++ = ' ';
        ngx_memcpy(p, r->http_protocol.data, r->http_protocol.len);
    }

    r->request_line = line;

    return NGX_OK;
}


/* a body, if there is one, is JSON: "application/json", maybe with a charset */

ngx_int_t
ngx_http_passkey_check_content_type(ngx_http_request_t *r)
{
    size_t      len;
    ngx_str_t  *type;

    /*
     * even without a body: a type an HTML form cannot send makes every
     * cross-origin fetch ask first (CORS preflight)
     */

    if (r->headers_in.content_type == NULL) {
        return NGX_DECLINED;
    }

    type = &r->headers_in.content_type->value;
    len = sizeof("application/json") - 1;

    if (type->len < len
        || ngx_strncasecmp(type->data, (u_char *) "application/json", len)
           != 0)
    {
        return NGX_DECLINED;
    }

    if (type->len > len && type->data[len] != ';' && type->data[len] != ' ') {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* the raw request URI with every "token=" argument's value made "-" */

ngx_int_t
ngx_http_passkey_safe_uri(ngx_http_request_t *r, ngx_str_t *uri)
{
    u_char  *p, *q, *last, *end;

    p = r->unparsed_uri.data;
    last = p + r->unparsed_uri.len;

    q = ngx_strlchr(p, last, '?');

    if (q == NULL) {
        *uri = r->unparsed_uri;
        return NGX_OK;
    }

    uri->data = ngx_pnalloc(r->pool, r->unparsed_uri.len);
    if (uri->data == NULL) {
        return NGX_ERROR;
    }

    end = ngx_cpymem(uri->data, p, q - p + 1);
    p = q + 1;

    while (p < last) {
        q = ngx_strlchr(p, last, '&');
        if (q == NULL) {
            q = last;
        }

        /* never longer than what it replaces: the value is not empty */
        if (q - p > 6 && ngx_strncasecmp(p, (u_char *) "token=", 6) == 0) {
            end = ngx_cpymem(end, "token=-", 7);

        } else {
            end = ngx_cpymem(end, p, q - p);
        }

        if (q < last) {
            *end++ = '&';
        }

        p = q + 1;
    }

    uri->len = end - uri->data;

    return NGX_OK;
}


/*
 * An absolute http(s) URL without credentials, whose origin is one of
 * origins (when given; compared without case).
 */

ngx_int_t
ngx_http_passkey_check_redirect(ngx_str_t *uri, ngx_array_t *origins)
{
    u_char      *p, *host, *last;
    size_t       len;
    ngx_str_t   *o;
    ngx_uint_t   i;

    p = uri->data;
    last = uri->data + uri->len;

    if (uri->len > 8 && ngx_strncasecmp(p, (u_char *) "https://", 8) == 0) {
        host = p + 8;

    } else if (uri->len > 7
               && ngx_strncasecmp(p, (u_char *) "http://", 7) == 0)
    {
        host = p + 7;

    } else {
        return NGX_DECLINED;
    }

    for (p = host; p < last; p++) {
        if (*p == '/' || *p == '?' || *p == '#') {
            break;
        }

        /* "user@host" would make the origin something else than it seems */
        if (*p == '@' || *p == '\\' || *p <= 0x20 || *p >= 0x7f) {
            return NGX_DECLINED;
        }
    }

    if (p == host) {
        return NGX_DECLINED;
    }

    for ( /* void */ ; p < last; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            return NGX_DECLINED;
        }
    }

    if (origins == NULL) {
        return NGX_OK;
    }

    for (p = host; p < last && *p != '/' && *p != '?' && *p != '#'; p++) {
        /* void */
    }

    len = p - uri->data;
    o = origins->elts;

    for (i = 0; i < origins->nelts; i++) {
        if (o[i].len == len
            && ngx_strncasecmp(o[i].data, uri->data, len) == 0)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/*
 * Cross-site requests.  Browsers send Origin with every POST that is not
 * same-origin, and current ones with every POST; Sec-Fetch-Site and
 * Referer decide for those that lack it.  A request with none of the
 * three does not come from a browser page, which is what CSRF needs.
 */

ngx_int_t
ngx_http_passkey_check_origin(ngx_http_request_t *r, ngx_array_t *origins)
{
    char             *reason;
    ngx_str_t         origin;
    ngx_table_elt_t  *h;

    if (origins && origins->nelts == 0) {
        return NGX_OK;                                 /* "off" */
    }

    h = ngx_http_passkey_header_in(r, "Origin", sizeof("Origin") - 1);

    if (h == NULL) {
        h = ngx_http_passkey_header_in(r, "Sec-Fetch-Site",
                                       sizeof("Sec-Fetch-Site") - 1);
        if (h != NULL) {
            if ((h->value.len == 11
                 && ngx_strncasecmp(h->value.data, (u_char *) "same-origin",
                                    11) == 0)
                || (h->value.len == 4
                    && ngx_strncasecmp(h->value.data, (u_char *) "none", 4)
                       == 0))
            {
                return NGX_OK;
            }

            reason = "Sec-Fetch-Site is not same-origin";
            goto refused;
        }

        h = r->headers_in.referer;

        if (h == NULL) {
            return NGX_OK;
        }

        reason = "the Referer is not an allowed origin";

    } else {
        reason = "the Origin is not allowed";
    }

    origin = h->value;

    if (ngx_http_passkey_check_redirect(&origin, origins) == NGX_OK) {

        /* no list: its host[:port] must be the Host the request names */

        if (origins || ngx_http_passkey_same_host(r, &origin)) {
            return NGX_OK;
        }
    }

refused:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "passkey: cross-site request refused: %s", reason);

    return NGX_DECLINED;
}


ngx_table_elt_t *
ngx_http_passkey_header_in(ngx_http_request_t *r, char *name, size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


static ngx_uint_t
ngx_http_passkey_same_host(ngx_http_request_t *r, ngx_str_t *url)
{
    u_char     *p, *host, *last;
    ngx_str_t  *want;

    if (r->headers_in.host == NULL) {
        return 0;
    }

    want = &r->headers_in.host->value;

    last = url->data + url->len;
    host = ngx_strlchr(url->data, last, ':');

    if (host == NULL || last - host < 3) {
        return 0;
    }

    host += 3;

    for (p = host; p < last && *p != '/' && *p != '?' && *p != '#'; p++) {
        /* void */
    }

    return (size_t) (p - host) == want->len
           && ngx_strncasecmp(host, want->data, want->len) == 0;
}

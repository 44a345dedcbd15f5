
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


static uint32_t ngx_http_passkey_utf8(u_char **p, u_char *last);
static ngx_uint_t ngx_http_passkey_invisible(uint32_t ch);
static ngx_uint_t ngx_http_passkey_same_host(ngx_http_request_t *r,
    ngx_str_t *url);


#define NGX_HTTP_PASSKEY_UTF8_INVALID  0xffffffff

/*
 * What a client sends, checked: names and addresses Beyond Identity would
 * refuse are kept away from the API, and what reaches a log is made safe.
 */


/*
 * Beyond Identity's rules for usernames and display names: 1 to 64
 * characters, none of {}[]<>;:?\/|*^%$#=~`! (nor control characters).
 * And ours, so that no two names that a proxy, a form or Beyond Identity
 * could read as one pass: nginx trims the spaces around a header's value,
 * and Beyond Identity may trim or fold what it is sent, so a name is
 * valid UTF-8, has no space at either end or two in a row, no space other
 * than U+0020 and no invisible character.
 */

ngx_int_t
ngx_http_passkey_check_name(ngx_str_t *s)
{
    u_char      *p, *last;
    uint32_t     ch, prev;
    ngx_uint_t   n;

    p = s->data;
    last = s->data + s->len;
    n = 0;

    /* a leading space is refused as if a space came before it */
    prev = ' ';

    while (p < last) {
        ch = ngx_http_passkey_utf8(&p, last);

        if (ch == NGX_HTTP_PASSKEY_UTF8_INVALID
            || ch < 0x20 || (ch >= 0x7f && ch < 0xa0)
            || (ch < 0x80
                && ngx_strchr("{}[]<>;:?\\/|*^%$#=~`!", (int) ch) != NULL)
            || (ch == ' ' && prev == ' ')
            || ngx_http_passkey_invisible(ch))
        {
            return NGX_DECLINED;
        }

        prev = ch;

        if (++n > NGX_HTTP_PASSKEY_USERNAME_MAX) {
            return NGX_DECLINED;
        }
    }

    return (n && prev != ' ') ? NGX_OK : NGX_DECLINED;
}


/* one code point of strict UTF-8: no overlong forms, no surrogates */

static uint32_t
ngx_http_passkey_utf8(u_char **p, u_char *last)
{
    u_char    c;
    size_t    len;
    uint32_t  ch, min;

    c = *(*p)++;

    if (c < 0x80) {
        return c;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        ch = c & 0x1f;
        len = 1;
        min = 0x80;

    } else if (c >= 0xe0 && c <= 0xef) {
        ch = c & 0x0f;
        len = 2;
        min = 0x800;

    } else if (c >= 0xf0 && c <= 0xf4) {
        ch = c & 0x07;
        len = 3;
        min = 0x10000;

    } else {
        return NGX_HTTP_PASSKEY_UTF8_INVALID;
    }

    if ((size_t) (last - *p) < len) {
        *p = last;
        return NGX_HTTP_PASSKEY_UTF8_INVALID;
    }

    while (len--) {
        c = *(*p)++;

        if ((c & 0xc0) != 0x80) {
            return NGX_HTTP_PASSKEY_UTF8_INVALID;
        }

        ch = (ch << 6) | (c & 0x3f);
    }

    if (ch < min || ch > 0x10ffff || (ch >= 0xd800 && ch <= 0xdfff)) {
        return NGX_HTTP_PASSKEY_UTF8_INVALID;
    }

    return ch;
}


/*
 * Spaces other than U+0020, and characters that show nothing (format
 * controls, fillers, variation selectors, tags, noncharacters): with
 * them, "victim" could be spelled in ways that look the same.
 */

static ngx_uint_t
ngx_http_passkey_invisible(uint32_t ch)
{
    if (ch < 0xa0) {
        return 0;
    }

    return ch == 0xa0 || ch == 0xad || ch == 0x34f || ch == 0x61c
           || ch == 0x115f || ch == 0x1160 || ch == 0x1680
           || ch == 0x17b4 || ch == 0x17b5
           || (ch >= 0x180b && ch <= 0x180f)
           || (ch >= 0x2000 && ch <= 0x200f)
           || (ch >= 0x2028 && ch <= 0x202f)
           || (ch >= 0x205f && ch <= 0x206f)
           || ch == 0x3000 || ch == 0x3164 || ch == 0xffa0
           || (ch >= 0xfe00 && ch <= 0xfe0f)
           || (ch >= 0xfdd0 && ch <= 0xfdef)
           || ch == 0xfeff
           || (ch >= 0xfff0 && ch <= 0xfffb)
           || (ch & 0xfffe) == 0xfffe
           || (ch >= 0xe0000 && ch <= 0xe0fff);
}


/*
 * The value of passkey_username, passkey_email or passkey_display_name,
 * percent-decoded.  nginx trims the spaces around a header's value, so a
 * session check that says "X-User: victim " is read as "victim"; one that
 * says "victim%20" is read as it meant, and the name check refuses it.
 * Beyond Identity allows no "%" in names, so a plain name is its own
 * encoding.  NGX_DECLINED: a "%" not followed by two hex digits.
 */

ngx_int_t
ngx_http_passkey_configured_value(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_str_t *value)
{
    u_char     *p, *q, *last;
    ngx_int_t   hi, lo;

    if (ngx_http_complex_value(r, cv, value) != NGX_OK) {
        return NGX_ERROR;
    }

    p = value->data;
    last = value->data + value->len;

    if (ngx_strlchr(p, last, '%') == NULL) {
        return NGX_OK;
    }

    q = ngx_pnalloc(r->pool, value->len);
    if (q == NULL) {
        return NGX_ERROR;
    }

    value->data = q;

    while (p < last) {

        if (*p != '%') {
            *q++ = *p++;
            continue;
        }

        if (last - p < 3) {
            return NGX_DECLINED;
        }

        hi = ngx_hextoi(p + 1, 1);
        lo = ngx_hextoi(p + 2, 1);

        if (hi == NGX_ERROR || lo == NGX_ERROR) {
            return NGX_DECLINED;
        }

        *q++ = (u_char) (hi << 4 | lo);
        p += 3;
    }

    value->len = q - value->data;

    return NGX_OK;
}


/*
 * The user nginx verified (passkey_bind_mode authenticated), as binds and
 * the job locations take it: NGX_OK, a name; NGX_DECLINED, none (nobody
 * is signed in); NGX_ABORT, one that could be read as another name, which
 * the application must fix, so it is logged here.  Not normalised:
 * "victim " is not "victim" for the application that vouched for it,
 * whatever nginx or Beyond Identity would make of it.
 */

ngx_int_t
ngx_http_passkey_verified_user(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_str_t *name)
{
    u_char     buf[NGX_HTTP_PASSKEY_LOG_VALUE_LEN];
    ngx_int_t  rc;
    ngx_str_t  safe;

    rc = ngx_http_passkey_configured_value(r, cv, name);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: the verified username is not validly "
                      "percent-encoded");
        return NGX_ABORT;
    }

    if (name->len == 0) {
        return NGX_DECLINED;
    }

    if (ngx_http_passkey_check_name(name) != NGX_OK) {
        ngx_http_passkey_log_value(name, &safe, buf);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: the verified username \"%V\" is not one "
                      "that can be bound safely (spaces at either end or "
                      "in a row, invisible or forbidden characters, more "
                      "than 64 characters)", &safe);
        return NGX_ABORT;
    }

    return NGX_OK;
}


/*
 * What a client sent, fit for a log line: at most
 * NGX_HTTP_PASSKEY_LOG_VALUE_MAX bytes of it, printable ASCII as it is,
 * the rest (and quotes and backslashes) as \xHH; buf holds
 * NGX_HTTP_PASSKEY_LOG_VALUE_LEN bytes.
 */

void
ngx_http_passkey_log_value(ngx_str_t *in, ngx_str_t *out, u_char *buf)
{
    u_char  *p, *last, *q;

    p = in->data;
    last = in->data + ngx_min(in->len, NGX_HTTP_PASSKEY_LOG_VALUE_MAX);
    q = buf;

    while (p < last) {
        if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') {
            *q++ = *p++;
            continue;
        }

        *q++ = '\\';
        *q++ = 'x';
        q = ngx_hex_dump(q, p++, 1);
    }

    if (in->len > NGX_HTTP_PASSKEY_LOG_VALUE_MAX) {
        q = ngx_cpymem(q, "...", 3);
    }

    out->data = buf;
    out->len = q - buf;
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


/*
 * A body, if there is one, is JSON: exactly one Content-Type,
 * "application/json" with optional parameters.  Two headers, or a list
 * such as "application/json text/html", are not a type this module can
 * vouch for: another reader of the request may take the other one.
 */

ngx_int_t
ngx_http_passkey_check_content_type(ngx_http_request_t *r)
{
    u_char           *p, *last;
    size_t            len;
    ngx_table_elt_t  *h;

    /*
     * even without a body: a type an HTML form cannot send makes every
     * cross-origin fetch ask first (CORS preflight)
     */

    h = ngx_http_passkey_header_in(r, "Content-Type",
                                   sizeof("Content-Type") - 1, NULL);

    if (h == NULL
        || ngx_http_passkey_header_in(r, "Content-Type",
                                      sizeof("Content-Type") - 1, h)
           != NULL)
    {
        return NGX_DECLINED;
    }

    p = h->value.data;
    last = p + h->value.len;
    len = sizeof("application/json") - 1;

    if ((size_t) (last - p) < len
        || ngx_strncasecmp(p, (u_char *) "application/json", len) != 0)
    {
        return NGX_DECLINED;
    }

    for (p += len; p < last && (*p == ' ' || *p == '\t'); p++) {
        /* void */
    }

    return (p == last || *p == ';') ? NGX_OK : NGX_DECLINED;
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

    h = ngx_http_passkey_header_in(r, "Origin", sizeof("Origin") - 1,
                                   NULL);

    if (h == NULL) {
        h = ngx_http_passkey_header_in(r, "Sec-Fetch-Site",
                                       sizeof("Sec-Fetch-Site") - 1, NULL);
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

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "passkey: cross-site request refused: %s", reason);

    return NGX_DECLINED;
}


/* the first request header of that name after "after" (NULL: the first) */

ngx_table_elt_t *
ngx_http_passkey_header_in(ngx_http_request_t *r, char *name, size_t len,
    ngx_table_elt_t *after)
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

        if (after) {
            if (&h[i] == after) {
                after = NULL;
            }

            continue;
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

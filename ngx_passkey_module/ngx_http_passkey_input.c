
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


static void ngx_http_passkey_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_passkey_body_read(ngx_http_request_t *r);
static ngx_int_t ngx_http_passkey_body_collect(ngx_http_request_t *r);
static ngx_int_t ngx_http_passkey_body_join(ngx_http_request_t *r,
    ngx_str_t *body);
static void ngx_http_passkey_body_fail(ngx_http_request_t *r, ngx_int_t rc);
static uint32_t ngx_http_passkey_utf8(u_char **p, u_char *last);
static ngx_uint_t ngx_http_passkey_invisible(uint32_t ch);
static ngx_uint_t ngx_http_passkey_same_host(ngx_http_request_t *r,
    ngx_str_t *url);


#define NGX_HTTP_PASSKEY_UTF8_INVALID  0xffffffff

/* a link of r->request_body->bufs with the module's copy of the body */
#define ngx_http_passkey_body_copy(cl)                                        \
    ((cl) && (cl)->buf->tag == (ngx_buf_tag_t) &ngx_http_passkey_module)


/*
 * What a client sends: the request body in one piece, and the checks that
 * keep names and addresses Beyond Identity would refuse away from the API.
 */


/*
 * The request body, in memory and bounded by passkey_max_body_size,
 * whether it comes with a Content-Length or chunked.
 *
 * nginx's buffered reading keeps at most client_body_buffer_size in
 * memory (a little more for a Content-Length) and writes the rest to a
 * temporary file, read back later with blocking I/O.
 * request_body_in_single_buf does not change that ("TODO: honor
 * r->request_body_in_single_buf" in ngx_http_request_body.c), a chunked
 * body is not bounded before its end (client_max_body_size aside), and
 * its framing fills the buffer too.  Raising client_body_buffer_size is
 * the user's call, and still leaves chunked bodies unbounded; a request
 * body filter could count bytes, but its 413 would be nginx's HTML page,
 * and it would sit in the path of every request.
 *
 * So the body is read unbuffered (r->request_body_no_buffering, as
 * proxy_request_buffering off and grpc do): nginx hands over each part as
 * it arrives, never writes a file, and reuses its buffer once a part is
 * taken.  Each part is copied to the module's buffer, kept as the first
 * link of r->request_body->bufs and grown, up to passkey_max_body_size,
 * with what has arrived rather than what a client announces.  One byte
 * more, and the request is answered with 413 at once; the rest of the
 * body is never read, and nginx closes the connection (lingering).
 *
 * A body that was whole before reading started is still buffered by
 * nginx, in memory: in the header buffer, or over HTTP/2 in a buffer as
 * large as the stream's window.  One that another module read first
 * (mirror_request_body) may be in a file: it is refused, not read.
 *
 * The handler is nginx's post_handler, which nginx calls when reading
 * starts; the module calls it again once the whole body is in memory.  It
 * calls ngx_http_passkey_read_body(), which returns NGX_AGAIN until then,
 * and NGX_DONE once the request has been answered (refused, or an error).
 */

ngx_int_t
ngx_http_passkey_read_client_body(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt handler)
{
    r->request_body_no_buffering = 1;

    return ngx_http_read_client_request_body(r, handler);
}


ngx_int_t
ngx_http_passkey_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    ngx_int_t  rc;

    rc = ngx_http_passkey_body_read(r);

    if (rc == NGX_AGAIN) {
        r->read_event_handler = ngx_http_passkey_body_handler;
        return NGX_AGAIN;
    }

    if (rc == NGX_OK) {
        rc = ngx_http_passkey_body_join(r, body);
    }

    if (rc != NGX_OK) {
        ngx_http_passkey_body_fail(r, rc);
        return NGX_DONE;
    }

    return NGX_OK;
}


static void
ngx_http_passkey_body_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_passkey_body_read(r);

    if (rc == NGX_AGAIN) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_passkey_body_fail(r, rc);
        return;
    }

    r->read_event_handler = ngx_http_block_reading;
    r->request_body->post_handler(r);
}


/*
 * Takes what nginx has read, and reads on while that frees its buffer
 * (as ngx_http_upstream_send_request_body() does): NGX_OK, the whole
 * body; NGX_AGAIN, more to come (nginx has set the read timer);
 * NGX_DECLINED, too large; NGX_ERROR or an HTTP status from nginx.
 */

static ngx_int_t
ngx_http_passkey_body_read(ngx_http_request_t *r)
{
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    if (r->request_body == NULL || !r->request_body_no_buffering) {
        return NGX_OK;
    }

    for ( ;; ) {
        rc = ngx_http_passkey_body_collect(r);

        if (rc != NGX_OK || !r->reading_body) {
            return rc;
        }

        rc = ngx_http_read_unbuffered_request_body(r);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        cl = r->request_body->bufs;

        if (ngx_http_passkey_body_copy(cl)) {
            cl = cl->next;
        }

        if (cl == NULL && r->reading_body) {
            return NGX_AGAIN;
        }
    }
}


/* the new parts of the body, moved to the module's buffer */

static ngx_int_t
ngx_http_passkey_body_collect(ngx_http_request_t *r)
{
    u_char                       *p;
    size_t                        len, size, need;
    ngx_buf_t                    *b, *body;
    ngx_chain_t                  *cl, *ln, *first;
    ngx_http_request_body_t      *rb;
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    rb = r->request_body;

    if (ngx_http_passkey_body_copy(rb->bufs)) {
        first = rb->bufs;
        body = first->buf;
        cl = first->next;

    } else {
        first = NULL;
        body = NULL;
        cl = rb->bufs;
    }

    len = body ? (size_t) (body->last - body->pos) : 0;

    for ( /* void */ ; cl; cl = ln) {
        b = cl->buf;
        ln = cl->next;

        if (b->in_file) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "passkey: unbuffered request body in a file");
            return NGX_ERROR;
        }

        size = b->last - b->pos;

        if (size > plcf->max_body_size - len) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "passkey: request body is larger than "
                          "passkey_max_body_size %uz (%uz bytes so far)",
                          plcf->max_body_size, len + size);
            return NGX_DECLINED;
        }

        if (size
            && (body == NULL || size > (size_t) (body->end - body->last)))
        {
            /*
             * the length a Content-Length announces, or twice what is
             * needed, up to the limit: memory follows what has arrived
             */

            need = len + size;

            if (!r->headers_in.chunked
                && r->headers_in.content_length_n >= (off_t) need
                && r->headers_in.content_length_n
                   <= (off_t) plcf->max_body_size)
            {
                need = (size_t) r->headers_in.content_length_n;

            } else {
                need = ngx_max(need, ngx_max(2 * len, 1024));
                need = ngx_min(need, plcf->max_body_size);
            }

            p = ngx_pnalloc(r->pool, need);
            if (p == NULL) {
                return NGX_ERROR;
            }

            if (body == NULL) {
                body = ngx_calloc_buf(r->pool);
                if (body == NULL) {
                    return NGX_ERROR;
                }

                first = ngx_alloc_chain_link(r->pool);
                if (first == NULL) {
                    return NGX_ERROR;
                }

                body->temporary = 1;
                body->tag = (ngx_buf_tag_t) &ngx_http_passkey_module;
                body->last = p;
                first->buf = body;

            } else {
                body->last = ngx_cpymem(p, body->pos, len);
                (void) ngx_pfree(r->pool, body->start);
            }

            body->start = p;
            body->pos = p;
            body->end = p + need;
        }

        if (size) {
            body->last = ngx_cpymem(body->last, b->pos, size);
            len += size;
        }

        /* the part is taken: nginx may reuse its buffer */

        b->pos = b->last;
        ngx_free_chain(r->pool, cl);
    }

    if (first) {
        first->next = NULL;
    }

    rb->bufs = first;

    return NGX_OK;
}


/*
 * The whole body in one piece: the module's buffer, or what nginx
 * buffered itself, copied from memory and left as it is.
 */

static ngx_int_t
ngx_http_passkey_body_join(ngx_http_request_t *r, ngx_str_t *body)
{
    off_t                         len;
    u_char                       *p;
    ngx_buf_t                    *b;
    ngx_chain_t                  *cl;
    ngx_http_passkey_loc_conf_t  *plcf;

    body->len = 0;
    body->data = (u_char *) "";

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (ngx_http_passkey_body_copy(cl) && cl->next == NULL) {
        body->data = cl->buf->pos;
        body->len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "passkey: request body was read earlier into a "
                          "temporary file, which is not read at request "
                          "time (client_body_buffer_size is less than "
                          "passkey_max_body_size %uz?)",
                          plcf->max_body_size);
            return NGX_DECLINED;
        }

        len += b->last - b->pos;
    }

    if (len > (off_t) plcf->max_body_size) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: request body of %O bytes is larger than "
                      "passkey_max_body_size %uz", len, plcf->max_body_size);
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, (size_t) len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = (size_t) len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    return NGX_OK;
}


/* a body refused or not read: answered here, the request finalized */

static void
ngx_http_passkey_body_fail(ngx_http_request_t *r, ngx_int_t rc)
{
    if (rc == NGX_DECLINED) {

        /* what is left of the body is not read: no keepalive */

        if (r->reading_body) {
            r->keepalive = 0;
        }

        rc = ngx_http_passkey_send_problem(r,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           "body_too_large", NULL);

    } else if (rc == NGX_ERROR) {
        rc = ngx_http_passkey_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                           "internal_error", NULL);
    }

    /* or nginx's own answer: 400, 408, 413 for client_max_body_size */

    ngx_http_finalize_request(r, rc);
}


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

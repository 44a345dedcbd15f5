
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


/* a link of r->request_body->bufs with the module's copy of the body */
#define ngx_http_passkey_body_copy(cl)                                        \
    ((cl) && (cl)->buf->tag == (ngx_buf_tag_t) &ngx_http_passkey_module)


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

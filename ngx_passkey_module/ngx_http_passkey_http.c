
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_passkey_crypto.h"

#include "ngx_http_passkey_http.h"
#include "ngx_http_passkey_http_loop.h"
#include "ngx_http_passkey_metrics_hook.h"


/*
 * Outbound calls to the Beyond Identity API, one libcurl easy handle each:
 * the request options, the response collected into a bounded buffer, the
 * result classified, and a deadline timer of nginx's that ends a call
 * libcurl's own timeout missed.  ngx_http_passkey_http_loop.c runs the
 * transfers on nginx's event loop.
 */


/* deadline = timeout + margin: libcurl's own timeout normally fires first */
#define NGX_HTTP_PASSKEY_HTTP_MARGIN       1000

/* first response buffer; it doubles up to max_response */
#define NGX_HTTP_PASSKEY_HTTP_BUFFER_SIZE  4096


typedef struct {
    ngx_http_passkey_http_call_t   *call;
    CURL                           *easy;        /* NULL: not attached */
    struct curl_slist              *headers;
    size_t                          sent;        /* of call->body */

    u_char                         *buf;         /* ngx_alloc()'d */
    size_t                          len;
    size_t                          size;

    ngx_event_t                     deadline;
    ngx_connection_t                dummy;       /* deadline.data, fd -1 */

    ngx_queue_t                     queue;

    const char                     *failure;     /* static text */
    ngx_msec_t                      start;

    size_t                          retry_after_len;
    u_char                          retry_after[64];

    unsigned                        too_large:1;
    unsigned                        no_memory:1;
} ngx_http_passkey_http_ctx_t;


static ngx_int_t ngx_http_passkey_http_setopt(
    ngx_http_passkey_http_ctx_t *ctx);
static ngx_int_t ngx_http_passkey_http_body(
    ngx_http_passkey_http_ctx_t *ctx);
static size_t ngx_http_passkey_http_read_cb(char *buffer, size_t size,
    size_t nitems, void *userdata);
static ngx_int_t ngx_http_passkey_http_add_header(
    ngx_http_passkey_http_ctx_t *ctx, char *name, ngx_str_t *value);
static ngx_int_t ngx_http_passkey_http_check_value(ngx_str_t *value);
static void ngx_http_passkey_http_cleanup(void *data);
static void ngx_http_passkey_http_detach(ngx_http_passkey_http_ctx_t *ctx);
static void ngx_http_passkey_http_finish(ngx_http_passkey_http_ctx_t *ctx,
    CURLcode code);
static ngx_http_passkey_http_result_e ngx_http_passkey_http_result(
    ngx_http_passkey_http_ctx_t *ctx, CURLcode code);
static void ngx_http_passkey_http_deadline_handler(ngx_event_t *ev);
static size_t ngx_http_passkey_http_write_cb(char *ptr, size_t size,
    size_t nmemb, void *userdata);
static size_t ngx_http_passkey_http_header_cb(char *ptr, size_t size,
    size_t nitems, void *userdata);
static void ngx_http_passkey_http_retry_after(
    ngx_http_passkey_http_ctx_t *ctx, u_char *p, u_char *last);
#if (NGX_DEBUG)
static void ngx_http_passkey_http_path(ngx_str_t *url, ngx_str_t *path);
#endif


/* the calls in flight in this worker (a process, not a thread) */
static ngx_queue_t  ngx_http_passkey_http_calls = {
    &ngx_http_passkey_http_calls, &ngx_http_passkey_http_calls
};


ngx_int_t
ngx_http_passkey_http_start(ngx_http_passkey_http_call_t *call)
{
    CURL                         *easy;
    ngx_pool_cleanup_t           *cln;
    ngx_http_passkey_http_ctx_t  *ctx;
#if (NGX_DEBUG)
    ngx_str_t                     path;
#endif

    /*
     * without a total timeout the deadline timer could not bound the call,
     * and a graceful shutdown would wait for it forever
     */

    if (call->conf->timeout == 0
        || call->conf->timeout == NGX_CONF_UNSET_MSEC
        || call->url.len == 0)
    {
        ngx_log_error(NGX_LOG_ALERT, call->log, 0,
                      "passkey http call without url or timeout");
        return NGX_ERROR;
    }

    /* values are pasted into header lines: refuse CR, LF and NUL */

    if (ngx_http_passkey_http_check_value(&call->content_type) != NGX_OK
        || ngx_http_passkey_http_check_value(&call->authorization)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, call->log, 0,
                      "passkey http call with an invalid header value");
        return NGX_ERROR;
    }

    ctx = ngx_pcalloc(call->pool, sizeof(ngx_http_passkey_http_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    /* makes the call leak-proof whoever destroys the pool */

    cln = ngx_pool_cleanup_add(call->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_passkey_http_cleanup;
    cln->data = ctx;

    ctx->call = call;
    ctx->start = ngx_current_msec;

    ctx->dummy.fd = (ngx_socket_t) -1;
    ctx->dummy.data = ctx;

    ctx->deadline.handler = ngx_http_passkey_http_deadline_handler;
    ctx->deadline.data = &ctx->dummy;
    ctx->deadline.log = call->log;

    easy = ngx_http_passkey_http_loop_get(call->log);
    if (easy == NULL) {
        return NGX_ERROR;
    }

    ctx->easy = easy;

    if (ngx_http_passkey_http_setopt(ctx) != NGX_OK) {
        goto failed;
    }

    if (ngx_http_passkey_http_loop_add(easy, call->log) != NGX_OK) {
        goto failed;
    }

    ngx_queue_insert_tail(&ngx_http_passkey_http_calls, &ctx->queue);

    /* non-cancelable: a graceful shutdown waits for the call */

    ngx_add_timer(&ctx->deadline,
                  call->conf->timeout + NGX_HTTP_PASSKEY_HTTP_MARGIN);

    call->priv = ctx;

#if (NGX_DEBUG)
    ngx_http_passkey_http_path(&call->url, &path);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, call->log, 0,
                   "passkey http start: %V %V", &call->method, &path);
#endif

    return NGX_OK;

failed:

    ngx_http_passkey_http_loop_put(easy);
    ctx->easy = NULL;

    curl_slist_free_all(ctx->headers);
    ctx->headers = NULL;

    return NGX_ERROR;
}


void
ngx_http_passkey_http_cancel(ngx_http_passkey_http_call_t *call)
{
    if (call->priv == NULL) {
        return;
    }

    ngx_http_passkey_http_detach(call->priv);
}


ngx_int_t
ngx_http_passkey_http_escape(ngx_pool_t *pool, ngx_str_t *s, ngx_str_t *out)
{
    u_char  *p;
    size_t   n;

    /* all but RFC 3986 unreserved characters: A-Z a-z 0-9 - . _ ~ */

    n = ngx_escape_uri(NULL, s->data, s->len, NGX_ESCAPE_URI_COMPONENT);

    p = ngx_pnalloc(pool, s->len + 2 * n + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    out->len = (u_char *) ngx_escape_uri(p, s->data, s->len,
                                         NGX_ESCAPE_URI_COMPONENT)
               - p;

    p[out->len] = '\0';

    return NGX_OK;
}


static ngx_int_t
ngx_http_passkey_http_setopt(ngx_http_passkey_http_ctx_t *ctx)
{
    CURL                          *easy;
    u_char                        *url;
    CURLcode                       rc;
    ngx_str_t                      empty, json;
    ngx_uint_t                     body;
    struct curl_blob               ca;
    ngx_http_passkey_http_call_t  *call;
    ngx_http_passkey_http_conf_t  *conf;

    call = ctx->call;
    conf = call->conf;
    easy = ctx->easy;

    ngx_str_null(&empty);
    ngx_str_set(&json, "application/json");

    url = ngx_pnalloc(call->pool, call->url.len + 1);
    if (url == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn(url, call->url.data, call->url.len + 1);

    /* an empty value makes libcurl drop its own header of that name */

    if (ngx_http_passkey_http_add_header(ctx, "Accept", &json) != NGX_OK
        || ngx_http_passkey_http_add_header(ctx, "Expect", &empty) != NGX_OK
        || ngx_http_passkey_http_add_header(ctx, "Content-Type",
                                            &call->content_type)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (call->authorization.len
        && ngx_http_passkey_http_add_header(ctx, "Authorization",
                                            &call->authorization)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = CURLE_OK;
    body = 0;

    if (call->method.len == 3
        && ngx_strncmp(call->method.data, "GET", 3) == 0)
    {
        rc = curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);

    } else if (call->method.len == 4
               && ngx_strncmp(call->method.data, "POST", 4) == 0)
    {
        body = 1;

    } else if ((call->method.len == 3
                && ngx_strncmp(call->method.data, "PUT", 3) == 0)
               || (call->method.len == 5
                   && ngx_strncmp(call->method.data, "PATCH", 5) == 0)
               || (call->method.len == 6
                   && ngx_strncmp(call->method.data, "DELETE", 6) == 0))
    {
        body = (call->content_type.len || call->body.len);

        /* method.data is not null-terminated; CUSTOMREQUEST copies */

        rc = curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST,
                              call->method.len == 3 ? "PUT"
                              : call->method.len == 5 ? "PATCH" : "DELETE");

    } else {
        ngx_log_error(NGX_LOG_ERR, call->log, 0,
                      "passkey http call with unsupported method \"%V\"",
                      &call->method);
        return NGX_ERROR;
    }

    if (rc != CURLE_OK) {
        goto failed;
    }

    if (body && ngx_http_passkey_http_body(ctx) != NGX_OK) {
        goto failed;
    }

    /* no VERBOSE, no DEBUGFUNCTION: they would log tokens and links */

    if (curl_easy_setopt(easy, CURLOPT_PRIVATE, ctx) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_URL, url) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_HTTPHEADER, ctx->headers)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https")
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                            (long) conf->connect_timeout)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) conf->timeout)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER,
                            conf->verify ? 1L : 0L)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST,
                            conf->verify ? 2L : 0L)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
                            (curl_off_t) conf->max_response)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                            ngx_http_passkey_http_write_cb)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_WRITEDATA, ctx) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION,
                            ngx_http_passkey_http_header_cb)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_HEADERDATA, ctx) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION,
                            ngx_http_passkey_http_loop_close)
           != CURLE_OK)
    {
        goto failed;
    }

    /*
     * Over TLS a new call waits for ALPN to say whether a connection being
     * made multiplexes (HTTP/2), instead of opening one more.  Not over
     * plain HTTP: libcurl would hold all calls until the first answer.
     */

    if (call->url.len > sizeof("https://") - 1
        && ngx_strncasecmp(call->url.data, (u_char *) "https://",
                           sizeof("https://") - 1)
           == 0
        && curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L) != CURLE_OK)
    {
        goto failed;
    }

    /*
     * passkey_api_trusted_certificate, read when the configuration loaded:
     * no file is read here, and only its CAs are trusted (no CAPATH).
     * NOCOPY: the text lives in the cycle's pool, which outlives the call.
     */

    if (conf->trusted_pem.len) {
        ca.data = conf->trusted_pem.data;
        ca.len = conf->trusted_pem.len;
        ca.flags = CURL_BLOB_NOCOPY;

        if (curl_easy_setopt(easy, CURLOPT_CAINFO_BLOB, &ca) != CURLE_OK
            || curl_easy_setopt(easy, CURLOPT_CAPATH, NULL) != CURLE_OK)
        {
            goto failed;
        }
    }

#if (LIBCURL_VERSION_NUM >= 0x075700)

    /*
     * do not join a resolver thread still in getaddrinfo() when the handle
     * is cleaned up; that would block the worker (7.87.0+, optional)
     */

    (void) curl_easy_setopt(easy, CURLOPT_QUICK_EXIT, 1L);

#endif

    return NGX_OK;

failed:

    ngx_log_error(NGX_LOG_ERR, call->log, 0, "curl_easy_setopt() failed");

    return NGX_ERROR;
}


/*
 * libcurl sends a request again on a new connection when a kept one turns
 * out closed before any answer (curl_multi: "Connection died, retrying a
 * fresh connect").  The server may have acted on the first one: a POST
 * that creates a job would create two.  Such bodies go through a read
 * callback with no SEEKFUNCTION, so libcurl cannot rewind them and ends
 * the call with CURLE_SEND_FAIL_REWIND instead.  Nothing is lost where
 * nothing was sent: with no body byte written yet, libcurl resends freely.
 */

static ngx_int_t
ngx_http_passkey_http_body(ngx_http_passkey_http_ctx_t *ctx)
{
    CURL                          *easy;
    ngx_http_passkey_http_call_t  *call;

    call = ctx->call;
    easy = ctx->easy;

    if (curl_easy_setopt(easy, CURLOPT_POST, 1L) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                            (curl_off_t) call->body.len)
           != CURLE_OK)
    {
        return NGX_ERROR;
    }

    if (call->resend) {

        /* not copied by libcurl; the pool outlives the easy handle */

        if (curl_easy_setopt(easy, CURLOPT_POSTFIELDS, call->body.data)
            != CURLE_OK)
        {
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (curl_easy_setopt(easy, CURLOPT_READFUNCTION,
                         ngx_http_passkey_http_read_cb)
        != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_READDATA, ctx) != CURLE_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static size_t
ngx_http_passkey_http_read_cb(char *buffer, size_t size, size_t nitems,
    void *userdata)
{
    ngx_http_passkey_http_ctx_t *ctx = userdata;

    size_t  n;

    n = ngx_min(size * nitems, ctx->call->body.len - ctx->sent);

    ngx_memcpy(buffer, ctx->call->body.data + ctx->sent, n);
    ctx->sent += n;

    return n;
}


static ngx_int_t
ngx_http_passkey_http_add_header(ngx_http_passkey_http_ctx_t *ctx,
    char *name, ngx_str_t *value)
{
    u_char             *line, *p;
    size_t              len, n;
    struct curl_slist  *list;

    n = ngx_strlen(name);
    len = n + sizeof(": ") - 1 + value->len + 1;

    line = ngx_pnalloc(ctx->call->pool, len);
    if (line == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(line, name, n);

    if (value->len) {
        *p++ = ':';
        *p++ = ' ';
        p = ngx_cpymem(p, value->data, value->len);

    } else {
        *p++ = ':';
    }

    *p = '\0';

    list = curl_slist_append(ctx->headers, (char *) line);

    /* slist holds its own copy; do not leave the token in the pool */

    ngx_explicit_memzero(line, len);

    if (list == NULL) {
        ngx_log_error(NGX_LOG_ERR, ctx->call->log, 0,
                      "curl_slist_append() failed");
        return NGX_ERROR;
    }

    ctx->headers = list;

    return NGX_OK;
}


static ngx_int_t
ngx_http_passkey_http_check_value(ngx_str_t *value)
{
    ngx_uint_t  i;

    for (i = 0; i < value->len; i++) {
        if (value->data[i] == CR || value->data[i] == LF
            || value->data[i] == '\0')
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_passkey_http_cleanup(void *data)
{
    ngx_http_passkey_http_ctx_t  *ctx = data;

    ngx_http_passkey_http_detach(ctx);
}


void
ngx_http_passkey_http_detach_all(void)
{
    ngx_queue_t                  *q;
    ngx_http_passkey_http_ctx_t  *ctx;

    while (!ngx_queue_empty(&ngx_http_passkey_http_calls)) {
        q = ngx_queue_head(&ngx_http_passkey_http_calls);
        ctx = ngx_queue_data(q, ngx_http_passkey_http_ctx_t, queue);

        ngx_http_passkey_http_detach(ctx);
    }
}


static void
ngx_http_passkey_http_detach(ngx_http_passkey_http_ctx_t *ctx)
{
    if (ctx->easy == NULL) {
        return;
    }

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    ngx_http_passkey_http_loop_remove(ctx->easy);
    ngx_http_passkey_http_loop_put(ctx->easy);
    ctx->easy = NULL;

    curl_slist_free_all(ctx->headers);
    ctx->headers = NULL;

    if (ctx->buf != NULL) {
        ngx_free(ctx->buf);
        ctx->buf = NULL;
    }

    ngx_queue_remove(&ctx->queue);

    /* closing a connection may have sent a TLS alert */

    ngx_http_passkey_clear_ssl_errors();
}


void
ngx_http_passkey_http_done(CURL *easy, CURLcode code)
{
    char  *p;

    p = NULL;

    if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p) != CURLE_OK
        || p == NULL)
    {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "passkey http transfer without context");
        ngx_http_passkey_http_loop_remove(easy);
        return;
    }

    ngx_http_passkey_http_finish((ngx_http_passkey_http_ctx_t *) p, code);
}


static void
ngx_http_passkey_http_finish(ngx_http_passkey_http_ctx_t *ctx,
    CURLcode code)
{
    long                           status;
    u_char                        *p;
    ngx_http_passkey_http_call_t  *call;

    call = ctx->call;

    status = 0;
    (void) curl_easy_getinfo(ctx->easy, CURLINFO_RESPONSE_CODE, &status);

    call->status = status > 0 ? (ngx_uint_t) status : 0;
    call->result = ngx_http_passkey_http_result(ctx, code);

    call->error = NULL;

    if (ctx->failure) {
        call->error = ctx->failure;

    } else if (ctx->no_memory) {
        call->error = "out of memory";

    } else if (ctx->too_large || code == CURLE_FILESIZE_EXCEEDED) {
        call->error = "response too large";

    } else if (code == CURLE_SEND_FAIL_REWIND) {
        call->error = "the kept connection closed after the request went "
                      "out; it is not sent again";

    } else if (code != CURLE_OK) {
        call->error = curl_easy_strerror(code);
    }

    ngx_str_set(&call->response, "");
    ngx_str_null(&call->retry_after);

    if (call->result == NGX_HTTP_PASSKEY_HTTP_OK && ctx->len) {
        p = ngx_pnalloc(call->pool, ctx->len);

        if (p == NULL) {
            call->result = NGX_HTTP_PASSKEY_HTTP_FAILED;
            call->error = "out of memory";

        } else {
            ngx_memcpy(p, ctx->buf, ctx->len);
            call->response.len = ctx->len;
            call->response.data = p;
        }
    }

    if (ctx->retry_after_len) {
        p = ngx_pnalloc(call->pool, ctx->retry_after_len);

        if (p != NULL) {
            ngx_memcpy(p, ctx->retry_after, ctx->retry_after_len);
            call->retry_after.len = ctx->retry_after_len;
            call->retry_after.data = p;
        }
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, call->log, 0,
                   "passkey http done: result:%d curl:%d status:%ui "
                   "bytes:%uz", call->result, code, call->status,
                   call->response.len);

    ngx_http_passkey_http_detach(ctx);

    ngx_http_passkey_metrics_api(call->route, call->result, call->status,
                                 ngx_current_msec - ctx->start);

    /* the handler may destroy the pool holding ctx and call */

    call->handler(call);
}


static ngx_http_passkey_http_result_e
ngx_http_passkey_http_result(ngx_http_passkey_http_ctx_t *ctx,
    CURLcode code)
{
    if (ctx->failure) {
        return NGX_HTTP_PASSKEY_HTTP_FAILED;
    }

    switch (code) {

    case CURLE_OK:
        return NGX_HTTP_PASSKEY_HTTP_OK;

    case CURLE_OPERATION_TIMEDOUT:
        return NGX_HTTP_PASSKEY_HTTP_TIMEOUT;

    /* GOT_NOTHING and RECV_ERROR: the peer closed or reset */

    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_FAIL_REWIND:
        return NGX_HTTP_PASSKEY_HTTP_CONNECT;

    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
        return NGX_HTTP_PASSKEY_HTTP_TLS;

    case CURLE_FILESIZE_EXCEEDED:
        return NGX_HTTP_PASSKEY_HTTP_TOO_LARGE;

    case CURLE_WRITE_ERROR:
        if (ctx->too_large) {
            return NGX_HTTP_PASSKEY_HTTP_TOO_LARGE;
        }

        return NGX_HTTP_PASSKEY_HTTP_FAILED;

    default:
        return NGX_HTTP_PASSKEY_HTTP_FAILED;
    }
}


/*
 * Called from the socket callback, inside libcurl: the transfer cannot be
 * removed there, so its deadline is moved to now and the timer handler
 * finishes it on the next event loop iteration.
 */

void
ngx_http_passkey_http_fail(CURL *easy, const char *failure)
{
    char                         *p;
    ngx_http_passkey_http_ctx_t  *ctx;

    p = NULL;

    if (easy == NULL
        || curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p) != CURLE_OK
        || p == NULL)
    {
        return;
    }

    ctx = (ngx_http_passkey_http_ctx_t *) p;

    if (ctx->easy == NULL || ctx->failure != NULL) {
        return;
    }

    ctx->failure = failure;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    ngx_add_timer(&ctx->deadline, 0);
}


static void
ngx_http_passkey_http_deadline_handler(ngx_event_t *ev)
{
    ngx_connection_t             *c;
    ngx_http_passkey_http_ctx_t  *ctx;

    c = ev->data;
    ctx = c->data;

    if (ctx->failure == NULL) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "passkey http call exceeded its deadline");
    }

    ngx_http_passkey_http_finish(ctx, CURLE_OPERATION_TIMEDOUT);
}


static size_t
ngx_http_passkey_http_write_cb(char *ptr, size_t size, size_t nmemb,
    void *userdata)
{
    ngx_http_passkey_http_ctx_t *ctx = userdata;

    u_char  *p;
    size_t   n, max, want;

    n = size * nmemb;
    max = ctx->call->conf->max_response;

    if (n > max - ctx->len) {
        ctx->too_large = 1;
        return 0;
    }

    if (ctx->len + n > ctx->size) {
        want = ngx_max(ctx->size * 2, NGX_HTTP_PASSKEY_HTTP_BUFFER_SIZE);

        while (want < ctx->len + n) {
            want *= 2;
        }

        want = ngx_min(want, max);

        p = ngx_alloc(want, ctx->call->log);
        if (p == NULL) {
            ctx->no_memory = 1;
            return 0;
        }

        if (ctx->buf != NULL) {
            ngx_memcpy(p, ctx->buf, ctx->len);
            ngx_free(ctx->buf);
        }

        ctx->buf = p;
        ctx->size = want;
    }

    ngx_memcpy(ctx->buf + ctx->len, ptr, n);
    ctx->len += n;

    return n;
}


static size_t
ngx_http_passkey_http_header_cb(char *ptr, size_t size, size_t nitems,
    void *userdata)
{
    ngx_http_passkey_http_ctx_t *ctx = userdata;

    u_char  *p, *last;
    size_t   n;

    n = size * nitems;
    p = (u_char *) ptr;
    last = p + n;

    /* a status line starts a new response, e.g. after a 1xx */

    if (n >= sizeof("HTTP/") - 1 && ngx_strncmp(p, "HTTP/", 5) == 0) {
        ctx->retry_after_len = 0;
        return n;
    }

    if (n < sizeof("Retry-After:") - 1
        || ngx_strncasecmp(p, (u_char *) "Retry-After:",
                           sizeof("Retry-After:") - 1)
           != 0)
    {
        return n;
    }

    p += sizeof("Retry-After:") - 1;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (last > p
           && (last[-1] == CR || last[-1] == LF || last[-1] == ' '
               || last[-1] == '\t'))
    {
        last--;
    }

    ngx_http_passkey_http_retry_after(ctx, p, last);

    return n;
}


/*
 * Retry-After reaches the client: only delta-seconds, or an HTTP-date,
 * which is passed on as the seconds until then; anything else is dropped.
 */

static void
ngx_http_passkey_http_retry_after(ngx_http_passkey_http_ctx_t *ctx,
    u_char *p, u_char *last)
{
    u_char    *q;
    time_t     t;
    ngx_int_t  delta;

    if (p == last || last - p > 64) {
        return;
    }

    for (q = p; q < last && *q >= '0' && *q <= '9'; q++) {
        /* void */
    }

    if (q == last) {
        if (last - p > 9) {
            return;
        }

        delta = ngx_atoi(p, last - p);

    } else {
        for (q = p; q < last; q++) {
            if (!(*q >= '0' && *q <= '9') && !(*q >= 'A' && *q <= 'Z')
                && !(*q >= 'a' && *q <= 'z') && *q != ' ' && *q != ','
                && *q != ':' && *q != '-')
            {
                return;
            }
        }

        t = ngx_parse_http_time(p, last - p);

        if (t == NGX_ERROR) {
            return;
        }

        delta = (t > ngx_time()) ? (ngx_int_t) (t - ngx_time()) : 0;
    }

    if (delta == NGX_ERROR) {
        return;
    }

    ctx->retry_after_len = ngx_sprintf(ctx->retry_after, "%i", delta)
                           - ctx->retry_after;
}


#if (NGX_DEBUG)

/* the path only: a query string or userinfo may hold secrets */

static void
ngx_http_passkey_http_path(ngx_str_t *url, ngx_str_t *path)
{
    u_char  *p, *last, *start;

    p = url->data;
    last = p + url->len;

    start = ngx_strlcasestrn(p, last, (u_char *) "://", 3 - 1);

    if (start != NULL) {
        p = start + 3;
    }

    while (p < last && *p != '/' && *p != '?' && *p != '#') {
        p++;
    }

    start = p;

    while (p < last && *p != '?' && *p != '#') {
        p++;
    }

    path->len = p - start;
    path->data = start;
}

#endif


/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <curl/curl.h>
#include "ngx_http_passkey_crypto.h"

#include "ngx_http_passkey_http.h"


/*
 * libcurl's multi-socket interface driven by the nginx event loop.
 *
 * Every libcurl socket gets an nginx connection from ngx_get_connection(),
 * so the event modules' stale-event checks (the instance bit, fd == -1)
 * apply to it; libcurl owns the fd and closes it itself.  Events are
 * level-triggered because libcurl does not promise to read a socket dry.
 *
 * libcurl is called only from nginx event handlers and from start(),
 * cancel() and exit_process(), never from inside a libcurl callback, and
 * the OpenSSL error queue that libcurl shares with nginx is cleared after
 * every libcurl call that may run TLS.
 */


/* deadline = timeout + margin: libcurl's own timeout normally fires first */
#define NGX_HTTP_PASSKEY_HTTP_MARGIN       1000

/* idle connections kept by the multi handle's connection cache */
#define NGX_HTTP_PASSKEY_HTTP_MAXCONNECTS  8

/* first response buffer; it doubles up to max_response */
#define NGX_HTTP_PASSKEY_HTTP_BUFFER_SIZE  4096

/* CURLOPT_PROTOCOLS_STR and CURLOPT_REDIR_PROTOCOLS_STR */
#define NGX_HTTP_PASSKEY_HTTP_CURL_MIN     0x075500


/*
 * A socket libcurl asked us to watch.  connection is NULL once libcurl has
 * closed the fd; the entry itself lives until CURL_POLL_REMOVE or exit,
 * because libcurl may still hand it back as socketp.
 */

typedef struct {
    ngx_queue_t                     queue;
    ngx_connection_t               *connection;
    curl_socket_t                   fd;
} ngx_http_passkey_http_sock_t;


typedef struct {
    ngx_http_passkey_http_call_t   *call;
    CURL                           *easy;        /* NULL: not attached */
    struct curl_slist              *headers;
    u_char                         *body;        /* POSTFIELDS, in pool */

    u_char                         *buf;         /* ngx_alloc()'d */
    size_t                          len;
    size_t                          size;

    ngx_event_t                     deadline;
    ngx_connection_t                dummy;       /* deadline.data, fd -1 */

    ngx_queue_t                     queue;

    const char                     *failure;     /* static text */

    size_t                          retry_after_len;
    u_char                          retry_after[64];

    unsigned                        too_large:1;
    unsigned                        no_memory:1;
} ngx_http_passkey_http_ctx_t;


typedef struct {
    CURLM                          *multi;
    ngx_event_t                     timer;
    ngx_connection_t                dummy;       /* timer.data, fd -1 */
    ngx_queue_t                     calls;       /* attached contexts */
    ngx_queue_t                     sockets;     /* sock_t entries */
} ngx_http_passkey_http_worker_t;


static ngx_int_t ngx_http_passkey_http_setopt(
    ngx_http_passkey_http_ctx_t *ctx);
static ngx_int_t ngx_http_passkey_http_add_header(
    ngx_http_passkey_http_ctx_t *ctx, char *name, ngx_str_t *value);
static ngx_int_t ngx_http_passkey_http_check_value(ngx_str_t *value);
static void ngx_http_passkey_http_cleanup(void *data);
static void ngx_http_passkey_http_detach(ngx_http_passkey_http_ctx_t *ctx);
static void ngx_http_passkey_http_finish(ngx_http_passkey_http_ctx_t *ctx,
    CURLcode code);
static ngx_http_passkey_http_result_e ngx_http_passkey_http_result(
    ngx_http_passkey_http_ctx_t *ctx, CURLcode code);
static void ngx_http_passkey_http_fail(CURL *easy, const char *failure);
static void ngx_http_passkey_http_deadline_handler(ngx_event_t *ev);
static void ngx_http_passkey_http_timer_handler(ngx_event_t *ev);
static void ngx_http_passkey_http_event_handler(ngx_event_t *ev);
static void ngx_http_passkey_http_drain(void);
static int ngx_http_passkey_http_socket_cb(CURL *easy, curl_socket_t s,
    int what, void *userp, void *socketp);
static int ngx_http_passkey_http_timer_cb(CURLM *multi, long timeout_ms,
    void *userp);
static int ngx_http_passkey_http_close_cb(void *clientp, curl_socket_t s);
static void ngx_http_passkey_http_release(ngx_http_passkey_http_sock_t *sock,
    ngx_uint_t closed);
static size_t ngx_http_passkey_http_write_cb(char *ptr, size_t size,
    size_t nmemb, void *userdata);
static size_t ngx_http_passkey_http_header_cb(char *ptr, size_t size,
    size_t nitems, void *userdata);
static void ngx_http_passkey_http_retry_after(
    ngx_http_passkey_http_ctx_t *ctx, u_char *p, u_char *last);
#if (NGX_DEBUG)
static void ngx_http_passkey_http_path(ngx_str_t *url, ngx_str_t *path);
#endif


/* one per worker process; nginx workers are processes, not threads */
static ngx_http_passkey_http_worker_t  ngx_http_passkey_http_worker;


/*
 * Called while the configuration loads, "nginx -t" included, so that a
 * libcurl the module cannot use stops the load there and not in workers:
 * init_process runs in each new worker, and nothing restarts a worker
 * that fails it.  init_process checks the resolver again, as a defence.
 */

ngx_int_t
ngx_http_passkey_http_check_library(ngx_conf_t *cf, ngx_uint_t ca_blob)
{
    CURL                    *easy;
    CURLcode                 rc;
    ngx_uint_t               https;
    struct curl_blob         blob;
    const char *const       *p;
    curl_version_info_data  *info;

    info = curl_version_info(CURLVERSION_NOW);

    if (info->version_num < NGX_HTTP_PASSKEY_HTTP_CURL_MIN) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "passkey: libcurl %s is too old, the module needs "
                      "7.85.0 or later", info->version);
        return NGX_ERROR;
    }

    /* a blocking getaddrinfo() would stall the worker on every lookup */

    if (!(info->features & CURL_VERSION_ASYNCHDNS)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "passkey: libcurl %s has no asynchronous DNS "
                      "resolver, API calls would block nginx workers",
                      info->version);
        return NGX_ERROR;
    }

    https = 0;

    for (p = info->protocols; p != NULL && *p != NULL; p++) {
        if (ngx_strcmp(*p, "https") == 0) {
            https = 1;
            break;
        }
    }

    if (!https || !(info->features & CURL_VERSION_SSL)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "passkey: libcurl %s has no HTTPS support, the "
                      "Beyond Identity API cannot be called", info->version);
        return NGX_ERROR;
    }

    if (!ca_blob) {
        return NGX_OK;
    }

    /* whether CURLOPT_CAINFO_BLOB works depends on libcurl's TLS library */

    rc = curl_global_init(CURL_GLOBAL_DEFAULT);

    if (rc != CURLE_OK) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "passkey: curl_global_init() failed: %s",
                      curl_easy_strerror(rc));
        return NGX_ERROR;
    }

    easy = curl_easy_init();

    if (easy == NULL) {
        rc = CURLE_OUT_OF_MEMORY;

    } else {
        blob.data = (void *) "-";
        blob.len = 1;
        blob.flags = CURL_BLOB_NOCOPY;

        rc = curl_easy_setopt(easy, CURLOPT_CAINFO_BLOB, &blob);

        curl_easy_cleanup(easy);
    }

    curl_global_cleanup();
    ngx_http_passkey_clear_ssl_errors();

    if (rc != CURLE_OK) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "passkey: libcurl %s with %s cannot take "
                      "\"passkey_api_trusted_certificate\" from memory "
                      "(CURLOPT_CAINFO_BLOB: %s)", info->version,
                      info->ssl_version ? info->ssl_version : "no TLS",
                      curl_easy_strerror(rc));
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_passkey_http_init_process(ngx_cycle_t *cycle)
{
    CURLM                           *multi;
    CURLcode                         rc;
    curl_version_info_data          *info;
    ngx_http_passkey_http_worker_t  *wk;

    wk = &ngx_http_passkey_http_worker;

    /* cache manager and loader never make calls */

    if (ngx_process == NGX_PROCESS_HELPER || wk->multi != NULL) {
        return NGX_OK;
    }

    rc = curl_global_init(CURL_GLOBAL_DEFAULT);

    if (rc != CURLE_OK) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "curl_global_init() failed: %s",
                      curl_easy_strerror(rc));
        return NGX_ERROR;
    }

    info = curl_version_info(CURLVERSION_NOW);

    /*
     * a libcurl that resolves names with a blocking getaddrinfo() would
     * stall the whole worker on every DNS lookup
     */

    if (!(info->features & CURL_VERSION_ASYNCHDNS)) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "libcurl %s has no asynchronous DNS resolver, "
                      "passkey API calls would block the worker",
                      info->version);
        curl_global_cleanup();
        return NGX_ERROR;
    }

    multi = curl_multi_init();

    if (multi == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "curl_multi_init() failed");
        curl_global_cleanup();
        return NGX_ERROR;
    }

    if (curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION,
                          ngx_http_passkey_http_socket_cb)
        != CURLM_OK
        || curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION,
                             ngx_http_passkey_http_timer_cb)
           != CURLM_OK
        || curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS,
                             (long) NGX_HTTP_PASSKEY_HTTP_MAXCONNECTS)
           != CURLM_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "curl_multi_setopt() failed");
        curl_multi_cleanup(multi);
        curl_global_cleanup();
        return NGX_ERROR;
    }

    ngx_queue_init(&wk->calls);
    ngx_queue_init(&wk->sockets);

    /* debug builds log ev->data as a connection when adding timers */

    wk->dummy.fd = (ngx_socket_t) -1;
    wk->dummy.data = wk;

    wk->timer.handler = ngx_http_passkey_http_timer_handler;
    wk->timer.data = &wk->dummy;
    wk->timer.log = cycle->log;

    /*
     * libcurl's housekeeping timer must not hold up a graceful shutdown;
     * calls in flight keep the worker alive with their own deadlines
     */
    wk->timer.cancelable = 1;

    wk->multi = multi;

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, cycle->log, 0,
                   "passkey http init: libcurl %s", info->version);

    return NGX_OK;
}


void
ngx_http_passkey_http_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t                     *q;
    ngx_http_passkey_http_ctx_t     *ctx;
    ngx_http_passkey_http_sock_t    *sock;
    ngx_http_passkey_http_worker_t  *wk;

    wk = &ngx_http_passkey_http_worker;

    if (wk->multi == NULL) {
        return;
    }

    while (!ngx_queue_empty(&wk->calls)) {
        q = ngx_queue_head(&wk->calls);
        ctx = ngx_queue_data(q, ngx_http_passkey_http_ctx_t, queue);

        ngx_http_passkey_http_detach(ctx);
    }

    /* closes the cached connections through the close callback */

    curl_multi_cleanup(wk->multi);
    wk->multi = NULL;

    if (wk->timer.timer_set) {
        ngx_del_timer(&wk->timer);
    }

    /*
     * entries libcurl never sent CURL_POLL_REMOVE for; the process is
     * exiting, so the events are only marked inactive
     */

    while (!ngx_queue_empty(&wk->sockets)) {
        q = ngx_queue_head(&wk->sockets);
        sock = ngx_queue_data(q, ngx_http_passkey_http_sock_t, queue);

        ngx_http_passkey_http_release(sock, 1);

        ngx_queue_remove(q);
        ngx_free(sock);
    }

    curl_global_cleanup();

    ngx_http_passkey_clear_ssl_errors();
}


ngx_int_t
ngx_http_passkey_http_start(ngx_http_passkey_http_call_t *call)
{
    CURL                            *easy;
    CURLMcode                        mrc;
    ngx_pool_cleanup_t              *cln;
    ngx_http_passkey_http_ctx_t     *ctx;
    ngx_http_passkey_http_worker_t  *wk;
#if (NGX_DEBUG)
    ngx_str_t                        path;
#endif

    wk = &ngx_http_passkey_http_worker;

    if (wk->multi == NULL) {
        ngx_log_error(NGX_LOG_ALERT, call->log, 0,
                      "passkey http client is not initialized");
        return NGX_ERROR;
    }

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

    ctx->dummy.fd = (ngx_socket_t) -1;
    ctx->dummy.data = ctx;

    ctx->deadline.handler = ngx_http_passkey_http_deadline_handler;
    ctx->deadline.data = &ctx->dummy;
    ctx->deadline.log = call->log;

    easy = curl_easy_init();
    if (easy == NULL) {
        ngx_log_error(NGX_LOG_ERR, call->log, 0, "curl_easy_init() failed");
        return NGX_ERROR;
    }

    ctx->easy = easy;

    if (ngx_http_passkey_http_setopt(ctx) != NGX_OK) {
        goto failed;
    }

    /*
     * libcurl answers with a 0 ms timer callback, and the transfer starts
     * from the timer handler: curl_multi_socket_action() is not called
     * here, as start() may run inside a handler called from the drain loop
     */

    mrc = curl_multi_add_handle(wk->multi, easy);

    if (mrc != CURLM_OK) {
        ngx_log_error(NGX_LOG_ERR, call->log, 0,
                      "curl_multi_add_handle() failed: %s",
                      curl_multi_strerror(mrc));
        goto failed;
    }

    ngx_queue_insert_tail(&wk->calls, &ctx->queue);

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

    curl_easy_cleanup(easy);
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
    u_char      *p, *d;
    size_t       n;
    ngx_uint_t   i;

    static u_char    hex[] = "0123456789ABCDEF";

    /* RFC 3986 unreserved characters: A-Z a-z 0-9 - . _ ~ */

    static uint32_t  unreserved[] = {
        0x00000000, /* 0000 0000 0000 0000  0000 0000 0000 0000 */

                    /* ?>=< ;:98 7654 3210  /.-, +*)( '&%$ #"!  */
        0x03ff6000, /* 0000 0011 1111 1111  0110 0000 0000 0000 */

                    /* _^]\ [ZYX WVUT SRQP  ONML KJIH GFED CBA@ */
        0x87fffffe, /* 1000 0111 1111 1111  1111 1111 1111 1110 */

                    /*  ~}| {zyx wvut srqp  onml kjih gfed cba` */
        0x47fffffe, /* 0100 0111 1111 1111  1111 1111 1111 1110 */

        0x00000000, 0x00000000, 0x00000000, 0x00000000
    };

    n = 0;

    for (i = 0; i < s->len; i++) {
        if (!(unreserved[s->data[i] >> 5] & (1U << (s->data[i] & 0x1f)))) {
            n++;
        }
    }

    p = ngx_pnalloc(pool, s->len + 2 * n + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    d = p;

    for (i = 0; i < s->len; i++) {
        if (unreserved[s->data[i] >> 5] & (1U << (s->data[i] & 0x1f))) {
            *d++ = s->data[i];
            continue;
        }

        *d++ = '%';
        *d++ = hex[s->data[i] >> 4];
        *d++ = hex[s->data[i] & 0xf];
    }

    *d = '\0';

    out->len = d - p;
    out->data = p;

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

    if (body) {

        /* libcurl does not copy POSTFIELDS; the pool outlives the easy */

        ctx->body = ngx_pnalloc(call->pool, call->body.len + 1);
        if (ctx->body == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(ctx->body, call->body.data, call->body.len);
        ctx->body[call->body.len] = '\0';

        if (curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t) call->body.len)
            != CURLE_OK
            || curl_easy_setopt(easy, CURLOPT_POSTFIELDS, ctx->body)
               != CURLE_OK)
        {
            goto failed;
        }
    }

    /*
     * no CURLOPT_VERBOSE and never a DEBUGFUNCTION: request headers carry
     * the Authorization value and bodies carry tokens and links
     */

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
                            ngx_http_passkey_http_close_cb)
           != CURLE_OK)
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


static void
ngx_http_passkey_http_detach(ngx_http_passkey_http_ctx_t *ctx)
{
    ngx_http_passkey_http_worker_t  *wk;

    if (ctx->easy == NULL) {
        return;
    }

    wk = &ngx_http_passkey_http_worker;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    /* may call the socket and timer callbacks; both are re-entrant safe */

    if (wk->multi != NULL) {
        (void) curl_multi_remove_handle(wk->multi, ctx->easy);
    }

    curl_easy_cleanup(ctx->easy);
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

static void
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


static void
ngx_http_passkey_http_timer_handler(ngx_event_t *ev)
{
    int                              running;
    CURLMcode                        rc;
    ngx_http_passkey_http_worker_t  *wk;

    wk = &ngx_http_passkey_http_worker;

    if (wk->multi == NULL) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0, "passkey http timer");

    rc = curl_multi_socket_action(wk->multi, CURL_SOCKET_TIMEOUT, 0,
                                  &running);

    ngx_http_passkey_clear_ssl_errors();

    if (rc != CURLM_OK) {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                      "curl_multi_socket_action() failed: %s",
                      curl_multi_strerror(rc));
    }

    ngx_http_passkey_http_drain();
}


static void
ngx_http_passkey_http_event_handler(ngx_event_t *ev)
{
    int                              running;
    CURLMcode                        rc;
    ngx_log_t                       *log;
    ngx_socket_t                     fd;
    ngx_connection_t                *c;
    ngx_http_passkey_http_worker_t  *wk;

    wk = &ngx_http_passkey_http_worker;

    c = ev->data;
    fd = c->fd;
    log = ev->log;

    if (wk->multi == NULL || fd == (ngx_socket_t) -1) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "passkey http event: fd:%d %s", fd,
                   ev->write ? "write" : "read");

    /* c and ev may be freed inside: CURL_POLL_REMOVE */

    rc = curl_multi_socket_action(wk->multi, fd,
                                  ev->write ? CURL_CSELECT_OUT
                                            : CURL_CSELECT_IN,
                                  &running);

    ngx_http_passkey_clear_ssl_errors();

    if (rc != CURLM_OK) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "curl_multi_socket_action(%d) failed: %s",
                      fd, curl_multi_strerror(rc));
    }

    ngx_http_passkey_http_drain();
}


/*
 * Handlers run from here may start calls (curl_multi_add_handle() is fine
 * between curl_multi_info_read() calls) and cancel calls: removing a handle
 * also drops its pending message, so every message read is still live.
 */

static void
ngx_http_passkey_http_drain(void)
{
    int                              left;
    char                            *p;
    CURL                            *easy;
    CURLMsg                         *msg;
    CURLcode                         code;
    ngx_http_passkey_http_worker_t  *wk;

    wk = &ngx_http_passkey_http_worker;

    while (wk->multi != NULL) {

        msg = curl_multi_info_read(wk->multi, &left);
        if (msg == NULL) {
            break;
        }

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        /* msg is invalid once the handle is removed */

        easy = msg->easy_handle;
        code = msg->data.result;

        p = NULL;

        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p) != CURLE_OK
            || p == NULL)
        {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "passkey http transfer without context");
            (void) curl_multi_remove_handle(wk->multi, easy);
            continue;
        }

        ngx_http_passkey_http_finish((ngx_http_passkey_http_ctx_t *) p,
                                     code);
    }
}


static int
ngx_http_passkey_http_socket_cb(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp)
{
    ngx_event_t                     *rev, *wev;
    ngx_connection_t                *c;
    ngx_http_passkey_http_sock_t    *sock;
    ngx_http_passkey_http_worker_t  *wk;

    /*
     * Never returns -1: libcurl would mark the whole multi handle dead and
     * fail every transfer; failures end only the transfer at hand.
     */

    wk = &ngx_http_passkey_http_worker;
    sock = socketp;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "passkey http socket: fd:%d what:%d known:%d",
                   s, what, sock != NULL);

    if (what == CURL_POLL_REMOVE) {

        /*
         * also sent when a connection goes idle into libcurl's cache and
         * the fd stays open, so the events are really deleted
         */

        if (sock != NULL) {
            ngx_http_passkey_http_release(sock, 0);
            ngx_queue_remove(&sock->queue);
            ngx_free(sock);
        }

        return 0;
    }

    if (sock == NULL) {
        sock = ngx_alloc(sizeof(ngx_http_passkey_http_sock_t),
                         ngx_cycle->log);
        if (sock == NULL) {
            ngx_http_passkey_http_fail(easy, "out of memory");
            return 0;
        }

        sock->connection = NULL;
        sock->fd = s;

        ngx_queue_insert_tail(&wk->sockets, &sock->queue);

        (void) curl_multi_assign(wk->multi, s, sock);
    }

    if (sock->connection == NULL) {

        /* a new socket, or a reused fd number of a closed one */

        c = ngx_get_connection(s, ngx_cycle->log);
        if (c == NULL) {
            ngx_http_passkey_http_fail(easy, "no free worker connection");
            return 0;
        }

        c->data = sock;
        c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

        c->read->handler = ngx_http_passkey_http_event_handler;
        c->write->handler = ngx_http_passkey_http_event_handler;
        c->read->log = c->log;
        c->write->log = c->log;

        sock->connection = c;
        sock->fd = s;
    }

    c = sock->connection;
    rev = c->read;
    wev = c->write;

    /* flags 0: level-triggered; NGX_CLEAR_EVENT would be edge-triggered */

    if (what & CURL_POLL_IN) {
        if (!rev->active && ngx_add_event(rev, NGX_READ_EVENT, 0) != NGX_OK)
        {
            ngx_http_passkey_http_fail(easy, "adding read event failed");
        }

    } else if (rev->active) {
        (void) ngx_del_event(rev, NGX_READ_EVENT, 0);
    }

    if (what & CURL_POLL_OUT) {
        if (!wev->active && ngx_add_event(wev, NGX_WRITE_EVENT, 0) != NGX_OK)
        {
            ngx_http_passkey_http_fail(easy, "adding write event failed");
        }

    } else if (wev->active) {
        (void) ngx_del_event(wev, NGX_WRITE_EVENT, 0);
    }

    return 0;
}


static int
ngx_http_passkey_http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    ngx_event_t  *ev;

    ev = &ngx_http_passkey_http_worker.timer;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "passkey http timer: %l", timeout_ms);

    /*
     * deleted first: ngx_add_timer() keeps an armed timer that differs by
     * less than NGX_TIMER_LAZY_DELAY, which would delay a 0 ms request
     */

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    if (timeout_ms >= 0) {
        ngx_add_timer(ev, (ngx_msec_t) timeout_ms);
    }

    return 0;
}


/*
 * libcurl reports CURL_POLL_REMOVE before closing a socket it polled, but
 * not on every path in every version (curl/curl#6237, #14976).  Closing
 * through this callback lets the connection go before the fd number can be
 * reused, so a late CURL_POLL_REMOVE never deletes epoll registrations of
 * an unrelated fd; the entry stays until CURL_POLL_REMOVE or exit.
 */

static int
ngx_http_passkey_http_close_cb(void *clientp, curl_socket_t s)
{
    ngx_queue_t                   *q;
    ngx_http_passkey_http_sock_t  *sock;

    for (q = ngx_queue_head(&ngx_http_passkey_http_worker.sockets);
         q != ngx_queue_sentinel(&ngx_http_passkey_http_worker.sockets);
         q = ngx_queue_next(q))
    {
        sock = ngx_queue_data(q, ngx_http_passkey_http_sock_t, queue);

        if (sock->connection != NULL && sock->fd == s) {
            ngx_http_passkey_http_release(sock, 1);
            break;
        }
    }

    if (ngx_close_socket(s) == -1) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_socket_errno,
                      ngx_close_socket_n " %d failed", s);
        return 1;
    }

    return 0;
}


/* "closed": the fd is about to be or was closed, epoll drops it itself */

static void
ngx_http_passkey_http_release(ngx_http_passkey_http_sock_t *sock,
    ngx_uint_t closed)
{
    ngx_uint_t         flags;
    ngx_connection_t  *c;

    c = sock->connection;

    if (c == NULL) {
        return;
    }

    flags = closed ? NGX_CLOSE_EVENT : 0;

    /*
     * Some paths (a connect attempt abandoned by happy eyeballs, the
     * resolver's socketpair in some versions) close an fd before its
     * CURL_POLL_REMOVE: deleting it would fail with EBADF and log an alert.
     */

    if (flags == 0
        && (c->read->active || c->write->active)
        && fcntl(c->fd, F_GETFD) == -1)
    {
        flags = NGX_CLOSE_EVENT;
    }

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, flags);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, flags);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    /* libcurl owns the fd: free the slot, never close it here */

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    sock->connection = NULL;
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

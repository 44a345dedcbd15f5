
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_passkey_crypto.h"
#include "ngx_http_passkey_http.h"
#include "ngx_http_passkey_http_loop.h"
#include "ngx_http_passkey_watch.h"


/*
 * libcurl in this process: the library checked while the configuration
 * loads, and its multi-socket interface driven by the nginx event loop.
 *
 * Every socket libcurl asks us to watch gets a connection slot from
 * ngx_http_passkey_watch.c; libcurl owns the fd and closes it itself.
 * libcurl is called only from nginx event handlers and from the add,
 * remove and exit functions, never from inside a libcurl callback, and the
 * OpenSSL error queue that libcurl shares with nginx is cleared after every
 * libcurl call that may run TLS.
 */


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
    CURLM                          *multi;
    CURLSH                         *share;       /* TLS sessions */

    CURL                          **idle;        /* easy handles kept */
    ngx_uint_t                      nidle;
    ngx_uint_t                      keepalive;

    ngx_event_t                     timer;
    ngx_connection_t                dummy;       /* timer.data, fd -1 */
    ngx_queue_t                     sockets;     /* sock_t entries */
} ngx_http_passkey_http_loop_t;


static void ngx_http_passkey_http_timer_handler(ngx_event_t *ev);
static void ngx_http_passkey_http_event_handler(ngx_event_t *ev);
static void ngx_http_passkey_http_action(curl_socket_t fd, int mask,
    ngx_log_t *log);
static int ngx_http_passkey_http_socket_cb(CURL *easy, curl_socket_t s,
    int what, void *userp, void *socketp);
static int ngx_http_passkey_http_timer_cb(CURLM *multi, long timeout_ms,
    void *userp);
static void ngx_http_passkey_http_release(ngx_http_passkey_http_sock_t *sock,
    ngx_uint_t closed);


/* one per worker process; nginx workers are processes, not threads */
static ngx_http_passkey_http_loop_t  ngx_http_passkey_http_loop;


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
ngx_http_passkey_http_init_process(ngx_cycle_t *cycle, ngx_uint_t keepalive)
{
    CURLM                         *multi;
    CURLcode                       rc;
    curl_version_info_data        *info;
    ngx_http_passkey_http_loop_t  *lp;

    lp = &ngx_http_passkey_http_loop;

    /* cache manager and loader never make calls */

    if (ngx_process == NGX_PROCESS_HELPER || lp->multi != NULL) {
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
     * checked at configuration too; a libcurl swapped since then would
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

    lp->idle = ngx_alloc(keepalive * sizeof(CURL *), cycle->log);
    if (lp->idle == NULL) {
        curl_global_cleanup();
        return NGX_ERROR;
    }

    lp->keepalive = keepalive;

    /*
     * TLS sessions shared by all easy handles, so that a new connection
     * to the API resumes one instead of a full handshake; one thread, so
     * no lock functions
     */

    lp->share = curl_share_init();

    if (lp->share == NULL
        || curl_share_setopt(lp->share, CURLSHOPT_SHARE,
                             CURL_LOCK_DATA_SSL_SESSION)
           != CURLSHE_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "curl_share_setopt() failed");
        goto failed;
    }

    multi = curl_multi_init();

    if (multi == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "curl_multi_init() failed");
        goto failed;
    }

    /*
     * passkey_api_keepalive: the connection cache keeps that many idle
     * connections, like "keepalive" in an upstream block; HTTP/2 streams
     * share one connection (CURLPIPE_MULTIPLEX is libcurl's default)
     */

    if (curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION,
                          ngx_http_passkey_http_socket_cb)
        != CURLM_OK
        || curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION,
                             ngx_http_passkey_http_timer_cb)
           != CURLM_OK
        || curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) keepalive)
           != CURLM_OK
        || curl_multi_setopt(multi, CURLMOPT_PIPELINING,
                             (long) CURLPIPE_MULTIPLEX)
           != CURLM_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "curl_multi_setopt() failed");
        curl_multi_cleanup(multi);
        goto failed;
    }

    ngx_queue_init(&lp->sockets);

    /* debug builds log ev->data as a connection when adding timers */

    lp->dummy.fd = (ngx_socket_t) -1;
    lp->dummy.data = lp;

    lp->timer.handler = ngx_http_passkey_http_timer_handler;
    lp->timer.data = &lp->dummy;
    lp->timer.log = cycle->log;

    /*
     * libcurl's housekeeping timer must not hold up a graceful shutdown;
     * calls in flight keep the worker alive with their own deadlines
     */
    lp->timer.cancelable = 1;

    lp->multi = multi;

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, cycle->log, 0,
                   "passkey http init: libcurl %s, keepalive %ui",
                   info->version, keepalive);

    return NGX_OK;

failed:

    if (lp->share != NULL) {
        (void) curl_share_cleanup(lp->share);
        lp->share = NULL;
    }

    ngx_free(lp->idle);
    lp->idle = NULL;

    curl_global_cleanup();

    return NGX_ERROR;
}


void
ngx_http_passkey_http_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t                   *q;
    ngx_http_passkey_http_sock_t  *sock;
    ngx_http_passkey_http_loop_t  *lp;

    lp = &ngx_http_passkey_http_loop;

    if (lp->multi == NULL) {
        return;
    }

    ngx_http_passkey_http_detach_all();

    while (lp->nidle) {
        curl_easy_cleanup(lp->idle[--lp->nidle]);
    }

    ngx_free(lp->idle);
    lp->idle = NULL;

    /* closes the cached connections through the close callback */

    curl_multi_cleanup(lp->multi);
    lp->multi = NULL;

    /* no easy handle uses it any more */

    (void) curl_share_cleanup(lp->share);
    lp->share = NULL;

    if (lp->timer.timer_set) {
        ngx_del_timer(&lp->timer);
    }

    /*
     * entries libcurl never sent CURL_POLL_REMOVE for; the process is
     * exiting, so the events are only marked inactive
     */

    while (!ngx_queue_empty(&lp->sockets)) {
        q = ngx_queue_head(&lp->sockets);
        sock = ngx_queue_data(q, ngx_http_passkey_http_sock_t, queue);

        ngx_http_passkey_http_release(sock, 1);

        ngx_queue_remove(q);
        ngx_free(sock);
    }

    curl_global_cleanup();

    ngx_http_passkey_clear_ssl_errors();
}


CURL *
ngx_http_passkey_http_loop_get(ngx_log_t *log)
{
    CURL                          *easy;
    ngx_http_passkey_http_loop_t  *lp;

    lp = &ngx_http_passkey_http_loop;

    if (lp->multi == NULL) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "passkey http client is not initialized");
        return NULL;
    }

    /* a kept handle was reset when it was put back */

    if (lp->nidle) {
        return lp->idle[--lp->nidle];
    }

    easy = curl_easy_init();

    if (easy == NULL
        || curl_easy_setopt(easy, CURLOPT_SHARE, lp->share) != CURLE_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0, "curl_easy_init() failed");

        if (easy != NULL) {
            curl_easy_cleanup(easy);
        }

        return NULL;
    }

    return easy;
}


/*
 * curl_easy_reset() keeps the handle's share (CURLOPT_SHARE is kept, as
 * are its caches) and drops every option, the call's pointers included.
 */

void
ngx_http_passkey_http_loop_put(CURL *easy)
{
    ngx_http_passkey_http_loop_t  *lp;

    lp = &ngx_http_passkey_http_loop;

    if (lp->multi == NULL || lp->nidle == lp->keepalive) {
        curl_easy_cleanup(easy);
        return;
    }

    curl_easy_reset(easy);

    lp->idle[lp->nidle++] = easy;
}


/*
 * libcurl answers with a 0 ms timer callback, and the transfer starts from
 * the timer handler: curl_multi_socket_action() is not called here, as
 * this may run inside a call's handler run from the drain loop.
 */

ngx_int_t
ngx_http_passkey_http_loop_add(CURL *easy, ngx_log_t *log)
{
    CURLMcode  rc;

    if (ngx_http_passkey_http_loop.multi == NULL) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "passkey http client is not initialized");
        return NGX_ERROR;
    }

    rc = curl_multi_add_handle(ngx_http_passkey_http_loop.multi, easy);

    if (rc != CURLM_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "curl_multi_add_handle() failed: %s",
                      curl_multi_strerror(rc));
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* may call the socket and timer callbacks; both are re-entrant safe */

void
ngx_http_passkey_http_loop_remove(CURL *easy)
{
    if (ngx_http_passkey_http_loop.multi != NULL) {
        (void) curl_multi_remove_handle(ngx_http_passkey_http_loop.multi,
                                        easy);
    }
}


/*
 * libcurl reports CURL_POLL_REMOVE before closing a socket it polled, but
 * not on every path in every version (curl/curl#6237, #14976).  Closing
 * through this callback lets the connection go before the fd number can be
 * reused, so a late CURL_POLL_REMOVE never deletes epoll registrations of
 * an unrelated fd; the entry stays until CURL_POLL_REMOVE or exit.
 */

int
ngx_http_passkey_http_loop_close(void *clientp, curl_socket_t s)
{
    ngx_queue_t                   *q, *sockets;
    ngx_http_passkey_http_sock_t  *sock;

    sockets = &ngx_http_passkey_http_loop.sockets;

    for (q = ngx_queue_head(sockets);
         q != ngx_queue_sentinel(sockets);
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


static void
ngx_http_passkey_http_timer_handler(ngx_event_t *ev)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0, "passkey http timer");

    ngx_http_passkey_http_action(CURL_SOCKET_TIMEOUT, 0, ev->log);
}


static void
ngx_http_passkey_http_event_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c;

    c = ev->data;

    if (c->fd == (ngx_socket_t) -1) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "passkey http event: fd:%d %s", c->fd,
                   ev->write ? "write" : "read");

    /* c and ev may be freed inside: CURL_POLL_REMOVE */

    ngx_http_passkey_http_action(c->fd,
                                 ev->write ? CURL_CSELECT_OUT
                                           : CURL_CSELECT_IN,
                                 ev->log);
}


/*
 * Lets libcurl act on a socket or its timer, then finishes the transfers
 * that ended.  A call's handler run from here may start calls
 * (curl_multi_add_handle() is fine between curl_multi_info_read() calls)
 * and cancel calls: removing a handle also drops its pending message, so
 * every message read is still live.
 */

static void
ngx_http_passkey_http_action(curl_socket_t fd, int mask, ngx_log_t *log)
{
    int        running, left;
    CURL      *easy;
    CURLMsg   *msg;
    CURLcode   code;
    CURLMcode  rc;

    if (ngx_http_passkey_http_loop.multi == NULL) {
        return;
    }

    rc = curl_multi_socket_action(ngx_http_passkey_http_loop.multi, fd, mask,
                                  &running);

    ngx_http_passkey_clear_ssl_errors();

    if (rc != CURLM_OK) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "curl_multi_socket_action(%d) failed: %s",
                      fd, curl_multi_strerror(rc));
    }

    while (ngx_http_passkey_http_loop.multi != NULL) {

        msg = curl_multi_info_read(ngx_http_passkey_http_loop.multi, &left);
        if (msg == NULL) {
            break;
        }

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        /* msg is invalid once the handle is removed */

        easy = msg->easy_handle;
        code = msg->data.result;

        ngx_http_passkey_http_done(easy, code);
    }
}


static int
ngx_http_passkey_http_socket_cb(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp)
{
    ngx_connection_t              *c;
    ngx_http_passkey_http_sock_t  *sock;

    /*
     * Never returns -1: libcurl would mark the whole multi handle dead and
     * fail every transfer; failures end only the transfer at hand.
     */

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

        ngx_queue_insert_tail(&ngx_http_passkey_http_loop.sockets,
                              &sock->queue);

        (void) curl_multi_assign(ngx_http_passkey_http_loop.multi, s, sock);
    }

    if (sock->connection == NULL) {

        /* a new socket, or a reused fd number of a closed one */

        c = ngx_http_passkey_watch_open(s, sock, ngx_cycle->log,
                                        ngx_http_passkey_http_event_handler,
                                        ngx_http_passkey_http_event_handler);
        if (c == NULL) {
            ngx_http_passkey_http_fail(easy, "no free worker connection");
            return 0;
        }

        sock->connection = c;
        sock->fd = s;
    }

    c = sock->connection;

    if (ngx_http_passkey_watch(c->read, what & CURL_POLL_IN) != NGX_OK
        || ngx_http_passkey_watch(c->write, what & CURL_POLL_OUT) != NGX_OK)
    {
        ngx_http_passkey_http_fail(easy, "adding a socket event failed");
    }

    return 0;
}


static int
ngx_http_passkey_http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    ngx_event_t  *ev;

    ev = &ngx_http_passkey_http_loop.timer;

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


/* "closed": the fd is about to be or was closed, epoll drops it itself */

static void
ngx_http_passkey_http_release(ngx_http_passkey_http_sock_t *sock,
    ngx_uint_t closed)
{
    if (sock->connection != NULL) {
        ngx_http_passkey_watch_close(sock->connection, closed);
        sock->connection = NULL;
    }
}

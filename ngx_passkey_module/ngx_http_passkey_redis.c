
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_passkey_redis.h"
#include "ngx_http_passkey_watch.h"


/*
 * hiredis 0.14.1 async API on the nginx event loop.
 *
 * Each worker keeps one lazily opened connection per configured server.
 * hiredis owns the socket; ngx_http_passkey_watch.c puts it on nginx's
 * events.
 *
 * Every command gets a heap "link" as hiredis privdata rather than the op
 * itself: hiredis always calls back eventually (reply, flush with a NULL
 * reply when the connection dies, or free at exit), possibly long after
 * the op's owner has gone.  op->priv and link->op point at each other and
 * cancel() breaks both, so a late callback only frees the link.
 *
 * 0.14.1 has no async timeouts, so each link carries an nginx timer.
 */


#define NGX_HTTP_PASSKEY_REDIS_DEFAULT_TIMEOUT  5000
#define NGX_HTTP_PASSKEY_REDIS_BACKOFF_MIN      100
#define NGX_HTTP_PASSKEY_REDIS_BACKOFF_MAX      1000


typedef struct {
    ngx_http_passkey_redis_server_t  *server;
    ngx_log_t                        *log;

    /* NULL: not connected; the next send() connects */
    redisAsyncContext                *ac;

    /* while a connect failed less than "backoff" ms ago, fail fast */
    ngx_msec_t                        failed;
    ngx_msec_t                        backoff;

    /* links failing fast: posted events not known to hiredis */
    ngx_queue_t                       failing;

    /* timer events need ev->data with fd -1 in --with-debug builds */
    ngx_connection_t                  dummy;

    unsigned                          exiting:1;
} ngx_http_passkey_redis_conn_t;


typedef struct {
    ngx_http_passkey_redis_op_t      *op;       /* NULL: owner is gone */
    ngx_http_passkey_redis_conn_t    *conn;
    redisAsyncContext                *ac;       /* NULL: failing fast */
    ngx_event_t                       ev;       /* deadline or failure */
    ngx_queue_t                       queue;    /* in conn->failing */
} ngx_http_passkey_redis_link_t;


static redisAsyncContext *ngx_http_passkey_redis_connect(
    ngx_http_passkey_redis_conn_t *conn);
static void ngx_http_passkey_redis_connect_failed(
    ngx_http_passkey_redis_conn_t *conn);
static void ngx_http_passkey_redis_connect_handler(
    const redisAsyncContext *ac, int status);
static void ngx_http_passkey_redis_disconnect_handler(
    const redisAsyncContext *ac, int status);
static void ngx_http_passkey_redis_setup_handler(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_passkey_redis_reply_handler(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_passkey_redis_timeout_handler(ngx_event_t *ev);
static void ngx_http_passkey_redis_fail_handler(ngx_event_t *ev);
static void ngx_http_passkey_redis_deliver(ngx_http_passkey_redis_op_t *op,
    ngx_http_passkey_redis_result_e result, redisReply *reply);
static ngx_int_t ngx_http_passkey_redis_copy_reply(
    ngx_http_passkey_redis_op_t *op, redisReply *reply);
static ngx_int_t ngx_http_passkey_redis_copy_element(ngx_pool_t *pool,
    ngx_str_t *dst, redisReply *reply);
static ngx_int_t ngx_http_passkey_redis_copy_str(ngx_pool_t *pool,
    ngx_str_t *dst, u_char *src, size_t len);
static ngx_int_t ngx_http_passkey_redis_check_verb(ngx_str_t *verb);

static void ngx_http_passkey_redis_read_handler(ngx_event_t *rev);
static void ngx_http_passkey_redis_write_handler(ngx_event_t *wev);
static void ngx_http_passkey_redis_cleanup(void *privdata);


/*
 * Commands that switch the connection into a mode where replies no longer
 * match callbacks one to one; hiredis asserts on them in a shared context.
 */

static ngx_str_t  ngx_http_passkey_redis_unsupported[] = {
    ngx_string("subscribe"),
    ngx_string("psubscribe"),
    ngx_string("unsubscribe"),
    ngx_string("punsubscribe"),
    ngx_string("monitor"),
    ngx_null_string
};


ngx_int_t
ngx_http_passkey_redis_init_process(ngx_cycle_t *cycle, ngx_array_t *servers)
{
    ngx_uint_t                         i;
    ngx_http_passkey_redis_conn_t     *conn;
    ngx_http_passkey_redis_server_t  **server;

    if (servers == NULL) {
        return NGX_OK;
    }

    server = servers->elts;

    for (i = 0; i < servers->nelts; i++) {
        conn = ngx_pcalloc(cycle->pool, sizeof(ngx_http_passkey_redis_conn_t));
        if (conn == NULL) {
            return NGX_ERROR;
        }

        /*
         * set by ngx_pcalloc():
         *
         *     conn->ac = NULL;
         *     conn->failed = 0;
         *     conn->backoff = 0;
         *     conn->exiting = 0;
         */

        conn->server = server[i];
        conn->log = cycle->log;
        conn->dummy.fd = (ngx_socket_t) -1;
        ngx_queue_init(&conn->failing);

        /* connected lazily by the first send(): Redis may start later */

        server[i]->conn = conn;
    }

    return NGX_OK;
}


void
ngx_http_passkey_redis_exit_process(ngx_cycle_t *cycle, ngx_array_t *servers)
{
    ngx_uint_t                         i;
    ngx_queue_t                       *q;
    redisAsyncContext                 *ac;
    ngx_http_passkey_redis_link_t     *link;
    ngx_http_passkey_redis_conn_t     *conn;
    ngx_http_passkey_redis_server_t  **server;

    if (servers == NULL) {
        return;
    }

    server = servers->elts;

    for (i = 0; i < servers->nelts; i++) {
        conn = server[i]->conn;
        if (conn == NULL) {
            continue;
        }

        /*
         * Requests still waiting are torn down with the process: the
         * flush below frees their links without running any handler.
         */

        conn->exiting = 1;

        if (conn->ac != NULL) {
            ac = conn->ac;
            conn->ac = NULL;
            redisAsyncFree(ac);
        }

        while (!ngx_queue_empty(&conn->failing)) {
            q = ngx_queue_head(&conn->failing);
            link = ngx_queue_data(q, ngx_http_passkey_redis_link_t, queue);

            ngx_queue_remove(q);

            if (link->ev.posted) {
                ngx_delete_posted_event(&link->ev);
            }

            if (link->op != NULL) {
                link->op->priv = NULL;
            }

            ngx_free(link);
        }

        server[i]->conn = NULL;
    }
}


ngx_int_t
ngx_http_passkey_redis_send(ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_op_t *op, ngx_uint_t argc, ngx_str_t *argv)
{
    size_t                         *lens;
    ngx_uint_t                      i;
    ngx_msec_t                      timeout;
    const char                    **args;
    redisAsyncContext              *ac;
    ngx_http_passkey_redis_link_t  *link;
    ngx_http_passkey_redis_conn_t  *conn;

    conn = server->conn;

    if (conn == NULL || conn->exiting) {
        ngx_log_error(NGX_LOG_ALERT, op->log, 0,
                      "passkey redis \"%V\" is not initialized",
                      &server->name);
        return NGX_ERROR;
    }

    if (argc == 0 || ngx_http_passkey_redis_check_verb(&argv[0]) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, op->log, 0,
                      "passkey redis command not supported");
        return NGX_ERROR;
    }

    if (op->priv != NULL) {
        /* a second link would make the handler run twice */
        ngx_log_error(NGX_LOG_ALERT, op->log, 0,
                      "passkey redis op is still pending");
        return NGX_ERROR;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "passkey redis send \"%*s\" to \"%V\"",
                   ngx_min(argv[0].len, 32), argv[0].data, &server->name);

    link = ngx_calloc(sizeof(ngx_http_passkey_redis_link_t), op->log);
    if (link == NULL) {
        return NGX_ERROR;
    }

    link->op = op;
    link->conn = conn;
    link->ev.data = &conn->dummy;
    link->ev.log = conn->log;

    ac = conn->ac;

    if (ac != NULL && (ac->c.flags & (REDIS_DISCONNECTING|REDIS_FREEING))) {

        /*
         * We are called back from the flush of a dying connection;
         * hiredis refuses new commands on it, so leave it to die.
         */

        conn->ac = NULL;
        ac = NULL;
    }

    if (ac == NULL) {
        ac = ngx_http_passkey_redis_connect(conn);
    }

    if (ac == NULL) {

        /*
         * The handler must not run inside send(): report UNAVAILABLE from
         * a posted event, so callers have one path for every outcome.
         */

        link->ev.handler = ngx_http_passkey_redis_fail_handler;
        ngx_post_event(&link->ev, &ngx_posted_events);
        ngx_queue_insert_tail(&conn->failing, &link->queue);

        op->priv = link;

        return NGX_OK;
    }

    args = ngx_alloc(argc * (sizeof(char *) + sizeof(size_t)), op->log);
    if (args == NULL) {
        ngx_free(link);
        return NGX_ERROR;
    }

    lens = (size_t *) (args + argc);

    for (i = 0; i < argc; i++) {
        args[i] = argv[i].data ? (const char *) argv[i].data : "";
        lens[i] = argv[i].len;
    }

    if (redisAsyncCommandArgv(ac, ngx_http_passkey_redis_reply_handler, link,
                              (int) argc, args, lens)
        != REDIS_OK)
    {
        ngx_log_error(NGX_LOG_ERR, op->log, 0,
                      "passkey redis cannot queue a command for \"%V\"",
                      &server->name);
        ngx_free(args);
        ngx_free(link);
        return NGX_ERROR;
    }

    ngx_free(args);

    link->ac = ac;
    link->ev.handler = ngx_http_passkey_redis_timeout_handler;

    /*
     * The deadline timer is not cancelable on purpose: a worker that is
     * shutting down gracefully then waits for the reply.
     */

    timeout = op->timeout ? op->timeout
                          : NGX_HTTP_PASSKEY_REDIS_DEFAULT_TIMEOUT;

    ngx_add_timer(&link->ev, timeout);

    op->priv = link;

    return NGX_OK;
}


void
ngx_http_passkey_redis_cancel(ngx_http_passkey_redis_op_t *op)
{
    ngx_http_passkey_redis_link_t  *link;

    link = op->priv;
    if (link == NULL) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "passkey redis cancel");

    op->priv = NULL;
    link->op = NULL;

    if (link->ev.timer_set) {
        ngx_del_timer(&link->ev);
    }

    if (link->ac == NULL) {

        /* failing fast: hiredis never saw this link, nobody else frees it */

        if (link->ev.posted) {
            ngx_delete_posted_event(&link->ev);
        }

        ngx_queue_remove(&link->queue);
        ngx_free(link);
    }

    /* otherwise hiredis still holds the link and frees it on callback */
}


static redisAsyncContext *
ngx_http_passkey_redis_connect(ngx_http_passkey_redis_conn_t *conn)
{
    size_t                            lens[2];
    u_char                           *p;
    u_char                            db[NGX_INT_T_LEN];
    const char                       *args[2];
    ngx_connection_t                 *c;
    redisAsyncContext                *ac;
    ngx_http_passkey_redis_server_t  *server;

    server = conn->server;

    if (conn->backoff
        && (ngx_msec_int_t) (ngx_current_msec - conn->failed)
           < (ngx_msec_int_t) conn->backoff)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->log, 0,
                       "passkey redis \"%V\" in connect backoff",
                       &server->name);
        return NULL;
    }

    /* numeric host or unix path only: hiredis resolves names blocking */

    if (server->path.len) {
        ac = redisAsyncConnectUnix((const char *) server->path.data);

    } else {
        ac = redisAsyncConnect((const char *) server->host.data,
                               (int) server->port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ALERT, conn->log, 0,
                      "passkey redis connect to \"%V\" failed: "
                      "out of memory", &server->name);
        ngx_http_passkey_redis_connect_failed(conn);
        return NULL;
    }

    if (ac->err) {
        /* refused at once, e.g. on loopback or a missing unix socket */

        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "passkey redis connect to \"%V\" failed: %s",
                      &server->name, ac->c.errstr);
        redisAsyncFree(ac);
        ngx_http_passkey_redis_connect_failed(conn);
        return NULL;
    }

    c = ngx_http_passkey_watch_open(ac->c.fd, ac, conn->log,
                                    ngx_http_passkey_redis_read_handler,
                                    ngx_http_passkey_redis_write_handler);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_http_passkey_redis_connect_failed(conn);
        return NULL;
    }

    ac->data = conn;
    ac->ev.data = c;
    ac->ev.addRead = ngx_http_passkey_watch_read_on;
    ac->ev.delRead = ngx_http_passkey_watch_read_off;
    ac->ev.addWrite = ngx_http_passkey_watch_write_on;
    ac->ev.delWrite = ngx_http_passkey_watch_write_off;
    ac->ev.cleanup = ngx_http_passkey_redis_cleanup;

    /* the hooks must be in place: this one registers the write event */

    redisAsyncSetConnectCallback(ac, ngx_http_passkey_redis_connect_handler);
    redisAsyncSetDisconnectCallback(ac,
                                    ngx_http_passkey_redis_disconnect_handler);

    /*
     * hiredis buffers commands until the connect completes and replies
     * come in order, so AUTH and SELECT queued here precede the command.
     */

    if (server->password.len) {
        args[0] = "AUTH";
        lens[0] = sizeof("AUTH") - 1;
        args[1] = (const char *) server->password.data;
        lens[1] = server->password.len;

        if (redisAsyncCommandArgv(ac, ngx_http_passkey_redis_setup_handler,
                                  "AUTH", 2, args, lens)
            != REDIS_OK)
        {
            goto failed;
        }
    }

    if (server->database) {
        p = ngx_sprintf(db, "%i", server->database);

        args[0] = "SELECT";
        lens[0] = sizeof("SELECT") - 1;
        args[1] = (const char *) db;
        lens[1] = p - db;

        if (redisAsyncCommandArgv(ac, ngx_http_passkey_redis_setup_handler,
                                  "SELECT", 2, args, lens)
            != REDIS_OK)
        {
            goto failed;
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->log, 0,
                   "passkey redis connecting to \"%V\"", &server->name);

    conn->ac = ac;

    return ac;

failed:

    ngx_log_error(NGX_LOG_ALERT, conn->log, 0,
                  "passkey redis cannot queue setup for \"%V\"",
                  &server->name);

    /* nothing of ours is queued with a link yet: safe to free here */

    redisAsyncFree(ac);

    return NULL;
}


static void
ngx_http_passkey_redis_connect_failed(ngx_http_passkey_redis_conn_t *conn)
{
    conn->failed = ngx_current_msec;

    if (conn->backoff == 0) {
        conn->backoff = NGX_HTTP_PASSKEY_REDIS_BACKOFF_MIN;

    } else {
        conn->backoff = ngx_min(conn->backoff * 2,
                                NGX_HTTP_PASSKEY_REDIS_BACKOFF_MAX);
    }
}


static void
ngx_http_passkey_redis_connect_handler(const redisAsyncContext *ac,
    int status)
{
    ngx_http_passkey_redis_conn_t  *conn;

    conn = ac->data;

    if (status == REDIS_OK) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->log, 0,
                       "passkey redis connected to \"%V\"",
                       &conn->server->name);
        return;
    }

    /*
     * hiredis next flushes the pending callbacks with NULL replies (their
     * ops get UNAVAILABLE) and frees the context; it does not call the
     * disconnect callback for a connection that never came up.  Handlers
     * that send again from the flush then meet the backoff.
     */

    ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                  "passkey redis connect to \"%V\" failed: %s",
                  &conn->server->name, ac->c.errstr);

    if (conn->ac == ac) {
        conn->ac = NULL;
    }

    ngx_http_passkey_redis_connect_failed(conn);
}


static void
ngx_http_passkey_redis_disconnect_handler(const redisAsyncContext *ac,
    int status)
{
    ngx_http_passkey_redis_conn_t  *conn;

    conn = ac->data;

    /* another connection may already have replaced this one */

    if (conn->ac == ac) {
        conn->ac = NULL;
    }

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "passkey redis connection to \"%V\" lost: %s",
                      &conn->server->name, ac->c.errstr);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->log, 0,
                   "passkey redis disconnected from \"%V\"",
                   &conn->server->name);
}


static void
ngx_http_passkey_redis_setup_handler(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                     *reply;
    ngx_http_passkey_redis_conn_t  *conn;

    reply = r;

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
        return;
    }

    conn = ac->data;

    /* Redis error texts for AUTH do not echo the password */

    ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                  "passkey redis %s on \"%V\" failed: %*s",
                  (char *) privdata, &conn->server->name,
                  reply->len, reply->str);

    if (conn->ac == ac) {
        conn->ac = NULL;
    }

    ngx_http_passkey_redis_connect_failed(conn);

    /*
     * The commands behind AUTH would only get NOAUTH errors; fail them as
     * UNAVAILABLE instead.  Inside a callback hiredis defers the free
     * until the callback has returned, then flushes the rest.
     */

    redisAsyncFree(ac);
}


static void
ngx_http_passkey_redis_reply_handler(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                     *reply;
    ngx_http_passkey_redis_op_t    *op;
    ngx_http_passkey_redis_link_t  *link;
    ngx_http_passkey_redis_conn_t  *conn;

    reply = r;
    link = privdata;
    op = link->op;
    conn = link->conn;

    if (link->ev.timer_set) {
        ngx_del_timer(&link->ev);
    }

    ngx_free(link);

    if (reply != NULL) {
        /* the server is answering: the next failure starts a new backoff */
        conn->backoff = 0;
    }

    if (op == NULL) {
        /* cancelled or timed out: drop the reply */
        return;
    }

    op->priv = NULL;

    if (reply == NULL && conn->exiting) {
        /* the worker exits: the owner will never look again */
        return;
    }

    /*
     * The handler may send the next command (hiredis accepts it while in
     * a callback) or cancel other ops; the link is already gone.
     */

    ngx_http_passkey_redis_deliver(op,
                                   reply ? NGX_HTTP_PASSKEY_REDIS_OK
                                         : NGX_HTTP_PASSKEY_REDIS_UNAVAILABLE,
                                   reply);
}


static void
ngx_http_passkey_redis_timeout_handler(ngx_event_t *ev)
{
    redisAsyncContext              *ac;
    ngx_http_passkey_redis_op_t    *op;
    ngx_http_passkey_redis_link_t  *link;
    ngx_http_passkey_redis_conn_t  *conn;

    link = (ngx_http_passkey_redis_link_t *)
               ((u_char *) ev - offsetof(ngx_http_passkey_redis_link_t, ev));

    op = link->op;
    conn = link->conn;
    ac = link->ac;

    ngx_log_error(NGX_LOG_ERR, op ? op->log : conn->log, 0,
                  "passkey redis \"%V\" timed out", &conn->server->name);

    /*
     * The server hangs: give up on the connection.  Detach it first so
     * that a handler sending again opens a new one.
     */

    if (conn->ac == ac) {
        conn->ac = NULL;
    }

    /* the flush below frees the link; it must not deliver again */

    link->op = NULL;

    if (op != NULL) {
        op->priv = NULL;

        /*
         * Deliver before the flush: the flushed handlers may finalize the
         * request that owns this op.
         */

        ngx_http_passkey_redis_deliver(op, NGX_HTTP_PASSKEY_REDIS_TIMEOUT,
                                       NULL);
    }

    /*
     * Not redisAsyncDisconnect(): outside a callback, with replies
     * pending, it waits for them, which a hung server never sends.
     * redisAsyncFree() flushes the pending callbacks with NULL replies
     * (UNAVAILABLE) at once.  We are in a timer, not in a hiredis callback.
     */

    redisAsyncFree(ac);
}


static void
ngx_http_passkey_redis_fail_handler(ngx_event_t *ev)
{
    ngx_http_passkey_redis_op_t    *op;
    ngx_http_passkey_redis_link_t  *link;

    link = (ngx_http_passkey_redis_link_t *)
               ((u_char *) ev - offsetof(ngx_http_passkey_redis_link_t, ev));

    op = link->op;

    ngx_queue_remove(&link->queue);
    ngx_free(link);

    if (op == NULL) {
        return;
    }

    op->priv = NULL;

    ngx_http_passkey_redis_deliver(op, NGX_HTTP_PASSKEY_REDIS_UNAVAILABLE,
                                   NULL);
}


static void
ngx_http_passkey_redis_deliver(ngx_http_passkey_redis_op_t *op,
    ngx_http_passkey_redis_result_e result, redisReply *reply)
{
    op->result = result;
    op->type = NGX_HTTP_PASSKEY_REDIS_NIL;
    ngx_str_null(&op->str);
    op->integer = 0;
    op->elements = NULL;

    if (reply != NULL
        && ngx_http_passkey_redis_copy_reply(op, reply) != NGX_OK)
    {
        op->result = NGX_HTTP_PASSKEY_REDIS_UNAVAILABLE;
        op->type = NGX_HTTP_PASSKEY_REDIS_NIL;
        ngx_str_null(&op->str);
        op->elements = NULL;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "passkey redis result:%d type:%d",
                   (int) op->result, (int) op->type);

    op->handler(op);
}


static ngx_int_t
ngx_http_passkey_redis_copy_reply(ngx_http_passkey_redis_op_t *op,
    redisReply *reply)
{
    size_t      i;
    ngx_str_t  *s;

    switch (reply->type) {

    case REDIS_REPLY_STRING:
        op->type = NGX_HTTP_PASSKEY_REDIS_STRING;
        break;

    case REDIS_REPLY_STATUS:
        op->type = NGX_HTTP_PASSKEY_REDIS_STATUS;
        break;

    case REDIS_REPLY_ERROR:
        /* the server answered: result stays OK */
        op->type = NGX_HTTP_PASSKEY_REDIS_ERROR;
        break;

    case REDIS_REPLY_INTEGER:
        op->type = NGX_HTTP_PASSKEY_REDIS_INTEGER;
        op->integer = (ngx_int_t) reply->integer;
        return NGX_OK;

    case REDIS_REPLY_NIL:
        op->type = NGX_HTTP_PASSKEY_REDIS_NIL;
        return NGX_OK;

    case REDIS_REPLY_ARRAY:
        op->type = NGX_HTTP_PASSKEY_REDIS_ARRAY;

        op->elements = ngx_array_create(op->pool,
                                        reply->elements ? reply->elements : 1,
                                        sizeof(ngx_str_t));
        if (op->elements == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < reply->elements; i++) {
            s = ngx_array_push(op->elements);
            if (s == NULL) {
                return NGX_ERROR;
            }

            if (ngx_http_passkey_redis_copy_element(op->pool, s,
                                                    reply->element[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        return NGX_OK;

    default:
        ngx_log_error(NGX_LOG_ALERT, op->log, 0,
                      "passkey redis unknown reply type %d", reply->type);
        return NGX_ERROR;
    }

    return ngx_http_passkey_redis_copy_str(op->pool, &op->str,
                                           (u_char *) reply->str, reply->len);
}


static ngx_int_t
ngx_http_passkey_redis_copy_element(ngx_pool_t *pool, ngx_str_t *dst,
    redisReply *reply)
{
    u_char  *p;

    switch (reply->type) {

    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        return ngx_http_passkey_redis_copy_str(pool, dst,
                                               (u_char *) reply->str,
                                               reply->len);

    case REDIS_REPLY_INTEGER:
        dst->data = ngx_pnalloc(pool, NGX_INT64_LEN + 1);
        if (dst->data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_sprintf(dst->data, "%L", (int64_t) reply->integer);
        *p = '\0';
        dst->len = p - dst->data;

        return NGX_OK;

    default:
        /* nil, and nested arrays, which callers of this API never use */
        dst->len = 0;
        dst->data = (u_char *) "";
        return NGX_OK;
    }
}


static ngx_int_t
ngx_http_passkey_redis_copy_str(ngx_pool_t *pool, ngx_str_t *dst, u_char *src,
    size_t len)
{
    u_char  *p;

    /* null-terminated for convenience; len does not count the '\0' */

    p = ngx_pnalloc(pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (len) {
        ngx_memcpy(p, src, len);
    }

    p[len] = '\0';

    dst->len = len;
    dst->data = p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_passkey_redis_check_verb(ngx_str_t *verb)
{
    ngx_str_t  *f;

    for (f = ngx_http_passkey_redis_unsupported; f->len; f++) {
        if (verb->len == f->len
            && ngx_strncasecmp(verb->data, f->data, f->len) == 0)
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static void
ngx_http_passkey_redis_read_handler(ngx_event_t *rev)
{
    ngx_connection_t  *c;

    c = rev->data;

    /* may free the context and c; touch neither afterwards */

    redisAsyncHandleRead(c->data);
}


static void
ngx_http_passkey_redis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t  *c;

    c = wev->data;

    redisAsyncHandleWrite(c->data);
}


static void
ngx_http_passkey_redis_cleanup(void *privdata)
{
    ngx_connection_t   *c;
    redisAsyncContext  *ac;

    c = privdata;
    ac = c->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "passkey redis cleanup fd:%d", c->fd);

    /* c goes back to the free list: no hook may reach it any more */

    ac->ev.data = NULL;
    ac->ev.addRead = NULL;
    ac->ev.delRead = NULL;
    ac->ev.addWrite = NULL;
    ac->ev.delWrite = NULL;
    ac->ev.cleanup = NULL;

    /* redisFree() closes the fd right after: remove the events for real */

    ngx_http_passkey_watch_close(c, 0);
}

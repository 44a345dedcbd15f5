
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_passkey_redis.h"


/*
 * Redis on nginx's own connections.
 *
 * Each worker keeps one lazily opened connection per configured server,
 * made with ngx_event_connect_peer() and read and written by nginx's
 * c->recv and c->send.  Commands are formatted into the connection's
 * output buffer (ngx_http_passkey_resp.c) and sent from a posted write
 * event, so that the commands of one event loop iteration leave in one
 * write: a bind's guard script and its identity GET, for one.  Replies
 * come in order; each one goes to the "link" at the head of the waiting
 * queue.
 *
 * A link stands between the connection and the op: the op's owner may go
 * (cancel) while its reply is still to come, and the reply must still be
 * read off the connection.  op->priv and link->op point at each other and
 * cancel() breaks both; a link without an op only drops its reply.  The
 * connection's own commands (AUTH, SELECT) are links without an op whose
 * error reply ends the connection.
 *
 * Each link carries its op's deadline, an nginx timer, not cancelable, so
 * that a gracefully exiting worker waits for the reply.  A deadline that
 * passes gives up on the connection: the server hangs.
 */


#define NGX_HTTP_PASSKEY_REDIS_DEFAULT_TIMEOUT  5000
#define NGX_HTTP_PASSKEY_REDIS_BACKOFF_MIN      100
#define NGX_HTTP_PASSKEY_REDIS_BACKOFF_MAX      1000
#define NGX_HTTP_PASSKEY_REDIS_READ_SIZE        16384


typedef struct {
    ngx_http_passkey_redis_server_t  *server;
    ngx_log_t                        *log;

    /* a name being resolved, then the address to connect to */
    ngx_resolver_ctx_t               *resolving;
    ngx_sockaddr_t                    sockaddr;
    socklen_t                         socklen;
    ngx_uint_t                        next;      /* of the name's addresses */

    ngx_peer_connection_t             peer;
    void                             *reader;
    ngx_http_passkey_resp_buf_t       out;

    /* links waiting for replies, in the order their commands went out */
    ngx_queue_t                       waiting;

    /* links failing fast: their failure is a posted event */
    ngx_queue_t                       failing;

    /* while a connect failed less than "backoff" ms ago, fail fast */
    ngx_msec_t                        failed;
    ngx_msec_t                        backoff;

    /* timer events need ev->data with fd -1 in --with-debug builds */
    ngx_connection_t                  dummy;

    unsigned                          active:1;     /* resolving and on */
    unsigned                          connected:1;
    unsigned                          exiting:1;

    /* a failure inside send() is reported by send(), not delivered */
    unsigned                          in_send:1;
    unsigned                          early_error:1;
} ngx_http_passkey_redis_conn_t;


typedef struct {
    ngx_http_passkey_redis_op_t      *op;       /* NULL: owner is gone */
    ngx_http_passkey_redis_conn_t    *conn;
    const char                       *setup;    /* "AUTH", "SELECT" */
    ngx_event_t                       ev;       /* deadline or failure */
    ngx_queue_t                       queue;    /* waiting or failing */
} ngx_http_passkey_redis_link_t;


static ngx_int_t ngx_http_passkey_redis_connect(
    ngx_http_passkey_redis_conn_t *conn);
static void ngx_http_passkey_redis_resolve(
    ngx_http_passkey_redis_conn_t *conn);
static void ngx_http_passkey_redis_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_http_passkey_redis_open(ngx_http_passkey_redis_conn_t *conn,
    struct sockaddr *sockaddr, socklen_t socklen);
static void ngx_http_passkey_redis_failed(
    ngx_http_passkey_redis_conn_t *conn);
static ngx_int_t ngx_http_passkey_redis_setup(
    ngx_http_passkey_redis_conn_t *conn, const char *what,
    ngx_uint_t argc, ngx_str_t *argv);
static void ngx_http_passkey_redis_backoff(
    ngx_http_passkey_redis_conn_t *conn);
static void ngx_http_passkey_redis_write_handler(ngx_event_t *wev);
static void ngx_http_passkey_redis_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_http_passkey_redis_replies(
    ngx_http_passkey_redis_conn_t *conn);
static ngx_int_t ngx_http_passkey_redis_connected(
    ngx_http_passkey_redis_conn_t *conn);
static void ngx_http_passkey_redis_close(ngx_http_passkey_redis_conn_t *conn);
static void ngx_http_passkey_redis_timeout_handler(ngx_event_t *ev);
static void ngx_http_passkey_redis_fail_handler(ngx_event_t *ev);
static void ngx_http_passkey_redis_deliver(ngx_http_passkey_redis_op_t *op,
    ngx_http_passkey_redis_result_e result);
static ngx_int_t ngx_http_passkey_redis_check_verb(ngx_str_t *verb);


/*
 * Commands that switch the connection into a mode where replies no longer
 * match commands one to one.
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
         *     conn->peer.connection = NULL;
         *     conn->reader = NULL;
         *     conn->out = { NULL };
         *     conn->failed = 0;
         *     conn->backoff = 0;
         *     conn->connected = 0;
         *     conn->exiting = 0;
         */

        conn->server = server[i];
        conn->log = cycle->log;
        conn->dummy.fd = (ngx_socket_t) -1;
        ngx_queue_init(&conn->waiting);
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

        /* what still waits is torn down with the process, unanswered */

        conn->exiting = 1;

        ngx_http_passkey_redis_close(conn);

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

        if (conn->out.start != NULL) {
            ngx_free(conn->out.start);
        }

        server[i]->conn = NULL;
    }
}


ngx_int_t
ngx_http_passkey_redis_send(ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_op_t *op, ngx_uint_t argc, ngx_str_t *argv)
{
    ngx_int_t                       rc;
    ngx_msec_t                      timeout;
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

    rc = NGX_OK;

    if (!conn->active) {
        rc = ngx_http_passkey_redis_connect(conn);
    }

    if (rc == NGX_DECLINED) {

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

    if (rc != NGX_OK
        || ngx_http_passkey_resp_command(&conn->out, argc, argv, op->log)
           != NGX_OK)
    {
        ngx_free(link);
        return NGX_ERROR;
    }

    ngx_queue_insert_tail(&conn->waiting, &link->queue);

    link->ev.handler = ngx_http_passkey_redis_timeout_handler;

    timeout = op->timeout ? op->timeout
                          : NGX_HTTP_PASSKEY_REDIS_DEFAULT_TIMEOUT;

    ngx_add_timer(&link->ev, timeout);

    op->priv = link;

    /* the commands of this iteration leave together, from the event */

    if (conn->connected && !conn->peer.connection->write->posted) {
        ngx_post_event(conn->peer.connection->write, &ngx_posted_events);
    }

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

    if (link->ev.handler == ngx_http_passkey_redis_fail_handler) {

        /* failing fast: nothing was sent for it */

        if (link->ev.posted) {
            ngx_delete_posted_event(&link->ev);
        }

        ngx_queue_remove(&link->queue);
        ngx_free(link);
    }

    /* otherwise the link stays in line for its reply, and drops it */
}


/*
 * NGX_OK: a connection is being made (its name resolved, or connect()
 * under way), its AUTH and SELECT queued first; NGX_DECLINED: none can be
 * made now (backoff, a failure at once); NGX_ERROR: out of memory.
 */

static ngx_int_t
ngx_http_passkey_redis_connect(ngx_http_passkey_redis_conn_t *conn)
{
    u_char                           *p;
    u_char                            db[NGX_INT_T_LEN];
    ngx_str_t                         argv[2];
    ngx_http_passkey_redis_server_t  *server;

    server = conn->server;

    if (conn->backoff
        && (ngx_msec_int_t) (ngx_current_msec - conn->failed)
           < (ngx_msec_int_t) conn->backoff)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->log, 0,
                       "passkey redis \"%V\" in connect backoff",
                       &server->name);
        return NGX_DECLINED;
    }

    conn->active = 1;

    conn->reader = ngx_http_passkey_resp_reader();
    if (conn->reader == NULL) {
        goto failed;
    }

    /* replies come in order, so AUTH and SELECT precede the command */

    if (server->password.len) {
        ngx_str_set(&argv[0], "AUTH");
        argv[1] = server->password;

        if (ngx_http_passkey_redis_setup(conn, "AUTH", 2, argv) != NGX_OK) {
            goto failed;
        }
    }

    if (server->database) {
        p = ngx_sprintf(db, "%i", server->database);

        ngx_str_set(&argv[0], "SELECT");
        argv[1].data = db;
        argv[1].len = p - db;

        if (ngx_http_passkey_redis_setup(conn, "SELECT", 2, argv) != NGX_OK) {
            goto failed;
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->log, 0,
                   "passkey redis connecting to \"%V\"", &server->name);

    /* a cached name or a refused connect() may fail at once, in here */

    conn->in_send = 1;
    conn->early_error = 0;

    if (server->host.len) {
        ngx_http_passkey_redis_resolve(conn);

    } else {
        ngx_http_passkey_redis_open(conn, server->addr.sockaddr,
                                    server->addr.socklen);
    }

    conn->in_send = 0;

    if (conn->early_error) {

        /* nothing but AUTH and SELECT waits: no op is told */

        ngx_http_passkey_redis_close(conn);
        return NGX_DECLINED;
    }

    return NGX_OK;

failed:

    ngx_http_passkey_redis_close(conn);

    return NGX_ERROR;
}


/* through nginx's resolver, which caches names for their TTL */

static void
ngx_http_passkey_redis_resolve(ngx_http_passkey_redis_conn_t *conn)
{
    ngx_resolver_ctx_t               *ctx;
    ngx_http_passkey_redis_server_t  *server;

    server = conn->server;

    ctx = ngx_resolve_start(server->resolver, NULL);

    if (ctx == NULL) {
        ngx_http_passkey_redis_failed(conn);
        return;
    }

    if (ctx == NGX_NO_RESOLVER) {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "passkey redis \"%V\": no resolver defined to "
                      "resolve %V", &server->name, &server->host);
        ngx_http_passkey_redis_failed(conn);
        return;
    }

    ctx->name = server->host;
    ctx->handler = ngx_http_passkey_redis_resolved;
    ctx->data = conn;
    ctx->timeout = server->resolver_timeout;

    conn->resolving = ctx;

    if (ngx_resolve_name(ctx) != NGX_OK) {
        conn->resolving = NULL;
        ngx_http_passkey_redis_failed(conn);
    }
}


static void
ngx_http_passkey_redis_resolved(ngx_resolver_ctx_t *ctx)
{
    ngx_uint_t                        i;
    ngx_http_passkey_redis_conn_t    *conn;
    ngx_http_passkey_redis_server_t  *server;

    conn = ctx->data;
    server = conn->server;

    conn->resolving = NULL;

    if (ctx->state || ctx->naddrs == 0) {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "passkey redis \"%V\": %V could not be resolved "
                      "(%i: %s)", &server->name, &ctx->name, ctx->state,
                      ngx_resolver_strerror(ctx->state));

        ngx_resolve_name_done(ctx);
        ngx_http_passkey_redis_failed(conn);
        return;
    }

    /* the name's addresses in turn, one per new connection */

    i = conn->next++ % ctx->naddrs;

    ngx_memcpy(&conn->sockaddr, ctx->addrs[i].sockaddr, ctx->addrs[i].socklen);
    conn->socklen = ctx->addrs[i].socklen;

    ngx_inet_set_port(&conn->sockaddr.sockaddr, server->port);

    ngx_resolve_name_done(ctx);

    ngx_http_passkey_redis_open(conn, &conn->sockaddr.sockaddr, conn->socklen);
}


static void
ngx_http_passkey_redis_open(ngx_http_passkey_redis_conn_t *conn,
    struct sockaddr *sockaddr, socklen_t socklen)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    ngx_memzero(&conn->peer, sizeof(ngx_peer_connection_t));

    conn->peer.sockaddr = sockaddr;
    conn->peer.socklen = socklen;
    conn->peer.name = &conn->server->name;
    conn->peer.get = ngx_event_get_peer;
    conn->peer.log = conn->log;
    conn->peer.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&conn->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {

        /* nginx logged why, naming the address */

        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "passkey redis connect to \"%V\" failed",
                      &conn->server->name);

        if (conn->peer.connection != NULL) {
            ngx_close_connection(conn->peer.connection);
            conn->peer.connection = NULL;
        }

        ngx_http_passkey_redis_failed(conn);
        return;
    }

    c = conn->peer.connection;

    c->data = conn;
    c->read->handler = ngx_http_passkey_redis_read_handler;
    c->write->handler = ngx_http_passkey_redis_write_handler;

    if (rc == NGX_OK) {
        conn->connected = 1;
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


/* the connection could not be made: the backoff starts */

static void
ngx_http_passkey_redis_failed(ngx_http_passkey_redis_conn_t *conn)
{
    ngx_http_passkey_redis_backoff(conn);

    if (conn->in_send) {
        conn->early_error = 1;
        return;
    }

    ngx_http_passkey_redis_close(conn);
}


static ngx_int_t
ngx_http_passkey_redis_setup(ngx_http_passkey_redis_conn_t *conn,
    const char *what, ngx_uint_t argc, ngx_str_t *argv)
{
    ngx_http_passkey_redis_link_t  *link;

    link = ngx_calloc(sizeof(ngx_http_passkey_redis_link_t), conn->log);
    if (link == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_passkey_resp_command(&conn->out, argc, argv, conn->log)
        != NGX_OK)
    {
        ngx_free(link);
        return NGX_ERROR;
    }

    /* no deadline of its own: the op behind it has one */

    link->conn = conn;
    link->setup = what;
    link->ev.data = &conn->dummy;
    link->ev.log = conn->log;

    ngx_queue_insert_tail(&conn->waiting, &link->queue);

    return NGX_OK;
}


static void
ngx_http_passkey_redis_backoff(ngx_http_passkey_redis_conn_t *conn)
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
ngx_http_passkey_redis_write_handler(ngx_event_t *wev)
{
    ssize_t                         n;
    ngx_connection_t               *c;
    ngx_http_passkey_redis_conn_t  *conn;

    c = wev->data;
    conn = c->data;

    if (!conn->connected && ngx_http_passkey_redis_connected(conn) != NGX_OK) {
        return;
    }

    while (conn->out.pos < conn->out.last) {

        n = c->send(c, conn->out.pos, conn->out.last - conn->out.pos);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis connection to \"%V\" lost while "
                          "sending", &conn->server->name);
            ngx_http_passkey_redis_close(conn);
            return;
        }

        conn->out.pos += n;
    }

    if (conn->out.pos == conn->out.last) {
        conn->out.pos = conn->out.start;
        conn->out.last = conn->out.start;
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_http_passkey_redis_close(conn);
    }
}


/* the outcome of a non-blocking connect(), at its first event */

static ngx_int_t
ngx_http_passkey_redis_connected(ngx_http_passkey_redis_conn_t *conn)
{
    int                err;
    socklen_t          len;
    ngx_connection_t  *c;

    c = conn->peer.connection;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        ngx_log_error(NGX_LOG_ERR, conn->log, err,
                      "passkey redis connect to \"%V\" failed",
                      &conn->server->name);

        ngx_http_passkey_redis_failed(conn);
        return NGX_ERROR;
    }

    conn->connected = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->log, 0,
                   "passkey redis connected to \"%V\"", &conn->server->name);

    /* what was queued while connecting */

    if (conn->out.pos < conn->out.last && !c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }

    return NGX_OK;
}


static void
ngx_http_passkey_redis_read_handler(ngx_event_t *rev)
{
    ssize_t                         n;
    ngx_connection_t               *c;
    ngx_http_passkey_redis_conn_t  *conn;
    u_char                          buf[NGX_HTTP_PASSKEY_REDIS_READ_SIZE];

    c = rev->data;
    conn = c->data;

    if (!conn->connected && ngx_http_passkey_redis_connected(conn) != NGX_OK) {
        return;
    }

    /* until the socket is dry: epoll reports edges */

    for ( ;; ) {

        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis connection to \"%V\" %s",
                          &conn->server->name,
                          n == 0 ? "closed by the server" : "lost");

            ngx_http_passkey_redis_close(conn);
            return;
        }

        if (ngx_http_passkey_resp_feed(conn->reader, buf, n) != NGX_OK) {
            ngx_http_passkey_redis_close(conn);
            return;
        }

        /* the handlers run from here may have closed the connection */

        if (ngx_http_passkey_redis_replies(conn) != NGX_OK
            || conn->peer.connection != c)
        {
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_passkey_redis_close(conn);
    }
}


/* NGX_OK while the connection stays open */

static ngx_int_t
ngx_http_passkey_redis_replies(ngx_http_passkey_redis_conn_t *conn)
{
    u_char                          text[128];
    ngx_int_t                       rc;
    ngx_str_t                       error;
    ngx_queue_t                    *q;
    ngx_connection_t               *c;
    ngx_http_passkey_redis_op_t    *op;
    ngx_http_passkey_redis_link_t  *link;

    c = conn->peer.connection;

    while (conn->peer.connection == c) {

        if (ngx_queue_empty(&conn->waiting)) {

            /* a reply nothing asked for: the stream is out of step */

            rc = ngx_http_passkey_resp_reply(conn->reader, NULL, &error);

            if (rc == NGX_AGAIN) {
                return NGX_OK;
            }

            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis \"%V\" sent a reply nothing asked "
                          "for", &conn->server->name);
            ngx_http_passkey_redis_close(conn);
            return NGX_ERROR;
        }

        q = ngx_queue_head(&conn->waiting);
        link = ngx_queue_data(q, ngx_http_passkey_redis_link_t, queue);
        op = link->op;

        error.data = text;
        error.len = sizeof(text);

        rc = ngx_http_passkey_resp_reply(conn->reader, op, &error);

        if (rc == NGX_AGAIN) {
            return NGX_OK;
        }

        if (rc == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis \"%V\" sent a reply that is not "
                          "RESP", &conn->server->name);
            ngx_http_passkey_redis_close(conn);
            return NGX_ERROR;
        }

        ngx_queue_remove(q);

        if (link->ev.timer_set) {
            ngx_del_timer(&link->ev);
        }

        /* the server is answering: the next failure starts a new backoff */

        conn->backoff = 0;

        if (rc == NGX_DECLINED && link->setup != NULL) {

            /* Redis error texts for AUTH do not echo the password */

            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis %s on \"%V\" failed: %V",
                          link->setup, &conn->server->name, &error);

            ngx_free(link);

            /* what follows would only get NOAUTH errors */

            ngx_http_passkey_redis_backoff(conn);
            ngx_http_passkey_redis_close(conn);
            return NGX_ERROR;
        }

        ngx_free(link);

        if (op == NULL) {
            /* cancelled, or the connection's own command: drop it */
            continue;
        }

        op->priv = NULL;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, op->log, 0,
                       "passkey redis result:%d type:%d",
                       (int) op->result, (int) op->type);

        /* may send again, or cancel other ops: the link is gone */

        op->handler(op);
    }

    return NGX_ERROR;
}


/*
 * The connection is gone, or given up on: every link waiting on it fails.
 * The connection is detached first, so that a handler sending again opens
 * a new one.
 */

static void
ngx_http_passkey_redis_close(ngx_http_passkey_redis_conn_t *conn)
{
    ngx_queue_t                     waiting, *q;
    ngx_http_passkey_redis_op_t    *op;
    ngx_http_passkey_redis_link_t  *link;

    if (conn->resolving != NULL) {
        ngx_resolve_name_done(conn->resolving);
        conn->resolving = NULL;
    }

    if (conn->peer.connection != NULL) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->log, 0,
                       "passkey redis close \"%V\"", &conn->server->name);

        ngx_close_connection(conn->peer.connection);
        conn->peer.connection = NULL;
    }

    conn->active = 0;
    conn->connected = 0;

    ngx_http_passkey_resp_reader_free(conn->reader);
    conn->reader = NULL;

    conn->out.pos = conn->out.start;
    conn->out.last = conn->out.start;

    ngx_queue_init(&waiting);

    if (!ngx_queue_empty(&conn->waiting)) {
        ngx_queue_add(&waiting, &conn->waiting);
        ngx_queue_init(&conn->waiting);
    }

    while (!ngx_queue_empty(&waiting)) {
        q = ngx_queue_head(&waiting);
        link = ngx_queue_data(q, ngx_http_passkey_redis_link_t, queue);

        ngx_queue_remove(q);

        if (link->ev.timer_set) {
            ngx_del_timer(&link->ev);
        }

        op = link->op;

        ngx_free(link);

        if (op == NULL) {
            continue;
        }

        op->priv = NULL;

        if (!conn->exiting) {
            ngx_http_passkey_redis_deliver(op,
                                           NGX_HTTP_PASSKEY_REDIS_UNAVAILABLE);
        }
    }
}


static void
ngx_http_passkey_redis_timeout_handler(ngx_event_t *ev)
{
    ngx_http_passkey_redis_op_t    *op;
    ngx_http_passkey_redis_link_t  *link;
    ngx_http_passkey_redis_conn_t  *conn;

    link = (ngx_http_passkey_redis_link_t *)
               ((u_char *) ev - offsetof(ngx_http_passkey_redis_link_t, ev));

    op = link->op;
    conn = link->conn;

    ngx_log_error(NGX_LOG_ERR, op ? op->log : conn->log, 0,
                  "passkey redis \"%V\" timed out", &conn->server->name);

    /*
     * The server hangs: give up on the connection, failing what else
     * waits on it.  This op gets TIMEOUT, before the others: their
     * handlers may finalize the request that owns it.
     */

    ngx_queue_remove(&link->queue);
    ngx_free(link);

    if (op != NULL) {
        op->priv = NULL;
    }

    ngx_http_passkey_redis_close(conn);

    if (op != NULL) {
        ngx_http_passkey_redis_deliver(op, NGX_HTTP_PASSKEY_REDIS_TIMEOUT);
    }
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

    ngx_http_passkey_redis_deliver(op, NGX_HTTP_PASSKEY_REDIS_UNAVAILABLE);
}


static void
ngx_http_passkey_redis_deliver(ngx_http_passkey_redis_op_t *op,
    ngx_http_passkey_redis_result_e result)
{
    op->result = result;
    op->type = NGX_HTTP_PASSKEY_REDIS_NIL;
    ngx_str_null(&op->str);
    op->integer = 0;
    op->elements = NULL;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "passkey redis result:%d", (int) op->result);

    op->handler(op);
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

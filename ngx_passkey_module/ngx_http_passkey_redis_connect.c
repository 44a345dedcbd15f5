
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_passkey_crypto.h"
#include "ngx_http_passkey_redis_conn.h"
#include "ngx_http_passkey_metrics_hook.h"


/*
 * A Redis connection's life, but for its commands and replies: each
 * worker's connection objects, made at its start and torn down at its
 * exit, and the making of a connection: the backoff after failures, AUTH
 * and SELECT queued first, the host name resolved by nginx's resolver,
 * connect() by ngx_event_connect_peer(), and TLS by nginx's SSL layer.
 * An open connection belongs to ngx_http_passkey_redis.c.
 */


static void ngx_http_passkey_redis_resolve(
    ngx_http_passkey_redis_conn_t *conn);
static void ngx_http_passkey_redis_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_http_passkey_redis_ready(ngx_http_passkey_redis_conn_t *conn);
#if (NGX_SSL)
static void ngx_http_passkey_redis_handshaked(ngx_connection_t *c);
#endif
static ngx_int_t ngx_http_passkey_redis_setup(
    ngx_http_passkey_redis_conn_t *conn, const char *what,
    ngx_uint_t argc, ngx_str_t *argv);


ngx_int_t
ngx_http_passkey_redis_init_process(ngx_cycle_t *cycle, ngx_array_t *servers)
{
    ngx_uint_t                         i;
    ngx_http_passkey_redis_server_t  **server;

    if (servers == NULL) {
        return NGX_OK;
    }

    server = servers->elts;

    for (i = 0; i < servers->nelts; i++) {

        if (ngx_http_passkey_redis_clustered(server[i])) {
            if (ngx_http_passkey_redis_cluster_init(cycle, server[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            continue;
        }

        server[i]->conn = ngx_http_passkey_redis_conn(cycle, server[i]);
        if (server[i]->conn == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* connected lazily by the first send(): Redis may start later */

ngx_http_passkey_redis_conn_t *
ngx_http_passkey_redis_conn(ngx_cycle_t *cycle,
    ngx_http_passkey_redis_server_t *server)
{
    ngx_http_passkey_redis_conn_t  *conn;

    conn = ngx_pcalloc(cycle->pool, sizeof(ngx_http_passkey_redis_conn_t));
    if (conn == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conn->cluster = NULL;
     *     conn->peer.connection = NULL;
     *     conn->reader = NULL;
     *     conn->out = { NULL };
     *     conn->failed = 0;
     *     conn->backoff = 0;
     *     conn->node = 0;
     *     conn->connected = 0;
     *     conn->exiting = 0;
     */

    conn->server = server;
    conn->name = server->name;
    conn->log = cycle->log;
    conn->dummy.fd = (ngx_socket_t) -1;
    ngx_queue_init(&conn->waiting);
    ngx_queue_init(&conn->failing);

    return conn;
}


void
ngx_http_passkey_redis_exit_process(ngx_cycle_t *cycle, ngx_array_t *servers)
{
    ngx_uint_t                         i;
    ngx_http_passkey_redis_server_t  **server;

    if (servers == NULL) {
        return;
    }

    server = servers->elts;

    for (i = 0; i < servers->nelts; i++) {

        if (server[i]->cluster) {
            ngx_http_passkey_redis_cluster_exit(server[i]);
            continue;
        }

        if (server[i]->conn) {
            ngx_http_passkey_redis_conn_exit(server[i]->conn);
            server[i]->conn = NULL;
        }
    }
}


/* what still waits is torn down with the process, unanswered */

void
ngx_http_passkey_redis_conn_exit(ngx_http_passkey_redis_conn_t *conn)
{
    ngx_queue_t                    *q;
    ngx_http_passkey_redis_link_t  *link;

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
            ngx_http_passkey_redis_drop(link->op);
        }

        ngx_http_passkey_redis_link_free(link);
    }

    if (conn->out.start != NULL) {
        ngx_free(conn->out.start);
    }

#if (NGX_SSL)
    if (conn->ssl_session) {
        ngx_ssl_free_session(conn->ssl_session);
    }
#endif
}


/*
 * NGX_OK: a connection is being made (its name resolved, or connect()
 * under way), its AUTH and SELECT queued first; NGX_DECLINED: none can be
 * made now (backoff, a failure at once); NGX_ERROR: out of memory.
 */

ngx_int_t
ngx_http_passkey_redis_connect(ngx_http_passkey_redis_conn_t *conn)
{
    u_char                           *p;
    u_char                            db[NGX_INT_T_LEN];
    ngx_str_t                         argv[3];
    ngx_uint_t                        argc;
    ngx_http_passkey_redis_server_t  *server;

    server = conn->server;

    if (conn->backoff
        && (ngx_msec_int_t) (ngx_current_msec - conn->failed)
           < (ngx_msec_int_t) conn->backoff)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->log, 0,
                       "passkey redis \"%V\" in connect backoff",
                       &conn->name);
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
        argc = 1;

        /* an ACL user (Redis 6), or the default user's password */

        if (server->user.len) {
            argv[argc++] = server->user;
        }

        argv[argc++] = server->password;

        if (ngx_http_passkey_redis_setup(conn, "AUTH", argc, argv) != NGX_OK) {
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
                   "passkey redis connecting to \"%V\"", &conn->name);

    /* a cached name or a refused connect() may fail at once, in here */

    conn->in_send = 1;
    conn->early_error = 0;

    if (conn->node) {
        ngx_http_passkey_redis_open(conn, &conn->sockaddr.sockaddr,
                                    conn->socklen);

    } else if (server->sentinels) {
        ngx_http_passkey_redis_discover(conn);

    } else if (server->host.len) {
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
                      "resolve %V", &conn->name, &server->host);
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
                      "(%i: %s)", &conn->name, &ctx->name, ctx->state,
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


void
ngx_http_passkey_redis_open(ngx_http_passkey_redis_conn_t *conn,
    struct sockaddr *sockaddr, socklen_t socklen)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    ngx_memzero(&conn->peer, sizeof(ngx_peer_connection_t));

    conn->peer.sockaddr = sockaddr;
    conn->peer.socklen = socklen;
    conn->peer.name = &conn->name;
    conn->peer.get = ngx_event_get_peer;
    conn->peer.log = conn->log;
    conn->peer.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&conn->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {

        /* nginx logged why, naming the address */

        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "passkey redis connect to \"%V\" failed",
                      &conn->name);

        if (conn->peer.connection != NULL) {
            ngx_close_connection(conn->peer.connection);
            conn->peer.connection = NULL;
        }

        ngx_http_passkey_redis_failed(conn);
        return;
    }

    c = conn->peer.connection;

    /* nginx's SSL layer allocates from it; freed with the connection */

    c->pool = ngx_create_pool(512, conn->log);
    if (c->pool == NULL) {
        ngx_close_connection(c);
        conn->peer.connection = NULL;
        ngx_http_passkey_redis_failed(conn);
        return;
    }

    c->data = conn;
    c->read->handler = ngx_http_passkey_redis_read_handler;
    c->write->handler = ngx_http_passkey_redis_write_handler;

    if (rc == NGX_OK) {
        ngx_http_passkey_redis_ready(conn);
    }
}


/* TCP is up: TLS first, if the server has it, then the commands */

static void
ngx_http_passkey_redis_ready(ngx_http_passkey_redis_conn_t *conn)
{
    ngx_connection_t  *c;
#if (NGX_SSL)
    ngx_int_t          rc;
#endif

    c = conn->peer.connection;

#if (NGX_SSL)

    if (conn->server->ssl && c->ssl == NULL) {

        if (ngx_ssl_create_connection(conn->server->ssl, c,
                                      NGX_SSL_BUFFER|NGX_SSL_CLIENT)
            != NGX_OK
            || ngx_http_passkey_ssl_server_name(c, &conn->server->tls_name)
               != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis \"%V\": cannot start TLS",
                          &conn->name);
            ngx_http_passkey_redis_failed(conn);
            return;
        }

        if (conn->ssl_session
            && ngx_ssl_set_session(c, conn->ssl_session) != NGX_OK)
        {
            ngx_http_passkey_redis_failed(conn);
            return;
        }

        c->log->action = "TLS handshake with redis";

        rc = ngx_ssl_handshake(c);

        if (rc == NGX_AGAIN) {
            c->ssl->handler = ngx_http_passkey_redis_handshaked;
            return;
        }

        ngx_http_passkey_redis_handshaked(c);
        return;
    }

#endif

    conn->connected = 1;
    ngx_http_passkey_metrics_redis_conn(conn->server,
                                        NGX_HTTP_PASSKEY_METRICS_CONN_UP);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->log, 0,
                   "passkey redis connected to \"%V\"", &conn->name);

    /* what was queued while connecting */

    if (conn->out.pos < conn->out.last && !c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


#if (NGX_SSL)

static void
ngx_http_passkey_redis_handshaked(ngx_connection_t *c)
{
    const char                     *reason;
    ngx_http_passkey_redis_conn_t  *conn;

    conn = c->data;

    c->log->action = NULL;

    if (!c->ssl->handshaked) {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "passkey redis \"%V\": TLS handshake failed",
                      &conn->name);
        ngx_http_passkey_redis_failed(conn);
        return;
    }

    if (conn->server->tls_verify) {
        reason = ngx_http_passkey_ssl_verify(c, &conn->server->tls_name);

        if (reason != NULL) {
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis \"%V\": the server's certificate "
                          "is not trusted for \"%V\": %s",
                          &conn->name, &conn->server->tls_name,
                          reason);
            ngx_http_passkey_redis_failed(conn);
            return;
        }
    }

    /* the next connection resumes this session */

    if (conn->ssl_session) {
        ngx_ssl_free_session(conn->ssl_session);
    }

    conn->ssl_session = ngx_ssl_get_session(c);

    /* the handshake took the handlers over */

    c->read->handler = ngx_http_passkey_redis_read_handler;
    c->write->handler = ngx_http_passkey_redis_write_handler;

    conn->connected = 1;
    ngx_http_passkey_metrics_redis_conn(conn->server,
                                        NGX_HTTP_PASSKEY_METRICS_CONN_UP);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->log, 0,
                   "passkey redis TLS with \"%V\" is up",
                   &conn->name);

    if (conn->out.pos < conn->out.last && !c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }

    /* a reply may already wait in the TLS layer's buffer */

    if (c->read->ready && !c->read->posted) {
        ngx_post_event(c->read, &ngx_posted_events);
    }
}

#endif


/* the connection could not be made: the backoff starts */

void
ngx_http_passkey_redis_failed(ngx_http_passkey_redis_conn_t *conn)
{
    ngx_http_passkey_metrics_redis_conn(conn->server,
                                        NGX_HTTP_PASSKEY_METRICS_CONN_FAILED);

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


void
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


/* the outcome of a non-blocking connect(), at its first event */

ngx_int_t
ngx_http_passkey_redis_connected(ngx_http_passkey_redis_conn_t *conn)
{
    ngx_err_t  err;

    err = ngx_http_passkey_redis_socket_error(conn->peer.connection);

    if (err) {
        ngx_log_error(NGX_LOG_ERR, conn->log, err,
                      "passkey redis connect to \"%V\" failed",
                      &conn->name);

        ngx_http_passkey_redis_failed(conn);
        return NGX_ERROR;
    }

    ngx_http_passkey_redis_ready(conn);

    return conn->connected ? NGX_OK : NGX_ERROR;
}


/* the outcome of a non-blocking connect(): 0, or the error */

ngx_err_t
ngx_http_passkey_redis_socket_error(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    return err;
}

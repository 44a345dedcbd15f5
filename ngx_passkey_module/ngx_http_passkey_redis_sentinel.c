
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_passkey_redis_conn.h"


/*
 * passkey_redis ... sentinel=NAME: before each new connection, a sentinel
 * is asked where the master NAME is (SENTINEL get-master-addr-by-name),
 * the sentinels in turn until one answers.  Asking at every connection
 * costs a round trip per reconnect and nothing else; it finds a failover
 * as soon as the old master's connection is lost or answers READONLY.
 * Sentinels that want a password (requirepass in their configuration)
 * get AUTH first, in the same write.
 */


static void ngx_http_passkey_redis_discover_next(
    ngx_http_passkey_redis_conn_t *conn);
static void ngx_http_passkey_redis_sentinel_resolve(
    ngx_http_passkey_redis_conn_t *conn, ngx_addr_t *addr);
static void ngx_http_passkey_redis_sentinel_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_http_passkey_redis_sentinel_connect(
    ngx_http_passkey_redis_conn_t *conn, struct sockaddr *sockaddr,
    socklen_t socklen, ngx_str_t *name);
static ngx_int_t ngx_http_passkey_redis_sentinel_ask(
    ngx_http_passkey_redis_conn_t *conn);
static void ngx_http_passkey_redis_sentinel_write(ngx_event_t *wev);
static void ngx_http_passkey_redis_sentinel_read(ngx_event_t *rev);
static ngx_int_t ngx_http_passkey_redis_master(
    ngx_http_passkey_redis_conn_t *conn, ngx_array_t *elements);
static void ngx_http_passkey_redis_sentinel_close(
    ngx_http_passkey_redis_conn_t *conn);


void
ngx_http_passkey_redis_discover(ngx_http_passkey_redis_conn_t *conn)
{
    conn->sentinel_tries = 0;

    ngx_http_passkey_redis_discover_next(conn);
}


/* the connection is closed: so is a question still open */

void
ngx_http_passkey_redis_discover_end(ngx_http_passkey_redis_conn_t *conn)
{
    ngx_http_passkey_redis_sentinel_close(conn);

    if (conn->sentinel_out.start != NULL) {
        ngx_free(conn->sentinel_out.start);
        ngx_memzero(&conn->sentinel_out, sizeof(ngx_http_passkey_resp_buf_t));
    }
}


static void
ngx_http_passkey_redis_discover_next(ngx_http_passkey_redis_conn_t *conn)
{
    ngx_addr_t                       *addr;
    ngx_http_passkey_redis_server_t  *server;

    server = conn->server;

    ngx_http_passkey_redis_sentinel_close(conn);

    if (conn->sentinel_tries++ == server->sentinels->nelts) {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "passkey redis: no sentinel told where the master "
                      "\"%V\" is", &server->sentinel);
        ngx_http_passkey_redis_failed(conn);
        return;
    }

    addr = server->sentinels->elts;
    addr = &addr[conn->sentinel_next++ % server->sentinels->nelts];

    if (addr->sockaddr == NULL) {
        ngx_http_passkey_redis_sentinel_resolve(conn, addr);
        return;
    }

    ngx_http_passkey_redis_sentinel_connect(conn, addr->sockaddr,
                                            addr->socklen, &addr->name);
}


/* a sentinel named by host: its first address, from nginx's resolver */

static void
ngx_http_passkey_redis_sentinel_resolve(ngx_http_passkey_redis_conn_t *conn,
    ngx_addr_t *addr)
{
    u_char              *colon;
    ngx_resolver_ctx_t  *ctx;

    colon = addr->name.data + addr->name.len;

    while (colon[-1] != ':') {
        colon--;
    }

    ctx = ngx_resolve_start(conn->server->resolver, NULL);

    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "passkey redis: sentinel \"%V\" cannot be resolved",
                      &addr->name);
        ngx_http_passkey_redis_discover_next(conn);
        return;
    }

    ctx->name.data = addr->name.data;
    ctx->name.len = colon - 1 - addr->name.data;
    ctx->handler = ngx_http_passkey_redis_sentinel_resolved;
    ctx->data = conn;
    ctx->timeout = conn->server->resolver_timeout;

    conn->resolving = ctx;
    conn->sentinel_host = addr;

    if (ngx_resolve_name(ctx) != NGX_OK) {
        conn->resolving = NULL;
        ngx_http_passkey_redis_discover_next(conn);
    }
}


static void
ngx_http_passkey_redis_sentinel_resolved(ngx_resolver_ctx_t *ctx)
{
    u_char                         *colon;
    ngx_int_t                       port;
    ngx_addr_t                     *addr;
    ngx_http_passkey_redis_conn_t  *conn;

    conn = ctx->data;
    addr = conn->sentinel_host;

    conn->resolving = NULL;

    if (ctx->state || ctx->naddrs == 0) {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "passkey redis: sentinel \"%V\" could not be "
                      "resolved (%i: %s)", &addr->name, ctx->state,
                      ngx_resolver_strerror(ctx->state));

        ngx_resolve_name_done(ctx);
        ngx_http_passkey_redis_discover_next(conn);
        return;
    }

    colon = ctx->name.data + ctx->name.len;
    port = ngx_atoi(colon + 1, addr->name.data + addr->name.len - colon - 1);

    ngx_memcpy(&conn->sentinel_sockaddr, ctx->addrs[0].sockaddr,
               ctx->addrs[0].socklen);

    ngx_inet_set_port(&conn->sentinel_sockaddr.sockaddr, (in_port_t) port);

    ngx_http_passkey_redis_sentinel_connect(conn,
                                            &conn->sentinel_sockaddr.sockaddr,
                                            ctx->addrs[0].socklen,
                                            &addr->name);

    ngx_resolve_name_done(ctx);
}


static void
ngx_http_passkey_redis_sentinel_connect(ngx_http_passkey_redis_conn_t *conn,
    struct sockaddr *sockaddr, socklen_t socklen, ngx_str_t *name)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    ngx_memzero(&conn->sentinel, sizeof(ngx_peer_connection_t));

    conn->sentinel.sockaddr = sockaddr;
    conn->sentinel.socklen = socklen;
    conn->sentinel.name = name;
    conn->sentinel.get = ngx_event_get_peer;
    conn->sentinel.log = conn->log;
    conn->sentinel.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&conn->sentinel);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "passkey redis: sentinel \"%V\" cannot be reached",
                      name);
        ngx_http_passkey_redis_discover_next(conn);
        return;
    }

    c = conn->sentinel.connection;

    c->data = conn;
    c->read->handler = ngx_http_passkey_redis_sentinel_read;
    c->write->handler = ngx_http_passkey_redis_sentinel_write;

    c->pool = ngx_create_pool(512, conn->log);
    conn->sentinel_reader = ngx_http_passkey_resp_reader();

    conn->sentinel_out.pos = conn->sentinel_out.start;
    conn->sentinel_out.last = conn->sentinel_out.start;

    if (c->pool == NULL || conn->sentinel_reader == NULL
        || ngx_http_passkey_redis_sentinel_ask(conn) != NGX_OK)
    {
        ngx_http_passkey_redis_sentinel_close(conn);
        ngx_http_passkey_redis_failed(conn);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, conn->log, 0,
                   "passkey redis asks sentinel \"%V\" for \"%V\"",
                   name, &conn->server->sentinel);

    if (rc == NGX_OK) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


/* AUTH first, if the sentinels want a password, then the question */

static ngx_int_t
ngx_http_passkey_redis_sentinel_ask(ngx_http_passkey_redis_conn_t *conn)
{
    ngx_str_t                         argv[3];
    ngx_uint_t                        argc;
    ngx_http_passkey_redis_server_t  *server;

    server = conn->server;

    conn->sentinel_auth = 0;

    if (server->sentinel_password.len) {
        ngx_str_set(&argv[0], "AUTH");
        argc = 1;

        if (server->sentinel_user.len) {
            argv[argc++] = server->sentinel_user;
        }

        argv[argc++] = server->sentinel_password;

        if (ngx_http_passkey_resp_command(&conn->sentinel_out, argc, argv,
                                          conn->log)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        conn->sentinel_auth = 1;
    }

    ngx_str_set(&argv[0], "SENTINEL");
    ngx_str_set(&argv[1], "get-master-addr-by-name");
    argv[2] = server->sentinel;

    return ngx_http_passkey_resp_command(&conn->sentinel_out, 3, argv,
                                         conn->log);
}


static void
ngx_http_passkey_redis_sentinel_write(ngx_event_t *wev)
{
    ssize_t                         n;
    ngx_err_t                       err;
    ngx_connection_t               *c;
    ngx_http_passkey_redis_conn_t  *conn;

    c = wev->data;
    conn = c->data;

    err = ngx_http_passkey_redis_socket_error(c);

    if (err) {
        ngx_log_error(NGX_LOG_ERR, conn->log, err,
                      "passkey redis: sentinel \"%V\" cannot be reached",
                      conn->sentinel.name);
        ngx_http_passkey_redis_discover_next(conn);
        return;
    }

    while (conn->sentinel_out.pos < conn->sentinel_out.last) {

        n = c->send(c, conn->sentinel_out.pos,
                    conn->sentinel_out.last - conn->sentinel_out.pos);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_http_passkey_redis_discover_next(conn);
            return;
        }

        conn->sentinel_out.pos += n;
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_http_passkey_redis_discover_next(conn);
    }
}


static void
ngx_http_passkey_redis_sentinel_read(ngx_event_t *rev)
{
    ssize_t                         n;
    ngx_int_t                       rc;
    ngx_str_t                       error;
    ngx_connection_t               *c;
    ngx_http_passkey_redis_op_t     op;
    ngx_http_passkey_redis_conn_t  *conn;
    u_char                          buf[1024];

    c = rev->data;
    conn = c->data;

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_http_passkey_redis_discover_next(conn);
            }

            return;
        }

        if (n == 0 || n == NGX_ERROR
            || ngx_http_passkey_resp_feed(conn->sentinel_reader, buf, n)
               != NGX_OK)
        {
            ngx_http_passkey_redis_discover_next(conn);
            return;
        }

    again:

        ngx_memzero(&op, sizeof(ngx_http_passkey_redis_op_t));
        op.pool = c->pool;
        op.log = conn->log;

        ngx_str_null(&error);

        rc = ngx_http_passkey_resp_reply(conn->sentinel_reader, &op, &error);

        if (rc == NGX_AGAIN) {
            continue;
        }

        if (conn->sentinel_auth) {
            conn->sentinel_auth = 0;

            if (rc == NGX_OK
                && op.result == NGX_HTTP_PASSKEY_REDIS_OK
                && op.type == NGX_HTTP_PASSKEY_REDIS_STATUS)
            {
                /* the question's reply may have come with it */
                goto again;
            }

            /* Redis error texts for AUTH do not echo the password */

            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis: AUTH on sentinel \"%V\" failed: "
                          "%V", conn->sentinel.name, &op.str);

            ngx_http_passkey_redis_discover_next(conn);
            return;
        }

        if (rc == NGX_OK
            && op.result == NGX_HTTP_PASSKEY_REDIS_OK
            && op.type == NGX_HTTP_PASSKEY_REDIS_ARRAY
            && ngx_http_passkey_redis_master(conn, op.elements) == NGX_OK)
        {
            ngx_http_passkey_redis_sentinel_close(conn);

            ngx_http_passkey_redis_open(conn, &conn->sockaddr.sockaddr,
                                        conn->socklen);
            return;
        }

        /* nil (no such master), an error, or an answer we cannot read */

        if (rc == NGX_OK && op.type == NGX_HTTP_PASSKEY_REDIS_ERROR) {
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis: sentinel \"%V\" refused to tell "
                          "where the master \"%V\" is: %V",
                          conn->sentinel.name, &conn->server->sentinel,
                          &op.str);

        } else {
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis: sentinel \"%V\" does not know "
                          "the master \"%V\"", conn->sentinel.name,
                          &conn->server->sentinel);
        }

        ngx_http_passkey_redis_discover_next(conn);
        return;
    }
}


/* ["ip", "port"] */

static ngx_int_t
ngx_http_passkey_redis_master(ngx_http_passkey_redis_conn_t *conn,
    ngx_array_t *elements)
{
    u_char               text[NGX_INET6_ADDRSTRLEN + 1];
    ngx_int_t            port;
    ngx_str_t           *e;
    struct sockaddr_in  *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6 *sin6;
#endif

    if (elements == NULL || elements->nelts != 2) {
        return NGX_ERROR;
    }

    e = elements->elts;

    port = ngx_atoi(e[1].data, e[1].len);

    if (port < 1 || port > 65535 || e[0].len >= sizeof(text)) {
        return NGX_ERROR;
    }

    ngx_cpystrn(text, e[0].data, e[0].len + 1);

    ngx_memzero(&conn->sockaddr, sizeof(ngx_sockaddr_t));

    sin = &conn->sockaddr.sockaddr_in;

    if (inet_pton(AF_INET, (char *) text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((in_port_t) port);
        conn->socklen = sizeof(struct sockaddr_in);

        goto found;
    }

#if (NGX_HAVE_INET6)

    sin6 = &conn->sockaddr.sockaddr_in6;

    if (inet_pton(AF_INET6, (char *) text, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((in_port_t) port);
        conn->socklen = sizeof(struct sockaddr_in6);

        goto found;
    }

#endif

    return NGX_ERROR;

found:

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, conn->log, 0,
                   "passkey redis master \"%V\" is at %V:%i",
                   &conn->server->sentinel, &e[0], port);

    return NGX_OK;
}


static void
ngx_http_passkey_redis_sentinel_close(ngx_http_passkey_redis_conn_t *conn)
{
    ngx_pool_t  *pool;

    if (conn->sentinel.connection != NULL) {
        pool = conn->sentinel.connection->pool;

        ngx_close_connection(conn->sentinel.connection);
        conn->sentinel.connection = NULL;

        if (pool != NULL) {
            ngx_destroy_pool(pool);
        }
    }

    ngx_http_passkey_resp_reader_free(conn->sentinel_reader);
    conn->sentinel_reader = NULL;
}

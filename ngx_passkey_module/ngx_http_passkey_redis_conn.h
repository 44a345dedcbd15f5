
/*
 * Copyright (C) ngx_passkey_module authors
 */


#ifndef _NGX_HTTP_PASSKEY_REDIS_CONN_H_INCLUDED_
#define _NGX_HTTP_PASSKEY_REDIS_CONN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_passkey_redis.h"


/*
 * A worker's connection to one Redis server, shared by the parts of the
 * Redis transport and by them only: the commands and replies
 * (ngx_http_passkey_redis.c), the connection's life: made and torn down
 * with the worker, its name resolved, connect(), TLS, AUTH and SELECT
 * (ngx_http_passkey_redis_connect.c), and for a cluster, the node each
 * command goes to (ngx_http_passkey_redis_cluster.c).
 */


#define NGX_HTTP_PASSKEY_REDIS_BACKOFF_MIN      100
#define NGX_HTTP_PASSKEY_REDIS_BACKOFF_MAX      1000

#define NGX_HTTP_PASSKEY_REDIS_SLOTS            16384
#define NGX_HTTP_PASSKEY_REDIS_NODES            64


typedef struct ngx_http_passkey_redis_cluster_s
    ngx_http_passkey_redis_cluster_t;


typedef struct {
    ngx_http_passkey_redis_server_t  *server;
    ngx_log_t                        *log;
    ngx_str_t                         name;      /* for logs */

    /* a cluster's node: its address is sockaddr, from the cluster */
    ngx_http_passkey_redis_cluster_t *cluster;

    /* a name being resolved, then the address to connect to */
    ngx_resolver_ctx_t               *resolving;
    ngx_sockaddr_t                    sockaddr;
    socklen_t                         socklen;
    ngx_uint_t                        next;      /* of the name's addresses */

    ngx_peer_connection_t             peer;
    void                             *reader;

    /* sentinel=: the sentinel asked for the master's address */
    ngx_sockaddr_t                    sentinel_sockaddr;    /* a host's */
    ngx_addr_t                       *sentinel_host;        /* resolving */
    ngx_peer_connection_t             sentinel;
    void                             *sentinel_reader;
    ngx_http_passkey_resp_buf_t       sentinel_out;
    ngx_uint_t                        sentinel_next;
    ngx_uint_t                        sentinel_tries;
    unsigned                          sentinel_auth:1;  /* its reply first */

#if (NGX_SSL)
    ngx_ssl_session_t                *ssl_session;
#endif
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

    unsigned                          node:1;
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

    /*
     * replicas=: a write's reply is held (hold) until the WAIT behind it
     * answers (wait); each is the other's partner while both wait
     */
    void                             *partner;
    unsigned                          hold:1;
    unsigned                          wait:1;
    ngx_event_t                       ev;       /* deadline or failure */
    ngx_queue_t                       queue;    /* waiting or failing */

    /* cluster: the command, sent again where MOVED or ASK points */
    ngx_http_passkey_resp_buf_t       cmd;
    ngx_uint_t                        redirects;
} ngx_http_passkey_redis_link_t;


struct ngx_http_passkey_redis_cluster_s {
    ngx_http_passkey_redis_server_t  *server;
    ngx_log_t                        *log;

    ngx_http_passkey_redis_conn_t    *nodes[NGX_HTTP_PASSKEY_REDIS_NODES];
    ngx_uint_t                        nnodes;
    ngx_uint_t                        next;     /* the node asked next */

    /* the master of each slot, as index + 1 into nodes; 0: not known */
    u_char                            slots[NGX_HTTP_PASSKEY_REDIS_SLOTS];

    /* CLUSTER NODES: the pool of the one in flight, and when it went */
    ngx_pool_t                       *asking;
    ngx_msec_t                        asked;
};


/* ngx_http_passkey_redis_connect.c */
ngx_http_passkey_redis_conn_t *ngx_http_passkey_redis_conn(ngx_cycle_t *cycle,
    ngx_http_passkey_redis_server_t *server);
void ngx_http_passkey_redis_conn_exit(ngx_http_passkey_redis_conn_t *conn);
ngx_int_t ngx_http_passkey_redis_connect(ngx_http_passkey_redis_conn_t *conn);
void ngx_http_passkey_redis_open(ngx_http_passkey_redis_conn_t *conn,
    struct sockaddr *sockaddr, socklen_t socklen);
void ngx_http_passkey_redis_failed(ngx_http_passkey_redis_conn_t *conn);
ngx_int_t ngx_http_passkey_redis_connected(
    ngx_http_passkey_redis_conn_t *conn);
void ngx_http_passkey_redis_backoff(ngx_http_passkey_redis_conn_t *conn);
ngx_err_t ngx_http_passkey_redis_socket_error(ngx_connection_t *c);

/* ngx_http_passkey_redis_sentinel.c */
void ngx_http_passkey_redis_discover(ngx_http_passkey_redis_conn_t *conn);
void ngx_http_passkey_redis_discover_end(ngx_http_passkey_redis_conn_t *conn);

/* ngx_http_passkey_redis_cluster.c */
ngx_int_t ngx_http_passkey_redis_cluster_init(ngx_cycle_t *cycle,
    ngx_http_passkey_redis_server_t *server);
void ngx_http_passkey_redis_cluster_exit(
    ngx_http_passkey_redis_server_t *server);
ngx_int_t ngx_http_passkey_redis_cluster_send(
    ngx_http_passkey_redis_server_t *server, ngx_http_passkey_redis_op_t *op,
    ngx_uint_t argc, ngx_str_t *argv);
ngx_int_t ngx_http_passkey_redis_redirect(ngx_http_passkey_redis_conn_t *conn,
    ngx_http_passkey_redis_op_t *op, ngx_http_passkey_redis_link_t *link);
void ngx_http_passkey_redis_cluster_lost(ngx_http_passkey_redis_conn_t *conn);

/* ngx_http_passkey_redis.c */
ngx_int_t ngx_http_passkey_redis_queue(ngx_http_passkey_redis_conn_t *conn,
    ngx_http_passkey_redis_op_t *op, ngx_uint_t argc, ngx_str_t *argv,
    ngx_http_passkey_resp_buf_t *cmd);
void ngx_http_passkey_redis_link_free(ngx_http_passkey_redis_link_t *link);
void ngx_http_passkey_redis_drop(ngx_http_passkey_redis_op_t *op);
void ngx_http_passkey_redis_close(ngx_http_passkey_redis_conn_t *conn);
void ngx_http_passkey_redis_read_handler(ngx_event_t *rev);
void ngx_http_passkey_redis_write_handler(ngx_event_t *wev);


#endif /* _NGX_HTTP_PASSKEY_REDIS_CONN_H_INCLUDED_ */

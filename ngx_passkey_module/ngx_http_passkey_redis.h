
/*
 * Copyright (C) ngx_passkey_module authors
 */


#ifndef _NGX_HTTP_PASSKEY_REDIS_H_INCLUDED_
#define _NGX_HTTP_PASSKEY_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>


/*
 * Redis commands over one connection per worker and per configured
 * server (per master node, for a cluster), an nginx connection on nginx's
 * event loop (ngx_http_passkey_redis.c); hiredis formats the commands and
 * reads the replies (ngx_http_passkey_resp.c), and sees no socket.
 */


typedef enum {
    NGX_HTTP_PASSKEY_REDIS_OK = 0,         /* a reply arrived; see type */
    NGX_HTTP_PASSKEY_REDIS_TIMEOUT,        /* no reply within timeout */
    NGX_HTTP_PASSKEY_REDIS_UNAVAILABLE     /* cannot connect, lost, AUTH */
} ngx_http_passkey_redis_result_e;


typedef enum {
    NGX_HTTP_PASSKEY_REDIS_NIL = 0,
    NGX_HTTP_PASSKEY_REDIS_STRING,         /* bulk string */
    NGX_HTTP_PASSKEY_REDIS_STATUS,         /* +OK */
    NGX_HTTP_PASSKEY_REDIS_INTEGER,
    NGX_HTTP_PASSKEY_REDIS_ARRAY,          /* elements copied as strings */
    NGX_HTTP_PASSKEY_REDIS_ERROR           /* -ERR ...; text in str */
} ngx_http_passkey_redis_type_e;


typedef struct {
    ngx_str_t                        name;      /* as configured, for logs */
    ngx_addr_t                       addr;      /* IP and port, or unix: */
    ngx_str_t                        host;      /* a name to resolve, or "" */

    /*
     * sentinel=: the master's name, and the sentinels (ngx_addr_t; one
     * named by a host has no sockaddr, and its name is "host:port")
     */
    ngx_str_t                        sentinel;
    ngx_array_t                     *sentinels;
    unsigned                         sentinel_hosts:1;
    ngx_str_t                        sentinel_user;
    ngx_str_t                        sentinel_password;     /* never logged */

    /* cluster: the nodes first asked for the others (ngx_addr_t) */
    ngx_array_t                     *seeds;
    in_port_t                        port;
    ngx_resolver_t                  *resolver;  /* the location's, for host */
    ngx_msec_t                       resolver_timeout;
    ngx_int_t                        database;  /* SELECT after connect */
    ngx_str_t                        user;      /* AUTH user password */
    ngx_uint_t                       replicas;  /* WAIT after a job write */
    ngx_str_t                        password;  /* AUTH; never logged */

    /* what tells servers apart: the directive's arguments, as written */
    ngx_str_t                        key;

#if (NGX_SSL)
    ngx_ssl_t                       *ssl;       /* NULL: no TLS */
    ngx_str_t                        tls_name;  /* SNI, checked; 0-ended */
    ngx_flag_t                       tls_verify;
#endif

    /* per worker: private to ngx_http_passkey_redis.c */
    void                            *conn;
    void                            *cluster;
} ngx_http_passkey_redis_server_t;


/* passkey_redis ... cluster */
#define ngx_http_passkey_redis_clustered(server)                             \
    ((server)->seeds != NULL)


typedef struct ngx_http_passkey_redis_op_s  ngx_http_passkey_redis_op_t;

typedef void (*ngx_http_passkey_redis_done_pt)(ngx_http_passkey_redis_op_t *op);


struct ngx_http_passkey_redis_op_s {
    /* set by the caller */
    ngx_pool_t                      *pool;    /* results are copied here */
    ngx_log_t                       *log;
    ngx_msec_t                       timeout;   /* reply deadline */
    ngx_http_passkey_redis_done_pt   handler;
    void                            *data;

    /* a write that counts once the server's replicas= replicas have it */
    unsigned                         replicated:1;

    /* results, valid in handler */
    ngx_http_passkey_redis_result_e  result;
    ngx_http_passkey_redis_type_e    type;
    ngx_str_t                        str;
    ngx_int_t                        integer;
    ngx_array_t                     *elements;  /* of ngx_str_t; ARRAY */

    /* private to ngx_http_passkey_redis.c */
    void                            *priv;
};


ngx_int_t ngx_http_passkey_redis_init_process(ngx_cycle_t *cycle,
    ngx_array_t *servers);
void ngx_http_passkey_redis_exit_process(ngx_cycle_t *cycle,
    ngx_array_t *servers);

/*
 * Sends a command (argv[0..argc-1], binary safe).  NGX_OK: op->handler runs
 * later, exactly once, unless cancelled; never from inside this call.
 * NGX_ERROR: nothing was sent; the handler never runs.
 */
ngx_int_t ngx_http_passkey_redis_send(ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_op_t *op, ngx_uint_t argc, ngx_str_t *argv);

/* The owner is going away: the handler will not run.  Idempotent. */
void ngx_http_passkey_redis_cancel(ngx_http_passkey_redis_op_t *op);

/*
 * A command nothing waits for, in a pool of its own until its reply; a
 * failure is logged at "warn" with the text given, a static string.
 */
void ngx_http_passkey_redis_post(ngx_http_passkey_redis_server_t *server,
    ngx_msec_t timeout, ngx_uint_t argc, ngx_str_t *argv, const char *failed);


/* bytes to send: [pos, last) of [start, end), ngx_alloc()'d */
typedef struct {
    u_char                          *start;
    u_char                          *pos;
    u_char                          *last;
    u_char                          *end;
} ngx_http_passkey_resp_buf_t;


/* ngx_http_passkey_resp.c, for ngx_http_passkey_redis.c */
ngx_int_t ngx_http_passkey_resp_command(ngx_http_passkey_resp_buf_t *buf,
    ngx_uint_t argc, ngx_str_t *argv, ngx_log_t *log);
ngx_int_t ngx_http_passkey_resp_append(ngx_http_passkey_resp_buf_t *buf,
    u_char *data, size_t len, ngx_log_t *log);
void *ngx_http_passkey_resp_reader(void);
void ngx_http_passkey_resp_reader_free(void *reader);
ngx_int_t ngx_http_passkey_resp_feed(void *reader, u_char *data, size_t len);
ngx_int_t ngx_http_passkey_resp_reply(void *reader,
    ngx_http_passkey_redis_op_t *op, ngx_str_t *error);


/* how an op that got no reply failed, for a log line */
#define ngx_http_passkey_redis_failure(op)                                    \
    ((op)->result == NGX_HTTP_PASSKEY_REDIS_TIMEOUT ? "timed out"            \
                                                    : "is unavailable")


#endif /* _NGX_HTTP_PASSKEY_REDIS_H_INCLUDED_ */

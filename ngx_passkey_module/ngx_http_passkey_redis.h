
/*
 * Copyright (C) ngx_passkey_module authors
 */


#ifndef _NGX_HTTP_PASSKEY_REDIS_H_INCLUDED_
#define _NGX_HTTP_PASSKEY_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * Redis commands over one non-blocking connection per worker and per
 * configured server.  hiredis formats commands and parses replies; this is
 * the only file that includes hiredis.
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
    ngx_addr_t                      *addr;      /* NULL for a unix socket */
    ngx_str_t                        path;      /* unix socket, 0-terminated */
    ngx_str_t                        host;      /* IP text, 0-terminated */
    in_port_t                        port;
    ngx_int_t                        database;  /* SELECT after connect */
    ngx_str_t                        password;  /* AUTH; never logged */

    /* per worker: private to ngx_http_passkey_redis.c */
    void                            *conn;
} ngx_http_passkey_redis_server_t;


typedef struct ngx_http_passkey_redis_op_s  ngx_http_passkey_redis_op_t;

typedef void (*ngx_http_passkey_redis_done_pt)(ngx_http_passkey_redis_op_t *op);


struct ngx_http_passkey_redis_op_s {
    /* set by the caller */
    ngx_pool_t                      *pool;    /* results are copied here */
    ngx_log_t                       *log;
    ngx_msec_t                       timeout;   /* reply deadline */
    ngx_http_passkey_redis_done_pt   handler;
    void                            *data;

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


/* how an op that got no reply failed, for a log line */
#define ngx_http_passkey_redis_failure(op)                                    \
    ((op)->result == NGX_HTTP_PASSKEY_REDIS_TIMEOUT ? "timed out"            \
                                                    : "is unavailable")


#endif /* _NGX_HTTP_PASSKEY_REDIS_H_INCLUDED_ */

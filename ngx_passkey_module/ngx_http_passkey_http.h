
/*
 * Copyright (C) ngx_passkey_module authors
 */


#ifndef _NGX_HTTP_PASSKEY_HTTP_H_INCLUDED_
#define _NGX_HTTP_PASSKEY_HTTP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * Outbound HTTPS calls, driven by libcurl's multi-socket interface on the
 * nginx event loop.  No libcurl type appears here: libcurl stays inside
 * ngx_http_passkey_http.c and ngx_http_passkey_http_loop.c.
 */


typedef enum {
    NGX_HTTP_PASSKEY_HTTP_OK = 0,          /* a response arrived; see status */
    NGX_HTTP_PASSKEY_HTTP_TIMEOUT,         /* connect or total timeout */
    NGX_HTTP_PASSKEY_HTTP_CONNECT,         /* refused, reset, DNS failure */
    NGX_HTTP_PASSKEY_HTTP_TLS,             /* handshake or verification */
    NGX_HTTP_PASSKEY_HTTP_TOO_LARGE,       /* body over max_response */
    NGX_HTTP_PASSKEY_HTTP_FAILED           /* anything else */
} ngx_http_passkey_http_result_e;


typedef struct ngx_http_passkey_http_call_s  ngx_http_passkey_http_call_t;

typedef void (*ngx_http_passkey_http_done_pt)(
    ngx_http_passkey_http_call_t *call);


typedef struct {
    ngx_msec_t                      connect_timeout;
    ngx_msec_t                      timeout;
    size_t                          max_response;
    ngx_flag_t                      verify;

    /* the file's full name, and its PEM text: read when the config loads */
    ngx_str_t                       trusted_certificate; /* null-terminated */
    ngx_str_t                       trusted_pem;
} ngx_http_passkey_http_conf_t;


struct ngx_http_passkey_http_call_s {
    /* set by the caller before ngx_http_passkey_http_start() */
    ngx_pool_t                     *pool;     /* owns the call and results */
    ngx_log_t                      *log;
    ngx_http_passkey_http_conf_t   *conf;

    ngx_str_t                       method;   /* "GET", "POST" */
    ngx_str_t                       url;
    ngx_str_t                       content_type;  /* empty: no body */
    ngx_str_t                       body;

    /* "Authorization: ..." value; never logged */
    ngx_str_t                       authorization;

    /*
     * libcurl may send the request again on a new connection when a kept
     * connection turns out closed.  Without this flag a request with a
     * body is never sent twice: the server may have acted on it.
     */
    unsigned                        resend:1;

    /* for passkey_metrics: ngx_http_passkey_metrics_route_e */
    ngx_uint_t                      route;

    ngx_http_passkey_http_done_pt   handler;
    void                           *data;

    /* results, valid in handler */
    ngx_http_passkey_http_result_e  result;
    ngx_uint_t                      status;
    ngx_str_t                       response;   /* in pool */
    ngx_str_t                       retry_after;
    const char                     *error;      /* static text for logs */

    /* private to ngx_http_passkey_http.c */
    void                           *priv;
};


/*
 * What the module needs of libcurl (7.85.0, an asynchronous resolver,
 * HTTPS; CA certificates from memory if ca_blob), checked while the
 * configuration loads: NGX_ERROR after an "emerg" line naming libcurl.
 */
ngx_int_t ngx_http_passkey_http_check_library(ngx_conf_t *cf,
    ngx_uint_t ca_blob);

/* keepalive: idle connections (and easy handles) kept for reuse */
ngx_int_t ngx_http_passkey_http_init_process(ngx_cycle_t *cycle,
    ngx_uint_t keepalive);
void ngx_http_passkey_http_exit_process(ngx_cycle_t *cycle);

/*
 * Starts a call.  NGX_OK: call->handler runs later, exactly once, unless the
 * call is cancelled first; it never runs from inside this function.
 * NGX_ERROR: nothing started, the handler never runs.
 */
ngx_int_t ngx_http_passkey_http_start(ngx_http_passkey_http_call_t *call);

/* Stops a call in flight; the handler will not run.  Idempotent. */
void ngx_http_passkey_http_cancel(ngx_http_passkey_http_call_t *call);

/* Percent-encodes s for a URL query argument value, into pool. */
ngx_int_t ngx_http_passkey_http_escape(ngx_pool_t *pool, ngx_str_t *s,
    ngx_str_t *out);


#endif /* _NGX_HTTP_PASSKEY_HTTP_H_INCLUDED_ */

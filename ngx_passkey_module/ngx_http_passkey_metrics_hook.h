
/*
 * Copyright (C) ngx_passkey_module authors
 */


#ifndef _NGX_HTTP_PASSKEY_METRICS_HOOK_H_INCLUDED_
#define _NGX_HTTP_PASSKEY_METRICS_HOOK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_passkey_redis.h"


/*
 * What the transports tell passkey_metrics (ngx_http_passkey_metrics.c):
 * the API client how each call ended, the Redis client what became of
 * its connections.  Without a passkey_metrics location these do nothing.
 */


/* the routes of the Beyond Identity API, as ngx_http_passkey_http_call_t's */
typedef enum {
    NGX_HTTP_PASSKEY_METRICS_API_OTHER = 0,
    NGX_HTTP_PASSKEY_METRICS_API_TOKEN,
    NGX_HTTP_PASSKEY_METRICS_API_LIST_IDENTITIES,
    NGX_HTTP_PASSKEY_METRICS_API_CREATE_IDENTITY,
    NGX_HTTP_PASSKEY_METRICS_API_CREATE_JOB,
    NGX_HTTP_PASSKEY_METRICS_API_GET_JOB,
    NGX_HTTP_PASSKEY_METRICS_API_REVOKE_JOB,
    NGX_HTTP_PASSKEY_METRICS_API_AUTHENTICATOR_CONFIG,
    NGX_HTTP_PASSKEY_METRICS_ROUTES
} ngx_http_passkey_metrics_route_e;


/* what a worker's connection to a Redis server did (the transport's hook) */
typedef enum {
    NGX_HTTP_PASSKEY_METRICS_CONN_UP = 0,       /* ready for commands */
    NGX_HTTP_PASSKEY_METRICS_CONN_DOWN,         /* closed, lost */
    NGX_HTTP_PASSKEY_METRICS_CONN_FAILED        /* an attempt failed */
} ngx_http_passkey_metrics_conn_e;


/*
 * An API call that ended after ms: result is its
 * ngx_http_passkey_http_result_e, status the answer's, if there was one.
 */
void ngx_http_passkey_metrics_api(ngx_uint_t route, ngx_uint_t result,
    ngx_uint_t status, ngx_msec_t ms);

/*
 * A worker's connection to server is up (ready for commands), or one that
 * was up is down, or an attempt to make one failed.  The connections of a
 * cluster's nodes count for their configured server.  A down beyond this
 * worker's ups counts nothing.
 */
void ngx_http_passkey_metrics_redis_conn(
    ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_metrics_conn_e event);


#endif /* _NGX_HTTP_PASSKEY_METRICS_HOOK_H_INCLUDED_ */

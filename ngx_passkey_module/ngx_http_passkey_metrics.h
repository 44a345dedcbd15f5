
/*
 * Copyright (C) ngx_passkey_module authors
 */


#ifndef _NGX_HTTP_PASSKEY_METRICS_H_INCLUDED_
#define _NGX_HTTP_PASSKEY_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_redis.h"
#include "ngx_http_passkey_metrics_hook.h"


/*
 * Counters for passkey_metrics, in the passkey_metrics zone that every
 * worker adds to with atomic operations, without a lock
 * (ngx_http_passkey_metrics.c); read and written out as Prometheus text by
 * ngx_http_passkey_metrics_handler.c.  Every label takes its values from a
 * fixed set or from the configuration: no username, id or address of a
 * request.  Without a passkey_metrics location there is no zone, and
 * every function here does nothing.
 */


/* the endpoints a request may go to */
typedef enum {
    NGX_HTTP_PASSKEY_METRICS_BIND = 0,      /* authenticated mode */
    NGX_HTTP_PASSKEY_METRICS_SIGNUP,
    NGX_HTTP_PASSKEY_METRICS_INVOKE,
    NGX_HTTP_PASSKEY_METRICS_JOB_STATUS,
    NGX_HTTP_PASSKEY_METRICS_JOB_REVOKE,
    NGX_HTTP_PASSKEY_METRICS_ENDPOINTS
} ngx_http_passkey_metrics_endpoint_e;


/* what became of a Redis command, by its caller's account */
typedef enum {
    NGX_HTTP_PASSKEY_METRICS_REDIS_REPLY = 0,
    NGX_HTTP_PASSKEY_METRICS_REDIS_ERROR,       /* an -ERR reply */
    NGX_HTTP_PASSKEY_METRICS_REDIS_TIMEOUT,
    NGX_HTTP_PASSKEY_METRICS_REDIS_UNAVAILABLE,
    NGX_HTTP_PASSKEY_METRICS_REDIS_RESULTS
} ngx_http_passkey_metrics_redis_e;


/* an HTTP status, from 0 to 599 */
#define NGX_HTTP_PASSKEY_METRICS_STATUSES      600

/* an API call without an answer: ngx_http_passkey_http_result_e - 1 */
#define NGX_HTTP_PASSKEY_METRICS_API_FAILURES  5

/* the problem codes of docs/directives.md, and "other" */
#define NGX_HTTP_PASSKEY_METRICS_CODES         47

#define NGX_HTTP_PASSKEY_METRICS_BUCKETS       11


/* times in ms: buckets[i] counts those up to bounds[i], the last the rest */
typedef struct {
    ngx_atomic_t                      buckets[
                                      NGX_HTTP_PASSKEY_METRICS_BUCKETS + 1];
    ngx_atomic_t                      count;
    ngx_atomic_t                      sum;
} ngx_http_passkey_metrics_hist_t;


/* one configured Redis server */
typedef struct {
    uint32_t                          key;      /* crc32 of its settings */
    ngx_atomic_t                      commands[
                                      NGX_HTTP_PASSKEY_METRICS_REDIS_RESULTS];
    ngx_http_passkey_metrics_hist_t   latency;

    /* the last command's outcome: 1 a reply, 0 none; seen: there was one */
    ngx_atomic_t                      up;
    ngx_atomic_t                      seen;

    /* from the transport's hook, once it calls it (hooked) */
    ngx_atomic_t                      hooked;
    ngx_atomic_t                      connections;
    ngx_atomic_t                      connects;
    ngx_atomic_t                      connect_failures;
} ngx_http_passkey_metrics_server_t;


/* an API call's slot: its status, or after all statuses its failure */
#define NGX_HTTP_PASSKEY_METRICS_API_SLOTS                                    \
    (NGX_HTTP_PASSKEY_METRICS_STATUSES + NGX_HTTP_PASSKEY_METRICS_API_FAILURES)


typedef struct {
    ngx_atomic_t                      requests[
                                      NGX_HTTP_PASSKEY_METRICS_ENDPOINTS][
                                      NGX_HTTP_PASSKEY_METRICS_STATUSES];
    ngx_atomic_t                      problems[
                                      NGX_HTTP_PASSKEY_METRICS_ENDPOINTS][
                                      NGX_HTTP_PASSKEY_METRICS_CODES];
    ngx_atomic_t                      api_calls[
                                      NGX_HTTP_PASSKEY_METRICS_ROUTES][
                                      NGX_HTTP_PASSKEY_METRICS_API_SLOTS];
    ngx_http_passkey_metrics_hist_t   api_latency[
                                      NGX_HTTP_PASSKEY_METRICS_ROUTES];
    ngx_atomic_t                      token_refreshes[2];   /* failed, ok */
    ngx_atomic_t                      claims;

    /*
     * what each process adds to the gauges now, by its process slot: the
     * claims held, then the connections to each server (nservers)
     */
    ngx_atomic_int_t                 *ledger;

    ngx_uint_t                        nservers;
    ngx_http_passkey_metrics_server_t  servers[1];
} ngx_http_passkey_metrics_sh_t;


/* the names of the labels' values, for the handler */
extern ngx_str_t  ngx_http_passkey_metrics_endpoints[];
extern ngx_str_t  ngx_http_passkey_metrics_routes[];
extern ngx_str_t  ngx_http_passkey_metrics_api_failures[];
extern ngx_str_t  ngx_http_passkey_metrics_redis_results[];
extern ngx_str_t  ngx_http_passkey_metrics_codes[];
extern ngx_msec_t  ngx_http_passkey_metrics_api_bounds[];
extern ngx_msec_t  ngx_http_passkey_metrics_redis_bounds[];


/* ngx_http_passkey_metrics.c: the zone and its counters */
ngx_int_t ngx_http_passkey_metrics_init_zone(ngx_conf_t *cf);
ngx_http_passkey_metrics_sh_t *ngx_http_passkey_metrics_zone(
    ngx_http_request_t *r);
ngx_int_t ngx_http_passkey_metrics_init_process(ngx_cycle_t *cycle);
void ngx_http_passkey_metrics_exit_process(ngx_cycle_t *cycle);

ngx_uint_t ngx_http_passkey_metrics_route(ngx_str_t *method,
    ngx_str_t *path);
void ngx_http_passkey_metrics_problem(ngx_http_request_t *r, char *code);
void ngx_http_passkey_metrics_token(ngx_uint_t ok);
void ngx_http_passkey_metrics_claim(ngx_int_t n);

/*
 * ngx_http_passkey_redis_send(), with the command's time and outcome
 * counted when its handler runs.
 */
ngx_int_t ngx_http_passkey_metrics_redis_send(
    ngx_http_passkey_redis_server_t *server, ngx_http_passkey_redis_op_t *op,
    ngx_uint_t argc, ngx_str_t *argv);


ngx_int_t ngx_http_passkey_metrics_log_handler(ngx_http_request_t *r);

/* ngx_http_passkey_metrics_handler.c */
ngx_int_t ngx_http_passkey_metrics_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_PASSKEY_METRICS_H_INCLUDED_ */

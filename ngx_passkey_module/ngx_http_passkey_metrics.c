
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * The passkey_metrics zone: fixed arrays of counters that every worker
 * adds to with ngx_atomic_fetch_add(), never under a lock, so that
 * counting costs a request one atomic add or a few.  The zone exists only
 * with a passkey_metrics location; it is reused over a reload of the same
 * size, so the counters go on, and a Redis server's counters are kept
 * while the server's settings are the same.
 *
 * Each worker knows the zone from its start (init_process): the API and
 * Redis transports count without a request at hand.
 */


/* the caller's handler and data of a Redis command being timed */
typedef struct {
    ngx_http_passkey_redis_done_pt    handler;
    void                             *data;
    ngx_msec_t                        start;
    ngx_http_passkey_metrics_server_t  *server;
} ngx_http_passkey_metrics_timed_t;


static ngx_int_t ngx_http_passkey_metrics_init_shm(ngx_shm_zone_t *shm_zone,
    void *data);
static uint32_t ngx_http_passkey_metrics_server_key(
    ngx_http_passkey_redis_server_t *server);
static ngx_uint_t ngx_http_passkey_metrics_settle(
    ngx_http_passkey_metrics_sh_t *sh);
static ngx_int_t ngx_http_passkey_metrics_endpoint(ngx_http_request_t *r);
static ngx_http_passkey_metrics_server_t *ngx_http_passkey_metrics_server(
    ngx_http_passkey_redis_server_t *server, ngx_uint_t *index);
static void ngx_http_passkey_metrics_redis_done(
    ngx_http_passkey_redis_op_t *op);
static void ngx_http_passkey_metrics_observe(
    ngx_http_passkey_metrics_hist_t *h, ngx_msec_t *bounds, ngx_msec_t ms);


ngx_str_t  ngx_http_passkey_metrics_endpoints[] = {
    ngx_string("bind"),
    ngx_string("signup"),
    ngx_string("invoke"),
    ngx_string("job_status"),
    ngx_string("job_revoke")
};


ngx_str_t  ngx_http_passkey_metrics_routes[] = {
    ngx_string("other"),
    ngx_string("token"),
    ngx_string("list_identities"),
    ngx_string("create_identity"),
    ngx_string("create_job"),
    ngx_string("get_job"),
    ngx_string("revoke_job"),
    ngx_string("authenticator_config")
};


/* ngx_http_passkey_http_result_e, from NGX_HTTP_PASSKEY_HTTP_TIMEOUT on */

ngx_str_t  ngx_http_passkey_metrics_api_failures[] = {
    ngx_string("timeout"),
    ngx_string("unreachable"),
    ngx_string("tls"),
    ngx_string("too_large"),
    ngx_string("error")
};


ngx_str_t  ngx_http_passkey_metrics_redis_results[] = {
    ngx_string("reply"),
    ngx_string("error"),
    ngx_string("timeout"),
    ngx_string("unavailable")
};


/* the codes of docs/directives.md ("Problem details"); the last: others */

ngx_str_t  ngx_http_passkey_metrics_codes[] = {
    ngx_string("method_not_allowed"), ngx_string("unsupported_media_type"),
    ngx_string("body_too_large"), ngx_string("invalid_json"),
    ngx_string("forbidden_origin"), ngx_string("unauthenticated"),
    ngx_string("identity_mismatch"), ngx_string("invalid_verified_user"),
    ngx_string("missing_username"), ngx_string("missing_email"),
    ngx_string("invalid_idempotency_key"),
    ngx_string("idempotency_key_reused"), ngx_string("request_in_progress"),
    ngx_string("duplicate_request"), ngx_string("rate_limited"),
    ngx_string("email_cooldown"), ngx_string("invalid_username"),
    ngx_string("invalid_display_name"), ngx_string("invalid_email"),
    ngx_string("invalid_identity"), ngx_string("not_found"),
    ngx_string("conflict"), ngx_string("unprocessable"),
    ngx_string("api_rejected_request"), ngx_string("api_unauthorized"),
    ngx_string("api_forbidden"), ngx_string("api_credentials_rejected"),
    ngx_string("api_rate_limited"), ngx_string("api_error"),
    ngx_string("api_unexpected_status"), ngx_string("api_timeout"),
    ngx_string("bind_timeout"), ngx_string("api_unreachable"),
    ngx_string("api_bad_response"), ngx_string("redis_unavailable"),
    ngx_string("invalid_delivery_method"), ngx_string("invalid_redirect"),
    ngx_string("invalid_link"), ngx_string("foreign_link"),
    ngx_string("unknown_job"), ngx_string("link_expired"),
    ngx_string("job_revoked"), ngx_string("job_complete"),
    ngx_string("link_already_used"), ngx_string("invalid_job_id"),
    ngx_string("internal_error"), ngx_string("other")
};


/* the buckets' upper bounds, in ms */

ngx_msec_t  ngx_http_passkey_metrics_api_bounds[] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};


ngx_msec_t  ngx_http_passkey_metrics_redis_bounds[] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500
};


/*
 * per worker: the zone, the configured servers, and this process's entry
 * of the ledger, which it alone changes: the claims it holds, then its
 * connections to each server
 */
static ngx_http_passkey_metrics_sh_t  *ngx_http_passkey_metrics_sh;
static ngx_array_t                    *ngx_http_passkey_metrics_servers;
static ngx_atomic_int_t               *ngx_http_passkey_metrics_mine;


#define ngx_http_passkey_metrics_ledger_size(n)                               \
    (NGX_MAX_PROCESSES * (1 + (n)) * sizeof(ngx_atomic_int_t))


ngx_int_t
ngx_http_passkey_metrics_init_zone(ngx_conf_t *cf)
{
    size_t                         size;
    ngx_str_t                      name = ngx_string("passkey_metrics");
    ngx_http_passkey_main_conf_t  *pmcf;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_passkey_module);

    if (!pmcf->metrics) {
        return NGX_OK;
    }

    size = 8 * ngx_pagesize + sizeof(ngx_http_passkey_metrics_sh_t)
           + pmcf->redis_servers.nelts
             * sizeof(ngx_http_passkey_metrics_server_t)
           + ngx_http_passkey_metrics_ledger_size(
                 ngx_max(pmcf->redis_servers.nelts, 1));

    size = ngx_align(size, ngx_pagesize);

    pmcf->metrics_zone = ngx_shared_memory_add(cf, &name, size,
                                               &ngx_http_passkey_module);
    if (pmcf->metrics_zone == NULL) {
        return NGX_ERROR;
    }

    pmcf->metrics_zone->init = ngx_http_passkey_metrics_init_shm;
    pmcf->metrics_zone->data = pmcf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_passkey_metrics_init_shm(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_passkey_main_conf_t  *pmcf = shm_zone->data;

    size_t                             size;
    uint32_t                           key;
    ngx_uint_t                         i, n;
    ngx_slab_pool_t                   *shpool;
    ngx_http_passkey_metrics_sh_t     *sh;
    ngx_http_passkey_redis_server_t  **servers;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    servers = pmcf->redis_servers.elts;
    n = pmcf->redis_servers.nelts;

    size = sizeof(ngx_http_passkey_metrics_sh_t)
           + (n ? n - 1 : 0) * sizeof(ngx_http_passkey_metrics_server_t);

    /*
     * The counters go on over a reload; a server whose slot held another
     * one's counts starts from zero.  A zone of the same size may come
     * with another number of servers: its counters start again, in the
     * room of the old ones.
     */

    if (data && shpool->data) {
        sh = shpool->data;

        if (sh->nservers == (n ? n : 1)) {

            for (i = 0; i < n; i++) {
                key = ngx_http_passkey_metrics_server_key(servers[i]);

                if (sh->servers[i].key != key) {
                    ngx_memzero(&sh->servers[i],
                                sizeof(ngx_http_passkey_metrics_server_t));
                    sh->servers[i].key = key;
                }
            }

            return NGX_OK;
        }

        ngx_slab_free(shpool, sh->ledger);
        ngx_slab_free(shpool, sh);
        shpool->data = NULL;
    }

    /* the struct has room for one server: a zone of none uses it for none */

    sh = ngx_slab_calloc(shpool, size);
    if (sh == NULL) {
        return NGX_ERROR;
    }

    sh->nservers = n ? n : 1;

    sh->ledger = ngx_slab_calloc(shpool,
                                 ngx_http_passkey_metrics_ledger_size(
                                     sh->nservers));
    if (sh->ledger == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        sh->servers[i].key = ngx_http_passkey_metrics_server_key(servers[i]);
    }

    shpool->data = sh;

    /* a zone kept over a reload has its name for the log already */

    if (data) {
        return NGX_OK;
    }

    shpool->log_ctx = ngx_slab_alloc(shpool,
                                     sizeof(" in passkey_metrics zone"));
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in passkey_metrics zone%Z");

    return NGX_OK;
}


/* what tells servers apart: their arguments, as ngx_http_passkey_redis */

static uint32_t
ngx_http_passkey_metrics_server_key(ngx_http_passkey_redis_server_t *server)
{
    return ngx_crc32_short(server->key.data, server->key.len);
}


ngx_http_passkey_metrics_sh_t *
ngx_http_passkey_metrics_zone(ngx_http_request_t *r)
{
    ngx_slab_pool_t               *shpool;
    ngx_http_passkey_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_passkey_module);

    if (pmcf->metrics_zone == NULL) {
        return NULL;
    }

    shpool = (ngx_slab_pool_t *) pmcf->metrics_zone->shm.addr;

    return shpool->data;
}


ngx_int_t
ngx_http_passkey_metrics_init_process(ngx_cycle_t *cycle)
{
    ngx_slab_pool_t                *shpool;
    ngx_http_passkey_metrics_sh_t  *sh;
    ngx_http_passkey_main_conf_t   *pmcf;

    pmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_passkey_module);

    if (pmcf == NULL || pmcf->metrics_zone == NULL) {
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) pmcf->metrics_zone->shm.addr;
    sh = shpool->data;

    ngx_http_passkey_metrics_sh = sh;
    ngx_http_passkey_metrics_servers = &pmcf->redis_servers;
    ngx_http_passkey_metrics_mine = sh->ledger
                                    + ngx_process_slot * (1 + sh->nservers);

    /*
     * a worker that died (a crash, a kill) could not take back what it
     * added to the gauges; the master starts its successor in its slot
     */

    if (ngx_http_passkey_metrics_settle(sh)) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "passkey: took back the claims and Redis connections "
                      "that a worker which did not exit counted in "
                      "passkey_metrics");
    }

    return NGX_OK;
}


/*
 * Takes this process's entry of the ledger out of the gauges, and returns
 * whether there was anything to take.
 */

static ngx_uint_t
ngx_http_passkey_metrics_settle(ngx_http_passkey_metrics_sh_t *sh)
{
    ngx_uint_t         i, n;
    ngx_atomic_int_t  *mine;

    mine = ngx_http_passkey_metrics_mine;
    n = 0;

    if (mine[0]) {
        (void) ngx_atomic_fetch_add(&sh->claims, -mine[0]);
        mine[0] = 0;
        n++;
    }

    for (i = 0; i < sh->nservers; i++) {
        if (mine[1 + i]) {
            (void) ngx_atomic_fetch_add(&sh->servers[i].connections,
                                        -mine[1 + i]);
            mine[1 + i] = 0;
            n++;
        }
    }

    return n;
}


/*
 * this worker's connections are gone with it, and so are the claims of a
 * fast exit's requests
 */

void
ngx_http_passkey_metrics_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_passkey_metrics_sh_t  *sh;

    sh = ngx_http_passkey_metrics_sh;

    if (sh == NULL) {
        return;
    }

    (void) ngx_http_passkey_metrics_settle(sh);

    ngx_http_passkey_metrics_sh = NULL;
}


/*
 * The route of an API call, from its method and the path after
 * .../realms/{r}: the ids in it are not labels, the route is.
 */

ngx_uint_t
ngx_http_passkey_metrics_route(ngx_str_t *method, ngx_str_t *path)
{
    u_char      *p, *last;
    ngx_uint_t   post;

    static u_char  configs[] = "/authenticator-configs/";
    static u_char  identities[] = "/identities";
    static u_char  jobs[] = "/credential-binding-jobs";
    static u_char  revoke[] = ":revoke";

    p = path->data;
    last = p + path->len;
    post = (method->len == 4 && ngx_strncmp(method->data, "POST", 4) == 0);

    if (path->len >= sizeof(configs) - 1
        && ngx_strncmp(p, configs, sizeof(configs) - 1) == 0)
    {
        return NGX_HTTP_PASSKEY_METRICS_API_AUTHENTICATOR_CONFIG;
    }

    if (path->len < sizeof(identities) - 1
        || ngx_strncmp(p, identities, sizeof(identities) - 1) != 0)
    {
        return NGX_HTTP_PASSKEY_METRICS_API_OTHER;
    }

    p += sizeof(identities) - 1;

    if (p == last) {
        return post ? NGX_HTTP_PASSKEY_METRICS_API_CREATE_IDENTITY
                    : NGX_HTTP_PASSKEY_METRICS_API_LIST_IDENTITIES;
    }

    /* "/{identity_id}/credential-binding-jobs[/{job_id}[:revoke]]" */

    p = ngx_strlchr(p + 1, last, '/');

    if (p == NULL
        || (size_t) (last - p) < sizeof(jobs) - 1
        || ngx_strncmp(p, jobs, sizeof(jobs) - 1) != 0)
    {
        return NGX_HTTP_PASSKEY_METRICS_API_OTHER;
    }

    p += sizeof(jobs) - 1;

    if (p == last) {
        return post ? NGX_HTTP_PASSKEY_METRICS_API_CREATE_JOB
                    : NGX_HTTP_PASSKEY_METRICS_API_OTHER;
    }

    if (post
        && (size_t) (last - p) > sizeof(revoke) - 1
        && ngx_strncmp(last - (sizeof(revoke) - 1), revoke,
                       sizeof(revoke) - 1)
           == 0)
    {
        return NGX_HTTP_PASSKEY_METRICS_API_REVOKE_JOB;
    }

    return post ? NGX_HTTP_PASSKEY_METRICS_API_OTHER
                : NGX_HTTP_PASSKEY_METRICS_API_GET_JOB;
}


/* an API call that ended: its status, or how it failed, and its time */

void
ngx_http_passkey_metrics_api(ngx_uint_t route, ngx_uint_t result,
    ngx_uint_t status, ngx_msec_t ms)
{
    ngx_uint_t                      i;
    ngx_http_passkey_metrics_sh_t  *sh;

    sh = ngx_http_passkey_metrics_sh;

    if (sh == NULL || route >= NGX_HTTP_PASSKEY_METRICS_ROUTES) {
        return;
    }

    if (result == 0) {
        i = (status < NGX_HTTP_PASSKEY_METRICS_STATUSES) ? status : 0;

    } else {
        i = NGX_HTTP_PASSKEY_METRICS_STATUSES
            + ngx_min(result, NGX_HTTP_PASSKEY_METRICS_API_FAILURES) - 1;
    }

    (void) ngx_atomic_fetch_add(&sh->api_calls[route][i], 1);

    ngx_http_passkey_metrics_observe(&sh->api_latency[route],
                                     ngx_http_passkey_metrics_api_bounds, ms);
}


/* the endpoint of a request's location, or NGX_ERROR: none */

static ngx_int_t
ngx_http_passkey_metrics_endpoint(ngx_http_request_t *r)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (plcf->bind) {
        return (plcf->bind_mode == NGX_HTTP_PASSKEY_SIGNUP)
               ? NGX_HTTP_PASSKEY_METRICS_SIGNUP
               : NGX_HTTP_PASSKEY_METRICS_BIND;
    }

    if (plcf->invoke) {
        return NGX_HTTP_PASSKEY_METRICS_INVOKE;
    }

    if (plcf->job_status) {
        return NGX_HTTP_PASSKEY_METRICS_JOB_STATUS;
    }

    if (plcf->job_revoke) {
        return NGX_HTTP_PASSKEY_METRICS_JOB_REVOKE;
    }

    return NGX_ERROR;
}


/* a problem answered, by its code */

void
ngx_http_passkey_metrics_problem(ngx_http_request_t *r, char *code)
{
    size_t                          len;
    ngx_int_t                       e;
    ngx_uint_t                      i;
    ngx_http_passkey_metrics_sh_t  *sh;

    sh = ngx_http_passkey_metrics_sh;

    if (sh == NULL) {
        return;
    }

    e = ngx_http_passkey_metrics_endpoint(r);

    if (e == NGX_ERROR) {
        return;
    }

    len = ngx_strlen(code);

    for (i = 0; i < NGX_HTTP_PASSKEY_METRICS_CODES - 1; i++) {
        if (ngx_http_passkey_metrics_codes[i].len == len
            && ngx_strncmp(ngx_http_passkey_metrics_codes[i].data, code, len)
               == 0)
        {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&sh->problems[e][i], 1);
}


/* the log phase: every request of an endpoint's location, by its status */

ngx_int_t
ngx_http_passkey_metrics_log_handler(ngx_http_request_t *r)
{
    ngx_int_t                       e;
    ngx_uint_t                      status;
    ngx_http_passkey_metrics_sh_t  *sh;

    sh = ngx_http_passkey_metrics_sh;

    if (sh == NULL) {
        return NGX_OK;
    }

    e = ngx_http_passkey_metrics_endpoint(r);

    if (e == NGX_ERROR) {
        return NGX_OK;
    }

    /* as the access log has it */

    status = r->err_status ? r->err_status : r->headers_out.status;

    if (status >= NGX_HTTP_PASSKEY_METRICS_STATUSES) {
        status = 0;
    }

    (void) ngx_atomic_fetch_add(&sh->requests[e][status], 1);

    return NGX_OK;
}


/* a token request that ended, with a token (ok) or without */

void
ngx_http_passkey_metrics_token(ngx_uint_t ok)
{
    ngx_http_passkey_metrics_sh_t  *sh;

    sh = ngx_http_passkey_metrics_sh;

    if (sh != NULL) {
        (void) ngx_atomic_fetch_add(&sh->token_refreshes[ok ? 1 : 0], 1);
    }
}


/* a duplicate lock or idempotency claim taken (1) or given up (-1) */

void
ngx_http_passkey_metrics_claim(ngx_int_t n)
{
    ngx_http_passkey_metrics_sh_t  *sh;

    sh = ngx_http_passkey_metrics_sh;

    if (sh != NULL) {
        (void) ngx_atomic_fetch_add(&sh->claims, n);
        ngx_http_passkey_metrics_mine[0] += n;
    }
}


ngx_int_t
ngx_http_passkey_metrics_redis_send(ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_op_t *op, ngx_uint_t argc, ngx_str_t *argv)
{
    ngx_int_t                           rc;
    ngx_http_passkey_metrics_timed_t   *t;
    ngx_http_passkey_metrics_server_t  *ms;

    ms = ngx_http_passkey_metrics_server(server, NULL);

    if (ms == NULL) {
        return ngx_http_passkey_redis_send(server, op, argc, argv);
    }

    t = ngx_palloc(op->pool, sizeof(ngx_http_passkey_metrics_timed_t));
    if (t == NULL) {
        return NGX_ERROR;
    }

    t->handler = op->handler;
    t->data = op->data;
    t->start = ngx_current_msec;
    t->server = ms;

    op->handler = ngx_http_passkey_metrics_redis_done;
    op->data = t;

    rc = ngx_http_passkey_redis_send(server, op, argc, argv);

    if (rc != NGX_OK) {
        op->handler = t->handler;
        op->data = t->data;
    }

    return rc;
}


static void
ngx_http_passkey_metrics_redis_done(ngx_http_passkey_redis_op_t *op)
{
    ngx_http_passkey_metrics_timed_t *t = op->data;

    ngx_uint_t                          result;
    ngx_http_passkey_metrics_server_t  *ms;

    op->handler = t->handler;
    op->data = t->data;

    ms = t->server;

    switch (op->result) {

    case NGX_HTTP_PASSKEY_REDIS_OK:
        result = (op->type == NGX_HTTP_PASSKEY_REDIS_ERROR)
                 ? NGX_HTTP_PASSKEY_METRICS_REDIS_ERROR
                 : NGX_HTTP_PASSKEY_METRICS_REDIS_REPLY;
        break;

    case NGX_HTTP_PASSKEY_REDIS_TIMEOUT:
        result = NGX_HTTP_PASSKEY_METRICS_REDIS_TIMEOUT;
        break;

    default:
        result = NGX_HTTP_PASSKEY_METRICS_REDIS_UNAVAILABLE;
        break;
    }

    /* the zone may be gone: a command of the worker's last moments */

    if (ngx_http_passkey_metrics_sh != NULL) {
        (void) ngx_atomic_fetch_add(&ms->commands[result], 1);

        /* a timeout says nothing of the connection */

        if (result != NGX_HTTP_PASSKEY_METRICS_REDIS_TIMEOUT) {
            ms->up = (result != NGX_HTTP_PASSKEY_METRICS_REDIS_UNAVAILABLE);
            ms->seen = 1;
        }

        ngx_http_passkey_metrics_observe(&ms->latency,
                                         ngx_http_passkey_metrics_redis_bounds,
                                         ngx_current_msec - t->start);
    }

    op->handler(op);
}


void
ngx_http_passkey_metrics_redis_conn(ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_metrics_conn_e event)
{
    ngx_uint_t                          i;
    ngx_http_passkey_metrics_server_t  *ms;

    ms = ngx_http_passkey_metrics_server(server, &i);

    if (ms == NULL) {
        return;
    }

    ms->hooked = 1;

    /* a server may have several connections: a cluster's nodes */

    switch (event) {

    case NGX_HTTP_PASSKEY_METRICS_CONN_UP:
        ngx_http_passkey_metrics_mine[1 + i]++;
        (void) ngx_atomic_fetch_add(&ms->connections, 1);
        (void) ngx_atomic_fetch_add(&ms->connects, 1);
        break;

    case NGX_HTTP_PASSKEY_METRICS_CONN_FAILED:
        (void) ngx_atomic_fetch_add(&ms->connect_failures, 1);
        break;

    default: /* NGX_HTTP_PASSKEY_METRICS_CONN_DOWN */
        if (ngx_http_passkey_metrics_mine[1 + i]) {
            ngx_http_passkey_metrics_mine[1 + i]--;
            (void) ngx_atomic_fetch_add(&ms->connections, -1);
        }

        break;
    }
}


/* a configured server's counters in this worker's zone, and its index */

static ngx_http_passkey_metrics_server_t *
ngx_http_passkey_metrics_server(ngx_http_passkey_redis_server_t *server,
    ngx_uint_t *index)
{
    ngx_uint_t                         i;
    ngx_http_passkey_metrics_sh_t     *sh;
    ngx_http_passkey_redis_server_t  **servers;

    sh = ngx_http_passkey_metrics_sh;

    if (sh == NULL) {
        return NULL;
    }

    servers = ngx_http_passkey_metrics_servers->elts;

    for (i = 0; i < ngx_http_passkey_metrics_servers->nelts; i++) {
        if (servers[i] == server && i < sh->nservers) {

            if (index) {
                *index = i;
            }

            return &sh->servers[i];
        }
    }

    return NULL;
}


static void
ngx_http_passkey_metrics_observe(ngx_http_passkey_metrics_hist_t *h,
    ngx_msec_t *bounds, ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_PASSKEY_METRICS_BUCKETS; i++) {
        if (ms <= bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&h->buckets[i], 1);
    (void) ngx_atomic_fetch_add(&h->sum, ms);
    (void) ngx_atomic_fetch_add(&h->count, 1);
}

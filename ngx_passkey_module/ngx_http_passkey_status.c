
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"
#include "ngx_http_passkey_job_endpoint.h"


/*
 * passkey_job_status: GET <location>/<job_id> answers the job kept in
 * Redis, refreshed from Beyond Identity at most once per
 * passkey_job_refresh_interval, whichever worker or node the requests
 * reach: Redis hands the refresh to one request when it is due.
 */


static void ngx_http_passkey_status_job(ngx_http_passkey_status_ctx_t *sc);
static void ngx_http_passkey_status_refreshed(ngx_http_passkey_bi_call_t *bc);
static void ngx_http_passkey_status_refresh_failed(
    ngx_http_passkey_status_ctx_t *sc);


static ngx_http_passkey_job_endpoint_t  ngx_http_passkey_status_endpoint = {
    ngx_null_string,                       /* the job id alone */
    1,                                     /* claims the refresh when due */
    ngx_http_passkey_status_job
};


ngx_int_t
ngx_http_passkey_job_status_handler(ngx_http_request_t *r)
{
    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_passkey_send_not_allowed(r, "GET, HEAD");
    }

    return ngx_http_passkey_job_start(r, &ngx_http_passkey_status_endpoint);
}


/* Redis decides on the claim; a final state is never refreshed anyway */

static void
ngx_http_passkey_status_job(ngx_http_passkey_status_ctx_t *sc)
{
    ngx_http_request_t  *r;

    r = sc->request;

    if (!sc->claimed || ngx_http_passkey_final_state(&sc->vars.job_state)) {
        ngx_http_passkey_job_send(sc);
        return;
    }

    r->connection->log->action = "refreshing the passkey binding job";

    if (ngx_http_passkey_bi_job(&sc->bi, r, &sc->vars.identity_id,
                                &sc->vars.job_id, "GET", "",
                                ngx_http_passkey_status_refreshed, sc)
        != NGX_OK)
    {
        ngx_http_passkey_status_refresh_failed(sc);
    }
}


/*
 * A failed refresh is not the client's problem: the stored state is
 * still the best answer there is, marked "refreshed":false.  A 404,
 * though, marks the job gone (ngx_http_passkey_job_gone()).
 */

static void
ngx_http_passkey_status_refreshed(ngx_http_passkey_bi_call_t *bc)
{
    ngx_http_passkey_status_ctx_t *sc = bc->data;

    ngx_str_t            state, id, expire, now, fields[7];
    ngx_pool_t          *pool;
    ngx_uint_t           n;
    ngx_http_request_t  *r;

    r = sc->request;
    pool = r->pool;

    if (bc->result == NGX_HTTP_PASSKEY_API_OK
        && bc->status == NGX_HTTP_NOT_FOUND)
    {
        ngx_http_passkey_job_gone(sc);
        return;
    }

    if (bc->result != NGX_HTTP_PASSKEY_API_OK || bc->status != NGX_HTTP_OK) {
        ngx_http_passkey_status_refresh_failed(sc);
        return;
    }

    /* the API answers the bare job; unknown states are passed through */

    if (ngx_http_passkey_job_state(pool, bc, &state, &expire) != NGX_OK) {
        ngx_http_passkey_status_refresh_failed(sc);
        return;
    }

    if (ngx_http_passkey_json_string(pool, bc->json, "id", &id) == NGX_OK
        && (id.len != sc->vars.job_id.len
            || ngx_strncmp(id.data, sc->vars.job_id.data, id.len) != 0))
    {
        bc->result = NGX_HTTP_PASSKEY_API_BAD_RESPONSE;
        bc->error = "the answer is about another job";
        ngx_http_passkey_status_refresh_failed(sc);
        return;
    }

    if (ngx_http_passkey_rfc3339_now(pool, &now) != NGX_OK) {
        ngx_http_passkey_job_fail(sc, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  "internal_error", "out of memory");
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "passkey: binding job %V refreshed: %V",
                   &sc->vars.job_id, &state);

    sc->refresh = NGX_HTTP_PASSKEY_REFRESH_OK;
    sc->vars.job_state = state;
    sc->refreshed_at = now;

    if (expire.len) {
        sc->expire_time = expire;
    }

    sc->status = NGX_HTTP_OK;

    /* the key's TTL stays: it was set from the expire_time at creation */

    ngx_str_set(&fields[0], "1");
    ngx_str_set(&fields[1], "state");
    fields[2] = state;
    ngx_str_set(&fields[3], "refreshed_at");
    fields[4] = now;
    n = 5;

    if (expire.len) {
        ngx_str_set(&fields[5], "expire_time");
        fields[6] = expire;
        n = 7;
    }

    ngx_http_passkey_job_update(sc, n, fields);
}


static void
ngx_http_passkey_status_refresh_failed(ngx_http_passkey_status_ctx_t *sc)
{
    ngx_http_passkey_bi_call_t  *bc;

    bc = &sc->bi;

    if (bc->result != NGX_HTTP_PASSKEY_API_OK) {
        ngx_log_error(NGX_LOG_ERR, sc->request->connection->log, 0,
                      "passkey: refreshing binding job %V failed, answering "
                      "the stored state: %s", &sc->vars.job_id,
                      bc->error ? bc->error : "unknown error");

    } else {
        ngx_log_error(NGX_LOG_ERR, sc->request->connection->log, 0,
                      "passkey: refreshing binding job %V failed, answering "
                      "the stored state: %V %V answered %ui \"%V\" \"%V\"",
                      &sc->vars.job_id, &bc->method, &bc->path, bc->status,
                      &bc->log_code, &bc->log_message);
    }

    sc->refresh = NGX_HTTP_PASSKEY_REFRESH_FAILED;

    ngx_http_passkey_job_send(sc);
}

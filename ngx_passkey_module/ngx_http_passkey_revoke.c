
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"
#include "ngx_http_passkey_job_endpoint.h"


/*
 * passkey_job_revoke: POST <location>/<job_id>[:revoke] revokes the job
 * at Beyond Identity and records that in Redis, where the job's emailed
 * link then finds it revoked.
 */


static void ngx_http_passkey_revoke_job(ngx_http_passkey_status_ctx_t *sc);
static void ngx_http_passkey_revoke_answered(ngx_http_passkey_bi_call_t *bc);


static ngx_http_passkey_job_endpoint_t  ngx_http_passkey_revoke_endpoint = {
    ngx_string(":revoke"),                 /* may end the job id */
    0,                                     /* reads the job as it is */
    ngx_http_passkey_revoke_job
};


ngx_int_t
ngx_http_passkey_job_revoke_handler(ngx_http_request_t *r)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_passkey_send_not_allowed(r, "POST");
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (ngx_http_passkey_check_origin(r, plcf->allowed_origins) != NGX_OK) {
        return ngx_http_passkey_send_early(r, NGX_HTTP_FORBIDDEN,
                                           "forbidden_origin");
    }

    return ngx_http_passkey_job_start(r, &ngx_http_passkey_revoke_endpoint);
}


/*
 * A job revoked already is answered as it is, and a complete one is
 * refused, without asking the API: neither state can change any more.
 * Other final states (EXPIRED, FAILED_TO_SEND) are left to the API.
 */

static void
ngx_http_passkey_revoke_job(ngx_http_passkey_status_ctx_t *sc)
{
    ngx_str_t           *state;
    ngx_http_request_t  *r;

    r = sc->request;
    state = &sc->vars.job_state;

    if (state->len == sizeof("REVOKED") - 1
        && ngx_strncmp(state->data, "REVOKED", state->len) == 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: binding job %V was revoked already",
                      &sc->vars.job_id);

        ngx_http_passkey_job_send(sc);
        return;
    }

    if (state->len == sizeof("COMPLETE") - 1
        && ngx_strncmp(state->data, "COMPLETE", state->len) == 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: binding job %V is complete and cannot be "
                      "revoked", &sc->vars.job_id);

        ngx_http_passkey_job_fail(sc, NGX_HTTP_CONFLICT, "job_complete",
                                  "the job is complete and cannot be "
                                  "revoked");
        return;
    }

    r->connection->log->action = "revoking the passkey binding job";

    if (ngx_http_passkey_bi_job(&sc->bi, r, &sc->vars.identity_id,
                                &sc->vars.job_id, "POST", ":revoke",
                                ngx_http_passkey_revoke_answered, sc)
        != NGX_OK)
    {
        ngx_http_passkey_revoke_answered(&sc->bi);
    }
}


static void
ngx_http_passkey_revoke_answered(ngx_http_passkey_bi_call_t *bc)
{
    ngx_http_passkey_status_ctx_t *sc = bc->data;

    ngx_str_t                    now, fields[5];
    ngx_http_request_t          *r;
    ngx_http_passkey_problem_t   pb;

    r = sc->request;

    if (bc->result != NGX_HTTP_PASSKEY_API_OK
        || (bc->status != NGX_HTTP_OK && bc->status != NGX_HTTP_CONFLICT
            && bc->status != NGX_HTTP_NOT_FOUND))
    {
        ngx_http_passkey_api_problem(r, bc, 0, &pb);
        ngx_http_passkey_job_fail(sc, pb.status, pb.code, pb.detail);
        return;
    }

    if (bc->status == NGX_HTTP_NOT_FOUND) {
        ngx_http_passkey_job_gone(sc);
        return;
    }

    if (ngx_http_passkey_rfc3339_now(r->pool, &now) != NGX_OK) {
        ngx_http_passkey_job_fail(sc, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  "internal_error", "out of memory");
        return;
    }

    /* what the API says is final: stored whatever Redis holds */

    ngx_str_set(&fields[0], "0");
    ngx_str_set(&fields[1], "state");

    if (bc->status == NGX_HTTP_CONFLICT) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: binding job %V is complete and cannot be "
                      "revoked (%V %V answered 409)", &sc->vars.job_id,
                      &bc->method, &bc->path);

        ngx_str_set(&sc->vars.job_state, "COMPLETE");

        sc->status = NGX_HTTP_CONFLICT;
        sc->code = "job_complete";
        sc->detail = "the job is complete and cannot be revoked";

        fields[2] = sc->vars.job_state;

        ngx_http_passkey_job_update(sc, 3, fields);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "passkey: binding job %V of identity %V revoked",
                  &sc->vars.job_id, &sc->vars.identity_id);

    ngx_str_set(&sc->vars.job_state, "REVOKED");
    sc->revoked_at = now;
    sc->status = NGX_HTTP_OK;

    fields[2] = sc->vars.job_state;
    ngx_str_set(&fields[3], "revoked_at");
    fields[4] = now;

    ngx_http_passkey_job_update(sc, 5, fields);
}

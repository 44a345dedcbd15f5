
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * passkey_health: whether this nginx can serve binds, for a load
 * balancer.  Two checks run at once: a PING to the location's Redis
 * (within passkey_redis_timeout) and an access token, valid in the shared
 * cache or fetched now (within the time a request waits for one; during
 * the back-off after a failed fetch, that failure at once).  The answer
 * names no secret, no address and no error text:
 *
 *     {"status":"ok","redis":"ok","token":"valid"}
 *
 * 200 "ok": both are fine; 200 "degraded": Redis failed but
 * passkey_redis_down allow lets binds go on without it; 503 "down":
 * anything else.
 */


typedef struct {
    ngx_http_request_t               *request;
    ngx_http_passkey_redis_op_t       redis;
    ngx_http_passkey_token_wait_t     wait;

    char                             *redis_state;
    char                             *token_state;

    unsigned                          redis_ok:1;
    unsigned                          token_ok:1;
    unsigned                          redis_pending:1;
    unsigned                          token_pending:1;
} ngx_http_passkey_health_ctx_t;


static void ngx_http_passkey_health_cleanup(void *data);
static void ngx_http_passkey_health_pong(ngx_http_passkey_redis_op_t *op);
static void ngx_http_passkey_health_token(ngx_http_passkey_token_wait_t *w);
static void ngx_http_passkey_health_token_state(
    ngx_http_passkey_health_ctx_t *hc, ngx_int_t rc, char *ok);
static void ngx_http_passkey_health_done(ngx_http_passkey_health_ctx_t *hc);
static ngx_int_t ngx_http_passkey_health_send(
    ngx_http_passkey_health_ctx_t *hc);


ngx_int_t
ngx_http_passkey_health_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_str_t                       argv[1];
    ngx_pool_cleanup_t             *cln;
    ngx_http_passkey_loc_conf_t    *plcf;
    ngx_http_passkey_health_ctx_t  *hc;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_passkey_send_not_allowed(r, "GET, HEAD");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    hc = ngx_pcalloc(r->pool, sizeof(ngx_http_passkey_health_ctx_t));
    if (hc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    hc->request = r;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_passkey_health_cleanup;
    cln->data = hc;

    r->connection->log->action = "checking passkey health";

    ngx_str_set(&argv[0], "PING");

    if (ngx_http_passkey_redis_ask(r, &hc->redis,
                                   ngx_http_passkey_health_pong, hc, 1, argv)
        == NGX_OK)
    {
        hc->redis_pending = 1;

    } else {
        hc->redis_state = "unavailable";
    }

    if (!ngx_http_passkey_token_renewable(plcf->token)) {
        hc->token_state = "static";
        hc->token_ok = 1;

    } else {
        hc->wait.pool = r->pool;
        hc->wait.log = r->connection->log;
        hc->wait.handler = ngx_http_passkey_health_token;
        hc->wait.data = hc;

        /* NGX_DECLINED: the back-off after a failed fetch */

        rc = ngx_http_passkey_token_get(plcf->token, &hc->wait);

        if (rc == NGX_AGAIN) {
            hc->token_pending = 1;

        } else {
            ngx_http_passkey_health_token_state(hc, rc, "valid");
        }
    }

    if (!hc->redis_pending && !hc->token_pending) {
        return ngx_http_passkey_health_send(hc);
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_passkey_health_cleanup(void *data)
{
    ngx_http_passkey_health_ctx_t *hc = data;

    if (hc->redis_pending) {
        ngx_http_passkey_redis_cancel(&hc->redis);
        hc->redis_pending = 0;
    }

    if (hc->token_pending) {
        ngx_http_passkey_token_cancel(&hc->wait);
        hc->token_pending = 0;
    }

}


static void
ngx_http_passkey_health_pong(ngx_http_passkey_redis_op_t *op)
{
    ngx_http_passkey_health_ctx_t *hc = op->data;

    hc->redis_pending = 0;

    if (op->result == NGX_HTTP_PASSKEY_REDIS_TIMEOUT) {
        hc->redis_state = "timeout";

    } else if (op->result != NGX_HTTP_PASSKEY_REDIS_OK) {
        hc->redis_state = "unavailable";

    } else if (op->type == NGX_HTTP_PASSKEY_REDIS_ERROR) {
        hc->redis_state = "error";

    } else {
        hc->redis_state = "ok";
        hc->redis_ok = 1;
    }

    ngx_http_passkey_health_done(hc);
}


static void
ngx_http_passkey_health_token(ngx_http_passkey_token_wait_t *w)
{
    ngx_http_passkey_health_ctx_t *hc = w->data;

    hc->token_pending = 0;

    ngx_http_passkey_health_token_state(hc,
        (w->result == NGX_HTTP_PASSKEY_API_OK) ? NGX_OK : NGX_DECLINED,
        "fetched");

    ngx_http_passkey_health_done(hc);
}


/* what ngx_http_passkey_token_get() gave, now or later */

static void
ngx_http_passkey_health_token_state(ngx_http_passkey_health_ctx_t *hc,
    ngx_int_t rc, char *ok)
{
    /* the token itself is not wanted here */

    ngx_explicit_memzero(hc->wait.token.data, hc->wait.token.len);

    if (rc == NGX_OK) {
        hc->token_state = ok;
        hc->token_ok = 1;
        return;
    }

    if (rc != NGX_DECLINED) {
        hc->token_state = "error";
        return;
    }

    switch (hc->wait.result) {

    case NGX_HTTP_PASSKEY_API_TIMEOUT:
        hc->token_state = "timeout";
        break;

    case NGX_HTTP_PASSKEY_API_DENIED:
        hc->token_state = "rejected";
        break;

    case NGX_HTTP_PASSKEY_API_INTERNAL:
        hc->token_state = "error";
        break;

    default:
        hc->token_state = "failed";
        break;
    }
}


static void
ngx_http_passkey_health_done(ngx_http_passkey_health_ctx_t *hc)
{
    if (hc->redis_pending || hc->token_pending) {
        return;
    }

    ngx_http_passkey_finalize(hc->request, ngx_http_passkey_health_send(hc));
}


static ngx_int_t
ngx_http_passkey_health_send(ngx_http_passkey_health_ctx_t *hc)
{
    char                         *status;
    ngx_str_t                     s;
    ngx_uint_t                    code;
    ngx_http_request_t           *r;
    ngx_http_passkey_json_t      *json;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = hc->request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (hc->redis_ok && hc->token_ok) {
        status = "ok";
        code = NGX_HTTP_OK;

    } else if (hc->token_ok && plcf->redis_down == NGX_HTTP_PASSKEY_ALLOW) {
        status = "degraded";
        code = NGX_HTTP_OK;

    } else {
        status = "down";
        code = NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    if (!hc->redis_ok || !hc->token_ok) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey health: redis %s, access token %s",
                      hc->redis_state, hc->token_state);
    }

    json = ngx_http_passkey_json_object(r->pool);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s.data = (u_char *) status;
    s.len = ngx_strlen(status);

    if (ngx_http_passkey_json_set_string(json, "status", &s) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s.data = (u_char *) hc->redis_state;
    s.len = ngx_strlen(hc->redis_state);

    if (ngx_http_passkey_json_set_string(json, "redis", &s) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s.data = (u_char *) hc->token_state;
    s.len = ngx_strlen(hc->token_state);

    if (ngx_http_passkey_json_set_string(json, "token", &s) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_passkey_send_json(r, code, json);
}

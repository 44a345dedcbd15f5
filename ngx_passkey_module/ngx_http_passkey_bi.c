
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * One Beyond Identity API call: take an access token, call, and on 401
 * drop the token, take a fresh one and call once more.  A 403 is not
 * retried: it is the route's answer to a token that lacks its scope or is
 * for another tenant, which a new token of the same application does not
 * change, and dropping the token that all workers share would only make
 * every other route fetch it again.  Creation calls are never retried for
 * any other reason: a retried POST could create a second job or send a
 * second email.
 */


static ngx_int_t ngx_http_passkey_bi_authorize(ngx_http_passkey_bi_call_t *bc);
static void ngx_http_passkey_bi_token_ready(ngx_http_passkey_token_wait_t *w);
static ngx_int_t ngx_http_passkey_bi_send(ngx_http_passkey_bi_call_t *bc);
static void ngx_http_passkey_bi_done(ngx_http_passkey_http_call_t *call);
static void ngx_http_passkey_bi_finish(ngx_http_passkey_bi_call_t *bc,
    ngx_http_passkey_api_result_e result, const char *error);
static void ngx_http_passkey_bi_log_copy(ngx_pool_t *pool, ngx_str_t *in,
    ngx_str_t *out);


ngx_int_t
ngx_http_passkey_bi_start(ngx_http_passkey_bi_call_t *bc)
{
    ngx_int_t  rc;

    bc->result = NGX_HTTP_PASSKEY_API_OK;
    bc->status = 0;
    bc->json = NULL;
    bc->error = NULL;
    ngx_str_null(&bc->retry_after);
    ngx_str_null(&bc->api_code);
    ngx_str_null(&bc->api_message);
    ngx_str_null(&bc->log_code);
    ngx_str_null(&bc->log_message);
    bc->retried = 0;
    bc->active = 1;

    rc = ngx_http_passkey_bi_authorize(bc);

    if (rc != NGX_OK) {
        bc->active = 0;

        if (rc == NGX_ERROR) {
            bc->result = NGX_HTTP_PASSKEY_API_INTERNAL;
            bc->error = "cannot start the API call";
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Takes a token, now or once one is fetched, then sends the call.
 * NGX_DECLINED: a token fetch failed moments ago, and result and error
 * are its failure.
 */

static ngx_int_t
ngx_http_passkey_bi_authorize(ngx_http_passkey_bi_call_t *bc)
{
    ngx_int_t  rc;

    ngx_memzero(&bc->wait, sizeof(ngx_http_passkey_token_wait_t));
    bc->wait.pool = bc->pool;
    bc->wait.log = bc->log;
    bc->wait.handler = ngx_http_passkey_bi_token_ready;
    bc->wait.data = bc;

    rc = ngx_http_passkey_token_get(bc->conf->token, &bc->wait);

    if (rc == NGX_AGAIN) {
        return NGX_OK;
    }

    if (rc == NGX_OK) {
        return ngx_http_passkey_bi_send(bc);
    }

    if (rc == NGX_DECLINED) {
        bc->result = bc->wait.result;
        bc->error = bc->wait.error;
        return NGX_DECLINED;
    }

    return NGX_ERROR;
}


void
ngx_http_passkey_bi_cancel(ngx_http_passkey_bi_call_t *bc)
{
    if (!bc->active) {
        return;
    }

    bc->active = 0;

    ngx_http_passkey_token_cancel(&bc->wait);
    ngx_http_passkey_http_cancel(&bc->http);
}


/*
 * The one builder of a request's API calls: method, the path after
 * .../realms/{r}, an optional query and JSON body.  Until it is made, the
 * call reports why it was not, and NGX_ERROR leaves calling the handler
 * to the caller.
 */

ngx_int_t
ngx_http_passkey_bi_request(ngx_http_passkey_bi_call_t *bc,
    ngx_http_request_t *r, char *method, ngx_str_t *path, ngx_str_t *query,
    ngx_http_passkey_json_t *body, ngx_http_passkey_bi_done_pt handler,
    void *data)
{
    ngx_memzero(bc, sizeof(ngx_http_passkey_bi_call_t));

    bc->result = NGX_HTTP_PASSKEY_API_INTERNAL;
    bc->error = "cannot build the API request";
    bc->handler = handler;
    bc->data = data;

    bc->pool = r->pool;
    bc->log = r->connection->log;
    bc->conf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);
    bc->method.data = (u_char *) method;
    bc->method.len = ngx_strlen(method);

    if (path == NULL) {
        return NGX_ERROR;
    }

    bc->path = *path;

    if (query) {
        bc->query = *query;
    }

    if (body && ngx_http_passkey_json_dump(r->pool, body, &bc->body)
                != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_passkey_bi_start(bc);
}


/* about one job of an identity: GET reads it, POST ":revoke" revokes it */

ngx_int_t
ngx_http_passkey_bi_job(ngx_http_passkey_bi_call_t *bc, ngx_http_request_t *r,
    ngx_str_t *identity_id, ngx_str_t *job_id, char *method, char *suffix,
    ngx_http_passkey_bi_done_pt handler, void *data)
{
    ngx_str_t                 path, *p;
    ngx_http_passkey_json_t  *body;

    path.len = sizeof("/identities/") - 1 + identity_id->len
               + sizeof("/credential-binding-jobs/") - 1
               + job_id->len + ngx_strlen(suffix);
    path.data = ngx_pnalloc(r->pool, path.len);

    p = NULL;

    if (path.data) {
        ngx_sprintf(path.data, "/identities/%V/credential-binding-jobs/%V%s",
                    identity_id, job_id, suffix);
        p = &path;
    }

    /* a POST of a custom method takes an empty object */

    body = (method[0] == 'P') ? ngx_http_passkey_json_object(r->pool) : NULL;

    if (method[0] == 'P' && body == NULL) {
        p = NULL;
    }

    return ngx_http_passkey_bi_request(bc, r, method, p, NULL, body,
                                       handler, data);
}


static void
ngx_http_passkey_bi_token_ready(ngx_http_passkey_token_wait_t *w)
{
    ngx_http_passkey_bi_call_t *bc = w->data;

    if (w->result != NGX_HTTP_PASSKEY_API_OK) {
        ngx_http_passkey_bi_finish(bc, w->result,
                                   w->error ? w->error
                                            : "no access token");
        return;
    }

    if (ngx_http_passkey_bi_send(bc) != NGX_OK) {
        ngx_http_passkey_bi_finish(bc, NGX_HTTP_PASSKEY_API_INTERNAL,
                                   "cannot start the API call");
    }
}


static ngx_int_t
ngx_http_passkey_bi_send(ngx_http_passkey_bi_call_t *bc)
{
    u_char                       *p;
    ngx_http_passkey_loc_conf_t  *conf;

    conf = bc->conf;

    ngx_memzero(&bc->http, sizeof(ngx_http_passkey_http_call_t));

    bc->generation = bc->wait.generation;

    bc->http.pool = bc->pool;
    bc->http.log = bc->log;
    bc->http.conf = &conf->http;
    bc->http.method = bc->method;
    bc->http.handler = ngx_http_passkey_bi_done;
    bc->http.data = bc;
    bc->http.route = ngx_http_passkey_metrics_route(&bc->method, &bc->path);

    bc->http.url.len = conf->api_url.len + sizeof("/v1/tenants/") - 1
                       + conf->tenant_id.len + sizeof("/realms/") - 1
                       + conf->realm_id.len + bc->path.len
                       + (bc->query.len ? 1 + bc->query.len : 0);

    bc->http.url.data = ngx_pnalloc(bc->pool, bc->http.url.len);
    if (bc->http.url.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(bc->http.url.data, "%V/v1/tenants/%V/realms/%V%V",
                    &conf->api_url, &conf->tenant_id, &conf->realm_id,
                    &bc->path);

    if (bc->query.len) {
        *p++ = '?';
        ngx_memcpy(p, bc->query.data, bc->query.len);
    }

    if (bc->body.len) {
        ngx_str_set(&bc->http.content_type, "application/json");
        bc->http.body = bc->body;
    }

    bc->http.authorization.len = sizeof("Bearer ") - 1 + bc->wait.token.len;
    bc->http.authorization.data = ngx_pnalloc(bc->pool,
                                              bc->http.authorization.len);
    if (bc->http.authorization.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(bc->http.authorization.data, "Bearer %V", &bc->wait.token);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, bc->log, 0,
                   "passkey api: %V %V", &bc->method, &bc->path);

    return ngx_http_passkey_http_start(&bc->http);
}


static void
ngx_http_passkey_bi_done(ngx_http_passkey_http_call_t *call)
{
    ngx_http_passkey_bi_call_t *bc = call->data;

    ngx_int_t  rc;

    ngx_explicit_memzero(call->authorization.data, call->authorization.len);

    switch (call->result) {

    case NGX_HTTP_PASSKEY_HTTP_OK:
        break;

    case NGX_HTTP_PASSKEY_HTTP_TIMEOUT:
        ngx_http_passkey_bi_finish(bc, NGX_HTTP_PASSKEY_API_TIMEOUT,
                                   call->error);
        return;

    case NGX_HTTP_PASSKEY_HTTP_TOO_LARGE:
        ngx_http_passkey_bi_finish(bc, NGX_HTTP_PASSKEY_API_BAD_RESPONSE,
                                   "response too large");
        return;

    default:
        ngx_http_passkey_bi_finish(bc, NGX_HTTP_PASSKEY_API_UNREACHABLE,
                                   call->error);
        return;
    }

    bc->status = call->status;
    bc->retry_after = call->retry_after;

    if (call->status == NGX_HTTP_UNAUTHORIZED
        && !bc->retried
        && ngx_http_passkey_token_renewable(bc->conf->token))
    {
        /* the token may have been revoked or have expired early */

        ngx_log_error(NGX_LOG_WARN, bc->log, 0,
                      "passkey: API answered %ui to %V %V, retrying "
                      "with a new access token",
                      call->status, &bc->method, &bc->path);

        bc->retried = 1;

        ngx_http_passkey_token_invalidate(bc->conf->token, bc->generation);

        rc = ngx_http_passkey_bi_authorize(bc);

        if (rc == NGX_DECLINED) {
            ngx_http_passkey_bi_finish(bc, bc->result, bc->error);

        } else if (rc != NGX_OK) {
            ngx_http_passkey_bi_finish(bc, NGX_HTTP_PASSKEY_API_INTERNAL,
                                       "cannot retry the API call");
        }

        return;
    }

    if (call->response.len) {
        rc = ngx_http_passkey_json_parse(bc->pool, &call->response,
                                         &bc->json);
        if (rc == NGX_ERROR) {
            ngx_http_passkey_bi_finish(bc, NGX_HTTP_PASSKEY_API_INTERNAL,
                                       "out of memory");
            return;
        }

        if (rc == NGX_DECLINED) {
            bc->json = NULL;
        }
    }

    if (bc->json == NULL && call->status < 300) {
        ngx_http_passkey_bi_finish(bc, NGX_HTTP_PASSKEY_API_BAD_RESPONSE,
                                   "response is not a JSON object");
        return;
    }

    if (bc->json && call->status >= 300) {
        (void) ngx_http_passkey_json_string(bc->pool, bc->json, "code",
                                            &bc->api_code);
        (void) ngx_http_passkey_json_string(bc->pool, bc->json, "message",
                                            &bc->api_message);

        /* the API's words may be anything: escaped and bounded in logs */

        ngx_http_passkey_bi_log_copy(bc->pool, &bc->api_code, &bc->log_code);
        ngx_http_passkey_bi_log_copy(bc->pool, &bc->api_message,
                                     &bc->log_message);
    }

    ngx_http_passkey_bi_finish(bc, NGX_HTTP_PASSKEY_API_OK, NULL);
}


static void
ngx_http_passkey_bi_finish(ngx_http_passkey_bi_call_t *bc,
    ngx_http_passkey_api_result_e result, const char *error)
{
    bc->active = 0;
    bc->result = result;
    bc->error = error;

    bc->handler(bc);
}


static void
ngx_http_passkey_bi_log_copy(ngx_pool_t *pool, ngx_str_t *in, ngx_str_t *out)
{
    u_char  *buf;

    buf = ngx_pnalloc(pool, NGX_HTTP_PASSKEY_LOG_VALUE_LEN);
    if (buf == NULL) {
        ngx_str_null(out);
        return;
    }

    ngx_http_passkey_log_value(in, out, buf);
}


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
static char *ngx_http_passkey_bi_forbidden(ngx_pool_t *pool,
    ngx_http_passkey_bi_call_t *bc);
static u_char *ngx_http_passkey_bi_route(ngx_http_passkey_bi_call_t *bc,
    u_char *p);
static void ngx_http_passkey_bi_scope(ngx_str_t *msg, ngx_str_t *scope);
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


/*
 * How an API call ended, as the client's answer: status, a stable code and
 * a detail; with one log line.  A 400 is the client's fault only when an
 * identity was being created from its input.
 */

void
ngx_http_passkey_bi_problem(ngx_http_request_t *r,
    ngx_http_passkey_bi_call_t *bc, ngx_uint_t creating_identity,
    ngx_http_passkey_problem_t *pb)
{
    char             *code, *detail;
    u_char           *p;
    ngx_str_t         msg;
    ngx_uint_t        status;
    ngx_table_elt_t  *h;

    if (bc->result != NGX_HTTP_PASSKEY_API_OK) {

        switch (bc->result) {

        case NGX_HTTP_PASSKEY_API_TIMEOUT:
            status = NGX_HTTP_GATEWAY_TIME_OUT;
            code = "api_timeout";
            detail = "the Beyond Identity API did not answer in time";
            break;

        case NGX_HTTP_PASSKEY_API_UNREACHABLE:
            status = NGX_HTTP_BAD_GATEWAY;
            code = "api_unreachable";
            detail = "the Beyond Identity API cannot be reached";
            break;

        case NGX_HTTP_PASSKEY_API_BAD_RESPONSE:
            status = NGX_HTTP_BAD_GATEWAY;
            code = "api_bad_response";
            detail = "the Beyond Identity API answered something unexpected";
            break;

        case NGX_HTTP_PASSKEY_API_DENIED:
            status = NGX_HTTP_BAD_GATEWAY;
            code = "api_credentials_rejected";
            detail = "the Beyond Identity API refused this server's "
                     "credentials";
            break;

        default:
            status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            code = "internal_error";
            detail = "internal error";
            break;
        }

        if (bc->method.len) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "passkey: %V %V failed: %s", &bc->method,
                          &bc->path, bc->error ? bc->error : "unknown error");

        } else {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "passkey: %s", bc->error ? bc->error
                                                   : "unknown error");
        }

        goto done;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "passkey: %V %V answered %ui \"%V\" \"%V\"",
                  &bc->method, &bc->path, bc->status, &bc->log_code,
                  &bc->log_message);

    msg = bc->api_message;

    if (msg.len > 200) {
        msg.len = 200;
    }

    detail = NULL;

    switch (bc->status) {

    case NGX_HTTP_BAD_REQUEST:
        if (creating_identity) {
            status = NGX_HTTP_BAD_REQUEST;
            code = "invalid_identity";
            detail = "Beyond Identity rejected the identity";

        } else {
            status = NGX_HTTP_BAD_GATEWAY;
            code = "api_rejected_request";
            detail = "the Beyond Identity API rejected the request";
        }

        break;

    case NGX_HTTP_UNAUTHORIZED:
        status = NGX_HTTP_BAD_GATEWAY;
        code = "api_unauthorized";
        detail = "the Beyond Identity API refused this server's access";
        break;

    case NGX_HTTP_FORBIDDEN:
        status = NGX_HTTP_BAD_GATEWAY;
        code = "api_forbidden";
        detail = ngx_http_passkey_bi_forbidden(r->pool, bc);
        break;

    case NGX_HTTP_NOT_FOUND:
        status = NGX_HTTP_NOT_FOUND;
        code = "not_found";
        detail = "Beyond Identity does not know the identity";
        break;

    case NGX_HTTP_CONFLICT:
        status = NGX_HTTP_CONFLICT;
        code = "conflict";
        detail = "Beyond Identity reports a conflict";
        break;

    case 422:
        status = 422;
        code = "unprocessable";
        detail = "Beyond Identity cannot process the request";
        break;

    case 429:
        status = NGX_HTTP_SERVICE_UNAVAILABLE;
        code = "api_rate_limited";
        detail = "the Beyond Identity API is rate limiting this server";

        if (bc->retry_after.len) {
            h = ngx_list_push(&r->headers_out.headers);
            if (h != NULL) {
                h->hash = 1;
#if (nginx_version >= 1023000)
                h->next = NULL;
#endif
                ngx_str_set(&h->key, "Retry-After");
                h->value = bc->retry_after;
            }
        }

        break;

    default:
        status = NGX_HTTP_BAD_GATEWAY;

        if (bc->status >= 500) {
            code = "api_error";
            detail = "the Beyond Identity API failed";

        } else {
            code = "api_unexpected_status";
            detail = "the Beyond Identity API answered an unexpected status";
        }

        break;
    }

    if (msg.len && (status == NGX_HTTP_BAD_REQUEST
                    || status == NGX_HTTP_NOT_FOUND
                    || status == NGX_HTTP_CONFLICT
                    || status == 422))
    {
        /* the API's own words help the caller fix the input */

        p = ngx_pnalloc(r->pool, msg.len + 1);

        if (p != NULL) {
            ngx_cpystrn(p, msg.data, msg.len + 1);
            detail = (char *) p;
        }
    }

done:

    pb->status = status;
    pb->code = code;
    pb->detail = detail;
}


/*
 * A 403 names what was refused, without the ids in its path, and the
 * scope that the API's message names, if any: what the application in
 * the Admin Console needs.
 */

static char *
ngx_http_passkey_bi_forbidden(ngx_pool_t *pool, ngx_http_passkey_bi_call_t *bc)
{
    u_char     *p, *detail;
    size_t      len;
    ngx_str_t   scope;

    ngx_http_passkey_bi_scope(&bc->api_message, &scope);

    len = sizeof("the Beyond Identity API forbids  to this server: its "
                 "access token lacks a scope or is for another tenant")
          + bc->method.len + 5 * bc->path.len
          + sizeof(" (scope \"\")") + scope.len;

    detail = ngx_pnalloc(pool, len);
    if (detail == NULL) {
        return "the Beyond Identity API forbids this call to this server";
    }

    p = ngx_cpymem(detail, "the Beyond Identity API forbids ",
                   sizeof("the Beyond Identity API forbids ") - 1);
    p = ngx_http_passkey_bi_route(bc, p);

    if (scope.len) {
        ngx_sprintf(p, " to this server (scope \"%V\")%Z", &scope);

    } else {
        ngx_sprintf(p, " to this server: its access token lacks a scope or "
                    "is for another tenant%Z");
    }

    return (char *) detail;
}


/*
 * "POST /identities/{id}/credential-binding-jobs": the path's segments
 * alternate between a collection and an id; at most 5 bytes per byte
 */

static u_char *
ngx_http_passkey_bi_route(ngx_http_passkey_bi_call_t *bc, u_char *p)
{
    u_char      *s, *end;
    ngx_uint_t   segment;

    p = ngx_cpymem(p, bc->method.data, bc->method.len);
    *p++ = ' ';

    s = bc->path.data;
    end = bc->path.data + bc->path.len;
    segment = 0;

    while (s < end) {

        if (*s != '/') {
            *p++ = *s++;
            continue;
        }

        *p++ = *s++;

        if (++segment % 2) {
            continue;
        }

        /* an id, up to a custom method such as ":revoke" */

        p = ngx_cpymem(p, "{id}", sizeof("{id}") - 1);

        while (s < end && *s != '/' && *s != ':') {
            s++;
        }
    }

    return p;
}


/*
 * A scope the API's message names, such as "identities:create": a word of
 * lowercase letters, digits, "-" and "_" around one colon
 */

static void
ngx_http_passkey_bi_scope(ngx_str_t *msg, ngx_str_t *scope)
{
    u_char      c, *p, *end, *start, *colon;
    ngx_uint_t  colons;

    ngx_str_null(scope);

    p = msg->data;
    end = msg->data + msg->len;

    while (p < end) {
        start = p;
        colon = NULL;
        colons = 0;

        for ( ;; ) {
            if (p == end) {
                break;
            }

            c = *p;

            if (c == ':') {
                colon = p;
                colons++;

            } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                         || c == '-' || c == '_'))
            {
                break;
            }

            p++;
        }

        if (colons == 1
            && colon > start
            && colon < p - 1
            && *start >= 'a' && *start <= 'z'
            && p - start <= 64)
        {
            scope->data = start;
            scope->len = p - start;
            return;
        }

        if (p < end) {
            p++;
        }
    }
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


/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * The binding-job endpoint, a POST with a JSON body, step by step:
 *
 *     the body, and what it asks for        ngx_http_passkey_bind_request.c
 *     limits, Idempotency-Key (Redis)       ngx_http_passkey_guard.c
 *     the identity, created or found        ngx_http_passkey_identity.c
 *     an email's cooldown (Redis), the job (API)
 *     the job kept (Redis)                  ngx_http_passkey_job.c
 *     the answer, kept for replays, sent    ngx_http_passkey_bind_answer.c
 *
 * Every step is asynchronous; the request holds the reference taken by
 * reading its body until the last step finalizes it, and one deadline
 * covers them all.
 */


static void ngx_http_passkey_bind_body(ngx_http_request_t *r);
static void ngx_http_passkey_bind_cleanup(void *data);
static void ngx_http_passkey_bind_timeout(ngx_event_t *ev);

static void ngx_http_passkey_guard_done(ngx_http_passkey_redis_op_t *op);
static void ngx_http_passkey_guard_refused(ngx_http_passkey_ctx_t *ctx);
static ngx_int_t ngx_http_passkey_redis_down(ngx_http_passkey_ctx_t *ctx,
    char *what);
static void ngx_http_passkey_bind_identity(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_identity_e rc);
static void ngx_http_passkey_bind_job(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_cooldown_done(ngx_http_passkey_redis_op_t *op);
static ngx_int_t ngx_http_passkey_create_job(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_job_created(ngx_http_passkey_bi_call_t *bc);
static void ngx_http_passkey_job_stored(ngx_http_passkey_redis_op_t *op);

static void ngx_http_passkey_bind_reject(ngx_http_passkey_ctx_t *ctx,
    ngx_uint_t status, char *code, char *detail);
static ngx_int_t ngx_http_passkey_bi_call(ngx_http_passkey_ctx_t *ctx,
    char *method, ngx_str_t *path, ngx_str_t *query,
    ngx_http_passkey_json_t *body, ngx_http_passkey_bi_done_pt handler);
static void ngx_http_passkey_api_failed(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_bind_done(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_bind_accepted(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_bind_answer(ngx_http_passkey_ctx_t *ctx,
    ngx_uint_t status, ngx_http_passkey_json_t *json);
static void ngx_http_passkey_answer_saved(ngx_http_passkey_redis_op_t *op);
static void ngx_http_passkey_bind_send(ngx_http_passkey_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *body);
static void ngx_http_passkey_bind_fail(ngx_http_passkey_ctx_t *ctx,
    ngx_uint_t status, char *code, char *detail);


ngx_int_t
ngx_http_passkey_bind_handler(ngx_http_request_t *r)
{
    u_char                        buf[NGX_HTTP_PASSKEY_LOG_VALUE_LEN];
    ngx_int_t                     rc;
    ngx_str_t                     type;
    ngx_pool_cleanup_t           *cln;
    ngx_http_passkey_ctx_t       *ctx;
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_passkey_send_not_allowed(r, "POST");
    }

    if (ngx_http_passkey_check_origin(r, plcf->allowed_origins) != NGX_OK) {
        return ngx_http_passkey_send_early(r, NGX_HTTP_FORBIDDEN,
                                           "forbidden_origin");
    }

    if (ngx_http_passkey_check_content_type(r) != NGX_OK) {
        type.len = 0;

        if (r->headers_in.content_type) {
            ngx_http_passkey_log_value(&r->headers_in.content_type->value,
                                       &type, buf);
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: unsupported content type \"%V\"", &type);

        return ngx_http_passkey_send_early(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                           "unsupported_media_type");
    }

    if (r->headers_in.content_length_n > (off_t) plcf->max_body_size) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: request body of %O bytes is larger than "
                      "passkey_max_body_size %uz",
                      r->headers_in.content_length_n, plcf->max_body_size);

        return ngx_http_passkey_send_early(r,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           "body_too_large");
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_passkey_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;

    /* whatever happens to the request, nothing may call back into it */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_passkey_bind_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_passkey_module);

    rc = ngx_http_passkey_read_client_body(r, ngx_http_passkey_bind_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_passkey_bind_body(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_str_t                body;
    ngx_http_passkey_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_passkey_module);

    r->connection->log->action = "reading passkey binding request";

    /*
     * NGX_AGAIN: more of the body is to come, and this handler runs again
     * once it is all in memory; NGX_DONE: refused (over
     * passkey_max_body_size) or not read, and answered
     */

    if (ngx_http_passkey_read_body(r, &body) != NGX_OK) {
        return;
    }

    ctx->raw_body = body;

    if (body.len == 0) {
        ngx_str_set(&body, "{}");
    }

    rc = ngx_http_passkey_json_parse(r->pool, &body, &ctx->vars.body);

    if (rc == NGX_ERROR) {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     "internal_error", "out of memory");
        return;
    }

    if (rc == NGX_DECLINED) {
        ctx->vars.body = NULL;
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_BAD_REQUEST,
                                     "invalid_json",
                                     "the request body must be a JSON "
                                     "object");
        return;
    }

    if (ngx_http_passkey_bind_request(r, ctx) != NGX_OK) {
        ngx_http_passkey_bind_fail(ctx, ctx->problem.status, ctx->problem.code,
                                   ctx->problem.detail);
        return;
    }

    /*
     * From here on, a client that goes away ends the work, until a
     * creating POST goes out; and the whole bind has one deadline.
     */

    r->read_event_handler = ngx_http_test_reading;

    ctx->deadline.handler = ngx_http_passkey_bind_timeout;
    ctx->deadline.data = ctx;
    ctx->deadline.log = r->connection->log;

    ngx_add_timer(&ctx->deadline,
                  ngx_http_passkey_bind_deadline(
                      ngx_http_get_module_loc_conf(r,
                                                   ngx_http_passkey_module)));

    r->connection->log->action = "checking passkey rate limits";
    ctx->step = NGX_HTTP_PASSKEY_STEP_GUARD;

    rc = ngx_http_passkey_guard_start(ctx, ngx_http_passkey_guard_done);

    if (rc == NGX_OK) {
        ctx->waiting_redis = 1;
        ngx_http_passkey_identity_recall(ctx);
        return;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_BAD_REQUEST,
                                     "invalid_idempotency_key",
                                     "the Idempotency-Key must be 16 to 255 "
                                     "visible ASCII characters");
        return;
    }

    ngx_http_passkey_guard_refused(ctx);
}


static void
ngx_http_passkey_bind_cleanup(void *data)
{
    ngx_http_passkey_ctx_t *ctx = data;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    ngx_http_passkey_bi_cancel(&ctx->bi);

    /* the client went away mid-flight: a retry must not wait for us */

    if (ctx->waiting_redis && ctx->step == NGX_HTTP_PASSKEY_STEP_GUARD) {
        ngx_http_passkey_guard_abandon(&ctx->guard);

    } else {
        ngx_http_passkey_guard_release(&ctx->guard);
    }

    if (ctx->waiting_redis) {
        ngx_http_passkey_redis_cancel(&ctx->redis);
        ctx->waiting_redis = 0;
    }

    ngx_http_passkey_redis_cancel(&ctx->recall);
}


/*
 * The deadline passed: what is in flight is cancelled and the client
 * told.  If the job's POST went out, Beyond Identity may have made the
 * job: the claim then stays until its TTL, so that a retry within it
 * does not make a second one.
 */

static void
ngx_http_passkey_bind_timeout(ngx_event_t *ev)
{
    ngx_http_passkey_ctx_t *ctx = ev->data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ngx_log_error(NGX_LOG_ERR, c->log, 0,
                  "passkey: the bind did not finish in %M ms%s, giving up",
                  ngx_http_passkey_bind_deadline(
                      ngx_http_get_module_loc_conf(r,
                                                   ngx_http_passkey_module)),
                  ctx->posted ? " after the job's POST went out" : "");

    ngx_http_passkey_bi_cancel(&ctx->bi);
    ngx_http_passkey_redis_cancel(&ctx->recall);

    if (ctx->waiting_redis) {

        if (ctx->step == NGX_HTTP_PASSKEY_STEP_GUARD) {
            ngx_http_passkey_guard_abandon(&ctx->guard);
        }

        ngx_http_passkey_redis_cancel(&ctx->redis);
        ctx->waiting_redis = 0;
    }

    if (ctx->posted) {
        ngx_http_passkey_guard_keep(&ctx->guard);
    }

    ngx_http_passkey_bind_fail(ctx, NGX_HTTP_GATEWAY_TIME_OUT,
                               "bind_timeout",
                               "the binding request did not finish in time");

    ngx_http_run_posted_requests(c);
}


/*
 * The guard's answer.  Redis is asked before the API: a job that Beyond
 * Identity created but Redis could not keep would be lost to the
 * deployment, and a refused request must not cost an API call.
 */

static void
ngx_http_passkey_guard_done(ngx_http_passkey_redis_op_t *op)
{
    ngx_http_passkey_ctx_t *ctx = op->data;

    ctx->waiting_redis = 0;

    if (ngx_http_passkey_guard_result(ctx, op) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "passkey: unexpected answer from redis to the rate "
                      "limit and idempotency check");

        ngx_http_passkey_bind_fail(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "redis_unavailable",
                                   "job storage is unavailable");
        return;
    }

    if (ctx->guard.result != NGX_HTTP_PASSKEY_GUARD_PASS) {
        ngx_http_passkey_guard_refused(ctx);
        return;
    }

    if (ngx_http_passkey_identity_resolve(ctx, ngx_http_passkey_bind_identity)
        != NGX_OK)
    {
        ngx_http_passkey_api_failed(ctx);
    }
}


static void
ngx_http_passkey_guard_refused(ngx_http_passkey_ctx_t *ctx)
{
    ngx_str_t                  *lim;
    ngx_http_request_t         *r;
    ngx_http_passkey_guard_t   *g;

    r = ctx->request;
    g = &ctx->guard;

    switch (g->result) {

    case NGX_HTTP_PASSKEY_GUARD_DOWN:

        if (ngx_http_passkey_redis_down(ctx, "rate limits and idempotency")
            != NGX_OK)
        {
            return;
        }

        if (ngx_http_passkey_identity_resolve(ctx,
                                              ngx_http_passkey_bind_identity)
            != NGX_OK)
        {
            ngx_http_passkey_api_failed(ctx);
        }

        return;

    case NGX_HTTP_PASSKEY_GUARD_REPLAY:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: replaying the answer to an earlier request "
                      "with this Idempotency-Key");

        if (ngx_http_passkey_add_header(r, "Idempotent-Replayed", "true")
            != NGX_OK)
        {
            ngx_http_passkey_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_passkey_bind_send(ctx, g->status, &g->body);
        return;

    default:
        break;
    }

    if (ngx_http_passkey_guard_headers(r, g) != NGX_OK) {
        ngx_http_passkey_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    switch (g->result) {

    case NGX_HTTP_PASSKEY_GUARD_LIMITED:
        lim = &g->limit->text;

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "passkey: rate limit \"%V\" reached", lim);

        ngx_http_passkey_bind_fail(ctx, 429, "rate_limited",
                                   "too many requests; see Retry-After");
        return;

    case NGX_HTTP_PASSKEY_GUARD_PENDING:
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_CONFLICT,
                                     "request_in_progress",
                                     "a request with this Idempotency-Key "
                                     "is still being processed");
        return;

    case NGX_HTTP_PASSKEY_GUARD_DUPLICATE:
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_CONFLICT,
                                     "duplicate_request",
                                     "the same request was just made");
        return;

    default: /* NGX_HTTP_PASSKEY_GUARD_MISMATCH */
        ngx_http_passkey_bind_reject(ctx, 422, "idempotency_key_reused",
                                     "this Idempotency-Key was used with "
                                     "another request body");
        return;
    }
}


/*
 * passkey_redis_down: NGX_OK to go on without what Redis was asked for,
 * or the request was answered.
 */

static ngx_int_t
ngx_http_passkey_redis_down(ngx_http_passkey_ctx_t *ctx, char *what)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(ctx->request,
                                        ngx_http_passkey_module);

    if (plcf->redis_down == NGX_HTTP_PASSKEY_ALLOW) {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "passkey: redis \"%V\" %s, going on without %s "
                      "(passkey_redis_down allow)", &plcf->redis->name,
                      ngx_http_passkey_redis_failure(&ctx->redis), what);
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                  "passkey: redis \"%V\" %s", &plcf->redis->name,
                  ngx_http_passkey_redis_failure(&ctx->redis));

    ngx_http_passkey_bind_fail(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                               "redis_unavailable",
                               "job storage is unavailable");
    return NGX_ERROR;
}


/*
 * The identity is known: an email waits for the cooldown, so that nobody
 * can fill someone's mailbox; a new identity's first one starts it.
 */

static void
ngx_http_passkey_bind_job(ngx_http_passkey_ctx_t *ctx)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(ctx->request,
                                        ngx_http_passkey_module);

    if (plcf->email_cooldown && ctx->vars.delivery_method.data[0] == 'E')
    {
        ctx->step = NGX_HTTP_PASSKEY_STEP_COOLDOWN;
        ctx->request->connection->log->action =
                                       "checking the passkey email cooldown";

        if (ngx_http_passkey_guard_cooldown(ctx,
                                            ngx_http_passkey_cooldown_done)
            == NGX_OK)
        {
            ctx->waiting_redis = 1;
            return;
        }

        if (ngx_http_passkey_redis_down(ctx, "the email cooldown")
            != NGX_OK)
        {
            return;
        }
    }

    if (ngx_http_passkey_create_job(ctx) != NGX_OK) {
        ngx_http_passkey_api_failed(ctx);
    }
}


static void
ngx_http_passkey_cooldown_done(ngx_http_passkey_redis_op_t *op)
{
    ngx_http_passkey_ctx_t *ctx = op->data;

    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ctx->request;
    ctx->waiting_redis = 0;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (op->result != NGX_HTTP_PASSKEY_REDIS_OK
        || op->type != NGX_HTTP_PASSKEY_REDIS_INTEGER)
    {
        if (ngx_http_passkey_redis_down(ctx, "the email cooldown")
            != NGX_OK)
        {
            return;
        }

    } else if (op->integer > 0) {

        if (plcf->bind_mode == NGX_HTTP_PASSKEY_SIGNUP) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "passkey: no email to identity %V: it had one "
                          "less than passkey_email_cooldown ago",
                          &ctx->vars.identity_id);

            ngx_http_passkey_bind_accepted(ctx);
            return;
        }

        ngx_http_passkey_guard_cooling(&ctx->guard, op->integer);

        if (ngx_http_passkey_guard_headers(r, &ctx->guard) != NGX_OK) {
            ngx_http_passkey_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_passkey_bind_reject(ctx, 429, "email_cooldown",
                                     "an email with a binding link was sent "
                                     "to this user a moment ago");
        return;
    }

    if (ngx_http_passkey_create_job(ctx) != NGX_OK) {
        ngx_http_passkey_api_failed(ctx);
    }
}


/* the identity is known, or why not: the bind goes on, or answers */

static void
ngx_http_passkey_bind_identity(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_identity_e rc)
{
    switch (rc) {

    case NGX_HTTP_PASSKEY_IDENTITY_CREATED:
        ngx_http_passkey_bind_job(ctx);
        return;

    case NGX_HTTP_PASSKEY_IDENTITY_FOUND:
        ngx_http_passkey_bind_job(ctx);
        return;

    case NGX_HTTP_PASSKEY_IDENTITY_TAKEN:
        ngx_http_passkey_bind_accepted(ctx);
        return;

    case NGX_HTTP_PASSKEY_IDENTITY_MISSPELLED:
        ngx_http_passkey_bind_fail(ctx, NGX_HTTP_FORBIDDEN,
                                   "identity_mismatch",
                                   "the signed-in user's identity is "
                                   "spelled otherwise");
        return;

    case NGX_HTTP_PASSKEY_IDENTITY_NONE:

        /* an address in use, say: a sign-up tells no more than for a name */

        if (ctx->existing) {
            ngx_http_passkey_bind_accepted(ctx);
            return;
        }

        ngx_http_passkey_bind_fail(ctx, NGX_HTTP_CONFLICT, "conflict",
                                   ctx->conflict.len
                                   ? (char *) ctx->conflict.data
                                   : "Beyond Identity reports a conflict");
        return;

    default:
        ngx_http_passkey_api_failed(ctx);
    }
}


static ngx_int_t
ngx_http_passkey_create_job(ngx_http_passkey_ctx_t *ctx)
{
    ngx_str_t                     path;
    ngx_http_request_t           *r;
    ngx_http_passkey_json_t      *body, *job;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ctx->request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    ctx->step = NGX_HTTP_PASSKEY_STEP_CREATE_JOB;
    r->connection->log->action = "creating the passkey binding job";

    path.len = sizeof("/identities/") - 1 + ctx->vars.identity_id.len
               + sizeof("/credential-binding-jobs") - 1;
    path.data = ngx_pnalloc(r->pool, path.len);
    if (path.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(path.data, "/identities/%V/credential-binding-jobs",
                &ctx->vars.identity_id);

    body = ngx_http_passkey_json_object(r->pool);
    job = ngx_http_passkey_json_object(r->pool);

    if (body == NULL || job == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_passkey_json_set_string(job, "delivery_method",
                                         &ctx->vars.delivery_method)
        != NGX_OK
        || (ctx->post_binding_redirect_uri.len
            && ngx_http_passkey_json_set_string(job,
                                            "post_binding_redirect_uri",
                                            &ctx->post_binding_redirect_uri)
               != NGX_OK)
        || ngx_http_passkey_json_set_string(job, "authenticator_config_id",
                                            &plcf->authenticator_config_id)
           != NGX_OK
        || ngx_http_passkey_json_set_object(body, "job", job) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_passkey_bi_call(ctx, "POST", &path, NULL, body,
                                    ngx_http_passkey_job_created);
}


static void
ngx_http_passkey_job_created(ngx_http_passkey_bi_call_t *bc)
{
    ngx_http_passkey_ctx_t *ctx = bc->data;

    ngx_pool_t  *pool;

    pool = ctx->request->pool;

    /* e.g. 422 for an identity without an email address: tell no one */

    if (ctx->existing && bc->result == NGX_HTTP_PASSKEY_API_OK
        && bc->status >= NGX_HTTP_BAD_REQUEST
        && bc->status < NGX_HTTP_INTERNAL_SERVER_ERROR
        && bc->status != NGX_HTTP_UNAUTHORIZED
        && bc->status != NGX_HTTP_FORBIDDEN && bc->status != 429)
    {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "passkey: no email to identity %V: Beyond Identity "
                      "answered %ui \"%V\"", &ctx->vars.identity_id, bc->status,
                      &bc->log_message);

        ngx_http_passkey_bind_accepted(ctx);
        return;
    }

    if (ctx->remembered && bc->result == NGX_HTTP_PASSKEY_API_OK
        && bc->status == NGX_HTTP_NOT_FOUND)
    {
        if (ngx_http_passkey_identity_forget(ctx) != NGX_OK) {
            ngx_http_passkey_api_failed(ctx);
        }

        return;
    }

    if (bc->result != NGX_HTTP_PASSKEY_API_OK || bc->status != NGX_HTTP_OK) {
        ngx_http_passkey_api_failed(ctx);
        return;
    }

    if (ngx_http_passkey_job_created_read(ctx, pool, bc->json) != NGX_OK) {
        bc->result = NGX_HTTP_PASSKEY_API_BAD_RESPONSE;
        bc->error = "the new job lacks its id, state or binding link";
        ngx_http_passkey_api_failed(ctx);
        return;
    }

    ctx->request->connection->log->action = "storing the passkey binding job";
    ctx->step = NGX_HTTP_PASSKEY_STEP_STORE_JOB;

    if (ngx_http_passkey_job_store(ctx, ngx_http_passkey_job_stored)
        == NGX_OK)
    {
        ctx->waiting_redis = 1;

    } else {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "passkey: binding job %V of identity %V was created "
                      "but cannot be stored in redis",
                      &ctx->vars.job_id, &ctx->vars.identity_id);

        if (ngx_http_passkey_redis_down(ctx, "storing the job") == NGX_OK) {
            ngx_http_passkey_bind_done(ctx);
        }
    }
}


static void
ngx_http_passkey_job_stored(ngx_http_passkey_redis_op_t *op)
{
    ngx_http_passkey_ctx_t *ctx = op->data;

    ctx->waiting_redis = 0;

    if (op->result == NGX_HTTP_PASSKEY_REDIS_OK
        && op->type == NGX_HTTP_PASSKEY_REDIS_INTEGER)
    {
        ngx_http_passkey_bind_done(ctx);
        return;
    }

    if (op->result == NGX_HTTP_PASSKEY_REDIS_OK
        && op->type == NGX_HTTP_PASSKEY_REDIS_ERROR)
    {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "passkey: binding job %V of identity %V was created "
                      "but redis failed: \"%V\"", &ctx->vars.job_id,
                      &ctx->vars.identity_id, &op->str);

    } else {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "passkey: binding job %V of identity %V was created "
                      "but redis %s", &ctx->vars.job_id, &ctx->vars.identity_id,
                      ngx_http_passkey_redis_failure(op));
    }

    if (ngx_http_passkey_redis_down(ctx, "storing the job") == NGX_OK) {
        ngx_http_passkey_bind_done(ctx);
    }
}


static ngx_int_t
ngx_http_passkey_bi_call(ngx_http_passkey_ctx_t *ctx, char *method,
    ngx_str_t *path, ngx_str_t *query, ngx_http_passkey_json_t *body,
    ngx_http_passkey_bi_done_pt handler)
{
    ngx_http_request_t  *r;

    r = ctx->request;

    /*
     * Once the job's POST goes out, the bind finishes whether or not its
     * client waits (as proxy_ignore_client_abort does): the job and the
     * answer are stored, so that a retry with the same Idempotency-Key
     * gets that answer, not a second job.  Creating the identity needs
     * no such care: a retry finds it.
     */

    if (ctx->step == NGX_HTTP_PASSKEY_STEP_CREATE_JOB) {
        ctx->posted = 1;
        r->read_event_handler = ngx_http_block_reading;
    }

    return ngx_http_passkey_bi_request(&ctx->bi, r, method, path, query,
                                       body, handler, ctx);
}


static void
ngx_http_passkey_api_failed(ngx_http_passkey_ctx_t *ctx)
{
    ngx_http_passkey_problem_t  pb;

    ngx_http_passkey_api_problem(ctx->request, &ctx->bi,
                                ctx->step
                                == NGX_HTTP_PASSKEY_STEP_CREATE_IDENTITY,
                                &pb);

    ngx_http_passkey_bind_fail(ctx, pb.status, pb.code, pb.detail);
}


static void
ngx_http_passkey_bind_done(ngx_http_passkey_ctx_t *ctx)
{
    ngx_http_request_t           *r;
    ngx_http_passkey_json_t      *json;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ctx->request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);
    r->connection->log->action = "sending the passkey binding job";

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "passkey: binding job %V for identity %V (%s)",
                  &ctx->vars.job_id, &ctx->vars.identity_id,
                  ctx->created ? "new identity" : "existing identity");

    if (plcf->bind_mode == NGX_HTTP_PASSKEY_SIGNUP && ctx->link.len == 0) {
        ngx_http_passkey_bind_accepted(ctx);
        return;
    }

    json = ngx_http_passkey_bind_shape(ctx, plcf->bind_format);

    ngx_http_passkey_bind_answer(ctx, NGX_HTTP_OK, json);
}


static void
ngx_http_passkey_bind_accepted(ngx_http_passkey_ctx_t *ctx)
{
    ngx_http_passkey_json_t  *json;

    ctx->request->connection->log->action = "sending the passkey binding job";

    json = ngx_http_passkey_bind_accepted_shape(ctx->request->pool);

    ngx_http_passkey_bind_answer(ctx, NGX_HTTP_ACCEPTED, json);
}


/*
 * A success is kept for Idempotency-Key replays before it is sent.  Its
 * JSON is NULL when the shape could not be built: that, like a dump that
 * fails, is the bind's own failure.
 */

static void
ngx_http_passkey_bind_answer(ngx_http_passkey_ctx_t *ctx, ngx_uint_t status,
    ngx_http_passkey_json_t *json)
{
    ngx_int_t            rc;
    ngx_str_t            body;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (json == NULL
        || ngx_http_passkey_json_dump(r->pool, json, &body) != NGX_OK)
    {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     "internal_error",
                                     "cannot build the response");
        return;
    }

    ctx->step = NGX_HTTP_PASSKEY_STEP_SAVE_ANSWER;
    ctx->answer_status = status;
    ctx->answer = body;

    rc = ngx_http_passkey_guard_save(ctx, status, &body,
                                     ngx_http_passkey_answer_saved);

    if (rc == NGX_OK) {
        ctx->waiting_redis = 1;
        return;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_passkey_guard_finish(&ctx->guard);
    }

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: the answer cannot be kept for "
                      "Idempotency-Key replays");
        ngx_http_passkey_guard_release(&ctx->guard);
    }

    ngx_http_passkey_bind_send(ctx, status, &body);
}


static void
ngx_http_passkey_answer_saved(ngx_http_passkey_redis_op_t *op)
{
    ngx_http_passkey_ctx_t *ctx = op->data;

    ngx_uint_t  kept;

    ctx->waiting_redis = 0;

    kept = (op->result == NGX_HTTP_PASSKEY_REDIS_OK
            && op->type != NGX_HTTP_PASSKEY_REDIS_ERROR);

    if (!kept) {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "passkey: the answer cannot be kept for "
                      "Idempotency-Key replays: redis %s",
                      ngx_http_passkey_redis_failure(op));
    }

    /* a retry must not wait for a claim that nothing will fill */

    ngx_http_passkey_guard_saved(&ctx->guard, kept);

    ngx_http_passkey_bind_send(ctx, ctx->answer_status, &ctx->answer);
}


static void
ngx_http_passkey_bind_send(ngx_http_passkey_ctx_t *ctx, ngx_uint_t status,
    ngx_str_t *body)
{
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    if (ngx_http_passkey_guard_headers(r, &ctx->guard) != NGX_OK) {
        ngx_http_passkey_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_passkey_finalize(r, ngx_http_passkey_send_raw(r, status, body));
}


/*
 * A refusal noticed here and logged nowhere else: what the client got
 * wrong at "info", as nginx logs bad requests, what failed here at "error".
 */

static void
ngx_http_passkey_bind_reject(ngx_http_passkey_ctx_t *ctx, ngx_uint_t status,
    char *code, char *detail)
{
    ngx_uint_t  level;

    level = (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) ? NGX_LOG_ERR
                                                       : NGX_LOG_INFO;

    ngx_log_error(level, ctx->request->connection->log, 0,
                  "passkey: %s: %s", code, detail);

    ngx_http_passkey_bind_fail(ctx, status, code, detail);
}


/* the answer to a failure that was logged where it was noticed */

static void
ngx_http_passkey_bind_fail(ngx_http_passkey_ctx_t *ctx, ngx_uint_t status,
    char *code, char *detail)
{
    ngx_str_t  s;

    s.data = (u_char *) detail;
    s.len = detail ? ngx_strlen(detail) : 0;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    ngx_http_passkey_guard_release(&ctx->guard);

    ngx_http_passkey_finalize(ctx->request,
        ngx_http_passkey_send_problem(ctx->request, status, code, &s));
}

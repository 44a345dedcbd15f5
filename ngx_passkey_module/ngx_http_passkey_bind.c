
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * The binding-job endpoint: POST a JSON body, create or find the identity,
 * create a RETURN credential binding job, keep the job in Redis, answer
 * with the job and its binding link.  Every step is asynchronous; the
 * request holds the reference taken by reading its body until the last
 * step finalizes it.
 */


#define NGX_HTTP_PASSKEY_JOB_TTL_DEFAULT  (7 * 86400)


static void ngx_http_passkey_bind_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_passkey_bind_input(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx);
static ngx_int_t ngx_http_passkey_bind_delivery(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx);
static ngx_int_t ngx_http_passkey_bind_value(
    ngx_http_passkey_ctx_t *ctx, ngx_http_complex_value_t *cv, char *member,
    ngx_str_t *value);
static void ngx_http_passkey_bind_cleanup(void *data);

static ngx_int_t ngx_http_passkey_bind_caller(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx);
static ngx_int_t ngx_http_passkey_bind_same(ngx_http_passkey_ctx_t *ctx,
    char *member, ngx_str_t *verified);
static void ngx_http_passkey_guard_done(ngx_http_passkey_redis_op_t *op);
static void ngx_http_passkey_guard_refused(ngx_http_passkey_ctx_t *ctx);
static ngx_int_t ngx_http_passkey_redis_down(ngx_http_passkey_ctx_t *ctx,
    char *what);

#define ngx_http_passkey_redis_failure(op)                                    \
    ((op)->result == NGX_HTTP_PASSKEY_REDIS_TIMEOUT ? "timed out"            \
                                                    : "is unavailable")
static void ngx_http_passkey_bind_job(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_signup_existing(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_cooldown_done(ngx_http_passkey_redis_op_t *op);
static ngx_int_t ngx_http_passkey_find_identity(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_identity_found(ngx_http_passkey_bi_call_t *bc);
static ngx_int_t ngx_http_passkey_create_identity(
    ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_identity_created(
    ngx_http_passkey_bi_call_t *bc);
static ngx_int_t ngx_http_passkey_create_job(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_job_created(ngx_http_passkey_bi_call_t *bc);
static ngx_int_t ngx_http_passkey_store_job(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_job_stored(ngx_http_passkey_redis_op_t *op);

static void ngx_http_passkey_bind_step(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_step_e step, char *action);
static void ngx_http_passkey_bind_reject(ngx_http_passkey_ctx_t *ctx,
    ngx_uint_t status, char *code, char *detail);
static ngx_int_t ngx_http_passkey_bi_call(ngx_http_passkey_ctx_t *ctx,
    char *method, ngx_str_t *path, ngx_str_t *query,
    ngx_http_passkey_json_t *body, ngx_http_passkey_bi_done_pt handler);
static void ngx_http_passkey_api_failed(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_bind_done(ngx_http_passkey_ctx_t *ctx);
static ngx_http_passkey_json_t *ngx_http_passkey_bind_reply(
    ngx_http_passkey_ctx_t *ctx, ngx_uint_t camel);
static ngx_http_passkey_json_t *ngx_http_passkey_bind_envelope(
    ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_bind_accepted(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_bind_answer(ngx_http_passkey_ctx_t *ctx,
    ngx_uint_t status, ngx_http_passkey_json_t *json);
static void ngx_http_passkey_answer_saved(ngx_http_passkey_redis_op_t *op);
static void ngx_http_passkey_bind_send(ngx_http_passkey_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *body);
static void ngx_http_passkey_bind_fail(ngx_http_passkey_ctx_t *ctx,
    ngx_uint_t status, char *code, char *detail);


static ngx_str_t  ngx_http_passkey_store_script = ngx_string(
    "redis.call('HSET', KEYS[1], unpack(ARGV, 2)) "
    "return redis.call('EXPIRE', KEYS[1], ARGV[1])");


/* the members of a job's answer, as this module and camelCase name them */

typedef struct {
    char                             *name;
    char                             *camel;
    size_t                            offset;    /* of an ngx_str_t in ctx */
    ngx_uint_t                        optional;  /* left out when empty */
} ngx_http_passkey_member_t;


static ngx_http_passkey_member_t  ngx_http_passkey_members[] = {
    { "job_id", "jobId", offsetof(ngx_http_passkey_ctx_t, job_id), 0 },
    { "identity_id", "identityId",
      offsetof(ngx_http_passkey_ctx_t, identity_id), 0 },
    { "state", "state", offsetof(ngx_http_passkey_ctx_t, job_state), 0 },
    { "expire_time", "expireTime",
      offsetof(ngx_http_passkey_ctx_t, expire_time), 0 },
    { "delivery_method", "deliveryMethod",
      offsetof(ngx_http_passkey_ctx_t, delivery_method), 0 },
    { "credential_binding_link", "credentialBindingLink",
      offsetof(ngx_http_passkey_ctx_t, link), 1 },
    { NULL, NULL, 0, 0 }
};


/*
 * The members of Beyond Identity's job that its envelope passes on: those
 * the API documents.  Anything else the API may add one day is not handed
 * to a browser unread.
 */

static char  *ngx_http_passkey_job_members[] = {
    "id",
    "realm_id",
    "tenant_id",
    "identity_id",
    "delivery_method",
    "state",
    "post_binding_redirect_uri",
    "authenticator_config_id",
    "expire_time",
    "create_time",
    "update_time",
    NULL
};


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

    rc = ngx_http_passkey_json_parse(r->pool, &body, &ctx->body);

    if (rc == NGX_ERROR) {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     "internal_error", "out of memory");
        return;
    }

    if (rc == NGX_DECLINED) {
        ctx->body = NULL;
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_BAD_REQUEST,
                                     "invalid_json",
                                     "the request body must be a JSON "
                                     "object");
        return;
    }

    if (ngx_http_passkey_bind_input(r, ctx) != NGX_OK) {
        return;
    }

    /* from here on, a client that goes away ends the work */
    r->read_event_handler = ngx_http_test_reading;

    r->connection->log->action = "checking passkey rate limits";
    ctx->step = NGX_HTTP_PASSKEY_STEP_GUARD;

    rc = ngx_http_passkey_guard_start(ctx, ngx_http_passkey_guard_done);

    if (rc == NGX_OK) {
        ctx->waiting_redis = 1;
        return;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_BAD_REQUEST,
                                     "invalid_idempotency_key",
                                     "the Idempotency-Key must be 16 to 255 "
                                     "visible ASCII characters");
        return;
    }

    ctx->guard.result = NGX_HTTP_PASSKEY_GUARD_DOWN;
    ngx_http_passkey_guard_refused(ctx);
}


static ngx_int_t
ngx_http_passkey_bind_input(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (plcf->bind_mode == NGX_HTTP_PASSKEY_AUTHENTICATED) {
        if (ngx_http_passkey_bind_caller(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (ngx_http_passkey_bind_value(ctx, plcf->username, "username",
                                           &ctx->username)
               != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_passkey_bind_value(ctx, plcf->email, "email", &ctx->email)
        != NGX_OK
        || ngx_http_passkey_bind_value(ctx, plcf->display_name,
                                       "display_name", &ctx->display_name)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* a body that names someone else is worth refusing loudly */

    if (plcf->bind_mode == NGX_HTTP_PASSKEY_AUTHENTICATED
        && (ngx_http_passkey_bind_same(ctx, "username", &ctx->username)
            != NGX_OK
            || (plcf->email
                && ngx_http_passkey_bind_same(ctx, "email", &ctx->email)
                   != NGX_OK)))
    {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_FORBIDDEN,
                                     "identity_mismatch",
                                     "the request names another user than "
                                     "the signed-in one");
        return NGX_ERROR;
    }

    if (ctx->username.len == 0) {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_BAD_REQUEST,
                                     "missing_username",
                                     "a username is required");
        return NGX_ERROR;
    }

    if (ngx_http_passkey_check_name(&ctx->username) != NGX_OK) {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_BAD_REQUEST,
                                     "invalid_username",
                                     "the username must be 1 to 64 characters "
                                     "without control characters or any of "
                                     "{}[]<>;:?\\/|*^%$#=~`!");
        return NGX_ERROR;
    }

    if (ctx->display_name.len == 0) {
        ctx->display_name = ctx->username;

    } else if (ngx_http_passkey_check_name(&ctx->display_name) != NGX_OK) {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_BAD_REQUEST,
                                     "invalid_display_name",
                                     "the display name must be 1 to 64 "
                                     "characters without control characters "
                                     "or any of {}[]<>;:?\\/|*^%$#=~`!");
        return NGX_ERROR;
    }

    if (ctx->email.len
        && ngx_http_passkey_check_email(&ctx->email) != NGX_OK)
    {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_BAD_REQUEST,
                                     "invalid_email",
                                     "the email address is not valid");
        return NGX_ERROR;
    }

    if (ngx_http_passkey_bind_delivery(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * sign-up by email: a new identity needs an address, and asking for
     * it only when the username turns out to be free would tell
     */

    if (plcf->bind_mode == NGX_HTTP_PASSKEY_SIGNUP
        && ctx->delivery_method.data[0] == 'E' && ctx->email.len == 0)
    {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_BAD_REQUEST,
                                     "missing_email",
                                     "an email address is required");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The delivery method: the request may name one of those the location
 * allows; and the redirect after binding, which never comes raw from the
 * client: it is configured, and checked against passkey_redirect_origins.
 */

static ngx_int_t
ngx_http_passkey_bind_delivery(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx)
{
    ngx_str_t                     method;
    ngx_uint_t                    bit;
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    bit = plcf->delivery_default;

    switch (ngx_http_passkey_json_string(r->pool, ctx->body,
                                         "delivery_method", &method))
    {
    case NGX_OK:

        /*
         * without case: Beyond Identity's own example frontends send
         * "return"; from here on only the canonical spelling is used
         */

        bit = (method.len == 6
               && ngx_strncasecmp(method.data, (u_char *) "RETURN", 6) == 0)
              ? NGX_HTTP_PASSKEY_RETURN
              : (method.len == 5
                 && ngx_strncasecmp(method.data, (u_char *) "EMAIL", 5) == 0)
                ? NGX_HTTP_PASSKEY_EMAIL : 0;

        if (!(bit & plcf->delivery_methods)) {
            ngx_http_passkey_bind_reject(ctx, NGX_HTTP_BAD_REQUEST,
                                         "invalid_delivery_method",
                                         "this delivery method is not "
                                         "allowed here");
            return NGX_ERROR;
        }

        break;

    case NGX_DECLINED:

        /* present but not a string: not a silent fallback to the default */

        if (ngx_http_passkey_json_child(ctx->body, "delivery_method")
            != NULL)
        {
            ngx_http_passkey_bind_reject(ctx, NGX_HTTP_BAD_REQUEST,
                                         "invalid_delivery_method",
                                         "the delivery method must be "
                                         "\"RETURN\" or \"EMAIL\"");
            return NGX_ERROR;
        }

        break;

    default:
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     "internal_error", "out of memory");
        return NGX_ERROR;
    }

    if (bit == NGX_HTTP_PASSKEY_EMAIL) {
        ngx_str_set(&ctx->delivery_method, "EMAIL");

    } else {
        ngx_str_set(&ctx->delivery_method, "RETURN");
    }

    if (plcf->post_binding_redirect_uri == NULL) {
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, plcf->post_binding_redirect_uri,
                               &ctx->post_binding_redirect_uri)
        != NGX_OK)
    {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     "internal_error",
                                     "cannot evaluate the redirect");
        return NGX_ERROR;
    }

    if (ctx->post_binding_redirect_uri.len
        && ngx_http_passkey_check_redirect(&ctx->post_binding_redirect_uri,
                                           plcf->redirect_origins)
           != NGX_OK)
    {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_BAD_REQUEST,
                                     "invalid_redirect",
                                     "the redirect after binding is not "
                                     "allowed");
        return NGX_ERROR;
    }

    return NGX_OK;
}



/*
 * A configured value (percent-decoded), or by default the JSON body
 * member, which is a string if it is there at all: {"email": 1} is not an
 * identity without an address.  Anything else is answered here.
 */

static ngx_int_t
ngx_http_passkey_bind_value(ngx_http_passkey_ctx_t *ctx,
    ngx_http_complex_value_t *cv, char *member, ngx_str_t *value)
{
    ngx_int_t                     rc;
    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ctx->request;

    if (cv) {
        rc = ngx_http_passkey_configured_value(r, cv, value);

    } else {
        rc = ngx_http_passkey_json_string(r->pool, ctx->body, member, value);

        if (rc == NGX_DECLINED
            && ngx_http_passkey_json_child(ctx->body, member) == NULL)
        {
            ngx_str_null(value);
            return NGX_OK;
        }
    }

    if (rc == NGX_OK) {
        return NGX_OK;
    }

    if (rc == NGX_ERROR) {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     "internal_error",
                                     "cannot evaluate the input values");
        return NGX_ERROR;
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    /* what nginx verified is the application's to fix, not the client's */

    if (cv && plcf->bind_mode == NGX_HTTP_PASSKEY_AUTHENTICATED) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: the verified %s is not validly "
                      "percent-encoded", member);

        ngx_http_passkey_bind_fail(ctx, NGX_HTTP_FORBIDDEN,
                                   "invalid_verified_user",
                                   "the signed-in user cannot be bound "
                                   "safely");
        return NGX_ERROR;
    }

    switch (member[0]) {

    case 'u':
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_BAD_REQUEST,
                                     "invalid_username",
                                     "the username must be a string");
        break;

    case 'e':
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_BAD_REQUEST,
                                     "invalid_email",
                                     "the email address must be a string");
        break;

    default:
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_BAD_REQUEST,
                                     "invalid_display_name",
                                     "the display name must be a string");
    }

    return NGX_ERROR;
}


static void
ngx_http_passkey_bind_cleanup(void *data)
{
    ngx_http_passkey_ctx_t *ctx = data;

    ngx_http_passkey_bi_cancel(&ctx->bi);

    /* the client went away mid-flight: a retry must not wait for us */

    ngx_http_passkey_guard_release(&ctx->guard);

    if (ctx->waiting_redis) {
        ngx_http_passkey_redis_cancel(&ctx->redis);
        ctx->waiting_redis = 0;
    }
}


/*
 * passkey_bind_mode authenticated: who the request is for comes from
 * nginx (auth_request_set, $remote_user, a client certificate, a header
 * of a trusted upstream), never from the body.
 */

static ngx_int_t
ngx_http_passkey_bind_caller(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    switch (ngx_http_passkey_verified_user(r, plcf->username,
                                           &ctx->username))
    {
    case NGX_OK:
        return NGX_OK;

    case NGX_DECLINED:
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_UNAUTHORIZED,
                                     "unauthenticated",
                                     "sign in first: no verified user");
        return NGX_ERROR;

    case NGX_ABORT:
        ngx_http_passkey_bind_fail(ctx, NGX_HTTP_FORBIDDEN,
                                   "invalid_verified_user",
                                   "the signed-in user cannot be bound "
                                   "safely");
        return NGX_ERROR;

    default:
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     "internal_error",
                                     "cannot evaluate the verified user");
        return NGX_ERROR;
    }
}


/* absent, or the same as the verified value (names without case) */

static ngx_int_t
ngx_http_passkey_bind_same(ngx_http_passkey_ctx_t *ctx, char *member,
    ngx_str_t *verified)
{
    ngx_str_t  v;

    if (ngx_http_passkey_json_child(ctx->body, member) == NULL) {
        return NGX_OK;
    }

    if (ngx_http_passkey_json_string(ctx->request->pool, ctx->body, member,
                                     &v)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (v.len != verified->len
        || ngx_strncasecmp(v.data, verified->data, v.len) != 0)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
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

    if (ngx_http_passkey_create_identity(ctx) != NGX_OK) {
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

        if (ngx_http_passkey_create_identity(ctx) != NGX_OK) {
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

    if (plcf->email_cooldown && ctx->delivery_method.data[0] == 'E')
    {
        ngx_http_passkey_bind_step(ctx, NGX_HTTP_PASSKEY_STEP_COOLDOWN,
                                   "checking the passkey email cooldown");

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
                          &ctx->identity_id);

            ngx_http_passkey_bind_accepted(ctx);
            return;
        }

        ctx->guard.result = NGX_HTTP_PASSKEY_GUARD_LIMITED;
        ctx->guard.retry = op->integer;
        ctx->guard.limit = NULL;

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


static ngx_int_t
ngx_http_passkey_find_identity(ngx_http_passkey_ctx_t *ctx)
{
    u_char              *p;
    ngx_str_t            quoted, filter, escaped, query;
    ngx_http_request_t  *r;
    static ngx_str_t     path = ngx_string("/identities");

    r = ctx->request;

    ngx_http_passkey_bind_step(ctx, NGX_HTTP_PASSKEY_STEP_FIND_IDENTITY,
                               "looking up the passkey identity");

    /* traits.username eq "<JSON string>", then percent-encoded whole */

    if (ngx_http_passkey_json_quote(r->pool, &ctx->username, &quoted)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    filter.len = sizeof("traits.username eq ") - 1 + quoted.len;
    filter.data = ngx_pnalloc(r->pool, filter.len);
    if (filter.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(filter.data, "traits.username eq ",
                   sizeof("traits.username eq ") - 1);
    ngx_memcpy(p, quoted.data, quoted.len);

    if (ngx_http_passkey_http_escape(r->pool, &filter, &escaped) != NGX_OK) {
        return NGX_ERROR;
    }

    query.len = sizeof("filter=") - 1 + escaped.len;
    query.data = ngx_pnalloc(r->pool, query.len);
    if (query.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(query.data, "filter=", sizeof("filter=") - 1);
    ngx_memcpy(p, escaped.data, escaped.len);

    return ngx_http_passkey_bi_call(ctx, "GET", &path, &query, NULL,
                                    ngx_http_passkey_identity_found);
}


static void
ngx_http_passkey_identity_found(ngx_http_passkey_bi_call_t *bc)
{
    ngx_http_passkey_ctx_t *ctx = bc->data;

    ngx_str_t                     id, username, spelled;
    ngx_uint_t                    i, n, matches;
    ngx_http_request_t           *r;
    ngx_http_passkey_json_t      *list, *identity;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ctx->request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);
    ngx_str_null(&spelled);

    if (bc->result != NGX_HTTP_PASSKEY_API_OK || bc->status != NGX_HTTP_OK) {
        ngx_http_passkey_api_failed(ctx);
        return;
    }

    list = ngx_http_passkey_json_child(bc->json, "identities");
    n = ngx_http_passkey_json_size(list);
    matches = 0;

    if (list == NULL) {
        bc->result = NGX_HTTP_PASSKEY_API_BAD_RESPONSE;
        bc->error = "no \"identities\" in the list response";
        ngx_http_passkey_api_failed(ctx);
        return;
    }

    /* the filter is case-insensitive; so is the comparison */

    for (i = 0; i < n; i++) {
        identity = ngx_http_passkey_json_at(list, i);

        if (ngx_http_passkey_json_string(r->pool, identity,
                                         "traits.username", &username)
            != NGX_OK
            || username.len != ctx->username.len
            || ngx_strncasecmp(username.data, ctx->username.data,
                               username.len) != 0)
        {
            continue;
        }

        if (ngx_http_passkey_json_string(r->pool, identity, "id", &id)
            != NGX_OK
            || ngx_http_passkey_valid_id(&id) != NGX_OK)
        {
            bc->result = NGX_HTTP_PASSKEY_API_BAD_RESPONSE;
            bc->error = "an identity in the list response has no valid "
                        "\"id\"";
            ngx_http_passkey_api_failed(ctx);
            return;
        }

        ctx->identity_id = id;
        spelled = username;
        matches++;
    }

    if (matches > 1) {
        bc->result = NGX_HTTP_PASSKEY_API_BAD_RESPONSE;
        bc->error = "more than one identity has this username";
        ngx_http_passkey_api_failed(ctx);
        return;
    }

    /*
     * Beyond Identity compares names without case: the identity of
     * "victim" answers for "Victim" too.  The signed-in user gets only an
     * identity of exactly the name the application vouched for, as
     * whether "Victim" is victim is the application's to say, not ours.
     */

    if (matches == 1
        && plcf->bind_mode == NGX_HTTP_PASSKEY_AUTHENTICATED
        && (spelled.len != ctx->username.len
            || ngx_strncmp(spelled.data, ctx->username.data, spelled.len)
               != 0))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: identity %V is spelled otherwise than the "
                      "verified username: refused, as the application's "
                      "accounts must not differ by case only",
                      &ctx->identity_id);

        ngx_http_passkey_bind_fail(ctx, NGX_HTTP_FORBIDDEN,
                                   "identity_mismatch",
                                   "the signed-in user's identity is "
                                   "spelled otherwise");
        return;
    }

    if (matches == 1) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "passkey: found identity %V", &ctx->identity_id);

        if (ctx->existing) {
            ngx_http_passkey_signup_existing(ctx);
            return;
        }

        ngx_http_passkey_bind_job(ctx);
        return;
    }

    /* the username is free, so the conflict was about something else */

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "passkey: creating an identity conflicted, but no "
                  "identity has that username");

    /* an address in use, say: a sign-up tells no more than for a name */

    if (ctx->existing) {
        ngx_http_passkey_bind_accepted(ctx);
        return;
    }

    ngx_http_passkey_bind_fail(ctx, NGX_HTTP_CONFLICT, "conflict",
                               ctx->conflict.len
                               ? (char *) ctx->conflict.data
                               : "Beyond Identity reports a conflict");
}


static ngx_int_t
ngx_http_passkey_create_identity(ngx_http_passkey_ctx_t *ctx)
{
    ngx_str_t                 s;
    ngx_pool_t               *pool;
    ngx_http_passkey_json_t  *body, *identity, *traits;
    static ngx_str_t          path = ngx_string("/identities");

    pool = ctx->request->pool;

    ngx_http_passkey_bind_step(ctx, NGX_HTTP_PASSKEY_STEP_CREATE_IDENTITY,
                               "creating the passkey identity");

    body = ngx_http_passkey_json_object(pool);
    identity = ngx_http_passkey_json_object(pool);
    traits = ngx_http_passkey_json_object(pool);

    if (body == NULL || identity == NULL || traits == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&s, "traits_v0");

    if (ngx_http_passkey_json_set_string(traits, "type", &s) != NGX_OK
        || ngx_http_passkey_json_set_string(traits, "username",
                                            &ctx->username)
           != NGX_OK
        || (ctx->email.len
            && ngx_http_passkey_json_set_string(traits,
                                                "primary_email_address",
                                                &ctx->email)
               != NGX_OK)
        || ngx_http_passkey_json_set_string(identity, "display_name",
                                            &ctx->display_name)
           != NGX_OK
        || ngx_http_passkey_json_set_object(identity, "traits", traits)
           != NGX_OK
        || ngx_http_passkey_json_set_object(body, "identity", identity)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_passkey_bi_call(ctx, "POST", &path, NULL, body,
                                    ngx_http_passkey_identity_created);
}


static void
ngx_http_passkey_identity_created(ngx_http_passkey_bi_call_t *bc)
{
    ngx_http_passkey_ctx_t *ctx = bc->data;

    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ctx->request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (bc->result == NGX_HTTP_PASSKEY_API_OK
        && bc->status == NGX_HTTP_CONFLICT)
    {
        /*
         * The username exists (or another request just created it): look
         * it up.  Creating first saves new users a round trip.
         */

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "passkey: identity exists, looking it up");

        ctx->existing = (plcf->bind_mode == NGX_HTTP_PASSKEY_SIGNUP);

        if (bc->api_message.len) {
            ctx->conflict.len = ngx_min(bc->api_message.len, 200);
            ctx->conflict.data = ngx_pnalloc(r->pool, ctx->conflict.len + 1);

            if (ctx->conflict.data) {
                ngx_cpystrn(ctx->conflict.data, bc->api_message.data,
                            ctx->conflict.len + 1);
            } else {
                ctx->conflict.len = 0;
            }
        }

        if (ngx_http_passkey_find_identity(ctx) != NGX_OK) {
            ngx_http_passkey_api_failed(ctx);
        }

        return;
    }

    if (bc->result != NGX_HTTP_PASSKEY_API_OK || bc->status != NGX_HTTP_OK) {
        ngx_http_passkey_api_failed(ctx);
        return;
    }

    /* it goes into the next call's URL path */

    if (ngx_http_passkey_json_string(r->pool, bc->json, "id",
                                     &ctx->identity_id)
        != NGX_OK
        || ngx_http_passkey_valid_id(&ctx->identity_id) != NGX_OK)
    {
        bc->result = NGX_HTTP_PASSKEY_API_BAD_RESPONSE;
        bc->error = "no valid \"id\" in the new identity";
        ngx_http_passkey_api_failed(ctx);
        return;
    }

    ctx->created = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "passkey: created identity %V", &ctx->identity_id);

    ngx_http_passkey_bind_job(ctx);
}


/*
 * Sign-up with a username that is taken: never a link for it; by
 * passkey_signup_existing, nothing, or an email to the address Beyond
 * Identity holds, which only the owner reads.  Either way the answer is
 * the one every sign-up by email gets.
 */

static void
ngx_http_passkey_signup_existing(ngx_http_passkey_ctx_t *ctx)
{
    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ctx->request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (plcf->signup_existing == NGX_HTTP_PASSKEY_REFUSE) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: sign-up refused: the username is taken by "
                      "identity %V", &ctx->identity_id);

        ngx_http_passkey_bind_accepted(ctx);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "passkey: sign-up with a taken username: emailing "
                  "identity %V", &ctx->identity_id);

    ngx_str_set(&ctx->delivery_method, "EMAIL");
    ngx_str_null(&ctx->post_binding_redirect_uri);

    ngx_http_passkey_bind_job(ctx);
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

    ngx_http_passkey_bind_step(ctx, NGX_HTTP_PASSKEY_STEP_CREATE_JOB,
                               "creating the passkey binding job");

    path.len = sizeof("/identities/") - 1 + ctx->identity_id.len
               + sizeof("/credential-binding-jobs") - 1;
    path.data = ngx_pnalloc(r->pool, path.len);
    if (path.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(path.data, "/identities/%V/credential-binding-jobs",
                &ctx->identity_id);

    body = ngx_http_passkey_json_object(r->pool);
    job = ngx_http_passkey_json_object(r->pool);

    if (body == NULL || job == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_passkey_json_set_string(job, "delivery_method",
                                         &ctx->delivery_method)
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
                      "answered %ui \"%V\"", &ctx->identity_id, bc->status,
                      &bc->log_message);

        ngx_http_passkey_bind_accepted(ctx);
        return;
    }

    if (bc->result != NGX_HTTP_PASSKEY_API_OK || bc->status != NGX_HTTP_OK) {
        ngx_http_passkey_api_failed(ctx);
        return;
    }

    if (ngx_http_passkey_json_string(pool, bc->json,
                                     "credential_binding_job.id",
                                     &ctx->job_id)
        != NGX_OK
        || ctx->job_id.len == 0
        || ngx_http_passkey_json_string(pool, bc->json,
                                        "credential_binding_job.state",
                                        &ctx->job_state)
           != NGX_OK
        || (ctx->delivery_method.data[0] == 'R'
            && (ngx_http_passkey_json_string(pool, bc->json,
                                             "credential_binding_link",
                                             &ctx->link)
                != NGX_OK
                || ctx->link.len == 0)))
    {
        bc->result = NGX_HTTP_PASSKEY_API_BAD_RESPONSE;
        bc->error = "the new job lacks its id, state or binding link";
        ngx_http_passkey_api_failed(ctx);
        return;
    }

    (void) ngx_http_passkey_json_string(pool, bc->json,
                                        "credential_binding_job.expire_time",
                                        &ctx->expire_time);

    /* owned by the request's pool, like the rest of the API's answer */
    ctx->job = ngx_http_passkey_json_child(bc->json,
                                           "credential_binding_job");

    ctx->expires = ngx_http_passkey_parse_rfc3339(&ctx->expire_time);

    if (ngx_http_passkey_store_job(ctx) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "passkey: binding job %V of identity %V was created "
                      "but cannot be stored in redis",
                      &ctx->job_id, &ctx->identity_id);

        if (ngx_http_passkey_redis_down(ctx, "storing the job") == NGX_OK) {
            ngx_http_passkey_bind_done(ctx);
        }
    }
}


static ngx_int_t
ngx_http_passkey_store_job(ngx_http_passkey_ctx_t *ctx)
{
    time_t                        now, ttl;
    ngx_tm_t                      tm;
    ngx_str_t                     argv[19];
    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ctx->request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    r->connection->log->action = "storing the passkey binding job";

    ctx->step = NGX_HTTP_PASSKEY_STEP_STORE_JOB;

    now = ngx_time();

    if (ctx->expires == 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "passkey: binding job %V has no readable expire_time, "
                      "keeping it for %d s", &ctx->job_id,
                      NGX_HTTP_PASSKEY_JOB_TTL_DEFAULT);
        ttl = NGX_HTTP_PASSKEY_JOB_TTL_DEFAULT;

    } else {
        ttl = ctx->expires - now;

        if (ttl < 60) {
            ttl = 60;
        }
    }

    /* EVAL script 1 key ttl field value ... */

    ngx_str_set(&argv[0], "EVAL");
    argv[1] = ngx_http_passkey_store_script;
    ngx_str_set(&argv[2], "1");

    argv[3].len = plcf->redis_prefix.len + sizeof("job:") - 1
                  + ctx->job_id.len;
    argv[3].data = ngx_pnalloc(r->pool, argv[3].len);
    if (argv[3].data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(argv[3].data, "%Vjob:%V", &plcf->redis_prefix, &ctx->job_id);

    argv[4].data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (argv[4].data == NULL) {
        return NGX_ERROR;
    }

    argv[4].len = ngx_sprintf(argv[4].data, "%T", ttl) - argv[4].data;

    ngx_str_set(&argv[5], "job_id");
    argv[6] = ctx->job_id;
    ngx_str_set(&argv[7], "identity_id");
    argv[8] = ctx->identity_id;
    ngx_str_set(&argv[9], "username");
    argv[10] = ctx->username;
    ngx_str_set(&argv[11], "delivery_method");
    argv[12] = ctx->delivery_method;
    ngx_str_set(&argv[13], "state");
    argv[14] = ctx->job_state;
    ngx_str_set(&argv[15], "expire_time");
    argv[16] = ctx->expire_time;
    ngx_str_set(&argv[17], "created_at");

    /* the binding link is a bearer secret: it is never stored */

    argv[18].len = sizeof("1970-01-01T00:00:00Z") - 1;
    argv[18].data = ngx_pnalloc(r->pool, argv[18].len);
    if (argv[18].data == NULL) {
        return NGX_ERROR;
    }

    ngx_gmtime(now, &tm);

    ngx_sprintf(argv[18].data, "%4d-%02d-%02dT%02d:%02d:%02dZ",
                tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);

    ngx_memzero(&ctx->redis, sizeof(ngx_http_passkey_redis_op_t));
    ctx->redis.pool = r->pool;
    ctx->redis.log = r->connection->log;
    ctx->redis.timeout = plcf->redis_timeout;
    ctx->redis.handler = ngx_http_passkey_job_stored;
    ctx->redis.data = ctx;

    if (ngx_http_passkey_redis_send(plcf->redis, &ctx->redis, 19, argv)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->waiting_redis = 1;

    return NGX_OK;
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
                      "but redis failed: \"%V\"", &ctx->job_id,
                      &ctx->identity_id, &op->str);

    } else {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "passkey: binding job %V of identity %V was created "
                      "but redis %s", &ctx->job_id, &ctx->identity_id,
                      op->result == NGX_HTTP_PASSKEY_REDIS_TIMEOUT
                      ? "timed out" : "is unavailable");
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
    ngx_http_request_t          *r;
    ngx_http_passkey_bi_call_t  *bc;

    r = ctx->request;
    bc = &ctx->bi;

    ngx_memzero(bc, sizeof(ngx_http_passkey_bi_call_t));

    bc->pool = r->pool;
    bc->log = r->connection->log;
    bc->conf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);
    bc->method.data = (u_char *) method;
    bc->method.len = ngx_strlen(method);
    bc->path = *path;

    if (query) {
        bc->query = *query;
    }

    if (body && ngx_http_passkey_json_dump(r->pool, body, &bc->body)
                != NGX_OK)
    {
        return NGX_ERROR;
    }

    bc->handler = handler;
    bc->data = ctx;

    return ngx_http_passkey_bi_start(bc);
}


static void
ngx_http_passkey_api_failed(ngx_http_passkey_ctx_t *ctx)
{
    ngx_http_passkey_problem_t  pb;

    ngx_http_passkey_bi_problem(ctx->request, &ctx->bi,
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
                  &ctx->job_id, &ctx->identity_id,
                  ctx->created ? "new identity" : "existing identity");

    if (plcf->bind_mode == NGX_HTTP_PASSKEY_SIGNUP && ctx->link.len == 0) {
        ngx_http_passkey_bind_accepted(ctx);
        return;
    }

    switch (plcf->bind_format) {

    case NGX_HTTP_PASSKEY_FORMAT_BI:
        json = ngx_http_passkey_bind_envelope(ctx);
        break;

    case NGX_HTTP_PASSKEY_FORMAT_CAMEL:
        json = ngx_http_passkey_bind_reply(ctx, 1);
        break;

    default: /* NGX_HTTP_PASSKEY_FORMAT_PASSKEY */
        json = ngx_http_passkey_bind_reply(ctx, 0);
    }

    if (json == NULL) {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     "internal_error",
                                     "cannot build the response");
        return;
    }

    ngx_http_passkey_bind_answer(ctx, NGX_HTTP_OK, json);
}


/*
 * The job as this module names it, or in camelCase with the username, as
 * the backend of Beyond Identity's Angular example answers.
 */

static ngx_http_passkey_json_t *
ngx_http_passkey_bind_reply(ngx_http_passkey_ctx_t *ctx, ngx_uint_t camel)
{
    ngx_str_t                  *value;
    ngx_http_passkey_json_t    *json;
    ngx_http_passkey_member_t  *m;

    json = ngx_http_passkey_json_object(ctx->request->pool);
    if (json == NULL) {
        return NULL;
    }

    if (camel
        && ngx_http_passkey_json_set_string(json, "username", &ctx->username)
           != NGX_OK)
    {
        return NULL;
    }

    for (m = ngx_http_passkey_members; m->name; m++) {
        value = (ngx_str_t *) ((u_char *) ctx + m->offset);

        if (m->optional && value->len == 0) {
            continue;
        }

        if (ngx_http_passkey_json_set_string(json, camel ? m->camel : m->name,
                                             value)
            != NGX_OK)
        {
            return NULL;
        }
    }

    return json;
}


/*
 * Beyond Identity's own answer to creating a job, which its mobile SDK
 * examples read: the job under "credential_binding_job", its members as
 * the API gave them, and the link beside it (RETURN only).
 */

static ngx_http_passkey_json_t *
ngx_http_passkey_bind_envelope(ngx_http_passkey_ctx_t *ctx)
{
    char                    **name;
    ngx_str_t                 s;
    ngx_pool_t               *pool;
    ngx_http_passkey_json_t  *json, *job;

    pool = ctx->request->pool;

    json = ngx_http_passkey_json_object(pool);
    job = ngx_http_passkey_json_object(pool);

    if (json == NULL || job == NULL) {
        return NULL;
    }

    for (name = ngx_http_passkey_job_members; *name; name++) {

        switch (ngx_http_passkey_json_string(pool, ctx->job, *name, &s)) {

        case NGX_OK:
            if (ngx_http_passkey_json_set_string(job, *name, &s) != NGX_OK) {
                return NULL;
            }

            break;

        case NGX_DECLINED:
            /* not there, or not a string: the API did not say */
            break;

        default:
            return NULL;
        }
    }

    if (ngx_http_passkey_json_set_object(json, "credential_binding_job", job)
        != NGX_OK
        || (ctx->link.len
            && ngx_http_passkey_json_set_string(json,
                                                "credential_binding_link",
                                                &ctx->link)
               != NGX_OK))
    {
        return NULL;
    }

    return json;
}


/*
 * The one answer of sign-up by email, whether the username was free or
 * taken, emailed or not: nothing in it tells them apart.
 */

static void
ngx_http_passkey_bind_accepted(ngx_http_passkey_ctx_t *ctx)
{
    ngx_str_t                 s;
    ngx_http_passkey_json_t  *json;

    ctx->request->connection->log->action = "sending the passkey binding job";

    json = ngx_http_passkey_json_object(ctx->request->pool);

    ngx_str_set(&s, "accepted");

    if (json == NULL
        || ngx_http_passkey_json_set_string(json, "state", &s) != NGX_OK)
    {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     "internal_error",
                                     "cannot build the response");
        return;
    }

    ngx_str_set(&s, "EMAIL");

    if (ngx_http_passkey_json_set_string(json, "delivery_method", &s)
        != NGX_OK)
    {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     "internal_error",
                                     "cannot build the response");
        return;
    }

    ngx_http_passkey_bind_answer(ctx, NGX_HTTP_ACCEPTED, json);
}


/* a success is kept for Idempotency-Key replays before it is sent */

static void
ngx_http_passkey_bind_answer(ngx_http_passkey_ctx_t *ctx, ngx_uint_t status,
    ngx_http_passkey_json_t *json)
{
    ngx_int_t            rc;
    ngx_str_t            body;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ngx_http_passkey_json_dump(r->pool, json, &body) != NGX_OK) {
        ngx_http_passkey_bind_reject(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     "internal_error",
                                     "cannot build the response");
        return;
    }

    ctx->step = NGX_HTTP_PASSKEY_STEP_SAVE_ANSWER;
    ctx->guard.status = status;
    ctx->guard.body = body;

    rc = ngx_http_passkey_guard_save(ctx, status, &body,
                                     ngx_http_passkey_answer_saved);

    if (rc == NGX_OK) {
        ctx->waiting_redis = 1;
        return;
    }

    /* a duplicate lock stays until it expires: that is its purpose */

    if (rc == NGX_DECLINED) {
        ctx->guard.held = 0;
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

    ctx->waiting_redis = 0;

    if (op->result != NGX_HTTP_PASSKEY_REDIS_OK
        || op->type == NGX_HTTP_PASSKEY_REDIS_ERROR)
    {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "passkey: the answer cannot be kept for "
                      "Idempotency-Key replays: redis %s",
                      op->result == NGX_HTTP_PASSKEY_REDIS_TIMEOUT
                      ? "timed out" : "is unavailable");

        /* a retry must not wait for a claim that nothing will fill */

        ctx->guard.held = 1;
        ngx_http_passkey_guard_release(&ctx->guard);
    }

    ngx_http_passkey_bind_send(ctx, ctx->guard.status, &ctx->guard.body);
}


static void
ngx_http_passkey_bind_send(ngx_http_passkey_ctx_t *ctx, ngx_uint_t status,
    ngx_str_t *body)
{
    ngx_http_request_t  *r;

    r = ctx->request;

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

    ngx_http_passkey_guard_release(&ctx->guard);

    ngx_http_passkey_finalize(ctx->request,
        ngx_http_passkey_send_problem(ctx->request, status, code, &s));
}


/*
 * A new step starts with a call that, until it is made, reports an
 * internal error: so a step that fails to build its request is not
 * mistaken for the previous step's answer.
 */

static void
ngx_http_passkey_bind_step(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_step_e step, char *action)
{
    ctx->request->connection->log->action = action;
    ctx->step = step;

    ngx_memzero(&ctx->bi, sizeof(ngx_http_passkey_bi_call_t));
    ctx->bi.result = NGX_HTTP_PASSKEY_API_INTERNAL;
    ctx->bi.error = "cannot build the API request";
}

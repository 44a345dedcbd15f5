
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * What a bind asks for: the user (the verified one in authenticated mode,
 * else the body's or the configured value), the email address and
 * display name, the delivery method and the redirect after binding, each
 * checked.  A refusal is logged here and left in ctx->problem for the
 * bind to answer.
 */


static ngx_int_t ngx_http_passkey_bind_caller(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx);
static ngx_int_t ngx_http_passkey_bind_same(ngx_http_passkey_ctx_t *ctx,
    char *member, ngx_str_t *value);
static ngx_int_t ngx_http_passkey_bind_value(ngx_http_passkey_ctx_t *ctx,
    ngx_http_complex_value_t *cv, char *member, ngx_str_t *value);
static ngx_int_t ngx_http_passkey_bind_delivery(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx);
static ngx_int_t ngx_http_passkey_request_refuse(ngx_http_passkey_ctx_t *ctx,
    ngx_uint_t log, ngx_uint_t status, char *code, char *detail);


ngx_int_t
ngx_http_passkey_bind_request(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (plcf->bind_mode == NGX_HTTP_PASSKEY_AUTHENTICATED) {
        if (ngx_http_passkey_bind_caller(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (ngx_http_passkey_bind_value(ctx, plcf->username, "username",
                                           &ctx->vars.username)
               != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_passkey_bind_value(ctx, plcf->email, "email", &ctx->vars.email)
        != NGX_OK
        || ngx_http_passkey_bind_value(ctx, plcf->display_name,
                                       "display_name", &ctx->display_name)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* a body that names someone else is worth refusing loudly */

    if (plcf->bind_mode == NGX_HTTP_PASSKEY_AUTHENTICATED
        && (ngx_http_passkey_bind_same(ctx, "username", &ctx->vars.username)
            != NGX_OK
            || (plcf->email
                && ngx_http_passkey_bind_same(ctx, "email", &ctx->vars.email)
                   != NGX_OK)))
    {
        ngx_http_passkey_request_refuse(ctx, 1, NGX_HTTP_FORBIDDEN,
                                        "identity_mismatch",
                                        "the request names another user than "
                                        "the signed-in one");
        return NGX_ERROR;
    }

    if (ctx->vars.username.len == 0) {
        ngx_http_passkey_request_refuse(ctx, 1, NGX_HTTP_BAD_REQUEST,
                                        "missing_username",
                                        "a username is required");
        return NGX_ERROR;
    }

    if (ngx_http_passkey_check_name(&ctx->vars.username) != NGX_OK) {
        ngx_http_passkey_request_refuse(ctx, 1, NGX_HTTP_BAD_REQUEST,
                                        "invalid_username",
                                        "the username must be 1 to 64 "
                                        "characters without control "
                                        "characters or any of "
                                        "{}[]<>;:?\\/|*^%$#=~`!");
        return NGX_ERROR;
    }

    if (ctx->display_name.len == 0) {
        ctx->display_name = ctx->vars.username;

    } else if (ngx_http_passkey_check_name(&ctx->display_name) != NGX_OK) {
        ngx_http_passkey_request_refuse(ctx, 1, NGX_HTTP_BAD_REQUEST,
                                        "invalid_display_name",
                                        "the display name must be 1 to 64 "
                                        "characters without control characters "
                                        "or any of {}[]<>;:?\\/|*^%$#=~`!");
        return NGX_ERROR;
    }

    if (ctx->vars.email.len
        && ngx_http_passkey_check_email(&ctx->vars.email) != NGX_OK)
    {
        ngx_http_passkey_request_refuse(ctx, 1, NGX_HTTP_BAD_REQUEST,
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
        && ctx->vars.delivery_method.data[0] == 'E' && ctx->vars.email.len == 0)
    {
        ngx_http_passkey_request_refuse(ctx, 1, NGX_HTTP_BAD_REQUEST,
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

    switch (ngx_http_passkey_json_string(r->pool, ctx->vars.body,
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
            ngx_http_passkey_request_refuse(ctx, 1, NGX_HTTP_BAD_REQUEST,
                                            "invalid_delivery_method",
                                            "this delivery method is not "
                                            "allowed here");
            return NGX_ERROR;
        }

        break;

    case NGX_DECLINED:

        /* present but not a string: not a silent fallback to the default */

        if (ngx_http_passkey_json_child(ctx->vars.body, "delivery_method")
            != NULL)
        {
            ngx_http_passkey_request_refuse(ctx, 1, NGX_HTTP_BAD_REQUEST,
                                            "invalid_delivery_method",
                                            "the delivery method must be "
                                            "\"RETURN\" or \"EMAIL\"");
            return NGX_ERROR;
        }

        break;

    default:
        ngx_http_passkey_request_refuse(ctx, 1,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "internal_error", "out of memory");
        return NGX_ERROR;
    }

    if (bit == NGX_HTTP_PASSKEY_EMAIL) {
        ngx_str_set(&ctx->vars.delivery_method, "EMAIL");

    } else {
        ngx_str_set(&ctx->vars.delivery_method, "RETURN");
    }

    if (plcf->post_binding_redirect_uri == NULL) {
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, plcf->post_binding_redirect_uri,
                               &ctx->post_binding_redirect_uri)
        != NGX_OK)
    {
        ngx_http_passkey_request_refuse(ctx, 1,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "internal_error",
                                        "cannot evaluate the redirect");
        return NGX_ERROR;
    }

    if (ctx->post_binding_redirect_uri.len
        && ngx_http_passkey_check_redirect(&ctx->post_binding_redirect_uri,
                                           plcf->redirect_origins)
           != NGX_OK)
    {
        ngx_http_passkey_request_refuse(ctx, 1, NGX_HTTP_BAD_REQUEST,
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
        rc = ngx_http_passkey_json_string(r->pool, ctx->vars.body, member,
                                          value);

        if (rc == NGX_DECLINED
            && ngx_http_passkey_json_child(ctx->vars.body, member) == NULL)
        {
            ngx_str_null(value);
            return NGX_OK;
        }
    }

    if (rc == NGX_OK) {
        return NGX_OK;
    }

    if (rc == NGX_ERROR) {
        ngx_http_passkey_request_refuse(ctx, 1,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
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

        ngx_http_passkey_request_refuse(ctx, 0, NGX_HTTP_FORBIDDEN,
                                        "invalid_verified_user",
                                        "the signed-in user cannot be bound "
                                        "safely");
        return NGX_ERROR;
    }

    switch (member[0]) {

    case 'u':
        ngx_http_passkey_request_refuse(ctx, 1, NGX_HTTP_BAD_REQUEST,
                                        "invalid_username",
                                        "the username must be a string");
        break;

    case 'e':
        ngx_http_passkey_request_refuse(ctx, 1, NGX_HTTP_BAD_REQUEST,
                                        "invalid_email",
                                        "the email address must be a string");
        break;

    default:
        ngx_http_passkey_request_refuse(ctx, 1, NGX_HTTP_BAD_REQUEST,
                                        "invalid_display_name",
                                        "the display name must be a string");
    }

    return NGX_ERROR;
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
                                           &ctx->vars.username))
    {
    case NGX_OK:
        return NGX_OK;

    case NGX_DECLINED:
        ngx_http_passkey_request_refuse(ctx, 1, NGX_HTTP_UNAUTHORIZED,
                                        "unauthenticated",
                                        "sign in first: no verified user");
        return NGX_ERROR;

    case NGX_ABORT:
        ngx_http_passkey_request_refuse(ctx, 0, NGX_HTTP_FORBIDDEN,
                                        "invalid_verified_user",
                                        "the signed-in user cannot be bound "
                                        "safely");
        return NGX_ERROR;

    default:
        ngx_http_passkey_request_refuse(ctx, 1,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
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

    if (ngx_http_passkey_json_child(ctx->vars.body, member) == NULL) {
        return NGX_OK;
    }

    if (ngx_http_passkey_json_string(ctx->request->pool, ctx->vars.body, member,
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
 * What the client got wrong is logged at "info", as nginx logs bad
 * requests, what failed here at "error"; a refusal logged where it was
 * noticed is not logged again.
 */

static ngx_int_t
ngx_http_passkey_request_refuse(ngx_http_passkey_ctx_t *ctx, ngx_uint_t log,
    ngx_uint_t status, char *code, char *detail)
{
    ngx_uint_t  level;

    if (log) {
        level = (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) ? NGX_LOG_ERR
                                                           : NGX_LOG_INFO;

        ngx_log_error(level, ctx->request->connection->log, 0,
                      "passkey: %s: %s", code, detail);
    }

    ctx->problem.status = status;
    ctx->problem.code = code;
    ctx->problem.detail = detail;

    return NGX_ERROR;
}

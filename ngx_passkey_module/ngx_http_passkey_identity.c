
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * The identity a bind is for: created with POST /identities, which costs
 * a new user one call, or, when the API answers 409 (the username is
 * taken), looked up with a filter on the username.  Which identity a bind
 * may use is decided here: exactly one of that name, and in authenticated
 * mode one spelled as the verified name.  The outcome goes to the bind's
 * handler; the API call that failed, if one did, is in ctx->bi.
 */


static ngx_int_t ngx_http_passkey_create_identity(
    ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_identity_created(
    ngx_http_passkey_bi_call_t *bc);
static ngx_int_t ngx_http_passkey_find_identity(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_identity_found(ngx_http_passkey_bi_call_t *bc);
static void ngx_http_passkey_signup_existing(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_identity_report(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_identity_e rc);


ngx_int_t
ngx_http_passkey_identity_resolve(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_identity_done_pt done)
{
    ctx->identity_done = done;

    return ngx_http_passkey_create_identity(ctx);
}


static ngx_int_t
ngx_http_passkey_create_identity(ngx_http_passkey_ctx_t *ctx)
{
    ngx_str_t                 s;
    ngx_pool_t               *pool;
    ngx_http_passkey_json_t  *body, *identity, *traits;
    static ngx_str_t          path = ngx_string("/identities");

    pool = ctx->request->pool;

    ctx->step = NGX_HTTP_PASSKEY_STEP_CREATE_IDENTITY;
    ctx->request->connection->log->action = "creating the passkey identity";

    body = ngx_http_passkey_json_object(pool);
    identity = ngx_http_passkey_json_object(pool);
    traits = ngx_http_passkey_json_object(pool);

    if (body == NULL || identity == NULL || traits == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&s, "traits_v0");

    if (ngx_http_passkey_json_set_string(traits, "type", &s) != NGX_OK
        || ngx_http_passkey_json_set_string(traits, "username",
                                            &ctx->vars.username)
           != NGX_OK
        || (ctx->vars.email.len
            && ngx_http_passkey_json_set_string(traits,
                                                "primary_email_address",
                                                &ctx->vars.email)
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

    return ngx_http_passkey_bi_request(&ctx->bi, ctx->request, "POST", &path,
                                       NULL, body,
                                       ngx_http_passkey_identity_created,
                                       ctx);
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
            ngx_http_passkey_identity_report(ctx,
                                         NGX_HTTP_PASSKEY_IDENTITY_FAILED);
        }

        return;
    }

    if (bc->result != NGX_HTTP_PASSKEY_API_OK || bc->status != NGX_HTTP_OK) {
        ngx_http_passkey_identity_report(ctx,
                                         NGX_HTTP_PASSKEY_IDENTITY_FAILED);
        return;
    }

    /* it goes into the next call's URL path */

    if (ngx_http_passkey_json_string(r->pool, bc->json, "id",
                                     &ctx->vars.identity_id)
        != NGX_OK
        || ngx_http_passkey_valid_id(&ctx->vars.identity_id) != NGX_OK)
    {
        bc->result = NGX_HTTP_PASSKEY_API_BAD_RESPONSE;
        bc->error = "no valid \"id\" in the new identity";
        ngx_http_passkey_identity_report(ctx,
                                         NGX_HTTP_PASSKEY_IDENTITY_FAILED);
        return;
    }

    ctx->created = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "passkey: created identity %V", &ctx->vars.identity_id);

    ngx_http_passkey_identity_report(ctx, NGX_HTTP_PASSKEY_IDENTITY_CREATED);
}


static ngx_int_t
ngx_http_passkey_find_identity(ngx_http_passkey_ctx_t *ctx)
{
    u_char              *p;
    ngx_str_t            quoted, filter, escaped, query;
    ngx_http_request_t  *r;
    static ngx_str_t     path = ngx_string("/identities");

    r = ctx->request;

    ctx->step = NGX_HTTP_PASSKEY_STEP_FIND_IDENTITY;
    r->connection->log->action = "looking up the passkey identity";

    /* traits.username eq "<JSON string>", then percent-encoded whole */

    if (ngx_http_passkey_json_quote(r->pool, &ctx->vars.username, &quoted)
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

    return ngx_http_passkey_bi_request(&ctx->bi, r, "GET", &path, &query,
                                       NULL, ngx_http_passkey_identity_found,
                                       ctx);
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
        ngx_http_passkey_identity_report(ctx,
                                         NGX_HTTP_PASSKEY_IDENTITY_FAILED);
        return;
    }

    list = ngx_http_passkey_json_child(bc->json, "identities");
    n = ngx_http_passkey_json_size(list);
    matches = 0;

    if (list == NULL) {
        bc->result = NGX_HTTP_PASSKEY_API_BAD_RESPONSE;
        bc->error = "no \"identities\" in the list response";
        ngx_http_passkey_identity_report(ctx,
                                         NGX_HTTP_PASSKEY_IDENTITY_FAILED);
        return;
    }

    /* the filter is case-insensitive; so is the comparison */

    for (i = 0; i < n; i++) {
        identity = ngx_http_passkey_json_at(list, i);

        if (ngx_http_passkey_json_string(r->pool, identity,
                                         "traits.username", &username)
            != NGX_OK
            || username.len != ctx->vars.username.len
            || ngx_strncasecmp(username.data, ctx->vars.username.data,
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
            ngx_http_passkey_identity_report(ctx,
                                         NGX_HTTP_PASSKEY_IDENTITY_FAILED);
            return;
        }

        ctx->vars.identity_id = id;
        spelled = username;
        matches++;
    }

    if (matches > 1) {
        bc->result = NGX_HTTP_PASSKEY_API_BAD_RESPONSE;
        bc->error = "more than one identity has this username";
        ngx_http_passkey_identity_report(ctx,
                                         NGX_HTTP_PASSKEY_IDENTITY_FAILED);
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
        && (spelled.len != ctx->vars.username.len
            || ngx_strncmp(spelled.data, ctx->vars.username.data, spelled.len)
               != 0))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: identity %V is spelled otherwise than the "
                      "verified username: refused, as the application's "
                      "accounts must not differ by case only",
                      &ctx->vars.identity_id);

        ngx_http_passkey_identity_report(ctx,
                                         NGX_HTTP_PASSKEY_IDENTITY_MISSPELLED);
        return;
    }

    if (matches == 1) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "passkey: found identity %V", &ctx->vars.identity_id);

        if (ctx->existing) {
            ngx_http_passkey_signup_existing(ctx);
            return;
        }

        ngx_http_passkey_identity_report(ctx, NGX_HTTP_PASSKEY_IDENTITY_FOUND);
        return;
    }

    /* the username is free, so the conflict was about something else */

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "passkey: creating an identity conflicted, but no "
                  "identity has that username");

    ngx_http_passkey_identity_report(ctx, NGX_HTTP_PASSKEY_IDENTITY_NONE);
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
                      "identity %V", &ctx->vars.identity_id);

        ngx_http_passkey_identity_report(ctx, NGX_HTTP_PASSKEY_IDENTITY_TAKEN);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "passkey: sign-up with a taken username: emailing "
                  "identity %V", &ctx->vars.identity_id);

    ngx_str_set(&ctx->vars.delivery_method, "EMAIL");
    ngx_str_null(&ctx->post_binding_redirect_uri);

    ngx_http_passkey_identity_report(ctx, NGX_HTTP_PASSKEY_IDENTITY_FOUND);
}


static void
ngx_http_passkey_identity_report(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_identity_e rc)
{
    ctx->identity_done(ctx, rc);
}

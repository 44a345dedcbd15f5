
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"
#include "ngx_http_passkey_crypto.h"


/*
 * The identity a bind is for: created with POST /identities, which costs
 * a new user one call, or, when the API answers 409 (the username is
 * taken), looked up with a filter on the username.  Which identity a bind
 * may use is decided here: exactly one of that name, and in authenticated
 * mode one spelled as the verified name.  The outcome goes to the bind's
 * handler; the API call that failed, if one did, is in ctx->bi.
 *
 * Authenticated mode serves users who mostly exist: it looks up first,
 * and remembers in Redis (passkey_identity_cache) which identity a
 * verified username has, so that the next bind makes one API call, the
 * job's POST.  The key is the username's exact bytes: only a name that
 * the API found spelled exactly so, or created, is remembered, so the
 * case-insensitive match of Beyond Identity is always checked by a
 * lookup first.  A job's POST answered 404 forgets the identity and the
 * bind asks the API again.  Sign-up mode neither reads nor writes it: a
 * taken name there follows passkey_signup_existing, decided by the API.
 */


static ngx_int_t ngx_http_passkey_identity_key(ngx_http_passkey_ctx_t *ctx,
    ngx_str_t *key);
static void ngx_http_passkey_identity_recalled(
    ngx_http_passkey_redis_op_t *op);
static void ngx_http_passkey_identity_forgotten(
    ngx_http_passkey_redis_op_t *op);
static ngx_int_t ngx_http_passkey_identity_start(ngx_http_passkey_ctx_t *ctx);
static ngx_int_t ngx_http_passkey_create_identity(
    ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_identity_created(
    ngx_http_passkey_bi_call_t *bc);
static ngx_int_t ngx_http_passkey_find_identity(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_identity_found(ngx_http_passkey_bi_call_t *bc);
static void ngx_http_passkey_signup_existing(ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_identity_report(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_identity_e rc);


/*
 * Sent with the guard's script, which Redis answers first on the same
 * connection: both replies come in one round trip.
 */

void
ngx_http_passkey_identity_recall(ngx_http_passkey_ctx_t *ctx)
{
    ngx_str_t                     argv[2];
    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ctx->request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (plcf->bind_mode != NGX_HTTP_PASSKEY_AUTHENTICATED
        || plcf->identity_cache == 0)
    {
        return;
    }

    ngx_str_set(&argv[0], "GET");

    if (ngx_http_passkey_identity_key(ctx, &argv[1]) != NGX_OK) {
        return;
    }

    if (ngx_http_passkey_redis_ask(r, &ctx->recall,
                                   ngx_http_passkey_identity_recalled, ctx,
                                   2, argv)
        == NGX_OK)
    {
        ctx->recalling = 1;
    }
}


static void
ngx_http_passkey_identity_recalled(ngx_http_passkey_redis_op_t *op)
{
    ngx_http_passkey_ctx_t *ctx = op->data;

    ctx->recalling = 0;

    /* not there, or Redis failed: the API is asked */

    if (op->result == NGX_HTTP_PASSKEY_REDIS_OK
        && op->type == NGX_HTTP_PASSKEY_REDIS_STRING
        && ngx_http_passkey_valid_id(&op->str) == NGX_OK)
    {
        ctx->recalled = op->str;
    }

    if (!ctx->recall_awaited) {
        return;
    }

    ctx->recall_awaited = 0;

    if (ngx_http_passkey_identity_start(ctx) != NGX_OK) {
        ngx_http_passkey_identity_report(ctx,
                                         NGX_HTTP_PASSKEY_IDENTITY_FAILED);
    }
}


ngx_int_t
ngx_http_passkey_identity_resolve(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_identity_done_pt done)
{
    ctx->identity_done = done;

    if (ctx->recalling) {
        ctx->recall_awaited = 1;
        return NGX_OK;
    }

    return ngx_http_passkey_identity_start(ctx);
}


static ngx_int_t
ngx_http_passkey_identity_start(ngx_http_passkey_ctx_t *ctx)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(ctx->request,
                                        ngx_http_passkey_module);

    if (ctx->recalled.len) {
        ctx->vars.identity_id = ctx->recalled;
        ngx_str_null(&ctx->recalled);
        ctx->remembered = 1;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "passkey: remembered identity %V",
                       &ctx->vars.identity_id);

        ngx_http_passkey_identity_report(ctx, NGX_HTTP_PASSKEY_IDENTITY_FOUND);
        return NGX_OK;
    }

    if (plcf->bind_mode == NGX_HTTP_PASSKEY_AUTHENTICATED) {
        ctx->lookup_first = 1;
        return ngx_http_passkey_find_identity(ctx);
    }

    return ngx_http_passkey_create_identity(ctx);
}


/*
 * The job's POST found no identity of the remembered id: it was deleted.
 * The bind asks the API, and the store of its job remembers the answer.
 */

ngx_int_t
ngx_http_passkey_identity_forget(ngx_http_passkey_ctx_t *ctx)
{
    ngx_str_t            argv[2];
    ngx_http_request_t  *r;

    r = ctx->request;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "passkey: remembered identity %V is gone, asking the API",
                  &ctx->vars.identity_id);

    ctx->remembered = 0;
    ngx_str_null(&ctx->vars.identity_id);

    ngx_str_set(&argv[0], "DEL");

    if (ngx_http_passkey_identity_key(ctx, &argv[1]) == NGX_OK) {
        (void) ngx_http_passkey_redis_ask(r, &ctx->recall,
                                          ngx_http_passkey_identity_forgotten,
                                          ctx, 2, argv);
    }

    return ngx_http_passkey_identity_start(ctx);
}


/* a stale entry costs a call until it expires: nothing else to do */

static void
ngx_http_passkey_identity_forgotten(ngx_http_passkey_redis_op_t *op)
{
}


/*
 * What the job's store writes in its script, to remember the identity in
 * the same round trip: NGX_DECLINED when there is nothing to remember.
 * A remembered entry is not renewed: an identity renamed in the console
 * is found again by a lookup once the entry expires.
 */

ngx_int_t
ngx_http_passkey_identity_remember(ngx_http_passkey_ctx_t *ctx,
    ngx_str_t *key, ngx_str_t *ttl)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(ctx->request,
                                        ngx_http_passkey_module);

    if (plcf->bind_mode != NGX_HTTP_PASSKEY_AUTHENTICATED
        || plcf->identity_cache == 0
        || ctx->remembered
        || ctx->vars.identity_id.len == 0)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_passkey_identity_key(ctx, key) != NGX_OK) {
        return NGX_ERROR;
    }

    ttl->data = ngx_pnalloc(ctx->request->pool, NGX_TIME_T_LEN);
    if (ttl->data == NULL) {
        return NGX_ERROR;
    }

    ttl->len = ngx_sprintf(ttl->data, "%M",
                           ngx_max(plcf->identity_cache / 1000, 1))
               - ttl->data;

    return NGX_OK;
}


/*
 * What the job's store cannot write in its script: in a cluster, the
 * entry's key and the job's hash to different slots.  Nothing waits.
 */

void
ngx_http_passkey_identity_remember_apart(ngx_http_passkey_ctx_t *ctx,
    ngx_str_t *key, ngx_str_t *ttl)
{
    ngx_str_t                     argv[5];
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(ctx->request,
                                        ngx_http_passkey_module);

    ngx_str_set(&argv[0], "SET");
    argv[1] = *key;
    argv[2] = ctx->vars.identity_id;
    ngx_str_set(&argv[3], "EX");
    argv[4] = *ttl;

    ngx_http_passkey_redis_post(plcf->redis, plcf->redis_timeout, 5, argv,
                                "passkey: cannot remember an identity in "
                                "redis; the next bind asks the API");
}


/* "<passkey_redis_prefix>identity:<SHA-256 of tenant, realm, username>" */

static ngx_int_t
ngx_http_passkey_identity_key(ngx_http_passkey_ctx_t *ctx, ngx_str_t *key)
{
    ngx_str_t                     parts[3], hex;
    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ctx->request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    parts[0] = plcf->tenant_id;
    parts[1] = plcf->realm_id;
    parts[2] = ctx->vars.username;

    if (ngx_http_passkey_digest(r->pool, parts, 3, &hex) != NGX_OK) {
        return NGX_ERROR;
    }

    key->len = plcf->redis_prefix.len + sizeof("identity:") - 1 + hex.len;
    key->data = ngx_pnalloc(r->pool, key->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(key->data, "%Videntity:%V", &plcf->redis_prefix, &hex);

    return NGX_OK;
}


static ngx_int_t
ngx_http_passkey_create_identity(ngx_http_passkey_ctx_t *ctx)
{
    ngx_str_t                 s;
    ngx_pool_t               *pool;
    ngx_http_passkey_json_t  *body, *identity, *traits;
    static ngx_str_t          path = ngx_string("/identities");

    pool = ctx->request->pool;

    /* a 409 now means the name was taken since: look it up again */
    ctx->lookup_first = 0;

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

    if (ctx->lookup_first) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "passkey: no identity yet, creating it");

        if (ngx_http_passkey_create_identity(ctx) != NGX_OK) {
            ngx_http_passkey_identity_report(ctx,
                                         NGX_HTTP_PASSKEY_IDENTITY_FAILED);
        }

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

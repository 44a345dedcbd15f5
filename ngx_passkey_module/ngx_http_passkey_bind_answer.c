
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * The shapes of a bind's answer (passkey_bind_format): the module's own,
 * Beyond Identity's envelope, or camelCase with the username; and the
 * one answer every sign-up without a link gets.
 */


static ngx_http_passkey_json_t *ngx_http_passkey_bind_reply(
    ngx_http_passkey_ctx_t *ctx, ngx_uint_t camel);
static ngx_http_passkey_json_t *ngx_http_passkey_bind_envelope(
    ngx_http_passkey_ctx_t *ctx);


/* the members of a job's answer, as this module and camelCase name them */

typedef struct {
    char                             *name;
    char                             *camel;
    size_t                            offset;    /* of an ngx_str_t in ctx */
    ngx_uint_t                        optional;  /* left out when empty */
} ngx_http_passkey_member_t;


static ngx_http_passkey_member_t  ngx_http_passkey_members[] = {
    { "job_id", "jobId", offsetof(ngx_http_passkey_ctx_t, vars.job_id), 0 },
    { "identity_id", "identityId",
      offsetof(ngx_http_passkey_ctx_t, vars.identity_id), 0 },
    { "state", "state", offsetof(ngx_http_passkey_ctx_t, vars.job_state), 0 },
    { "expire_time", "expireTime",
      offsetof(ngx_http_passkey_ctx_t, expire_time), 0 },
    { "delivery_method", "deliveryMethod",
      offsetof(ngx_http_passkey_ctx_t, vars.delivery_method), 0 },
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


ngx_http_passkey_json_t *
ngx_http_passkey_bind_shape(ngx_http_passkey_ctx_t *ctx, ngx_uint_t format)
{
    switch (format) {

    case NGX_HTTP_PASSKEY_FORMAT_BI:
        return ngx_http_passkey_bind_envelope(ctx);

    case NGX_HTTP_PASSKEY_FORMAT_CAMEL:
        return ngx_http_passkey_bind_reply(ctx, 1);

    default: /* NGX_HTTP_PASSKEY_FORMAT_PASSKEY */
        return ngx_http_passkey_bind_reply(ctx, 0);
    }
}


/*
 * {"state":"accepted","delivery_method":"EMAIL"}: the same for a free and
 * a taken username
 */

ngx_http_passkey_json_t *
ngx_http_passkey_bind_accepted_shape(ngx_pool_t *pool)
{
    ngx_str_t                 s;
    ngx_http_passkey_json_t  *json;

    json = ngx_http_passkey_json_object(pool);
    if (json == NULL) {
        return NULL;
    }

    ngx_str_set(&s, "accepted");

    if (ngx_http_passkey_json_set_string(json, "state", &s) != NGX_OK) {
        return NULL;
    }

    ngx_str_set(&s, "EMAIL");

    if (ngx_http_passkey_json_set_string(json, "delivery_method", &s)
        != NGX_OK)
    {
        return NULL;
    }

    return json;
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
        && ngx_http_passkey_json_set_string(json, "username",
                                            &ctx->vars.username)
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

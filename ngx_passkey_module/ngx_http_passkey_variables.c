
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


static ngx_int_t ngx_http_passkey_ctx_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_passkey_json_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_passkey_vars[] = {

    { ngx_string("passkey_job_id"), NULL, ngx_http_passkey_ctx_variable,
      offsetof(ngx_http_passkey_ctx_t, job_id), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("passkey_identity_id"), NULL,
      ngx_http_passkey_ctx_variable,
      offsetof(ngx_http_passkey_ctx_t, identity_id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("passkey_job_state"), NULL, ngx_http_passkey_ctx_variable,
      offsetof(ngx_http_passkey_ctx_t, job_state),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("passkey_json_"), NULL, ngx_http_passkey_json_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_passkey_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_passkey_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_passkey_ctx_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t               *s;
    ngx_http_passkey_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_passkey_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((char *) ctx + data);

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}


/*
 * $passkey_json_NAME: the top-level string member NAME of the JSON request
 * body that a passkey handler has read; empty before that.
 */

static ngx_int_t
ngx_http_passkey_json_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t               *name = (ngx_str_t *) data;

    u_char                   key[64];
    size_t                   len;
    ngx_str_t                value;
    ngx_http_passkey_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_passkey_module);

    len = name->len - (sizeof("passkey_json_") - 1);

    if (ctx == NULL || ctx->body == NULL || len == 0 || len >= sizeof(key)) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_memcpy(key, name->data + sizeof("passkey_json_") - 1, len);
    key[len] = '\0';

    /* a dot would make it a path; only top-level members are exposed */
    if (ngx_strchr(key, '.') != NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (ngx_http_passkey_json_string(r->pool, ctx->body, (char *) key,
                                         &value))
    {
    case NGX_OK:
        break;

    case NGX_DECLINED:
        v->not_found = 1;
        return NGX_OK;

    default:
        return NGX_ERROR;
    }

    v->len = value.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = value.data;

    return NGX_OK;
}

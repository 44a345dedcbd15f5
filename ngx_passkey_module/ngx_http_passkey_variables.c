
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
static ngx_int_t ngx_http_passkey_request_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_passkey_lowercase_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_passkey_network_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_passkey_vars[] = {

    { ngx_string("passkey_job_id"), NULL, ngx_http_passkey_ctx_variable,
      offsetof(ngx_http_passkey_vars_t, job_id), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("passkey_identity_id"), NULL,
      ngx_http_passkey_ctx_variable,
      offsetof(ngx_http_passkey_vars_t, identity_id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("passkey_job_state"), NULL, ngx_http_passkey_ctx_variable,
      offsetof(ngx_http_passkey_vars_t, job_state),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("passkey_binding_link"), NULL,
      ngx_http_passkey_ctx_variable,
      offsetof(ngx_http_passkey_vars_t, binding_link),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("passkey_delivery_method"), NULL,
      ngx_http_passkey_ctx_variable,
      offsetof(ngx_http_passkey_vars_t, delivery_method),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    /* the checked input, for keys of passkey_limit and for logs */

    { ngx_string("passkey_username"), NULL,
      ngx_http_passkey_lowercase_variable,
      offsetof(ngx_http_passkey_vars_t, username),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("passkey_email"), NULL, ngx_http_passkey_lowercase_variable,
      offsetof(ngx_http_passkey_vars_t, email),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("passkey_client_network"), NULL,
      ngx_http_passkey_network_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("passkey_request"), NULL,
      ngx_http_passkey_request_variable, 1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("passkey_request_uri"), NULL,
      ngx_http_passkey_request_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

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
    ngx_http_passkey_vars_t  *ctx;

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
    ngx_str_t                *name = (ngx_str_t *) data;

    u_char                    key[64];
    size_t                    len;
    ngx_str_t                 value;
    ngx_http_passkey_vars_t  *ctx;

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


/*
 * Beyond Identity compares usernames without case, and mail domains are
 * without case: "Carol" must not get a rate limit bucket of its own.
 */

static ngx_int_t
ngx_http_passkey_lowercase_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char  *p;

    if (ngx_http_passkey_ctx_variable(r, v, data) != NGX_OK) {
        return NGX_ERROR;
    }

    if (v->not_found) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, v->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_strlow(p, v->data, v->len);
    v->data = p;

    return NGX_OK;
}


/*
 * $passkey_request_uri: $request_uri with the value of every "token"
 * argument replaced by "-"; $passkey_request: the request line made the
 * same way.  For access logs: binding links and /bind URLs carry bearer
 * tokens in their query strings.
 */

static ngx_int_t
ngx_http_passkey_request_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   uri;

    if (ngx_http_passkey_safe_uri(r, &uri) != NGX_OK) {
        return NGX_ERROR;
    }

    if (data == 0) {
        v->data = uri.data;
        v->len = uri.len;

    } else {
        len = r->method_name.len + 1 + uri.len
              + (r->http_protocol.len ? 1 + r->http_protocol.len : 0);

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = len;

        p = ngx_cpymem(p, r->method_name.data, r->method_name.len);
        *p++ = ' ';
        p = ngx_cpymem(p, uri.data, uri.len);

        if (r->http_protocol.len) {
            *p++ = ' ';
            ngx_memcpy(p, r->http_protocol.data, r->http_protocol.len);
        }
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * The client as passkey_limit should count it: an IPv4 address whole, an
 * IPv6 address as its /64.  One subscriber usually holds a whole /64 and
 * may use any address in it, so a limit keyed by the full IPv6 address
 * is one such client can step around at will.  An IPv4-mapped IPv6
 * address is its IPv4 address.  The address is the one nginx has for the
 * client, the realip module's if it set one.
 */

static ngx_int_t
ngx_http_passkey_network_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char               *p;
    size_t                n;
    ngx_connection_t     *c;
#if (NGX_HAVE_INET6)
    u_char               *a;
    struct sockaddr_in6  *sin6;
    u_char                net[16];
#endif

    c = r->connection;

#if (NGX_HAVE_INET6)
    if (c->sockaddr->sa_family == AF_INET6) {
        sin6 = (struct sockaddr_in6 *) c->sockaddr;
        a = sin6->sin6_addr.s6_addr;

        p = ngx_pnalloc(r->pool, NGX_INET6_ADDRSTRLEN + sizeof("/64") - 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            n = ngx_sprintf(p, "%ud.%ud.%ud.%ud", a[12], a[13], a[14], a[15])
                - p;

        } else {
            ngx_memcpy(net, a, 8);
            ngx_memzero(net + 8, 8);

            n = ngx_inet6_ntop(net, p, NGX_INET6_ADDRSTRLEN);
            n = ngx_cpymem(p + n, "/64", sizeof("/64") - 1) - p;
        }

        v->len = n;
        v->data = p;
        v->valid = 1;
        v->no_cacheable = 1;
        v->not_found = 0;

        return NGX_OK;
    }
#endif

    /* IPv4, or a unix socket's "unix:" */

    v->len = c->addr_text.len;
    v->data = c->addr_text.data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}

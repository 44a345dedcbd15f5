
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * What the browser gets for a binding link (passkey_invoke) once it is
 * checked.  A good link is handed over: to the location's content, which
 * finds it in $passkey_binding_link, or by a 302 to
 * passkey_invoke_redirect with the link in the fragment.  Anything else
 * is refused with an answer of the module's own, problem+json or an HTML
 * page as the Accept header asks, which never echoes the link.
 */


static ngx_int_t ngx_http_passkey_invoke_link(ngx_http_request_t *r,
    ngx_http_passkey_invoke_ctx_t *ctx);
static ngx_int_t ngx_http_passkey_invoke_redirect(ngx_http_request_t *r,
    ngx_http_passkey_invoke_ctx_t *ctx);
static ngx_uint_t ngx_http_passkey_invoke_wants_json(ngx_http_request_t *r);


/* the link passed its checks: the location's content, or a redirect */

ngx_int_t
ngx_http_passkey_invoke_handover(ngx_http_request_t *r,
    ngx_http_passkey_invoke_ctx_t *ctx)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    if (ngx_http_passkey_invoke_link(r, ctx) != NGX_OK) {
        return ngx_http_passkey_invoke_error(r);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "passkey: binding link of job %V %s", &ctx->vars.job_id,
                  r->method == NGX_HTTP_HEAD ? "checked" : "opened");

    r->connection->log->action = NULL;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (plcf->invoke_redirect) {
        return ngx_http_passkey_invoke_redirect(r, ctx);
    }

    /*
     * The location's content gets the request: the app, or a page.  The
     * headers stay in headers_out for whatever it answers; an app's own
     * Cache-Control is added beside ours, and no-store still wins.
     */

    ngx_http_passkey_no_store(r);

    return NGX_DECLINED;
}


/*
 * The binding link is the URL exactly as the browser sent it: the SDK
 * recognises a link by its shape, so nothing of the path or the query is
 * decoded, normalised or dropped.
 */

static ngx_int_t
ngx_http_passkey_invoke_link(ngx_http_request_t *r,
    ngx_http_passkey_invoke_ctx_t *ctx)
{
    u_char                    *p;
    ngx_str_t                  scheme, *host, *link;
    ngx_http_core_srv_conf_t  *cscf;

    ngx_str_set(&scheme, "http");

#if (NGX_HTTP_SSL)
    if (r->connection->ssl) {
        ngx_str_set(&scheme, "https");
    }
#endif

    if (r->headers_in.host) {
        host = &r->headers_in.host->value;

    } else if (r->headers_in.server.len) {
        host = &r->headers_in.server;

    } else {
        cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);
        host = &cscf->server_name;
    }

    link = &ctx->vars.binding_link;

    link->len = scheme.len + sizeof("://") - 1 + host->len
                + r->unparsed_uri.len;
    link->data = ngx_pnalloc(r->pool, link->len);
    if (link->data == NULL) {
        link->len = 0;
        return NGX_ERROR;
    }

    p = ngx_cpymem(link->data, scheme.data, scheme.len);
    p = ngx_cpymem(p, "://", sizeof("://") - 1);
    p = ngx_cpymem(p, host->data, host->len);
    ngx_memcpy(p, r->unparsed_uri.data, r->unparsed_uri.len);

    ngx_str_set(&ctx->vars.delivery_method, "EMAIL");

    /* the API's state when it was asked, else what the opening made it */

    if (ctx->vars.job_state.len == 0 && r->method != NGX_HTTP_HEAD) {
        ngx_str_set(&ctx->vars.job_state, "LINK_OPENED");
    }

    return NGX_OK;
}


/*
 * passkey_invoke_redirect: 302 to the URL with the binding link in the
 * fragment, which browsers keep to themselves: it reaches the page's
 * script, and never a server, a log or a Referer.
 */

static ngx_int_t
ngx_http_passkey_invoke_redirect(ngx_http_request_t *r,
    ngx_http_passkey_invoke_ctx_t *ctx)
{
    u_char                       *p;
    ngx_int_t                     rc;
    ngx_str_t                     url, link;
    ngx_uint_t                    i;
    ngx_table_elt_t              *h;
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (ngx_http_complex_value(r, plcf->invoke_redirect, &url) != NGX_OK
        || ngx_http_passkey_http_escape(r->pool, &ctx->vars.binding_link, &link)
           != NGX_OK)
    {
        return ngx_http_passkey_invoke_error(r);
    }

    for (i = 0; i < url.len; i++) {
        if (url.data[i] <= 0x20 || url.data[i] == 0x7f || url.data[i] == '#') {
            break;
        }
    }

    /*
     * the link goes where the URL points: a path of this site, or an
     * allowed origin; "//host" and "/\host" are other sites to browsers
     */

    if (i == url.len && url.len
        && !(url.data[0] == '/'
             && (url.len == 1 || (url.data[1] != '/' && url.data[1] != '\\')))
        && ngx_http_passkey_check_redirect(&url, plcf->redirect_origins)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: \"passkey_invoke_redirect\" gave a URL "
                      "that is not a path here nor of an origin in "
                      "\"passkey_redirect_origins\"; the link of job %V "
                      "was used up", &ctx->vars.job_id);

        return ngx_http_passkey_invoke_refuse(r,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "internal_error",
                                        "the redirect is misconfigured",
                                        "Something went wrong.");
    }

    if (url.len == 0 || i != url.len) {
        /* not the value: its variables could hold anything */

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: \"passkey_invoke_redirect\" gave a URL "
                      "that is empty or has a fragment, a space or a "
                      "control character; the link of job %V was used up",
                      &ctx->vars.job_id);

        return ngx_http_passkey_invoke_refuse(r,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "internal_error",
                                        "the redirect is misconfigured",
                                        "Something went wrong.");
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return ngx_http_passkey_invoke_error(r);
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "Location");
    h->value.len = url.len + 1 + link.len;
    h->value.data = ngx_pnalloc(r->pool, h->value.len);
    if (h->value.data == NULL) {
        h->hash = 0;
        return ngx_http_passkey_invoke_error(r);
    }

    p = ngx_cpymem(h->value.data, url.data, url.len);
    *p++ = '#';
    ngx_memcpy(p, link.data, link.len);

    ngx_http_clear_location(r);
    r->headers_out.location = h;

    ngx_http_passkey_no_store(r);

    r->headers_out.status = NGX_HTTP_MOVED_TEMPORARILY;
    r->headers_out.content_length_n = 0;

    rc = ngx_http_discard_request_body(r);

    if (rc == NGX_OK) {
        rc = ngx_http_send_header(r);

        if (rc != NGX_ERROR && rc <= NGX_OK && !r->header_only) {
            rc = ngx_http_send_special(r, NGX_HTTP_LAST);
        }
    }

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/*
 * Every refusal is an answer of the module's own, for programs or for
 * people, and never echoes the link.  The request is finalized here; it
 * may be gone when this returns.
 */

ngx_int_t
ngx_http_passkey_invoke_refuse(ngx_http_request_t *r, ngx_uint_t status,
    char *code, char *detail, char *text)
{
    ngx_int_t  rc;
    ngx_str_t  s;

    r->connection->log->action = NULL;

    rc = ngx_http_discard_request_body(r);

    if (rc == NGX_OK) {

        if (ngx_http_passkey_invoke_wants_json(r)) {
            s.data = (u_char *) detail;
            s.len = ngx_strlen(detail);

            rc = ngx_http_passkey_send_problem(r, status, code, &s);

        } else {
            rc = ngx_http_passkey_send_problem_html(r, status, code, text);
        }
    }

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


ngx_int_t
ngx_http_passkey_invoke_error(ngx_http_request_t *r)
{
    return ngx_http_passkey_invoke_refuse(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal_error", "out of memory",
                                          "Something went wrong.");
}


/* any Accept header that mentions JSON */

static ngx_uint_t
ngx_http_passkey_invoke_wants_json(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    for (h = ngx_http_passkey_header_in(r, "Accept", sizeof("Accept") - 1,
                                        NULL);
         h;
         h = ngx_http_passkey_header_in(r, "Accept", sizeof("Accept") - 1, h))
    {
        if (ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                             (u_char *) "json", sizeof("json") - 2)
            != NULL)
        {
            return 1;
        }
    }

    return 0;
}

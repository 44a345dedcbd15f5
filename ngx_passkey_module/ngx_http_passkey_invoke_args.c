
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * The arguments of a binding link (passkey_invoke): the six that Beyond
 * Identity writes, each exactly once and spelled as it spells them, with
 * api_base_url, tenant_id and realm_id those of this location.  They are
 * checked before Redis or the API is asked; nothing here waits.
 */


#define NGX_HTTP_PASSKEY_TOKEN_MAX  2048


/* the arguments of a link, in the order Beyond Identity sends them */

typedef enum {
    NGX_HTTP_PASSKEY_ARG_API_BASE_URL = 0,
    NGX_HTTP_PASSKEY_ARG_TENANT_ID,
    NGX_HTTP_PASSKEY_ARG_REALM_ID,
    NGX_HTTP_PASSKEY_ARG_IDENTITY_ID,
    NGX_HTTP_PASSKEY_ARG_JOB_ID,
    NGX_HTTP_PASSKEY_ARG_TOKEN,
    NGX_HTTP_PASSKEY_ARG_N
} ngx_http_passkey_arg_e;


typedef struct {
    ngx_str_t                         value;
    ngx_uint_t                        count;
    unsigned                          odd:1;     /* not spelled as expected */
} ngx_http_passkey_arg_t;


static void ngx_http_passkey_invoke_parse(ngx_str_t *query,
    ngx_http_passkey_arg_t *args);
static ngx_int_t ngx_http_passkey_invoke_token(ngx_str_t *token);
static ngx_int_t ngx_http_passkey_invoke_unescape(ngx_pool_t *pool,
    ngx_str_t *s, ngx_str_t *out);
static ngx_uint_t ngx_http_passkey_invoke_same_url(ngx_str_t *url,
    ngx_str_t *conf);


static ngx_str_t  ngx_http_passkey_arg_names[] = {
    ngx_string("api_base_url"),
    ngx_string("tenant_id"),
    ngx_string("realm_id"),
    ngx_string("identity_id"),
    ngx_string("job_id"),
    ngx_string("token")
};


/*
 * The six arguments, each exactly once, as Beyond Identity writes them.
 * They are read from the URI as the browser sent it, which is what the
 * SDK will read too, rather than from $args, which the configuration
 * could have rewritten.  NGX_OK: ctx has the job and identity ids;
 * otherwise the request was refused and finalized.
 */

ngx_int_t
ngx_http_passkey_invoke_args(ngx_http_request_t *r,
    ngx_http_passkey_invoke_ctx_t *ctx)
{
    char                         *problem, *foreign;
    u_char                       *q, *last;
    ngx_int_t                     rc;
    ngx_str_t                     query, url, *tenant, *realm;
    ngx_uint_t                    i;
    ngx_http_passkey_arg_t        args[NGX_HTTP_PASSKEY_ARG_N];
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    last = r->unparsed_uri.data + r->unparsed_uri.len;
    q = ngx_strlchr(r->unparsed_uri.data, last, '?');

    query.data = q ? q + 1 : last;
    query.len = last - query.data;

    ngx_memzero(args, sizeof(args));

    ngx_http_passkey_invoke_parse(&query, args);

    problem = NULL;
    ngx_str_null(&url);

    for (i = 0; i < NGX_HTTP_PASSKEY_ARG_N; i++) {

        if (args[i].count != 1 || args[i].odd) {
            problem = (args[i].count == 0) ? "no"
                      : (args[i].count > 1) ? "more than one"
                      : "an oddly spelled";
            break;
        }

        switch (i) {

        case NGX_HTTP_PASSKEY_ARG_API_BASE_URL:
            rc = ngx_http_passkey_invoke_unescape(r->pool, &args[i].value,
                                                  &url);
            if (rc == NGX_ERROR) {
                return ngx_http_passkey_invoke_error(r);
            }

            break;

        case NGX_HTTP_PASSKEY_ARG_TOKEN:
            rc = ngx_http_passkey_invoke_token(&args[i].value);
            break;

        default:
            rc = ngx_http_passkey_valid_id(&args[i].value);
        }

        if (rc != NGX_OK) {
            problem = "an invalid";
            break;
        }
    }

    if (problem) {
        /* the name only: the value may be the token */

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: invalid binding link: %s \"%V\" argument",
                      problem, &ngx_http_passkey_arg_names[i]);

        return ngx_http_passkey_invoke_refuse(r, NGX_HTTP_BAD_REQUEST,
                                        "invalid_link",
                                        "this link is not a valid binding "
                                        "link",
                                        "This link is not valid.");
    }

    ctx->vars.job_id = args[NGX_HTTP_PASSKEY_ARG_JOB_ID].value;
    ctx->vars.identity_id = args[NGX_HTTP_PASSKEY_ARG_IDENTITY_ID].value;

    tenant = &args[NGX_HTTP_PASSKEY_ARG_TENANT_ID].value;
    realm = &args[NGX_HTTP_PASSKEY_ARG_REALM_ID].value;

    /*
     * The SDK sends the token to api_base_url: a link that names another
     * host would hand the user's enrollment to that host.
     */

    foreign = NULL;

    if (!ngx_http_passkey_invoke_same_url(&url, &plcf->auth_url)
        && !ngx_http_passkey_invoke_same_url(&url, &plcf->api_url))
    {
        foreign = "api_base_url";

    } else if (tenant->len != plcf->tenant_id.len
               || ngx_strncmp(tenant->data, plcf->tenant_id.data,
                              tenant->len)
                  != 0)
    {
        foreign = "tenant_id";

    } else if (realm->len != plcf->realm_id.len
               || ngx_strncmp(realm->data, plcf->realm_id.data, realm->len)
                  != 0)
    {
        foreign = "realm_id";
    }

    if (foreign) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: binding link of job %V has a foreign "
                      "\"%s\"", &ctx->vars.job_id, foreign);

        return ngx_http_passkey_invoke_refuse(r, NGX_HTTP_FORBIDDEN,
                                        "foreign_link",
                                        "this link was not issued for this "
                                        "site",
                                        "This link was not issued for this "
                                        "site.");
    }

    return NGX_OK;
}


/*
 * Splits the query at "&".  A name counts as one of the six if it equals
 * it after percent-decoding and ignoring case, as some parsers read names;
 * such a name spelled in any other way than Beyond Identity's makes the
 * link ambiguous, and so does a name that comes twice.
 */

static void
ngx_http_passkey_invoke_parse(ngx_str_t *query, ngx_http_passkey_arg_t *args)
{
    u_char      *p, *q, *eq, *last, *s, *d;
    u_char       name[16];
    size_t       len;
    ngx_int_t    hi, lo;
    ngx_uint_t   i, raw;

    p = query->data;
    last = query->data + query->len;

    while (p < last) {
        q = ngx_strlchr(p, last, '&');
        if (q == NULL) {
            q = last;
        }

        eq = ngx_strlchr(p, q, '=');
        if (eq == NULL) {
            eq = q;
        }

        /* the name, decoded into name[] if it fits */

        d = name;
        raw = 1;

        for (s = p; s < eq && d < name + sizeof(name); s++) {

            if (*s == '%' && eq - s > 2) {
                hi = ngx_hextoi(s + 1, 1);
                lo = ngx_hextoi(s + 2, 1);

                if (hi != NGX_ERROR && lo != NGX_ERROR) {
                    *d++ = (u_char) (hi * 16 + lo);
                    s += 2;
                    raw = 0;
                    continue;
                }
            }

            *d++ = *s;
        }

        len = d - name;

        if (s == eq) {
            for (i = 0; i < NGX_HTTP_PASSKEY_ARG_N; i++) {
                if (len != ngx_http_passkey_arg_names[i].len
                    || ngx_strncasecmp(name, ngx_http_passkey_arg_names[i].data,
                                       len)
                       != 0)
                {
                    continue;
                }

                args[i].count++;

                if (!raw || eq == q
                    || ngx_strncmp(p, ngx_http_passkey_arg_names[i].data, len)
                       != 0)
                {
                    args[i].odd = 1;
                }

                args[i].value.data = (eq < q) ? eq + 1 : q;
                args[i].value.len = q - args[i].value.data;
                break;
            }
        }

        p = q + 1;
    }
}


/* 1 to 2048 URL-safe characters: RFC 3986 unreserved ones and %XX */

static ngx_int_t
ngx_http_passkey_invoke_token(ngx_str_t *token)
{
    u_char      ch;
    ngx_uint_t  i;

    if (token->len == 0 || token->len > NGX_HTTP_PASSKEY_TOKEN_MAX) {
        return NGX_DECLINED;
    }

    for (i = 0; i < token->len; i++) {
        ch = token->data[i];

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
            || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'
            || ch == '_' || ch == '~')
        {
            continue;
        }

        if (ch == '%' && token->len - i > 2
            && ngx_hextoi(&token->data[i + 1], 2) != NGX_ERROR)
        {
            i += 2;
            continue;
        }

        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * Percent-decodes once.  Whether Beyond Identity encodes api_base_url is
 * not documented, and a URL that is not encoded decodes to itself.
 * NGX_DECLINED: a "%" without two hex digits, or a control character.
 */

static ngx_int_t
ngx_http_passkey_invoke_unescape(ngx_pool_t *pool, ngx_str_t *s,
    ngx_str_t *out)
{
    u_char     *d;
    ngx_int_t   ch;
    ngx_uint_t  i;

    if (s->len == 0) {
        return NGX_DECLINED;
    }

    out->data = ngx_pnalloc(pool, s->len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    d = out->data;

    for (i = 0; i < s->len; i++) {
        ch = s->data[i];

        if (ch == '%') {
            if (s->len - i < 3) {
                return NGX_DECLINED;
            }

            ch = ngx_hextoi(&s->data[i + 1], 2);

            if (ch == NGX_ERROR) {
                return NGX_DECLINED;
            }

            i += 2;
        }

        if (ch < 0x20 || ch == 0x7f) {
            return NGX_DECLINED;
        }

        *d++ = (u_char) ch;
    }

    out->len = d - out->data;

    return NGX_OK;
}


/*
 * The configured URL (stored without trailing slashes), with the scheme
 * and host compared regardless of case, the path exactly, and one
 * trailing slash in the link allowed.
 */

static ngx_uint_t
ngx_http_passkey_invoke_same_url(ngx_str_t *url, ngx_str_t *conf)
{
    u_char  *p, *last;
    size_t   len, host;

    len = url->len;

    if (len && url->data[len - 1] == '/') {
        len--;
    }

    if (len != conf->len) {
        return 0;
    }

    last = conf->data + conf->len;

    /* passkey_api_url starts with "http://" or "https://" */

    p = ngx_strlchr(conf->data, last, ':');
    if (p == NULL || last - p < 3) {
        return 0;
    }

    p = ngx_strlchr(p + 3, last, '/');
    host = (p ? p : last) - conf->data;

    if (ngx_strncasecmp(url->data, conf->data, host) != 0) {
        return 0;
    }

    return ngx_memcmp(url->data + host, conf->data + host, len - host) == 0;
}

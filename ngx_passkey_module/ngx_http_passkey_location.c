
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * What each passkey location needs, checked once its settings are merged
 * with those of the levels above (from merge_loc_conf).
 */


#define NGX_HTTP_PASSKEY_NEED_CONFIG  0x01
#define NGX_HTTP_PASSKEY_NEED_API     0x02


/* the head of ngx_http_rewrite_module's location configuration */

typedef struct {
    ngx_array_t                      *codes;
} ngx_http_passkey_rewrite_conf_t;


static char *ngx_http_passkey_check_invoke_rewrites(ngx_conf_t *cf);
static ngx_int_t ngx_http_passkey_add_invoke_location(ngx_conf_t *cf,
    ngx_http_passkey_loc_conf_t *plcf);
static ngx_int_t ngx_http_passkey_check_needs(ngx_conf_t *cf,
    ngx_http_passkey_loc_conf_t *plcf, char *name, ngx_uint_t needs);
static ngx_int_t ngx_http_passkey_redis_resolver(ngx_conf_t *cf,
    ngx_http_passkey_redis_server_t *server);
static char *ngx_http_passkey_api_client(ngx_conf_t *cf,
    ngx_http_passkey_loc_conf_t *plcf);
static ngx_int_t ngx_http_passkey_check_caller(ngx_conf_t *cf,
    ngx_http_passkey_loc_conf_t *plcf);
static ngx_uint_t ngx_http_passkey_client_controlled(
    ngx_http_complex_value_t *cv);


/*
 * Settings are inherited from http and server level, so whether a bind
 * location has all it needs is only known once they are merged.
 */

char *
ngx_http_passkey_check_bind_conf(ngx_conf_t *cf,
    ngx_http_passkey_loc_conf_t *plcf)
{
    if (ngx_http_passkey_check_needs(cf, plcf, "passkey_bind",
                                     NGX_HTTP_PASSKEY_NEED_CONFIG
                                     |NGX_HTTP_PASSKEY_NEED_API)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (plcf->invoke || plcf->job_status || plcf->job_revoke
        || plcf->metrics || plcf->health)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"passkey_bind\" cannot be combined with "
                           "another passkey handler in one location");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_passkey_check_caller(cf, plcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* a redirect built from request data must be checked against a list */

    if (plcf->post_binding_redirect_uri
        && plcf->post_binding_redirect_uri->lengths
        && plcf->redirect_origins == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"passkey_post_binding_redirect_uri\" with "
                           "variables requires \"passkey_redirect_origins\"");
        return NGX_CONF_ERROR;
    }

    return ngx_http_passkey_api_client(cf, plcf);
}


/* the verified identity is what "authenticated" means */

static ngx_int_t
ngx_http_passkey_check_caller(ngx_conf_t *cf,
    ngx_http_passkey_loc_conf_t *plcf)
{
    if (plcf->bind_mode != NGX_HTTP_PASSKEY_AUTHENTICATED) {
        return NGX_OK;
    }

    if (plcf->username == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"passkey_bind_mode authenticated\" requires "
                           "\"passkey_username\" with the variable that "
                           "holds the verified user name");
        return NGX_ERROR;
    }

    if (ngx_http_passkey_client_controlled(plcf->username)
        || (plcf->email && ngx_http_passkey_client_controlled(plcf->email)))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"passkey_bind_mode authenticated\" cannot take "
                           "the user from the request body, arguments or "
                           "cookies ($passkey_json_, $arg_, $cookie_, "
                           "$request_body): the client writes them");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* variables whose value the client chooses, whatever it is allowed */

static ngx_uint_t
ngx_http_passkey_client_controlled(ngx_http_complex_value_t *cv)
{
    u_char      *p, *last;
    ngx_uint_t   i;

    static ngx_str_t  names[] = {
        ngx_string("passkey_json_"),
        ngx_string("arg_"),
        ngx_string("cookie_"),
        ngx_string("request_body"),
        ngx_string("args"),
        ngx_string("query_string"),
        ngx_string("request_uri"),
        ngx_string("uri"),
        ngx_string("document_uri"),
        ngx_string("0"), ngx_string("1"), ngx_string("2"), ngx_string("3"),
        ngx_string("4"), ngx_string("5"), ngx_string("6"), ngx_string("7"),
        ngx_string("8"), ngx_string("9"),
    };

    p = cv->value.data;
    last = p + cv->value.len;

    for ( /* void */ ; p < last; p++) {
        if (*p != '$') {
            continue;
        }

        if (p + 1 < last && p[1] == '{') {
            p++;
        }

        for (i = 0; i < sizeof(names) / sizeof(ngx_str_t); i++) {
            if ((size_t) (last - p - 1) >= names[i].len
                && ngx_strncasecmp(p + 1, names[i].data, names[i].len) == 0)
            {
                return 1;
            }
        }
    }

    return 0;
}


/*
 * passkey_invoke, passkey_job_status, passkey_job_revoke, passkey_health
 * and passkey_metrics locations
 */

char *
ngx_http_passkey_check_handler_conf(ngx_conf_t *cf,
    ngx_http_passkey_loc_conf_t *plcf)
{
    char        *name;
    ngx_uint_t   n;

    n = (plcf->invoke ? 1 : 0) + (plcf->job_status ? 1 : 0)
        + (plcf->job_revoke ? 1 : 0) + (plcf->metrics ? 1 : 0)
        + (plcf->health ? 1 : 0);

    if (n > 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "only one passkey handler may be used in a "
                           "location");
        return NGX_CONF_ERROR;
    }

    /* the counters need nothing but their zone */

    if (plcf->metrics) {
        return NGX_CONF_OK;
    }

    /* the health check asks Redis and the token endpoint, nothing else */

    if (plcf->health) {
        if (ngx_http_passkey_check_needs(cf, plcf, "passkey_health",
                                         NGX_HTTP_PASSKEY_NEED_API)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        return ngx_http_passkey_api_client(cf, plcf);
    }

    name = plcf->invoke ? "passkey_invoke"
           : plcf->job_status ? "passkey_job_status" : "passkey_job_revoke";

    if (!plcf->invoke && ngx_http_passkey_check_caller(cf, plcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* a redirect built from request data must be checked against a list */

    if (plcf->invoke && plcf->invoke_redirect
        && plcf->invoke_redirect->lengths && plcf->redirect_origins == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"passkey_invoke_redirect\" with variables "
                           "requires \"passkey_redirect_origins\"");
        return NGX_CONF_ERROR;
    }

    /* the link check asks the API about the job's state, as they all do */

    if (ngx_http_passkey_check_needs(cf, plcf, name,
                                     NGX_HTTP_PASSKEY_NEED_API)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (plcf->invoke
        && (ngx_http_passkey_check_invoke_rewrites(cf) != NGX_CONF_OK
            || ngx_http_passkey_add_invoke_location(cf, plcf) != NGX_OK))
    {
        return NGX_CONF_ERROR;
    }

    return ngx_http_passkey_api_client(cf, plcf);
}


/* workers check later that Beyond Identity's links lead here */

static ngx_int_t
ngx_http_passkey_add_invoke_location(ngx_conf_t *cf,
    ngx_http_passkey_loc_conf_t *plcf)
{
    ngx_str_t                      *name, *copy;
    ngx_uint_t                      i;
    ngx_http_server_name_t         *sn;
    ngx_http_core_srv_conf_t       *cscf;
    ngx_http_passkey_invoke_loc_t  *il;
    ngx_http_passkey_main_conf_t   *pmcf;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_passkey_module);

    il = ngx_array_push(&pmcf->invoke_locations);
    if (il == NULL) {
        return NGX_ERROR;
    }

    il->conf = plcf;
    il->location = ngx_http_conf_get_module_loc_conf(cf,
                                                     ngx_http_core_module);
    il->any_name = 0;

    /* the server's names live in the temporary pool: copied */

    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);

    il->server_names = ngx_array_create(cf->pool,
                                        cscf->server_names.nelts + 1,
                                        sizeof(ngx_str_t));
    if (il->server_names == NULL) {
        return NGX_ERROR;
    }

    sn = cscf->server_names.elts;

    for (i = 0; i < cscf->server_names.nelts; i++) {
        name = &sn[i].name;

#if (NGX_PCRE)
        if (sn[i].regex) {
            il->any_name = 1;
            continue;
        }
#endif

        if (name->len == 0
            || name->data[0] == '*' || name->data[0] == '.'
            || name->data[name->len - 1] == '*'
            || (name->len == 1 && name->data[0] == '_'))
        {
            il->any_name = 1;
            continue;
        }

        copy = ngx_array_push(il->server_names);
        if (copy == NULL) {
            return NGX_ERROR;
        }

        copy->len = name->len;
        copy->data = ngx_pstrdup(cf->pool, name);
        if (copy->data == NULL) {
            return NGX_ERROR;
        }
    }

    if (cscf->server_names.nelts == 0) {
        il->any_name = 1;
    }

    return NGX_OK;
}


/*
 * The link check runs after the access checks and limits (precontent
 * phase), so that a request they refuse never uses a link up.  The
 * rewrite module's directives of the same location run before all of
 * them: "return" would answer, and "rewrite ... last" move the request on,
 * with the link never checked.  Its configuration is private to it, but
 * its first member has been the list of codes since nginx 0.x: a location
 * with none of those directives has none.
 */

static char *
ngx_http_passkey_check_invoke_rewrites(ngx_conf_t *cf)
{
    ngx_uint_t                        i;
    ngx_module_t                    **modules;
    ngx_http_conf_ctx_t              *ctx;
    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_passkey_rewrite_conf_t  *rlcf;

    modules = cf->cycle->modules;
    ctx = cf->ctx;

    for (i = 0; modules[i]; i++) {
        if (modules[i]->type != NGX_HTTP_MODULE
            || ngx_strcmp(modules[i]->name, "ngx_http_rewrite_module") != 0)
        {
            continue;
        }

        rlcf = ctx->loc_conf[modules[i]->ctx_index];

        if (rlcf == NULL || rlcf->codes == NULL) {
            return NGX_CONF_OK;
        }

        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"passkey_invoke\" cannot be used with "
                           "\"return\", \"rewrite\", \"if\", \"set\" or "
                           "\"break\" in location \"%V\": they run before "
                           "the link check", &clcf->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * What a passkey location needs once settings are inherited: tenant and
 * realm, the authenticator config (to create jobs), Redis, and API
 * credentials (to call the API), one kind of them only.
 */

static ngx_int_t
ngx_http_passkey_check_needs(ngx_conf_t *cf,
    ngx_http_passkey_loc_conf_t *plcf, char *name, ngx_uint_t needs)
{
    char  *missing;

    missing = NULL;

    if (plcf->tenant_id.len == 0) {
        missing = "passkey_tenant_id";

    } else if (plcf->realm_id.len == 0) {
        missing = "passkey_realm_id";

    } else if ((needs & NGX_HTTP_PASSKEY_NEED_CONFIG)
               && plcf->authenticator_config_id.len == 0)
    {
        missing = "passkey_authenticator_config_id";

    } else if (plcf->redis == NULL) {
        missing = "passkey_redis";

    } else if ((plcf->redis->host.len || plcf->redis->sentinel_hosts)
               && ngx_http_passkey_redis_resolver(cf, plcf->redis)
                  != NGX_OK)
    {
        return NGX_ERROR;

    } else if (!(needs & NGX_HTTP_PASSKEY_NEED_API)) {
        /* nothing else */

    } else if (plcf->api_token.len == 0) {

        if (plcf->client_id.len == 0) {
            missing = "passkey_client_id\" or \"passkey_api_token_file";

        } else if (plcf->client_secret.len == 0) {
            missing = "passkey_client_secret_file";

        } else if (plcf->application_id.len == 0) {
            missing = "passkey_application_id";
        }

    } else if (plcf->client_id.len || plcf->client_secret.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"passkey_api_token_file\" cannot be combined "
                           "with \"passkey_client_id\" or "
                           "\"passkey_client_secret_file\"");
        return NGX_ERROR;
    }

    if (missing) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" requires \"%s\"", name, missing);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A Redis server named by host name is resolved with the resolver of the
 * (first) location that uses it, never with a blocking lookup.
 */

static ngx_int_t
ngx_http_passkey_redis_resolver(ngx_conf_t *cf,
    ngx_http_passkey_redis_server_t *server)
{
    ngx_http_core_loc_conf_t  *clcf;

    if (server->resolver != NULL) {
        return NGX_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    /* without a "resolver" directive nginx has one that knows no server */

    if (clcf->resolver == NULL || clcf->resolver->connections.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"passkey_redis\" \"%V\" names a host: it needs "
                           "a \"resolver\" in this location or above",
                           &server->name);
        return NGX_ERROR;
    }

    server->resolver = clcf->resolver;
    server->resolver_timeout = clcf->resolver_timeout;

    return NGX_OK;
}


/* the API client of a location, and its share of the token cache */

static char *
ngx_http_passkey_api_client(ngx_conf_t *cf, ngx_http_passkey_loc_conf_t *plcf)
{
    if (plcf->token_realm_id.len == 0) {
        plcf->token_realm_id = plcf->realm_id;
    }

    plcf->token = ngx_http_passkey_token_add(cf, plcf);
    if (plcf->token == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


static ngx_int_t ngx_http_passkey_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_passkey_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_passkey_single_reload(ngx_conf_t *cf,
    ngx_http_passkey_main_conf_t *pmcf);
static ngx_int_t ngx_http_passkey_hide_handler(ngx_http_request_t *r);
static void *ngx_http_passkey_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_passkey_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_passkey_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_passkey_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_passkey_init_process(ngx_cycle_t *cycle);
static void ngx_http_passkey_exit_process(ngx_cycle_t *cycle);
static ngx_http_passkey_main_conf_t *ngx_http_passkey_process_conf(
    ngx_cycle_t *cycle);


/*
 * Sizes and times that cannot work, or are surely typos, stop "nginx -t";
 * docs/directives.md gives each range
 */

static ngx_http_passkey_conf_bounds_t  ngx_http_passkey_api_timeout_bounds = {
    ngx_http_passkey_conf_check_bounds, 1, 600000, "between 1ms and 10m"
};


static ngx_http_passkey_conf_bounds_t  ngx_http_passkey_buffer_size_bounds = {
    ngx_http_passkey_conf_check_bounds, 1024, 16 * 1024 * 1024,
    "between 1k and 16m"
};


static ngx_http_passkey_conf_bounds_t  ngx_http_passkey_keepalive_bounds = {
    ngx_http_passkey_conf_check_bounds, 1, 4096, "between 1 and 4096"
};


static ngx_http_passkey_conf_bounds_t  ngx_http_passkey_redis_bounds = {
    ngx_http_passkey_conf_check_bounds, 1, 60000, "between 1ms and 60s"
};


/* the smallest JSON object, "{}", is two bytes */

static ngx_http_passkey_conf_bounds_t  ngx_http_passkey_body_size_bounds = {
    ngx_http_passkey_conf_check_bounds, 2, 1024 * 1024, "between 2 and 1m"
};


static ngx_http_passkey_conf_bounds_t  ngx_http_passkey_week_bounds = {
    ngx_http_passkey_conf_check_bounds, 1, 7 * 24 * 3600 * 1000,
    "\"off\" or between 1ms and 7d"
};


static ngx_http_passkey_conf_bounds_t  ngx_http_passkey_duplicate_bounds = {
    ngx_http_passkey_conf_check_bounds, 1, 3600 * 1000,
    "\"off\" or between 1ms and 1h"
};


static ngx_http_passkey_conf_bounds_t  ngx_http_passkey_refresh_bounds = {
    ngx_http_passkey_conf_check_bounds, 0, 24 * 3600 * 1000,
    "between 0 and 24h"
};


static ngx_conf_enum_t  ngx_http_passkey_bind_modes[] = {
    { ngx_string("signup"), NGX_HTTP_PASSKEY_SIGNUP },
    { ngx_string("authenticated"), NGX_HTTP_PASSKEY_AUTHENTICATED },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_passkey_signup_existing[] = {
    { ngx_string("refuse"), NGX_HTTP_PASSKEY_REFUSE },
    { ngx_string("email"), NGX_HTTP_PASSKEY_SEND_EMAIL },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_passkey_bind_formats[] = {
    { ngx_string("passkey"), NGX_HTTP_PASSKEY_FORMAT_PASSKEY },
    { ngx_string("beyond_identity"), NGX_HTTP_PASSKEY_FORMAT_BI },
    { ngx_string("camel_case"), NGX_HTTP_PASSKEY_FORMAT_CAMEL },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_passkey_redis_down[] = {
    { ngx_string("refuse"), NGX_HTTP_PASSKEY_REFUSE },
    { ngx_string("allow"), NGX_HTTP_PASSKEY_ALLOW },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_passkey_invoke_unknown[] = {
    { ngx_string("verify"), NGX_HTTP_PASSKEY_VERIFY },
    { ngx_string("refuse"), NGX_HTTP_PASSKEY_REFUSE },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_passkey_commands[] = {

    { ngx_string("passkey_api_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, api_url),
      NULL },

    { ngx_string("passkey_auth_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, auth_url),
      NULL },

    { ngx_string("passkey_tenant_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_id,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, tenant_id),
      NULL },

    { ngx_string("passkey_realm_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_id,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, realm_id),
      NULL },

    { ngx_string("passkey_authenticator_config_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_id,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, authenticator_config_id),
      NULL },

    { ngx_string("passkey_token_realm_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_id,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, token_realm_id),
      NULL },

    { ngx_string("passkey_application_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_id,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, application_id),
      NULL },

    { ngx_string("passkey_client_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, client_id),
      NULL },

    { ngx_string("passkey_client_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_passkey_conf_set_secret_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, client_secret),
      NULL },

    { ngx_string("passkey_api_token_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_secret_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, api_token),
      NULL },

    { ngx_string("passkey_api_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, http.connect_timeout),
      &ngx_http_passkey_api_timeout_bounds },

    { ngx_string("passkey_api_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, http.timeout),
      &ngx_http_passkey_api_timeout_bounds },

    { ngx_string("passkey_api_buffer_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, http.max_response),
      &ngx_http_passkey_buffer_size_bounds },

    { ngx_string("passkey_api_verify"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, http.verify),
      NULL },

    { ngx_string("passkey_api_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_certificate,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, http.trusted_certificate),
      NULL },

    { ngx_string("passkey_redis"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_passkey_redis,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("passkey_redis_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, redis_prefix),
      NULL },

    { ngx_string("passkey_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, redis_timeout),
      &ngx_http_passkey_redis_bounds },

    { ngx_string("passkey_username"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, username),
      NULL },

    { ngx_string("passkey_email"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, email),
      NULL },

    { ngx_string("passkey_display_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, display_name),
      NULL },

    { ngx_string("passkey_max_body_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, max_body_size),
      &ngx_http_passkey_body_size_bounds },

    { ngx_string("passkey_delivery_method"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_passkey_delivery_method,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("passkey_post_binding_redirect_uri"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, post_binding_redirect_uri),
      NULL },

    { ngx_string("passkey_redirect_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_passkey_origins,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, redirect_origins),
      NULL },

    { ngx_string("passkey_bind_mode"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, bind_mode),
      &ngx_http_passkey_bind_modes },

    { ngx_string("passkey_signup_existing"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, signup_existing),
      &ngx_http_passkey_signup_existing },

    { ngx_string("passkey_api_keepalive"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_passkey_main_conf_t, api_keepalive),
      &ngx_http_passkey_keepalive_bounds },

    { ngx_string("passkey_bind_format"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, bind_format),
      &ngx_http_passkey_bind_formats },

    { ngx_string("passkey_allowed_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_passkey_origins,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, allowed_origins),
      NULL },

    { ngx_string("passkey_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE23,
      ngx_http_passkey_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("passkey_email_cooldown"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_time_or_off,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, email_cooldown),
      &ngx_http_passkey_week_bounds },

    { ngx_string("passkey_redis_down"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, redis_down),
      &ngx_http_passkey_redis_down },

    { ngx_string("passkey_idempotency"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_time_or_off,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, idempotency),
      &ngx_http_passkey_week_bounds },

    { ngx_string("passkey_duplicate_window"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_time_or_off,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, duplicate_window),
      &ngx_http_passkey_duplicate_bounds },

    { ngx_string("passkey_identity_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_time_or_off,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, identity_cache),
      &ngx_http_passkey_week_bounds },

    { ngx_string("passkey_invoke_redirect"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, invoke_redirect),
      NULL },

    { ngx_string("passkey_invoke_unknown_jobs"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_passkey_conf_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, invoke_unknown),
      &ngx_http_passkey_invoke_unknown },

    { ngx_string("passkey_invoke_reopen"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, invoke_reopen),
      NULL },

    { ngx_string("passkey_job_refresh_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, job_refresh_interval),
      &ngx_http_passkey_refresh_bounds },

    { ngx_string("passkey_bind"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_passkey_bind,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("passkey_invoke"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_passkey_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, invoke),
      NULL },

    { ngx_string("passkey_job_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_passkey_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, job_status),
      NULL },

    { ngx_string("passkey_job_revoke"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_passkey_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, job_revoke),
      NULL },

    { ngx_string("passkey_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_passkey_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, metrics),
      NULL },

    { ngx_string("passkey_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_passkey_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_passkey_loc_conf_t, health),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_passkey_module_ctx = {
    ngx_http_passkey_preconfiguration,     /* preconfiguration */
    ngx_http_passkey_postconfiguration,    /* postconfiguration */

    ngx_http_passkey_create_main_conf,     /* create main configuration */
    ngx_http_passkey_init_main_conf,       /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_passkey_create_loc_conf,      /* create location configuration */
    ngx_http_passkey_merge_loc_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_passkey_module = {
    NGX_MODULE_V1,
    &ngx_http_passkey_module_ctx,          /* module context */
    ngx_http_passkey_commands,             /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_passkey_init_process,         /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_passkey_exit_process,         /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_passkey_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_passkey_add_variables(cf);
}


/*
 * The first thing in a passkey_bind or passkey_invoke location, in the
 * rewrite phase: limit_req, allow/deny and auth_request run before the
 * handler, and what they log has the request line, which must not carry
 * a token (the /bind URL's own, or one a client put there by mistake).
 */

static ngx_int_t
ngx_http_passkey_hide_handler(ngx_http_request_t *r)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if ((plcf->invoke || plcf->bind) && ngx_http_passkey_hide_args(r) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_passkey_postconfiguration(ngx_conf_t *cf)
{
    ngx_str_t                      name = ngx_string("request_id");
    ngx_http_handler_pt           *h;
    ngx_http_core_main_conf_t     *cmcf;
    ngx_http_passkey_main_conf_t  *pmcf;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_passkey_module);

    pmcf->request_id_index = ngx_http_get_variable_index(cf, &name);
    if (pmcf->request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    /*
     * The invoke_url check runs before the content, which is the app's,
     * and after access checks and limits (auth_request, allow/deny,
     * limit_req), so that a request they refuse never uses a link up; not
     * in the access phase, where "satisfy any" could skip it.  Added last,
     * it runs first in its phase: before try_files and mirror.
     */

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_passkey_invoke_handler;

    /* before all of them, the token leaves the request line they log */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_passkey_hide_handler;

    /* passkey_metrics counts each request of an endpoint as it is logged */

    if (pmcf->metrics) {
        h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = ngx_http_passkey_metrics_log_handler;

        if (ngx_http_passkey_metrics_init_zone(cf) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_passkey_single_reload(cf, pmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (pmcf->tokens.nelts
        && ngx_http_passkey_http_check_library(cf, pmcf->ca_blob) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_passkey_token_init_zone(cf, pmcf);
}


/*
 * With "master_process off", a reload parses the new configuration in
 * the serving process and then goes on without running init_process
 * for it (ngx_single_process_cycle()): its Redis connections, token
 * waiters and timers would never be set up, and nginx's own event
 * module does not take new connections for it either.  Refused, the
 * reload leaves the running configuration serving as before.
 */

static ngx_int_t
ngx_http_passkey_single_reload(ngx_conf_t *cf,
    ngx_http_passkey_main_conf_t *pmcf)
{
    if (ngx_process != NGX_PROCESS_SINGLE
        || ngx_is_init_cycle(cf->cycle->old_cycle)
        || (pmcf->tokens.nelts == 0 && pmcf->redis_servers.nelts == 0))
    {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "passkey: nginx with \"master_process off\" cannot "
                  "reload a configuration with passkey locations, the "
                  "running one is kept; restart nginx to change it");

    return NGX_ERROR;
}


static void *
ngx_http_passkey_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_passkey_main_conf_t  *pmcf;

    pmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_passkey_main_conf_t));
    if (pmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     pmcf->token_zone = NULL;
     *     pmcf->ca_blob = 0;
     *     pmcf->metrics = 0;
     *     pmcf->metrics_zone = NULL;
     */

    if (ngx_array_init(&pmcf->redis_servers, cf->pool, 1,
                       sizeof(ngx_http_passkey_redis_server_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&pmcf->tokens, cf->pool, 1,
                       sizeof(ngx_http_passkey_token_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&pmcf->invoke_locations, cf->pool, 1,
                       sizeof(ngx_http_passkey_invoke_loc_t))
        != NGX_OK)
    {
        return NULL;
    }

    pmcf->request_id_index = NGX_ERROR;
    pmcf->api_keepalive = NGX_CONF_UNSET_UINT;

    return pmcf;
}


static char *
ngx_http_passkey_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_passkey_main_conf_t *pmcf = conf;

    /* one per call in flight at 64 concurrent binds, as the bench runs */

    ngx_conf_init_uint_value(pmcf->api_keepalive, 64);

    return NGX_CONF_OK;
}


static void *
ngx_http_passkey_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_passkey_loc_conf_t));
    if (plcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     plcf->api_url = { 0, NULL };
     *     plcf->auth_url = { 0, NULL };
     *     plcf->tenant_id = { 0, NULL };
     *     plcf->realm_id = { 0, NULL };
     *     plcf->authenticator_config_id = { 0, NULL };
     *     plcf->token_realm_id = { 0, NULL };
     *     plcf->application_id = { 0, NULL };
     *     plcf->client_id = { 0, NULL };
     *     plcf->client_secret = { 0, NULL };
     *     plcf->client_secret2 = { 0, NULL };
     *     plcf->api_token = { 0, NULL };
     *     plcf->http.trusted_certificate = { 0, NULL };
     *     plcf->http.trusted_pem = { 0, NULL };
     *     plcf->redis_prefix = { 0, NULL };
     *     plcf->delivery_methods = 0;
     *     plcf->delivery_default = 0;
     *     plcf->token = NULL;
     */

    plcf->http.connect_timeout = NGX_CONF_UNSET_MSEC;
    plcf->http.timeout = NGX_CONF_UNSET_MSEC;
    plcf->http.max_response = NGX_CONF_UNSET_SIZE;
    plcf->http.verify = NGX_CONF_UNSET;

    plcf->redis = NGX_CONF_UNSET_PTR;
    plcf->redis_timeout = NGX_CONF_UNSET_MSEC;

    plcf->username = NGX_CONF_UNSET_PTR;
    plcf->email = NGX_CONF_UNSET_PTR;
    plcf->display_name = NGX_CONF_UNSET_PTR;
    plcf->max_body_size = NGX_CONF_UNSET_SIZE;

    plcf->post_binding_redirect_uri = NGX_CONF_UNSET_PTR;
    plcf->redirect_origins = NGX_CONF_UNSET_PTR;
    plcf->invoke_redirect = NGX_CONF_UNSET_PTR;
    plcf->invoke_unknown = NGX_CONF_UNSET_UINT;
    plcf->invoke_reopen = NGX_CONF_UNSET;

    plcf->bind_mode = NGX_CONF_UNSET_UINT;
    plcf->signup_existing = NGX_CONF_UNSET_UINT;
    plcf->bind_format = NGX_CONF_UNSET_UINT;
    plcf->allowed_origins = NGX_CONF_UNSET_PTR;
    plcf->limits = NGX_CONF_UNSET_PTR;
    plcf->email_cooldown = NGX_CONF_UNSET_MSEC;
    plcf->redis_down = NGX_CONF_UNSET_UINT;
    plcf->idempotency = NGX_CONF_UNSET_MSEC;
    plcf->duplicate_window = NGX_CONF_UNSET_MSEC;
    plcf->identity_cache = NGX_CONF_UNSET_MSEC;
    plcf->job_refresh_interval = NGX_CONF_UNSET_MSEC;

    plcf->bind = NGX_CONF_UNSET;
    plcf->invoke = NGX_CONF_UNSET;
    plcf->job_status = NGX_CONF_UNSET;
    plcf->job_revoke = NGX_CONF_UNSET;
    plcf->metrics = NGX_CONF_UNSET;
    plcf->health = NGX_CONF_UNSET;

    return plcf;
}


static char *
ngx_http_passkey_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_passkey_loc_conf_t *prev = parent;
    ngx_http_passkey_loc_conf_t *conf = child;

    ngx_conf_merge_str_value(conf->api_url, prev->api_url,
                             "https://api-us.beyondidentity.com");
    ngx_conf_merge_str_value(conf->auth_url, prev->auth_url,
                             "https://auth-us.beyondidentity.com");
    ngx_conf_merge_str_value(conf->tenant_id, prev->tenant_id, "");
    ngx_conf_merge_str_value(conf->realm_id, prev->realm_id, "");
    ngx_conf_merge_str_value(conf->authenticator_config_id,
                             prev->authenticator_config_id, "");
    ngx_conf_merge_str_value(conf->token_realm_id, prev->token_realm_id, "");
    ngx_conf_merge_str_value(conf->application_id, prev->application_id, "");
    ngx_conf_merge_str_value(conf->client_id, prev->client_id, "");
    /* the second secret belongs to the first: both are inherited or none */

    if (conf->client_secret.data == NULL) {
        conf->client_secret2 = prev->client_secret2;
    }

    ngx_conf_merge_str_value(conf->client_secret, prev->client_secret, "");
    ngx_conf_merge_str_value(conf->api_token, prev->api_token, "");

    ngx_conf_merge_msec_value(conf->http.connect_timeout,
                              prev->http.connect_timeout, 5000);
    ngx_conf_merge_msec_value(conf->http.timeout, prev->http.timeout, 10000);
    ngx_conf_merge_size_value(conf->http.max_response,
                              prev->http.max_response, 64 * 1024);
    ngx_conf_merge_value(conf->http.verify, prev->http.verify, 1);

    /* the text belongs to the file name: both are inherited or none */

    if (conf->http.trusted_certificate.data == NULL) {
        conf->http.trusted_pem = prev->http.trusted_pem;
    }

    ngx_conf_merge_str_value(conf->http.trusted_certificate,
                             prev->http.trusted_certificate, "");

    ngx_conf_merge_ptr_value(conf->redis, prev->redis, NULL);
    ngx_conf_merge_str_value(conf->redis_prefix, prev->redis_prefix,
                             "passkey:");
    ngx_conf_merge_msec_value(conf->redis_timeout, prev->redis_timeout, 1000);

    ngx_conf_merge_ptr_value(conf->username, prev->username, NULL);
    ngx_conf_merge_ptr_value(conf->email, prev->email, NULL);
    ngx_conf_merge_ptr_value(conf->display_name, prev->display_name, NULL);
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size,
                              16 * 1024);


    ngx_conf_merge_ptr_value(conf->post_binding_redirect_uri,
                             prev->post_binding_redirect_uri, NULL);
    ngx_conf_merge_ptr_value(conf->redirect_origins, prev->redirect_origins,
                             NULL);
    ngx_conf_merge_ptr_value(conf->invoke_redirect, prev->invoke_redirect,
                             NULL);
    ngx_conf_merge_uint_value(conf->invoke_unknown, prev->invoke_unknown,
                              NGX_HTTP_PASSKEY_VERIFY);
    ngx_conf_merge_value(conf->invoke_reopen, prev->invoke_reopen, 1);

    ngx_conf_merge_uint_value(conf->bind_mode, prev->bind_mode,
                              NGX_HTTP_PASSKEY_SIGNUP);
    /*
     * a sign-up that answers with a link tells free usernames from taken
     * ones, so sign-up sends emails unless told otherwise
     */

    if (conf->delivery_methods == 0 && !prev->delivery_implicit) {
        conf->delivery_methods = prev->delivery_methods;
        conf->delivery_default = prev->delivery_default;
    }

    if (conf->delivery_methods == 0) {
        conf->delivery_default =
                                (conf->bind_mode == NGX_HTTP_PASSKEY_SIGNUP)
                                ? NGX_HTTP_PASSKEY_EMAIL
                                : NGX_HTTP_PASSKEY_RETURN;
        conf->delivery_methods = conf->delivery_default;
        conf->delivery_implicit = 1;
    }

    ngx_conf_merge_uint_value(conf->signup_existing, prev->signup_existing,
                              NGX_HTTP_PASSKEY_REFUSE);
    ngx_conf_merge_uint_value(conf->bind_format, prev->bind_format,
                              NGX_HTTP_PASSKEY_FORMAT_PASSKEY);
    ngx_conf_merge_ptr_value(conf->allowed_origins, prev->allowed_origins,
                             NULL);
    ngx_conf_merge_ptr_value(conf->limits, prev->limits, NULL);
    ngx_conf_merge_msec_value(conf->email_cooldown, prev->email_cooldown,
                              60000);
    ngx_conf_merge_uint_value(conf->redis_down, prev->redis_down,
                              NGX_HTTP_PASSKEY_REFUSE);
    ngx_conf_merge_msec_value(conf->idempotency, prev->idempotency,
                              24 * 3600 * 1000);
    ngx_conf_merge_msec_value(conf->duplicate_window,
                              prev->duplicate_window, 5000);

    ngx_conf_merge_msec_value(conf->identity_cache, prev->identity_cache,
                              3600 * 1000);
    ngx_conf_merge_msec_value(conf->job_refresh_interval,
                              prev->job_refresh_interval, 5000);

    /* handlers are not inherited by nested locations */

    ngx_conf_init_value(conf->bind, 0);
    ngx_conf_init_value(conf->invoke, 0);
    ngx_conf_init_value(conf->job_status, 0);
    ngx_conf_init_value(conf->job_revoke, 0);
    ngx_conf_init_value(conf->metrics, 0);
    ngx_conf_init_value(conf->health, 0);

    if (conf->bind) {
        return ngx_http_passkey_check_bind_conf(cf, conf);
    }

    if (conf->invoke || conf->job_status || conf->job_revoke
        || conf->metrics || conf->health)
    {
        return ngx_http_passkey_check_handler_conf(cf, conf);
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_passkey_init_process(ngx_cycle_t *cycle)
{
    ngx_http_passkey_main_conf_t  *pmcf;

    pmcf = ngx_http_passkey_process_conf(cycle);
    if (pmcf == NULL) {
        return NGX_OK;
    }

    if (ngx_http_passkey_http_init_process(cycle, pmcf->api_keepalive)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_passkey_redis_init_process(cycle, &pmcf->redis_servers)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_passkey_token_init_process(cycle, pmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_passkey_metrics_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_passkey_check_init_process(cycle, pmcf);
}


static void
ngx_http_passkey_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_passkey_main_conf_t  *pmcf;

    pmcf = ngx_http_passkey_process_conf(cycle);
    if (pmcf == NULL) {
        return;
    }

    ngx_http_passkey_check_exit_process(cycle);
    ngx_http_passkey_token_exit_process(cycle, pmcf);
    ngx_http_passkey_redis_exit_process(cycle, &pmcf->redis_servers);
    ngx_http_passkey_http_exit_process(cycle);
    ngx_http_passkey_metrics_exit_process(cycle);
}


/*
 * Only workers serve requests, and there is nothing to set up without
 * passkey locations: NULL then, so that the exit undoes exactly what the
 * start did.
 */

static ngx_http_passkey_main_conf_t *
ngx_http_passkey_process_conf(ngx_cycle_t *cycle)
{
    ngx_http_passkey_main_conf_t  *pmcf;

    pmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_passkey_module);

    if (pmcf == NULL
        || (pmcf->tokens.nelts == 0 && pmcf->redis_servers.nelts == 0)
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE))
    {
        return NULL;
    }

    return pmcf;
}

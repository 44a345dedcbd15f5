
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * The startup check.  Beyond Identity sends an emailed link to the
 * authenticator config's invoke_url + "/bind", and the browser SDK may
 * call Beyond Identity only from its trusted_origins: both are set in
 * Beyond Identity's console, far from nginx.conf, and a mismatch shows
 * only when a user clicks.  So once workers run, the first one reads the
 * authenticator config of each passkey_invoke location, one after the
 * other, and warns in error_log.  Nothing waits for it and nothing
 * depends on it.
 */


#define NGX_HTTP_PASSKEY_CHECK_DELAY  100


static void ngx_http_passkey_check_start(ngx_event_t *ev);
static void ngx_http_passkey_check_next(void);
static void ngx_http_passkey_check_done(ngx_http_passkey_bi_call_t *bc);
static void ngx_http_passkey_check_config(ngx_http_passkey_invoke_loc_t *il,
    ngx_http_passkey_json_t *json);
static ngx_uint_t ngx_http_passkey_check_path(ngx_http_core_loc_conf_t *clcf,
    ngx_str_t *path);
static ngx_uint_t ngx_http_passkey_check_host(
    ngx_http_passkey_invoke_loc_t *il, ngx_str_t *host);
static ngx_uint_t ngx_http_passkey_check_trusted(
    ngx_http_passkey_json_t *origins, ngx_str_t *origin);


/* one worker, one call at a time: the state of the check is this file's */

static ngx_event_t                   ngx_http_passkey_check_event;
static ngx_connection_t              ngx_http_passkey_check_dummy;
static ngx_array_t                  *ngx_http_passkey_check_locations;
static ngx_uint_t                    ngx_http_passkey_check_index;
static ngx_pool_t                   *ngx_http_passkey_check_pool;
static ngx_http_passkey_bi_call_t    ngx_http_passkey_check_call;


ngx_int_t
ngx_http_passkey_check_init_process(ngx_cycle_t *cycle,
    ngx_http_passkey_main_conf_t *pmcf)
{
    ngx_event_t  *ev;

    if (ngx_worker != 0 || pmcf->invoke_locations.nelts == 0) {
        return NGX_OK;
    }

    ngx_http_passkey_check_locations = &pmcf->invoke_locations;
    ngx_http_passkey_check_index = 0;

    ev = &ngx_http_passkey_check_event;
    ngx_memzero(ev, sizeof(ngx_event_t));

    /* the timer's debug lines read a connection's fd */
    ngx_http_passkey_check_dummy.fd = (ngx_socket_t) -1;

    ev->handler = ngx_http_passkey_check_start;
    ev->data = &ngx_http_passkey_check_dummy;
    ev->log = cycle->log;

    /* a worker that is told to quit does not wait for it */
    ev->cancelable = 1;

    ngx_add_timer(ev, NGX_HTTP_PASSKEY_CHECK_DELAY);

    return NGX_OK;
}


void
ngx_http_passkey_check_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_passkey_check_event.timer_set) {
        ngx_del_timer(&ngx_http_passkey_check_event);
    }

    ngx_http_passkey_bi_cancel(&ngx_http_passkey_check_call);

    if (ngx_http_passkey_check_pool) {
        ngx_destroy_pool(ngx_http_passkey_check_pool);
        ngx_http_passkey_check_pool = NULL;
    }
}


static void
ngx_http_passkey_check_start(ngx_event_t *ev)
{
    ngx_http_passkey_check_next();
}


static void
ngx_http_passkey_check_next(void)
{
    ngx_log_t                      *log;
    ngx_pool_t                     *pool;
    ngx_http_passkey_bi_call_t     *bc;
    ngx_http_passkey_invoke_loc_t  *il;

    log = ngx_http_passkey_check_event.log;

    for ( ;; ) {
        if (ngx_http_passkey_check_index
            == ngx_http_passkey_check_locations->nelts)
        {
            return;
        }

        il = (ngx_http_passkey_invoke_loc_t *)
                 ngx_http_passkey_check_locations->elts
             + ngx_http_passkey_check_index;

        if (il->conf->authenticator_config_id.len) {
            break;
        }

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "passkey: where Beyond Identity sends emailed links "
                      "is not checked for location \"%V\": "
                      "\"passkey_authenticator_config_id\" is not set",
                      &il->location->name);

        ngx_http_passkey_check_index++;
    }

    pool = ngx_create_pool(4096, log);
    if (pool == NULL) {
        return;
    }

    ngx_http_passkey_check_pool = pool;

    bc = &ngx_http_passkey_check_call;
    ngx_memzero(bc, sizeof(ngx_http_passkey_bi_call_t));

    bc->pool = pool;
    bc->log = log;
    bc->conf = il->conf;
    bc->handler = ngx_http_passkey_check_done;
    bc->data = il;
    ngx_str_set(&bc->method, "GET");

    bc->path.len = sizeof("/authenticator-configs/") - 1
                   + il->conf->authenticator_config_id.len;
    bc->path.data = ngx_pnalloc(pool, bc->path.len);
    if (bc->path.data == NULL) {
        ngx_destroy_pool(pool);
        ngx_http_passkey_check_pool = NULL;
        return;
    }

    ngx_sprintf(bc->path.data, "/authenticator-configs/%V",
                &il->conf->authenticator_config_id);

    if (ngx_http_passkey_bi_start(bc) != NGX_OK) {
        ngx_http_passkey_check_done(bc);
    }
}


static void
ngx_http_passkey_check_done(ngx_http_passkey_bi_call_t *bc)
{
    ngx_http_passkey_invoke_loc_t *il = bc->data;

    ngx_str_t  *id;

    id = &il->conf->authenticator_config_id;

    if (bc->result != NGX_HTTP_PASSKEY_API_OK) {
        ngx_log_error(NGX_LOG_WARN, bc->log, 0,
                      "passkey: cannot read authenticator config \"%V\" to "
                      "check location \"%V\": %s", id, &il->location->name,
                      bc->error ? bc->error : "unknown error");

    } else if (bc->status != NGX_HTTP_OK) {
        ngx_log_error(NGX_LOG_WARN, bc->log, 0,
                      "passkey: cannot read authenticator config \"%V\" to "
                      "check location \"%V\": %V %V answered %ui \"%V\" "
                      "\"%V\"%s", id, &il->location->name, &bc->method,
                      &bc->path, bc->status, &bc->log_code, &bc->log_message,
                      bc->status == NGX_HTTP_FORBIDDEN
                      ? " (the application may lack the scope "
                        "\"authenticator-configs:read\")" : "");

    } else {
        ngx_http_passkey_check_config(il, bc->json);
    }

    ngx_destroy_pool(ngx_http_passkey_check_pool);
    ngx_http_passkey_check_pool = NULL;

    ngx_http_passkey_check_index++;
    ngx_http_passkey_check_next();
}


static void
ngx_http_passkey_check_config(ngx_http_passkey_invoke_loc_t *il,
    ngx_http_passkey_json_t *json)
{
    u_char                   *p, *last;
    ngx_str_t                 type, url, origin, host, path, *o, *id;
    ngx_log_t                *log;
    ngx_uint_t                i, good;
    ngx_pool_t               *pool;
    ngx_http_passkey_json_t  *origins;

    log = ngx_http_passkey_check_event.log;
    pool = ngx_http_passkey_check_pool;
    id = &il->conf->authenticator_config_id;

    if (ngx_http_passkey_json_string(pool, json, "config.type", &type)
        != NGX_OK
        || type.len != sizeof("embedded") - 1
        || ngx_strncmp(type.data, "embedded", type.len) != 0)
    {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "passkey: authenticator config \"%V\" is not of type "
                      "\"embedded\", so Beyond Identity never sends emailed "
                      "links to location \"%V\"", id, &il->location->name);
        return;
    }

    /* invoke_url: scheme "://" host [":" port] [path] */

    if (ngx_http_passkey_json_string(pool, json, "config.invoke_url", &url)
        != NGX_OK
        || (p = ngx_strlcasestrn(url.data, url.data + url.len,
                                 (u_char *) "://", 2))
           == NULL)
    {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "passkey: authenticator config \"%V\" has no usable "
                      "\"invoke_url\"", id);
        return;
    }

    last = url.data + url.len;

    origin.data = url.data;
    p = ngx_strlchr(p + 3, last, '/');
    origin.len = (p ? p : last) - url.data;

    host.data = ngx_strlcasestrn(url.data, last, (u_char *) "://", 2) + 3;
    host.len = url.data + origin.len - host.data;

    p = ngx_strlchr(host.data, host.data + host.len, ':');
    if (p) {
        host.len = p - host.data;
    }

    path.data = url.data + origin.len;
    path.len = last - path.data;

    while (path.len && path.data[path.len - 1] == '/') {
        path.len--;
    }

    good = 1;

    if (!ngx_http_passkey_check_path(il->location, &path)) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "passkey: authenticator config \"%V\" sends emailed "
                      "links to \"%V/bind\", and location \"%V\" with "
                      "\"passkey_invoke\" does not match that path",
                      id, &url, &il->location->name);
        good = 0;

    } else if (!ngx_http_passkey_check_host(il, &host)) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "passkey: authenticator config \"%V\" sends emailed "
                      "links to \"%V/bind\", and the server of location "
                      "\"%V\" with \"passkey_invoke\" has no server_name "
                      "\"%V\"", id, &url, &il->location->name, &host);
        good = 0;
    }

    /* the SDK calls Beyond Identity from the /bind page and bind callers */

    origins = ngx_http_passkey_json_child(json, "config.trusted_origins");

    if (!ngx_http_passkey_check_trusted(origins, &origin)) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "passkey: authenticator config \"%V\" lacks \"%V\" in "
                      "\"trusted_origins\": the browser SDK will be refused "
                      "on the page of emailed links", id, &origin);
        good = 0;
    }

    if (il->conf->allowed_origins) {
        o = il->conf->allowed_origins->elts;

        for (i = 0; i < il->conf->allowed_origins->nelts; i++) {
            if (!ngx_http_passkey_check_trusted(origins, &o[i])) {
                ngx_log_error(NGX_LOG_WARN, log, 0,
                              "passkey: authenticator config \"%V\" lacks "
                              "\"%V\" of \"passkey_allowed_origins\" in "
                              "\"trusted_origins\": the browser SDK will be "
                              "refused there", id, &o[i]);
                good = 0;
            }
        }
    }

    if (good) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "passkey: authenticator config \"%V\" sends emailed "
                      "links to location \"%V\"", id, &il->location->name);
    }
}


/* the location that "<invoke_url path>/bind" finds, as far as can be told */

static ngx_uint_t
ngx_http_passkey_check_path(ngx_http_core_loc_conf_t *clcf, ngx_str_t *path)
{
    size_t   len;
    u_char  *bind;

#if (NGX_PCRE)
    if (clcf->regex) {
        return 1;
    }
#endif

    len = path->len + sizeof("/bind") - 1;

    if (clcf->exact_match) {
        if (clcf->name.len != len) {
            return 0;
        }

    } else if (clcf->name.len > len) {
        return 0;
    }

    if (ngx_strncmp(clcf->name.data, path->data,
                    ngx_min(clcf->name.len, path->len))
        != 0)
    {
        return 0;
    }

    if (clcf->name.len <= path->len) {
        return 1;
    }

    bind = (u_char *) "/bind";

    return ngx_strncmp(clcf->name.data + path->len, bind,
                       clcf->name.len - path->len)
           == 0;
}


/* a name that is not a plain one (a regex, "*.", "_", "") may match */

static ngx_uint_t
ngx_http_passkey_check_host(ngx_http_passkey_invoke_loc_t *il,
    ngx_str_t *host)
{
    ngx_str_t   *name;
    ngx_uint_t   i;

    if (il->any_name) {
        return 1;
    }

    name = il->server_names->elts;

    for (i = 0; i < il->server_names->nelts; i++) {
        if (name[i].len == host->len
            && ngx_strncasecmp(name[i].data, host->data, host->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static ngx_uint_t
ngx_http_passkey_check_trusted(ngx_http_passkey_json_t *origins,
    ngx_str_t *origin)
{
    size_t      len;
    ngx_str_t   o;
    ngx_uint_t  i, n;

    n = ngx_http_passkey_json_size(origins);

    for (i = 0; i < n; i++) {
        if (ngx_http_passkey_json_string(ngx_http_passkey_check_pool,
                                         ngx_http_passkey_json_at(origins, i),
                                         "", &o)
            != NGX_OK)
        {
            continue;
        }

        len = o.len;

        if (len && o.data[len - 1] == '/') {
            len--;
        }

        if (len == origin->len
            && ngx_strncasecmp(o.data, origin->data, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


char *
ngx_http_passkey_conf_set_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t  *field, *value, url;

    field = (ngx_str_t *) (p + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    url = value[1];

    while (url.len && url.data[url.len - 1] == '/') {
        url.len--;
    }

    if (!(url.len > 8 && ngx_strncasecmp(url.data, (u_char *) "https://", 8)
                         == 0)
        && !(url.len > 7 && ngx_strncasecmp(url.data, (u_char *) "http://", 7)
                            == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" in \"%V\": "
                           "expected http:// or https://",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_strlchr(url.data, url.data + url.len, '?') != NULL
        || ngx_strlchr(url.data, url.data + url.len, '#') != NULL
        || ngx_strlchr(url.data, url.data + url.len, ' ') != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" in \"%V\": "
                           "no query, fragment or spaces allowed",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    *field = url;

    return NGX_CONF_OK;
}


char *
ngx_http_passkey_conf_set_id(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t  *field, *value;

    field = (ngx_str_t *) (p + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* ids are opaque, but they go into URL paths unescaped */

    if (ngx_http_passkey_valid_id(&value[1]) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": expected "
                           "1 to 128 letters, digits, \"-\" or \"_\"",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    *field = value[1];

    return NGX_CONF_OK;
}


/*
 * passkey_client_secret_file file [file]; passkey_api_token_file file;
 * only the first takes a second file (NGX_CONF_TAKE12): the secret that
 * is tried when the token endpoint rejects the first one
 */

char *
ngx_http_passkey_conf_set_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    ngx_str_t                    *field, *value;
    ngx_http_passkey_loc_conf_t  *plcf;

    field = (ngx_str_t *) (p + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_passkey_read_secret(cf, &value[1], field, &cmd->name)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    plcf = conf;

    if (ngx_http_passkey_read_secret(cf, &value[2], &plcf->client_secret2,
                                     &cmd->name)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* the rotation is over: a second try with the same secret is useless */

    if (plcf->client_secret2.len == field->len
        && ngx_strncmp(plcf->client_secret2.data, field->data, field->len)
           == 0)
    {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"%V\": secret files \"%V\" and \"%V\" hold "
                           "the same secret, the second one is ignored",
                           &cmd->name, &value[1], &value[2]);

        plcf->client_secret2.len = 0;
        plcf->client_secret2.data = NULL;
    }

    return NGX_CONF_OK;
}


/*
 * Secrets live in files so that neither nginx.conf nor "nginx -T" shows
 * them; the file is read on every configuration load (start and reload),
 * by the master, and refused if other users may read or change it.
 */

ngx_int_t
ngx_http_passkey_read_secret(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *secret, ngx_str_t *directive)
{
    u_char           *buf, *last;
    size_t            size;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_str_t         file;
    ngx_file_info_t   fi;

    file = *name;

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot open secret file \"%V\"",
                           directive, &file);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot stat secret file \"%V\"",
                           directive, &file);
        goto failed;
    }

    size = (size_t) ngx_file_size(&fi);

    if (size == 0 || size > NGX_HTTP_PASSKEY_SECRET_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": secret file \"%V\" must hold "
                           "1 to %d bytes", directive, &file,
                           NGX_HTTP_PASSKEY_SECRET_MAX);
        goto failed;
    }

    /*
     * the mode of the file that was opened, not of whatever the name
     * points to by now; the group may read it (root:nginx 0640)
     */

    if (ngx_file_access(&fi) & S_IRWXO) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": secret file \"%V\" is accessible by "
                           "other users, run \"chmod o-rwx %V\"",
                           directive, &file, &file);
        goto failed;
    }

    buf = ngx_pnalloc(cf->pool, size + 1);
    if (buf == NULL) {
        goto failed;
    }

    n = ngx_read_fd(fd, buf, size);

    if (n != (ssize_t) size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot read secret file \"%V\"",
                           directive, &file);
        goto failed;
    }

    ngx_close_file(fd);

    /* editors add a final newline; nothing in a secret is white space */

    last = buf + size;

    while (last > buf
           && (last[-1] == '\n' || last[-1] == '\r' || last[-1] == ' '
               || last[-1] == '\t'))
    {
        last--;
    }

    if (last == buf) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": secret file \"%V\" is blank",
                           directive, &file);
        return NGX_ERROR;
    }

    *last = '\0';

    secret->data = buf;
    secret->len = last - buf;

    return NGX_OK;

failed:

    ngx_close_file(fd);

    return NGX_ERROR;
}


/*
 * passkey_api_trusted_certificate file: read here, by the master (and
 * "nginx -t"), so that a missing or broken file stops the load rather
 * than every HTTPS call, and workers never read a file at request time;
 * libcurl takes the text from memory (CURLOPT_CAINFO_BLOB).
 */

char *
ngx_http_passkey_conf_set_certificate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_passkey_loc_conf_t *plcf = conf;

    u_char                        *buf;
    size_t                         size;
    ssize_t                        n;
    ngx_fd_t                       fd;
    ngx_str_t                     *value, file;
    const char                    *reason;
    ngx_uint_t                     certs;
    ngx_file_info_t                fi;
    ngx_http_passkey_main_conf_t  *pmcf;

    if (plcf->http.trusted_certificate.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot read \"%V\"", &cmd->name, &file);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot read \"%V\"", &cmd->name, &file);
        goto failed;
    }

    if (!ngx_is_file(&fi) || ngx_file_size(&fi) > NGX_HTTP_PASSKEY_CA_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%V\" must be a file of at most %d "
                           "bytes", &cmd->name, &file,
                           NGX_HTTP_PASSKEY_CA_MAX);
        goto failed;
    }

    size = (size_t) ngx_file_size(&fi);

    buf = ngx_pnalloc(cf->pool, size + 1);
    if (buf == NULL) {
        goto failed;
    }

    n = ngx_read_fd(fd, buf, size);

    if (n != (ssize_t) size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf,
                           (n == NGX_ERROR) ? ngx_errno : 0,
                           "\"%V\": cannot read \"%V\"", &cmd->name, &file);
        goto failed;
    }

    ngx_close_file(fd);

    buf[size] = '\0';

    plcf->http.trusted_pem.data = buf;
    plcf->http.trusted_pem.len = size;

    if (ngx_http_passkey_pem_certificates(&plcf->http.trusted_pem, &certs,
                                          &reason)
        != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%V\" holds a certificate that "
                           "cannot be read (%s)", &cmd->name, &file,
                           reason ? reason : "unknown error");
        return NGX_CONF_ERROR;
    }

    if (certs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%V\" holds no PEM certificate",
                           &cmd->name, &file);
        return NGX_CONF_ERROR;
    }

    plcf->http.trusted_certificate = file;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_passkey_module);
    pmcf->ca_blob = 1;

    return NGX_CONF_OK;

failed:

    ngx_close_file(fd);

    return NGX_CONF_ERROR;
}


char *
ngx_http_passkey_bind(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_passkey_loc_conf_t *plcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (plcf->bind != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    plcf->bind = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_passkey_bind_handler;

    return NGX_CONF_OK;
}


/*
 * passkey_invoke, passkey_job_status, passkey_job_revoke, passkey_health
 * and passkey_metrics
 */

char *
ngx_http_passkey_handler_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    ngx_flag_t                    *flag;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_passkey_main_conf_t  *pmcf;

    flag = (ngx_flag_t *) (p + cmd->offset);

    if (*flag != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    *flag = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    /* passkey_invoke checks before the content, which is the app's */

    if (ngx_strcmp(cmd->name.data, "passkey_job_status") == 0) {
        clcf->handler = ngx_http_passkey_job_status_handler;

    } else if (ngx_strcmp(cmd->name.data, "passkey_job_revoke") == 0) {
        clcf->handler = ngx_http_passkey_job_revoke_handler;

    } else if (ngx_strcmp(cmd->name.data, "passkey_health") == 0) {
        clcf->handler = ngx_http_passkey_health_handler;

    } else if (ngx_strcmp(cmd->name.data, "passkey_metrics") == 0) {
        clcf->handler = ngx_http_passkey_metrics_handler;

        pmcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_passkey_module);
        pmcf->metrics = 1;
    }

    return NGX_CONF_OK;
}


/*
 * passkey_redirect_origins and passkey_allowed_origins: origin ...;
 * may be repeated; the latter also takes "off"
 */

char *
ngx_http_passkey_origins(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *c = conf;

    u_char        *p, *host, *last;
    ngx_str_t     *value, *o;
    ngx_uint_t     i;
    ngx_array_t  **origins;

    origins = (ngx_array_t **) (c + cmd->offset);

    if (*origins == NGX_CONF_UNSET_PTR) {
        *origins = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
        if (*origins == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    /* passkey_allowed_origins off: an empty list, no check */

    if (cf->args->nelts == 2
        && cmd->name.data[sizeof("passkey_") - 1] == 'a'
        && ngx_strcmp(value[1].data, "off") == 0)
    {
        if ((*origins)->nelts) {
            return "cannot be \"off\" and list origins";
        }

        /* "off" is the list that can hold nothing */

        *origins = ngx_array_create(cf->pool, 0, sizeof(ngx_str_t));
        if (*origins == NULL) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if ((*origins)->nalloc == 0) {
        return "cannot be \"off\" and list origins";
    }

    for (i = 1; i < cf->args->nelts; i++) {
        p = value[i].data;
        last = p + value[i].len;

        host = (value[i].len > 8
                && ngx_strncasecmp(p, (u_char *) "https://", 8) == 0)
               ? p + 8
               : (value[i].len > 7
                  && ngx_strncasecmp(p, (u_char *) "http://", 7) == 0)
                 ? p + 7 : NULL;

        if (host != NULL) {
            for (p = host; p < last; p++) {
                if (*p == '/' || *p == '?' || *p == '#' || *p == '@') {
                    break;
                }
            }
        }

        if (host == NULL || p != last) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid origin \"%V\" in \"%V\": expected "
                               "scheme://host[:port]", &value[i],
                               &cmd->name);
            return NGX_CONF_ERROR;
        }

        o = ngx_array_push(*origins);
        if (o == NULL) {
            return NGX_CONF_ERROR;
        }

        *o = value[i];
    }

    return NGX_CONF_OK;
}


/* a time, or "off" for 0: what turns a safeguard off must be explicit */

char *
ngx_http_passkey_conf_set_time_or_off(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *c = conf;

    ngx_str_t        *value;
    ngx_msec_t       *msp;
    ngx_conf_post_t  *post;

    msp = (ngx_msec_t *) (c + cmd->offset);

    if (*msp != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        *msp = 0;
        return NGX_CONF_OK;
    }

    *msp = ngx_parse_time(&value[1], 0);

    if (*msp == (ngx_msec_t) NGX_ERROR || *msp == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": expected a "
                           "time such as 10s, 5m, 24h, or \"off\"",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (cmd->post) {
        post = cmd->post;
        return post->post_handler(cf, post, msp);
    }

    return NGX_CONF_OK;
}


/*
 * ngx_conf_set_enum_slot(), whose own error names neither the directive
 * nor the values it takes
 */

char *
ngx_http_passkey_conf_set_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    u_char           *p, *last;
    ngx_str_t        *value;
    ngx_conf_enum_t  *e, *first;
    u_char            names[NGX_MAX_CONF_ERRSTR];

    value = cf->args->elts;
    first = cmd->post;

    for (e = first; e->name.len; e++) {
        if (e->name.len == value[1].len
            && ngx_strcasecmp(e->name.data, value[1].data) == 0)
        {
            return ngx_conf_set_enum_slot(cf, cmd, conf);
        }
    }

    p = names;
    last = names + sizeof(names);

    for (e = first; e->name.len; e++) {
        p = ngx_slprintf(p, last, "%s\"%V\"",
                         (e == first) ? "" : (e[1].name.len ? ", " : " or "),
                         &e->name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\": expected %*s",
                       &value[1], &cmd->name, (size_t) (p - names), names);

    return NGX_CONF_ERROR;
}


/*
 * The post handler of sizes and times (ngx_conf_set_size_slot(),
 * ngx_conf_set_msec_slot(), the time or "off" above): the value as
 * written, and the range in the units the documentation uses.
 */

char *
ngx_http_passkey_conf_check_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_http_passkey_conf_bounds_t  *bounds = post;
    ngx_uint_t  *np = data;

    ngx_str_t  *value;

    if (*np >= bounds->low && *np <= bounds->high) {
        return NGX_CONF_OK;
    }

    value = cf->args->elts;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" must be %s, not \"%V\"",
                       &value[0], bounds->range, &value[1]);

    return NGX_CONF_ERROR;
}


/* passkey_delivery_method RETURN | EMAIL [RETURN | EMAIL]; */

char *
ngx_http_passkey_delivery_method(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_passkey_loc_conf_t *plcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i, method;

    if (plcf->delivery_methods) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "RETURN") == 0) {
            method = NGX_HTTP_PASSKEY_RETURN;

        } else if (ngx_strcmp(value[i].data, "EMAIL") == 0) {
            method = NGX_HTTP_PASSKEY_EMAIL;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\": expected "
                               "RETURN or EMAIL", &value[i], &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (plcf->delivery_methods & method) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" names \"%V\" twice",
                               &cmd->name, &value[i]);
            return NGX_CONF_ERROR;
        }

        if (i == 1) {
            plcf->delivery_default = method;
        }

        plcf->delivery_methods |= method;
    }

    return NGX_CONF_OK;
}

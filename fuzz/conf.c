
/*
 * Copyright (C) ngx_passkey_module authors
 */


/*
 * The module's directives in a location, as nginx reads them: each line
 * is a directive and its arguments, taken by the module's own handler
 * (after nginx's count of its arguments), then the location's settings
 * merged and checked as at the end of the http{} block: times, sizes,
 * passkey_limit's rate= and burst=, origins, URLs, ids, passkey_redis's
 * addresses, URLs and parameters.
 *
 * Input: lines "directive arg ...", split at spaces and tabs.  Files are
 * the configuration directory's only ("secret", mode 0600; "public",
 * 0644): a file name with "/" is not given to the directive.
 *
 * Checks: what a directive took has the form its documentation gives.
 */


#include "ngx_passkey_fuzz.h"


static ngx_uint_t ngx_passkey_fuzz_argument_number[] = {
    NGX_CONF_NOARGS,
    NGX_CONF_TAKE1,
    NGX_CONF_TAKE2,
    NGX_CONF_TAKE3,
    NGX_CONF_TAKE4,
    NGX_CONF_TAKE5,
    NGX_CONF_TAKE6,
    NGX_CONF_TAKE7
};


static ngx_int_t ngx_passkey_fuzz_directive(ngx_conf_t *cf, void *conf);
static ngx_uint_t ngx_passkey_fuzz_reads_file(ngx_str_t *name,
    ngx_str_t *arg);
static void ngx_passkey_fuzz_url(ngx_str_t *url);
static void ngx_passkey_fuzz_origins(ngx_array_t *origins);


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_passkey_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                             *rv;
    u_char                           *q, *end;
    ngx_str_t                         line, *arg;
    ngx_uint_t                        i, failed;
    ngx_conf_t                       *cf;
    ngx_pool_t                       *pool;
    const u_char                     *p, *last;
    ngx_http_module_t                *module;
    ngx_http_passkey_limit_t         *lim;
    ngx_http_passkey_loc_conf_t      *plcf, *prev;
    ngx_http_passkey_redis_server_t  *rs;

    pool = ngx_passkey_fuzz_pool();
    cf = ngx_passkey_fuzz_conf(pool);

    plcf = ((ngx_http_conf_ctx_t *) cf->ctx)->loc_conf[1];

    p = data;
    last = data + size;
    failed = 0;

    while (ngx_passkey_fuzz_line(pool, &p, last, &line, 0) == NGX_OK) {

        cf->args->nelts = 0;

        q = line.data;
        end = line.data + line.len;

        while (q < end) {
            while (q < end && (*q == ' ' || *q == '\t')) {
                q++;
            }

            if (q == end) {
                break;
            }

            arg = ngx_array_push(cf->args);
            if (arg == NULL) {
                abort();
            }

            arg->data = q;

            while (q < end && *q != ' ' && *q != '\t') {
                q++;
            }

            arg->len = q - arg->data;
            arg->data = ngx_passkey_fuzz_copy(pool, arg->data, arg->len, 1);
        }

        if (cf->args->nelts == 0) {
            continue;
        }

        switch (ngx_passkey_fuzz_directive(cf, plcf)) {
        case NGX_OK:
            break;
        case NGX_ERROR:
            failed = 1;
            break;
        default:
            /* not the module's, or not given */
            break;
        }
    }

    /* what the directives took */

    if (plcf->limits != NGX_CONF_UNSET_PTR) {
        lim = plcf->limits->elts;

        for (i = 0; i < plcf->limits->nelts; i++) {
            if (lim[i].text.len == 0) {
                continue;          /* the one that failed */
            }

            ngx_passkey_fuzz_check(lim[i].rate >= 1 && lim[i].burst >= 1
                                   && lim[i].period >= lim[i].rate);
        }
    }

    if (plcf->redirect_origins != NGX_CONF_UNSET_PTR) {
        ngx_passkey_fuzz_origins(plcf->redirect_origins);
    }

    if (plcf->allowed_origins != NGX_CONF_UNSET_PTR) {
        ngx_passkey_fuzz_origins(plcf->allowed_origins);
    }

    ngx_passkey_fuzz_url(&plcf->api_url);
    ngx_passkey_fuzz_url(&plcf->auth_url);

    if (plcf->tenant_id.data) {
        ngx_passkey_fuzz_check(
            ngx_http_passkey_valid_id(&plcf->tenant_id) == NGX_OK);
    }

    if (plcf->redis != NGX_CONF_UNSET_PTR && plcf->redis != NULL) {
        rs = plcf->redis;

        ngx_passkey_fuzz_check(rs->database >= 0 && rs->database <= 1024
                               && rs->replicas <= 16);
        ngx_passkey_fuzz_check(rs->addr.sockaddr != NULL || rs->host.len
                               || rs->sentinels != NULL);
        ngx_passkey_fuzz_check(rs->user.len == 0 || rs->password.len);
    }

    /* the end of the http{} block: the location's settings merged */

    if (!failed) {
        module = ngx_http_passkey_module.ctx;

        prev = module->create_loc_conf(cf);
        if (prev == NULL) {
            abort();
        }

        rv = module->merge_loc_conf(cf, prev, plcf);

        ngx_passkey_fuzz_check(rv == NGX_CONF_OK || rv == NGX_CONF_ERROR);
    }

    ngx_passkey_fuzz_done(pool);

    return 0;
}


/*
 * As ngx_conf_handler() runs a directive of a location: NGX_OK, taken;
 * NGX_ERROR, refused; NGX_DECLINED, not run.
 */

static ngx_int_t
ngx_passkey_fuzz_directive(ngx_conf_t *cf, void *conf)
{
    char           *rv;
    ngx_str_t      *name, *arg;
    ngx_uint_t      i, n;
    ngx_command_t  *cmd;

    name = cf->args->elts;
    arg = name + 1;
    n = cf->args->nelts - 1;

    for (cmd = ngx_http_passkey_module.commands; cmd->name.len; cmd++) {
        if (cmd->name.len == name->len
            && ngx_strcmp(cmd->name.data, name->data) == 0)
        {
            break;
        }
    }

    if (cmd->name.len == 0 || !(cmd->type & NGX_HTTP_LOC_CONF)) {
        return NGX_DECLINED;
    }

    if (cmd->type & NGX_CONF_FLAG) {
        if (n != 1) {
            return NGX_DECLINED;
        }

    } else if (cmd->type & NGX_CONF_1MORE) {
        if (n < 1) {
            return NGX_DECLINED;
        }

    } else if (cmd->type & NGX_CONF_2MORE) {
        if (n < 2) {
            return NGX_DECLINED;
        }

    } else if (!(cmd->type & NGX_CONF_ANY)
               && (n >= sizeof(ngx_passkey_fuzz_argument_number)
                        / sizeof(ngx_uint_t)
                   || !(cmd->type & ngx_passkey_fuzz_argument_number[n])))
    {
        return NGX_DECLINED;
    }

    for (i = 0; i < n; i++) {
        if (ngx_passkey_fuzz_reads_file(name, &arg[i])) {
            return NGX_DECLINED;
        }
    }

    rv = cmd->set(cf, cmd, conf);

    return (rv == NGX_CONF_OK) ? NGX_OK : NGX_ERROR;
}


/* a file outside the configuration's directory, which could be a FIFO */

static ngx_uint_t
ngx_passkey_fuzz_reads_file(ngx_str_t *name, ngx_str_t *arg)
{
    u_char      *eq;
    ngx_uint_t   i;

    static char  *files[] = {
        "passkey_client_secret_file",
        "passkey_api_token_file",
        "passkey_api_trusted_certificate",
        NULL
    };

    static char  *params[] = {
        "password_file=",
        "tls_trusted_certificate=",
        "tls_certificate=",
        "tls_certificate_key=",
        NULL
    };

    if (ngx_strlchr(arg->data, arg->data + arg->len, '/') == NULL) {
        return 0;
    }

    for (i = 0; files[i]; i++) {
        if (ngx_strcmp(name->data, files[i]) == 0) {
            return 1;
        }
    }

    if (ngx_strcmp(name->data, "passkey_redis") != 0) {
        return 0;
    }

    eq = ngx_strlchr(arg->data, arg->data + arg->len, '=');

    for (i = 0; eq && params[i]; i++) {
        if ((size_t) (eq + 1 - arg->data) == ngx_strlen(params[i])
            && ngx_strncmp(arg->data, params[i], eq + 1 - arg->data) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* passkey_api_url, passkey_auth_url: http(s), no query, no final "/" */

static void
ngx_passkey_fuzz_url(ngx_str_t *url)
{
    if (url->data == NULL) {
        return;
    }

    ngx_passkey_fuzz_check(
        (url->len > 8 && ngx_strncasecmp(url->data, (u_char *) "https://", 8)
                         == 0)
        || (url->len > 7 && ngx_strncasecmp(url->data, (u_char *) "http://", 7)
                            == 0));

    ngx_passkey_fuzz_check(url->data[url->len - 1] != '/'
                           && ngx_strlchr(url->data, url->data + url->len, '?')
                              == NULL
                           && ngx_strlchr(url->data, url->data + url->len, '#')
                              == NULL);
}


/* scheme://host[:port], nothing after */

static void
ngx_passkey_fuzz_origins(ngx_array_t *origins)
{
    u_char      *p, *last;
    ngx_str_t   *o;
    ngx_uint_t   i;

    if (origins == NULL) {
        return;
    }

    o = origins->elts;

    for (i = 0; i < origins->nelts; i++) {
        p = o[i].data;
        last = p + o[i].len;

        if (o[i].len > 8 && ngx_strncasecmp(p, (u_char *) "https://", 8) == 0)
        {
            p += 8;

        } else {
            ngx_passkey_fuzz_check(
                o[i].len > 7
                && ngx_strncasecmp(p, (u_char *) "http://", 7) == 0);
            p += 7;
        }

        for ( /* void */ ; p < last; p++) {
            ngx_passkey_fuzz_check(*p != '/' && *p != '?' && *p != '#'
                                   && *p != '@');
        }
    }
}

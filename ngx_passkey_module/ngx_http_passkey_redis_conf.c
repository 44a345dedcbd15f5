
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * The passkey_redis directive: where Redis is (an address, or a redis://
 * or rediss:// URL as providers print them), who the module is to it (an
 * ACL user, a password from a file), and TLS with nginx's SSL layer.
 * Everything that would fail at run time fails "nginx -t", naming the
 * directive.
 */


typedef struct {
    ngx_uint_t                        tls;
    ngx_uint_t                        cluster;
    ngx_uint_t                        database_set;
    ngx_str_t                         trusted;
    ngx_str_t                         certificate;
    ngx_str_t                         certificate_key;
} ngx_http_passkey_redis_tls_t;


static ngx_int_t ngx_http_passkey_redis_url(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_tls_t *tls);
static ngx_int_t ngx_http_passkey_redis_address(ngx_conf_t *cf,
    ngx_str_t *value, ngx_http_passkey_redis_server_t *server);
static ngx_int_t ngx_http_passkey_redis_param(ngx_conf_t *cf, ngx_str_t *arg,
    ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_tls_t *tls);
static ngx_int_t ngx_http_passkey_redis_sentinel(ngx_conf_t *cf,
    ngx_str_t *value, ngx_http_passkey_redis_server_t *server);
static ngx_int_t ngx_http_passkey_redis_sentinels(ngx_conf_t *cf,
    ngx_str_t *first, ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_tls_t *tls);
static ngx_int_t ngx_http_passkey_redis_seeds(ngx_conf_t *cf,
    ngx_str_t *first, ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_tls_t *tls);
static ngx_int_t ngx_http_passkey_redis_tls(ngx_conf_t *cf,
    ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_tls_t *tls);
static ngx_http_passkey_redis_server_t *ngx_http_passkey_redis_server_add(
    ngx_conf_t *cf, ngx_http_passkey_redis_server_t *server);


char *
ngx_http_passkey_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_passkey_loc_conf_t *plcf = conf;

    u_char                           *p;
    ngx_str_t                        *value;
    ngx_int_t                         rc;
    ngx_uint_t                        i;
    ngx_http_passkey_redis_tls_t      tls;
    ngx_http_passkey_redis_server_t   server;

    if (plcf->redis != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&server, sizeof(ngx_http_passkey_redis_server_t));
    ngx_memzero(&tls, sizeof(ngx_http_passkey_redis_tls_t));

#if (NGX_SSL)
    server.tls_verify = 1;
#endif

    if (ngx_strncmp(value[1].data, "redis://", 8) == 0
        || ngx_strncmp(value[1].data, "rediss://", 9) == 0)
    {
        rc = ngx_http_passkey_redis_url(cf, &value[1], &server, &tls);

    } else {
        rc = ngx_http_passkey_redis_address(cf, &value[1], &server);
    }

    if (rc != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        /* more addresses: the sentinels of sentinel=, or cluster seeds */

        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
            == NULL
            && !(value[i].len == 3 && ngx_strncmp(value[i].data, "tls", 3)
                                      == 0)
            && !(value[i].len == 7
                 && ngx_strncmp(value[i].data, "cluster", 7) == 0))
        {
            if (ngx_http_passkey_redis_sentinel(cf, &value[i], &server)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_http_passkey_redis_param(cf, &value[i], &server, &tls)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_passkey_redis_sentinels(cf, &value[1], &server, &tls)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (server.user.len && server.password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"passkey_redis\" \"%V\": the user \"%V\" needs "
                           "password_file=", &server.name, &server.user);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_passkey_redis_tls(cf, &server, &tls) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* servers are told apart by what was written, files' names included */

    for (i = 1; i < cf->args->nelts; i++) {
        server.key.len += value[i].len + 1;
    }

    server.key.data = ngx_pnalloc(cf->pool, server.key.len);
    if (server.key.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = server.key.data;

    for (i = 1; i < cf->args->nelts; i++) {
        p = ngx_cpymem(p, value[i].data, value[i].len);
        *p++ = ' ';
    }

    plcf->redis = ngx_http_passkey_redis_server_add(cf, &server);
    if (plcf->redis == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * redis://[user@]host:port[/database], rediss:// for TLS.  A password in
 * the URL is refused: "nginx -T" prints the configuration.
 */

static ngx_int_t
ngx_http_passkey_redis_url(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_tls_t *tls)
{
    u_char     *p, *last, *at, *slash;
    ngx_str_t   address;

    p = value->data + (value->data[5] == 's' ? 9 : 8);
    last = value->data + value->len;

    tls->tls = (value->data[5] == 's');

    at = ngx_strlchr(p, last, '@');

    if (at != NULL) {
        if (ngx_strlchr(p, at, ':') != NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"passkey_redis\" \"%V\": put the password "
                               "in a file named by password_file=, as "
                               "\"nginx -T\" prints the URL", value);
            return NGX_ERROR;
        }

        if (at == p) {
            goto invalid;
        }

        server->user.data = p;
        server->user.len = at - p;

        p = at + 1;
    }

    slash = ngx_strlchr(p, last, '/');

    if (slash != NULL) {
        if (slash + 1 < last) {
            server->database = ngx_atoi(slash + 1, last - slash - 1);

            if (server->database == NGX_ERROR || server->database > 1024) {
                goto invalid;
            }

            tls->database_set = 1;
        }

        last = slash;
    }

    address.data = p;
    address.len = last - p;

    if (address.len == 0 || address.data[0] == '/'
        || (address.len > 5 && ngx_strncmp(address.data, "unix:", 5) == 0))
    {
        goto invalid;
    }

    if (ngx_http_passkey_redis_address(cf, &address, server) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the logs name the server as configured, less the user */

    server->name = address;

    return NGX_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid URL \"%V\" in \"passkey_redis\": expected "
                       "redis://[user@]host:port[/database] or rediss://...",
                       value);

    return NGX_ERROR;
}


/*
 * host:port, a numeric address and port, or a unix socket.  A numeric
 * address is parsed once here; a host name is resolved by nginx's
 * resolver each time a connection is made (the location must have one:
 * ngx_http_passkey_location.c checks).
 */

static ngx_int_t
ngx_http_passkey_redis_address(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_passkey_redis_server_t *server)
{
    ngx_url_t  u;

    server->name = *value;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *value;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"passkey_redis\": %s",
                           value, u.err ? u.err : "cannot parse it");
        return NGX_ERROR;
    }

    if (u.family != AF_UNIX && (u.no_port || u.port == 0)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"passkey_redis\": "
                           "expected host:port or unix:/path", value);
        return NGX_ERROR;
    }

    if (u.family == AF_UNIX) {
        server->addr = u.addrs[0];
        return NGX_OK;
    }

    server->port = u.port;

    switch (ngx_parse_addr_port(cf->pool, &server->addr, value->data,
                                value->len))
    {
    case NGX_OK:
        return NGX_OK;

    case NGX_DECLINED:
        server->host = u.host;
        return NGX_OK;

    default:
        return NGX_ERROR;
    }
}


static ngx_int_t
ngx_http_passkey_redis_param(ngx_conf_t *cf, ngx_str_t *arg,
    ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_tls_t *tls)
{
    ngx_int_t         n;
    ngx_str_t         s;
    static ngx_str_t  name = ngx_string("passkey_redis");

    if (arg->len > 9 && ngx_strncmp(arg->data, "database=", 9) == 0) {

        if (tls->database_set) {
            goto twice;
        }

        server->database = ngx_atoi(arg->data + 9, arg->len - 9);
        if (server->database == NGX_ERROR || server->database > 1024) {
            goto invalid;
        }

        tls->database_set = 1;

        return NGX_OK;
    }

    if (arg->len > 9 && ngx_strncmp(arg->data, "sentinel=", 9) == 0) {

        if (server->sentinel.len) {
            goto twice;
        }

        server->sentinel.data = arg->data + 9;
        server->sentinel.len = arg->len - 9;

        return NGX_OK;
    }

    if (arg->len > 9 && ngx_strncmp(arg->data, "replicas=", 9) == 0) {

        n = ngx_atoi(arg->data + 9, arg->len - 9);
        if (n == NGX_ERROR || n < 1 || n > 16) {
            goto invalid;
        }

        server->replicas = n;

        return NGX_OK;
    }

    if (arg->len > 14 && ngx_strncmp(arg->data, "sentinel_user=", 14) == 0)
    {
        if (server->sentinel_user.len) {
            goto twice;
        }

        server->sentinel_user.data = arg->data + 14;
        server->sentinel_user.len = arg->len - 14;

        return NGX_OK;
    }

    if (arg->len > 23
        && ngx_strncmp(arg->data, "sentinel_password_file=", 23) == 0)
    {
        if (server->sentinel_password.len) {
            goto twice;
        }

        s.data = arg->data + 23;
        s.len = arg->len - 23;

        return ngx_http_passkey_read_secret(cf, &s,
                                            &server->sentinel_password,
                                            &name);
    }

    if (arg->len > 5 && ngx_strncmp(arg->data, "user=", 5) == 0) {

        if (server->user.len) {
            goto twice;
        }

        server->user.data = arg->data + 5;
        server->user.len = arg->len - 5;

        return NGX_OK;
    }

    if (arg->len > 14 && ngx_strncmp(arg->data, "password_file=", 14) == 0) {

        if (server->password.len) {
            goto twice;
        }

        s.data = arg->data + 14;
        s.len = arg->len - 14;

        return ngx_http_passkey_read_secret(cf, &s, &server->password, &name);
    }

    if (arg->len == 3 && ngx_strncmp(arg->data, "tls", 3) == 0) {
        tls->tls = 1;
        return NGX_OK;
    }

    if (arg->len == 7 && ngx_strncmp(arg->data, "cluster", 7) == 0) {
        tls->cluster = 1;
        return NGX_OK;
    }

    if (arg->len > 24
        && ngx_strncmp(arg->data, "tls_trusted_certificate=", 24) == 0)
    {
        tls->trusted.data = arg->data + 24;
        tls->trusted.len = arg->len - 24;
        return NGX_OK;
    }

    if (arg->len > 16 && ngx_strncmp(arg->data, "tls_certificate=", 16) == 0)
    {
        tls->certificate.data = arg->data + 16;
        tls->certificate.len = arg->len - 16;
        return NGX_OK;
    }

    if (arg->len > 20
        && ngx_strncmp(arg->data, "tls_certificate_key=", 20) == 0)
    {
        tls->certificate_key.data = arg->data + 20;
        tls->certificate_key.len = arg->len - 20;
        return NGX_OK;
    }

#if (NGX_SSL)

    if (arg->len > 9 && ngx_strncmp(arg->data, "tls_name=", 9) == 0) {
        server->tls_name.len = arg->len - 9;
        server->tls_name.data = ngx_pnalloc(cf->pool,
                                            server->tls_name.len + 1);
        if (server->tls_name.data == NULL) {
            return NGX_ERROR;
        }

        ngx_cpystrn(server->tls_name.data, arg->data + 9,
                    server->tls_name.len + 1);
        return NGX_OK;
    }

    if (arg->len == 14 && ngx_strncmp(arg->data, "tls_verify=off", 14) == 0)
    {
        server->tls_verify = 0;
        return NGX_OK;
    }

    if (arg->len == 13 && ngx_strncmp(arg->data, "tls_verify=on", 13) == 0) {
        server->tls_verify = 1;
        return NGX_OK;
    }

#endif

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"passkey_redis\"", arg);

    return NGX_ERROR;

twice:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"passkey_redis\" has \"%V\" and says it already",
                       arg);

    return NGX_ERROR;
}


/*
 * One more sentinel or cluster seed: an address and port, or a host name
 * and port (a sentinel's, resolved at run time; no sockaddr here).
 */

static ngx_int_t
ngx_http_passkey_redis_sentinel(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_passkey_redis_server_t *server)
{
    ngx_int_t    rc;
    ngx_url_t    u;
    ngx_addr_t  *addr;

    if (server->sentinels == NULL) {
        server->sentinels = ngx_array_create(cf->pool, 3, sizeof(ngx_addr_t));
        if (server->sentinels == NULL) {
            return NGX_ERROR;
        }
    }

    addr = ngx_array_push(server->sentinels);
    if (addr == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(addr, sizeof(ngx_addr_t));

    addr->name = *value;

    rc = ngx_parse_addr_port(cf->pool, addr, value->data, value->len);

    if (rc == NGX_DECLINED) {

        /* a name: it must be host:port, its port given */

        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url = *value;
        u.no_resolve = 1;

        if (ngx_parse_url(cf->pool, &u) == NGX_OK && u.family != AF_UNIX
            && !u.no_port && u.port && u.uri.len == 0)
        {
            addr->sockaddr = NULL;
            addr->socklen = 0;
            server->sentinel_hosts = 1;
            return NGX_OK;
        }
    }

    if (rc != NGX_OK || ngx_inet_get_port(addr->sockaddr) == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"passkey_redis\": "
                           "expected host:port", value);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * sentinel=NAME makes every address a sentinel's, the first one too; the
 * master's address comes from them at run time.  With cluster, the
 * addresses are nodes of the cluster instead.
 */

static ngx_int_t
ngx_http_passkey_redis_sentinels(ngx_conf_t *cf, ngx_str_t *first,
    ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_tls_t *tls)
{
    ngx_addr_t  *addr, last;

    if (server->sentinel_user.len && server->sentinel_password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"passkey_redis\": sentinel_user= needs "
                           "sentinel_password_file=");
        return NGX_ERROR;
    }

    if (server->sentinel.len == 0 && server->sentinel_password.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"passkey_redis\": sentinel_password_file= "
                           "needs sentinel=");
        return NGX_ERROR;
    }

    if (tls->cluster) {
        return ngx_http_passkey_redis_seeds(cf, first, server, tls);
    }

    if (server->sentinel.len == 0) {
        if (server->sentinels) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"passkey_redis\" names several addresses: "
                               "sentinels (sentinel=) or a cluster's nodes "
                               "(cluster)");
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (server->addr.sockaddr
        && server->addr.sockaddr->sa_family == AF_UNIX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid sentinel \"%V\" in \"passkey_redis\": "
                           "expected host:port", first);
        return NGX_ERROR;
    }

#if (NGX_SSL)
    if (tls->tls && server->tls_name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"passkey_redis\" with sentinel= and TLS needs "
                           "tls_name=: the master's address is not known "
                           "until run time");
        return NGX_ERROR;
    }
#endif

    if (ngx_http_passkey_redis_sentinel(cf, first, server) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the first address is asked first */

    addr = server->sentinels->elts;
    last = addr[server->sentinels->nelts - 1];
    addr[server->sentinels->nelts - 1] = addr[0];
    addr[0] = last;

    /* logs name the master */

    server->name = server->sentinel;

    return NGX_OK;
}


/*
 * cluster: the first address, as written (a name is resolved), and the
 * others, numeric, are asked for the cluster's nodes.  A cluster has
 * database 0 only, and its nodes are known by address.
 */

static ngx_int_t
ngx_http_passkey_redis_seeds(ngx_conf_t *cf, ngx_str_t *first,
    ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_tls_t *tls)
{
    char        *error;
    ngx_uint_t   i;
    ngx_addr_t  *seed;

    error = NULL;

    if (server->sentinel.len) {
        error = "cluster and sentinel= exclude each other";

    } else if (server->database) {
        error = "a cluster has database 0 only";

    } else if (server->addr.sockaddr
               && server->addr.sockaddr->sa_family == AF_UNIX)
    {
        error = "a cluster is reached over TCP";

#if (NGX_SSL)
    } else if (tls->tls && server->host.len == 0
               && server->tls_name.len == 0)
    {
        error = "cluster with TLS needs tls_name=: the nodes are known by "
                "address";
#endif
    }

    if (error) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"passkey_redis\" \"%V\": "
                           "%s", first, error);
        return NGX_ERROR;
    }

    server->seeds = server->sentinels;
    server->sentinels = NULL;

    if (server->seeds) {
        seed = server->seeds->elts;

        for (i = 0; i < server->seeds->nelts; i++) {
            if (seed[i].sockaddr == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid address \"%V\" in "
                                   "\"passkey_redis\": a cluster's nodes "
                                   "after the first are a numeric IP "
                                   "address and port", &seed[i].name);
                return NGX_ERROR;
            }
        }
    }

    if (server->seeds == NULL) {
        server->seeds = ngx_array_create(cf->pool, 1, sizeof(ngx_addr_t));
        if (server->seeds == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* the context of TLS connections to the server, made once here */

static ngx_int_t
ngx_http_passkey_redis_tls(ngx_conf_t *cf,
    ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_tls_t *tls)
{
#if (NGX_SSL)
    ngx_str_t            name;
    ngx_ssl_t           *ssl;
    ngx_pool_cleanup_t  *cln;
    u_char               text[NGX_SOCKADDR_STRLEN];
#endif

    if (!tls->tls) {
        if (tls->trusted.len || tls->certificate.len
            || tls->certificate_key.len
#if (NGX_SSL)
            || server->tls_name.len
#endif
            )
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"passkey_redis\" \"%V\" has tls_ "
                               "parameters but no \"tls\" (or rediss://)",
                               &server->name);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

#if !(NGX_SSL)

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"passkey_redis\" \"%V\": TLS needs an nginx built "
                       "with SSL", &server->name);
    return NGX_ERROR;

#else

    if (server->addr.sockaddr && server->addr.sockaddr->sa_family == AF_UNIX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"passkey_redis\" \"%V\": Redis has no TLS on "
                           "unix sockets", &server->name);
        return NGX_ERROR;
    }

    if ((tls->certificate.len == 0) != (tls->certificate_key.len == 0)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"passkey_redis\" \"%V\": tls_certificate= and "
                           "tls_certificate_key= go together",
                           &server->name);
        return NGX_ERROR;
    }

    /* SNI and the name checked: the host, or the address, as written */

    if (server->tls_name.len == 0) {
        name = server->host;

        if (name.len == 0) {
            name.data = text;
            name.len = ngx_sock_ntop(server->addr.sockaddr,
                                     server->addr.socklen, text,
                                     NGX_SOCKADDR_STRLEN, 0);
        }

        server->tls_name.data = ngx_pnalloc(cf->pool, name.len + 1);
        if (server->tls_name.data == NULL) {
            return NGX_ERROR;
        }

        ngx_cpystrn(server->tls_name.data, name.data, name.len + 1);
        server->tls_name.len = name.len;
    }

    ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (ssl == NULL) {
        return NGX_ERROR;
    }

    ssl->log = cf->log;

    if (ngx_ssl_create(ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = ssl;

    if (tls->certificate.len
        && ngx_ssl_certificate(cf, ssl, &tls->certificate,
                               &tls->certificate_key, NULL)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (server->tls_verify) {
        if (tls->trusted.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"passkey_redis\" \"%V\" with TLS needs "
                               "tls_trusted_certificate= (or tls_verify=off)",
                               &server->name);
            return NGX_ERROR;
        }

        if (ngx_ssl_trusted_certificate(cf, ssl, &tls->trusted, 9)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_ssl_client_session_cache(cf, ssl, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    server->ssl = ssl;

    return NGX_OK;

#endif
}


/* locations naming the same server share one connection per worker */

static ngx_http_passkey_redis_server_t *
ngx_http_passkey_redis_server_add(ngx_conf_t *cf,
    ngx_http_passkey_redis_server_t *server)
{
    ngx_uint_t                         i;
    ngx_http_passkey_main_conf_t      *pmcf;
    ngx_http_passkey_redis_server_t  **servers, *s, **sp;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_passkey_module);

    servers = pmcf->redis_servers.elts;

    for (i = 0; i < pmcf->redis_servers.nelts; i++) {
        s = servers[i];

        if (s->key.len == server->key.len
            && ngx_strncmp(s->key.data, server->key.data, s->key.len) == 0
            && s->password.len == server->password.len
            && ngx_strncmp(s->password.data, server->password.data,
                           s->password.len) == 0)
        {
            return s;
        }
    }

    s = ngx_palloc(cf->pool, sizeof(ngx_http_passkey_redis_server_t));
    if (s == NULL) {
        return NULL;
    }

    *s = *server;

    sp = ngx_array_push(&pmcf->redis_servers);
    if (sp == NULL) {
        return NULL;
    }

    *sp = s;

    return s;
}

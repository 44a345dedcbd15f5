
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_passkey_fuzz.h"


static ngx_log_t         ngx_passkey_fuzz_log_object;
static ngx_open_file_t   ngx_passkey_fuzz_log_file;
static ngx_cycle_t       ngx_passkey_fuzz_cycle;
static ngx_conf_file_t   ngx_passkey_fuzz_conf_file;
static ngx_pool_t       *ngx_passkey_fuzz_cycle_pool;
static u_char            ngx_passkey_fuzz_dir[] =
                             "/tmp/ngx-passkey-fuzz.XXXXXX";

ngx_log_t  *ngx_passkey_fuzz_log;
ngx_str_t   ngx_passkey_fuzz_prefix;


static void ngx_passkey_fuzz_file(char *name, char *text, mode_t mode);
static void ngx_passkey_fuzz_exit(void);


/*
 * What nginx's main() does before it reads a configuration, as far as
 * the module's code needs it.  The log goes to /dev/null at the debug
 * level, so that every message is formatted (a "%V" of a bad length
 * shows), unless NGX_PASSKEY_FUZZ_LOG is set: then to standard error.
 */

void
ngx_passkey_fuzz_init(void)
{
    ngx_log_t    *log;
    ngx_pool_t   *pool;
    ngx_cycle_t  *cycle;

    if (ngx_passkey_fuzz_log != NULL) {
        return;
    }

    ngx_pagesize = getpagesize();
    ngx_cacheline_size = NGX_CPU_CACHE_LINE;

    for (ngx_pagesize_shift = 0; (ngx_pagesize >> ngx_pagesize_shift) > 1;
         ngx_pagesize_shift++)
    {
        /* void */
    }

    if (ngx_strerror_init() != NGX_OK) {
        abort();
    }

    ngx_time_init();

    /* the modules' names and indexes, as nginx numbers them at start */

    if (ngx_preinit_modules() != NGX_OK) {
        abort();
    }

    log = &ngx_passkey_fuzz_log_object;
    log->file = &ngx_passkey_fuzz_log_file;
    log->log_level = NGX_LOG_DEBUG | NGX_LOG_DEBUG_ALL;

    if (getenv("NGX_PASSKEY_FUZZ_LOG") != NULL) {
        ngx_passkey_fuzz_log_file.fd = ngx_stderr;

    } else {
        ngx_passkey_fuzz_log_file.fd = open("/dev/null", O_WRONLY);
        if (ngx_passkey_fuzz_log_file.fd == NGX_INVALID_FILE) {
            abort();
        }
    }

    ngx_str_set(&ngx_passkey_fuzz_log_file.name, "fuzz.log");

    /* no copy of every message on stderr, as at nginx's start */
    ngx_use_stderr = 0;

    ngx_passkey_fuzz_log = log;

#if (NGX_SSL)
    if (ngx_ssl_init(log) != NGX_OK) {
        abort();
    }
#endif

    pool = ngx_create_pool(NGX_CYCLE_POOL_SIZE, log);
    if (pool == NULL) {
        abort();
    }

    /*
     * the configuration's directory, whose files are a secret (mode 0600)
     * and one that others may read
     */

    if (mkdtemp((char *) ngx_passkey_fuzz_dir) == NULL) {
        abort();
    }

    atexit(ngx_passkey_fuzz_exit);

    ngx_passkey_fuzz_prefix.len = sizeof(ngx_passkey_fuzz_dir);
    ngx_passkey_fuzz_prefix.data = ngx_alloc(ngx_passkey_fuzz_prefix.len + 1,
                                             log);
    if (ngx_passkey_fuzz_prefix.data == NULL) {
        abort();
    }

    ngx_sprintf(ngx_passkey_fuzz_prefix.data, "%s/%Z", ngx_passkey_fuzz_dir);

    ngx_passkey_fuzz_file("secret", "s3cr3t-value\n", 0600);
    ngx_passkey_fuzz_file("public", "s3cr3t-value\n", 0644);

    cycle = &ngx_passkey_fuzz_cycle;
    cycle->pool = pool;
    cycle->log = log;
    cycle->modules = ngx_modules;
    cycle->prefix = ngx_passkey_fuzz_prefix;
    cycle->conf_prefix = ngx_passkey_fuzz_prefix;
    ngx_str_set(&cycle->conf_file, "nginx.conf");

    ngx_cycle = cycle;
    ngx_passkey_fuzz_cycle_pool = pool;

    ngx_str_set(&ngx_passkey_fuzz_conf_file.file.name,
                "/nonexistent/conf/nginx.conf");
    ngx_passkey_fuzz_conf_file.line = 1;

    /* the module's contexts come first and second in the arrays below */

    ngx_http_core_module.ctx_index = 0;
    ngx_http_passkey_module.ctx_index = 1;
    ngx_http_max_module = 2;
}


/*
 * A pool for one input, which is also the cycle's while the input runs:
 * nginx allocates names of files and Redis nodes from the cycle's pool,
 * which would grow with every input.
 */

ngx_pool_t *
ngx_passkey_fuzz_pool(void)
{
    ngx_pool_t  *pool;

    pool = ngx_create_pool(1024, ngx_passkey_fuzz_log);
    if (pool == NULL) {
        abort();
    }

    ngx_passkey_fuzz_cycle.pool = pool;

    return pool;
}


void
ngx_passkey_fuzz_done(ngx_pool_t *pool)
{
    ngx_passkey_fuzz_cycle.pool = ngx_passkey_fuzz_cycle_pool;

    ngx_destroy_pool(pool);
}


/* a file in the configuration's directory, as the harness writes it */

void
ngx_passkey_fuzz_write(char *name, u_char *data, size_t len, mode_t mode)
{
    u_char     path[NGX_MAX_PATH];
    ngx_fd_t   fd;

    ngx_snprintf(path, sizeof(path), "%V%s%Z", &ngx_passkey_fuzz_prefix,
                 name);

    fd = open((char *) path, O_WRONLY | O_CREAT | O_TRUNC, mode);

    if (fd == NGX_INVALID_FILE
        || fchmod(fd, mode) == -1
        || (len && write(fd, data, len) != (ssize_t) len)
        || close(fd) == -1)
    {
        abort();
    }
}


static void
ngx_passkey_fuzz_file(char *name, char *text, mode_t mode)
{
    ngx_passkey_fuzz_write(name, (u_char *) text, ngx_strlen(text), mode);
}


static void
ngx_passkey_fuzz_exit(void)
{
    DIR            *dir;
    u_char          path[NGX_MAX_PATH];
    struct dirent  *de;

    dir = opendir((char *) ngx_passkey_fuzz_dir);
    if (dir == NULL) {
        return;
    }

    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }

        ngx_snprintf(path, sizeof(path), "%s/%s%Z", ngx_passkey_fuzz_dir,
                     de->d_name);
        (void) unlink((char *) path);
    }

    (void) closedir(dir);
    (void) rmdir((char *) ngx_passkey_fuzz_dir);
}


u_char *
ngx_passkey_fuzz_copy(ngx_pool_t *pool, const u_char *data, size_t len,
    ngx_uint_t nul)
{
    u_char  *p;

    /* malloc(0) may give NULL: one byte, never read, for an empty copy */

    p = ngx_pnalloc(pool, (len + nul) ? len + nul : 1);
    if (p == NULL) {
        abort();
    }

    if (len) {
        ngx_memcpy(p, data, len);
    }

    if (nul) {
        p[len] = '\0';
    }

    return p;
}


ngx_int_t
ngx_passkey_fuzz_line(ngx_pool_t *pool, const u_char **p, const u_char *last,
    ngx_str_t *line, ngx_uint_t nul)
{
    const u_char  *eol;

    if (*p >= last) {
        return NGX_DECLINED;
    }

    eol = ngx_strlchr((u_char *) *p, (u_char *) last, '\n');
    if (eol == NULL) {
        eol = last;
    }

    line->len = eol - *p;
    line->data = ngx_passkey_fuzz_copy(pool, *p, line->len, nul);

    *p = (eol < last) ? eol + 1 : last;

    return NGX_OK;
}


ngx_passkey_fuzz_request_t *
ngx_passkey_fuzz_request(ngx_pool_t *pool)
{
    ngx_conf_t                   *cf;
    ngx_http_module_t            *module;
    ngx_http_request_t           *r;
    ngx_passkey_fuzz_request_t   *fr;
    ngx_http_passkey_loc_conf_t  *prev;

    fr = ngx_pcalloc(pool, sizeof(ngx_passkey_fuzz_request_t));
    if (fr == NULL) {
        abort();
    }

    /* the location's configuration: the module's defaults, merged */

    cf = ngx_passkey_fuzz_conf(pool);
    module = ngx_http_passkey_module.ctx;

    fr->pmcf = ((ngx_http_conf_ctx_t *) cf->ctx)->main_conf[1];
    fr->plcf = module->create_loc_conf(cf);
    prev = module->create_loc_conf(cf);

    if (fr->plcf == NULL || prev == NULL
        || module->merge_loc_conf(cf, prev, fr->plcf) != NGX_CONF_OK)
    {
        abort();
    }

    ngx_str_set(&fr->clcf.name, "/passkey/bind");

    fr->main_conf[0] = ((ngx_http_conf_ctx_t *) cf->ctx)->main_conf[0];
    fr->main_conf[1] = fr->pmcf;
    fr->loc_conf[0] = &fr->clcf;
    fr->loc_conf[1] = fr->plcf;

    fr->c.log = ngx_passkey_fuzz_log;
    fr->c.pool = pool;
    fr->c.fd = (ngx_socket_t) -1;
    ngx_str_set(&fr->c.addr_text, "192.0.2.1");

    r = &fr->r;
    r->signature = NGX_HTTP_MODULE;
    r->connection = &fr->c;
    r->pool = pool;
    r->main = r;
    r->main_conf = fr->main_conf;
    r->loc_conf = fr->loc_conf;
    r->ctx = fr->ctx;
    r->method = NGX_HTTP_POST;
    ngx_str_set(&r->method_name, "POST");
    ngx_str_set(&r->http_protocol, "HTTP/1.1");
    ngx_str_set(&r->uri, "/passkey/bind");
    r->unparsed_uri = r->uri;
    r->request_line.len = sizeof("POST /passkey/bind HTTP/1.1") - 1;
    r->request_line.data = (u_char *) "POST /passkey/bind HTTP/1.1";

    if (ngx_list_init(&r->headers_in.headers, pool, 4,
                      sizeof(ngx_table_elt_t))
        != NGX_OK
        || ngx_list_init(&r->headers_out.headers, pool, 4,
                         sizeof(ngx_table_elt_t))
           != NGX_OK)
    {
        abort();
    }

    r->headers_in.content_length_n = -1;
    r->headers_out.content_length_n = -1;

    return fr;
}


/*
 * As ngx_http_process_request_headers() stores a header: the name and
 * the value without the spaces around it, each followed by a NUL, and
 * Host and Referer also in their own fields.
 */

ngx_int_t
ngx_passkey_fuzz_header(ngx_http_request_t *r, ngx_str_t *line)
{
    u_char           *colon, *p, *last;
    ngx_table_elt_t  *h;

    colon = ngx_strlchr(line->data, line->data + line->len, ':');
    if (colon == NULL || colon == line->data) {
        return NGX_DECLINED;
    }

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        abort();
    }

    h->hash = 1;
    h->key.len = colon - line->data;
    h->key.data = ngx_passkey_fuzz_copy(r->pool, line->data, h->key.len, 1);

    p = colon + 1;
    last = line->data + line->len;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
        last--;
    }

    h->value.len = last - p;
    h->value.data = ngx_passkey_fuzz_copy(r->pool, p, h->value.len, 1);
    h->lowcase_key = ngx_passkey_fuzz_copy(r->pool, h->key.data, h->key.len,
                                           1);
    ngx_strlow(h->lowcase_key, h->key.data, h->key.len);

#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    if (h->key.len == 4
        && ngx_strncmp(h->lowcase_key, "host", 4) == 0
        && r->headers_in.host == NULL)
    {
        r->headers_in.host = h;

    } else if (h->key.len == 7
               && ngx_strncmp(h->lowcase_key, "referer", 7) == 0
               && r->headers_in.referer == NULL)
    {
        r->headers_in.referer = h;
    }

    return NGX_OK;
}


ngx_http_complex_value_t *
ngx_passkey_fuzz_value(ngx_pool_t *pool, ngx_str_t *text)
{
    ngx_http_complex_value_t  *cv;

    cv = ngx_pcalloc(pool, sizeof(ngx_http_complex_value_t));
    if (cv == NULL) {
        abort();
    }

    cv->value = *text;

    return cv;
}


/*
 * The configuration of an http{} block being read, as far as a location's
 * directives reach: the http core module's and the passkey module's
 * contexts, made by their create handlers.
 */

ngx_conf_t *
ngx_passkey_fuzz_conf(ngx_pool_t *pool)
{
    void                 **main_conf, **srv_conf, **loc_conf;
    ngx_conf_t            *cf;
    ngx_http_module_t     *module;
    ngx_http_conf_ctx_t   *ctx;

    cf = ngx_pcalloc(pool, sizeof(ngx_conf_t));
    ctx = ngx_pcalloc(pool, sizeof(ngx_http_conf_ctx_t));
    main_conf = ngx_pcalloc(pool, 2 * sizeof(void *));
    srv_conf = ngx_pcalloc(pool, 2 * sizeof(void *));
    loc_conf = ngx_pcalloc(pool, 2 * sizeof(void *));

    if (cf == NULL || ctx == NULL || main_conf == NULL || srv_conf == NULL
        || loc_conf == NULL)
    {
        abort();
    }

    cf->pool = pool;
    cf->temp_pool = pool;
    cf->log = ngx_passkey_fuzz_log;
    cf->cycle = (ngx_cycle_t *) ngx_cycle;
    cf->conf_file = &ngx_passkey_fuzz_conf_file;
    cf->module_type = NGX_HTTP_MODULE;
    cf->cmd_type = NGX_HTTP_LOC_CONF;
    cf->ctx = ctx;

    ctx->main_conf = main_conf;
    ctx->srv_conf = srv_conf;
    ctx->loc_conf = loc_conf;

    /* the core module's main and location contexts, zeroed */

    main_conf[0] = ngx_pcalloc(pool, sizeof(ngx_http_core_main_conf_t));
    srv_conf[0] = ngx_pcalloc(pool, sizeof(ngx_http_core_srv_conf_t));
    loc_conf[0] = ngx_pcalloc(pool, sizeof(ngx_http_core_loc_conf_t));

    module = ngx_http_passkey_module.ctx;

    main_conf[1] = module->create_main_conf(cf);
    loc_conf[1] = module->create_loc_conf(cf);

    if (main_conf[0] == NULL || srv_conf[0] == NULL || loc_conf[0] == NULL
        || main_conf[1] == NULL || loc_conf[1] == NULL)
    {
        abort();
    }

    cf->args = ngx_array_create(pool, 8, sizeof(ngx_str_t));
    if (cf->args == NULL) {
        abort();
    }

    return cf;
}


void
ngx_passkey_fuzz_failed(const char *file, int line, const char *expr)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
    abort();
}

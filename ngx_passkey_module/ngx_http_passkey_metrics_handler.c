
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"
#include "ngx_http_passkey_token.h"


/*
 * passkey_metrics: the counters of the passkey_metrics zone, as
 * Prometheus text (exposition format 0.0.4).  Counters and histograms
 * appear once they count something; the token refreshes and the claims
 * held always do.
 */


/* room for a line: every label value is cut to LABEL_MAX bytes */
#define NGX_HTTP_PASSKEY_METRICS_LINE       1024
#define NGX_HTTP_PASSKEY_METRICS_LABEL_MAX  256
#define NGX_HTTP_PASSKEY_METRICS_BUF        8192


typedef struct {
    ngx_pool_t                       *pool;
    ngx_chain_t                      *out;
    ngx_chain_t                     **last;
    ngx_buf_t                        *buf;
    off_t                             size;
} ngx_http_passkey_metrics_text_t;


/* a series of each Redis server, shown once its flag is set */
typedef struct {
    char                             *name;
    char                             *type;
    char                             *help;
    size_t                            value;    /* offsets in a server */
    size_t                            shown;
    ngx_uint_t                        sign;     /* may go below zero */
} ngx_http_passkey_metrics_series_t;


static ngx_int_t ngx_http_passkey_metrics_requests(
    ngx_http_passkey_metrics_text_t *t, ngx_http_passkey_metrics_sh_t *sh);
static ngx_int_t ngx_http_passkey_metrics_api_calls(
    ngx_http_passkey_metrics_text_t *t, ngx_http_passkey_metrics_sh_t *sh);
static ngx_int_t ngx_http_passkey_metrics_redis(
    ngx_http_passkey_metrics_text_t *t, ngx_http_passkey_metrics_sh_t *sh,
    ngx_array_t *servers);
static ngx_int_t ngx_http_passkey_metrics_redis_gauges(
    ngx_http_passkey_metrics_text_t *t, ngx_http_passkey_metrics_sh_t *sh,
    ngx_str_t *labels, ngx_uint_t n);
static ngx_int_t ngx_http_passkey_metrics_counters(
    ngx_http_passkey_metrics_text_t *t, char *name, char *label,
    ngx_str_t *value, char *label2, ngx_str_t *values, ngx_atomic_t *a,
    ngx_uint_t n);
static ngx_int_t ngx_http_passkey_metrics_tokens(
    ngx_http_passkey_metrics_text_t *t, ngx_http_passkey_metrics_sh_t *sh,
    ngx_array_t *tokens);
static ngx_int_t ngx_http_passkey_metrics_histogram(
    ngx_http_passkey_metrics_text_t *t, char *name, char *label,
    ngx_str_t *value, ngx_http_passkey_metrics_hist_t *h, ngx_msec_t *bounds);
static ngx_int_t ngx_http_passkey_metrics_family(
    ngx_http_passkey_metrics_text_t *t, char *name, char *type, char *help);
static ngx_int_t ngx_http_passkey_metrics_printf(
    ngx_http_passkey_metrics_text_t *t, const char *fmt, ...);
static u_char *ngx_http_passkey_metrics_seconds(u_char *p, ngx_msec_t ms);
static ngx_int_t ngx_http_passkey_metrics_label(ngx_pool_t *pool,
    ngx_str_t *in, ngx_str_t *out);


#define ngx_http_passkey_metrics_server(field)                               \
    offsetof(ngx_http_passkey_metrics_server_t, field)

/*
 * up: the last command's outcome; the others come from the Redis
 * transport, once it reports (hooked)
 */
static ngx_http_passkey_metrics_series_t  ngx_http_passkey_metrics_gauges[] = {

    { "passkey_redis_up", "gauge",
      "1 if the last Redis command that did not time out got a reply, 0 if "
      "it found the server unavailable.",
      ngx_http_passkey_metrics_server(up),
      ngx_http_passkey_metrics_server(seen), 0 },

    { "passkey_redis_connections", "gauge",
      "Connections open to the Redis server now, of all workers.",
      ngx_http_passkey_metrics_server(connections),
      ngx_http_passkey_metrics_server(hooked), 1 },

    { "passkey_redis_connects_total", "counter",
      "Connections made to the Redis server, reconnections included.",
      ngx_http_passkey_metrics_server(connects),
      ngx_http_passkey_metrics_server(hooked), 0 },

    { "passkey_redis_connect_failures_total", "counter",
      "Attempts to connect to the Redis server that failed.",
      ngx_http_passkey_metrics_server(connect_failures),
      ngx_http_passkey_metrics_server(hooked), 0 },

    { NULL, NULL, NULL, 0, 0, 0 }
};


ngx_int_t
ngx_http_passkey_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_http_passkey_main_conf_t     *pmcf;
    ngx_http_passkey_metrics_sh_t    *sh;
    ngx_http_passkey_metrics_text_t   t;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_passkey_send_not_allowed(r, "GET, HEAD");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sh = ngx_http_passkey_metrics_zone(r);
    if (sh == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_passkey_module);

    ngx_memzero(&t, sizeof(ngx_http_passkey_metrics_text_t));
    t.pool = r->pool;
    t.last = &t.out;

    if (ngx_http_passkey_metrics_requests(&t, sh) != NGX_OK
        || ngx_http_passkey_metrics_api_calls(&t, sh) != NGX_OK
        || ngx_http_passkey_metrics_redis(&t, sh, &pmcf->redis_servers)
           != NGX_OK
        || ngx_http_passkey_metrics_tokens(&t, sh, &pmcf->tokens) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    t.buf->last_buf = (r == r->main) ? 1 : 0;
    t.buf->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = t.size;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ngx_http_passkey_add_header(r, "Cache-Control", "no-store")
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, t.out);
}


static ngx_int_t
ngx_http_passkey_metrics_requests(ngx_http_passkey_metrics_text_t *t,
    ngx_http_passkey_metrics_sh_t *sh)
{
    ngx_uint_t  e;

    if (ngx_http_passkey_metrics_family(t, "passkey_requests_total",
            "counter", "Requests to passkey endpoints, by endpoint and "
            "HTTP status.")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (e = 0; e < NGX_HTTP_PASSKEY_METRICS_ENDPOINTS; e++) {
        if (ngx_http_passkey_metrics_counters(t, "passkey_requests_total",
                "endpoint", &ngx_http_passkey_metrics_endpoints[e], "status",
                NULL, sh->requests[e], NGX_HTTP_PASSKEY_METRICS_STATUSES)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_passkey_metrics_family(t, "passkey_problems_total",
            "counter", "Problem answers of passkey endpoints, by endpoint "
            "and code.")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (e = 0; e < NGX_HTTP_PASSKEY_METRICS_ENDPOINTS; e++) {
        if (ngx_http_passkey_metrics_counters(t, "passkey_problems_total",
                "endpoint", &ngx_http_passkey_metrics_endpoints[e], "code",
                ngx_http_passkey_metrics_codes, sh->problems[e],
                NGX_HTTP_PASSKEY_METRICS_CODES)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_passkey_metrics_family(t, "passkey_claims_held", "gauge",
            "Idempotency claims and duplicate locks that requests of this "
            "nginx hold in Redis now.")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_passkey_metrics_printf(t, "passkey_claims_held %A\n",
                                           (ngx_atomic_int_t) sh->claims);
}


static ngx_int_t
ngx_http_passkey_metrics_api_calls(ngx_http_passkey_metrics_text_t *t,
    ngx_http_passkey_metrics_sh_t *sh)
{
    ngx_uint_t     route;
    ngx_atomic_t  *a;

    if (ngx_http_passkey_metrics_family(t, "passkey_api_calls_total",
            "counter", "Calls to the Beyond Identity API, by route and "
            "HTTP status, or how a call without an answer failed.")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (route = 0; route < NGX_HTTP_PASSKEY_METRICS_ROUTES; route++) {
        a = sh->api_calls[route];

        if (ngx_http_passkey_metrics_counters(t, "passkey_api_calls_total",
                "route", &ngx_http_passkey_metrics_routes[route], "status",
                NULL, a, NGX_HTTP_PASSKEY_METRICS_STATUSES)
            != NGX_OK
            || ngx_http_passkey_metrics_counters(t, "passkey_api_calls_total",
                   "route", &ngx_http_passkey_metrics_routes[route],
                   "status", ngx_http_passkey_metrics_api_failures,
                   a + NGX_HTTP_PASSKEY_METRICS_STATUSES,
                   NGX_HTTP_PASSKEY_METRICS_API_FAILURES)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_passkey_metrics_family(t,
            "passkey_api_call_duration_seconds", "histogram",
            "Time from the start of an API call to its end, by route.")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (route = 0; route < NGX_HTTP_PASSKEY_METRICS_ROUTES; route++) {
        if (ngx_http_passkey_metrics_histogram(t,
                "passkey_api_call_duration_seconds", "route",
                &ngx_http_passkey_metrics_routes[route],
                &sh->api_latency[route], ngx_http_passkey_metrics_api_bounds)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_passkey_metrics_redis(ngx_http_passkey_metrics_text_t *t,
    ngx_http_passkey_metrics_sh_t *sh, ngx_array_t *servers)
{
    u_char                            *p;
    ngx_str_t                         *labels;
    ngx_uint_t                         i, j, n;
    ngx_http_passkey_redis_server_t  **server;

    server = servers->elts;
    n = ngx_min(servers->nelts, sh->nservers);

    /* the server as configured; one written twice gets its position */

    labels = ngx_pcalloc(t->pool, (n + 1) * sizeof(ngx_str_t));
    if (labels == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_passkey_metrics_label(t->pool, &server[i]->name,
                                           &labels[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        for (j = 0; j < i; j++) {
            if (labels[j].len == labels[i].len
                && ngx_strncmp(labels[j].data, labels[i].data, labels[i].len)
                   == 0)
            {
                p = ngx_pnalloc(t->pool, labels[i].len + 1 + NGX_INT_T_LEN);
                if (p == NULL) {
                    return NGX_ERROR;
                }

                labels[i].len = ngx_sprintf(p, "%V#%ui", &labels[i], i + 1)
                                - p;
                labels[i].data = p;
                break;
            }
        }
    }

    if (ngx_http_passkey_metrics_family(t, "passkey_redis_commands_total",
            "counter", "Redis commands that requests wait for, by server "
            "and result.")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_passkey_metrics_counters(t,
                "passkey_redis_commands_total", "server", &labels[i],
                "result", ngx_http_passkey_metrics_redis_results,
                sh->servers[i].commands,
                NGX_HTTP_PASSKEY_METRICS_REDIS_RESULTS)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_passkey_metrics_family(t,
            "passkey_redis_command_duration_seconds", "histogram",
            "Time from sending a Redis command to its reply or failure, "
            "by server.")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_passkey_metrics_histogram(t,
                "passkey_redis_command_duration_seconds", "server",
                &labels[i], &sh->servers[i].latency,
                ngx_http_passkey_metrics_redis_bounds)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_passkey_metrics_redis_gauges(t, sh, labels, n);
}


static ngx_int_t
ngx_http_passkey_metrics_redis_gauges(ngx_http_passkey_metrics_text_t *t,
    ngx_http_passkey_metrics_sh_t *sh, ngx_str_t *labels, ngx_uint_t n)
{
    u_char                             *ms;
    ngx_int_t                           rc;
    ngx_uint_t                          i;
    ngx_atomic_t                        v;
    ngx_http_passkey_metrics_series_t  *s;

    for (s = ngx_http_passkey_metrics_gauges; s->name; s++) {

        if (ngx_http_passkey_metrics_family(t, s->name, s->type, s->help)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        for (i = 0; i < n; i++) {
            ms = (u_char *) &sh->servers[i];

            if (*(ngx_atomic_t *) (ms + s->shown) == 0) {
                continue;
            }

            v = *(ngx_atomic_t *) (ms + s->value);

            if (s->sign) {
                rc = ngx_http_passkey_metrics_printf(t, "%s{server=\"%V\"} "
                         "%A\n", s->name, &labels[i], (ngx_atomic_int_t) v);

            } else {
                rc = ngx_http_passkey_metrics_printf(t, "%s{server=\"%V\"} "
                         "%uA\n", s->name, &labels[i], v);
            }

            if (rc != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_passkey_metrics_tokens(ngx_http_passkey_metrics_text_t *t,
    ngx_http_passkey_metrics_sh_t *sh, ngx_array_t *tokens)
{
    u_char                     *p;
    ngx_int_t                   rc;
    ngx_uint_t                  i, n, *valid;
    ngx_msec_t                 *age;
    ngx_str_t                  *client;
    ngx_http_passkey_token_t  **token;
    u_char                      buf[NGX_INT_T_LEN + 4];

    if (ngx_http_passkey_metrics_family(t, "passkey_token_refreshes_total",
            "counter", "Access token requests to the token endpoint, by "
            "result.")
        != NGX_OK
        || ngx_http_passkey_metrics_printf(t,
               "passkey_token_refreshes_total{result=\"ok\"} %uA\n"
               "passkey_token_refreshes_total{result=\"failed\"} %uA\n",
               sh->token_refreshes[1], sh->token_refreshes[0])
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* each set of credentials whose token was fetched, by its position */

    n = tokens->nelts;
    token = tokens->elts;

    age = ngx_pcalloc(t->pool, (n + 1) * sizeof(ngx_msec_t));
    valid = ngx_pcalloc(t->pool, (n + 1) * sizeof(ngx_uint_t));
    client = ngx_pcalloc(t->pool, (n + 1) * sizeof(ngx_str_t));

    if (age == NULL || valid == NULL || client == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (!ngx_http_passkey_token_renewable(token[i])) {
            continue;
        }

        rc = ngx_http_passkey_token_age(token[i], &age[i], &valid[i]);

        if (rc == NGX_DECLINED) {
            continue;
        }

        if (rc != NGX_OK
            || ngx_http_passkey_metrics_label(t->pool, &token[i]->client_id,
                                              &client[i])
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_passkey_metrics_family(t, "passkey_token_age_seconds",
            "gauge", "Time since the access token of a set of credentials "
            "was fetched, by any worker.")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (client[i].data == NULL) {
            continue;
        }

        p = ngx_http_passkey_metrics_seconds(buf, age[i]);

        if (ngx_http_passkey_metrics_printf(t,
                "passkey_token_age_seconds{token=\"%ui\",client_id=\"%V\"} "
                "%*s\n", i, &client[i], (size_t) (p - buf), buf)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_passkey_metrics_family(t, "passkey_token_valid", "gauge",
            "1 if the access token of a set of credentials is valid now.")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (client[i].data != NULL
            && ngx_http_passkey_metrics_printf(t,
                   "passkey_token_valid{token=\"%ui\",client_id=\"%V\"} "
                   "%ui\n", i, &client[i], valid[i])
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * name{label="value",label2="..."} for each of the n counters that counted
 * something: label2's value is values[i], or i (an HTTP status) without
 * values
 */

static ngx_int_t
ngx_http_passkey_metrics_counters(ngx_http_passkey_metrics_text_t *t,
    char *name, char *label, ngx_str_t *value, char *label2,
    ngx_str_t *values, ngx_atomic_t *a, ngx_uint_t n)
{
    ngx_str_t   v;
    ngx_uint_t  i;
    u_char      status[NGX_INT_T_LEN];

    for (i = 0; i < n; i++) {
        if (a[i] == 0) {
            continue;
        }

        if (values != NULL) {
            v = values[i];

        } else {
            v.data = status;
            v.len = ngx_sprintf(status, "%ui", i) - status;
        }

        if (ngx_http_passkey_metrics_printf(t, "%s{%s=\"%V\",%s=\"%V\"} "
                "%uA\n", name, label, value, label2, &v, a[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_passkey_metrics_histogram(ngx_http_passkey_metrics_text_t *t,
    char *name, char *label, ngx_str_t *value,
    ngx_http_passkey_metrics_hist_t *h, ngx_msec_t *bounds)
{
    u_char            *p;
    ngx_uint_t         i;
    ngx_atomic_uint_t  n;
    u_char             le[NGX_INT_T_LEN + 4];

    if (h->count == 0) {
        return NGX_OK;
    }

    /* the buckets hold their own counts; Prometheus wants them summed */

    n = 0;

    for (i = 0; i < NGX_HTTP_PASSKEY_METRICS_BUCKETS; i++) {
        n += h->buckets[i];
        p = ngx_http_passkey_metrics_seconds(le, bounds[i]);

        if (ngx_http_passkey_metrics_printf(t,
                "%s_bucket{%s=\"%V\",le=\"%*s\"} %uA\n", name, label, value,
                (size_t) (p - le), le, n)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    n += h->buckets[i];
    p = ngx_http_passkey_metrics_seconds(le, h->sum);

    return ngx_http_passkey_metrics_printf(t,
               "%s_bucket{%s=\"%V\",le=\"+Inf\"} %uA\n"
               "%s_sum{%s=\"%V\"} %*s\n"
               "%s_count{%s=\"%V\"} %uA\n",
               name, label, value, n,
               name, label, value, (size_t) (p - le), le,
               name, label, value, n);
}


static ngx_int_t
ngx_http_passkey_metrics_family(ngx_http_passkey_metrics_text_t *t,
    char *name, char *type, char *help)
{
    return ngx_http_passkey_metrics_printf(t, "# HELP %s %s\n# TYPE %s %s\n",
                                           name, help, name, type);
}


static ngx_int_t
ngx_http_passkey_metrics_printf(ngx_http_passkey_metrics_text_t *t,
    const char *fmt, ...)
{
    u_char       *p;
    va_list       args;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = t->buf;

    if (b == NULL || b->end - b->last < NGX_HTTP_PASSKEY_METRICS_LINE) {
        b = ngx_create_temp_buf(t->pool, NGX_HTTP_PASSKEY_METRICS_BUF);
        if (b == NULL) {
            return NGX_ERROR;
        }

        cl = ngx_alloc_chain_link(t->pool);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        cl->buf = b;
        cl->next = NULL;

        *t->last = cl;
        t->last = &cl->next;
        t->buf = b;
    }

    va_start(args, fmt);
    p = ngx_vslprintf(b->last, b->last + NGX_HTTP_PASSKEY_METRICS_LINE, fmt,
                      args);
    va_end(args);

    t->size += p - b->last;
    b->last = p;

    return NGX_OK;
}


/* ms as seconds, without trailing zeros: "0.005", "2.5", "10" */

static u_char *
ngx_http_passkey_metrics_seconds(u_char *p, ngx_msec_t ms)
{
    p = ngx_sprintf(p, "%ui", (ngx_uint_t) (ms / 1000));

    if (ms % 1000 == 0) {
        return p;
    }

    p = ngx_sprintf(p, ".%03ui", (ngx_uint_t) (ms % 1000));

    while (p[-1] == '0') {
        p--;
    }

    return p;
}


/*
 * A label value from the configuration, escaped as the text format wants
 * (backslash, double quote, line feed) and cut to LABEL_MAX bytes.
 */

static ngx_int_t
ngx_http_passkey_metrics_label(ngx_pool_t *pool, ngx_str_t *in,
    ngx_str_t *out)
{
    u_char      *p, c;
    ngx_uint_t   i;

    p = ngx_pnalloc(pool, NGX_HTTP_PASSKEY_METRICS_LABEL_MAX);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;

    for (i = 0; i < in->len; i++) {
        c = in->data[i];

        if (p - out->data > NGX_HTTP_PASSKEY_METRICS_LABEL_MAX - 2) {
            break;
        }

        if (c == '\\' || c == '"') {
            *p++ = '\\';
            *p++ = c;

        } else if (c == '\n') {
            *p++ = '\\';
            *p++ = 'n';

        } else {
            *p++ = c;
        }
    }

    out->len = p - out->data;

    return NGX_OK;
}

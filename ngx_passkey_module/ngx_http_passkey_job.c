
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * The job record kept in Redis, and what the handlers share about it:
 * where a job lives, how a new one is written, how a request's command
 * goes to Redis, how times are written and read, which states are final,
 * and which of the API's values may be stored.
 */


#define NGX_HTTP_PASSKEY_JOB_TTL_DEFAULT  (7 * 86400)


static ngx_http_passkey_loc_conf_t *ngx_http_passkey_redis_op(
    ngx_http_request_t *r, ngx_http_passkey_redis_op_t *op,
    ngx_http_passkey_redis_done_pt handler, void *data);
static ngx_int_t ngx_http_passkey_valid_chars(ngx_str_t *s, size_t max,
    char *extra);


/*
 * KEYS[1] the job, ARGV[1] its TTL, ARGV[3]... its fields; with KEYS[2],
 * the identity that identity.c remembers for the username, for ARGV[2]
 * seconds: ARGV[5], ARGV[6] are the fields "identity_id" and its value.
 */

static ngx_str_t  ngx_http_passkey_store_script = ngx_string(
    "redis.call('HSET', KEYS[1], unpack(ARGV, 3)) "
    "if KEYS[2] then "
        "redis.call('SET', KEYS[2], ARGV[6], 'EX', ARGV[2]) "
    "end "
    "return redis.call('EXPIRE', KEYS[1], ARGV[1])");


/* "<passkey_redis_prefix>job:<job_id>" */

ngx_int_t
ngx_http_passkey_job_key(ngx_http_request_t *r, ngx_str_t *job_id,
    ngx_str_t *key)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    key->len = plcf->redis_prefix.len + sizeof("job:") - 1 + job_id->len;
    key->data = ngx_pnalloc(r->pool, key->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(key->data, "%Vjob:%V", &plcf->redis_prefix, job_id);

    return NGX_OK;
}


/*
 * A request's command to its location's Redis; the reply is the request's
 * (its pool and log), within passkey_redis_timeout.  The result is
 * ngx_http_passkey_redis_send()'s.
 */

ngx_int_t
ngx_http_passkey_redis_ask(ngx_http_request_t *r,
    ngx_http_passkey_redis_op_t *op, ngx_http_passkey_redis_done_pt handler,
    void *data, ngx_uint_t argc, ngx_str_t *argv)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_passkey_redis_op(r, op, handler, data);

    return ngx_http_passkey_metrics_redis_send(plcf->redis, op, argc, argv);
}


static ngx_http_passkey_loc_conf_t *
ngx_http_passkey_redis_op(ngx_http_request_t *r,
    ngx_http_passkey_redis_op_t *op, ngx_http_passkey_redis_done_pt handler,
    void *data)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    ngx_memzero(op, sizeof(ngx_http_passkey_redis_op_t));

    op->pool = r->pool;
    op->log = r->connection->log;
    op->timeout = plcf->redis_timeout;
    op->handler = handler;
    op->data = data;

    return plcf;
}


/* "1970-01-01T00:00:00Z" into buf, which holds at least 20 bytes */

void
ngx_http_passkey_rfc3339(time_t t, u_char *buf)
{
    ngx_tm_t  tm;

    ngx_gmtime(t, &tm);

    ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02dZ",
                tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);
}


/* "1970-01-01T00:00:00Z" of now, into pool */

ngx_int_t
ngx_http_passkey_rfc3339_now(ngx_pool_t *pool, ngx_str_t *s)
{
    s->data = ngx_pnalloc(pool, sizeof("1970-01-01T00:00:00Z") - 1);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_http_passkey_rfc3339(ngx_time(), s->data);
    s->len = sizeof("1970-01-01T00:00:00Z") - 1;

    return NGX_OK;
}


/* a job in one of these states will not change any more */

ngx_uint_t
ngx_http_passkey_final_state(ngx_str_t *state)
{
    static ngx_str_t  final[] = {
        ngx_string("COMPLETE"),
        ngx_string("EXPIRED"),
        ngx_string("REVOKED"),
        ngx_string("FAILED_TO_SEND"),
        ngx_null_string
    };

    ngx_str_t  *f;

    for (f = final; f->len; f++) {
        if (state->len == f->len
            && ngx_strncmp(state->data, f->data, f->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * Beyond Identity's ids are opaque, but every one seen is made of letters,
 * digits, "-" and "_"; anything else is refused before it reaches a URL
 * path or a Redis key.
 */

ngx_int_t
ngx_http_passkey_valid_id(ngx_str_t *id)
{
    return ngx_http_passkey_valid_chars(id, 128, "-_");
}


/*
 * What the API sends is stored and answered as it is, so it must look
 * like what it is: a state is 1 to 64 letters, digits, "_", "-" or ".",
 * which any future state will be; a time also has ":" and "+".
 */

ngx_int_t
ngx_http_passkey_valid_value(ngx_str_t *s, ngx_uint_t time)
{
    return ngx_http_passkey_valid_chars(s, NGX_HTTP_PASSKEY_STATE_MAX,
                                        time ? "_-.:+" : "_-.");
}


/*
 * Every allowlist of what goes unescaped into a URL path, a Redis key or
 * an answer: 1 to max letters, digits and the extra characters (a NUL is
 * never one, though strchr() would find it).
 */

static ngx_int_t
ngx_http_passkey_valid_chars(ngx_str_t *s, size_t max, char *extra)
{
    u_char      ch;
    ngx_uint_t  i;

    if (s->len == 0 || s->len > max) {
        return NGX_DECLINED;
    }

    for (i = 0; i < s->len; i++) {
        ch = s->data[i];

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
            || (ch >= '0' && ch <= '9')
            || (ch != '\0' && ngx_strchr(extra, ch) != NULL))
        {
            continue;
        }

        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * The state and expire_time of a job as the API answered it, fit to be
 * stored; an expire_time that is missing or odd is left empty.
 * NGX_DECLINED: no valid state, and the call is marked a bad response.
 */

ngx_int_t
ngx_http_passkey_job_state(ngx_pool_t *pool, ngx_http_passkey_bi_call_t *bc,
    ngx_str_t *state, ngx_str_t *expire_time)
{
    if (ngx_http_passkey_json_string(pool, bc->json, "state", state)
        != NGX_OK
        || ngx_http_passkey_valid_value(state, 0) != NGX_OK)
    {
        bc->result = NGX_HTTP_PASSKEY_API_BAD_RESPONSE;
        bc->error = "the job has no valid state";
        return NGX_DECLINED;
    }

    if (ngx_http_passkey_json_string(pool, bc->json, "expire_time",
                                     expire_time)
        != NGX_OK
        || ngx_http_passkey_valid_value(expire_time, 1) != NGX_OK)
    {
        ngx_str_null(expire_time);
    }

    return NGX_OK;
}


/* "2026-12-05T15:09:48.123456Z" or with a "+hh:mm" offset; 0 if invalid */

time_t
ngx_http_passkey_parse_rfc3339(ngx_str_t *s)
{
    u_char      *p, *last;
    time_t       days, t;
    ngx_int_t    year, month, day, hour, min, sec, off, sign, y, era, yoe;
    ngx_uint_t   doy, doe, m;

    p = s->data;
    last = s->data + s->len;

    if (s->len < sizeof("1970-01-01T00:00:00Z") - 1
        || p[4] != '-' || p[7] != '-' || (p[10] != 'T' && p[10] != 't')
        || p[13] != ':' || p[16] != ':')
    {
        return 0;
    }

    year = ngx_atoi(p, 4);
    month = ngx_atoi(p + 5, 2);
    day = ngx_atoi(p + 8, 2);
    hour = ngx_atoi(p + 11, 2);
    min = ngx_atoi(p + 14, 2);
    sec = ngx_atoi(p + 17, 2);

    if (year < 1970 || month < 1 || month > 12 || day < 1 || day > 31
        || hour < 0 || hour > 23 || min < 0 || min > 59 || sec < 0
        || sec > 60)
    {
        return 0;
    }

    p += 19;

    if (p < last && *p == '.') {
        for (p++; p < last && *p >= '0' && *p <= '9'; p++) {
            /* fractions of a second do not matter for a TTL */
        }
    }

    off = 0;

    if (p + 1 == last && (*p == 'Z' || *p == 'z')) {
        off = 0;

    } else if (p + 6 == last && (*p == '+' || *p == '-') && p[3] == ':') {
        sign = (*p == '-') ? -1 : 1;
        hour = ngx_atoi(p + 1, 2);
        min = ngx_atoi(p + 4, 2);

        if (hour == NGX_ERROR || min == NGX_ERROR) {
            return 0;
        }

        off = sign * (hour * 3600 + min * 60);
        hour = ngx_atoi(s->data + 11, 2);
        min = ngx_atoi(s->data + 14, 2);

    } else {
        return 0;
    }

    /* days since the epoch of a proleptic Gregorian date */

    y = year - (month <= 2);
    era = y / 400;
    yoe = y - era * 400;
    m = (ngx_uint_t) month;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + day - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    days = (time_t) era * 146097 + (time_t) doe - 719468;

    t = days * 86400 + hour * 3600 + min * 60 + sec - off;

    return t > 0 ? t : 0;
}


/*
 * The new job in the API's answer to its creation: the id, the state and,
 * for RETURN, the link are required; expire_time is taken as it is.
 */

ngx_int_t
ngx_http_passkey_job_created_read(ngx_http_passkey_ctx_t *ctx,
    ngx_pool_t *pool, ngx_http_passkey_json_t *json)
{
    if (ngx_http_passkey_json_string(pool, json,
                                     "credential_binding_job.id",
                                     &ctx->vars.job_id)
        != NGX_OK
        || ctx->vars.job_id.len == 0
        || ngx_http_passkey_json_string(pool, json,
                                        "credential_binding_job.state",
                                        &ctx->vars.job_state)
           != NGX_OK
        || (ctx->vars.delivery_method.data[0] == 'R'
            && (ngx_http_passkey_json_string(pool, json,
                                             "credential_binding_link",
                                             &ctx->link)
                != NGX_OK
                || ctx->link.len == 0)))
    {
        return NGX_DECLINED;
    }

    (void) ngx_http_passkey_json_string(pool, json,
                                        "credential_binding_job.expire_time",
                                        &ctx->expire_time);

    /* owned by the request's pool, like the rest of the API's answer */
    ctx->job = ngx_http_passkey_json_child(json, "credential_binding_job");

    ctx->expires = ngx_http_passkey_parse_rfc3339(&ctx->expire_time);

    return NGX_OK;
}


/*
 * The TTL of a job's key, in seconds: until Beyond Identity's expire_time
 * (0: unknown, then 7 days), and at least a minute.
 */

ngx_int_t
ngx_http_passkey_job_ttl(ngx_pool_t *pool, time_t expires, ngx_str_t *ttl)
{
    time_t  t;

    t = expires ? expires - ngx_time() : NGX_HTTP_PASSKEY_JOB_TTL_DEFAULT;

    if (t < 60) {
        t = 60;
    }

    ttl->data = ngx_pnalloc(pool, NGX_TIME_T_LEN);
    if (ttl->data == NULL) {
        return NGX_ERROR;
    }

    ttl->len = ngx_sprintf(ttl->data, "%T", t) - ttl->data;

    return NGX_OK;
}


/*
 * Writes a new job's record: its fields and, in the same script, its TTL,
 * until Beyond Identity's expire_time, so that a job never exists without
 * one.  The binding link is never stored.
 */

ngx_int_t
ngx_http_passkey_job_store(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_redis_done_pt handler)
{
    time_t                        now;
    ngx_int_t                     rc;
    ngx_str_t                     argv[21], ttl;
    ngx_uint_t                    n;
    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ctx->request;

    now = ngx_time();

    if (ctx->expires == 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "passkey: binding job %V has no readable expire_time, "
                      "keeping it for %d s", &ctx->vars.job_id,
                      NGX_HTTP_PASSKEY_JOB_TTL_DEFAULT);
    }

    /* EVAL script 1|2 job [identity] ttl identity-ttl field value ... */

    ngx_str_set(&argv[0], "EVAL");
    argv[1] = ngx_http_passkey_store_script;
    ngx_str_set(&argv[2], "1");
    n = 3;

    if (ngx_http_passkey_job_key(r, &ctx->vars.job_id, &argv[n++])
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_passkey_identity_remember(ctx, &argv[n], &ttl);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (rc == NGX_OK && ngx_http_passkey_redis_clustered(plcf->redis)) {

        /* in a cluster the two keys' slots differ: a command of its own */

        ngx_http_passkey_identity_remember_apart(ctx, &argv[n], &ttl);
        rc = NGX_DECLINED;
    }

    if (rc == NGX_OK) {
        ngx_str_set(&argv[2], "2");
        n++;

    } else {
        ngx_str_set(&ttl, "0");
    }

    if (ngx_http_passkey_job_ttl(r->pool, ctx->expires, &argv[n++])
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    argv[n++] = ttl;

    ngx_str_set(&argv[n], "job_id");
    argv[n + 1] = ctx->vars.job_id;
    ngx_str_set(&argv[n + 2], "identity_id");
    argv[n + 3] = ctx->vars.identity_id;
    ngx_str_set(&argv[n + 4], "username");
    argv[n + 5] = ctx->vars.username;
    ngx_str_set(&argv[n + 6], "delivery_method");
    argv[n + 7] = ctx->vars.delivery_method;
    ngx_str_set(&argv[n + 8], "state");
    argv[n + 9] = ctx->vars.job_state;
    ngx_str_set(&argv[n + 10], "expire_time");
    argv[n + 11] = ctx->expire_time;
    ngx_str_set(&argv[n + 12], "created_at");

    /* the binding link is a bearer secret: it is never stored */

    argv[n + 13].len = sizeof("1970-01-01T00:00:00Z") - 1;
    argv[n + 13].data = ngx_pnalloc(r->pool, argv[n + 13].len);
    if (argv[n + 13].data == NULL) {
        return NGX_ERROR;
    }

    ngx_http_passkey_rfc3339(now, argv[n + 13].data);

    /* with replicas=, the job is answered once a replica has it too */

    plcf = ngx_http_passkey_redis_op(r, &ctx->redis, handler, ctx);
    ctx->redis.replicated = 1;

    return ngx_http_passkey_metrics_redis_send(plcf->redis, &ctx->redis,
                                               n + 14, argv);
}

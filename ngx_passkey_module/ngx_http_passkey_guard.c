
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * What stands between a request and the API: rate limits, the
 * Idempotency-Key, and the lock that turns a double click into one job.
 * All of it lives in Redis, so that every worker of every node sees the
 * same counters, and all of it is decided by one script, atomically.
 */


static ngx_int_t ngx_http_passkey_guard_key(ngx_http_request_t *r,
    char *kind, ngx_str_t *parts, ngx_uint_t n, ngx_str_t *key);
static ngx_int_t ngx_http_passkey_guard_number(ngx_array_t *a, ngx_uint_t i,
    ngx_int_t *n);
static ngx_int_t ngx_http_passkey_guard_arg(ngx_pool_t *pool, ngx_str_t *arg,
    ngx_int_t n);
static char *ngx_http_passkey_time_header(ngx_pool_t *pool, ngx_msec_t ms);


#define NGX_HTTP_PASSKEY_GUARD_TAG  "{guard}"


/*
 * KEYS[1]: the idempotency key, the duplicate lock, or unused; KEYS[2..]:
 * the buckets.  ARGV: mode ("k", "d" or "-"), fingerprint, TTL of the
 * claim in ms, the claim's owner (the request id), then per bucket its
 * interval (ms per token) and burst.
 *
 * A bucket holds the "theoretical arrival time" of the generic cell rate
 * algorithm: a request fits while that time is at most burst intervals
 * ahead of now.  Nothing is written unless every bucket has room.
 */

static ngx_str_t  ngx_http_passkey_guard_script = ngx_string(
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local mode = ARGV[1] "
    "if mode == 'k' then "
    "  local h = redis.call('HMGET', KEYS[1], 'fp', 'status', 'body') "
    "  if h[1] then "
    "    if h[1] ~= ARGV[2] then return {'mismatch'} end "
    "    if not h[2] then return {'pending', redis.call('PTTL', KEYS[1])} end "
    "    return {'replay', h[2], h[3]} "
    "  end "
    "elseif mode == 'd' then "
    "  local ttl = redis.call('PTTL', KEYS[1]) "
    "  if ttl > 0 then return {'duplicate', ttl} end "
    "end "
    "local best, rem, reset, tats = 0, -1, 0, {} "
    "for i = 2, #KEYS do "
    "  local T = tonumber(ARGV[2 * i + 1]) "
    "  local B = tonumber(ARGV[2 * i + 2]) "
    "  local tat = tonumber(redis.call('GET', KEYS[i]) or now) "
    "  if tat < now then tat = now end "
    "  local new = tat + T "
    "  if new - now > T * B then "
    "    return {'limited', i - 1, new - now - T * B, tat - now} "
    "  end "
    "  tats[i] = new "
    "  local r = math.floor((now + T * B - new) / T) "
    "  if rem < 0 or r < rem then best, rem, reset = i - 1, r, new - now end "
    "end "
    "for i = 2, #KEYS do "
    "  redis.call('SET', KEYS[i], tats[i], 'PX', tats[i] - now) "
    "end "
    "if rem < 0 then rem = 0 end "
    "if mode == 'k' then "
    "  redis.call('HSET', KEYS[1], 'fp', ARGV[2], 'owner', ARGV[4]) "
    "  redis.call('PEXPIRE', KEYS[1], ARGV[3]) "
    "elseif mode == 'd' then "
    "  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[3]) "
    "end "
    "return {'ok', best, rem, reset}");


/*
 * Gives back a claim, if it is still this request's (ARGV[1], its owner)
 * and holds no answer: one that expired meanwhile may be another
 * request's now.
 */

static ngx_str_t  ngx_http_passkey_release_script = ngx_string(
    "local t = redis.call('TYPE', KEYS[1]).ok "
    "if t == 'hash' then "
    "  local h = redis.call('HMGET', KEYS[1], 'owner', 'status') "
    "  if h[1] ~= ARGV[1] or h[2] then return 0 end "
    "elseif t ~= 'string' or redis.call('GET', KEYS[1]) ~= ARGV[1] then "
    "  return 0 "
    "end "
    "return redis.call('DEL', KEYS[1])");


/*
 * The time of the identity's last email, not a flag with the cooldown as
 * its TTL: locations with different cooldowns then judge one history.
 * It is kept for a day, or the cooldown if that is longer.
 */

static ngx_str_t  ngx_http_passkey_cooldown_script = ngx_string(
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local wait = tonumber(redis.call('GET', KEYS[1]) or 0) "
    "             + tonumber(ARGV[1]) - now "
    "if wait > 0 then return wait end "
    "redis.call('SET', KEYS[1], now, 'PX', "
    "           math.max(tonumber(ARGV[1]), 86400000)) "
    "return 0");


static ngx_str_t  ngx_http_passkey_save_script = ngx_string(
    "redis.call('HSET', KEYS[1], 'status', ARGV[1], 'body', ARGV[2]) "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[3])");


/* passkey_limit key rate=N/period [burst=N]; */

char *
ngx_http_passkey_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_passkey_loc_conf_t *plcf = conf;

    u_char                            *p, *slash;
    ngx_str_t                         *value, s;
    ngx_int_t                          n;
    ngx_uint_t                         i;
    ngx_http_passkey_limit_t          *lim;
    ngx_http_compile_complex_value_t   ccv;

    if (plcf->limits == NGX_CONF_UNSET_PTR) {
        plcf->limits = ngx_array_create(cf->pool, 2,
                                        sizeof(ngx_http_passkey_limit_t));
        if (plcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (plcf->limits->nelts == NGX_HTTP_PASSKEY_LIMIT_MAX) {
        return "is used more than 8 times in one place";
    }

    lim = ngx_array_push(plcf->limits);
    if (lim == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(lim, sizeof(ngx_http_passkey_limit_t));

    value = cf->args->elts;

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = &lim->key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {
            p = value[i].data + 5;
            slash = ngx_strlchr(p, value[i].data + value[i].len, '/');

            if (slash == NULL) {
                goto invalid;
            }

            n = ngx_atoi(p, slash - p);
            if (n <= 0) {
                goto invalid;
            }

            lim->rate = n;

            /* "5/m" is "5/1m" */

            s.data = slash + 1;
            s.len = value[i].data + value[i].len - s.data;

            if (s.len == 1) {
                s.data = ngx_pnalloc(cf->pool, 2);
                if (s.data == NULL) {
                    return NGX_CONF_ERROR;
                }

                s.data[0] = '1';
                s.data[1] = slash[1];
                s.len = 2;
            }

            lim->period = ngx_parse_time(&s, 0);

            if (lim->period == (ngx_msec_t) NGX_ERROR
                || lim->period < lim->rate)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n <= 0) {
                goto invalid;
            }

            lim->burst = n;
            continue;
        }

        goto invalid;
    }

    if (lim->rate == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs a rate, such as rate=5/m",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (lim->burst == 0) {
        lim->burst = lim->rate;
    }

    /* the same key, rate and burst count together everywhere */

    lim->text.len = value[1].len + NGX_INT_T_LEN * 3 + 3;
    lim->text.data = ngx_pnalloc(cf->pool, lim->text.len);
    if (lim->text.data == NULL) {
        return NGX_CONF_ERROR;
    }

    lim->text.len = ngx_sprintf(lim->text.data, "%V %ui/%M %ui", &value[1],
                                lim->rate, lim->period, lim->burst)
                    - lim->text.data;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\": expected "
                       "rate=N/period (such as 5/m, 20/1h) and burst=N",
                       &value[i], &cmd->name);
    return NGX_CONF_ERROR;
}


/*
 * The longest a bind may take: a token fetch and a retry after a 401, a
 * create, a look-up and a job, each within passkey_api_timeout, and the
 * Redis steps, each within passkey_redis_timeout.  Claims outlive it.
 */

ngx_msec_t
ngx_http_passkey_bind_deadline(ngx_http_passkey_loc_conf_t *plcf)
{
    return 6 * plcf->http.timeout + 4 * plcf->redis_timeout;
}


/*
 * NGX_DECLINED: the Idempotency-Key is not acceptable; the request has
 * not been sent.
 */

ngx_int_t
ngx_http_passkey_guard_start(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_redis_done_pt handler)
{
    u_char                       *p;
    ngx_str_t                    *argv, value, parts[5], *loc, user, ikey;
    ngx_str_t                     keys[1 + NGX_HTTP_PASSKEY_LIMIT_MAX];
    ngx_str_t                     params[4 + 2 * NGX_HTTP_PASSKEY_LIMIT_MAX];
    ngx_uint_t                    i, n, argc, nkeys;
    ngx_msec_t                    claim;
    ngx_table_elt_t               *h;
    ngx_http_request_t            *r;
    ngx_http_variable_value_t     *vv;
    ngx_http_passkey_limit_t      *lim;
    ngx_http_passkey_guard_t      *g;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_passkey_loc_conf_t   *plcf;
    ngx_http_passkey_main_conf_t  *pmcf;

    r = ctx->request;
    g = &ctx->guard;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);
    pmcf = ngx_http_get_module_main_conf(r, ngx_http_passkey_module);
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    g->conf = plcf;

    /* until the script's reply says otherwise */
    g->result = NGX_HTTP_PASSKEY_GUARD_DOWN;

    loc = &clcf->name;
    ngx_str_null(&user);

    if (plcf->bind_mode == NGX_HTTP_PASSKEY_AUTHENTICATED) {
        user = ctx->vars.username;
    }

    ngx_str_set(&params[0], "-");
    ngx_str_set(&params[1], "-");
    claim = 0;

    h = plcf->idempotency
        ? ngx_http_passkey_header_in(r, "Idempotency-Key",
                                     sizeof("Idempotency-Key") - 1, NULL)
        : NULL;

    if (h != NULL) {
        ikey = h->value;

        if (ikey.len < NGX_HTTP_PASSKEY_IDEMPOTENCY_KEY_MIN
            || ikey.len > NGX_HTTP_PASSKEY_IDEMPOTENCY_KEY_MAX)
        {
            return NGX_DECLINED;
        }

        for (p = ikey.data; p < ikey.data + ikey.len; p++) {
            if (*p <= 0x20 || *p >= 0x7f) {
                return NGX_DECLINED;
            }
        }

        /* only who knows the key finds the answer, and can read it */

        ngx_str_set(&parts[0], "idempotency");
        parts[1] = *loc;
        parts[2] = user;
        parts[3] = ikey;

        if (ngx_http_passkey_guard_key(r, "idem:", parts, 4, &keys[0])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        /*
         * The request as the module reads it, not its bytes: a retry
         * that spells "return" for "RETURN", orders the members otherwise
         * or sends others that the module ignores asks for the same job.
         */

        parts[0] = ctx->vars.username;
        parts[1] = ctx->vars.email;
        parts[2] = ctx->display_name;
        parts[3] = ctx->vars.delivery_method;
        parts[4] = ctx->post_binding_redirect_uri;

        if (ngx_http_passkey_digest(r->pool, parts, 5, &g->fingerprint)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        g->secret.len = ikey.len + 1 + loc->len + 1 + user.len;
        g->secret.data = ngx_pnalloc(r->pool, g->secret.len);
        if (g->secret.data == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(g->secret.data, "%V\n%V\n%V", &ikey, loc, &user);

        /* a claim outlives the slowest bind, which its deadline ends */

        claim = ngx_http_passkey_bind_deadline(plcf) + 10000;

        ngx_str_set(&params[0], "k");
        params[1] = g->fingerprint;
        g->idempotent = 1;

    } else if (plcf->duplicate_window) {

        /* the same client, the same verified user, the same body */

        ngx_str_set(&parts[0], "duplicate");
        parts[1] = *loc;
        parts[2] = r->connection->addr_text;
        parts[3] = user;
        parts[4] = ctx->raw_body;

        if (ngx_http_passkey_guard_key(r, "dup:", parts, 5, &keys[0])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        claim = plcf->duplicate_window;
        ngx_str_set(&params[0], "d");

    } else {
        ngx_str_set(&parts[0], "none");

        if (ngx_http_passkey_guard_key(r, "none:", parts, 1, &keys[0])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (params[0].data[0] != '-') {
        g->key = keys[0];
    }

    if (ngx_http_passkey_guard_arg(r->pool, &params[2], claim) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the request id: only this request gives its claim back */

    vv = ngx_http_get_indexed_variable(r, pmcf->request_id_index);
    if (vv == NULL || vv->not_found || vv->len == 0) {
        return NGX_ERROR;
    }

    g->owner.data = vv->data;
    g->owner.len = vv->len;
    params[3] = g->owner;

    /* the buckets; a limit whose key is empty does not apply */

    nkeys = 1;
    n = 4;
    lim = plcf->limits ? plcf->limits->elts : NULL;

    for (i = 0; lim && i < plcf->limits->nelts; i++) {
        if (ngx_http_complex_value(r, &lim[i].key, &value) != NGX_OK) {
            return NGX_ERROR;
        }

        if (value.len == 0) {
            continue;
        }

        parts[0] = lim[i].text;
        parts[1] = value;

        if (ngx_http_passkey_guard_key(r, "limit:", parts, 2, &keys[nkeys])
            != NGX_OK
            || ngx_http_passkey_guard_arg(r->pool, &params[n++],
                                          lim[i].period / lim[i].rate)
               != NGX_OK
            || ngx_http_passkey_guard_arg(r->pool, &params[n++],
                                          lim[i].burst)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        g->limits[nkeys - 1] = &lim[i];
        nkeys++;
    }

    /* EVAL script numkeys key... arg... */

    argv = ngx_palloc(r->pool, (3 + nkeys + n) * sizeof(ngx_str_t));
    if (argv == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&argv[0], "EVAL");
    argv[1] = ngx_http_passkey_guard_script;

    if (ngx_http_passkey_guard_arg(r->pool, &argv[2], nkeys) != NGX_OK) {
        return NGX_ERROR;
    }

    argc = 3;

    for (i = 0; i < nkeys; i++) {
        argv[argc++] = keys[i];
    }

    for (i = 0; i < n; i++) {
        argv[argc++] = params[i];
    }

    return ngx_http_passkey_redis_ask(r, &ctx->redis, handler, ctx, argc,
                                      argv);
}


/* what the script said; NGX_ERROR for a reply it cannot have given */

ngx_int_t
ngx_http_passkey_guard_result(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_redis_op_t *op)
{
    ngx_int_t                  a, b, c;
    ngx_str_t                 *e;
    ngx_uint_t                 n;
    ngx_http_passkey_guard_t  *g;

    g = &ctx->guard;

    if (op->result != NGX_HTTP_PASSKEY_REDIS_OK
        || op->type == NGX_HTTP_PASSKEY_REDIS_ERROR)
    {
        /* a script that timed out may still have written the claim */

        g->result = NGX_HTTP_PASSKEY_GUARD_DOWN;
        g->unsure = g->key.len ? 1 : 0;
        return NGX_OK;
    }

    if (op->type != NGX_HTTP_PASSKEY_REDIS_ARRAY || op->elements == NULL
        || op->elements->nelts == 0)
    {
        return NGX_ERROR;
    }

    e = op->elements->elts;
    n = op->elements->nelts;

    /* "ok" or "limited", the limit's position, remaining or retry, reset */

    if (n == 4
        && ((e[0].len == 2 && ngx_strncmp(e[0].data, "ok", 2) == 0)
            || (e[0].len == 7 && ngx_strncmp(e[0].data, "limited", 7) == 0)))
    {
        if (ngx_http_passkey_guard_number(op->elements, 1, &a) != NGX_OK
            || ngx_http_passkey_guard_number(op->elements, 2, &b) != NGX_OK
            || ngx_http_passkey_guard_number(op->elements, 3, &c) != NGX_OK
            || a < (e[0].len == 2 ? 0 : 1) || a > NGX_HTTP_PASSKEY_LIMIT_MAX)
        {
            return NGX_ERROR;
        }

        g->limit = a ? g->limits[a - 1] : NULL;
        g->reset = c;

        if (e[0].len == 2) {
            g->result = NGX_HTTP_PASSKEY_GUARD_PASS;
            g->held = g->key.len ? 1 : 0;
            g->remaining = b;

            if (g->held && !g->counted) {
                g->counted = 1;
                ngx_http_passkey_metrics_claim(1);
            }

        } else {
            g->result = NGX_HTTP_PASSKEY_GUARD_LIMITED;
            g->remaining = 0;
            g->retry = b;
        }

        return NGX_OK;
    }

    if (e[0].len == 6 && ngx_strncmp(e[0].data, "replay", 6) == 0
        && n == 3)
    {
        if (ngx_http_passkey_guard_number(op->elements, 1, &a) != NGX_OK
            || a < 200 || a > 299)
        {
            return NGX_ERROR;
        }

        g->status = a;

        switch (ngx_http_passkey_unseal(ctx->request->pool, &g->secret,
                                        &e[2], &g->body))
        {
        case NGX_OK:
            g->result = NGX_HTTP_PASSKEY_GUARD_REPLAY;
            return NGX_OK;

        case NGX_DECLINED:

            /* the digest of the key matched, the key did not: altered */
            return NGX_ERROR;

        default:
            return NGX_ERROR;
        }
    }

    if (e[0].len == 8 && ngx_strncmp(e[0].data, "mismatch", 8) == 0) {
        g->result = NGX_HTTP_PASSKEY_GUARD_MISMATCH;
        return NGX_OK;
    }

    if (n == 2
        && ((e[0].len == 7 && ngx_strncmp(e[0].data, "pending", 7) == 0)
            || (e[0].len == 9
                && ngx_strncmp(e[0].data, "duplicate", 9) == 0)))
    {
        if (ngx_http_passkey_guard_number(op->elements, 1, &a) != NGX_OK) {
            a = 1000;
        }

        g->result = e[0].data[0] == 'p' ? NGX_HTTP_PASSKEY_GUARD_PENDING
                                        : NGX_HTTP_PASSKEY_GUARD_DUPLICATE;

        /* a running request ends in seconds; its claim lives far longer */

        g->retry = (g->result == NGX_HTTP_PASSKEY_GUARD_PENDING || a <= 0)
                   ? 1000 : a;

        return NGX_OK;
    }

    return NGX_ERROR;
}


/*
 * Keeps a successful answer for passkey_idempotency, sealed with the
 * Idempotency-Key.  NGX_DECLINED: there is nothing to keep (no key).
 */

ngx_int_t
ngx_http_passkey_guard_save(ngx_http_passkey_ctx_t *ctx, ngx_uint_t status,
    ngx_str_t *body, ngx_http_passkey_redis_done_pt handler)
{
    ngx_str_t                     argv[7];
    ngx_http_request_t           *r;
    ngx_http_passkey_guard_t     *g;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ctx->request;
    g = &ctx->guard;

    if (!g->held || !g->idempotent) {
        return NGX_DECLINED;
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    ngx_str_set(&argv[0], "EVAL");
    argv[1] = ngx_http_passkey_save_script;
    ngx_str_set(&argv[2], "1");
    argv[3] = g->key;

    if (ngx_http_passkey_guard_arg(r->pool, &argv[4], status) != NGX_OK
        || ngx_http_passkey_seal(r->pool, &g->secret, body, &argv[5])
           != NGX_OK
        || ngx_http_passkey_guard_arg(r->pool, &argv[6], plcf->idempotency)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_passkey_redis_ask(r, &ctx->redis, handler, ctx, 7, argv);
}


/* the reply to ngx_http_passkey_guard_save(): kept, or the claim goes */

void
ngx_http_passkey_guard_saved(ngx_http_passkey_guard_t *g, ngx_uint_t kept)
{
    if (kept) {
        ngx_http_passkey_guard_keep(g);
        return;
    }

    ngx_http_passkey_guard_release(g);
}


/*
 * The bind is over with no answer to keep: a duplicate lock stays until
 * it expires, which is its purpose; an idempotency claim goes.
 */

void
ngx_http_passkey_guard_finish(ngx_http_passkey_guard_t *g)
{
    if (g->idempotent) {
        ngx_http_passkey_guard_release(g);
        return;
    }

    ngx_http_passkey_guard_keep(g);
}


/* the identity had an email a moment ago: ms until the next may go */

void
ngx_http_passkey_guard_cooling(ngx_http_passkey_guard_t *g, ngx_msec_t ms)
{
    g->result = NGX_HTTP_PASSKEY_GUARD_LIMITED;
    g->retry = ms;
    g->limit = NULL;
}


/*
 * One email per identity per passkey_email_cooldown of this location: the
 * reply is 0, or the milliseconds until the next one may go.
 */

ngx_int_t
ngx_http_passkey_guard_cooldown(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_redis_done_pt handler)
{
    ngx_str_t                     argv[5], parts[2];
    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ctx->request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    ngx_str_set(&parts[0], "cooldown");
    parts[1] = ctx->vars.identity_id;

    ngx_str_set(&argv[0], "EVAL");
    argv[1] = ngx_http_passkey_cooldown_script;
    ngx_str_set(&argv[2], "1");

    if (ngx_http_passkey_guard_key(r, "cooldown:", parts, 2, &argv[3])
        != NGX_OK
        || ngx_http_passkey_guard_arg(r->pool, &argv[4], plcf->email_cooldown)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_passkey_redis_ask(r, &ctx->redis, handler, ctx, 5, argv);
}


/*
 * A request that failed, or whose client went away, gives its claim back
 * so that a retry may run at once.  Nothing waits for the reply, which
 * may come after the request is gone.
 */

void
ngx_http_passkey_guard_release(ngx_http_passkey_guard_t *g)
{
    ngx_str_t  argv[5];

    if (!g->held && !g->unsure) {
        return;
    }

    ngx_http_passkey_guard_keep(g);

    ngx_str_set(&argv[0], "EVAL");
    argv[1] = ngx_http_passkey_release_script;
    ngx_str_set(&argv[2], "1");
    argv[3] = g->key;
    argv[4] = g->owner;

    ngx_http_passkey_redis_post(g->conf->redis, g->conf->redis_timeout, 5,
                                argv, "passkey: cannot release a request's "
                                "claim in redis; a retry waits for it to "
                                "expire");
}


/*
 * The guard's script was sent and its reply will never be read (the
 * request ended first): it may have written a claim, which is given back
 * by a command that Redis runs after the script, on the same connection.
 */

void
ngx_http_passkey_guard_abandon(ngx_http_passkey_guard_t *g)
{
    g->unsure = g->key.len ? 1 : 0;

    ngx_http_passkey_guard_release(g);
}


/*
 * A job may exist at Beyond Identity although the request could not
 * tell: the claim stays until its TTL, so that a retry within it does
 * not make a second one.
 */

void
ngx_http_passkey_guard_keep(ngx_http_passkey_guard_t *g)
{
    g->held = 0;
    g->unsure = 0;

    /* the claim is no longer this request's, held or left to expire */

    if (g->counted) {
        g->counted = 0;
        ngx_http_passkey_metrics_claim(-1);
    }
}


/*
 * RateLimit-Limit, -Remaining and -Reset of the tightest limit (draft
 * RateLimit header fields for HTTP; what SCIM endpoints of Beyond
 * Identity send), and Retry-After when the request must wait.
 */

ngx_int_t
ngx_http_passkey_guard_headers(ngx_http_request_t *r,
    ngx_http_passkey_guard_t *g)
{
    char  *v;

    if (g->retry
        && (g->result == NGX_HTTP_PASSKEY_GUARD_LIMITED
            || g->result == NGX_HTTP_PASSKEY_GUARD_PENDING
            || g->result == NGX_HTTP_PASSKEY_GUARD_DUPLICATE))
    {
        v = ngx_http_passkey_time_header(r->pool, g->retry);

        if (v == NULL
            || ngx_http_passkey_add_header(r, "Retry-After", v) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (g->limit == NULL) {
        return NGX_OK;
    }

    v = ngx_pnalloc(r->pool, NGX_INT_T_LEN + 1);
    if (v == NULL) {
        return NGX_ERROR;
    }

    *ngx_sprintf((u_char *) v, "%ui", g->limit->burst) = '\0';

    if (ngx_http_passkey_add_header(r, "RateLimit-Limit", v) != NGX_OK) {
        return NGX_ERROR;
    }

    v = ngx_pnalloc(r->pool, NGX_INT_T_LEN + 1);
    if (v == NULL) {
        return NGX_ERROR;
    }

    *ngx_sprintf((u_char *) v, "%ui", g->remaining) = '\0';

    if (ngx_http_passkey_add_header(r, "RateLimit-Remaining", v) != NGX_OK) {
        return NGX_ERROR;
    }

    v = ngx_http_passkey_time_header(r->pool, g->reset);

    if (v == NULL
        || ngx_http_passkey_add_header(r, "RateLimit-Reset", v) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * <prefix><kind><SHA-256 of the parts>: no name or address in clear.  In
 * a cluster, one script reads a claim and buckets of every kind: their
 * keys share a hash tag, and so one slot.
 */

static ngx_int_t
ngx_http_passkey_guard_key(ngx_http_request_t *r, char *kind,
    ngx_str_t *parts, ngx_uint_t n, ngx_str_t *key)
{
    char                         *tag;
    size_t                        len;
    ngx_str_t                     hex;
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (ngx_http_passkey_digest(r->pool, parts, n, &hex) != NGX_OK) {
        return NGX_ERROR;
    }

    tag = ngx_http_passkey_redis_clustered(plcf->redis)
          ? NGX_HTTP_PASSKEY_GUARD_TAG : "";

    len = ngx_strlen(tag) + ngx_strlen(kind);

    key->len = plcf->redis_prefix.len + len + hex.len;
    key->data = ngx_pnalloc(r->pool, key->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(key->data, "%V%s%s%V", &plcf->redis_prefix, tag, kind, &hex);

    return NGX_OK;
}


static ngx_int_t
ngx_http_passkey_guard_number(ngx_array_t *a, ngx_uint_t i, ngx_int_t *n)
{
    ngx_str_t  *e;

    e = a->elts;

    if (i >= a->nelts || e[i].len == 0) {
        return NGX_ERROR;
    }

    *n = ngx_atoi(e[i].data, e[i].len);

    return *n == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


static ngx_int_t
ngx_http_passkey_guard_arg(ngx_pool_t *pool, ngx_str_t *arg, ngx_int_t n)
{
    arg->data = ngx_pnalloc(pool, NGX_INT_T_LEN);
    if (arg->data == NULL) {
        return NGX_ERROR;
    }

    arg->len = ngx_sprintf(arg->data, "%i", n) - arg->data;

    return NGX_OK;
}


/* whole seconds, rounded up: "retry after 0 s" would invite a storm */

static char *
ngx_http_passkey_time_header(ngx_pool_t *pool, ngx_msec_t ms)
{
    u_char  *v;

    v = ngx_pnalloc(pool, NGX_INT_T_LEN + 1);
    if (v == NULL) {
        return NULL;
    }

    *ngx_sprintf(v, "%M", (ms + 999) / 1000) = '\0';

    return (char *) v;
}


/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"
#include "ngx_http_passkey_job_endpoint.h"


/*
 * What the job endpoints share: passkey_job_status
 * (ngx_http_passkey_status.c) and passkey_job_revoke
 * (ngx_http_passkey_revoke.c) both read the job from Redis for its
 * caller, record there what the API said about it, and answer with the
 * job.  Like the bind flow, each request holds a reference of its own
 * while Redis or the API is asked, and a pool cleanup cancels whatever is
 * in flight when the request goes away.
 *
 * Besides the fields the bind handler stores, a job's hash may get:
 *
 *     refresh_claimed_ms  when a request last claimed the refresh, in
 *                         milliseconds since the epoch (nginx's clock)
 *     refreshed_at        when the state was last read from the API
 *     revoked_at          when this module revoked the job
 *     gone_at             when the API answered 404 for the job
 *
 * All but the first in the RFC 3339 form of created_at.
 */


typedef struct {
    ngx_str_t                         name;
    size_t                            offset;
    ngx_uint_t                        answer;    /* a member of the answer */
} ngx_http_passkey_job_field_t;


static ngx_int_t ngx_http_passkey_job_id(ngx_http_request_t *r,
    ngx_str_t *suffix, ngx_str_t *id);
static void ngx_http_passkey_job_cleanup(void *data);
static ngx_int_t ngx_http_passkey_job_read(ngx_http_passkey_status_ctx_t *sc);
static void ngx_http_passkey_job_read_done(ngx_http_passkey_redis_op_t *op);
static ngx_int_t ngx_http_passkey_job_parse(ngx_http_passkey_status_ctx_t *sc,
    ngx_array_t *elements, ngx_uint_t first);
static void ngx_http_passkey_job_unknown(ngx_http_passkey_status_ctx_t *sc,
    ngx_uint_t level, char *why);
static void ngx_http_passkey_job_updated(ngx_http_passkey_redis_op_t *op);
static void ngx_http_passkey_job_reply(ngx_http_passkey_status_ctx_t *sc);
static ngx_int_t ngx_http_passkey_job_set_flag(ngx_pool_t *pool,
    ngx_http_passkey_json_t *json, char *key, ngx_uint_t value);


/*
 * Reads the job and, in the same atomic step, decides whether this
 * request refreshes it: one request per interval, whichever worker or
 * node it reaches.  ARGV: now and the interval, in milliseconds.  The
 * reply is the claim ("1" or "0") followed by the hash, or empty.
 *
 * The clock is nginx's, as for every other time the module stores; nodes
 * sharing a Redis should keep their clocks in step.  A claim more than an
 * hour ahead of this node's clock is taken for a clock error and ignored,
 * so that it cannot stop refreshes for the rest of the job's life.
 */

static ngx_str_t  ngx_http_passkey_job_read_script = ngx_string(
    NGX_HTTP_PASSKEY_FINAL_LUA
    "local j = redis.call('HGETALL', KEYS[1]) "
    "if #j == 0 then return j end "
    "local h = {} "
    "for i = 1, #j, 2 do h[j[i]] = j[i + 1] end "
    "local c = tonumber(h.refresh_claimed_ms or '') "
    "local n = tonumber(ARGV[1]) "
    "local claim = '0' "
    "if not h.gone_at and h.state and not final[h.state] "
    "and (not c or n - c >= tonumber(ARGV[2]) or c - n > 3600000) then "
    "redis.call('HSET', KEYS[1], 'refresh_claimed_ms', ARGV[1]) "
    "claim = '1' end "
    "table.insert(j, 1, claim) "
    "return j");


/*
 * Records what the API said, on a job that still exists: an HSET on a
 * key whose TTL ended meanwhile would bring it back without one.  With
 * ARGV[1] "1" (a refresh), a final state already stored is kept: it was
 * written by a revoke that finished while the refresh was under way, and
 * a job never leaves a final state.  The reply is the state now stored,
 * or nil if the job is gone.
 */

static ngx_str_t  ngx_http_passkey_job_update_script = ngx_string(
    NGX_HTTP_PASSKEY_FINAL_LUA
    "local s = redis.call('HGET', KEYS[1], 'state') "
    "if not s then return false end "
    "if ARGV[1] == '1' and final[s] then return s end "
    "redis.call('HSET', KEYS[1], unpack(ARGV, 2)) "
    "return redis.call('HGET', KEYS[1], 'state')");


/* the hash fields the endpoints read, in the order the answer gives them */

static ngx_http_passkey_job_field_t  ngx_http_passkey_job_fields[] = {

    { ngx_string("identity_id"),
      offsetof(ngx_http_passkey_status_ctx_t, vars.identity_id), 1 },

    { ngx_string("state"),
      offsetof(ngx_http_passkey_status_ctx_t, vars.job_state), 1 },

    { ngx_string("delivery_method"),
      offsetof(ngx_http_passkey_status_ctx_t, vars.delivery_method), 1 },

    { ngx_string("expire_time"),
      offsetof(ngx_http_passkey_status_ctx_t, expire_time), 1 },

    { ngx_string("created_at"),
      offsetof(ngx_http_passkey_status_ctx_t, created_at), 1 },

    { ngx_string("opened_at"),
      offsetof(ngx_http_passkey_status_ctx_t, opened_at), 1 },

    { ngx_string("refreshed_at"),
      offsetof(ngx_http_passkey_status_ctx_t, refreshed_at), 1 },

    { ngx_string("revoked_at"),
      offsetof(ngx_http_passkey_status_ctx_t, revoked_at), 1 },

    { ngx_string("gone_at"),
      offsetof(ngx_http_passkey_status_ctx_t, gone_at), 0 },

    { ngx_string("username"),
      offsetof(ngx_http_passkey_status_ctx_t, owner), 0 },

    { ngx_null_string, 0, 0 }
};


/*
 * What both endpoints do first: the caller (in authenticated mode), the
 * job id from the URI, and the job read from Redis.  The endpoint's
 * handler takes over once the job is known to be the caller's.
 */

ngx_int_t
ngx_http_passkey_job_start(ngx_http_request_t *r,
    ngx_http_passkey_job_endpoint_t *endpoint)
{
    ngx_int_t                       rc;
    ngx_str_t                       id, detail, caller;
    ngx_pool_cleanup_t             *cln;
    ngx_http_passkey_loc_conf_t    *plcf;
    ngx_http_passkey_status_ctx_t  *sc;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    /* in authenticated mode, a job is only its owner's business */

    ngx_str_null(&caller);

    if (plcf->bind_mode == NGX_HTTP_PASSKEY_AUTHENTICATED) {
        rc = ngx_http_passkey_verified_user(r, plcf->username, &caller);

        if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "passkey: unauthenticated: no verified user");

            ngx_str_set(&detail, "sign in first: no verified user");

            return ngx_http_passkey_send_problem(r, NGX_HTTP_UNAUTHORIZED,
                                                 "unauthenticated", &detail);
        }

        if (rc == NGX_ABORT) {
            ngx_str_set(&detail, "the signed-in user cannot be bound "
                                 "safely");

            return ngx_http_passkey_send_problem(r, NGX_HTTP_FORBIDDEN,
                                                 "invalid_verified_user",
                                                 &detail);
        }

        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_passkey_job_id(r, &endpoint->suffix, &id) != NGX_OK) {
        /* not the URI: it may hold anything, control characters too */

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: invalid_job_id: the job id must be 1 to 128 "
                      "letters, digits, \"-\" or \"_\"");

        ngx_str_set(&detail, "the job id must be 1 to 128 letters, digits, "
                             "\"-\" or \"_\"");

        return ngx_http_passkey_send_problem(r, NGX_HTTP_BAD_REQUEST,
                                             "invalid_job_id", &detail);
    }

    sc = ngx_pcalloc(r->pool, sizeof(ngx_http_passkey_status_ctx_t));
    if (sc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sc->request = r;
    sc->vars.job_id = id;
    sc->caller = caller;
    sc->endpoint = endpoint;

    /* whatever happens to the request, nothing may call back into it */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_passkey_job_cleanup;
    cln->data = sc;

    ngx_http_set_ctx(r, &sc->vars, ngx_http_passkey_module);

    if (ngx_http_passkey_job_key(r, &id, &sc->key) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_passkey_job_read(sc) != NGX_OK) {
        ngx_str_set(&detail, "job storage is unavailable");

        return ngx_http_passkey_send_problem(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                             "redis_unavailable", &detail);
    }

    /* held until the last step finalizes the request */
    r->main->count++;

    /*
     * A client that goes away ends the work, and the cleanup cancels it;
     * unless a body is still being discarded, which needs the read events.
     */

    if (!r->discard_body) {
        r->read_event_handler = ngx_http_test_reading;
    }

    return NGX_DONE;
}


/* the last path segment, which the endpoint's suffix may end */

static ngx_int_t
ngx_http_passkey_job_id(ngx_http_request_t *r, ngx_str_t *suffix,
    ngx_str_t *id)
{
    u_char  *p, *last;

    last = r->uri.data + r->uri.len;

    for (p = last; p > r->uri.data && p[-1] != '/'; p--) {
        /* void */
    }

    id->data = p;
    id->len = last - p;

    if (suffix->len && id->len > suffix->len
        && ngx_strncmp(last - suffix->len, suffix->data, suffix->len) == 0)
    {
        id->len -= suffix->len;
    }

    return ngx_http_passkey_valid_id(id);
}


static void
ngx_http_passkey_job_cleanup(void *data)
{
    ngx_http_passkey_status_ctx_t *sc = data;

    ngx_http_passkey_bi_cancel(&sc->bi);

    if (sc->waiting_redis) {
        ngx_http_passkey_redis_cancel(&sc->redis);
        sc->waiting_redis = 0;
    }
}


static ngx_int_t
ngx_http_passkey_job_read(ngx_http_passkey_status_ctx_t *sc)
{
    ngx_str_t                     argv[6];
    ngx_time_t                   *tp;
    ngx_uint_t                    argc;
    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = sc->request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    r->connection->log->action = "reading the passkey binding job";

    if (!sc->endpoint->claim) {
        /* a revoke always asks the API: no refresh to claim */

        ngx_str_set(&argv[0], "HGETALL");
        argv[1] = sc->key;
        argc = 2;

    } else {
        /* EVAL script 1 key now interval */

        ngx_str_set(&argv[0], "EVAL");
        argv[1] = ngx_http_passkey_job_read_script;
        ngx_str_set(&argv[2], "1");
        argv[3] = sc->key;

        argv[4].data = ngx_pnalloc(r->pool, 2 * NGX_INT64_LEN);
        if (argv[4].data == NULL) {
            return NGX_ERROR;
        }

        tp = ngx_timeofday();

        argv[4].len = ngx_sprintf(argv[4].data, "%L",
                                  (int64_t) tp->sec * 1000 + tp->msec)
                      - argv[4].data;

        argv[5].data = argv[4].data + argv[4].len;
        argv[5].len = ngx_sprintf(argv[5].data, "%M",
                                  plcf->job_refresh_interval)
                      - argv[5].data;

        argc = 6;
    }

    if (ngx_http_passkey_redis_ask(r, &sc->redis,
                                   ngx_http_passkey_job_read_done, sc, argc,
                                   argv)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: cannot send the read of binding job %V to "
                      "redis \"%V\"", &sc->vars.job_id, &plcf->redis->name);
        return NGX_ERROR;
    }

    sc->waiting_redis = 1;

    return NGX_OK;
}


static void
ngx_http_passkey_job_read_done(ngx_http_passkey_redis_op_t *op)
{
    ngx_http_passkey_status_ctx_t *sc = op->data;

    ngx_str_t                    *e;
    ngx_uint_t                    first;
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = sc->request;
    c = r->connection;

    sc->waiting_redis = 0;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (op->result != NGX_HTTP_PASSKEY_REDIS_OK
        || op->type != NGX_HTTP_PASSKEY_REDIS_ARRAY)
    {
        if (op->result != NGX_HTTP_PASSKEY_REDIS_OK) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "passkey: cannot read binding job %V: redis "
                          "\"%V\" %s", &sc->vars.job_id, &plcf->redis->name,
                          ngx_http_passkey_redis_failure(op));

        } else if (op->type == NGX_HTTP_PASSKEY_REDIS_ERROR) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "passkey: cannot read binding job %V: redis "
                          "\"%V\" failed: \"%V\"", &sc->vars.job_id,
                          &plcf->redis->name, &op->str);

        } else {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "passkey: cannot read binding job %V: redis "
                          "\"%V\" gave an unexpected answer",
                          &sc->vars.job_id, &plcf->redis->name);
        }

        ngx_http_passkey_job_fail(sc, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "redis_unavailable",
                                  "job storage is unavailable");
        return;
    }

    e = op->elements->elts;
    first = 0;

    if (sc->endpoint->claim && op->elements->nelts) {
        sc->claimed = (e[0].len == 1 && e[0].data[0] == '1');
        first = 1;
    }

    if (op->elements->nelts <= first) {
        ngx_http_passkey_job_unknown(sc, NGX_LOG_INFO, "is not known");
        return;
    }

    if (ngx_http_passkey_job_parse(sc, op->elements, first) != NGX_OK) {
        ngx_http_passkey_job_unknown(sc, NGX_LOG_ERR,
                                     "in redis has no valid identity_id or "
                                     "state");
        return;
    }

    /*
     * someone else's job is answered as no job at all; the owner is the
     * name as it was verified, byte for byte, and so is the caller
     */

    if (sc->caller.len
        && (sc->owner.len != sc->caller.len
            || ngx_strncmp(sc->owner.data, sc->caller.data, sc->caller.len)
               != 0))
    {
        ngx_http_passkey_job_unknown(sc, NGX_LOG_INFO,
                                     "belongs to another user");
        return;
    }

    if (sc->gone_at.data) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "passkey: binding job %V is no longer known to "
                      "Beyond Identity (since %V)", &sc->vars.job_id,
                      &sc->gone_at);

        ngx_http_passkey_job_fail(sc, NGX_HTTP_NOT_FOUND, "unknown_job",
                                  "Beyond Identity no longer knows this "
                                  "job");
        return;
    }

    sc->endpoint->handler(sc);
}


/* NGX_DECLINED: a hash without a usable identity_id or state */

static ngx_int_t
ngx_http_passkey_job_parse(ngx_http_passkey_status_ctx_t *sc,
    ngx_array_t *elements, ngx_uint_t first)
{
    ngx_str_t                     *e, *value;
    ngx_uint_t                     i;
    ngx_http_passkey_job_field_t  *f;

    e = elements->elts;

    for (i = first; i + 1 < elements->nelts; i += 2) {

        for (f = ngx_http_passkey_job_fields; f->name.len; f++) {
            if (e[i].len == f->name.len
                && ngx_strncmp(e[i].data, f->name.data, f->name.len) == 0)
            {
                value = (ngx_str_t *) ((u_char *) sc + f->offset);
                *value = e[i + 1];
                break;
            }
        }
    }

    if (sc->vars.job_state.len == 0
        || ngx_http_passkey_valid_id(&sc->vars.identity_id) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * A job that is missing, broken or someone else's gets one answer, so
 * that a caller cannot tell them apart; only the log says which it was.
 */

static void
ngx_http_passkey_job_unknown(ngx_http_passkey_status_ctx_t *sc,
    ngx_uint_t level, char *why)
{
    ngx_log_error(level, sc->request->connection->log, 0,
                  "passkey: binding job %V %s", &sc->vars.job_id, why);

    ngx_http_passkey_job_fail(sc, NGX_HTTP_NOT_FOUND, "unknown_job",
                              "no binding job of this id is known");
}


/*
 * The API answered 404: Beyond Identity does not know the job (its
 * identity was deleted, say), and no link of it can work any more.  The
 * job is marked gone in Redis, rather than deleted, and answered as
 * unknown from then on without further calls: a stable answer for
 * clients that poll, and the record stays for an operator until its TTL
 * ends.
 */

void
ngx_http_passkey_job_gone(ngx_http_passkey_status_ctx_t *sc)
{
    ngx_str_t                    fields[3];
    ngx_http_passkey_bi_call_t  *bc;

    bc = &sc->bi;

    ngx_log_error(NGX_LOG_ERR, sc->request->connection->log, 0,
                  "passkey: Beyond Identity does not know binding job %V "
                  "(%V %V answered 404 \"%V\" \"%V\"), marking it gone",
                  &sc->vars.job_id, &bc->method, &bc->path, &bc->log_code,
                  &bc->log_message);

    sc->status = NGX_HTTP_NOT_FOUND;
    sc->code = "unknown_job";
    sc->detail = "Beyond Identity no longer knows this job";

    if (ngx_http_passkey_rfc3339_now(sc->request->pool, &fields[2])
        != NGX_OK)
    {
        ngx_http_passkey_job_reply(sc);
        return;
    }

    ngx_str_set(&fields[0], "0");
    ngx_str_set(&fields[1], "gone_at");

    ngx_http_passkey_job_update(sc, 3, fields);
}


/*
 * fields: "1" to keep a final state already stored, or "0", then field
 * and value pairs.  The answer in sc->status goes out once Redis has
 * replied; a failure to record is logged, and the answer still says what
 * the API said.
 */

void
ngx_http_passkey_job_update(ngx_http_passkey_status_ctx_t *sc,
    ngx_uint_t n, ngx_str_t *fields)
{
    ngx_str_t                     argv[4 + 7];
    ngx_uint_t                    i;
    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = sc->request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    r->connection->log->action = "storing the passkey binding job state";

    /* EVAL script 1 key keep_final field value ... */

    ngx_str_set(&argv[0], "EVAL");
    argv[1] = ngx_http_passkey_job_update_script;
    ngx_str_set(&argv[2], "1");
    argv[3] = sc->key;

    for (i = 0; i < n; i++) {
        argv[4 + i] = fields[i];
    }

    if (ngx_http_passkey_redis_ask(r, &sc->redis,
                                   ngx_http_passkey_job_updated, sc, 4 + n,
                                   argv)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: cannot send the update of binding job %V to "
                      "redis \"%V\"", &sc->vars.job_id, &plcf->redis->name);

        ngx_http_passkey_job_reply(sc);
        return;
    }

    sc->waiting_redis = 1;
}


static void
ngx_http_passkey_job_updated(ngx_http_passkey_redis_op_t *op)
{
    ngx_http_passkey_status_ctx_t *sc = op->data;

    ngx_connection_t             *c;
    ngx_http_passkey_loc_conf_t  *plcf;

    c = sc->request->connection;

    sc->waiting_redis = 0;

    plcf = ngx_http_get_module_loc_conf(sc->request,
                                        ngx_http_passkey_module);

    if (op->result != NGX_HTTP_PASSKEY_REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "passkey: cannot store the state of binding job %V: "
                      "redis \"%V\" %s", &sc->vars.job_id, &plcf->redis->name,
                      ngx_http_passkey_redis_failure(op));

    } else if (op->type == NGX_HTTP_PASSKEY_REDIS_ERROR) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "passkey: cannot store the state of binding job %V: "
                      "redis \"%V\" failed: \"%V\"", &sc->vars.job_id,
                      &plcf->redis->name, &op->str);

    } else if (op->type == NGX_HTTP_PASSKEY_REDIS_STRING
               && sc->refresh == NGX_HTTP_PASSKEY_REFRESH_OK
               && (op->str.len != sc->vars.job_state.len
                   || ngx_strncmp(op->str.data, sc->vars.job_state.data,
                                  op->str.len)
                      != 0))
    {
        /* a revoke finished meanwhile: its final state stays, and is told */

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "passkey: binding job %V is %V meanwhile",
                       &sc->vars.job_id, &op->str);

        sc->vars.job_state = op->str;
        ngx_str_null(&sc->refreshed_at);
    }

    ngx_http_passkey_job_reply(sc);
}


static void
ngx_http_passkey_job_reply(ngx_http_passkey_status_ctx_t *sc)
{
    if (sc->status == NGX_HTTP_OK) {
        ngx_http_passkey_job_send(sc);
        return;
    }

    ngx_http_passkey_job_fail(sc, sc->status, sc->code, sc->detail);
}


/*
 * The job as stored, with what this request learnt.  "refreshed" is there
 * only when this request asked the API: true when the state is fresh,
 * false when the call failed and the state is the stored one.  There is
 * never a binding link: none is stored.
 */

void
ngx_http_passkey_job_send(ngx_http_passkey_status_ctx_t *sc)
{
    ngx_int_t                      rc;
    ngx_str_t                     *value;
    ngx_http_request_t            *r;
    ngx_http_passkey_json_t       *json;
    ngx_http_passkey_job_field_t  *f;

    r = sc->request;
    r->connection->log->action = "sending the passkey binding job";

    json = ngx_http_passkey_json_object(r->pool);

    if (json == NULL
        || ngx_http_passkey_json_set_string(json, "job_id", &sc->vars.job_id)
           != NGX_OK)
    {
        goto failed;
    }

    for (f = ngx_http_passkey_job_fields; f->name.len; f++) {
        value = (ngx_str_t *) ((u_char *) sc + f->offset);

        if (f->answer && value->data != NULL
            && ngx_http_passkey_json_set_string(json, (char *) f->name.data,
                                                value)
               != NGX_OK)
        {
            goto failed;
        }
    }

    if (sc->refresh != NGX_HTTP_PASSKEY_REFRESH_NONE
        && ngx_http_passkey_job_set_flag(r->pool, json, "refreshed",
                                         sc->refresh
                                         == NGX_HTTP_PASSKEY_REFRESH_OK)
           != NGX_OK)
    {
        goto failed;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "passkey: binding job %V is %V",
                   &sc->vars.job_id, &sc->vars.job_state);

    rc = ngx_http_passkey_send_json(r, NGX_HTTP_OK, json);

    ngx_http_passkey_finalize(sc->request, rc);

    return;

failed:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "passkey: cannot build the answer for binding job %V",
                  &sc->vars.job_id);

    ngx_http_passkey_job_fail(sc, NGX_HTTP_INTERNAL_SERVER_ERROR,
                              "internal_error",
                              "cannot build the response");
}


/* the answer to a failure that was logged where it was noticed */

void
ngx_http_passkey_job_fail(ngx_http_passkey_status_ctx_t *sc,
    ngx_uint_t status, char *code, char *detail)
{
    ngx_str_t  s;

    s.data = (u_char *) detail;
    s.len = detail ? ngx_strlen(detail) : 0;

    ngx_http_passkey_finalize(sc->request,
        ngx_http_passkey_send_problem(sc->request, status, code, &s));
}


/*
 * The JSON adapter builds strings, integers and objects only; a boolean
 * is taken from a parsed literal, which json_object_set() then shares.
 */

static ngx_int_t
ngx_http_passkey_job_set_flag(ngx_pool_t *pool,
    ngx_http_passkey_json_t *json, char *key, ngx_uint_t value)
{
    ngx_str_t                 text;
    ngx_http_passkey_json_t  *doc, *v;

    if (value) {
        ngx_str_set(&text, "{\"v\":true}");

    } else {
        ngx_str_set(&text, "{\"v\":false}");
    }

    if (ngx_http_passkey_json_parse(pool, &text, &doc) != NGX_OK) {
        return NGX_ERROR;
    }

    v = ngx_http_passkey_json_child(doc, "v");
    if (v == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_passkey_json_set_object(json, key, v);
}

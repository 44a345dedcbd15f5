
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * The invoke_url handler (passkey_invoke).  Beyond Identity answers the
 * link of an EMAIL binding job with a redirect to
 *
 *     {invoke_url}/bind?api_base_url=..&tenant_id=..&realm_id=..
 *                      &identity_id=..&job_id=..&token=..
 *
 * and that whole URL is the binding link the browser's SDK uses.  This
 * precontent handler checks the link against the configuration, the job
 * kept in Redis and the job's state at Beyond Identity, and then hands it
 * over: to the location's content (the app, or a static page), or by a
 * redirect that carries the link in the fragment.  The steps, each a
 * callback of the one before:
 *
 *     Redis:  the job as stored; a GET records the opening
 *     API:    GET .../identities/{i}/credential-binding-jobs/{job}, for
 *             a job Redis holds in a live state or does not know at all
 *     Redis:  a job the API vouched for is recorded, or a final state
 *             the API reported
 *
 * and then the phase handler runs again and acts on the outcome.
 *
 * The link's arguments are read in ngx_http_passkey_invoke_args.c, and
 * what the browser gets in the end is ngx_http_passkey_handover.c's.
 */


#define NGX_HTTP_PASSKEY_GONE  410


/* what the Redis script found, and what the client is told about it */

typedef enum {
    NGX_HTTP_PASSKEY_LINK_OK = 0,
    NGX_HTTP_PASSKEY_LINK_UNKNOWN,
    NGX_HTTP_PASSKEY_LINK_EXPIRED,
    NGX_HTTP_PASSKEY_LINK_REVOKED,
    NGX_HTTP_PASSKEY_LINK_COMPLETE,
    NGX_HTTP_PASSKEY_LINK_USED,
    NGX_HTTP_PASSKEY_LINK_NONE,           /* not in Redis at all */
    NGX_HTTP_PASSKEY_LINK_REDIS_FAILED,
    NGX_HTTP_PASSKEY_LINK_API_FAILED
} ngx_http_passkey_link_e;


typedef struct {
    ngx_str_t                         reply;     /* the script's answer */
    ngx_uint_t                        status;
    char                             *code;
    char                             *detail;    /* problem+json */
    char                             *text;      /* the HTML page */
    char                             *log;
} ngx_http_passkey_link_answer_t;


static ngx_http_passkey_invoke_ctx_t *ngx_http_passkey_invoke_ctx(
    ngx_http_request_t *r);
static void ngx_http_passkey_invoke_cleanup(void *data);
static ngx_int_t ngx_http_passkey_invoke_start(ngx_http_request_t *r);
static ngx_int_t ngx_http_passkey_invoke_open(
    ngx_http_passkey_invoke_ctx_t *ic, ngx_str_t *state,
    ngx_str_t *expire_time);
static void ngx_http_passkey_invoke_opened(ngx_http_passkey_redis_op_t *op);
static void ngx_http_passkey_invoke_ask(ngx_http_passkey_invoke_ctx_t *ic);
static void ngx_http_passkey_invoke_answered(ngx_http_passkey_bi_call_t *bc);
static ngx_http_passkey_link_e ngx_http_passkey_invoke_job(
    ngx_http_passkey_invoke_ctx_t *ic, ngx_http_passkey_bi_call_t *bc,
    ngx_str_t *state, ngx_str_t *expire);
static void ngx_http_passkey_invoke_record(ngx_http_passkey_invoke_ctx_t *ic,
    ngx_str_t *field, ngx_str_t *value);
static void ngx_http_passkey_invoke_recorded(
    ngx_http_passkey_redis_op_t *op);
static void ngx_http_passkey_invoke_resume(ngx_http_passkey_invoke_ctx_t *ic);
static ngx_int_t ngx_http_passkey_invoke_outcome(ngx_http_request_t *r,
    ngx_http_passkey_invoke_ctx_t *ctx);


static ngx_http_passkey_link_answer_t  ngx_http_passkey_link_answers[] = {

    { ngx_string("ok"), NGX_HTTP_OK, NULL, NULL, NULL, NULL },

    /* another identity's job, or a RETURN job, reads as no job at all */
    { ngx_string("unknown"), NGX_HTTP_NOT_FOUND, "unknown_job",
      "this link is not valid",
      "This link is not valid.",
      "no emailed binding job of this identity" },

    { ngx_string("expired"), NGX_HTTP_PASSKEY_GONE, "link_expired",
      "this link has expired",
      "This link has expired.",
      "the binding job has expired" },

    { ngx_string("revoked"), NGX_HTTP_PASSKEY_GONE, "job_revoked",
      "this link was revoked",
      "This link was revoked.",
      "the binding job was revoked" },

    { ngx_string("complete"), NGX_HTTP_PASSKEY_GONE, "job_complete",
      "a passkey was already set up with this link",
      "A passkey was already set up with this link.",
      "the binding job is complete" },

    { ngx_string("used"), NGX_HTTP_CONFLICT, "link_already_used",
      "this link was already used",
      "This link was already used.",
      "the binding link was already used" },

    /* passkey_invoke_unknown_jobs refuse */
    { ngx_string("none"), NGX_HTTP_NOT_FOUND, "unknown_job",
      "this link is not valid",
      "This link is not valid.",
      "a job this deployment did not create" },

    { ngx_null_string, NGX_HTTP_SERVICE_UNAVAILABLE, "redis_unavailable",
      "job storage is unavailable",
      "This service is unavailable. Please try again later.",
      NULL },

    /* the status and code are the API failure's */
    { ngx_null_string, 0, NULL, NULL,
      "This service is unavailable. Please try again later.",
      NULL }
};


/*
 * The job as Redis holds it, in one atomic step.  ARGV: identity_id, now
 * (RFC 3339 UTC), "1" to record an opening (GET) or "0" to only check
 * (HEAD), "1" if a link may be opened again, and, to record a job the API
 * vouched for when Redis has none: its state, expire_time, TTL and id
 * (state "" records nothing).
 *
 * An expire_time that is not RFC 3339 is left to the key's TTL.  A job
 * Beyond Identity no longer knows (gone_at) is unknown, and so is one
 * whose email could not be sent: neither has a valid link.  "none": no
 * job at all under the key.
 */

static ngx_str_t  ngx_http_passkey_open_script = ngx_string(
    "local k = KEYS[1] "
    "if redis.call('EXISTS', k) == 0 then "
    "if ARGV[5] == '' then return 'none' end "
    "redis.call('HSET', k, 'job_id', ARGV[8], 'identity_id', ARGV[1], "
    "'delivery_method', 'EMAIL', 'state', ARGV[5], "
    "'expire_time', ARGV[6], 'created_at', ARGV[2], "
    "'adopted_at', ARGV[2]) "
    "redis.call('EXPIRE', k, ARGV[7]) end "
    "local j = redis.call('HMGET', k, 'identity_id', 'delivery_method', "
    "'state', 'expire_time', 'opened_at', 'gone_at') "
    "if j[1] ~= ARGV[1] or j[2] ~= 'EMAIL' or j[6] then "
    "return 'unknown' end "
    "if j[3] == 'FAILED_TO_SEND' then return 'unknown' end "
    "if j[3] == 'COMPLETE' then return 'complete' end "
    "if j[3] == 'REVOKED' then return 'revoked' end "
    "if j[3] == 'EXPIRED' then return 'expired' end "
    "local e = string.sub(j[4] or '', 1, 19) "
    "if string.match(e, '^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d$') "
    "and e <= string.sub(ARGV[2], 1, 19) then return 'expired' end "
    "if j[5] and ARGV[4] ~= '1' then return 'used' end "
    "if ARGV[3] == '1' then "
    "if not j[5] then redis.call('HSET', k, 'opened_at', ARGV[2]) end "
    "if j[3] == 'LINK_SENT' then "
    "redis.call('HSET', k, 'state', 'LINK_OPENED') end "
    "redis.call('HINCRBY', k, 'opens', 1) end "
    "return 'ok'");


/*
 * A state the API reported, on a job that still exists: an HSET on a key
 * whose TTL ended meanwhile would bring it back without one.
 */

static ngx_str_t  ngx_http_passkey_record_script = ngx_string(
    "if redis.call('EXISTS', KEYS[1]) == 1 then "
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end "
    "return 'ok'");


ngx_int_t
ngx_http_passkey_invoke_handler(ngx_http_request_t *r)
{
    ngx_http_passkey_invoke_ctx_t       *ctx;
    ngx_http_passkey_loc_conf_t  *plcf;

    ctx = ngx_http_passkey_invoke_ctx(r);

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (!plcf->invoke) {
        return NGX_DECLINED;
    }

    /* a subrequest belongs to a request that was checked (or not) itself */

    if (r != r->main) {
        return NGX_DECLINED;
    }

    if (ctx == NULL) {
        return ngx_http_passkey_invoke_start(r);
    }

    if (!ctx->done) {
        /* a write event while Redis is asked: keep waiting */
        return NGX_AGAIN;
    }

    if (ctx->vars.binding_link.len) {
        /* handed over already; an internal redirect came back here */
        return NGX_DECLINED;
    }

    return ngx_http_passkey_invoke_outcome(r, ctx);
}


/*
 * An internal redirect clears the modules' contexts, and a subrequest has
 * its own: the context of a checked link is found again through the pool
 * cleanup that holds it, so the link is never used up twice by one
 * request (try_files, error_page) and the $passkey_* variables keep their
 * values.
 */

static ngx_http_passkey_invoke_ctx_t *
ngx_http_passkey_invoke_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t      *cln;
    ngx_http_passkey_invoke_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_passkey_module);

    if (ctx != NULL || !r->internal) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_passkey_invoke_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_passkey_module);
            return ctx;
        }
    }

    return NULL;
}


static void
ngx_http_passkey_invoke_cleanup(void *data)
{
    ngx_http_passkey_invoke_ctx_t *ctx = data;

    ngx_http_passkey_bi_cancel(&ctx->bi);

    if (ctx->waiting_redis) {
        ngx_http_passkey_redis_cancel(&ctx->redis);
        ctx->waiting_redis = 0;
    }
}


static ngx_int_t
ngx_http_passkey_invoke_start(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_pool_cleanup_t             *cln;
    ngx_http_passkey_invoke_ctx_t         *ctx;
    ngx_http_passkey_invoke_ctx_t  *ic;

    /* the token left the request line already, in the rewrite phase */

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: method %V not allowed for a binding link",
                      &r->method_name);

        if (ngx_http_passkey_add_header(r, "Allow", "GET, HEAD") != NGX_OK) {
            return ngx_http_passkey_invoke_error(r);
        }

        return ngx_http_passkey_invoke_refuse(r, NGX_HTTP_NOT_ALLOWED,
                                        "method_not_allowed",
                                        "a binding link is opened with GET",
                                        "This page opens from a link in an "
                                        "email.");
    }

    ic = ngx_pcalloc(r->pool, sizeof(ngx_http_passkey_invoke_ctx_t));
    if (ic == NULL) {
        return ngx_http_passkey_invoke_error(r);
    }

    ctx = ic;
    ctx->request = r;

    /* whatever happens to the request, nothing may call back into it */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return ngx_http_passkey_invoke_error(r);
    }

    cln->handler = ngx_http_passkey_invoke_cleanup;
    cln->data = ic;

    ngx_http_set_ctx(r, ctx, ngx_http_passkey_module);

    r->connection->log->action = "checking the passkey binding link";

    rc = ngx_http_passkey_invoke_args(r, ctx);

    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_passkey_rfc3339_now(r->pool, &ic->now) != NGX_OK) {
        return ngx_http_passkey_invoke_error(r);
    }

    if (ngx_http_passkey_job_key(r, &ctx->vars.job_id, &ic->key) != NGX_OK) {
        return ngx_http_passkey_invoke_error(r);
    }

    if (ngx_http_passkey_invoke_open(ic, NULL, NULL) != NGX_OK) {
        ctx->done = 1;
        ctx->rc = NGX_HTTP_PASSKEY_LINK_REDIS_FAILED;

        return ngx_http_passkey_invoke_outcome(r, ctx);
    }

    /* a client that leaves now ends the request; the cleanup cancels */

    r->read_event_handler = ngx_http_test_reading;

    return NGX_AGAIN;
}


/*
 * Sends the Redis step.  state NULL: the job as stored; otherwise the
 * state and expire_time the API gave for a job Redis does not have, to be
 * recorded (a GET only) before it is checked like any other.
 */

static ngx_int_t
ngx_http_passkey_invoke_open(ngx_http_passkey_invoke_ctx_t *ic,
    ngx_str_t *state, ngx_str_t *expire_time)
{
    ngx_str_t                     argv[12];
    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ic->request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    /* EVAL script 1 key identity now use reopen state expire ttl job */

    ngx_str_set(&argv[0], "EVAL");
    argv[1] = ngx_http_passkey_open_script;
    ngx_str_set(&argv[2], "1");
    argv[3] = ic->key;
    argv[4] = ic->vars.identity_id;
    argv[5] = ic->now;

    /* HEAD has no side effects: it never counts as an opening */

    if (r->method == NGX_HTTP_HEAD) {
        ngx_str_set(&argv[6], "0");

    } else {
        ngx_str_set(&argv[6], "1");
    }

    if (plcf->invoke_reopen) {
        ngx_str_set(&argv[7], "1");

    } else {
        ngx_str_set(&argv[7], "0");
    }

    ngx_str_null(&argv[8]);
    ngx_str_null(&argv[9]);
    ngx_str_null(&argv[10]);
    argv[11] = ic->vars.job_id;

    if (state) {
        argv[8] = *state;
        argv[9] = *expire_time;

        /* like a job this module created: until it expires at BI */

        if (ngx_http_passkey_job_ttl(r->pool,
                                     ngx_http_passkey_parse_rfc3339(
                                         expire_time),
                                     &argv[10])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_passkey_redis_ask(r, &ic->redis,
                                   ngx_http_passkey_invoke_opened, ic, 12,
                                   argv)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: cannot send the binding link check of job "
                      "%V to redis \"%V\"", &ic->vars.job_id,
                      &plcf->redis->name);
        return NGX_ERROR;
    }

    ic->waiting_redis = 1;

    return NGX_OK;
}


static void
ngx_http_passkey_invoke_opened(ngx_http_passkey_redis_op_t *op)
{
    ngx_http_passkey_invoke_ctx_t *ic = op->data;

    ngx_uint_t                    i;
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_passkey_invoke_ctx_t       *ctx;
    ngx_http_passkey_loc_conf_t  *plcf;

    ctx = ic;
    r = ctx->request;
    c = r->connection;

    ctx->waiting_redis = 0;
    ctx->rc = NGX_HTTP_PASSKEY_LINK_REDIS_FAILED;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (op->result != NGX_HTTP_PASSKEY_REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "passkey: redis \"%V\" %s while checking the binding "
                      "link of job %V", &plcf->redis->name,
                      ngx_http_passkey_redis_failure(op), &ctx->vars.job_id);

    } else if (op->type == NGX_HTTP_PASSKEY_REDIS_ERROR) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "passkey: redis \"%V\" failed to check the binding "
                      "link of job %V: \"%V\"", &plcf->redis->name,
                      &ctx->vars.job_id, &op->str);

    } else {
        for (i = 0; ngx_http_passkey_link_answers[i].reply.len; i++) {
            if (op->type == NGX_HTTP_PASSKEY_REDIS_STRING
                && op->str.len == ngx_http_passkey_link_answers[i].reply.len
                && ngx_strncmp(op->str.data,
                               ngx_http_passkey_link_answers[i].reply.data,
                               op->str.len)
                   == 0)
            {
                ctx->rc = i;
                break;
            }
        }

        if (ctx->rc == NGX_HTTP_PASSKEY_LINK_REDIS_FAILED) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "passkey: redis \"%V\" gave an unexpected answer "
                          "to the binding link check of job %V",
                          &plcf->redis->name, &ctx->vars.job_id);
        }
    }

    /*
     * Only Beyond Identity knows whether the job was revoked or completed
     * meanwhile, in the console say, and whether a job that another
     * backend of the tenant created is real.
     */

    if (!ic->asked
        && (ctx->rc == NGX_HTTP_PASSKEY_LINK_OK
            || (ctx->rc == NGX_HTTP_PASSKEY_LINK_NONE
                && plcf->invoke_unknown == NGX_HTTP_PASSKEY_VERIFY)))
    {
        ic->known = (ctx->rc == NGX_HTTP_PASSKEY_LINK_OK);
        ngx_http_passkey_invoke_ask(ic);
        return;
    }

    ngx_http_passkey_invoke_resume(ic);
}


static void
ngx_http_passkey_invoke_ask(ngx_http_passkey_invoke_ctx_t *ic)
{
    ngx_http_request_t  *r;

    r = ic->request;
    ic->asked = 1;

    r->connection->log->action = "asking Beyond Identity about the passkey "
                                 "binding job";

    if (ngx_http_passkey_bi_job(&ic->bi, r, &ic->vars.identity_id,
                                &ic->vars.job_id, "GET", "",
                                ngx_http_passkey_invoke_answered, ic)
        != NGX_OK)
    {
        ngx_http_passkey_invoke_answered(&ic->bi);
    }
}


/*
 * The API's word on the job.  A job that Redis holds was checked there
 * first, so when the API cannot be asked, the link is handed over on that
 * check alone (the SDK then asks Beyond Identity itself); a job that Redis
 * does not hold is handed over only on the API's word.
 */

static void
ngx_http_passkey_invoke_answered(ngx_http_passkey_bi_call_t *bc)
{
    ngx_http_passkey_invoke_ctx_t *ic = bc->data;

    ngx_str_t                 state, expire, field;
    ngx_http_request_t       *r;
    ngx_http_passkey_link_e   rc;

    r = ic->request;

    if (bc->result == NGX_HTTP_PASSKEY_API_OK
        && bc->status == NGX_HTTP_NOT_FOUND)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: Beyond Identity does not know binding job "
                      "%V of identity %V", &ic->vars.job_id,
                      &ic->vars.identity_id);

        ic->rc = NGX_HTTP_PASSKEY_LINK_UNKNOWN;
        ngx_str_set(&field, "gone_at");
        ngx_http_passkey_invoke_record(ic, &field, &ic->now);
        return;
    }

    rc = ngx_http_passkey_invoke_job(ic, bc, &state, &expire);

    if (rc == NGX_HTTP_PASSKEY_LINK_API_FAILED) {

        if (ic->known && bc->result != NGX_HTTP_PASSKEY_API_OK) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "passkey: cannot read binding job %V (%s), its "
                          "link is handed over on what redis holds",
                          &ic->vars.job_id,
                          bc->error ? bc->error : "unknown error");

            ic->rc = NGX_HTTP_PASSKEY_LINK_OK;

        } else if (ic->known) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "passkey: cannot read binding job %V (%V %V "
                          "answered %ui \"%V\" \"%V\"), its link is handed "
                          "over on what redis holds", &ic->vars.job_id,
                          &bc->method, &bc->path, bc->status, &bc->log_code,
                          &bc->log_message);

            ic->rc = NGX_HTTP_PASSKEY_LINK_OK;

        } else {
            /* logs what failed */
            ngx_http_passkey_api_problem(r, bc, 0, &ic->problem);

            if (ic->problem.status < NGX_HTTP_INTERNAL_SERVER_ERROR) {
                ic->problem.status = NGX_HTTP_BAD_GATEWAY;
                ic->problem.code = "api_unexpected_status";
                ic->problem.detail = "the Beyond Identity API answered an "
                                     "unexpected status";
            }

            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "passkey: binding job %V, which redis does not "
                          "hold, cannot be verified: its link is refused",
                          &ic->vars.job_id);

            ic->rc = NGX_HTTP_PASSKEY_LINK_API_FAILED;
        }

        ngx_http_passkey_invoke_resume(ic);
        return;
    }

    ic->vars.job_state = state;
    ic->rc = rc;

    if (rc != NGX_HTTP_PASSKEY_LINK_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: Beyond Identity says binding job %V is %V",
                      &ic->vars.job_id, &state);

        ngx_str_set(&field, "state");
        ngx_http_passkey_invoke_record(ic, &field, &state);
        return;
    }

    if (ic->known || r->method == NGX_HTTP_HEAD) {
        ngx_http_passkey_invoke_resume(ic);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "passkey: binding job %V was created elsewhere, and "
                  "Beyond Identity vouches for it", &ic->vars.job_id);

    r->connection->log->action = "checking the passkey binding link";

    if (ngx_http_passkey_invoke_open(ic, &state, &expire) != NGX_OK) {
        ic->rc = NGX_HTTP_PASSKEY_LINK_REDIS_FAILED;
        ngx_http_passkey_invoke_resume(ic);
    }
}


/*
 * What the API's answer means for the link.  NGX_HTTP_PASSKEY_LINK_API_FAILED:
 * no usable answer.  A job of another identity, tenant or realm, or one
 * not sent by email, has no link that leads here.
 */

static ngx_http_passkey_link_e
ngx_http_passkey_invoke_job(ngx_http_passkey_invoke_ctx_t *ic,
    ngx_http_passkey_bi_call_t *bc, ngx_str_t *state, ngx_str_t *expire)
{
    time_t                        expires;
    ngx_str_t                     v, *want[5];
    ngx_uint_t                    i;
    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    static ngx_str_t  email = ngx_string("EMAIL");
    static char      *names[] = { "id", "identity_id", "tenant_id",
                                  "realm_id", "delivery_method" };

    r = ic->request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (bc->result != NGX_HTTP_PASSKEY_API_OK || bc->status != NGX_HTTP_OK) {
        return NGX_HTTP_PASSKEY_LINK_API_FAILED;
    }

    if (ngx_http_passkey_job_state(r->pool, bc, state, expire) != NGX_OK) {
        return NGX_HTTP_PASSKEY_LINK_API_FAILED;
    }

    /* each member, when the answer has it, must be this link's */

    want[0] = &ic->vars.job_id;
    want[1] = &ic->vars.identity_id;
    want[2] = &plcf->tenant_id;
    want[3] = &plcf->realm_id;
    want[4] = &email;

    for (i = 0; i < 5; i++) {

        if (ngx_http_passkey_json_string(r->pool, bc->json, names[i], &v)
            != NGX_OK)
        {
            if (i < 4) {
                continue;
            }

            /* the delivery method decides: it may not be missing */
            ngx_str_null(&v);
        }

        if (v.len != want[i]->len
            || ngx_strncmp(v.data, want[i]->data, v.len) != 0)
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "passkey: binding job %V has another \"%s\" at "
                          "Beyond Identity", &ic->vars.job_id, names[i]);
            return NGX_HTTP_PASSKEY_LINK_UNKNOWN;
        }
    }

    if (state->len == sizeof("COMPLETE") - 1
        && ngx_strncmp(state->data, "COMPLETE", state->len) == 0)
    {
        return NGX_HTTP_PASSKEY_LINK_COMPLETE;
    }

    if (state->len == sizeof("REVOKED") - 1
        && ngx_strncmp(state->data, "REVOKED", state->len) == 0)
    {
        return NGX_HTTP_PASSKEY_LINK_REVOKED;
    }

    expires = expire->len ? ngx_http_passkey_parse_rfc3339(expire) : 0;

    if ((state->len == sizeof("EXPIRED") - 1
         && ngx_strncmp(state->data, "EXPIRED", state->len) == 0)
        || (expires != 0 && expires <= ngx_time()))
    {
        return NGX_HTTP_PASSKEY_LINK_EXPIRED;
    }

    if (ngx_http_passkey_final_state(state)) {
        /* FAILED_TO_SEND: no email, so no link */
        return NGX_HTTP_PASSKEY_LINK_UNKNOWN;
    }

    return NGX_HTTP_PASSKEY_LINK_OK;
}


/* records what the API said on a job Redis holds, then answers */

static void
ngx_http_passkey_invoke_record(ngx_http_passkey_invoke_ctx_t *ic,
    ngx_str_t *field, ngx_str_t *value)
{
    ngx_str_t                     argv[6];
    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ic->request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (!ic->known) {
        ngx_http_passkey_invoke_resume(ic);
        return;
    }

    ngx_str_set(&argv[0], "EVAL");
    argv[1] = ngx_http_passkey_record_script;
    ngx_str_set(&argv[2], "1");
    argv[3] = ic->key;
    argv[4] = *field;
    argv[5] = *value;

    if (ngx_http_passkey_redis_ask(r, &ic->redis,
                                   ngx_http_passkey_invoke_recorded, ic, 6,
                                   argv)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: cannot record in redis \"%V\" what Beyond "
                      "Identity said about binding job %V",
                      &plcf->redis->name, &ic->vars.job_id);

        ngx_http_passkey_invoke_resume(ic);
        return;
    }

    ic->waiting_redis = 1;
}


/* the refusal stands whether or not Redis recorded why */

static void
ngx_http_passkey_invoke_recorded(ngx_http_passkey_redis_op_t *op)
{
    ngx_http_passkey_invoke_ctx_t *ic = op->data;

    ngx_http_passkey_loc_conf_t  *plcf;

    ic->waiting_redis = 0;

    if (op->result != NGX_HTTP_PASSKEY_REDIS_OK
        || op->type == NGX_HTTP_PASSKEY_REDIS_ERROR)
    {
        plcf = ngx_http_get_module_loc_conf(ic->request,
                                            ngx_http_passkey_module);

        ngx_log_error(NGX_LOG_ERR, ic->request->connection->log, 0,
                      "passkey: redis \"%V\" did not record what Beyond "
                      "Identity said about binding job %V",
                      &plcf->redis->name, &ic->vars.job_id);
    }

    ngx_http_passkey_invoke_resume(ic);
}


/* the phase handler runs again and acts on the outcome */

static void
ngx_http_passkey_invoke_resume(ngx_http_passkey_invoke_ctx_t *ic)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ic->request;
    c = r->connection;

    ic->done = 1;

    r->read_event_handler = ngx_http_block_reading;

    ngx_http_core_run_phases(r);

    /* called from a Redis or API event, not from the request's own */
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_passkey_invoke_outcome(ngx_http_request_t *r,
    ngx_http_passkey_invoke_ctx_t *ctx)
{
    ngx_http_passkey_invoke_ctx_t   *ic;
    ngx_http_passkey_link_answer_t  *a;

    a = &ngx_http_passkey_link_answers[ctx->rc];

    if (ctx->rc == NGX_HTTP_PASSKEY_LINK_API_FAILED) {
        ic = ctx;

        return ngx_http_passkey_invoke_refuse(r, ic->problem.status,
                                              ic->problem.code,
                                              ic->problem.detail, a->text);
    }

    if (ctx->rc != NGX_HTTP_PASSKEY_LINK_OK) {

        if (a->log) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "passkey: binding link of job %V refused: %s",
                          &ctx->vars.job_id, a->log);
        }

        return ngx_http_passkey_invoke_refuse(r, a->status, a->code,
                                              a->detail, a->text);
    }

    return ngx_http_passkey_invoke_handover(r, ctx);
}

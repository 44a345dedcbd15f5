
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
 * precontent handler checks the link against the configuration and the job
 * kept in Redis, lets it through once, and then hands it over: to the
 * location's content (the app, or a static page), or by a redirect that
 * carries the link in the fragment.
 */


#define NGX_HTTP_PASSKEY_TOKEN_MAX  2048
#define NGX_HTTP_PASSKEY_GONE       410


/* the arguments of a link, in the order Beyond Identity sends them */

typedef enum {
    NGX_HTTP_PASSKEY_ARG_API_BASE_URL = 0,
    NGX_HTTP_PASSKEY_ARG_TENANT_ID,
    NGX_HTTP_PASSKEY_ARG_REALM_ID,
    NGX_HTTP_PASSKEY_ARG_IDENTITY_ID,
    NGX_HTTP_PASSKEY_ARG_JOB_ID,
    NGX_HTTP_PASSKEY_ARG_TOKEN,
    NGX_HTTP_PASSKEY_ARG_N
} ngx_http_passkey_arg_e;


typedef struct {
    ngx_str_t                         value;
    ngx_uint_t                        count;
    unsigned                          odd:1;     /* not spelled as expected */
} ngx_http_passkey_arg_t;


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
    /* first: the $passkey_* variables find it as the module's context */
    ngx_http_passkey_ctx_t            ctx;

    ngx_str_t                         key;
    ngx_str_t                         now;       /* RFC 3339, seconds */
    ngx_http_passkey_problem_t        problem;   /* the API failed */

    unsigned                          known:1;   /* Redis had the job */
    unsigned                          asked:1;   /* the API was asked */
} ngx_http_passkey_invoke_ctx_t;


typedef struct {
    ngx_str_t                         reply;     /* the script's answer */
    ngx_uint_t                        status;
    char                             *code;
    char                             *detail;    /* problem+json */
    char                             *text;      /* the HTML page */
    char                             *log;
} ngx_http_passkey_link_answer_t;


static ngx_http_passkey_ctx_t *ngx_http_passkey_invoke_ctx(
    ngx_http_request_t *r);
static void ngx_http_passkey_invoke_cleanup(void *data);
static ngx_int_t ngx_http_passkey_invoke_start(ngx_http_request_t *r);
static ngx_int_t ngx_http_passkey_invoke_args(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx);
static void ngx_http_passkey_invoke_parse(ngx_str_t *query,
    ngx_http_passkey_arg_t *args);
static ngx_int_t ngx_http_passkey_invoke_token(ngx_str_t *token);
static ngx_int_t ngx_http_passkey_invoke_unescape(ngx_pool_t *pool,
    ngx_str_t *s, ngx_str_t *out);
static ngx_uint_t ngx_http_passkey_invoke_same_url(ngx_str_t *url,
    ngx_str_t *conf);
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
    ngx_http_passkey_ctx_t *ctx);
static ngx_int_t ngx_http_passkey_invoke_link(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx);
static ngx_int_t ngx_http_passkey_invoke_redirect(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx);
static ngx_int_t ngx_http_passkey_invoke_refuse(ngx_http_request_t *r,
    ngx_uint_t status, char *code, char *detail, char *text);
static ngx_int_t ngx_http_passkey_invoke_error(ngx_http_request_t *r);
static ngx_uint_t ngx_http_passkey_invoke_wants_json(ngx_http_request_t *r);


static ngx_str_t  ngx_http_passkey_arg_names[] = {
    ngx_string("api_base_url"),
    ngx_string("tenant_id"),
    ngx_string("realm_id"),
    ngx_string("identity_id"),
    ngx_string("job_id"),
    ngx_string("token")
};


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
    ngx_http_passkey_ctx_t       *ctx;
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

    if (ctx->binding_link.len) {
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

static ngx_http_passkey_ctx_t *
ngx_http_passkey_invoke_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t      *cln;
    ngx_http_passkey_ctx_t  *ctx;

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
    ngx_http_passkey_ctx_t *ctx = data;

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
    ngx_http_passkey_ctx_t         *ctx;
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

    ctx = &ic->ctx;
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

    if (ngx_http_passkey_job_key(r, &ctx->job_id, &ic->key) != NGX_OK) {
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
 * The six arguments, each exactly once, as Beyond Identity writes them.
 * They are read from the URI as the browser sent it, which is what the
 * SDK will read too, rather than from $args, which the configuration
 * could have rewritten.
 */

static ngx_int_t
ngx_http_passkey_invoke_args(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx)
{
    char                         *problem, *foreign;
    u_char                       *q, *last;
    ngx_int_t                     rc;
    ngx_str_t                     query, url, *tenant, *realm;
    ngx_uint_t                    i;
    ngx_http_passkey_arg_t        args[NGX_HTTP_PASSKEY_ARG_N];
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    last = r->unparsed_uri.data + r->unparsed_uri.len;
    q = ngx_strlchr(r->unparsed_uri.data, last, '?');

    query.data = q ? q + 1 : last;
    query.len = last - query.data;

    ngx_memzero(args, sizeof(args));

    ngx_http_passkey_invoke_parse(&query, args);

    problem = NULL;
    ngx_str_null(&url);

    for (i = 0; i < NGX_HTTP_PASSKEY_ARG_N; i++) {

        if (args[i].count != 1 || args[i].odd) {
            problem = (args[i].count == 0) ? "no"
                      : (args[i].count > 1) ? "more than one"
                      : "an oddly spelled";
            break;
        }

        switch (i) {

        case NGX_HTTP_PASSKEY_ARG_API_BASE_URL:
            rc = ngx_http_passkey_invoke_unescape(r->pool, &args[i].value,
                                                  &url);
            if (rc == NGX_ERROR) {
                return ngx_http_passkey_invoke_error(r);
            }

            break;

        case NGX_HTTP_PASSKEY_ARG_TOKEN:
            rc = ngx_http_passkey_invoke_token(&args[i].value);
            break;

        default:
            rc = ngx_http_passkey_valid_id(&args[i].value);
        }

        if (rc != NGX_OK) {
            problem = "an invalid";
            break;
        }
    }

    if (problem) {
        /* the name only: the value may be the token */

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: invalid binding link: %s \"%V\" argument",
                      problem, &ngx_http_passkey_arg_names[i]);

        return ngx_http_passkey_invoke_refuse(r, NGX_HTTP_BAD_REQUEST,
                                        "invalid_link",
                                        "this link is not a valid binding "
                                        "link",
                                        "This link is not valid.");
    }

    ctx->job_id = args[NGX_HTTP_PASSKEY_ARG_JOB_ID].value;
    ctx->identity_id = args[NGX_HTTP_PASSKEY_ARG_IDENTITY_ID].value;

    tenant = &args[NGX_HTTP_PASSKEY_ARG_TENANT_ID].value;
    realm = &args[NGX_HTTP_PASSKEY_ARG_REALM_ID].value;

    /*
     * The SDK sends the token to api_base_url: a link that names another
     * host would hand the user's enrollment to that host.
     */

    foreign = NULL;

    if (!ngx_http_passkey_invoke_same_url(&url, &plcf->auth_url)
        && !ngx_http_passkey_invoke_same_url(&url, &plcf->api_url))
    {
        foreign = "api_base_url";

    } else if (tenant->len != plcf->tenant_id.len
               || ngx_strncmp(tenant->data, plcf->tenant_id.data,
                              tenant->len)
                  != 0)
    {
        foreign = "tenant_id";

    } else if (realm->len != plcf->realm_id.len
               || ngx_strncmp(realm->data, plcf->realm_id.data, realm->len)
                  != 0)
    {
        foreign = "realm_id";
    }

    if (foreign) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: binding link of job %V has a foreign "
                      "\"%s\"", &ctx->job_id, foreign);

        return ngx_http_passkey_invoke_refuse(r, NGX_HTTP_FORBIDDEN,
                                        "foreign_link",
                                        "this link was not issued for this "
                                        "site",
                                        "This link was not issued for this "
                                        "site.");
    }

    return NGX_OK;
}


/*
 * Splits the query at "&".  A name counts as one of the six if it equals
 * it after percent-decoding and ignoring case, as some parsers read names;
 * such a name spelled in any other way than Beyond Identity's makes the
 * link ambiguous, and so does a name that comes twice.
 */

static void
ngx_http_passkey_invoke_parse(ngx_str_t *query, ngx_http_passkey_arg_t *args)
{
    u_char      *p, *q, *eq, *last, *s, *d;
    u_char       name[16];
    size_t       len;
    ngx_int_t    hi, lo;
    ngx_uint_t   i, raw;

    p = query->data;
    last = query->data + query->len;

    while (p < last) {
        q = ngx_strlchr(p, last, '&');
        if (q == NULL) {
            q = last;
        }

        eq = ngx_strlchr(p, q, '=');
        if (eq == NULL) {
            eq = q;
        }

        /* the name, decoded into name[] if it fits */

        d = name;
        raw = 1;

        for (s = p; s < eq && d < name + sizeof(name); s++) {

            if (*s == '%' && eq - s > 2) {
                hi = ngx_hextoi(s + 1, 1);
                lo = ngx_hextoi(s + 2, 1);

                if (hi != NGX_ERROR && lo != NGX_ERROR) {
                    *d++ = (u_char) (hi * 16 + lo);
                    s += 2;
                    raw = 0;
                    continue;
                }
            }

            *d++ = *s;
        }

        len = d - name;

        if (s == eq) {
            for (i = 0; i < NGX_HTTP_PASSKEY_ARG_N; i++) {
                if (len != ngx_http_passkey_arg_names[i].len
                    || ngx_strncasecmp(name, ngx_http_passkey_arg_names[i].data,
                                       len)
                       != 0)
                {
                    continue;
                }

                args[i].count++;

                if (!raw || eq == q
                    || ngx_strncmp(p, ngx_http_passkey_arg_names[i].data, len)
                       != 0)
                {
                    args[i].odd = 1;
                }

                args[i].value.data = (eq < q) ? eq + 1 : q;
                args[i].value.len = q - args[i].value.data;
                break;
            }
        }

        p = q + 1;
    }
}


/* 1 to 2048 URL-safe characters: RFC 3986 unreserved ones and %XX */

static ngx_int_t
ngx_http_passkey_invoke_token(ngx_str_t *token)
{
    u_char      ch;
    ngx_uint_t  i;

    if (token->len == 0 || token->len > NGX_HTTP_PASSKEY_TOKEN_MAX) {
        return NGX_DECLINED;
    }

    for (i = 0; i < token->len; i++) {
        ch = token->data[i];

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
            || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'
            || ch == '_' || ch == '~')
        {
            continue;
        }

        if (ch == '%' && token->len - i > 2
            && ngx_hextoi(&token->data[i + 1], 2) != NGX_ERROR)
        {
            i += 2;
            continue;
        }

        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * Percent-decodes once.  Whether Beyond Identity encodes api_base_url is
 * not documented, and a URL that is not encoded decodes to itself.
 * NGX_DECLINED: a "%" without two hex digits, or a control character.
 */

static ngx_int_t
ngx_http_passkey_invoke_unescape(ngx_pool_t *pool, ngx_str_t *s,
    ngx_str_t *out)
{
    u_char     *d;
    ngx_int_t   ch;
    ngx_uint_t  i;

    if (s->len == 0) {
        return NGX_DECLINED;
    }

    out->data = ngx_pnalloc(pool, s->len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    d = out->data;

    for (i = 0; i < s->len; i++) {
        ch = s->data[i];

        if (ch == '%') {
            if (s->len - i < 3) {
                return NGX_DECLINED;
            }

            ch = ngx_hextoi(&s->data[i + 1], 2);

            if (ch == NGX_ERROR) {
                return NGX_DECLINED;
            }

            i += 2;
        }

        if (ch < 0x20 || ch == 0x7f) {
            return NGX_DECLINED;
        }

        *d++ = (u_char) ch;
    }

    out->len = d - out->data;

    return NGX_OK;
}


/*
 * The configured URL (stored without trailing slashes), with the scheme
 * and host compared regardless of case, the path exactly, and one
 * trailing slash in the link allowed.
 */

static ngx_uint_t
ngx_http_passkey_invoke_same_url(ngx_str_t *url, ngx_str_t *conf)
{
    u_char  *p, *last;
    size_t   len, host;

    len = url->len;

    if (len && url->data[len - 1] == '/') {
        len--;
    }

    if (len != conf->len) {
        return 0;
    }

    last = conf->data + conf->len;

    /* passkey_api_url starts with "http://" or "https://" */

    p = ngx_strlchr(conf->data, last, ':');
    if (p == NULL || last - p < 3) {
        return 0;
    }

    p = ngx_strlchr(p + 3, last, '/');
    host = (p ? p : last) - conf->data;

    if (ngx_strncasecmp(url->data, conf->data, host) != 0) {
        return 0;
    }

    return ngx_memcmp(url->data + host, conf->data + host, len - host) == 0;
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
    time_t                        expires, ttl;
    ngx_str_t                     argv[12];
    ngx_http_request_t           *r;
    ngx_http_passkey_loc_conf_t  *plcf;

    r = ic->ctx.request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    /* EVAL script 1 key identity now use reopen state expire ttl job */

    ngx_str_set(&argv[0], "EVAL");
    argv[1] = ngx_http_passkey_open_script;
    ngx_str_set(&argv[2], "1");
    argv[3] = ic->key;
    argv[4] = ic->ctx.identity_id;
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
    argv[11] = ic->ctx.job_id;

    if (state) {
        argv[8] = *state;
        argv[9] = *expire_time;

        /* like a job this module created: until it expires at BI */

        expires = ngx_http_passkey_parse_rfc3339(expire_time);
        ttl = expires ? expires - ngx_time() : 7 * 86400;

        if (ttl < 60) {
            ttl = 60;
        }

        argv[10].data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
        if (argv[10].data == NULL) {
            return NGX_ERROR;
        }

        argv[10].len = ngx_sprintf(argv[10].data, "%T", ttl)
                       - argv[10].data;
    }

    ngx_http_passkey_redis_op_init(r, &ic->ctx.redis,
                                   ngx_http_passkey_invoke_opened, ic);

    if (ngx_http_passkey_redis_send(plcf->redis, &ic->ctx.redis, 12, argv)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: cannot send the binding link check of job "
                      "%V to redis \"%V\"", &ic->ctx.job_id,
                      &plcf->redis->name);
        return NGX_ERROR;
    }

    ic->ctx.waiting_redis = 1;

    return NGX_OK;
}


static void
ngx_http_passkey_invoke_opened(ngx_http_passkey_redis_op_t *op)
{
    ngx_http_passkey_invoke_ctx_t *ic = op->data;

    ngx_uint_t                    i;
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_passkey_ctx_t       *ctx;
    ngx_http_passkey_loc_conf_t  *plcf;

    ctx = &ic->ctx;
    r = ctx->request;
    c = r->connection;

    ctx->waiting_redis = 0;
    ctx->rc = NGX_HTTP_PASSKEY_LINK_REDIS_FAILED;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (op->result != NGX_HTTP_PASSKEY_REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "passkey: redis \"%V\" %s while checking the binding "
                      "link of job %V", &plcf->redis->name,
                      op->result == NGX_HTTP_PASSKEY_REDIS_TIMEOUT
                      ? "timed out" : "is unavailable", &ctx->job_id);

    } else if (op->type == NGX_HTTP_PASSKEY_REDIS_ERROR) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "passkey: redis \"%V\" failed to check the binding "
                      "link of job %V: \"%V\"", &plcf->redis->name,
                      &ctx->job_id, &op->str);

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
                          &plcf->redis->name, &ctx->job_id);
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

    r = ic->ctx.request;
    ic->asked = 1;

    r->connection->log->action = "asking Beyond Identity about the passkey "
                                 "binding job";

    if (ngx_http_passkey_bi_job(&ic->ctx.bi, r, &ic->ctx.identity_id,
                                &ic->ctx.job_id, "GET", "",
                                ngx_http_passkey_invoke_answered, ic)
        != NGX_OK)
    {
        ngx_http_passkey_invoke_answered(&ic->ctx.bi);
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

    r = ic->ctx.request;

    if (bc->result == NGX_HTTP_PASSKEY_API_OK
        && bc->status == NGX_HTTP_NOT_FOUND)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: Beyond Identity does not know binding job "
                      "%V of identity %V", &ic->ctx.job_id,
                      &ic->ctx.identity_id);

        ic->ctx.rc = NGX_HTTP_PASSKEY_LINK_UNKNOWN;
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
                          &ic->ctx.job_id,
                          bc->error ? bc->error : "unknown error");

            ic->ctx.rc = NGX_HTTP_PASSKEY_LINK_OK;

        } else if (ic->known) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "passkey: cannot read binding job %V (%V %V "
                          "answered %ui \"%V\" \"%V\"), its link is handed "
                          "over on what redis holds", &ic->ctx.job_id,
                          &bc->method, &bc->path, bc->status, &bc->log_code,
                          &bc->log_message);

            ic->ctx.rc = NGX_HTTP_PASSKEY_LINK_OK;

        } else {
            /* logs what failed */
            ngx_http_passkey_bi_problem(r, bc, 0, &ic->problem);

            if (ic->problem.status < NGX_HTTP_INTERNAL_SERVER_ERROR) {
                ic->problem.status = NGX_HTTP_BAD_GATEWAY;
                ic->problem.code = "api_unexpected_status";
                ic->problem.detail = "the Beyond Identity API answered an "
                                     "unexpected status";
            }

            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "passkey: binding job %V, which redis does not "
                          "hold, cannot be verified: its link is refused",
                          &ic->ctx.job_id);

            ic->ctx.rc = NGX_HTTP_PASSKEY_LINK_API_FAILED;
        }

        ngx_http_passkey_invoke_resume(ic);
        return;
    }

    ic->ctx.job_state = state;
    ic->ctx.rc = rc;

    if (rc != NGX_HTTP_PASSKEY_LINK_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "passkey: Beyond Identity says binding job %V is %V",
                      &ic->ctx.job_id, &state);

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
                  "Beyond Identity vouches for it", &ic->ctx.job_id);

    r->connection->log->action = "checking the passkey binding link";

    if (ngx_http_passkey_invoke_open(ic, &state, &expire) != NGX_OK) {
        ic->ctx.rc = NGX_HTTP_PASSKEY_LINK_REDIS_FAILED;
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

    r = ic->ctx.request;
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (bc->result != NGX_HTTP_PASSKEY_API_OK || bc->status != NGX_HTTP_OK) {
        return NGX_HTTP_PASSKEY_LINK_API_FAILED;
    }

    if (ngx_http_passkey_job_state(r->pool, bc, state, expire) != NGX_OK) {
        return NGX_HTTP_PASSKEY_LINK_API_FAILED;
    }

    /* each member, when the answer has it, must be this link's */

    want[0] = &ic->ctx.job_id;
    want[1] = &ic->ctx.identity_id;
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
                          "Beyond Identity", &ic->ctx.job_id, names[i]);
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

    r = ic->ctx.request;
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

    ngx_http_passkey_redis_op_init(r, &ic->ctx.redis,
                                   ngx_http_passkey_invoke_recorded, ic);

    if (ngx_http_passkey_redis_send(plcf->redis, &ic->ctx.redis, 6, argv)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: cannot record in redis \"%V\" what Beyond "
                      "Identity said about binding job %V",
                      &plcf->redis->name, &ic->ctx.job_id);

        ngx_http_passkey_invoke_resume(ic);
        return;
    }

    ic->ctx.waiting_redis = 1;
}


/* the refusal stands whether or not Redis recorded why */

static void
ngx_http_passkey_invoke_recorded(ngx_http_passkey_redis_op_t *op)
{
    ngx_http_passkey_invoke_ctx_t *ic = op->data;

    ngx_http_passkey_loc_conf_t  *plcf;

    ic->ctx.waiting_redis = 0;

    if (op->result != NGX_HTTP_PASSKEY_REDIS_OK
        || op->type == NGX_HTTP_PASSKEY_REDIS_ERROR)
    {
        plcf = ngx_http_get_module_loc_conf(ic->ctx.request,
                                            ngx_http_passkey_module);

        ngx_log_error(NGX_LOG_ERR, ic->ctx.request->connection->log, 0,
                      "passkey: redis \"%V\" did not record what Beyond "
                      "Identity said about binding job %V",
                      &plcf->redis->name, &ic->ctx.job_id);
    }

    ngx_http_passkey_invoke_resume(ic);
}


/* the phase handler runs again and acts on the outcome */

static void
ngx_http_passkey_invoke_resume(ngx_http_passkey_invoke_ctx_t *ic)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ic->ctx.request;
    c = r->connection;

    ic->ctx.done = 1;

    r->read_event_handler = ngx_http_block_reading;

    ngx_http_core_run_phases(r);

    /* called from a Redis or API event, not from the request's own */
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_passkey_invoke_outcome(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx)
{
    ngx_http_passkey_loc_conf_t     *plcf;
    ngx_http_passkey_invoke_ctx_t   *ic;
    ngx_http_passkey_link_answer_t  *a;

    a = &ngx_http_passkey_link_answers[ctx->rc];

    if (ctx->rc == NGX_HTTP_PASSKEY_LINK_API_FAILED) {
        ic = (ngx_http_passkey_invoke_ctx_t *) ctx;

        return ngx_http_passkey_invoke_refuse(r, ic->problem.status,
                                              ic->problem.code,
                                              ic->problem.detail, a->text);
    }

    if (ctx->rc != NGX_HTTP_PASSKEY_LINK_OK) {

        if (a->log) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "passkey: binding link of job %V refused: %s",
                          &ctx->job_id, a->log);
        }

        return ngx_http_passkey_invoke_refuse(r, a->status, a->code,
                                              a->detail, a->text);
    }

    if (ngx_http_passkey_invoke_link(r, ctx) != NGX_OK) {
        return ngx_http_passkey_invoke_error(r);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "passkey: binding link of job %V %s", &ctx->job_id,
                  r->method == NGX_HTTP_HEAD ? "checked" : "opened");

    r->connection->log->action = NULL;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (plcf->invoke_redirect) {
        return ngx_http_passkey_invoke_redirect(r, ctx);
    }

    /*
     * The location's content gets the request: the app, or a page.  The
     * headers stay in headers_out for whatever it answers; an app's own
     * Cache-Control is added beside ours, and no-store still wins.
     */

    ngx_http_passkey_no_store(r);

    return NGX_DECLINED;
}


/*
 * The binding link is the URL exactly as the browser sent it: the SDK
 * recognises a link by its shape, so nothing of the path or the query is
 * decoded, normalised or dropped.
 */

static ngx_int_t
ngx_http_passkey_invoke_link(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx)
{
    u_char                    *p;
    ngx_str_t                  scheme, *host;
    ngx_http_core_srv_conf_t  *cscf;

    ngx_str_set(&scheme, "http");

#if (NGX_HTTP_SSL)
    if (r->connection->ssl) {
        ngx_str_set(&scheme, "https");
    }
#endif

    if (r->headers_in.host) {
        host = &r->headers_in.host->value;

    } else if (r->headers_in.server.len) {
        host = &r->headers_in.server;

    } else {
        cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);
        host = &cscf->server_name;
    }

    ctx->binding_link.len = scheme.len + sizeof("://") - 1 + host->len
                            + r->unparsed_uri.len;
    ctx->binding_link.data = ngx_pnalloc(r->pool, ctx->binding_link.len);
    if (ctx->binding_link.data == NULL) {
        ctx->binding_link.len = 0;
        return NGX_ERROR;
    }

    p = ngx_cpymem(ctx->binding_link.data, scheme.data, scheme.len);
    p = ngx_cpymem(p, "://", sizeof("://") - 1);
    p = ngx_cpymem(p, host->data, host->len);
    ngx_memcpy(p, r->unparsed_uri.data, r->unparsed_uri.len);

    ngx_str_set(&ctx->delivery_method, "EMAIL");

    /* the API's state when it was asked, else what the opening made it */

    if (ctx->job_state.len == 0 && r->method != NGX_HTTP_HEAD) {
        ngx_str_set(&ctx->job_state, "LINK_OPENED");
    }

    return NGX_OK;
}


/*
 * passkey_invoke_redirect: 302 to the URL with the binding link in the
 * fragment, which browsers keep to themselves: it reaches the page's
 * script, and never a server, a log or a Referer.
 */

static ngx_int_t
ngx_http_passkey_invoke_redirect(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx)
{
    u_char                       *p;
    ngx_int_t                     rc;
    ngx_str_t                     url, link;
    ngx_uint_t                    i;
    ngx_table_elt_t              *h;
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (ngx_http_complex_value(r, plcf->invoke_redirect, &url) != NGX_OK
        || ngx_http_passkey_http_escape(r->pool, &ctx->binding_link, &link)
           != NGX_OK)
    {
        return ngx_http_passkey_invoke_error(r);
    }

    for (i = 0; i < url.len; i++) {
        if (url.data[i] <= 0x20 || url.data[i] == 0x7f || url.data[i] == '#') {
            break;
        }
    }

    /*
     * the link goes where the URL points: a path of this site, or an
     * allowed origin; "//host" and "/\host" are other sites to browsers
     */

    if (i == url.len && url.len
        && !(url.data[0] == '/'
             && (url.len == 1 || (url.data[1] != '/' && url.data[1] != '\\')))
        && ngx_http_passkey_check_redirect(&url, plcf->redirect_origins)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: \"passkey_invoke_redirect\" gave a URL "
                      "that is not a path here nor of an origin in "
                      "\"passkey_redirect_origins\"; the link of job %V "
                      "was used up", &ctx->job_id);

        return ngx_http_passkey_invoke_refuse(r,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "internal_error",
                                        "the redirect is misconfigured",
                                        "Something went wrong.");
    }

    if (url.len == 0 || i != url.len) {
        /* not the value: its variables could hold anything */

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "passkey: \"passkey_invoke_redirect\" gave a URL "
                      "that is empty or has a fragment, a space or a "
                      "control character; the link of job %V was used up",
                      &ctx->job_id);

        return ngx_http_passkey_invoke_refuse(r,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "internal_error",
                                        "the redirect is misconfigured",
                                        "Something went wrong.");
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return ngx_http_passkey_invoke_error(r);
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "Location");
    h->value.len = url.len + 1 + link.len;
    h->value.data = ngx_pnalloc(r->pool, h->value.len);
    if (h->value.data == NULL) {
        h->hash = 0;
        return ngx_http_passkey_invoke_error(r);
    }

    p = ngx_cpymem(h->value.data, url.data, url.len);
    *p++ = '#';
    ngx_memcpy(p, link.data, link.len);

    ngx_http_clear_location(r);
    r->headers_out.location = h;

    ngx_http_passkey_no_store(r);

    r->headers_out.status = NGX_HTTP_MOVED_TEMPORARILY;
    r->headers_out.content_length_n = 0;

    rc = ngx_http_discard_request_body(r);

    if (rc == NGX_OK) {
        rc = ngx_http_send_header(r);

        if (rc != NGX_ERROR && rc <= NGX_OK && !r->header_only) {
            rc = ngx_http_send_special(r, NGX_HTTP_LAST);
        }
    }

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/*
 * Every refusal is an answer of the module's own, for programs or for
 * people, and never echoes the link.  The request is finalized here; it
 * may be gone when this returns.
 */

static ngx_int_t
ngx_http_passkey_invoke_refuse(ngx_http_request_t *r, ngx_uint_t status,
    char *code, char *detail, char *text)
{
    ngx_int_t  rc;
    ngx_str_t  s;

    r->connection->log->action = NULL;

    rc = ngx_http_discard_request_body(r);

    if (rc == NGX_OK) {

        if (ngx_http_passkey_invoke_wants_json(r)) {
            s.data = (u_char *) detail;
            s.len = ngx_strlen(detail);

            rc = ngx_http_passkey_send_problem(r, status, code, &s);

        } else {
            rc = ngx_http_passkey_send_problem_html(r, status, code, text);
        }
    }

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_passkey_invoke_error(ngx_http_request_t *r)
{
    return ngx_http_passkey_invoke_refuse(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal_error", "out of memory",
                                          "Something went wrong.");
}


/* any Accept header that mentions JSON */

static ngx_uint_t
ngx_http_passkey_invoke_wants_json(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    for (h = ngx_http_passkey_header_in(r, "Accept", sizeof("Accept") - 1,
                                        NULL);
         h;
         h = ngx_http_passkey_header_in(r, "Accept", sizeof("Accept") - 1, h))
    {
        if (ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                             (u_char *) "json", sizeof("json") - 2)
            != NULL)
        {
            return 1;
        }
    }

    return 0;
}

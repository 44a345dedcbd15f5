
/*
 * Copyright (C) ngx_passkey_module authors
 */


#ifndef _NGX_HTTP_PASSKEY_MODULE_H_INCLUDED_
#define _NGX_HTTP_PASSKEY_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_http.h"
#include "ngx_http_passkey_redis.h"
#include "ngx_http_passkey_json.h"
#include "ngx_http_passkey_crypto.h"
#include "ngx_http_passkey_metrics.h"


#define NGX_HTTP_PASSKEY_USERNAME_MAX   64
#define NGX_HTTP_PASSKEY_EMAIL_MAX      254
#define NGX_HTTP_PASSKEY_SECRET_MAX     4096
#define NGX_HTTP_PASSKEY_CA_MAX         (4 * 1024 * 1024)

/* what a client sent, in a log line: at most this much, escaped */
#define NGX_HTTP_PASSKEY_LOG_VALUE_MAX  64
#define NGX_HTTP_PASSKEY_LOG_VALUE_LEN  (4 * NGX_HTTP_PASSKEY_LOG_VALUE_MAX + 3)

#define NGX_HTTP_PASSKEY_RETURN         0x01
#define NGX_HTTP_PASSKEY_EMAIL          0x02

/* passkey_bind_format: the answer's members, as each client reads them */
#define NGX_HTTP_PASSKEY_FORMAT_PASSKEY  0
#define NGX_HTTP_PASSKEY_FORMAT_BI       1
#define NGX_HTTP_PASSKEY_FORMAT_CAMEL    2

#define NGX_HTTP_PASSKEY_SIGNUP         0
#define NGX_HTTP_PASSKEY_AUTHENTICATED  1

#define NGX_HTTP_PASSKEY_REFUSE         0
#define NGX_HTTP_PASSKEY_ALLOW          1     /* passkey_redis_down */
#define NGX_HTTP_PASSKEY_SEND_EMAIL     1     /* passkey_signup_existing */
#define NGX_HTTP_PASSKEY_VERIFY         1     /* passkey_invoke_unknown_jobs */

#define NGX_HTTP_PASSKEY_LIMIT_MAX      8

#define NGX_HTTP_PASSKEY_IDEMPOTENCY_KEY_MIN  16
#define NGX_HTTP_PASSKEY_IDEMPOTENCY_KEY_MAX  255

/* a job state or time from the API, as stored: at most this long */
#define NGX_HTTP_PASSKEY_STATE_MAX      64

/* the same states as ngx_http_passkey_final_state(), for Lua scripts */
#define NGX_HTTP_PASSKEY_FINAL_LUA                                            \
    "local final = {COMPLETE = true, EXPIRED = true, REVOKED = true, "        \
    "FAILED_TO_SEND = true} "


/* how a call to Beyond Identity ended, whatever the HTTP status */
typedef enum {
    NGX_HTTP_PASSKEY_API_OK = 0,           /* an answer; see status */
    NGX_HTTP_PASSKEY_API_TIMEOUT,
    NGX_HTTP_PASSKEY_API_UNREACHABLE,
    NGX_HTTP_PASSKEY_API_BAD_RESPONSE,     /* not JSON, too large */
    NGX_HTTP_PASSKEY_API_DENIED,           /* no access token granted */
    NGX_HTTP_PASSKEY_API_INTERNAL
} ngx_http_passkey_api_result_e;


typedef struct ngx_http_passkey_token_s  ngx_http_passkey_token_t;


/*
 * The bounds of a size or a time, as the post handler of a stock slot:
 * ngx_conf_check_num_bounds() names neither the directive nor the unit.
 */
typedef struct {
    ngx_conf_post_handler_pt          post_handler;
    ngx_uint_t                        low;
    ngx_uint_t                        high;
    char                             *range;    /* "between 1k and 16m" */
} ngx_http_passkey_conf_bounds_t;


typedef struct {
    ngx_array_t                       redis_servers;
    ngx_array_t                       tokens;
    ngx_array_t                       invoke_locations;
    ngx_shm_zone_t                   *token_zone;
    ngx_int_t                         request_id_index;

    /* a passkey_metrics location: the counters' zone */
    ngx_uint_t                        metrics;
    ngx_shm_zone_t                   *metrics_zone;

    /* passkey_api_trusted_certificate: libcurl takes it from memory */
    ngx_uint_t                        ca_blob;

    /* passkey_api_keepalive: idle API connections kept per worker */
    ngx_uint_t                        api_keepalive;
} ngx_http_passkey_main_conf_t;


/* a passkey_invoke location, for the startup check */
typedef struct {
    struct ngx_http_passkey_loc_conf_s  *conf;
    ngx_http_core_loc_conf_t           *location;

    /* its server's plain names; any: one may match anything */
    ngx_array_t                        *server_names;  /* ngx_str_t */
    ngx_uint_t                          any_name;
} ngx_http_passkey_invoke_loc_t;


/* one passkey_limit: a token bucket in Redis */
typedef struct {
    ngx_http_complex_value_t          key;
    ngx_str_t                         text;      /* as written: names keys */
    ngx_uint_t                        rate;      /* tokens per period */
    ngx_msec_t                        period;
    ngx_uint_t                        burst;
} ngx_http_passkey_limit_t;


typedef struct ngx_http_passkey_loc_conf_s {
    ngx_str_t                         api_url;
    ngx_str_t                         auth_url;
    ngx_str_t                         tenant_id;
    ngx_str_t                         realm_id;
    ngx_str_t                         authenticator_config_id;
    ngx_str_t                         token_realm_id;
    ngx_str_t                         application_id;
    ngx_str_t                         client_id;
    ngx_str_t                         client_secret;   /* file contents */
    ngx_str_t                         client_secret2;  /* for rotation */
    ngx_str_t                         api_token;       /* file contents */

    ngx_http_passkey_http_conf_t      http;

    ngx_http_passkey_redis_server_t  *redis;
    ngx_str_t                         redis_prefix;
    ngx_msec_t                        redis_timeout;

    ngx_http_complex_value_t         *username;
    ngx_http_complex_value_t         *email;
    ngx_http_complex_value_t         *display_name;
    size_t                            max_body_size;

    /* the delivery methods a bind may use; the first one is the default */
    ngx_uint_t                        delivery_methods;
    ngx_uint_t                        delivery_default;
    ngx_uint_t                        delivery_implicit;
    ngx_http_complex_value_t         *post_binding_redirect_uri;
    ngx_array_t                      *redirect_origins;   /* ngx_str_t */
    ngx_uint_t                        bind_format;

    /* who may bind what, and how often */
    ngx_uint_t                        bind_mode;
    ngx_uint_t                        signup_existing;
    ngx_array_t                      *allowed_origins;    /* ngx_str_t */
    ngx_array_t                      *limits;   /* ngx_http_passkey_limit_t */
    ngx_msec_t                        email_cooldown;
    ngx_uint_t                        redis_down;
    ngx_msec_t                        idempotency;
    ngx_msec_t                        duplicate_window;
    ngx_msec_t                        identity_cache;

    ngx_http_complex_value_t         *invoke_redirect;
    ngx_uint_t                        invoke_unknown;
    ngx_flag_t                        invoke_reopen;
    ngx_msec_t                        job_refresh_interval;

    ngx_flag_t                        bind;
    ngx_flag_t                        invoke;
    ngx_flag_t                        job_status;
    ngx_flag_t                        job_revoke;
    ngx_flag_t                        metrics;
    ngx_flag_t                        health;
    ngx_http_passkey_token_t         *token;
} ngx_http_passkey_loc_conf_t;


/* an answer to a failure, for ngx_http_passkey_send_problem() */
typedef struct {
    ngx_uint_t                        status;
    char                             *code;
    char                             *detail;
} ngx_http_passkey_problem_t;


typedef struct ngx_http_passkey_bi_call_s  ngx_http_passkey_bi_call_t;
typedef struct ngx_http_passkey_token_wait_s  ngx_http_passkey_token_wait_t;

typedef void (*ngx_http_passkey_bi_done_pt)(ngx_http_passkey_bi_call_t *bc);
typedef void (*ngx_http_passkey_token_done_pt)(
    ngx_http_passkey_token_wait_t *w);


struct ngx_http_passkey_token_wait_s {
    ngx_queue_t                       queue;
    ngx_pool_t                       *pool;
    ngx_log_t                        *log;
    ngx_http_passkey_token_done_pt    handler;
    void                             *data;

    /* set by ngx_http_passkey_token_get() for a wait */
    ngx_http_passkey_token_t         *cache;
    ngx_msec_t                        deadline;

    ngx_http_passkey_api_result_e     result;
    ngx_str_t                         token;        /* in pool */
    ngx_uint_t                        generation;
    const char                       *error;

    unsigned                          waiting:1;
};


/* one call to the Beyond Identity API, with token handling */
struct ngx_http_passkey_bi_call_s {
    ngx_pool_t                       *pool;
    ngx_log_t                        *log;
    ngx_http_passkey_loc_conf_t      *conf;

    ngx_str_t                         method;
    ngx_str_t                         path;    /* after .../realms/{r} */
    ngx_str_t                         query;
    ngx_str_t                         body;    /* JSON; empty: none */

    ngx_http_passkey_bi_done_pt       handler;
    void                             *data;

    ngx_http_passkey_api_result_e     result;
    ngx_uint_t                        status;
    ngx_http_passkey_json_t          *json;    /* parsed object or NULL */
    ngx_str_t                         retry_after;
    ngx_str_t                         api_code;
    ngx_str_t                         api_message;
    ngx_str_t                         log_code;     /* the two above, */
    ngx_str_t                         log_message;  /* fit for a log */
    const char                       *error;

    /* private to ngx_http_passkey_bi.c */
    ngx_http_passkey_http_call_t      http;
    ngx_http_passkey_token_wait_t     wait;
    ngx_uint_t                        generation;
    unsigned                          retried:1;
    unsigned                          active:1;
};


typedef enum {
    NGX_HTTP_PASSKEY_STEP_NONE = 0,
    NGX_HTTP_PASSKEY_STEP_GUARD,
    NGX_HTTP_PASSKEY_STEP_FIND_IDENTITY,
    NGX_HTTP_PASSKEY_STEP_CREATE_IDENTITY,
    NGX_HTTP_PASSKEY_STEP_COOLDOWN,
    NGX_HTTP_PASSKEY_STEP_CREATE_JOB,
    NGX_HTTP_PASSKEY_STEP_STORE_JOB,
    NGX_HTTP_PASSKEY_STEP_SAVE_ANSWER
} ngx_http_passkey_step_e;


/* what the guard (rate limits, idempotency, duplicates) decided */
typedef enum {
    NGX_HTTP_PASSKEY_GUARD_PASS = 0,
    NGX_HTTP_PASSKEY_GUARD_LIMITED,
    NGX_HTTP_PASSKEY_GUARD_REPLAY,
    NGX_HTTP_PASSKEY_GUARD_PENDING,
    NGX_HTTP_PASSKEY_GUARD_MISMATCH,
    NGX_HTTP_PASSKEY_GUARD_DUPLICATE,
    NGX_HTTP_PASSKEY_GUARD_DOWN            /* redis failed */
} ngx_http_passkey_guard_e;


typedef struct {
    ngx_http_passkey_guard_e          result;
    ngx_http_passkey_loc_conf_t      *conf;

    /* the idempotency key or the duplicate lock this request holds */
    ngx_str_t                         key;
    ngx_str_t                         secret;       /* Idempotency-Key */
    ngx_str_t                         fingerprint;
    ngx_str_t                         owner;        /* the request id */
    unsigned                          idempotent:1;
    unsigned                          held:1;
    unsigned                          unsure:1;     /* maybe held */
    unsigned                          counted:1;    /* passkey_metrics */

    /* the limits that applied, by bucket; the tightest one */
    ngx_http_passkey_limit_t         *limits[NGX_HTTP_PASSKEY_LIMIT_MAX];
    ngx_http_passkey_limit_t         *limit;
    ngx_uint_t                        remaining;
    ngx_msec_t                        reset;
    ngx_msec_t                        retry;

    /* a replayed answer */
    ngx_uint_t                        status;
    ngx_str_t                         body;
} ngx_http_passkey_guard_t;


/*
 * What every flow's context starts with, whichever handler the request
 * went to: what the $passkey_* variables read.
 */
typedef struct {
    ngx_str_t                         job_id;
    ngx_str_t                         identity_id;
    ngx_str_t                         job_state;
    ngx_str_t                         delivery_method;
    ngx_str_t                         binding_link;  /* a /bind URL */
    ngx_str_t                         username;
    ngx_str_t                         email;
    ngx_http_passkey_json_t          *body;          /* $passkey_json_ */
} ngx_http_passkey_vars_t;


/* what became of the identity a bind is for */
typedef enum {
    NGX_HTTP_PASSKEY_IDENTITY_CREATED = 0,
    NGX_HTTP_PASSKEY_IDENTITY_FOUND,
    NGX_HTTP_PASSKEY_IDENTITY_TAKEN,       /* sign-up: no job for it */
    NGX_HTTP_PASSKEY_IDENTITY_MISSPELLED,  /* authenticated: another case */
    NGX_HTTP_PASSKEY_IDENTITY_NONE,        /* 409, yet no such username */
    NGX_HTTP_PASSKEY_IDENTITY_FAILED       /* an API call: see ctx->bi */
} ngx_http_passkey_identity_e;


typedef struct ngx_http_passkey_ctx_s  ngx_http_passkey_ctx_t;

typedef void (*ngx_http_passkey_identity_done_pt)(
    ngx_http_passkey_ctx_t *ctx, ngx_http_passkey_identity_e rc);


struct ngx_http_passkey_ctx_s {
    /* first: the $passkey_* variables read it */
    ngx_http_passkey_vars_t           vars;

    ngx_http_request_t               *request;
    ngx_str_t                         display_name;
    ngx_str_t                         expire_time;
    ngx_str_t                         link;
    ngx_http_passkey_json_t          *job;      /* as the API answered */
    ngx_str_t                         post_binding_redirect_uri;
    time_t                            expires;

    ngx_str_t                         conflict;
    ngx_str_t                         raw_body;

    /* a refusal of what the request asked for, to be answered */
    ngx_http_passkey_problem_t        problem;

    /* the answer, once built: kept for replays, then sent */
    ngx_uint_t                        answer_status;
    ngx_str_t                         answer;

    ngx_http_passkey_guard_t          guard;

    ngx_http_passkey_step_e           step;
    ngx_http_passkey_bi_call_t        bi;
    ngx_http_passkey_redis_op_t       redis;

    /* the whole bind, whatever step it is at */
    ngx_event_t                       deadline;

    ngx_http_passkey_identity_done_pt  identity_done;

    /* the identity a verified username had before (identity.c) */
    ngx_http_passkey_redis_op_t       recall;
    ngx_str_t                         recalled;
    unsigned                          recalling:1;
    unsigned                          recall_awaited:1;
    unsigned                          remembered:1;
    unsigned                          lookup_first:1;

    unsigned                          created:1;
    unsigned                          existing:1;   /* sign-up: taken */
    unsigned                          posted:1;     /* the job's POST */
    unsigned                          waiting_redis:1;
};


/* the /bind check of passkey_invoke */
typedef struct {
    /* first: the $passkey_* variables read it */
    ngx_http_passkey_vars_t           vars;

    ngx_http_request_t               *request;
    ngx_str_t                         key;
    ngx_str_t                         now;       /* RFC 3339, seconds */
    ngx_http_passkey_problem_t        problem;   /* the API failed */
    ngx_http_passkey_bi_call_t        bi;
    ngx_http_passkey_redis_op_t       redis;
    ngx_int_t                         rc;        /* the outcome */

    unsigned                          done:1;
    unsigned                          known:1;   /* Redis had the job */
    unsigned                          asked:1;   /* the API was asked */
    unsigned                          waiting_redis:1;
} ngx_http_passkey_invoke_ctx_t;


extern ngx_module_t  ngx_http_passkey_module;


/* ngx_http_passkey_redis_conf.c */
char *ngx_http_passkey_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* ngx_http_passkey_directives.c */
char *ngx_http_passkey_conf_set_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_passkey_conf_set_id(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_passkey_conf_set_secret_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_passkey_conf_set_certificate(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_passkey_read_secret(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *secret, ngx_str_t *directive);
char *ngx_http_passkey_bind(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_passkey_handler_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_passkey_delivery_method(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_passkey_origins(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_passkey_conf_set_time_or_off(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_passkey_conf_set_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_passkey_conf_check_bounds(ngx_conf_t *cf, void *post,
    void *data);

/* ngx_http_passkey_location.c */
char *ngx_http_passkey_check_handler_conf(ngx_conf_t *cf,
    ngx_http_passkey_loc_conf_t *plcf);
char *ngx_http_passkey_check_bind_conf(ngx_conf_t *cf,
    ngx_http_passkey_loc_conf_t *plcf);

/* ngx_http_passkey_variables.c */
ngx_int_t ngx_http_passkey_add_variables(ngx_conf_t *cf);

/* ngx_http_passkey_reply.c */
ngx_int_t ngx_http_passkey_send_raw(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body);
ngx_int_t ngx_http_passkey_send_early(ngx_http_request_t *r,
    ngx_uint_t status, char *code);
ngx_int_t ngx_http_passkey_send_not_allowed(ngx_http_request_t *r,
    char *allow);
ngx_int_t ngx_http_passkey_add_header(ngx_http_request_t *r, char *name,
    char *value);
ngx_int_t ngx_http_passkey_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_http_passkey_json_t *json);
ngx_int_t ngx_http_passkey_send_problem(ngx_http_request_t *r,
    ngx_uint_t status, char *code, ngx_str_t *detail);
void ngx_http_passkey_no_store(ngx_http_request_t *r);
void ngx_http_passkey_finalize(ngx_http_request_t *r, ngx_int_t rc);
ngx_int_t ngx_http_passkey_send_problem_html(ngx_http_request_t *r,
    ngx_uint_t status, char *code, char *title_text);

/* ngx_http_passkey_body.c */
ngx_int_t ngx_http_passkey_read_client_body(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt handler);
ngx_int_t ngx_http_passkey_read_body(ngx_http_request_t *r, ngx_str_t *body);

/* ngx_http_passkey_reply.c, the answer to an API call that failed */
void ngx_http_passkey_api_problem(ngx_http_request_t *r,
    ngx_http_passkey_bi_call_t *bc, ngx_uint_t creating_identity,
    ngx_http_passkey_problem_t *pb);

/* ngx_http_passkey_input.c */
ngx_int_t ngx_http_passkey_check_name(ngx_str_t *s);
ngx_int_t ngx_http_passkey_check_email(ngx_str_t *s);
ngx_int_t ngx_http_passkey_configured_value(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_str_t *value);
ngx_int_t ngx_http_passkey_verified_user(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_str_t *name);
void ngx_http_passkey_log_value(ngx_str_t *in, ngx_str_t *out, u_char *buf);
ngx_int_t ngx_http_passkey_hide_args(ngx_http_request_t *r);
ngx_int_t ngx_http_passkey_safe_uri(ngx_http_request_t *r, ngx_str_t *uri);
ngx_int_t ngx_http_passkey_check_redirect(ngx_str_t *uri,
    ngx_array_t *origins);
ngx_int_t ngx_http_passkey_check_content_type(ngx_http_request_t *r);
ngx_int_t ngx_http_passkey_check_origin(ngx_http_request_t *r,
    ngx_array_t *origins);
ngx_table_elt_t *ngx_http_passkey_header_in(ngx_http_request_t *r,
    char *name, size_t len, ngx_table_elt_t *after);

/* ngx_http_passkey_guard.c */
char *ngx_http_passkey_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_passkey_guard_start(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_redis_done_pt handler);
ngx_int_t ngx_http_passkey_guard_result(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_redis_op_t *op);
ngx_int_t ngx_http_passkey_guard_save(ngx_http_passkey_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *body, ngx_http_passkey_redis_done_pt handler);
ngx_msec_t ngx_http_passkey_bind_deadline(ngx_http_passkey_loc_conf_t *plcf);
void ngx_http_passkey_guard_release(ngx_http_passkey_guard_t *g);
void ngx_http_passkey_guard_abandon(ngx_http_passkey_guard_t *g);
void ngx_http_passkey_guard_keep(ngx_http_passkey_guard_t *g);
void ngx_http_passkey_guard_saved(ngx_http_passkey_guard_t *g,
    ngx_uint_t kept);
void ngx_http_passkey_guard_finish(ngx_http_passkey_guard_t *g);
void ngx_http_passkey_guard_cooling(ngx_http_passkey_guard_t *g,
    ngx_msec_t ms);
ngx_int_t ngx_http_passkey_guard_cooldown(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_redis_done_pt handler);
ngx_int_t ngx_http_passkey_guard_headers(ngx_http_request_t *r,
    ngx_http_passkey_guard_t *g);

/* ngx_http_passkey_bind.c */
ngx_int_t ngx_http_passkey_bind_handler(ngx_http_request_t *r);

/* ngx_http_passkey_bind_answer.c */
ngx_http_passkey_json_t *ngx_http_passkey_bind_shape(
    ngx_http_passkey_ctx_t *ctx, ngx_uint_t format);
ngx_http_passkey_json_t *ngx_http_passkey_bind_accepted_shape(
    ngx_pool_t *pool);

/* ngx_http_passkey_bind_request.c */
ngx_int_t ngx_http_passkey_bind_request(ngx_http_request_t *r,
    ngx_http_passkey_ctx_t *ctx);

/* ngx_http_passkey_invoke.c */
ngx_int_t ngx_http_passkey_invoke_handler(ngx_http_request_t *r);

/* ngx_http_passkey_invoke_args.c */
ngx_int_t ngx_http_passkey_invoke_args(ngx_http_request_t *r,
    ngx_http_passkey_invoke_ctx_t *ctx);

/* ngx_http_passkey_handover.c */
ngx_int_t ngx_http_passkey_invoke_handover(ngx_http_request_t *r,
    ngx_http_passkey_invoke_ctx_t *ctx);
ngx_int_t ngx_http_passkey_invoke_refuse(ngx_http_request_t *r,
    ngx_uint_t status, char *code, char *detail, char *text);
ngx_int_t ngx_http_passkey_invoke_error(ngx_http_request_t *r);

/* ngx_http_passkey_status.c */
ngx_int_t ngx_http_passkey_job_status_handler(ngx_http_request_t *r);

/* ngx_http_passkey_revoke.c */
ngx_int_t ngx_http_passkey_job_revoke_handler(ngx_http_request_t *r);

/* ngx_http_passkey_health.c */
ngx_int_t ngx_http_passkey_health_handler(ngx_http_request_t *r);

/* ngx_http_passkey_check.c */
ngx_int_t ngx_http_passkey_check_init_process(ngx_cycle_t *cycle,
    ngx_http_passkey_main_conf_t *pmcf);
void ngx_http_passkey_check_exit_process(ngx_cycle_t *cycle);

/* ngx_http_passkey_identity.c */
void ngx_http_passkey_identity_recall(ngx_http_passkey_ctx_t *ctx);
ngx_int_t ngx_http_passkey_identity_resolve(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_identity_done_pt done);
ngx_int_t ngx_http_passkey_identity_forget(ngx_http_passkey_ctx_t *ctx);
ngx_int_t ngx_http_passkey_identity_remember(ngx_http_passkey_ctx_t *ctx,
    ngx_str_t *key, ngx_str_t *ttl);
void ngx_http_passkey_identity_remember_apart(ngx_http_passkey_ctx_t *ctx,
    ngx_str_t *key, ngx_str_t *ttl);

/* ngx_http_passkey_job.c */
ngx_int_t ngx_http_passkey_job_created_read(ngx_http_passkey_ctx_t *ctx,
    ngx_pool_t *pool, ngx_http_passkey_json_t *json);
ngx_int_t ngx_http_passkey_job_ttl(ngx_pool_t *pool, time_t expires,
    ngx_str_t *ttl);
ngx_int_t ngx_http_passkey_job_store(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_redis_done_pt handler);
ngx_int_t ngx_http_passkey_job_key(ngx_http_request_t *r, ngx_str_t *job_id,
    ngx_str_t *key);
ngx_int_t ngx_http_passkey_redis_ask(ngx_http_request_t *r,
    ngx_http_passkey_redis_op_t *op, ngx_http_passkey_redis_done_pt handler,
    void *data, ngx_uint_t argc, ngx_str_t *argv);
void ngx_http_passkey_rfc3339(time_t t, u_char *buf);
ngx_int_t ngx_http_passkey_rfc3339_now(ngx_pool_t *pool, ngx_str_t *s);
ngx_uint_t ngx_http_passkey_final_state(ngx_str_t *state);
ngx_int_t ngx_http_passkey_valid_id(ngx_str_t *id);
ngx_int_t ngx_http_passkey_valid_value(ngx_str_t *s, ngx_uint_t time);
ngx_int_t ngx_http_passkey_job_state(ngx_pool_t *pool,
    ngx_http_passkey_bi_call_t *bc, ngx_str_t *state, ngx_str_t *expire_time);
time_t ngx_http_passkey_parse_rfc3339(ngx_str_t *s);

/* ngx_http_passkey_bi.c */
ngx_int_t ngx_http_passkey_bi_start(ngx_http_passkey_bi_call_t *bc);
void ngx_http_passkey_bi_cancel(ngx_http_passkey_bi_call_t *bc);
ngx_int_t ngx_http_passkey_bi_request(ngx_http_passkey_bi_call_t *bc,
    ngx_http_request_t *r, char *method, ngx_str_t *path, ngx_str_t *query,
    ngx_http_passkey_json_t *body, ngx_http_passkey_bi_done_pt handler,
    void *data);
ngx_int_t ngx_http_passkey_bi_job(ngx_http_passkey_bi_call_t *bc,
    ngx_http_request_t *r, ngx_str_t *identity_id, ngx_str_t *job_id,
    char *method, char *suffix, ngx_http_passkey_bi_done_pt handler,
    void *data);

/* ngx_http_passkey_token.c */
ngx_http_passkey_token_t *ngx_http_passkey_token_add(ngx_conf_t *cf,
    ngx_http_passkey_loc_conf_t *plcf);
ngx_int_t ngx_http_passkey_token_init_zone(ngx_conf_t *cf,
    ngx_http_passkey_main_conf_t *pmcf);
ngx_int_t ngx_http_passkey_token_init_process(ngx_cycle_t *cycle,
    ngx_http_passkey_main_conf_t *pmcf);
void ngx_http_passkey_token_exit_process(ngx_cycle_t *cycle,
    ngx_http_passkey_main_conf_t *pmcf);
ngx_int_t ngx_http_passkey_token_get(ngx_http_passkey_token_t *token,
    ngx_http_passkey_token_wait_t *w);
void ngx_http_passkey_token_cancel(ngx_http_passkey_token_wait_t *w);
ngx_uint_t ngx_http_passkey_token_renewable(ngx_http_passkey_token_t *token);
void ngx_http_passkey_token_invalidate(ngx_http_passkey_token_t *token,
    ngx_uint_t generation);


#endif /* _NGX_HTTP_PASSKEY_MODULE_H_INCLUDED_ */


/*
 * Copyright (C) ngx_passkey_module authors
 */


#ifndef _NGX_HTTP_PASSKEY_JOB_ENDPOINT_H_INCLUDED_
#define _NGX_HTTP_PASSKEY_JOB_ENDPOINT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * The job endpoints, passkey_job_status (ngx_http_passkey_status.c) and
 * passkey_job_revoke (ngx_http_passkey_revoke.c), on what they share
 * (ngx_http_passkey_job_endpoint.c): the job read from Redis for its
 * caller, what the API said recorded there, and the answer.
 */


typedef struct ngx_http_passkey_status_ctx_s  ngx_http_passkey_status_ctx_t;

typedef void (*ngx_http_passkey_job_handler_pt)(
    ngx_http_passkey_status_ctx_t *sc);


/* what sets an endpoint apart */

typedef struct {
    ngx_str_t                         suffix;    /* may end the job id */
    ngx_uint_t                        claim;     /* claims the refresh */
    ngx_http_passkey_job_handler_pt   handler;   /* the caller's job is read */
} ngx_http_passkey_job_endpoint_t;


/* what became of this request's refresh */

typedef enum {
    NGX_HTTP_PASSKEY_REFRESH_NONE = 0,     /* not due, or a final state */
    NGX_HTTP_PASSKEY_REFRESH_OK,
    NGX_HTTP_PASSKEY_REFRESH_FAILED
} ngx_http_passkey_refresh_e;


/* a job endpoint's request */

struct ngx_http_passkey_status_ctx_s {
    /* first: the $passkey_* variables read it */
    ngx_http_passkey_vars_t           vars;

    ngx_http_request_t               *request;
    ngx_str_t                         expire_time;
    ngx_http_passkey_bi_call_t        bi;
    ngx_http_passkey_redis_op_t       redis;

    ngx_http_passkey_job_endpoint_t  *endpoint;
    ngx_str_t                         key;
    ngx_str_t                         caller;     /* authenticated mode */
    ngx_str_t                         owner;      /* the job's username */
    ngx_str_t                         created_at;
    ngx_str_t                         opened_at;
    ngx_str_t                         refreshed_at;
    ngx_str_t                         revoked_at;
    ngx_str_t                         gone_at;

    /* the answer once Redis has recorded what the API said */
    ngx_uint_t                        status;
    char                             *code;
    char                             *detail;

    ngx_http_passkey_refresh_e        refresh;

    unsigned                          claimed:1;  /* the refresh is ours */
    unsigned                          waiting_redis:1;
};


/* a content handler's start: NGX_DONE, or a status to answer at once */
ngx_int_t ngx_http_passkey_job_start(ngx_http_request_t *r,
    ngx_http_passkey_job_endpoint_t *endpoint);

/* each of these ends the request, now or once Redis has replied */
void ngx_http_passkey_job_gone(ngx_http_passkey_status_ctx_t *sc);
void ngx_http_passkey_job_update(ngx_http_passkey_status_ctx_t *sc,
    ngx_uint_t n, ngx_str_t *fields);
void ngx_http_passkey_job_send(ngx_http_passkey_status_ctx_t *sc);
void ngx_http_passkey_job_fail(ngx_http_passkey_status_ctx_t *sc,
    ngx_uint_t status, char *code, char *detail);


#endif /* _NGX_HTTP_PASSKEY_JOB_ENDPOINT_H_INCLUDED_ */

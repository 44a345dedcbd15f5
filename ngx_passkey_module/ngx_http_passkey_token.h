
/*
 * Copyright (C) ngx_passkey_module authors
 */


#ifndef _NGX_HTTP_PASSKEY_TOKEN_H_INCLUDED_
#define _NGX_HTTP_PASSKEY_TOKEN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * The access token cache, shared by ngx_http_passkey_token.c (fetching a
 * token, requests that wait for one) and ngx_http_passkey_token_shm.c (the
 * slots in shared memory that all workers read).
 */


#define NGX_HTTP_PASSKEY_TOKEN_MAX      8192

/* after a failed fetch: 1 s, doubled at each failure in a row, up to 30 s */
#define NGX_HTTP_PASSKEY_BACKOFF_MIN    1000
#define NGX_HTTP_PASSKEY_BACKOFF_MAX    30000

/* or as long as the token endpoint's Retry-After says, up to 5 minutes */
#define NGX_HTTP_PASSKEY_BACKOFF_ASKED  300000


/* what a look at a token's slot found */
typedef enum {
    NGX_HTTP_PASSKEY_TOKEN_VALID = 0,      /* copied, if asked for */
    NGX_HTTP_PASSKEY_TOKEN_RENEW,          /* valid, copied; this worker is
                                              to renew it */
    NGX_HTTP_PASSKEY_TOKEN_FETCH,          /* this worker is to fetch it */
    NGX_HTTP_PASSKEY_TOKEN_WAIT,           /* a fetch is under way */
    NGX_HTTP_PASSKEY_TOKEN_BACKOFF,        /* the last fetch failed */
    NGX_HTTP_PASSKEY_TOKEN_ERROR           /* no zone, no memory */
} ngx_http_passkey_token_state_e;


/* the failure a worker backs off from */
typedef struct {
    ngx_http_passkey_api_result_e     result;
    ngx_msec_t                        left;       /* until the next fetch */
    ngx_uint_t                        failures;   /* in a row */
} ngx_http_passkey_token_backoff_t;


struct ngx_http_passkey_token_s {
    ngx_uint_t                        index;
    u_char                            key[NGX_HTTP_PASSKEY_DIGEST_HEX_LEN];
    ngx_str_t                         url;
    ngx_str_t                         client_id;
    ngx_str_t                         authorization[2];  /* per secret */
    ngx_str_t                         static_token;
    ngx_http_passkey_http_conf_t     *http;
    ngx_http_passkey_main_conf_t     *pmcf;

    /* per worker */
    ngx_queue_t                       waiters;    /* by deadline */
    ngx_http_passkey_http_call_t     *call;
    ngx_uint_t                        secret;     /* of the fetch in flight */
    ngx_uint_t                        retried;    /* with the other one */
    ngx_event_t                       poll;
    ngx_event_t                       prefetch;
    ngx_event_t                       expire;     /* the first deadline */
    ngx_connection_t                  dummy;
};


/* ngx_http_passkey_token_shm.c */
ngx_http_passkey_token_state_e ngx_http_passkey_token_look(
    ngx_http_passkey_token_t *token, ngx_http_passkey_token_wait_t *w,
    ngx_http_passkey_token_backoff_t *bo);
ngx_int_t ngx_http_passkey_token_copy(ngx_http_passkey_token_t *token,
    ngx_http_passkey_token_wait_t *w);
ngx_int_t ngx_http_passkey_token_keep(ngx_http_passkey_token_t *token,
    ngx_str_t *access_token, uint64_t renew, uint64_t lifetime);
ngx_msec_t ngx_http_passkey_token_failed(ngx_http_passkey_token_t *token,
    ngx_http_passkey_api_result_e result, ngx_msec_t wait);
ngx_int_t ngx_http_passkey_token_extend(ngx_http_passkey_token_t *token);
ngx_int_t ngx_http_passkey_token_age(ngx_http_passkey_token_t *token,
    ngx_msec_t *age, ngx_uint_t *valid);


#endif /* _NGX_HTTP_PASSKEY_TOKEN_H_INCLUDED_ */

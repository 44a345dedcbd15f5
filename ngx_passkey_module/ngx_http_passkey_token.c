
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * Access tokens from the client-credentials grant, shared by all workers
 * through a shared memory zone.  One worker refreshes at a time; requests
 * in that worker queue on the token, requests in other workers look again
 * on a short timer.  The token is opaque: it is never parsed or logged.
 *
 * With two client secrets (a rotation), a fetch that the token endpoint
 * rejects for its client credentials is made again at once with the other
 * secret; the slot remembers the one that was accepted, so that every
 * worker starts with it next time.
 */


#define NGX_HTTP_PASSKEY_TOKEN_MAX    8192
#define NGX_HTTP_PASSKEY_TOKEN_POLL   20


typedef struct {
    uint32_t                          key;
    ngx_pid_t                         refresher;
    uint64_t                          refresh_deadline;
    uint64_t                          expires;
    ngx_uint_t                        generation;
    ngx_uint_t                        secret;     /* 0, 1: last accepted */
    size_t                            len;
    u_char                            data[NGX_HTTP_PASSKEY_TOKEN_MAX];
} ngx_http_passkey_token_slot_t;


typedef struct {
    ngx_uint_t                        nslots;
    ngx_http_passkey_token_slot_t     slots[1];
} ngx_http_passkey_token_sh_t;


struct ngx_http_passkey_token_s {
    ngx_uint_t                        index;
    uint32_t                          key;
    ngx_str_t                         url;
    ngx_str_t                         client_id;
    ngx_str_t                         authorization[2];  /* per secret */
    ngx_str_t                         static_token;
    ngx_http_passkey_http_conf_t     *http;
    ngx_http_passkey_main_conf_t     *pmcf;

    /* per worker */
    ngx_queue_t                       waiters;
    ngx_http_passkey_http_call_t     *call;
    ngx_uint_t                        secret;     /* of the fetch in flight */
    ngx_uint_t                        retried;    /* with the other one */
    ngx_event_t                       poll;
    ngx_event_t                       prefetch;
    ngx_connection_t                  dummy;
};


static ngx_int_t ngx_http_passkey_token_basic(ngx_conf_t *cf,
    ngx_str_t *client_id, ngx_str_t *secret, ngx_str_t *basic);
static ngx_int_t ngx_http_passkey_token_init_shm(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_passkey_token_slot_t *ngx_http_passkey_token_slot(
    ngx_http_passkey_token_t *token, ngx_slab_pool_t **shpool);
static ngx_int_t ngx_http_passkey_token_copy(ngx_http_passkey_token_slot_t *s,
    ngx_http_passkey_token_wait_t *w);
static ngx_int_t ngx_http_passkey_token_refresh(
    ngx_http_passkey_token_t *token, ngx_log_t *log);
static void ngx_http_passkey_token_refreshed(
    ngx_http_passkey_http_call_t *call);
static ngx_http_passkey_api_result_e ngx_http_passkey_token_store(
    ngx_http_passkey_token_t *token, ngx_http_passkey_http_call_t *call,
    ngx_uint_t *rejected);
static void ngx_http_passkey_token_poll(ngx_event_t *ev);
static void ngx_http_passkey_token_prefetch(ngx_event_t *ev);
static ngx_uint_t ngx_http_passkey_token_claim(ngx_http_passkey_token_t *token,
    ngx_http_passkey_token_slot_t *slot, uint64_t now);
static void ngx_http_passkey_token_unclaim(ngx_http_passkey_token_slot_t *slot,
    ngx_slab_pool_t *shpool);
static uint64_t ngx_http_passkey_token_deadline(
    ngx_http_passkey_token_t *token);
static void ngx_http_passkey_token_wake(ngx_http_passkey_token_t *token,
    ngx_http_passkey_api_result_e result, const char *error);
static uint64_t ngx_http_passkey_token_now(void);


ngx_http_passkey_token_t *
ngx_http_passkey_token_add(ngx_conf_t *cf, ngx_http_passkey_loc_conf_t *plcf)
{
    uint32_t                       key;
    ngx_uint_t                     i;
    ngx_http_passkey_token_t      *token, **tokens, **tp;
    ngx_http_passkey_main_conf_t  *pmcf;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_passkey_module);

    ngx_crc32_init(key);
    ngx_crc32_update(&key, plcf->auth_url.data, plcf->auth_url.len);
    ngx_crc32_update(&key, plcf->tenant_id.data, plcf->tenant_id.len);
    ngx_crc32_update(&key, plcf->token_realm_id.data,
                     plcf->token_realm_id.len);
    ngx_crc32_update(&key, plcf->application_id.data,
                     plcf->application_id.len);
    ngx_crc32_update(&key, plcf->client_id.data, plcf->client_id.len);
    ngx_crc32_update(&key, plcf->client_secret.data, plcf->client_secret.len);
    ngx_crc32_update(&key, (u_char *) &plcf->client_secret2.len,
                     sizeof(size_t));
    ngx_crc32_update(&key, plcf->client_secret2.data,
                     plcf->client_secret2.len);
    ngx_crc32_update(&key, plcf->api_token.data, plcf->api_token.len);
    ngx_crc32_update(&key, (u_char *) &plcf->http.connect_timeout,
                     sizeof(ngx_msec_t));
    ngx_crc32_update(&key, (u_char *) &plcf->http.timeout,
                     sizeof(ngx_msec_t));
    ngx_crc32_update(&key, (u_char *) &plcf->http.max_response,
                     sizeof(size_t));
    ngx_crc32_update(&key, (u_char *) &plcf->http.verify, sizeof(ngx_flag_t));
    ngx_crc32_update(&key, plcf->http.trusted_certificate.data,
                     plcf->http.trusted_certificate.len);
    ngx_crc32_final(key);

    tokens = pmcf->tokens.elts;

    for (i = 0; i < pmcf->tokens.nelts; i++) {
        if (tokens[i]->key == key) {
            return tokens[i];
        }
    }

    token = ngx_pcalloc(cf->pool, sizeof(ngx_http_passkey_token_t));
    if (token == NULL) {
        return NULL;
    }

    token->index = pmcf->tokens.nelts;
    token->key = key;
    token->http = &plcf->http;
    token->pmcf = pmcf;

    if (plcf->api_token.len) {
        token->static_token = plcf->api_token;
        goto done;
    }

    token->url.len = plcf->auth_url.len + sizeof("/v1/tenants/") - 1
                     + plcf->tenant_id.len + sizeof("/realms/") - 1
                     + plcf->token_realm_id.len
                     + sizeof("/applications/") - 1
                     + plcf->application_id.len + sizeof("/token") - 1;

    token->url.data = ngx_pnalloc(cf->pool, token->url.len);
    if (token->url.data == NULL) {
        return NULL;
    }

    ngx_sprintf(token->url.data, "%V/v1/tenants/%V/realms/%V/applications/%V"
                "/token", &plcf->auth_url, &plcf->tenant_id,
                &plcf->token_realm_id, &plcf->application_id);

    token->client_id = plcf->client_id;

    if (ngx_http_passkey_token_basic(cf, &plcf->client_id,
                                     &plcf->client_secret,
                                     &token->authorization[0])
        != NGX_OK)
    {
        return NULL;
    }

    if (plcf->client_secret2.len
        && ngx_http_passkey_token_basic(cf, &plcf->client_id,
                                        &plcf->client_secret2,
                                        &token->authorization[1])
           != NGX_OK)
    {
        return NULL;
    }

done:

    tp = ngx_array_push(&pmcf->tokens);
    if (tp == NULL) {
        return NULL;
    }

    *tp = token;

    return token;
}


/* client_secret_basic: "Basic base64(client_id:client_secret)" */

static ngx_int_t
ngx_http_passkey_token_basic(ngx_conf_t *cf, ngx_str_t *client_id,
    ngx_str_t *secret, ngx_str_t *basic)
{
    u_char     *p;
    ngx_str_t   creds, encoded;

    creds.len = client_id->len + 1 + secret->len;
    creds.data = ngx_pnalloc(cf->pool, creds.len);
    if (creds.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(creds.data, client_id->data, client_id->len);
    *p++ = ':';
    ngx_memcpy(p, secret->data, secret->len);

    basic->len = sizeof("Basic ") - 1 + ngx_base64_encoded_length(creds.len);
    basic->data = ngx_pnalloc(cf->pool, basic->len);
    if (basic->data == NULL) {
        return NGX_ERROR;
    }

    encoded.data = ngx_cpymem(basic->data, "Basic ", sizeof("Basic ") - 1);
    ngx_encode_base64(&encoded, &creds);

    basic->len = sizeof("Basic ") - 1 + encoded.len;

    ngx_explicit_memzero(creds.data, creds.len);

    return NGX_OK;
}


ngx_int_t
ngx_http_passkey_token_init_zone(ngx_conf_t *cf,
    ngx_http_passkey_main_conf_t *pmcf)
{
    size_t     size;
    ngx_str_t  name = ngx_string("passkey_tokens");

    if (pmcf->tokens.nelts == 0) {
        return NGX_OK;
    }

    size = 8 * ngx_pagesize + sizeof(ngx_http_passkey_token_sh_t)
           + pmcf->tokens.nelts * sizeof(ngx_http_passkey_token_slot_t);

    size = ngx_align(size, ngx_pagesize);

    pmcf->token_zone = ngx_shared_memory_add(cf, &name, size,
                                             &ngx_http_passkey_module);
    if (pmcf->token_zone == NULL) {
        return NGX_ERROR;
    }

    pmcf->token_zone->init = ngx_http_passkey_token_init_shm;
    pmcf->token_zone->data = pmcf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_passkey_token_init_shm(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_passkey_main_conf_t  *pmcf = shm_zone->data;

    size_t                        size;
    ngx_uint_t                    n;
    ngx_slab_pool_t              *shpool;
    ngx_http_passkey_token_sh_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    n = pmcf->tokens.nelts;

    /*
     * slots carry the key of their credentials, so a zone kept over a
     * reload can be reused even when the credentials changed
     */

    if (data && shpool->data) {
        sh = shpool->data;

        if (sh->nslots >= n) {
            return NGX_OK;
        }
    }

    size = sizeof(ngx_http_passkey_token_sh_t)
           + n * sizeof(ngx_http_passkey_token_slot_t);

    sh = ngx_slab_calloc(shpool, size);
    if (sh == NULL) {
        return NGX_ERROR;
    }

    sh->nslots = n;
    shpool->data = sh;

    shpool->log_ctx = ngx_slab_alloc(shpool,
                                     sizeof(" in passkey_tokens zone"));
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in passkey_tokens zone%Z");

    return NGX_OK;
}


ngx_int_t
ngx_http_passkey_token_init_process(ngx_cycle_t *cycle,
    ngx_http_passkey_main_conf_t *pmcf)
{
    ngx_uint_t                 i;
    ngx_http_passkey_token_t  *token, **tokens;

    tokens = pmcf->tokens.elts;

    for (i = 0; i < pmcf->tokens.nelts; i++) {
        token = tokens[i];

        ngx_queue_init(&token->waiters);

        /* timer events need a connection in debug builds; fd -1 */
        token->dummy.fd = (ngx_socket_t) -1;
        token->dummy.data = token;
        token->poll.data = &token->dummy;
        token->poll.handler = ngx_http_passkey_token_poll;
        token->poll.log = cycle->log;

        if (token->static_token.len) {
            continue;
        }

        /*
         * fetch the token before the first request needs it; the zone
         * makes sure only one worker does
         */

        token->prefetch.data = &token->dummy;
        token->prefetch.handler = ngx_http_passkey_token_prefetch;
        token->prefetch.log = cycle->log;
        token->prefetch.cancelable = 1;

        ngx_add_timer(&token->prefetch, 1);
    }

    return NGX_OK;
}


void
ngx_http_passkey_token_exit_process(ngx_cycle_t *cycle,
    ngx_http_passkey_main_conf_t *pmcf)
{
    ngx_uint_t                 i;
    ngx_http_passkey_token_t  *token, **tokens;

    tokens = pmcf->tokens.elts;

    for (i = 0; i < pmcf->tokens.nelts; i++) {
        token = tokens[i];

        if (token->poll.timer_set) {
            ngx_del_timer(&token->poll);
        }

        if (token->prefetch.timer_set) {
            ngx_del_timer(&token->prefetch);
        }

        if (token->call) {
            ngx_http_passkey_http_cancel(token->call);
            ngx_destroy_pool(token->call->pool);
            token->call = NULL;
        }
    }
}


ngx_int_t
ngx_http_passkey_token_get(ngx_http_passkey_token_t *token,
    ngx_http_passkey_token_wait_t *w)
{
    uint64_t                        now;
    ngx_int_t                       rc;
    ngx_slab_pool_t                *shpool;
    ngx_http_passkey_token_slot_t  *slot;

    if (token->static_token.len) {
        w->token = token->static_token;
        w->generation = 0;
        return NGX_OK;
    }

    slot = ngx_http_passkey_token_slot(token, &shpool);
    if (slot == NULL) {
        return NGX_ERROR;
    }

    now = ngx_http_passkey_token_now();

    ngx_shmtx_lock(&shpool->mutex);

    if (slot->len && now < slot->expires) {
        rc = ngx_http_passkey_token_copy(slot, w);
        ngx_shmtx_unlock(&shpool->mutex);
        return rc;
    }

    if (ngx_http_passkey_token_claim(token, slot, now)) {
        ngx_shmtx_unlock(&shpool->mutex);

        if (ngx_http_passkey_token_refresh(token, w->log) != NGX_OK) {
            ngx_http_passkey_token_unclaim(slot, shpool);
            return NGX_ERROR;
        }

    } else {
        ngx_shmtx_unlock(&shpool->mutex);

        /* another worker fetches: look at the zone again soon */

        if (token->call == NULL && !token->poll.timer_set) {
            ngx_add_timer(&token->poll, NGX_HTTP_PASSKEY_TOKEN_POLL);
        }
    }

    ngx_queue_insert_tail(&token->waiters, &w->queue);
    w->waiting = 1;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "passkey token: waiting for a refresh");

    return NGX_AGAIN;
}


/* a static token cannot be renewed: a rejection of it is final */

ngx_uint_t
ngx_http_passkey_token_renewable(ngx_http_passkey_token_t *token)
{
    return token->static_token.len == 0;
}


void
ngx_http_passkey_token_cancel(ngx_http_passkey_token_wait_t *w)
{
    if (w->waiting) {
        ngx_queue_remove(&w->queue);
        w->waiting = 0;
    }
}


void
ngx_http_passkey_token_invalidate(ngx_http_passkey_token_t *token,
    ngx_uint_t generation)
{
    ngx_slab_pool_t                *shpool;
    ngx_http_passkey_token_slot_t  *slot;

    if (token->static_token.len) {
        return;
    }

    slot = ngx_http_passkey_token_slot(token, &shpool);
    if (slot == NULL) {
        return;
    }

    /* only the first of many rejected callers drops the token */

    ngx_shmtx_lock(&shpool->mutex);

    if (slot->generation == generation) {
        slot->len = 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


static ngx_http_passkey_token_slot_t *
ngx_http_passkey_token_slot(ngx_http_passkey_token_t *token,
    ngx_slab_pool_t **shpool)
{
    ngx_http_passkey_token_sh_t    *sh;
    ngx_http_passkey_token_slot_t  *slot;

    if (token->pmcf->token_zone == NULL) {
        return NULL;
    }

    *shpool = (ngx_slab_pool_t *) token->pmcf->token_zone->shm.addr;
    sh = (*shpool)->data;

    if (token->index >= sh->nslots) {
        return NULL;
    }

    slot = &sh->slots[token->index];

    if (slot->key != token->key) {
        ngx_shmtx_lock(&(*shpool)->mutex);

        if (slot->key != token->key) {
            ngx_memzero(slot, sizeof(ngx_http_passkey_token_slot_t));
            slot->key = token->key;
        }

        ngx_shmtx_unlock(&(*shpool)->mutex);
    }

    return slot;
}


static ngx_int_t
ngx_http_passkey_token_copy(ngx_http_passkey_token_slot_t *slot,
    ngx_http_passkey_token_wait_t *w)
{
    w->token.data = ngx_pnalloc(w->pool, slot->len);
    if (w->token.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(w->token.data, slot->data, slot->len);
    w->token.len = slot->len;
    w->generation = slot->generation;

    return NGX_OK;
}


static ngx_int_t
ngx_http_passkey_token_refresh(ngx_http_passkey_token_t *token,
    ngx_log_t *log)
{
    ngx_pool_t                    *pool;
    ngx_http_passkey_http_call_t  *call;

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    call = ngx_pcalloc(pool, sizeof(ngx_http_passkey_http_call_t));
    if (call == NULL) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    /* the refresh outlives the request that started it */

    call->pool = pool;
    call->log = ngx_cycle->log;
    call->conf = token->http;
    ngx_str_set(&call->method, "POST");
    call->url = token->url;
    ngx_str_set(&call->content_type, "application/x-www-form-urlencoded");
    ngx_str_set(&call->body, "grant_type=client_credentials");
    call->authorization = token->authorization[token->secret];
    call->handler = ngx_http_passkey_token_refreshed;
    call->data = token;

    if (ngx_http_passkey_http_start(call) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "passkey: cannot start access token request");
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    token->call = call;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "passkey token: refreshing from \"%V\" with secret %ui",
                   &token->url, token->secret + 1);

    return NGX_OK;
}


static void
ngx_http_passkey_token_refreshed(ngx_http_passkey_http_call_t *call)
{
    ngx_http_passkey_token_t *token = call->data;

    uint64_t                        deadline;
    ngx_uint_t                      rejected;
    const char                     *error;
    ngx_slab_pool_t                *shpool;
    ngx_http_passkey_api_result_e   result;
    ngx_http_passkey_token_slot_t  *slot;

    token->call = NULL;
    error = call->error;
    rejected = 0;

    switch (call->result) {

    case NGX_HTTP_PASSKEY_HTTP_OK:
        result = ngx_http_passkey_token_store(token, call, &rejected);
        error = "token endpoint refused the client credentials";
        break;

    case NGX_HTTP_PASSKEY_HTTP_TIMEOUT:
        result = NGX_HTTP_PASSKEY_API_TIMEOUT;
        break;

    case NGX_HTTP_PASSKEY_HTTP_TOO_LARGE:
        result = NGX_HTTP_PASSKEY_API_BAD_RESPONSE;
        break;

    default:
        result = NGX_HTTP_PASSKEY_API_UNREACHABLE;
        break;
    }

    if (call->result != NGX_HTTP_PASSKEY_HTTP_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "passkey: access token request to \"%V\" "
                      "failed: %s", &token->url,
                      error ? error : "unknown error");
    }

    ngx_destroy_pool(call->pool);

    /*
     * a rotation: the secret was rejected, the other one may be the one
     * the token endpoint knows; the claim on the slot is kept
     */

    if (rejected && token->authorization[1].len && !token->retried) {
        token->retried = 1;
        token->secret = !token->secret;

        slot = ngx_http_passkey_token_slot(token, &shpool);

        if (slot) {
            deadline = ngx_http_passkey_token_deadline(token);

            ngx_shmtx_lock(&shpool->mutex);

            if (slot->refresher == ngx_pid) {
                slot->refresh_deadline = deadline;
            }

            ngx_shmtx_unlock(&shpool->mutex);

            if (ngx_http_passkey_token_refresh(token, ngx_cycle->log)
                == NGX_OK)
            {
                return;
            }
        }

        result = NGX_HTTP_PASSKEY_API_INTERNAL;
        error = "cannot start token request";
    }

    if (result != NGX_HTTP_PASSKEY_API_OK) {
        slot = ngx_http_passkey_token_slot(token, &shpool);

        if (slot) {
            ngx_http_passkey_token_unclaim(slot, shpool);
        }
    }

    ngx_http_passkey_token_wake(token, result, error);
}


static ngx_http_passkey_api_result_e
ngx_http_passkey_token_store(ngx_http_passkey_token_t *token,
    ngx_http_passkey_http_call_t *call, ngx_uint_t *rejected)
{
    uint64_t                        now, lifetime, skew;
    ngx_int_t                       expires_in;
    ngx_str_t                       access_token, code;
    ngx_slab_pool_t                *shpool;
    ngx_http_passkey_json_t        *json;
    ngx_http_passkey_token_slot_t  *slot;

    if (call->status != NGX_HTTP_OK) {

        /* both the OAuth and the Beyond Identity error shapes are seen */

        code.len = 0;

        if (ngx_http_passkey_json_parse(call->pool, &call->response, &json)
            == NGX_OK
            && ngx_http_passkey_json_string(call->pool, json, "error", &code)
               != NGX_OK)
        {
            (void) ngx_http_passkey_json_string(call->pool, json, "code",
                                                &code);
        }

        if (code.len > 64) {
            code.len = 64;
        }

        /* RFC 6749 5.2: 401, or 400 "invalid_client" */

        *rejected = (call->status == NGX_HTTP_UNAUTHORIZED
                     || (call->status == NGX_HTTP_BAD_REQUEST
                         && code.len == sizeof("invalid_client") - 1
                         && ngx_strncmp(code.data, "invalid_client",
                                        code.len)
                            == 0));

        if (*rejected && token->authorization[1].len && !token->retried) {
            ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "passkey token: secret %ui rejected with %ui "
                           "\"%V\", trying the other one",
                           token->secret + 1, call->status, &code);

        } else {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "passkey: access token request to \"%V\" "
                          "answered %ui \"%V\"%s", &token->url,
                          call->status, &code,
                          (*rejected && token->retried)
                          ? ", both client secrets were rejected" : "");
        }

        return (call->status >= 500 || call->status == 429)
               ? NGX_HTTP_PASSKEY_API_UNREACHABLE
               : NGX_HTTP_PASSKEY_API_DENIED;
    }

    if (ngx_http_passkey_json_parse(call->pool, &call->response, &json)
        != NGX_OK
        || ngx_http_passkey_json_string(call->pool, json, "access_token",
                                        &access_token)
           != NGX_OK
        || access_token.len == 0
        || ngx_http_passkey_json_integer(json, "expires_in", &expires_in)
           != NGX_OK
        || expires_in <= 0)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "passkey: access token response from \"%V\" lacks "
                      "access_token or expires_in", &token->url);
        return NGX_HTTP_PASSKEY_API_BAD_RESPONSE;
    }

    if (access_token.len > NGX_HTTP_PASSKEY_TOKEN_MAX) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "passkey: access token from \"%V\" is longer than "
                      "%d bytes", &token->url, NGX_HTTP_PASSKEY_TOKEN_MAX);
        return NGX_HTTP_PASSKEY_API_BAD_RESPONSE;
    }

    slot = ngx_http_passkey_token_slot(token, &shpool);
    if (slot == NULL) {
        return NGX_HTTP_PASSKEY_API_INTERNAL;
    }

    /* renew a little early: min(60 s, 10%) before it expires */

    lifetime = (uint64_t) expires_in * 1000;
    skew = lifetime / 10;

    if (skew > 60000) {
        skew = 60000;
    }

    now = ngx_http_passkey_token_now();

    ngx_shmtx_lock(&shpool->mutex);

    ngx_memcpy(slot->data, access_token.data, access_token.len);
    slot->len = access_token.len;
    slot->expires = now + lifetime - skew;
    slot->generation++;
    slot->refresher = 0;
    slot->secret = token->secret;

    ngx_shmtx_unlock(&shpool->mutex);

    if (token->retried) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "passkey: client secret %ui of client \"%V\" was "
                      "rejected, secret %ui was accepted%s",
                      2 - token->secret, &token->client_id,
                      token->secret + 1,
                      token->secret ? "; finish the rotation" : "");
    }

    ngx_explicit_memzero(access_token.data, access_token.len);
    ngx_explicit_memzero(call->response.data, call->response.len);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "passkey token: new token, expires in %i s", expires_in);

    return NGX_HTTP_PASSKEY_API_OK;
}


/* another worker is refreshing: look at the zone again */

static void
ngx_http_passkey_token_poll(ngx_event_t *ev)
{
    uint64_t                        now;
    ngx_uint_t                      start;
    ngx_slab_pool_t                *shpool;
    ngx_connection_t               *c;
    ngx_http_passkey_token_t       *token;
    ngx_http_passkey_token_slot_t  *slot;

    c = ev->data;
    token = c->data;

    if (ngx_queue_empty(&token->waiters) || token->call) {
        return;
    }

    slot = ngx_http_passkey_token_slot(token, &shpool);
    if (slot == NULL) {
        ngx_http_passkey_token_wake(token, NGX_HTTP_PASSKEY_API_INTERNAL,
                                    "no token zone");
        return;
    }

    now = ngx_http_passkey_token_now();

    ngx_shmtx_lock(&shpool->mutex);

    if (slot->len && now < slot->expires) {
        ngx_shmtx_unlock(&shpool->mutex);
        ngx_http_passkey_token_wake(token, NGX_HTTP_PASSKEY_API_OK, NULL);
        return;
    }

    start = ngx_http_passkey_token_claim(token, slot, now);

    ngx_shmtx_unlock(&shpool->mutex);

    if (!start) {
        ngx_add_timer(&token->poll, NGX_HTTP_PASSKEY_TOKEN_POLL);
        return;
    }

    if (ngx_http_passkey_token_refresh(token, ev->log) != NGX_OK) {
        ngx_http_passkey_token_unclaim(slot, shpool);
        ngx_http_passkey_token_wake(token, NGX_HTTP_PASSKEY_API_INTERNAL,
                                    "cannot start token request");
    }
}


static void
ngx_http_passkey_token_prefetch(ngx_event_t *ev)
{
    uint64_t                        now;
    ngx_uint_t                      start;
    ngx_slab_pool_t                *shpool;
    ngx_connection_t               *c;
    ngx_http_passkey_token_t       *token;
    ngx_http_passkey_token_slot_t  *slot;

    c = ev->data;
    token = c->data;

    if (token->call || ngx_exiting) {
        return;
    }

    slot = ngx_http_passkey_token_slot(token, &shpool);
    if (slot == NULL) {
        return;
    }

    now = ngx_http_passkey_token_now();

    ngx_shmtx_lock(&shpool->mutex);

    start = !(slot->len && now < slot->expires)
            && ngx_http_passkey_token_claim(token, slot, now);

    ngx_shmtx_unlock(&shpool->mutex);

    if (start && ngx_http_passkey_token_refresh(token, ev->log) != NGX_OK) {
        ngx_http_passkey_token_unclaim(slot, shpool);
    }
}


/*
 * Called under the zone lock: whether this worker is to fetch a new token
 * now, because no worker is fetching one or the one that was gave up.
 */

static ngx_uint_t
ngx_http_passkey_token_claim(ngx_http_passkey_token_t *token,
    ngx_http_passkey_token_slot_t *slot, uint64_t now)
{
    if (token->call != NULL
        || (slot->refresher != 0 && now < slot->refresh_deadline))
    {
        return 0;
    }

    slot->refresher = ngx_pid;
    slot->refresh_deadline = ngx_http_passkey_token_deadline(token);

    /* start with the secret that was accepted last, by any worker */

    token->secret = token->authorization[1].len ? slot->secret : 0;
    token->retried = 0;

    return 1;
}


/* when a claim is stale: the worker that holds it may be gone */

static uint64_t
ngx_http_passkey_token_deadline(ngx_http_passkey_token_t *token)
{
    return ngx_http_passkey_token_now() + token->http->connect_timeout
           + token->http->timeout + 1000;
}


static void
ngx_http_passkey_token_unclaim(ngx_http_passkey_token_slot_t *slot,
    ngx_slab_pool_t *shpool)
{
    ngx_shmtx_lock(&shpool->mutex);
    slot->refresher = 0;
    ngx_shmtx_unlock(&shpool->mutex);
}


static void
ngx_http_passkey_token_wake(ngx_http_passkey_token_t *token,
    ngx_http_passkey_api_result_e result, const char *error)
{
    ngx_queue_t                     queue, *q;
    ngx_slab_pool_t                *shpool;
    ngx_http_passkey_token_wait_t  *w;
    ngx_http_passkey_token_slot_t  *slot;

    /* handlers may start calls or cancel others: work on a detached list */

    ngx_queue_init(&queue);

    if (!ngx_queue_empty(&token->waiters)) {
        queue = token->waiters;
        queue.next->prev = &queue;
        queue.prev->next = &queue;
        ngx_queue_init(&token->waiters);
    }

    slot = ngx_http_passkey_token_slot(token, &shpool);

    while (!ngx_queue_empty(&queue)) {
        q = ngx_queue_head(&queue);
        ngx_queue_remove(q);

        w = ngx_queue_data(q, ngx_http_passkey_token_wait_t, queue);
        w->waiting = 0;
        w->result = result;
        w->error = error;

        if (result == NGX_HTTP_PASSKEY_API_OK) {
            if (slot == NULL) {
                w->result = NGX_HTTP_PASSKEY_API_INTERNAL;

            } else {
                ngx_shmtx_lock(&shpool->mutex);

                if (slot->len == 0
                    || ngx_http_passkey_token_copy(slot, w) != NGX_OK)
                {
                    w->result = NGX_HTTP_PASSKEY_API_INTERNAL;
                }

                ngx_shmtx_unlock(&shpool->mutex);
            }
        }

        w->handler(w);
    }
}


static uint64_t
ngx_http_passkey_token_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}


/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_token.h"


/*
 * Access tokens from the client-credentials grant, shared by all workers
 * through a shared memory zone (ngx_http_passkey_token_shm.c).  One worker
 * fetches at a time; requests in that worker queue on the token, requests
 * in other workers look again on a short timer.  A request waits no longer
 * than its own calls could take: the connect timeout plus the timeout.  A
 * failed fetch is remembered for a short back-off, in which requests get
 * its failure at once instead of asking the token endpoint again.  A token
 * is renewed ahead, while requests go on with it, so that neither the
 * renewal's time nor its failure reaches them while the token lasts.  The
 * token is opaque: it is never parsed or logged.
 *
 * With two client secrets (a rotation), a fetch that the token endpoint
 * rejects for its client credentials is made again at once with the other
 * secret; the slot remembers the one that was accepted, so that every
 * worker starts with it next time.
 */


#define NGX_HTTP_PASSKEY_TOKEN_POLL   20


static ngx_int_t ngx_http_passkey_token_key(ngx_conf_t *cf,
    ngx_http_passkey_loc_conf_t *plcf, u_char *key);
static ngx_int_t ngx_http_passkey_token_basic(ngx_conf_t *cf,
    ngx_str_t *client_id, ngx_str_t *secret, ngx_str_t *basic);
static void ngx_http_passkey_token_backoff(ngx_http_passkey_token_wait_t *w,
    ngx_http_passkey_token_backoff_t *bo);
static ngx_int_t ngx_http_passkey_token_fetch(ngx_http_passkey_token_t *token,
    ngx_log_t *log);
static ngx_int_t ngx_http_passkey_token_refresh(
    ngx_http_passkey_token_t *token, ngx_log_t *log);
static void ngx_http_passkey_token_refreshed(
    ngx_http_passkey_http_call_t *call);
static ngx_http_passkey_api_result_e ngx_http_passkey_token_parse(
    ngx_http_passkey_token_t *token, ngx_http_passkey_http_call_t *call,
    ngx_uint_t *rejected, const char **error);
static void ngx_http_passkey_token_poll(ngx_event_t *ev);
static void ngx_http_passkey_token_prefetch(ngx_event_t *ev);
static void ngx_http_passkey_token_expire(ngx_event_t *ev);
static void ngx_http_passkey_token_wake(ngx_http_passkey_token_t *token,
    ngx_http_passkey_api_result_e result, const char *error);
static void ngx_http_passkey_token_answer(ngx_http_passkey_token_t *token,
    ngx_queue_t *queue, ngx_http_passkey_api_result_e result,
    const char *error);


ngx_http_passkey_token_t *
ngx_http_passkey_token_add(ngx_conf_t *cf, ngx_http_passkey_loc_conf_t *plcf)
{
    u_char                         key[NGX_HTTP_PASSKEY_DIGEST_HEX_LEN];
    ngx_uint_t                     i;
    ngx_http_passkey_token_t      *token, **tokens, **tp;
    ngx_http_passkey_main_conf_t  *pmcf;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_passkey_module);

    if (ngx_http_passkey_token_key(cf, plcf, key) != NGX_OK) {
        return NULL;
    }

    tokens = pmcf->tokens.elts;

    for (i = 0; i < pmcf->tokens.nelts; i++) {
        if (ngx_memcmp(tokens[i]->key, key, sizeof(key)) == 0) {
            return tokens[i];
        }
    }

    token = ngx_pcalloc(cf->pool, sizeof(ngx_http_passkey_token_t));
    if (token == NULL) {
        return NULL;
    }

    token->index = pmcf->tokens.nelts;
    ngx_memcpy(token->key, key, sizeof(key));
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


/*
 * What makes one token serve a location: every setting that could make
 * another one, through SHA-256 of the settings each prefixed with its
 * length, so that "ab" and "c" never hash like "a" and "bc".  The key
 * names the slot in shared memory, so it also tells a zone kept over a
 * reload which slots still belong to their credentials.
 */

static ngx_int_t
ngx_http_passkey_token_key(ngx_conf_t *cf, ngx_http_passkey_loc_conf_t *plcf,
    u_char *key)
{
    u_char     numbers[4 * NGX_INT64_LEN];
    ngx_str_t  hex, parts[10];

    parts[0] = plcf->auth_url;
    parts[1] = plcf->tenant_id;
    parts[2] = plcf->token_realm_id;
    parts[3] = plcf->application_id;
    parts[4] = plcf->client_id;
    parts[5] = plcf->client_secret;
    parts[6] = plcf->client_secret2;
    parts[7] = plcf->api_token;
    parts[8] = plcf->http.trusted_certificate;

    parts[9].data = numbers;
    parts[9].len = ngx_sprintf(numbers, "%M %M %uz %i",
                               plcf->http.connect_timeout, plcf->http.timeout,
                               plcf->http.max_response, plcf->http.verify)
                   - numbers;

    if (ngx_http_passkey_digest(cf->pool, parts, 10, &hex) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memcpy(key, hex.data, NGX_HTTP_PASSKEY_DIGEST_HEX_LEN);

    return NGX_OK;
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
        token->expire.data = &token->dummy;
        token->expire.handler = ngx_http_passkey_token_expire;
        token->expire.log = cycle->log;

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

        if (token->expire.timer_set) {
            ngx_del_timer(&token->expire);
        }

        if (token->call) {
            ngx_http_passkey_http_cancel(token->call);
            ngx_destroy_pool(token->call->pool);
            token->call = NULL;
        }
    }
}


/*
 * NGX_OK: w->token is set.  NGX_AGAIN: w->handler runs once a fetch ends
 * or the wait is over.  NGX_DECLINED: a fetch failed moments ago, and
 * w->result and w->error say how.  NGX_ERROR: nothing can be done.
 */

ngx_int_t
ngx_http_passkey_token_get(ngx_http_passkey_token_t *token,
    ngx_http_passkey_token_wait_t *w)
{
    ngx_msec_t                        patience;
    ngx_http_passkey_token_backoff_t  bo;

    if (token->static_token.len) {
        w->token = token->static_token;
        w->generation = 0;
        return NGX_OK;
    }

    switch (ngx_http_passkey_token_look(token, w, &bo)) {

    case NGX_HTTP_PASSKEY_TOKEN_VALID:
        return NGX_OK;

    case NGX_HTTP_PASSKEY_TOKEN_RENEW:

        /* the request goes on with the token; a failure is logged */

        (void) ngx_http_passkey_token_fetch(token, w->log);
        return NGX_OK;

    case NGX_HTTP_PASSKEY_TOKEN_BACKOFF:
        ngx_http_passkey_token_backoff(w, &bo);
        return NGX_DECLINED;

    case NGX_HTTP_PASSKEY_TOKEN_FETCH:
        if (ngx_http_passkey_token_fetch(token, w->log) != NGX_OK) {
            return NGX_ERROR;
        }

        break;

    case NGX_HTTP_PASSKEY_TOKEN_WAIT:

        /* another worker fetches: look at the zone again soon */

        if (token->call == NULL && !token->poll.timer_set) {
            ngx_add_timer(&token->poll, NGX_HTTP_PASSKEY_TOKEN_POLL);
        }

        break;

    default: /* NGX_HTTP_PASSKEY_TOKEN_ERROR */
        return NGX_ERROR;
    }

    /*
     * a request waits as long as its own calls could take, whoever
     * fetches: a fetch that another worker gave up on, or a second one
     * with the other secret, may take longer; all waiters have the same
     * patience, so the queue is in the order of their deadlines
     */

    patience = token->http->connect_timeout + token->http->timeout;

    w->cache = token;
    w->deadline = ngx_current_msec + patience;
    ngx_queue_insert_tail(&token->waiters, &w->queue);
    w->waiting = 1;

    if (!token->expire.timer_set) {
        ngx_add_timer(&token->expire, patience);
    }

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
    ngx_http_passkey_token_t  *token;

    if (!w->waiting) {
        return;
    }

    ngx_queue_remove(&w->queue);
    w->waiting = 0;

    /* no waiter left: the deadline timer would only hold up an exit */

    token = w->cache;

    if (ngx_queue_empty(&token->waiters) && token->expire.timer_set) {
        ngx_del_timer(&token->expire);
    }
}


static void
ngx_http_passkey_token_backoff(ngx_http_passkey_token_wait_t *w,
    ngx_http_passkey_token_backoff_t *bo)
{
    u_char  *p;
    size_t   len;

    w->result = bo->result;
    w->error = "access token requests are paused after a failure";

    len = sizeof("access token requests are paused for  ms after  "
                 "failures in a row") + 2 * NGX_INT_T_LEN;

    p = ngx_pnalloc(w->pool, len);
    if (p == NULL) {
        return;
    }

    ngx_sprintf(p, "access token requests are paused for %M ms after %ui "
                "failure%s in a row%Z", bo->left, bo->failures,
                bo->failures == 1 ? "" : "s");

    w->error = (char *) p;
}


/*
 * The fetch this worker claimed in the zone.  One that cannot even start
 * gives the claim back at once: the other workers would otherwise wait
 * for it until the claim's deadline.
 */

static ngx_int_t
ngx_http_passkey_token_fetch(ngx_http_passkey_token_t *token, ngx_log_t *log)
{
    if (ngx_http_passkey_token_refresh(token, log) != NGX_OK) {
        (void) ngx_http_passkey_token_failed(token,
                                             NGX_HTTP_PASSKEY_API_INTERNAL, 0);
        return NGX_ERROR;
    }

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

    /* fetching a token again changes nothing at the API */
    call->resend = 1;

    call->authorization = token->authorization[token->secret];
    call->route = NGX_HTTP_PASSKEY_METRICS_API_TOKEN;
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

    ngx_int_t                       n;
    ngx_uint_t                      rejected;
    ngx_msec_t                      backoff, wait;
    const char                     *error;
    ngx_http_passkey_api_result_e   result;

    token->call = NULL;
    error = call->error;
    rejected = 0;
    wait = 0;

    switch (call->result) {

    case NGX_HTTP_PASSKEY_HTTP_OK:
        result = ngx_http_passkey_token_parse(token, call, &rejected, &error);

        /* delta-seconds: an HTTP-date was made one by the HTTP layer */

        if (result != NGX_HTTP_PASSKEY_API_OK && call->retry_after.len) {
            n = ngx_atoi(call->retry_after.data, call->retry_after.len);

            if (n >= NGX_HTTP_PASSKEY_BACKOFF_ASKED / 1000) {
                wait = NGX_HTTP_PASSKEY_BACKOFF_ASKED;

            } else if (n > 0) {
                wait = (ngx_msec_t) n * 1000;
            }
        }

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

        if (ngx_http_passkey_token_extend(token) == NGX_OK
            && ngx_http_passkey_token_refresh(token, ngx_cycle->log)
               == NGX_OK)
        {
            return;
        }

        result = NGX_HTTP_PASSKEY_API_INTERNAL;
        error = "cannot start token request";
    }

    ngx_http_passkey_metrics_token(result == NGX_HTTP_PASSKEY_API_OK);

    if (result != NGX_HTTP_PASSKEY_API_OK) {
        backoff = ngx_http_passkey_token_failed(token, result, wait);

        if (backoff) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "passkey: access token requests to \"%V\" are "
                          "paused for %M ms", &token->url, backoff);
        }
    }

    ngx_http_passkey_token_wake(token, result, error);
}


static ngx_http_passkey_api_result_e
ngx_http_passkey_token_parse(ngx_http_passkey_token_t *token,
    ngx_http_passkey_http_call_t *call, ngx_uint_t *rejected,
    const char **error)
{
    uint64_t                  lifetime, early, skew;
    ngx_int_t                 expires_in;
    ngx_str_t                 access_token, code;
    ngx_http_passkey_json_t  *json;

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

        if (call->status >= 500 || call->status == 429) {
            *error = "the token endpoint failed";
            return NGX_HTTP_PASSKEY_API_UNREACHABLE;
        }

        *error = "the token endpoint refused the client credentials";
        return NGX_HTTP_PASSKEY_API_DENIED;
    }

    *error = "the token endpoint answered no usable token";

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

    /*
     * renewed ahead, min(60 s, half its life) before it expires, while
     * requests go on with it; used until min(5 s, a tenth of its life)
     * before it expires, for a call that starts with it to end in time
     */

    lifetime = (uint64_t) expires_in * 1000;
    early = ngx_min(lifetime / 2, 60000);
    skew = ngx_min(lifetime / 10, 5000);

    if (ngx_http_passkey_token_keep(token, &access_token, lifetime - early,
                                    lifetime - skew)
        != NGX_OK)
    {
        *error = "no token zone";
        return NGX_HTTP_PASSKEY_API_INTERNAL;
    }

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

    *error = NULL;

    return NGX_HTTP_PASSKEY_API_OK;
}


/* another worker is refreshing: look at the zone again */

static void
ngx_http_passkey_token_poll(ngx_event_t *ev)
{
    ngx_connection_t                  *c;
    ngx_http_passkey_token_t          *token;
    ngx_http_passkey_token_backoff_t   bo;

    c = ev->data;
    token = c->data;

    if (ngx_queue_empty(&token->waiters) || token->call) {
        return;
    }

    switch (ngx_http_passkey_token_look(token, NULL, &bo)) {

    case NGX_HTTP_PASSKEY_TOKEN_RENEW:
        (void) ngx_http_passkey_token_fetch(token, ev->log);

        /* fall through */

    case NGX_HTTP_PASSKEY_TOKEN_VALID:
        ngx_http_passkey_token_wake(token, NGX_HTTP_PASSKEY_API_OK, NULL);
        return;

    case NGX_HTTP_PASSKEY_TOKEN_WAIT:
        ngx_add_timer(&token->poll, NGX_HTTP_PASSKEY_TOKEN_POLL);
        return;

    case NGX_HTTP_PASSKEY_TOKEN_BACKOFF:
        ngx_http_passkey_token_wake(token, bo.result,
                                    "the access token request of another "
                                    "worker failed");
        return;

    case NGX_HTTP_PASSKEY_TOKEN_FETCH:
        if (ngx_http_passkey_token_fetch(token, ev->log) == NGX_OK) {
            return;
        }

        /* fall through */

    default:
        ngx_http_passkey_token_wake(token, NGX_HTTP_PASSKEY_API_INTERNAL,
                                    "cannot start token request");
        return;
    }
}


static void
ngx_http_passkey_token_prefetch(ngx_event_t *ev)
{
    ngx_connection_t                  *c;
    ngx_http_passkey_token_t          *token;
    ngx_http_passkey_token_backoff_t   bo;

    c = ev->data;
    token = c->data;

    if (token->call || ngx_exiting) {
        return;
    }

    switch (ngx_http_passkey_token_look(token, NULL, &bo)) {

    case NGX_HTTP_PASSKEY_TOKEN_RENEW:
    case NGX_HTTP_PASSKEY_TOKEN_FETCH:
        (void) ngx_http_passkey_token_fetch(token, ev->log);
        return;

    default:
        return;
    }
}


/* the first waiters' deadline: they give up, the fetch goes on */

static void
ngx_http_passkey_token_expire(ngx_event_t *ev)
{
    ngx_queue_t                     expired, *q;
    ngx_msec_int_t                  left;
    ngx_connection_t               *c;
    ngx_http_passkey_token_t       *token;
    ngx_http_passkey_token_wait_t  *w;

    c = ev->data;
    token = c->data;

    ngx_queue_init(&expired);

    while (!ngx_queue_empty(&token->waiters)) {
        q = ngx_queue_head(&token->waiters);
        w = ngx_queue_data(q, ngx_http_passkey_token_wait_t, queue);

        left = (ngx_msec_int_t) (w->deadline - ngx_current_msec);

        if (left > 0) {
            ngx_add_timer(ev, (ngx_msec_t) left);
            break;
        }

        ngx_queue_remove(q);
        ngx_queue_insert_tail(&expired, q);
    }

    ngx_http_passkey_token_answer(token, &expired,
                                  NGX_HTTP_PASSKEY_API_TIMEOUT,
                                  "no access token within "
                                  "passkey_api_connect_timeout and "
                                  "passkey_api_timeout");
}


static void
ngx_http_passkey_token_wake(ngx_http_passkey_token_t *token,
    ngx_http_passkey_api_result_e result, const char *error)
{
    ngx_queue_t  queue;

    ngx_queue_init(&queue);

    if (!ngx_queue_empty(&token->waiters)) {
        queue = token->waiters;
        queue.next->prev = &queue;
        queue.prev->next = &queue;
        ngx_queue_init(&token->waiters);
    }

    if (token->expire.timer_set) {
        ngx_del_timer(&token->expire);
    }

    ngx_http_passkey_token_answer(token, &queue, result, error);
}


/*
 * The waiters are on a list detached from the token's: their handlers may
 * start calls or cancel others, and so change the token's list.
 */

static void
ngx_http_passkey_token_answer(ngx_http_passkey_token_t *token,
    ngx_queue_t *queue, ngx_http_passkey_api_result_e result,
    const char *error)
{
    ngx_queue_t                    *q;
    ngx_http_passkey_token_wait_t  *w;

    while (!ngx_queue_empty(queue)) {
        q = ngx_queue_head(queue);
        ngx_queue_remove(q);

        w = ngx_queue_data(q, ngx_http_passkey_token_wait_t, queue);
        w->waiting = 0;
        w->result = result;
        w->error = error;

        if (result == NGX_HTTP_PASSKEY_API_OK
            && ngx_http_passkey_token_copy(token, w) != NGX_OK)
        {
            w->result = NGX_HTTP_PASSKEY_API_INTERNAL;
            w->error = "no access token in the zone";
        }

        w->handler(w);
    }
}


/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_token.h"


/*
 * The passkey_tokens zone: one slot per set of credentials, which every
 * worker reads and one at a time fills.  A slot is found by the key of
 * its credentials, not by their place in the configuration: during a
 * reload, old and new workers use the zone at once, and the new
 * configuration may list the same credentials in another order or others
 * beside them.  There are two slots per set of credentials, one for each
 * generation of workers.  Each function here takes the zone's lock once
 * and does all its work under that one hold, the search for the slot
 * included: between two holds a slot may be given to other credentials.
 */


typedef struct {
    u_char                            key[NGX_HTTP_PASSKEY_DIGEST_HEX_LEN];
    uint64_t                          used;       /* the last lock hold */
    ngx_pid_t                         refresher;
    uint64_t                          refresh_deadline;
    uint64_t                          renew;      /* from then on: renew */
    uint64_t                          expires;    /* until then: use */
    uint64_t                          fetched;    /* when it was kept */
    ngx_uint_t                        generation;
    ngx_uint_t                        secret;     /* 0, 1: last accepted */

    /* failed fetches in a row, and no fetch before "retry" */
    ngx_uint_t                        failures;
    ngx_uint_t                        failure;    /* api result of the last */
    uint64_t                          retry;

    size_t                            len;
    u_char                            data[NGX_HTTP_PASSKEY_TOKEN_MAX];
} ngx_http_passkey_token_slot_t;


typedef struct {
    ngx_uint_t                        nslots;
    ngx_http_passkey_token_slot_t     slots[1];
} ngx_http_passkey_token_sh_t;


static ngx_int_t ngx_http_passkey_token_init_shm(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_passkey_token_slot_t *ngx_http_passkey_token_lock(
    ngx_http_passkey_token_t *token, uint64_t *now);
static ngx_http_passkey_token_slot_t *ngx_http_passkey_token_find(
    ngx_http_passkey_token_t *token, ngx_http_passkey_token_sh_t *sh);
static void ngx_http_passkey_token_unlock(ngx_http_passkey_token_t *token);
static ngx_int_t ngx_http_passkey_token_read(
    ngx_http_passkey_token_slot_t *slot, ngx_http_passkey_token_wait_t *w);
static void ngx_http_passkey_token_claim(ngx_http_passkey_token_t *token,
    ngx_http_passkey_token_slot_t *slot, uint64_t now);
static uint64_t ngx_http_passkey_token_claim_deadline(
    ngx_http_passkey_token_t *token, uint64_t now);
static uint64_t ngx_http_passkey_token_now(void);


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
           + 2 * pmcf->tokens.nelts * sizeof(ngx_http_passkey_token_slot_t);

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
    n = 2 * pmcf->tokens.nelts;

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


/*
 * Under one lock hold: a valid token is copied into w (when given); with
 * none, this worker claims the fetch unless a fetch is under way or the
 * last one failed less than the back-off ago.
 */

ngx_http_passkey_token_state_e
ngx_http_passkey_token_look(ngx_http_passkey_token_t *token,
    ngx_http_passkey_token_wait_t *w, ngx_http_passkey_token_backoff_t *bo)
{
    uint64_t                         now;
    ngx_http_passkey_token_slot_t   *slot;
    ngx_http_passkey_token_state_e   state;

    slot = ngx_http_passkey_token_lock(token, &now);
    if (slot == NULL) {
        return NGX_HTTP_PASSKEY_TOKEN_ERROR;
    }

    if (slot->len && now < slot->expires) {
        state = NGX_HTTP_PASSKEY_TOKEN_VALID;

        /*
         * time to renew it: one worker does, the others and the requests
         * go on with the token meanwhile, and after a failed renewal
         * until it expires, asking again once the back-off is over
         */

        if (now >= slot->renew
            && token->call == NULL
            && !(slot->refresher != 0 && now < slot->refresh_deadline)
            && !(slot->failures && now < slot->retry))
        {
            state = NGX_HTTP_PASSKEY_TOKEN_RENEW;
            ngx_http_passkey_token_claim(token, slot, now);
        }

        if (w && ngx_http_passkey_token_read(slot, w) != NGX_OK) {
            state = NGX_HTTP_PASSKEY_TOKEN_ERROR;
        }

    } else if (token->call != NULL
               || (slot->refresher != 0 && now < slot->refresh_deadline))
    {
        /* a claim past its deadline: the worker that made it may be gone */
        state = NGX_HTTP_PASSKEY_TOKEN_WAIT;

    } else if (slot->failures && now < slot->retry) {
        state = NGX_HTTP_PASSKEY_TOKEN_BACKOFF;
        bo->result = slot->failure;
        bo->left = (ngx_msec_t) (slot->retry - now);
        bo->failures = slot->failures;

    } else {
        state = NGX_HTTP_PASSKEY_TOKEN_FETCH;
        ngx_http_passkey_token_claim(token, slot, now);
    }

    ngx_http_passkey_token_unlock(token);

    return state;
}


/* under the lock: this worker is to fetch the slot's token */

static void
ngx_http_passkey_token_claim(ngx_http_passkey_token_t *token,
    ngx_http_passkey_token_slot_t *slot, uint64_t now)
{
    slot->refresher = ngx_pid;
    slot->refresh_deadline = ngx_http_passkey_token_claim_deadline(token, now);

    /* start with the secret that was accepted last, by any worker */

    token->secret = token->authorization[1].len ? slot->secret : 0;
    token->retried = 0;
}


/* NGX_DECLINED: the slot holds no token */

ngx_int_t
ngx_http_passkey_token_copy(ngx_http_passkey_token_t *token,
    ngx_http_passkey_token_wait_t *w)
{
    ngx_int_t                       rc;
    ngx_http_passkey_token_slot_t  *slot;

    slot = ngx_http_passkey_token_lock(token, NULL);
    if (slot == NULL) {
        return NGX_ERROR;
    }

    rc = slot->len ? ngx_http_passkey_token_read(slot, w) : NGX_DECLINED;

    ngx_http_passkey_token_unlock(token);

    return rc;
}


/* a fetched token: renewed renew ms from now, used lifetime ms from now */

ngx_int_t
ngx_http_passkey_token_keep(ngx_http_passkey_token_t *token,
    ngx_str_t *access_token, uint64_t renew, uint64_t lifetime)
{
    uint64_t                        now;
    ngx_http_passkey_token_slot_t  *slot;

    slot = ngx_http_passkey_token_lock(token, &now);
    if (slot == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(slot->data, access_token->data, access_token->len);
    slot->len = access_token->len;
    slot->renew = now + renew;
    slot->expires = now + lifetime;
    slot->fetched = now;
    slot->generation++;
    slot->refresher = 0;
    slot->failures = 0;
    slot->secret = token->secret;

    ngx_http_passkey_token_unlock(token);

    return NGX_OK;
}


/*
 * A fetch of this worker's ended without a token.  The claim is given up,
 * and unless the failure was this worker's own (out of memory), the slot
 * remembers it: for 1 s, doubled at each failure in a row up to 30 s, or
 * for the wait the token endpoint asked for if that is longer, no worker
 * asks the token endpoint again, and requests get the same failure at
 * once.  Returns that back-off, or 0.
 */

ngx_msec_t
ngx_http_passkey_token_failed(ngx_http_passkey_token_t *token,
    ngx_http_passkey_api_result_e result, ngx_msec_t wait)
{
    uint64_t                        now;
    ngx_uint_t                      i;
    ngx_msec_t                      backoff;
    ngx_http_passkey_token_slot_t  *slot;

    slot = ngx_http_passkey_token_lock(token, &now);
    if (slot == NULL) {
        return 0;
    }

    if (slot->refresher == ngx_pid) {
        slot->refresher = 0;
    }

    backoff = 0;

    if (result != NGX_HTTP_PASSKEY_API_INTERNAL) {
        slot->failures++;

        backoff = NGX_HTTP_PASSKEY_BACKOFF_MIN;

        for (i = 1;
             i < slot->failures && backoff < NGX_HTTP_PASSKEY_BACKOFF_MAX;
             i++)
        {
            backoff *= 2;
        }

        backoff = ngx_min(backoff, NGX_HTTP_PASSKEY_BACKOFF_MAX);
        backoff = ngx_max(backoff, wait);

        slot->failure = result;
        slot->retry = now + backoff;
    }

    ngx_http_passkey_token_unlock(token);

    return backoff;
}


/*
 * For passkey_metrics: the ms since the slot's token was fetched, and
 * whether it is still valid.  NGX_DECLINED: none was fetched yet.
 */

ngx_int_t
ngx_http_passkey_token_age(ngx_http_passkey_token_t *token, ngx_msec_t *age,
    ngx_uint_t *valid)
{
    uint64_t                        now;
    ngx_int_t                       rc;
    ngx_http_passkey_token_slot_t  *slot;

    slot = ngx_http_passkey_token_lock(token, &now);
    if (slot == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_DECLINED;

    if (slot->fetched) {
        *age = (now > slot->fetched) ? (ngx_msec_t) (now - slot->fetched) : 0;
        *valid = (slot->len && now < slot->expires);
        rc = NGX_OK;
    }

    ngx_http_passkey_token_unlock(token);

    return rc;
}


/* a second fetch with the other secret: the claim needs more time */

ngx_int_t
ngx_http_passkey_token_extend(ngx_http_passkey_token_t *token)
{
    uint64_t                        now;
    ngx_http_passkey_token_slot_t  *slot;

    slot = ngx_http_passkey_token_lock(token, &now);
    if (slot == NULL) {
        return NGX_ERROR;
    }

    if (slot->refresher == ngx_pid) {
        slot->refresh_deadline = ngx_http_passkey_token_claim_deadline(token,
                                                                       now);
    }

    ngx_http_passkey_token_unlock(token);

    return NGX_OK;
}


void
ngx_http_passkey_token_invalidate(ngx_http_passkey_token_t *token,
    ngx_uint_t generation)
{
    ngx_http_passkey_token_slot_t  *slot;

    if (token->static_token.len) {
        return;
    }

    slot = ngx_http_passkey_token_lock(token, NULL);
    if (slot == NULL) {
        return;
    }

    /* only the first of many rejected callers drops the token */

    if (slot->generation == generation) {
        slot->len = 0;
    }

    ngx_http_passkey_token_unlock(token);
}


/*
 * The token's slot, locked, and reset first if it holds other credentials;
 * and, when asked for, the time that the slot's times are compared with.
 */

static ngx_http_passkey_token_slot_t *
ngx_http_passkey_token_lock(ngx_http_passkey_token_t *token, uint64_t *now)
{
    uint64_t                        t;
    ngx_slab_pool_t                *shpool;
    ngx_http_passkey_token_sh_t    *sh;
    ngx_http_passkey_token_slot_t  *slot;

    if (token->pmcf->token_zone == NULL) {
        return NULL;
    }

    shpool = (ngx_slab_pool_t *) token->pmcf->token_zone->shm.addr;
    sh = shpool->data;

    t = ngx_http_passkey_token_now();

    if (now) {
        *now = t;
    }

    ngx_shmtx_lock(&shpool->mutex);

    slot = ngx_http_passkey_token_find(token, sh);
    slot->used = t;

    return slot;
}


/*
 * Under the lock: the slot of the token's credentials, where this worker
 * found it last or anywhere else; without one, a slot no worker has
 * looked at for the longest time (one never used first), reset for them.
 */

static ngx_http_passkey_token_slot_t *
ngx_http_passkey_token_find(ngx_http_passkey_token_t *token,
    ngx_http_passkey_token_sh_t *sh)
{
    ngx_uint_t                      i;
    ngx_http_passkey_token_slot_t  *slot, *oldest;

    if (token->index < sh->nslots) {
        slot = &sh->slots[token->index];

        if (ngx_memcmp(slot->key, token->key, sizeof(slot->key)) == 0) {
            return slot;
        }
    }

    oldest = &sh->slots[0];

    for (i = 0; i < sh->nslots; i++) {
        slot = &sh->slots[i];

        if (ngx_memcmp(slot->key, token->key, sizeof(slot->key)) == 0) {
            token->index = i;
            return slot;
        }

        if (slot->used < oldest->used) {
            oldest = slot;
        }
    }

    ngx_memzero(oldest, sizeof(ngx_http_passkey_token_slot_t));
    ngx_memcpy(oldest->key, token->key, sizeof(oldest->key));

    token->index = oldest - sh->slots;

    return oldest;
}


static void
ngx_http_passkey_token_unlock(ngx_http_passkey_token_t *token)
{
    ngx_slab_pool_t  *shpool;

    shpool = (ngx_slab_pool_t *) token->pmcf->token_zone->shm.addr;

    ngx_shmtx_unlock(&shpool->mutex);
}


static ngx_int_t
ngx_http_passkey_token_read(ngx_http_passkey_token_slot_t *slot,
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


/* when a claim is stale: the worker that holds it may be gone */

static uint64_t
ngx_http_passkey_token_claim_deadline(ngx_http_passkey_token_t *token,
    uint64_t now)
{
    return now + token->http->connect_timeout + token->http->timeout + 1000;
}


/* wall-clock milliseconds: the same in every worker */

static uint64_t
ngx_http_passkey_token_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}


/*
 * Copyright (C) ngx_passkey_module authors
 */


/*
 * The Beyond Identity API's answers, as the module reads them: any answer
 * through ngx_http_passkey_bi.c (JSON or not, its "code" and "message"
 * made fit for logs), then what each caller takes from it: a new binding
 * job (its id, state, link and expire_time), a job's state, the token
 * endpoint's answer, and the authenticator config checked at startup.
 *
 * Input: a first line "KIND STATUS [LOCATION [SERVER_NAME]]", then the
 * body.  KIND: job (a RETURN job), email (an EMAIL job), state, token,
 * config.
 *
 * The kept token goes nowhere: the harness notes it.
 * wrap: ngx_http_passkey_token_keep
 *
 * Checks: what is taken is what the readers allow; the API's words in a
 * log are escaped and bounded.
 */


#include "../ngx_passkey_module/ngx_http_passkey_bi.c"
#include "../ngx_passkey_module/ngx_http_passkey_token.c"
#include "../ngx_passkey_module/ngx_http_passkey_check.c"

#include "ngx_passkey_fuzz.h"


typedef struct {
    ngx_str_t                       kind;
    ngx_str_t                       location;
    ngx_str_t                       server_name;
    ngx_passkey_fuzz_request_t     *fr;
    ngx_uint_t                      done;
} ngx_passkey_fuzz_api_t;


ngx_int_t __wrap_ngx_http_passkey_token_keep(ngx_http_passkey_token_t *token,
    ngx_str_t *access_token, uint64_t renew, uint64_t lifetime);

static void ngx_passkey_fuzz_api_done(ngx_http_passkey_bi_call_t *bc);
static void ngx_passkey_fuzz_token(ngx_pool_t *pool, ngx_uint_t status,
    ngx_str_t *body);
static void ngx_passkey_fuzz_logged(ngx_str_t *s);


static ngx_str_t  ngx_passkey_fuzz_kept;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_passkey_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                        *q, *end;
    ngx_int_t                      status;
    ngx_str_t                      line, word[4], body;
    ngx_uint_t                     n;
    ngx_pool_t                    *pool;
    const u_char                  *p, *last;
    ngx_passkey_fuzz_api_t         api;
    ngx_http_passkey_bi_call_t    *bc;
    ngx_http_passkey_http_call_t  *call;

    pool = ngx_passkey_fuzz_pool();

    p = data;
    last = data + size;

    if (ngx_passkey_fuzz_line(pool, &p, last, &line, 0) != NGX_OK) {
        goto done;
    }

    /* the words of the first line */

    q = line.data;
    end = line.data + line.len;

    for (n = 0; n < 4; n++) {
        ngx_str_set(&word[n], "");
    }

    for (n = 0; n < 4 && q < end; n++) {
        word[n].data = q;

        while (q < end && *q != ' ') {
            q++;
        }

        word[n].len = q - word[n].data;
        q++;
    }

    status = ngx_atoi(word[1].data, word[1].len);

    if (status < 100 || status > 599) {
        goto done;
    }

    body.len = last - p;
    body.data = ngx_passkey_fuzz_copy(pool, p, body.len, 0);

    if (word[0].len == 5 && ngx_strncmp(word[0].data, "token", 5) == 0) {
        ngx_passkey_fuzz_token(pool, status, &body);
        goto done;
    }

    ngx_memzero(&api, sizeof(ngx_passkey_fuzz_api_t));

    api.kind = word[0];
    api.location = word[2];
    api.server_name = word[3];
    api.fr = ngx_passkey_fuzz_request(pool);

    bc = ngx_pcalloc(pool, sizeof(ngx_http_passkey_bi_call_t));
    if (bc == NULL) {
        abort();
    }

    bc->pool = pool;
    bc->log = ngx_passkey_fuzz_log;
    bc->conf = api.fr->plcf;
    bc->handler = ngx_passkey_fuzz_api_done;
    bc->data = &api;
    ngx_str_set(&bc->method, "GET");
    ngx_str_set(&bc->path, "/identities");

    /* a 401 is not retried: that would fetch a token */
    bc->retried = 1;
    bc->active = 1;

    call = &bc->http;
    call->pool = pool;
    call->log = ngx_passkey_fuzz_log;
    call->data = bc;
    call->result = NGX_HTTP_PASSKEY_HTTP_OK;
    call->status = status;
    call->response = body;

    call->authorization.len = sizeof("Bearer x") - 1;
    call->authorization.data = ngx_passkey_fuzz_copy(pool,
                                                     (u_char *) "Bearer x",
                                                     call->authorization.len,
                                                     0);

    ngx_http_passkey_bi_done(call);

    ngx_passkey_fuzz_check(api.done == 1 && !bc->active);

done:

    ngx_passkey_fuzz_done(pool);

    return 0;
}


static void
ngx_passkey_fuzz_api_done(ngx_http_passkey_bi_call_t *bc)
{
    ngx_passkey_fuzz_api_t *api = bc->data;

    time_t                          expires;
    ngx_int_t                       rc;
    ngx_str_t                       state, expire_time, *k;
    ngx_pool_t                     *pool;
    ngx_http_passkey_ctx_t         *ctx;
    ngx_http_passkey_invoke_loc_t   il;
    ngx_http_core_loc_conf_t        clcf;

    api->done++;

    pool = bc->pool;
    k = &api->kind;

    if (bc->result != NGX_HTTP_PASSKEY_API_OK) {
        ngx_passkey_fuzz_check(
            bc->result == NGX_HTTP_PASSKEY_API_BAD_RESPONSE
            && bc->status < 300 && bc->json == NULL);
        return;
    }

    if (bc->status >= 300) {
        ngx_passkey_fuzz_logged(&bc->log_code);
        ngx_passkey_fuzz_logged(&bc->log_message);
        return;
    }

    ngx_passkey_fuzz_check(bc->json != NULL);

    if ((k->len == 3 && ngx_strncmp(k->data, "job", 3) == 0)
        || (k->len == 5 && ngx_strncmp(k->data, "email", 5) == 0))
    {
        ctx = ngx_pcalloc(pool, sizeof(ngx_http_passkey_ctx_t));
        if (ctx == NULL) {
            abort();
        }

        ctx->request = &api->fr->r;

        if (k->data[0] == 'j') {
            ngx_str_set(&ctx->vars.delivery_method, "RETURN");

        } else {
            ngx_str_set(&ctx->vars.delivery_method, "EMAIL");
        }

        rc = ngx_http_passkey_job_created_read(ctx, pool, bc->json);

        if (rc == NGX_OK) {
            ngx_passkey_fuzz_check(ctx->vars.job_id.len > 0);
            ngx_passkey_fuzz_check(k->data[0] != 'j' || ctx->link.len > 0);

            expires = ngx_http_passkey_parse_rfc3339(&ctx->expire_time);
            ngx_passkey_fuzz_check(ctx->expires == expires);

        } else {
            ngx_passkey_fuzz_check(rc == NGX_DECLINED);
        }

        return;
    }

    if (k->len == 5 && ngx_strncmp(k->data, "state", 5) == 0) {
        rc = ngx_http_passkey_job_state(pool, bc, &state, &expire_time);

        if (rc == NGX_OK) {
            ngx_passkey_fuzz_check(
                ngx_http_passkey_valid_value(&state, 0) == NGX_OK);
            ngx_passkey_fuzz_check(
                expire_time.len == 0
                || ngx_http_passkey_valid_value(&expire_time, 1) == NGX_OK);

        } else {
            ngx_passkey_fuzz_check(
                rc == NGX_DECLINED
                && bc->result == NGX_HTTP_PASSKEY_API_BAD_RESPONSE);
        }

        return;
    }

    if (k->len == 6 && ngx_strncmp(k->data, "config", 6) == 0) {

        /* location LOCATION { passkey_invoke; } in server SERVER_NAME */

        ngx_memzero(&clcf, sizeof(ngx_http_core_loc_conf_t));
        ngx_memzero(&il, sizeof(ngx_http_passkey_invoke_loc_t));

        clcf.name = api->location;

        il.conf = api->fr->plcf;
        il.location = &clcf;
        il.server_names = ngx_array_create(pool, 1, sizeof(ngx_str_t));

        if (il.server_names == NULL
            || ngx_array_push(il.server_names) == NULL)
        {
            abort();
        }

        *(ngx_str_t *) il.server_names->elts = api->server_name;

        ngx_str_set(&il.conf->authenticator_config_id, "ac1");

        ngx_http_passkey_check_event.log = ngx_passkey_fuzz_log;
        ngx_http_passkey_check_pool = pool;

        ngx_http_passkey_check_config(&il, bc->json);

        ngx_http_passkey_check_pool = NULL;
    }
}


/* the token endpoint's answer, to a fetch with the first secret */

static void
ngx_passkey_fuzz_token(ngx_pool_t *pool, ngx_uint_t status, ngx_str_t *body)
{
    ngx_uint_t                     rejected;
    const char                    *error;
    ngx_http_passkey_token_t       token;
    ngx_http_passkey_http_call_t   call;
    ngx_http_passkey_api_result_e  result;

    ngx_memzero(&token, sizeof(ngx_http_passkey_token_t));
    ngx_memzero(&call, sizeof(ngx_http_passkey_http_call_t));

    ngx_str_set(&token.url, "https://auth-us.beyondidentity.com/v1/token");
    ngx_str_set(&token.client_id, "client");
    ngx_str_set(&token.authorization[1], "Basic second");

    call.pool = pool;
    call.log = ngx_passkey_fuzz_log;
    call.result = NGX_HTTP_PASSKEY_HTTP_OK;
    call.status = status;
    call.response = *body;

    ngx_str_null(&ngx_passkey_fuzz_kept);
    rejected = 0;
    error = NULL;

    result = ngx_http_passkey_token_parse(&token, &call, &rejected, &error);

    if (result == NGX_HTTP_PASSKEY_API_OK) {
        ngx_passkey_fuzz_check(status == 200 && error == NULL
                               && ngx_passkey_fuzz_kept.len > 0
                               && ngx_passkey_fuzz_kept.len
                                  <= NGX_HTTP_PASSKEY_TOKEN_MAX);

    } else {
        ngx_passkey_fuzz_check(error != NULL && ngx_passkey_fuzz_kept.len == 0);
        ngx_passkey_fuzz_check(!rejected || status == 400 || status == 401);
    }
}


/* as ngx_http_passkey_log_value() writes it */

static void
ngx_passkey_fuzz_logged(ngx_str_t *s)
{
    ngx_uint_t  i;

    ngx_passkey_fuzz_check(s->len <= NGX_HTTP_PASSKEY_LOG_VALUE_LEN);

    for (i = 0; i < s->len; i++) {
        ngx_passkey_fuzz_check(s->data[i] >= 0x20 && s->data[i] < 0x7f
                               && s->data[i] != '"');
    }
}


ngx_int_t
__wrap_ngx_http_passkey_token_keep(ngx_http_passkey_token_t *token,
    ngx_str_t *access_token, uint64_t renew, uint64_t lifetime)
{
    ngx_passkey_fuzz_check(renew <= lifetime);

    ngx_passkey_fuzz_kept = *access_token;

    return NGX_OK;
}

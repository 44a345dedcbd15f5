
/*
 * Copyright (C) ngx_passkey_module authors
 */


/*
 * The API's answers about identities: to the creation of one (the new
 * identity's id, or 409 and its message) and to the look-up by username
 * (the list, compared without case, one match at most, the spelling in
 * authenticated mode, a taken username at sign-up).
 *
 * Input: a first line "created|found STATUS USERNAME [FLAGS]", then the
 * body.  FLAGS, a letter each: a (authenticated mode), t (sign-up found
 * the username taken), e (passkey_signup_existing email), l (looked up
 * first, as a known user is).
 *
 * The next API call goes nowhere: the harness notes it.
 * wrap: ngx_http_passkey_bi_request
 *
 * Checks: an identity taken has a valid id and, in authenticated mode,
 * exactly the verified username; every answer ends in one report or one
 * next call; the look-up's filter is percent-encoded.
 */


#include "../ngx_passkey_module/ngx_http_passkey_identity.c"

#include "ngx_passkey_fuzz.h"


ngx_int_t __wrap_ngx_http_passkey_bi_request(ngx_http_passkey_bi_call_t *bc,
    ngx_http_request_t *r, char *method, ngx_str_t *path, ngx_str_t *query,
    ngx_http_passkey_json_t *body, ngx_http_passkey_bi_done_pt handler,
    void *data);

static void ngx_passkey_fuzz_reported(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_identity_e rc);


static ngx_uint_t                   ngx_passkey_fuzz_reports;
static ngx_uint_t                   ngx_passkey_fuzz_calls;
static ngx_http_passkey_identity_e  ngx_passkey_fuzz_report;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_passkey_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                      *q, *end;
    ngx_int_t                    status, rc;
    ngx_str_t                    line, word[4];
    ngx_uint_t                   n, created;
    ngx_pool_t                  *pool;
    const u_char                *p, *last;
    ngx_http_passkey_ctx_t      *ctx;
    ngx_http_passkey_bi_call_t  *bc;
    ngx_passkey_fuzz_request_t  *fr;

    pool = ngx_passkey_fuzz_pool();

    p = data;
    last = data + size;

    if (ngx_passkey_fuzz_line(pool, &p, last, &line, 0) != NGX_OK) {
        goto done;
    }

    for (n = 0; n < 4; n++) {
        ngx_str_set(&word[n], "");
    }

    q = line.data;
    end = line.data + line.len;

    for (n = 0; n < 4 && q < end; n++) {
        word[n].data = q;

        while (q < end && *q != ' ') {
            q++;
        }

        word[n].len = q - word[n].data;
        q++;
    }

    status = ngx_atoi(word[1].data, word[1].len);

    if (status < 100 || status > 599 || word[2].len == 0) {
        goto done;
    }

    created = (word[0].len == 7
               && ngx_strncmp(word[0].data, "created", 7) == 0);

    fr = ngx_passkey_fuzz_request(pool);

    ctx = ngx_pcalloc(pool, sizeof(ngx_http_passkey_ctx_t));
    if (ctx == NULL) {
        abort();
    }

    ctx->request = &fr->r;
    ctx->identity_done = ngx_passkey_fuzz_reported;
    ctx->vars.username = word[2];
    ngx_str_set(&ctx->vars.delivery_method, "RETURN");

    for (q = word[3].data; q < word[3].data + word[3].len; q++) {
        switch (*q) {
        case 'a':
            fr->plcf->bind_mode = NGX_HTTP_PASSKEY_AUTHENTICATED;
            break;
        case 't':
            ctx->existing = 1;
            break;
        case 'e':
            fr->plcf->signup_existing = NGX_HTTP_PASSKEY_SEND_EMAIL;
            break;
        case 'l':
            ctx->lookup_first = 1;
            break;
        }
    }

    /* the answer, as ngx_http_passkey_bi.c hands it over */

    bc = &ctx->bi;
    bc->pool = pool;
    bc->log = ngx_passkey_fuzz_log;
    bc->conf = fr->plcf;
    bc->data = ctx;
    bc->result = NGX_HTTP_PASSKEY_API_OK;
    bc->status = status;

    line.len = last - p;
    line.data = ngx_passkey_fuzz_copy(pool, p, line.len, 0);

    if (line.len) {
        rc = ngx_http_passkey_json_parse(pool, &line, &bc->json);

        if (rc != NGX_OK) {
            bc->json = NULL;
        }
    }

    if (bc->json == NULL && status < 300) {
        bc->result = NGX_HTTP_PASSKEY_API_BAD_RESPONSE;
    }

    if (bc->json && status >= 300) {
        (void) ngx_http_passkey_json_string(pool, bc->json, "message",
                                            &bc->api_message);
    }

    ngx_passkey_fuzz_reports = 0;
    ngx_passkey_fuzz_calls = 0;

    if (created) {
        ngx_http_passkey_identity_created(bc);

    } else {
        ngx_http_passkey_identity_found(bc);
    }

    ngx_passkey_fuzz_check(ngx_passkey_fuzz_reports + ngx_passkey_fuzz_calls
                           == 1);

    if (ngx_passkey_fuzz_reports
        && (ngx_passkey_fuzz_report == NGX_HTTP_PASSKEY_IDENTITY_CREATED
            || ngx_passkey_fuzz_report == NGX_HTTP_PASSKEY_IDENTITY_FOUND))
    {
        ngx_passkey_fuzz_check(
            ngx_http_passkey_valid_id(&ctx->vars.identity_id) == NGX_OK);
        ngx_passkey_fuzz_check(
            ngx_passkey_fuzz_report != NGX_HTTP_PASSKEY_IDENTITY_FOUND
            || !ctx->existing
            || fr->plcf->signup_existing == NGX_HTTP_PASSKEY_SEND_EMAIL);
    }

    if (ngx_passkey_fuzz_reports
        && ngx_passkey_fuzz_report == NGX_HTTP_PASSKEY_IDENTITY_MISSPELLED)
    {
        ngx_passkey_fuzz_check(
            fr->plcf->bind_mode == NGX_HTTP_PASSKEY_AUTHENTICATED);
    }

    ngx_passkey_fuzz_check(ctx->conflict.len <= 200);

done:

    ngx_passkey_fuzz_done(pool);

    return 0;
}


static void
ngx_passkey_fuzz_reported(ngx_http_passkey_ctx_t *ctx,
    ngx_http_passkey_identity_e rc)
{
    ngx_passkey_fuzz_reports++;
    ngx_passkey_fuzz_report = rc;
}


ngx_int_t
__wrap_ngx_http_passkey_bi_request(ngx_http_passkey_bi_call_t *bc,
    ngx_http_request_t *r, char *method, ngx_str_t *path, ngx_str_t *query,
    ngx_http_passkey_json_t *body, ngx_http_passkey_bi_done_pt handler,
    void *data)
{
    u_char      ch;
    ngx_uint_t  i;

    ngx_passkey_fuzz_calls++;

    /* the look-up's filter: only unreserved characters and %XX */

    for (i = 0; query && i < query->len; i++) {
        ch = query->data[i];

        ngx_passkey_fuzz_check((ch >= 'a' && ch <= 'z')
                               || (ch >= 'A' && ch <= 'Z')
                               || (ch >= '0' && ch <= '9')
                               || ch == '-' || ch == '.' || ch == '_'
                               || ch == '~' || ch == '%' || ch == '=');
    }

    return NGX_OK;
}

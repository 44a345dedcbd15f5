
/*
 * Copyright (C) ngx_passkey_module authors
 */


/*
 * The /bind URL a binding email links to (passkey_invoke): its six
 * arguments read from the URI as the client sent it, each checked, and
 * the link's api_base_url, tenant and realm compared with the location's.
 *
 * Input: the request URI ("/bind?api_base_url=...&...").
 *
 * The answer to a refused link is replaced: the harness notes it.
 * wrap: ngx_http_passkey_invoke_refuse ngx_http_passkey_invoke_error
 *
 * Checks: a link taken has valid ids; one refused is answered once.
 */


#include "ngx_passkey_fuzz.h"


ngx_int_t __wrap_ngx_http_passkey_invoke_refuse(ngx_http_request_t *r,
    ngx_uint_t status, char *code, char *detail, char *text);
ngx_int_t __wrap_ngx_http_passkey_invoke_error(ngx_http_request_t *r);


static ngx_uint_t  ngx_passkey_fuzz_refused;
static ngx_uint_t  ngx_passkey_fuzz_status;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_passkey_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_int_t                       rc;
    ngx_pool_t                     *pool;
    ngx_passkey_fuzz_request_t     *fr;
    ngx_http_passkey_invoke_ctx_t  *ctx;

    pool = ngx_passkey_fuzz_pool();

    fr = ngx_passkey_fuzz_request(pool);

    ngx_str_set(&fr->plcf->tenant_id, "0a1b2c3d4e5f6789");
    ngx_str_set(&fr->plcf->realm_id, "f6e5d4c3b2a19876");
    ngx_str_set(&fr->plcf->api_url, "http://127.0.0.1:18999");
    ngx_str_set(&fr->plcf->auth_url, "https://auth-us.beyondidentity.com");

    ngx_str_set(&fr->r.method_name, "GET");
    fr->r.method = NGX_HTTP_GET;

    fr->r.unparsed_uri.len = size;
    fr->r.unparsed_uri.data = ngx_passkey_fuzz_copy(pool, data, size, 0);

    ctx = ngx_pcalloc(pool, sizeof(ngx_http_passkey_invoke_ctx_t));
    if (ctx == NULL) {
        abort();
    }

    ctx->request = &fr->r;

    ngx_passkey_fuzz_refused = 0;

    rc = ngx_http_passkey_invoke_args(&fr->r, ctx);

    if (rc == NGX_OK) {
        ngx_passkey_fuzz_check(ngx_passkey_fuzz_refused == 0);
        ngx_passkey_fuzz_check(
            ngx_http_passkey_valid_id(&ctx->vars.job_id) == NGX_OK);
        ngx_passkey_fuzz_check(
            ngx_http_passkey_valid_id(&ctx->vars.identity_id) == NGX_OK);

    } else {
        ngx_passkey_fuzz_check(rc == NGX_DONE
                               && ngx_passkey_fuzz_refused == 1
                               && (ngx_passkey_fuzz_status == 400
                                   || ngx_passkey_fuzz_status == 403));
    }

    ngx_passkey_fuzz_done(pool);

    return 0;
}


ngx_int_t
__wrap_ngx_http_passkey_invoke_refuse(ngx_http_request_t *r,
    ngx_uint_t status, char *code, char *detail, char *text)
{
    ngx_passkey_fuzz_refused++;
    ngx_passkey_fuzz_status = status;

    return NGX_DONE;
}


ngx_int_t
__wrap_ngx_http_passkey_invoke_error(ngx_http_request_t *r)
{
    /* out of memory: never, as the harness has memory */
    abort();
}


/*
 * Copyright (C) ngx_passkey_module authors
 */


/*
 * A bind's JSON body and what the module makes of it, with the location's
 * configuration: the JSON parsed as the bind reads it, then
 * ngx_http_passkey_bind_request() (the user, verified or from the body,
 * percent-decoded; the names, the address, the delivery method and the
 * redirect, checked).
 *
 * Input, lines:
 *   1  the configuration, a letter each: a (passkey_bind_mode
 *      authenticated), u, e, n, r (passkey_username, passkey_email,
 *      passkey_display_name, passkey_post_binding_redirect_uri set to
 *      lines 2 to 5), o (passkey_redirect_origins line 6), R and E
 *      (passkey_delivery_method, in that order; the first is the default)
 *   2 to 6  those values
 *   the rest: the body
 *
 * Checks: what is accepted is what the checks allow; a refusal has an
 * answer.
 */


#include "ngx_passkey_fuzz.h"


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_passkey_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                       *f;
    ngx_int_t                     rc;
    ngx_str_t                     flags, value[5], origin, body, s;
    ngx_uint_t                    i, bit;
    ngx_pool_t                   *pool;
    const u_char                 *p, *last;
    ngx_http_passkey_ctx_t       *ctx;
    ngx_passkey_fuzz_request_t   *fr;
    ngx_http_passkey_loc_conf_t  *plcf;

    pool = ngx_passkey_fuzz_pool();

    p = data;
    last = data + size;

    ngx_str_set(&flags, "");
    ngx_str_set(&origin, "");

    (void) ngx_passkey_fuzz_line(pool, &p, last, &flags, 0);

    for (i = 0; i < 5; i++) {
        ngx_str_set(&value[i], "");
        (void) ngx_passkey_fuzz_line(pool, &p, last, &value[i], 0);
    }

    (void) ngx_passkey_fuzz_line(pool, &p, last, &origin, 0);

    body.len = last - p;
    body.data = ngx_passkey_fuzz_copy(pool, p, body.len, 0);

    fr = ngx_passkey_fuzz_request(pool);
    plcf = fr->plcf;

    plcf->delivery_methods = 0;

    for (f = flags.data; f < flags.data + flags.len; f++) {
        switch (*f) {

        case 'a':
            plcf->bind_mode = NGX_HTTP_PASSKEY_AUTHENTICATED;
            break;

        case 'u':
            plcf->username = ngx_passkey_fuzz_value(pool, &value[0]);
            break;

        case 'e':
            plcf->email = ngx_passkey_fuzz_value(pool, &value[1]);
            break;

        case 'n':
            plcf->display_name = ngx_passkey_fuzz_value(pool, &value[2]);
            break;

        case 'r':
            plcf->post_binding_redirect_uri =
                                     ngx_passkey_fuzz_value(pool, &value[3]);
            break;

        case 'o':
            plcf->redirect_origins = ngx_array_create(pool, 1,
                                                      sizeof(ngx_str_t));
            if (plcf->redirect_origins == NULL
                || ngx_array_push(plcf->redirect_origins) == NULL)
            {
                abort();
            }

            *(ngx_str_t *) plcf->redirect_origins->elts = origin;
            break;

        case 'R':
        case 'E':
            bit = (*f == 'R') ? NGX_HTTP_PASSKEY_RETURN
                              : NGX_HTTP_PASSKEY_EMAIL;

            if (plcf->delivery_methods == 0) {
                plcf->delivery_default = bit;
            }

            plcf->delivery_methods |= bit;
            break;
        }
    }

    if (plcf->delivery_methods == 0) {
        plcf->delivery_default = NGX_HTTP_PASSKEY_RETURN;
        plcf->delivery_methods = NGX_HTTP_PASSKEY_RETURN;
    }

    /* passkey_bind_mode authenticated takes the user from nginx only */

    if (plcf->bind_mode == NGX_HTTP_PASSKEY_AUTHENTICATED
        && plcf->username == NULL)
    {
        plcf->username = ngx_passkey_fuzz_value(pool, &value[0]);
    }

    ctx = ngx_pcalloc(pool, sizeof(ngx_http_passkey_ctx_t));
    if (ctx == NULL) {
        abort();
    }

    ctx->request = &fr->r;

    /* as the bind reads it: no body is an empty object */

    if (body.len == 0) {
        ngx_str_set(&body, "{}");
    }

    rc = ngx_http_passkey_json_parse(pool, &body, &ctx->vars.body);

    if (rc != NGX_OK) {
        ngx_passkey_fuzz_check(rc == NGX_DECLINED);
        goto done;
    }

    rc = ngx_http_passkey_bind_request(&fr->r, ctx);

    if (rc != NGX_OK) {
        ngx_passkey_fuzz_check(rc == NGX_ERROR && ctx->problem.code != NULL
                               && ctx->problem.status >= 400
                               && ctx->problem.status <= 500);
        goto done;
    }

    ngx_passkey_fuzz_check(
        ngx_http_passkey_check_name(&ctx->vars.username) == NGX_OK);
    ngx_passkey_fuzz_check(
        ngx_http_passkey_check_name(&ctx->display_name) == NGX_OK);
    ngx_passkey_fuzz_check(
        ctx->vars.email.len == 0
        || ngx_http_passkey_check_email(&ctx->vars.email) == NGX_OK);

    s = ctx->vars.delivery_method;
    bit = (s.len == 6 && ngx_strncmp(s.data, "RETURN", 6) == 0)
          ? NGX_HTTP_PASSKEY_RETURN
          : (s.len == 5 && ngx_strncmp(s.data, "EMAIL", 5) == 0)
            ? NGX_HTTP_PASSKEY_EMAIL : 0;

    ngx_passkey_fuzz_check(bit & plcf->delivery_methods);

    ngx_passkey_fuzz_check(plcf->bind_mode != NGX_HTTP_PASSKEY_SIGNUP
                           || bit != NGX_HTTP_PASSKEY_EMAIL
                           || ctx->vars.email.len);

    ngx_passkey_fuzz_check(
        ctx->post_binding_redirect_uri.len == 0
        || ngx_http_passkey_check_redirect(&ctx->post_binding_redirect_uri,
                                           plcf->redirect_origins)
           == NGX_OK);

    /* the body may name the signed-in user, without case, and no one else */

    if (plcf->bind_mode == NGX_HTTP_PASSKEY_AUTHENTICATED
        && ngx_http_passkey_json_string(pool, ctx->vars.body, "username", &s)
           == NGX_OK)
    {
        ngx_passkey_fuzz_check(s.len == ctx->vars.username.len
                               && ngx_strncasecmp(s.data,
                                                  ctx->vars.username.data,
                                                  s.len)
                                  == 0);
    }

done:

    ngx_passkey_fuzz_done(pool);

    return 0;
}

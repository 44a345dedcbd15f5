
/*
 * Copyright (C) ngx_passkey_module authors
 */


/*
 * Redis replies: RESP bytes as they arrive in pieces, read by hiredis's
 * reader and copied into an op (or, for the connection's own commands,
 * an error's text into a buffer), then what the module reads in them:
 * the rate limit and idempotency script's answer (with a kept answer
 * unsealed), a sentinel's master address, and a job's hash.
 *
 * Input: a first byte for the size of the pieces (0: all at once), a
 * second whose lowest bit makes the replies the connection's own (AUTH,
 * SELECT), then the bytes from Redis.
 *
 * Checks: replies are copied whole, strings followed by a NUL; what each
 * reader takes is in the range it allows.
 */


#include "../ngx_passkey_module/ngx_http_passkey_guard.c"
#include "../ngx_passkey_module/ngx_http_passkey_redis_sentinel.c"
#include "../ngx_passkey_module/ngx_http_passkey_job_endpoint.c"

#include "ngx_passkey_fuzz.h"


static void ngx_passkey_fuzz_reply(ngx_passkey_fuzz_request_t *fr,
    ngx_http_passkey_redis_op_t *op);


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_passkey_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void                         *reader;
    u_char                        buf[32];
    size_t                        piece, n;
    ngx_int_t                     rc;
    ngx_str_t                     error;
    ngx_uint_t                    own;
    ngx_pool_t                   *pool;
    const u_char                 *p, *last;
    ngx_passkey_fuzz_request_t   *fr;
    ngx_http_passkey_redis_op_t   op;

    if (size < 2) {
        return 0;
    }

    piece = data[0];
    own = data[1] & 1;

    p = data + 2;
    last = data + size;

    pool = ngx_passkey_fuzz_pool();
    fr = ngx_passkey_fuzz_request(pool);

    reader = ngx_http_passkey_resp_reader();
    if (reader == NULL) {
        abort();
    }

    rc = NGX_AGAIN;

    while (p < last && rc != NGX_ERROR) {
        n = (piece && (size_t) (last - p) > piece) ? piece
                                                   : (size_t) (last - p);

        if (ngx_http_passkey_resp_feed(reader,
                                       ngx_passkey_fuzz_copy(pool, p, n, 0),
                                       n)
            != NGX_OK)
        {
            break;
        }

        p += n;

        for ( ;; ) {
            if (own) {
                error.data = buf;
                error.len = sizeof(buf);

                rc = ngx_http_passkey_resp_reply(reader, NULL, &error);

                ngx_passkey_fuzz_check(rc != NGX_DECLINED
                                       || error.len <= sizeof(buf));

                if (rc == NGX_OK || rc == NGX_DECLINED) {
                    continue;
                }

                break;
            }

            ngx_memzero(&op, sizeof(ngx_http_passkey_redis_op_t));
            op.pool = pool;
            op.log = ngx_passkey_fuzz_log;

            rc = ngx_http_passkey_resp_reply(reader, &op, NULL);

            if (rc != NGX_OK) {
                ngx_passkey_fuzz_check(rc == NGX_AGAIN || rc == NGX_ERROR);
                break;
            }

            ngx_passkey_fuzz_reply(fr, &op);
        }
    }

    ngx_http_passkey_resp_reader_free(reader);

    ngx_passkey_fuzz_done(pool);

    return 0;
}


static void
ngx_passkey_fuzz_reply(ngx_passkey_fuzz_request_t *fr,
    ngx_http_passkey_redis_op_t *op)
{
    ngx_int_t                          rc;
    ngx_str_t                         *e;
    ngx_uint_t                         i;
    ngx_http_passkey_ctx_t            *ctx;
    ngx_http_passkey_guard_t          *g;
    ngx_http_passkey_limit_t          *lim;
    ngx_http_passkey_status_ctx_t     *sc;
    ngx_http_passkey_redis_conn_t     *conn;
    ngx_http_passkey_redis_server_t   *server;

    if (op->result != NGX_HTTP_PASSKEY_REDIS_OK) {
        ngx_passkey_fuzz_check(
            op->result == NGX_HTTP_PASSKEY_REDIS_UNAVAILABLE
            && op->type == NGX_HTTP_PASSKEY_REDIS_NIL);
        return;
    }

    switch (op->type) {

    case NGX_HTTP_PASSKEY_REDIS_STRING:
    case NGX_HTTP_PASSKEY_REDIS_STATUS:
    case NGX_HTTP_PASSKEY_REDIS_ERROR:
        ngx_passkey_fuzz_check(op->str.data[op->str.len] == '\0');
        break;

    case NGX_HTTP_PASSKEY_REDIS_ARRAY:
        ngx_passkey_fuzz_check(op->elements != NULL);

        e = op->elements->elts;

        for (i = 0; i < op->elements->nelts; i++) {
            ngx_passkey_fuzz_check(e[i].data != NULL
                                   && e[i].data[e[i].len] == '\0');
        }

        break;

    default:
        break;
    }

    /* the guard's script: a request with eight limits and a key */

    ctx = ngx_pcalloc(fr->r.pool, sizeof(ngx_http_passkey_ctx_t));
    lim = ngx_pcalloc(fr->r.pool,
                      NGX_HTTP_PASSKEY_LIMIT_MAX
                      * sizeof(ngx_http_passkey_limit_t));

    if (ctx == NULL || lim == NULL) {
        abort();
    }

    ctx->request = &fr->r;
    g = &ctx->guard;

    for (i = 0; i < NGX_HTTP_PASSKEY_LIMIT_MAX; i++) {
        g->limits[i] = &lim[i];
    }

    ngx_str_set(&g->key, "passkey:idem:x");
    ngx_str_set(&g->secret, "0123456789abcdef\n/passkey/bind\nalice");

    rc = ngx_http_passkey_guard_result(ctx, op);

    if (rc == NGX_OK) {
        switch (g->result) {

        case NGX_HTTP_PASSKEY_GUARD_LIMITED:
            ngx_passkey_fuzz_check(g->limit != NULL);
            break;

        case NGX_HTTP_PASSKEY_GUARD_REPLAY:
            ngx_passkey_fuzz_check(g->status >= 200 && g->status <= 299);
            break;

        case NGX_HTTP_PASSKEY_GUARD_PENDING:
        case NGX_HTTP_PASSKEY_GUARD_DUPLICATE:
            ngx_passkey_fuzz_check(g->retry >= 1);
            break;

        default:
            break;
        }

    } else {
        ngx_passkey_fuzz_check(rc == NGX_ERROR);
    }

    if (op->type != NGX_HTTP_PASSKEY_REDIS_ARRAY) {
        return;
    }

    /* a sentinel's answer to get-master-addr-by-name */

    server = ngx_pcalloc(fr->r.pool, sizeof(ngx_http_passkey_redis_server_t));
    if (server == NULL) {
        abort();
    }

    ngx_str_set(&server->name, "mymaster");
    ngx_str_set(&server->sentinel, "mymaster");

    conn = ngx_http_passkey_redis_conn((ngx_cycle_t *) ngx_cycle, server);
    if (conn == NULL) {
        abort();
    }

    if (ngx_http_passkey_redis_master(conn, op->elements) == NGX_OK) {
        ngx_passkey_fuzz_check(
            (conn->socklen == sizeof(struct sockaddr_in)
             && conn->sockaddr.sockaddr.sa_family == AF_INET)
            || (conn->socklen == sizeof(struct sockaddr_in6)
                && conn->sockaddr.sockaddr.sa_family == AF_INET6));
        ngx_passkey_fuzz_check(
            ngx_inet_get_port(&conn->sockaddr.sockaddr) != 0);
    }

    /* a job's hash, as HGETALL answers it */

    sc = ngx_pcalloc(fr->r.pool, sizeof(ngx_http_passkey_status_ctx_t));
    if (sc == NULL) {
        abort();
    }

    sc->request = &fr->r;

    if (ngx_http_passkey_job_parse(sc, op->elements, 0) == NGX_OK) {
        ngx_passkey_fuzz_check(sc->vars.job_state.len > 0);
        ngx_passkey_fuzz_check(
            ngx_http_passkey_valid_id(&sc->vars.identity_id) == NGX_OK);
    }
}

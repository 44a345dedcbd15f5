
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>

#include "ngx_http_passkey_redis.h"


/*
 * RESP, the Redis protocol, by hiredis: commands formatted, and replies
 * read from the bytes ngx_http_passkey_redis.c receives and copied into
 * the op that waits for them.  hiredis never sees a socket; this is the
 * only file that includes it.
 */


#define NGX_HTTP_PASSKEY_RESP_ELEMENTS  1024


static void *ngx_http_passkey_resp_array(const redisReadTask *task,
    int elements);
static ngx_int_t ngx_http_passkey_resp_copy(ngx_http_passkey_redis_op_t *op,
    redisReply *reply);
static ngx_int_t ngx_http_passkey_resp_copy_element(ngx_pool_t *pool,
    ngx_str_t *dst, redisReply *reply);
static ngx_int_t ngx_http_passkey_resp_copy_str(ngx_pool_t *pool,
    ngx_str_t *dst, u_char *src, size_t len);


/* hiredis's reply functions, but for arrays */
static redisReplyObjectFunctions  ngx_http_passkey_resp_functions;
static void *(*ngx_http_passkey_resp_create_array)(const redisReadTask *task,
    int elements);


/* appends the command to buf, which grows (ngx_alloc) as it needs */

ngx_int_t
ngx_http_passkey_resp_command(ngx_http_passkey_resp_buf_t *buf,
    ngx_uint_t argc, ngx_str_t *argv, ngx_log_t *log)
{
    int           n;
    char         *cmd;
    size_t       *lens;
    ngx_int_t     rc;
    ngx_uint_t    i;
    const char  **args;

    args = ngx_alloc(argc * (sizeof(char *) + sizeof(size_t)), log);
    if (args == NULL) {
        return NGX_ERROR;
    }

    lens = (size_t *) (args + argc);

    for (i = 0; i < argc; i++) {
        args[i] = argv[i].data ? (const char *) argv[i].data : "";
        lens[i] = argv[i].len;
    }

    n = redisFormatCommandArgv(&cmd, (int) argc, args, lens);

    ngx_free(args);

    if (n < 0) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "passkey redis cannot format a command");
        return NGX_ERROR;
    }

    rc = ngx_http_passkey_resp_append(buf, (u_char *) cmd, n, log);

    redisFreeCommand(cmd);

    return rc;
}


/* appends bytes to buf, which grows (ngx_alloc) as it needs */

ngx_int_t
ngx_http_passkey_resp_append(ngx_http_passkey_resp_buf_t *buf, u_char *data,
    size_t len, ngx_log_t *log)
{
    u_char  *p;
    size_t   size;

    if (buf->last + len > buf->end) {
        size = ngx_max((size_t) (buf->end - buf->start) * 2,
                       (size_t) (buf->last - buf->pos) + len + 4096);

        p = ngx_alloc(size, log);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (buf->start) {
            buf->last = ngx_cpymem(p, buf->pos, buf->last - buf->pos);
            ngx_free(buf->start);

        } else {
            buf->last = p;
        }

        buf->start = p;
        buf->pos = p;
        buf->end = p + size;
    }

    buf->last = ngx_cpymem(buf->last, data, len);

    return NGX_OK;
}


/*
 * A reader whose arrays are at most NGX_HTTP_PASSKEY_RESP_ELEMENTS long:
 * hiredis 0.14 allocates an array's elements when it reads its header,
 * so a reply that said "*288888888" would make it ask for gigabytes at
 * once (make fuzz-run found it).  No reply the module asks for has more
 * than a few dozen; a longer one is an error, and the connection goes.
 */

void *
ngx_http_passkey_resp_reader(void)
{
    redisReader  *r;

    r = redisReaderCreate();
    if (r == NULL) {
        return NULL;
    }

    if (ngx_http_passkey_resp_create_array == NULL) {
        ngx_http_passkey_resp_functions = *r->fn;
        ngx_http_passkey_resp_create_array = r->fn->createArray;
        ngx_http_passkey_resp_functions.createArray =
                                                  ngx_http_passkey_resp_array;
    }

    r->fn = &ngx_http_passkey_resp_functions;

    return r;
}


static void *
ngx_http_passkey_resp_array(const redisReadTask *task, int elements)
{
    if (elements < 0 || elements > NGX_HTTP_PASSKEY_RESP_ELEMENTS) {
        return NULL;
    }

    return ngx_http_passkey_resp_create_array(task, elements);
}


void
ngx_http_passkey_resp_reader_free(void *reader)
{
    if (reader != NULL) {
        redisReaderFree(reader);
    }
}


ngx_int_t
ngx_http_passkey_resp_feed(void *reader, u_char *data, size_t len)
{
    return redisReaderFeed(reader, (const char *) data, len) == REDIS_OK
           ? NGX_OK : NGX_ERROR;
}


/*
 * The next whole reply: NGX_AGAIN if none is complete yet, NGX_ERROR for
 * bytes that are not RESP.  Copied into op, which may be NULL (the
 * owner is gone, or a command of the connection's own): then an error
 * reply is NGX_DECLINED and its text, cut to error->len bytes, is put
 * into error->data.
 */

ngx_int_t
ngx_http_passkey_resp_reply(void *reader, ngx_http_passkey_redis_op_t *op,
    ngx_str_t *error)
{
    void        *r;
    ngx_int_t    rc;
    redisReply  *reply;

    r = NULL;

    if (redisReaderGetReply(reader, &r) != REDIS_OK) {
        return NGX_ERROR;
    }

    if (r == NULL) {
        return NGX_AGAIN;
    }

    reply = r;
    rc = NGX_OK;

    if (op != NULL) {
        op->result = NGX_HTTP_PASSKEY_REDIS_OK;
        op->type = NGX_HTTP_PASSKEY_REDIS_NIL;
        ngx_str_null(&op->str);
        op->integer = 0;
        op->elements = NULL;

        if (ngx_http_passkey_resp_copy(op, reply) != NGX_OK) {
            op->result = NGX_HTTP_PASSKEY_REDIS_UNAVAILABLE;
            op->type = NGX_HTTP_PASSKEY_REDIS_NIL;
            ngx_str_null(&op->str);
            op->elements = NULL;
        }

    } else if (reply->type == REDIS_REPLY_ERROR) {
        error->len = ngx_min(error->len, reply->len);
        ngx_memcpy(error->data, reply->str, error->len);
        rc = NGX_DECLINED;
    }

    freeReplyObject(reply);

    return rc;
}


static ngx_int_t
ngx_http_passkey_resp_copy(ngx_http_passkey_redis_op_t *op,
    redisReply *reply)
{
    size_t      i;
    ngx_str_t  *s;

    switch (reply->type) {

    case REDIS_REPLY_STRING:
        op->type = NGX_HTTP_PASSKEY_REDIS_STRING;
        break;

    case REDIS_REPLY_STATUS:
        op->type = NGX_HTTP_PASSKEY_REDIS_STATUS;
        break;

    case REDIS_REPLY_ERROR:
        /* the server answered: result stays OK */
        op->type = NGX_HTTP_PASSKEY_REDIS_ERROR;
        break;

    case REDIS_REPLY_INTEGER:
        op->type = NGX_HTTP_PASSKEY_REDIS_INTEGER;
        op->integer = (ngx_int_t) reply->integer;
        return NGX_OK;

    case REDIS_REPLY_NIL:
        op->type = NGX_HTTP_PASSKEY_REDIS_NIL;
        return NGX_OK;

    case REDIS_REPLY_ARRAY:
        op->type = NGX_HTTP_PASSKEY_REDIS_ARRAY;

        op->elements = ngx_array_create(op->pool,
                                        reply->elements ? reply->elements : 1,
                                        sizeof(ngx_str_t));
        if (op->elements == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < reply->elements; i++) {
            s = ngx_array_push(op->elements);
            if (s == NULL) {
                return NGX_ERROR;
            }

            if (ngx_http_passkey_resp_copy_element(op->pool, s,
                                                   reply->element[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        return NGX_OK;

    default:
        ngx_log_error(NGX_LOG_ALERT, op->log, 0,
                      "passkey redis unknown reply type %d", reply->type);
        return NGX_ERROR;
    }

    return ngx_http_passkey_resp_copy_str(op->pool, &op->str,
                                          (u_char *) reply->str, reply->len);
}


static ngx_int_t
ngx_http_passkey_resp_copy_element(ngx_pool_t *pool, ngx_str_t *dst,
    redisReply *reply)
{
    u_char  *p;

    switch (reply->type) {

    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        return ngx_http_passkey_resp_copy_str(pool, dst,
                                              (u_char *) reply->str,
                                              reply->len);

    case REDIS_REPLY_INTEGER:
        dst->data = ngx_pnalloc(pool, NGX_INT64_LEN + 1);
        if (dst->data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_sprintf(dst->data, "%L", (int64_t) reply->integer);
        *p = '\0';
        dst->len = p - dst->data;

        return NGX_OK;

    default:
        /* nil, and nested arrays, which callers of this API never use */
        dst->len = 0;
        dst->data = (u_char *) "";
        return NGX_OK;
    }
}


static ngx_int_t
ngx_http_passkey_resp_copy_str(ngx_pool_t *pool, ngx_str_t *dst, u_char *src,
    size_t len)
{
    u_char  *p;

    /* null-terminated for convenience; len does not count the '\0' */

    p = ngx_pnalloc(pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (len) {
        ngx_memcpy(p, src, len);
    }

    p[len] = '\0';

    dst->len = len;
    dst->data = p;

    return NGX_OK;
}

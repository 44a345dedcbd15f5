
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * What the handlers share about the jobs kept in Redis: where a job lives,
 * how a command for a request is set up, how times are written, which
 * states are final.
 */


/* "<passkey_redis_prefix>job:<job_id>" */

ngx_int_t
ngx_http_passkey_job_key(ngx_http_request_t *r, ngx_str_t *job_id,
    ngx_str_t *key)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    key->len = plcf->redis_prefix.len + sizeof("job:") - 1 + job_id->len;
    key->data = ngx_pnalloc(r->pool, key->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(key->data, "%Vjob:%V", &plcf->redis_prefix, job_id);

    return NGX_OK;
}


void
ngx_http_passkey_redis_op_init(ngx_http_request_t *r,
    ngx_http_passkey_redis_op_t *op, ngx_http_passkey_redis_done_pt handler,
    void *data)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    ngx_memzero(op, sizeof(ngx_http_passkey_redis_op_t));

    op->pool = r->pool;
    op->log = r->connection->log;
    op->timeout = plcf->redis_timeout;
    op->handler = handler;
    op->data = data;
}


/* "1970-01-01T00:00:00Z" into buf, which holds at least 20 bytes */

void
ngx_http_passkey_rfc3339(time_t t, u_char *buf)
{
    ngx_tm_t  tm;

    ngx_gmtime(t, &tm);

    ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02dZ",
                tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);
}


/* a job in one of these states will not change any more */

ngx_uint_t
ngx_http_passkey_final_state(ngx_str_t *state)
{
    static ngx_str_t  final[] = {
        ngx_string("COMPLETE"),
        ngx_string("EXPIRED"),
        ngx_string("REVOKED"),
        ngx_string("FAILED_TO_SEND"),
        ngx_null_string
    };

    ngx_str_t  *f;

    for (f = final; f->len; f++) {
        if (state->len == f->len
            && ngx_strncmp(state->data, f->data, f->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * Beyond Identity's ids are opaque, but every one seen is made of letters,
 * digits, "-" and "_"; anything else is refused before it reaches a URL
 * path or a Redis key.
 */

ngx_int_t
ngx_http_passkey_valid_id(ngx_str_t *id)
{
    u_char      ch;
    ngx_uint_t  i;

    if (id->len == 0 || id->len > 128) {
        return NGX_DECLINED;
    }

    for (i = 0; i < id->len; i++) {
        ch = id->data[i];

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
            || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_')
        {
            continue;
        }

        return NGX_DECLINED;
    }

    return NGX_OK;
}

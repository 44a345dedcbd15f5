
/*
 * Copyright (C) ngx_passkey_module authors
 */


#ifndef _NGX_HTTP_PASSKEY_JSON_H_INCLUDED_
#define _NGX_HTTP_PASSKEY_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * JSON documents owned by an nginx pool: a pool cleanup drops the library's
 * reference.  This is the only file that includes jansson.h.
 */


typedef struct ngx_http_passkey_json_s  ngx_http_passkey_json_t;


/* NGX_OK, NGX_DECLINED (not valid JSON, or not an object), NGX_ERROR */
ngx_int_t ngx_http_passkey_json_parse(ngx_pool_t *pool, ngx_str_t *text,
    ngx_http_passkey_json_t **json);

/*
 * Lookups by a dotted path of object keys ("a.b.c"); NULL or NGX_DECLINED
 * when a key is missing or the value has another type.  Strings are copied
 * into the pool.
 */
ngx_http_passkey_json_t *ngx_http_passkey_json_child(
    ngx_http_passkey_json_t *json, char *path);
ngx_int_t ngx_http_passkey_json_string(ngx_pool_t *pool,
    ngx_http_passkey_json_t *json, char *path, ngx_str_t *value);
ngx_int_t ngx_http_passkey_json_integer(ngx_http_passkey_json_t *json,
    char *path, ngx_int_t *value);

/* Arrays: size (0 if not an array) and a borrowed element. */
ngx_uint_t ngx_http_passkey_json_size(ngx_http_passkey_json_t *json);
ngx_http_passkey_json_t *ngx_http_passkey_json_at(
    ngx_http_passkey_json_t *json, ngx_uint_t i);

/* Building: a new empty object owned by pool, and setters (NGX_OK/ERROR). */
ngx_http_passkey_json_t *ngx_http_passkey_json_object(ngx_pool_t *pool);
ngx_int_t ngx_http_passkey_json_set_string(ngx_http_passkey_json_t *json,
    char *key, ngx_str_t *value);
ngx_int_t ngx_http_passkey_json_set_integer(ngx_http_passkey_json_t *json,
    char *key, ngx_int_t value);
ngx_int_t ngx_http_passkey_json_set_object(ngx_http_passkey_json_t *json,
    char *key, ngx_http_passkey_json_t *value);

/* Compact text of json, into pool. */
ngx_int_t ngx_http_passkey_json_dump(ngx_pool_t *pool,
    ngx_http_passkey_json_t *json, ngx_str_t *out);

/* s as a quoted JSON string literal (for SCIM filters), into pool. */
ngx_int_t ngx_http_passkey_json_quote(ngx_pool_t *pool, ngx_str_t *s,
    ngx_str_t *out);


#endif /* _NGX_HTTP_PASSKEY_JSON_H_INCLUDED_ */

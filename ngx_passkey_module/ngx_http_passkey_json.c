
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>

#include "ngx_http_passkey_json.h"


/*
 * ngx_http_passkey_json_t is never defined: a handle is a json_t pointer
 * in disguise, so callers cannot reach into the library's type.
 */


static ngx_int_t ngx_http_passkey_json_own(ngx_pool_t *pool, json_t *value);
static void ngx_http_passkey_json_cleanup(void *data);
static json_t *ngx_http_passkey_json_lookup(json_t *value, char *path);


ngx_int_t
ngx_http_passkey_json_parse(ngx_pool_t *pool, ngx_str_t *text,
    ngx_http_passkey_json_t **json)
{
    json_t        *value;
    json_error_t   error;

    value = json_loadb((char *) text->data, text->len,
                       JSON_REJECT_DUPLICATES, &error);
    if (value == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_passkey_json_own(pool, value) != NGX_OK) {
        json_decref(value);
        return NGX_ERROR;
    }

    if (!json_is_object(value)) {
        return NGX_DECLINED;
    }

    *json = (ngx_http_passkey_json_t *) value;

    return NGX_OK;
}


ngx_http_passkey_json_t *
ngx_http_passkey_json_child(ngx_http_passkey_json_t *json, char *path)
{
    return (ngx_http_passkey_json_t *)
               ngx_http_passkey_json_lookup((json_t *) json, path);
}


ngx_int_t
ngx_http_passkey_json_string(ngx_pool_t *pool, ngx_http_passkey_json_t *json,
    char *path, ngx_str_t *value)
{
    json_t  *v;

    v = ngx_http_passkey_json_lookup((json_t *) json, path);
    if (v == NULL || !json_is_string(v)) {
        return NGX_DECLINED;
    }

    value->len = json_string_length(v);
    value->data = ngx_pnalloc(pool, value->len + 1);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(value->data, json_string_value(v), value->len);
    value->data[value->len] = '\0';

    return NGX_OK;
}


ngx_int_t
ngx_http_passkey_json_integer(ngx_http_passkey_json_t *json, char *path,
    ngx_int_t *value)
{
    json_t  *v;

    v = ngx_http_passkey_json_lookup((json_t *) json, path);
    if (v == NULL || !json_is_integer(v)) {
        return NGX_DECLINED;
    }

    *value = (ngx_int_t) json_integer_value(v);

    return NGX_OK;
}


ngx_uint_t
ngx_http_passkey_json_size(ngx_http_passkey_json_t *json)
{
    if (json == NULL || !json_is_array((json_t *) json)) {
        return 0;
    }

    return json_array_size((json_t *) json);
}


ngx_http_passkey_json_t *
ngx_http_passkey_json_at(ngx_http_passkey_json_t *json, ngx_uint_t i)
{
    if (json == NULL || !json_is_array((json_t *) json)) {
        return NULL;
    }

    return (ngx_http_passkey_json_t *) json_array_get((json_t *) json, i);
}


ngx_http_passkey_json_t *
ngx_http_passkey_json_object(ngx_pool_t *pool)
{
    json_t  *value;

    value = json_object();
    if (value == NULL) {
        return NULL;
    }

    if (ngx_http_passkey_json_own(pool, value) != NGX_OK) {
        json_decref(value);
        return NULL;
    }

    return (ngx_http_passkey_json_t *) value;
}


ngx_int_t
ngx_http_passkey_json_set_string(ngx_http_passkey_json_t *json, char *key,
    ngx_str_t *value)
{
    json_t  *v;

    v = json_stringn(value->len ? (char *) value->data : "", value->len);
    if (v == NULL) {
        /* not valid UTF-8 */
        return NGX_ERROR;
    }

    return json_object_set_new((json_t *) json, key, v) == 0
           ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_http_passkey_json_set_integer(ngx_http_passkey_json_t *json, char *key,
    ngx_int_t value)
{
    return json_object_set_new((json_t *) json, key,
                               json_integer((json_int_t) value)) == 0
           ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_http_passkey_json_set_object(ngx_http_passkey_json_t *json, char *key,
    ngx_http_passkey_json_t *value)
{
    /* json_object_set() takes its own reference; the pool keeps ours */
    return json_object_set((json_t *) json, key, (json_t *) value) == 0
           ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_http_passkey_json_dump(ngx_pool_t *pool, ngx_http_passkey_json_t *json,
    ngx_str_t *out)
{
    char    *text;
    size_t   len;

    text = json_dumps((json_t *) json, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(text);

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        free(text);
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, text, len);
    out->len = len;

    free(text);

    return NGX_OK;
}


ngx_int_t
ngx_http_passkey_json_quote(ngx_pool_t *pool, ngx_str_t *s, ngx_str_t *out)
{
    json_t     *v;
    ngx_int_t   rc;

    v = json_stringn((char *) s->data, s->len);
    if (v == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_passkey_json_dump(pool, (ngx_http_passkey_json_t *) v, out);

    json_decref(v);

    return rc;
}


static ngx_int_t
ngx_http_passkey_json_own(ngx_pool_t *pool, json_t *value)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_passkey_json_cleanup;
    cln->data = value;

    return NGX_OK;
}


static void
ngx_http_passkey_json_cleanup(void *data)
{
    json_decref((json_t *) data);
}


static json_t *
ngx_http_passkey_json_lookup(json_t *value, char *path)
{
    char    *dot;
    size_t   len;
    u_char   key[64];

    while (value != NULL && *path != '\0') {

        if (!json_is_object(value)) {
            return NULL;
        }

        dot = ngx_strchr(path, '.');
        len = dot ? (size_t) (dot - path) : ngx_strlen(path);

        if (len >= sizeof(key)) {
            return NULL;
        }

        ngx_memcpy(key, path, len);
        key[len] = '\0';

        value = json_object_get(value, (char *) key);

        path += len;
        if (*path == '.') {
            path++;
        }
    }

    return value;
}

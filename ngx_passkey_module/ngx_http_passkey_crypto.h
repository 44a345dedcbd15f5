
/*
 * Copyright (C) ngx_passkey_module authors
 */


#ifndef _NGX_HTTP_PASSKEY_CRYPTO_H_INCLUDED_
#define _NGX_HTTP_PASSKEY_CRYPTO_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>


/*
 * Hashes and sealing for what the module keeps in Redis, and the check of
 * the trusted certificates; the only file that includes OpenSSL.
 */


#define NGX_HTTP_PASSKEY_DIGEST_HEX_LEN  64


/* SHA-256 of the parts, each length-prefixed, as 64 hex digits in pool */
ngx_int_t ngx_http_passkey_digest(ngx_pool_t *pool, ngx_str_t *parts,
    ngx_uint_t n, ngx_str_t *hex);

/*
 * AES-256-GCM with a key derived from "secret", which the module never
 * keeps: sealed = nonce | ciphertext | tag.  Open returns NGX_DECLINED for
 * data that was not sealed with this secret.
 */
ngx_int_t ngx_http_passkey_seal(ngx_pool_t *pool, ngx_str_t *secret,
    ngx_str_t *plain, ngx_str_t *sealed);
ngx_int_t ngx_http_passkey_unseal(ngx_pool_t *pool, ngx_str_t *secret,
    ngx_str_t *sealed, ngx_str_t *plain);

#if (NGX_SSL)
/* SNI for a host name (none for an IP address); name is null-terminated */
ngx_int_t ngx_http_passkey_ssl_server_name(ngx_connection_t *c,
    ngx_str_t *name);
/* after a handshake: NULL, or why the certificate is not trusted for name */
const char *ngx_http_passkey_ssl_verify(ngx_connection_t *c, ngx_str_t *name);
#endif

/* libcurl shares the OpenSSL error queue with nginx */
void ngx_http_passkey_clear_ssl_errors(void);

/*
 * The certificates in a PEM text, read as libcurl reads a CA blob (a key
 * or other block in it is skipped); NGX_ERROR with OpenSSL's reason when
 * a block cannot be read at all.
 */
ngx_int_t ngx_http_passkey_pem_certificates(ngx_str_t *pem, ngx_uint_t *n,
    const char **reason);


#endif /* _NGX_HTTP_PASSKEY_CRYPTO_H_INCLUDED_ */

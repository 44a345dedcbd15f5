
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "ngx_http_passkey_crypto.h"


#define NGX_HTTP_PASSKEY_NONCE_LEN  12
#define NGX_HTTP_PASSKEY_TAG_LEN    16
#define NGX_HTTP_PASSKEY_KEY_LEN    32      /* AES-256, from SHA-256 */


static ngx_int_t ngx_http_passkey_sha256(ngx_str_t *parts, ngx_uint_t n,
    u_char *md);
static EVP_CIPHER_CTX *ngx_http_passkey_cipher(ngx_str_t *secret,
    u_char *key);
static ngx_int_t ngx_http_passkey_cipher_done(EVP_CIPHER_CTX *c, u_char *key,
    ngx_int_t rc);
static ngx_int_t ngx_http_passkey_seal_key(ngx_str_t *secret, u_char *key);
static int ngx_http_passkey_no_password(char *buf, int size, int rwflag,
    void *data);


ngx_int_t
ngx_http_passkey_digest(ngx_pool_t *pool, ngx_str_t *parts, ngx_uint_t n,
    ngx_str_t *hex)
{
    u_char  md[32];

    if (ngx_http_passkey_sha256(parts, n, md) != NGX_OK) {
        return NGX_ERROR;
    }

    hex->data = ngx_pnalloc(pool, NGX_HTTP_PASSKEY_DIGEST_HEX_LEN);
    if (hex->data == NULL) {
        return NGX_ERROR;
    }

    hex->len = ngx_hex_dump(hex->data, md, sizeof(md)) - hex->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_passkey_seal(ngx_pool_t *pool, ngx_str_t *secret, ngx_str_t *plain,
    ngx_str_t *sealed)
{
    int              len;
    u_char          *p;
    u_char           key[NGX_HTTP_PASSKEY_KEY_LEN];
    ngx_int_t        rc;
    EVP_CIPHER_CTX  *c;

    sealed->len = NGX_HTTP_PASSKEY_NONCE_LEN + plain->len
                  + NGX_HTTP_PASSKEY_TAG_LEN;
    sealed->data = ngx_pnalloc(pool, sealed->len);
    if (sealed->data == NULL) {
        return NGX_ERROR;
    }

    p = sealed->data;

    if (RAND_bytes(p, NGX_HTTP_PASSKEY_NONCE_LEN) != 1) {
        ERR_clear_error();
        return NGX_ERROR;
    }

    c = ngx_http_passkey_cipher(secret, key);
    if (c == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, p) == 1
        && EVP_EncryptUpdate(c, p + NGX_HTTP_PASSKEY_NONCE_LEN, &len,
                             plain->data, (int) plain->len) == 1
        && (size_t) len == plain->len
        && EVP_EncryptFinal_ex(c, p + NGX_HTTP_PASSKEY_NONCE_LEN + len, &len)
           == 1
        && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG,
                               NGX_HTTP_PASSKEY_TAG_LEN,
                               p + NGX_HTTP_PASSKEY_NONCE_LEN + plain->len)
           == 1)
    {
        rc = NGX_OK;
    }

    return ngx_http_passkey_cipher_done(c, key, rc);
}


ngx_int_t
ngx_http_passkey_unseal(ngx_pool_t *pool, ngx_str_t *secret,
    ngx_str_t *sealed, ngx_str_t *plain)
{
    int              len;
    u_char          *p;
    u_char           key[NGX_HTTP_PASSKEY_KEY_LEN];
    ngx_int_t        rc;
    EVP_CIPHER_CTX  *c;

    if (sealed->len < NGX_HTTP_PASSKEY_NONCE_LEN + NGX_HTTP_PASSKEY_TAG_LEN) {
        return NGX_DECLINED;
    }

    p = sealed->data;

    plain->len = sealed->len - NGX_HTTP_PASSKEY_NONCE_LEN
                 - NGX_HTTP_PASSKEY_TAG_LEN;
    plain->data = ngx_pnalloc(pool, plain->len + 1);
    if (plain->data == NULL) {
        return NGX_ERROR;
    }

    c = ngx_http_passkey_cipher(secret, key);
    if (c == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, p) == 1
        && EVP_DecryptUpdate(c, plain->data, &len,
                             p + NGX_HTTP_PASSKEY_NONCE_LEN, (int) plain->len)
           == 1
        && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG,
                               NGX_HTTP_PASSKEY_TAG_LEN,
                               p + sealed->len - NGX_HTTP_PASSKEY_TAG_LEN)
           == 1)
    {
        /* the tag decides: a wrong secret or altered data is refused */
        rc = EVP_DecryptFinal_ex(c, plain->data + len, &len) == 1
             ? NGX_OK : NGX_DECLINED;
    }

    return ngx_http_passkey_cipher_done(c, key, rc);
}


void
ngx_http_passkey_clear_ssl_errors(void)
{
    ERR_clear_error();
}


/*
 * PEM_X509_INFO_read_bio() is what libcurl's OpenSSL backend reads
 * CURLOPT_CAINFO_BLOB with: a text that passes here is one it takes.
 */

ngx_int_t
ngx_http_passkey_pem_certificates(ngx_str_t *pem, ngx_uint_t *n,
    const char **reason)
{
    int                   i;
    BIO                  *bio;
    X509_INFO            *info;
    STACK_OF(X509_INFO)  *infos;

    *n = 0;
    *reason = NULL;

    if (pem->len > NGX_MAX_INT32_VALUE) {
        return NGX_ERROR;
    }

    bio = BIO_new_mem_buf(pem->data, (int) pem->len);
    if (bio == NULL) {
        ERR_clear_error();
        return NGX_ERROR;
    }

    /* never a prompt for the password of a key someone put in the file */

    infos = PEM_X509_INFO_read_bio(bio, NULL, ngx_http_passkey_no_password,
                                   NULL);

    BIO_free(bio);

    if (infos == NULL) {
        *reason = ERR_reason_error_string(ERR_peek_error());
        ERR_clear_error();
        return NGX_ERROR;
    }

    for (i = 0; i < sk_X509_INFO_num(infos); i++) {
        info = sk_X509_INFO_value(infos, i);

        if (info->x509 != NULL) {
            (*n)++;
        }
    }

    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    ERR_clear_error();

    return NGX_OK;
}


#if (NGX_SSL)

/*
 * Redis over TLS (ngx_http_passkey_redis.c) uses nginx's SSL layer; what
 * nginx offers no call for is here: SNI, and the check of the server's
 * certificate against a name or an IP address (ngx_ssl_check_host() knows
 * no IP addresses).
 */

ngx_int_t
ngx_http_passkey_ssl_server_name(ngx_connection_t *c, ngx_str_t *name)
{
    u_char  buf[sizeof(struct in6_addr)];

    /* RFC 6066: no SNI for an IP address; name is null-terminated */

    if (inet_pton(AF_INET, (char *) name->data, buf) == 1
        || inet_pton(AF_INET6, (char *) name->data, buf) == 1)
    {
        return NGX_OK;
    }

    if (SSL_set_tlsext_host_name(c->ssl->connection, (char *) name->data)
        != 1)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* NULL when the chain and the name check out, or why not */

const char *
ngx_http_passkey_ssl_verify(ngx_connection_t *c, ngx_str_t *name)
{
    int          rc;
    long         result;
    X509        *cert;
    const char  *reason;

    result = SSL_get_verify_result(c->ssl->connection);

    if (result != X509_V_OK) {
        return X509_verify_cert_error_string(result);
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);

    if (cert == NULL) {
        return "the server sent no certificate";
    }

    rc = X509_check_ip_asc(cert, (char *) name->data, 0);

    if (rc == -2) {
        /* not an IP address: a host name */
        rc = X509_check_host(cert, (char *) name->data, name->len, 0, NULL);
    }

    X509_free(cert);

    reason = (rc == 1) ? NULL : "the certificate is not for that name";

    ngx_http_passkey_clear_ssl_errors();

    return reason;
}

#endif


static ngx_int_t
ngx_http_passkey_sha256(ngx_str_t *parts, ngx_uint_t n, u_char *md)
{
    u_char       len[NGX_SIZE_T_LEN + 1];
    ngx_int_t    rc;
    ngx_uint_t   i;
    EVP_MD_CTX  *c;

    c = EVP_MD_CTX_new();
    if (c == NULL) {
        ERR_clear_error();
        return NGX_ERROR;
    }

    rc = EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 ? NGX_OK : NGX_ERROR;

    /* "5:alice" and "3:bob": no two lists of parts hash alike */

    for (i = 0; rc == NGX_OK && i < n; i++) {
        if (EVP_DigestUpdate(c, len, ngx_sprintf(len, "%uz:", parts[i].len)
                                     - len)
            != 1
            || EVP_DigestUpdate(c, parts[i].data, parts[i].len) != 1)
        {
            rc = NGX_ERROR;
        }
    }

    if (rc == NGX_OK && EVP_DigestFinal_ex(c, md, NULL) != 1) {
        rc = NGX_ERROR;
    }

    EVP_MD_CTX_free(c);
    ERR_clear_error();

    return rc;
}


/*
 * The key of seal and unseal, and the context to use it in.  The key, on
 * the caller's stack, lives no longer than the context: a failure here
 * wipes it at once, ngx_http_passkey_cipher_done() whatever became of
 * the work.
 */

static EVP_CIPHER_CTX *
ngx_http_passkey_cipher(ngx_str_t *secret, u_char *key)
{
    EVP_CIPHER_CTX  *c;

    c = NULL;

    if (ngx_http_passkey_seal_key(secret, key) == NGX_OK) {
        c = EVP_CIPHER_CTX_new();
    }

    if (c == NULL) {
        ngx_explicit_memzero(key, NGX_HTTP_PASSKEY_KEY_LEN);
        ERR_clear_error();
    }

    return c;
}


static ngx_int_t
ngx_http_passkey_cipher_done(EVP_CIPHER_CTX *c, u_char *key, ngx_int_t rc)
{
    EVP_CIPHER_CTX_free(c);
    ngx_explicit_memzero(key, NGX_HTTP_PASSKEY_KEY_LEN);
    ERR_clear_error();

    return rc;
}


static ngx_int_t
ngx_http_passkey_seal_key(ngx_str_t *secret, u_char *key)
{
    ngx_str_t  parts[2];

    ngx_str_set(&parts[0], "ngx_passkey_module seal");
    parts[1] = *secret;

    return ngx_http_passkey_sha256(parts, 2, key);
}


static int
ngx_http_passkey_no_password(char *buf, int size, int rwflag, void *data)
{
    return 0;
}

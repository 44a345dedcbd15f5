
/*
 * Copyright (C) ngx_passkey_module authors
 */


/*
 * A secret file (passkey_client_secret_file, passkey_api_token_file,
 * password_file= of passkey_redis) as ngx_http_passkey_read_secret()
 * reads it: its mode, its size, the white space an editor adds.
 *
 * Input: a first byte for the file's mode (its two lowest bits: 0600,
 * 0640, 0644 or 0602), then the file's contents.
 *
 * Checks: a secret is read only from a file that others cannot read or
 * write; it is 1 to 4096 bytes, ends in no white space, and is followed
 * by a NUL.
 */


#include "ngx_passkey_fuzz.h"


static mode_t  ngx_passkey_fuzz_modes[] = { 0600, 0640, 0644, 0602 };


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_passkey_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char       last;
    mode_t       mode;
    ngx_int_t    rc;
    ngx_str_t    name, secret, directive;
    ngx_conf_t  *cf;
    ngx_pool_t  *pool;

    if (size == 0) {
        return 0;
    }

    mode = ngx_passkey_fuzz_modes[data[0] & 3];

    ngx_passkey_fuzz_write("fuzzed", (u_char *) data + 1, size - 1, mode);

    pool = ngx_passkey_fuzz_pool();
    cf = ngx_passkey_fuzz_conf(pool);

    ngx_str_set(&name, "fuzzed");
    ngx_str_set(&directive, "passkey_client_secret_file");
    ngx_str_null(&secret);

    rc = ngx_http_passkey_read_secret(cf, &name, &secret, &directive);

    if (rc == NGX_OK) {
        ngx_passkey_fuzz_check(!(mode & S_IRWXO));
        ngx_passkey_fuzz_check(secret.len >= 1
                               && secret.len <= NGX_HTTP_PASSKEY_SECRET_MAX
                               && secret.len <= size - 1);
        ngx_passkey_fuzz_check(ngx_memcmp(secret.data, data + 1, secret.len)
                               == 0);
        ngx_passkey_fuzz_check(secret.data[secret.len] == '\0');

        last = secret.data[secret.len - 1];

        ngx_passkey_fuzz_check(last != ' ' && last != '\t' && last != '\r'
                               && last != '\n');

    } else {
        ngx_passkey_fuzz_check(rc == NGX_ERROR);
    }

    ngx_passkey_fuzz_done(pool);

    return 0;
}

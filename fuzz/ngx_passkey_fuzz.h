
/*
 * Copyright (C) ngx_passkey_module authors
 */


#ifndef _NGX_PASSKEY_FUZZ_H_INCLUDED_
#define _NGX_PASSKEY_FUZZ_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


/*
 * What the harnesses share: nginx's globals set up once, as nginx itself
 * sets them before it reads its configuration (the time, the page size,
 * error texts, OpenSSL, a cycle, a log), a pool per input, and the
 * request and configuration objects the module's functions take.
 *
 * nginx is built with NGX_DEBUG_PALLOC, so every pool allocation is a
 * malloc() of its own, exactly as large as asked: AddressSanitizer sees a
 * read or write one byte past what the module allocated.  The inputs are
 * copied the same way, without a terminating NUL unless nginx puts one
 * there too.
 */


#define ngx_passkey_fuzz_check(expr)                                          \
    if (!(expr)) {                                                            \
        ngx_passkey_fuzz_failed(__FILE__, __LINE__, #expr);                   \
    }


/* a request with what the module reads of it */
typedef struct {
    ngx_http_request_t                r;
    ngx_connection_t                  c;
    ngx_http_core_loc_conf_t          clcf;
    ngx_http_passkey_main_conf_t     *pmcf;
    ngx_http_passkey_loc_conf_t      *plcf;
    void                             *main_conf[2];
    void                             *loc_conf[2];
    void                             *ctx[2];
} ngx_passkey_fuzz_request_t;


extern ngx_log_t  *ngx_passkey_fuzz_log;

/* the configuration's directory, with "/": its files are the harness's */
extern ngx_str_t   ngx_passkey_fuzz_prefix;


/* LLVMFuzzerInitialize() of every harness calls it first */
void ngx_passkey_fuzz_init(void);

/* a pool for one input, and its end */
ngx_pool_t *ngx_passkey_fuzz_pool(void);
void ngx_passkey_fuzz_done(ngx_pool_t *pool);

/* a file in the configuration's directory, written with that mode */
void ngx_passkey_fuzz_write(char *name, u_char *data, size_t len,
    mode_t mode);

/* bytes copied into the pool: len exactly, or len + 1 with a NUL */
u_char *ngx_passkey_fuzz_copy(ngx_pool_t *pool, const u_char *data,
    size_t len, ngx_uint_t nul);

/*
 * The next line of [*p, last), without its "\n", copied (with a NUL if
 * asked); NGX_DECLINED when nothing is left.
 */
ngx_int_t ngx_passkey_fuzz_line(ngx_pool_t *pool, const u_char **p,
    const u_char *last, ngx_str_t *line, ngx_uint_t nul);

/*
 * A request whose location has the passkey module's default
 * configuration (merged as nginx merges it), in the pool.
 */
ngx_passkey_fuzz_request_t *ngx_passkey_fuzz_request(ngx_pool_t *pool);

/* "Name: value" appended to the request headers, as nginx stores them */
ngx_int_t ngx_passkey_fuzz_header(ngx_http_request_t *r, ngx_str_t *line);

/* a constant complex value, as "passkey_username text;" compiles to */
ngx_http_complex_value_t *ngx_passkey_fuzz_value(ngx_pool_t *pool,
    ngx_str_t *text);

/* the configuration being read, with the passkey module's contexts */
ngx_conf_t *ngx_passkey_fuzz_conf(ngx_pool_t *pool);

void ngx_passkey_fuzz_failed(const char *file, int line, const char *expr);


#endif /* _NGX_PASSKEY_FUZZ_H_INCLUDED_ */

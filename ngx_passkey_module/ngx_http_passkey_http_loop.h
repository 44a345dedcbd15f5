
/*
 * Copyright (C) ngx_passkey_module authors
 */


#ifndef _NGX_HTTP_PASSKEY_HTTP_LOOP_H_INCLUDED_
#define _NGX_HTTP_PASSKEY_HTTP_LOOP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <curl/curl.h>


/*
 * Between the two halves of the libcurl adapter, and for them only: the
 * calls (ngx_http_passkey_http.c) and the multi handle on nginx's event
 * loop (ngx_http_passkey_http_loop.c).  Everything else sees libcurl
 * through ngx_http_passkey_http.h.
 */


/* ngx_http_passkey_http_loop.c */

/* an easy handle, a kept one reset or a new one; NULL after a log line */
CURL *ngx_http_passkey_http_loop_get(ngx_log_t *log);
/* the handle is kept for the next call, or freed when enough are kept */
void ngx_http_passkey_http_loop_put(CURL *easy);

ngx_int_t ngx_http_passkey_http_loop_add(CURL *easy, ngx_log_t *log);
void ngx_http_passkey_http_loop_remove(CURL *easy);

/* CURLOPT_CLOSESOCKETFUNCTION of every easy handle */
int ngx_http_passkey_http_loop_close(void *clientp, curl_socket_t s);


/* ngx_http_passkey_http.c */

/* a transfer ended: its call's handler runs from here */
void ngx_http_passkey_http_done(CURL *easy, CURLcode code);

/* ends a transfer from inside a libcurl callback, on the next timer */
void ngx_http_passkey_http_fail(CURL *easy, const char *failure);

/* the worker exits: every call in flight is dropped, no handler runs */
void ngx_http_passkey_http_detach_all(void);


#endif /* _NGX_HTTP_PASSKEY_HTTP_LOOP_H_INCLUDED_ */

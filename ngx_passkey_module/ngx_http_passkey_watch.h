
/*
 * Copyright (C) ngx_passkey_module authors
 */


#ifndef _NGX_HTTP_PASSKEY_WATCH_H_INCLUDED_
#define _NGX_HTTP_PASSKEY_WATCH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>


/*
 * A socket that a library owns (libcurl's), watched by nginx's event loop
 * through a connection slot.  The slot never closes the fd.
 */

ngx_connection_t *ngx_http_passkey_watch_open(ngx_socket_t fd, void *data,
    ngx_log_t *log, ngx_event_handler_pt read_handler,
    ngx_event_handler_pt write_handler);

/* on: level-triggered interest in ev; off: none; NGX_ERROR after an alert */
ngx_int_t ngx_http_passkey_watch(ngx_event_t *ev, ngx_uint_t on);

/*
 * Frees the slot.  closed: the owner has closed or is about to close the
 * fd, so the kernel drops its registrations with it.
 */
void ngx_http_passkey_watch_close(ngx_connection_t *c, ngx_uint_t closed);


#endif /* _NGX_HTTP_PASSKEY_WATCH_H_INCLUDED_ */

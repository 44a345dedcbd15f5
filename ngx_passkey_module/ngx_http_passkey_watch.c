
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_passkey_watch.h"


/*
 * Sockets owned by libcurl (ngx_http_passkey_http_loop.c), on nginx's
 * event loop.  Each gets a slot from ngx_get_connection(), so the event
 * modules' stale-event checks (the instance bit, fd == -1) apply to it.
 * Interest is level-triggered: libcurl does not promise to read a socket
 * dry.
 */


ngx_connection_t *
ngx_http_passkey_watch_open(ngx_socket_t fd, void *data, ngx_log_t *log,
    ngx_event_handler_pt read_handler, ngx_event_handler_pt write_handler)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(fd, log);
    if (c == NULL) {
        return NULL;
    }

    c->data = data;
    c->log = log;
    c->read->log = log;
    c->write->log = log;
    c->read->handler = read_handler;
    c->write->handler = write_handler;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    return c;
}


ngx_int_t
ngx_http_passkey_watch(ngx_event_t *ev, ngx_uint_t on)
{
    ngx_int_t          event;
    ngx_connection_t  *c;

    on = (on != 0);

    if (on == ev->active) {
        return NGX_OK;
    }

    c = ev->data;
    event = ev->write ? NGX_WRITE_EVENT : NGX_READ_EVENT;

    if (on) {
        if (ngx_add_event(ev, event, NGX_LEVEL_EVENT) == NGX_OK) {
            return NGX_OK;
        }

    } else if (ngx_del_event(ev, event, 0) == NGX_OK) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                  "passkey cannot %s %s event of fd:%d",
                  on ? "add" : "delete", ev->write ? "write" : "read", c->fd);

    return NGX_ERROR;
}


void
ngx_http_passkey_watch_close(ngx_connection_t *c, ngx_uint_t closed)
{
    ngx_uint_t  flags;

    flags = closed ? NGX_CLOSE_EVENT : 0;

    /*
     * Some libcurl paths (a connect attempt abandoned by happy eyeballs,
     * the resolver's socketpair in some versions) close an fd before its
     * CURL_POLL_REMOVE: deleting it would fail with EBADF and log an alert.
     */

    if (flags == 0
        && (c->read->active || c->write->active)
        && fcntl(c->fd, F_GETFD) == -1)
    {
        flags = NGX_CLOSE_EVENT;
    }

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, flags);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, flags);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    /* the owner closes the fd; the slot is freed while c->fd is valid */

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
}


/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_passkey_redis.h"


/*
 * The socket of a Redis connection on nginx's event loop, for
 * ngx_http_passkey_redis.c.  hiredis owns the socket; nginx only watches
 * it through a connection slot from ngx_get_connection(), registered
 * level-triggered because hiredis reads at most 16K per call and never
 * reads the socket dry.  The add and del functions are hiredis's ev.*
 * hooks as they are, so they take the connection as a void pointer.
 */


ngx_connection_t *
ngx_http_passkey_redis_event_open(ngx_socket_t fd, void *data, ngx_log_t *log,
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


void
ngx_http_passkey_redis_add_read(void *privdata)
{
    ngx_connection_t  *c;

    c = privdata;

    if (c->read->active) {
        return;
    }

    /* level-triggered: hiredis does not read the socket dry */

    if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "passkey redis cannot add read event");
    }
}


void
ngx_http_passkey_redis_del_read(void *privdata)
{
    ngx_connection_t  *c;

    c = privdata;

    if (!c->read->active) {
        return;
    }

    if (ngx_del_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "passkey redis cannot delete read event");
    }
}


void
ngx_http_passkey_redis_add_write(void *privdata)
{
    ngx_connection_t  *c;

    c = privdata;

    if (c->write->active) {
        return;
    }

    if (ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "passkey redis cannot add write event");
    }
}


void
ngx_http_passkey_redis_del_write(void *privdata)
{
    ngx_connection_t  *c;

    c = privdata;

    if (!c->write->active) {
        return;
    }

    if (ngx_del_event(c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "passkey redis cannot delete write event");
    }
}


/*
 * Called while hiredis frees the context; redisFree() closes the fd
 * right after, so remove the events for real (flags 0, not
 * NGX_CLOSE_EVENT) and free the slot without closing the socket.
 */

void
ngx_http_passkey_redis_event_close(ngx_connection_t *c)
{
    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_http_passkey_redis_del_read(c);
    ngx_http_passkey_redis_del_write(c);

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);
}

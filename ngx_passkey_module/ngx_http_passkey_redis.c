
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_passkey_redis_conn.h"
#include "ngx_http_passkey_metrics_hook.h"


#define NGX_HTTP_PASSKEY_REDIS_DEFAULT_TIMEOUT  5000
#define NGX_HTTP_PASSKEY_REDIS_READ_SIZE        16384


/*
 * Redis on nginx's own connections.
 *
 * Each worker keeps one lazily opened connection per configured server,
 * made with ngx_event_connect_peer() and read and written by nginx's
 * c->recv and c->send.  Commands are formatted into the connection's
 * output buffer (ngx_http_passkey_resp.c) and sent from a posted write
 * event, so that the commands of one event loop iteration leave in one
 * write: a bind's guard script and its identity GET, for one.  Replies
 * come in order; each one goes to the "link" at the head of the waiting
 * queue.
 *
 * A link stands between the connection and the op: the op's owner may go
 * (cancel) while its reply is still to come, and the reply must still be
 * read off the connection.  op->priv and link->op point at each other and
 * cancel() breaks both; a link without an op only drops its reply.  The
 * connection's own commands (AUTH, SELECT) are links without an op whose
 * error reply ends the connection.
 *
 * Each link carries its op's deadline, an nginx timer, not cancelable, so
 * that a gracefully exiting worker waits for the reply.  A deadline that
 * passes gives up on the connection: the server hangs.
 */


static ngx_int_t ngx_http_passkey_redis_wait(
    ngx_http_passkey_redis_conn_t *conn, ngx_http_passkey_redis_link_t *link,
    ngx_msec_t timeout);
static ngx_int_t ngx_http_passkey_redis_waited(
    ngx_http_passkey_redis_conn_t *conn, ngx_http_passkey_redis_op_t *op,
    ngx_http_passkey_redis_op_t *ack);
static ngx_int_t ngx_http_passkey_redis_replies(
    ngx_http_passkey_redis_conn_t *conn);
static void ngx_http_passkey_redis_timeout_handler(ngx_event_t *ev);
static void ngx_http_passkey_redis_fail_handler(ngx_event_t *ev);
static void ngx_http_passkey_redis_deliver(ngx_http_passkey_redis_op_t *op,
    ngx_http_passkey_redis_result_e result);
static ngx_int_t ngx_http_passkey_redis_check_verb(ngx_str_t *verb);
static void ngx_http_passkey_redis_posted(ngx_http_passkey_redis_op_t *op);


/*
 * Commands that switch the connection into a mode where replies no longer
 * match commands one to one.
 */

static ngx_str_t  ngx_http_passkey_redis_unsupported[] = {
    ngx_string("subscribe"),
    ngx_string("psubscribe"),
    ngx_string("unsubscribe"),
    ngx_string("punsubscribe"),
    ngx_string("monitor"),
    ngx_null_string
};


ngx_int_t
ngx_http_passkey_redis_send(ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_op_t *op, ngx_uint_t argc, ngx_str_t *argv)
{
    ngx_http_passkey_redis_conn_t  *conn;

    if (argc == 0 || ngx_http_passkey_redis_check_verb(&argv[0]) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, op->log, 0,
                      "passkey redis command not supported");
        return NGX_ERROR;
    }

    if (op->priv != NULL) {
        /* a second link would make the handler run twice */
        ngx_log_error(NGX_LOG_ALERT, op->log, 0,
                      "passkey redis op is still pending");
        return NGX_ERROR;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "passkey redis send \"%*s\" to \"%V\"",
                   ngx_min(argv[0].len, 32), argv[0].data, &server->name);

    if (server->cluster) {
        return ngx_http_passkey_redis_cluster_send(server, op, argc, argv);
    }

    conn = server->conn;

    if (conn == NULL || conn->exiting) {
        ngx_log_error(NGX_LOG_ALERT, op->log, 0,
                      "passkey redis \"%V\" is not initialized",
                      &server->name);
        return NGX_ERROR;
    }

    return ngx_http_passkey_redis_queue(conn, op, argc, argv, NULL);
}


/*
 * Puts a command in line on a connection: argv, or the command formatted
 * already (cmd, taken over by the link, freed on failure too).  An op of
 * NULL is a command whose reply nothing reads (ASKING).
 */

ngx_int_t
ngx_http_passkey_redis_queue(ngx_http_passkey_redis_conn_t *conn,
    ngx_http_passkey_redis_op_t *op, ngx_uint_t argc, ngx_str_t *argv,
    ngx_http_passkey_resp_buf_t *cmd)
{
    size_t                          buffered;
    ngx_int_t                       rc;
    ngx_log_t                      *log;
    ngx_msec_t                      timeout;
    ngx_http_passkey_redis_link_t  *link;

    log = op ? op->log : conn->log;

    link = ngx_calloc(sizeof(ngx_http_passkey_redis_link_t), log);
    if (link == NULL) {
        if (cmd && cmd->start) {
            ngx_free(cmd->start);
        }

        return NGX_ERROR;
    }

    if (cmd) {
        link->cmd = *cmd;
        ngx_memzero(cmd, sizeof(ngx_http_passkey_resp_buf_t));
    }

    link->op = op;
    link->conn = conn;
    link->ev.data = &conn->dummy;
    link->ev.log = conn->log;

    rc = NGX_OK;

    if (!conn->active) {
        rc = ngx_http_passkey_redis_connect(conn);
    }

    if (rc == NGX_DECLINED) {

        /*
         * The handler must not run inside send(): report UNAVAILABLE from
         * a posted event, so callers have one path for every outcome.
         */

        link->ev.handler = ngx_http_passkey_redis_fail_handler;
        ngx_post_event(&link->ev, &ngx_posted_events);
        ngx_queue_insert_tail(&conn->failing, &link->queue);

        if (op) {
            op->priv = link;
        }

        return NGX_OK;
    }

    /* what is buffered already, to take this command back if need be */
    buffered = conn->out.last - conn->out.pos;

    if (rc == NGX_OK) {
        rc = link->cmd.start
             ? ngx_http_passkey_resp_append(&conn->out, link->cmd.pos,
                                            link->cmd.last - link->cmd.pos,
                                            log)
             : ngx_http_passkey_resp_command(&conn->out, argc, argv, log);
    }

    if (rc != NGX_OK) {
        ngx_http_passkey_redis_link_free(link);
        return NGX_ERROR;
    }

    ngx_queue_insert_tail(&conn->waiting, &link->queue);

    link->ev.handler = ngx_http_passkey_redis_timeout_handler;

    timeout = (op && op->timeout) ? op->timeout
                                  : NGX_HTTP_PASSKEY_REDIS_DEFAULT_TIMEOUT;

    if (op) {
        op->priv = link;
    }

    if (op && op->replicated && conn->server->replicas
        && ngx_http_passkey_redis_wait(conn, link, timeout) != NGX_OK)
    {
        /* nothing is sent: the command leaves the buffer again */

        conn->out.last = conn->out.pos + buffered;

        ngx_queue_remove(&link->queue);
        ngx_http_passkey_redis_link_free(link);
        op->priv = NULL;

        return NGX_ERROR;
    }

    /* the deadline is the last reply's: the WAIT's, if there is one */

    if (link->partner) {
        link = link->partner;
    }

    ngx_add_timer(&link->ev, timeout);

    /* the commands of this iteration leave together, from the event */

    if (conn->connected && !conn->peer.connection->write->posted) {
        ngx_post_event(conn->peer.connection->write, &ngx_posted_events);
    }

    return NGX_OK;
}


void
ngx_http_passkey_redis_link_free(ngx_http_passkey_redis_link_t *link)
{
    if (link->cmd.start) {
        ngx_free(link->cmd.start);
    }

    ngx_free(link);
}


/*
 * replicas=: a WAIT right behind the write, so that its reply counts only
 * once that many replicas have it: a failover then loses no job that was
 * answered.  WAIT holds the connection up to its timeout, kept short: it
 * only runs that long while a replica is gone.
 */

static ngx_int_t
ngx_http_passkey_redis_wait(ngx_http_passkey_redis_conn_t *conn,
    ngx_http_passkey_redis_link_t *link, ngx_msec_t timeout)
{
    u_char                         *p;
    ngx_str_t                       argv[3];
    ngx_http_passkey_redis_link_t  *wait;
    u_char                          n[NGX_INT_T_LEN], ms[NGX_INT_T_LEN];

    wait = ngx_calloc(sizeof(ngx_http_passkey_redis_link_t), conn->log);
    if (wait == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&argv[0], "WAIT");

    p = ngx_sprintf(n, "%ui", conn->server->replicas);
    argv[1].data = n;
    argv[1].len = p - n;

    p = ngx_sprintf(ms, "%M", ngx_min(timeout / 2, 500));
    argv[2].data = ms;
    argv[2].len = p - ms;

    if (ngx_http_passkey_resp_command(&conn->out, 3, argv, conn->log)
        != NGX_OK)
    {
        ngx_free(wait);
        return NGX_ERROR;
    }

    wait->op = link->op;
    wait->conn = conn;
    wait->wait = 1;
    wait->partner = link;
    wait->ev.data = &conn->dummy;
    wait->ev.log = conn->log;
    wait->ev.handler = ngx_http_passkey_redis_timeout_handler;

    link->hold = 1;
    link->partner = wait;

    ngx_queue_insert_tail(&conn->waiting, &wait->queue);

    return NGX_OK;
}


void
ngx_http_passkey_redis_cancel(ngx_http_passkey_redis_op_t *op)
{
    ngx_http_passkey_redis_link_t  *link;

    link = op->priv;
    if (link == NULL) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "passkey redis cancel");

    op->priv = NULL;
    link->op = NULL;

    if (link->partner) {
        ((ngx_http_passkey_redis_link_t *) link->partner)->op = NULL;
    }

    if (link->ev.timer_set) {
        ngx_del_timer(&link->ev);
    }

    if (link->partner) {
        link = link->partner;

        if (link->ev.timer_set) {
            ngx_del_timer(&link->ev);
        }
    }

    if (link->ev.handler == ngx_http_passkey_redis_fail_handler) {

        /* failing fast: nothing was sent for it */

        if (link->ev.posted) {
            ngx_delete_posted_event(&link->ev);
        }

        ngx_queue_remove(&link->queue);
        ngx_http_passkey_redis_link_free(link);
    }

    /* otherwise the link stays in line for its reply, and drops it */
}


void
ngx_http_passkey_redis_post(ngx_http_passkey_redis_server_t *server,
    ngx_msec_t timeout, ngx_uint_t argc, ngx_str_t *argv, const char *failed)
{
    ngx_pool_t                   *pool;
    ngx_http_passkey_redis_op_t  *op;

    pool = ngx_create_pool(512, ngx_cycle->log);
    if (pool == NULL) {
        goto failed;
    }

    op = ngx_pcalloc(pool, sizeof(ngx_http_passkey_redis_op_t));
    if (op == NULL) {
        ngx_destroy_pool(pool);
        goto failed;
    }

    op->pool = pool;
    op->log = ngx_cycle->log;
    op->timeout = timeout;
    op->handler = ngx_http_passkey_redis_posted;
    op->data = (void *) failed;

    /* argv is formatted here: nothing of it needs to outlive this call */

    if (ngx_http_passkey_redis_send(server, op, argc, argv) == NGX_OK) {
        return;
    }

    ngx_destroy_pool(pool);

failed:

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0, "%s", failed);
}


static void
ngx_http_passkey_redis_posted(ngx_http_passkey_redis_op_t *op)
{
    if (op->result != NGX_HTTP_PASSKEY_REDIS_OK
        || op->type == NGX_HTTP_PASSKEY_REDIS_ERROR)
    {
        ngx_log_error(NGX_LOG_WARN, op->log, 0, "%s", (char *) op->data);
    }

    ngx_destroy_pool(op->pool);
}


/*
 * The worker exits and its op will not be told: its owner goes with the
 * process, but a posted command's pool is its own, which nothing else
 * would free.
 */

void
ngx_http_passkey_redis_drop(ngx_http_passkey_redis_op_t *op)
{
    op->priv = NULL;

    if (op->handler == ngx_http_passkey_redis_posted) {
        ngx_destroy_pool(op->pool);
    }
}


void
ngx_http_passkey_redis_write_handler(ngx_event_t *wev)
{
    ssize_t                         n;
    ngx_connection_t               *c;
    ngx_http_passkey_redis_conn_t  *conn;

    c = wev->data;
    conn = c->data;

    if (!conn->connected && ngx_http_passkey_redis_connected(conn) != NGX_OK) {
        return;
    }

    while (conn->out.pos < conn->out.last) {

        n = c->send(c, conn->out.pos, conn->out.last - conn->out.pos);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis connection to \"%V\" lost while "
                          "sending", &conn->name);
            ngx_http_passkey_redis_close(conn);
            return;
        }

        conn->out.pos += n;
    }

    if (conn->out.pos == conn->out.last) {
        conn->out.pos = conn->out.start;
        conn->out.last = conn->out.start;
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_http_passkey_redis_close(conn);
    }
}


void
ngx_http_passkey_redis_read_handler(ngx_event_t *rev)
{
    ssize_t                         n;
    ngx_connection_t               *c;
    ngx_http_passkey_redis_conn_t  *conn;
    u_char                          buf[NGX_HTTP_PASSKEY_REDIS_READ_SIZE];

    c = rev->data;
    conn = c->data;

    if (!conn->connected && ngx_http_passkey_redis_connected(conn) != NGX_OK) {
        return;
    }

    /* until the socket is dry: epoll reports edges */

    for ( ;; ) {

        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis connection to \"%V\" %s",
                          &conn->name,
                          n == 0 ? "closed by the server" : "lost");

            ngx_http_passkey_redis_close(conn);
            return;
        }

        if (ngx_http_passkey_resp_feed(conn->reader, buf, n) != NGX_OK) {
            ngx_http_passkey_redis_close(conn);
            return;
        }

        /* the handlers run from here may have closed the connection */

        if (ngx_http_passkey_redis_replies(conn) != NGX_OK
            || conn->peer.connection != c)
        {
            return;
        }

        /* a short read emptied the socket: no recv() just for EAGAIN */

        if (!rev->ready) {
            break;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_passkey_redis_close(conn);
    }
}


/* NGX_OK while the connection stays open */

static ngx_int_t
ngx_http_passkey_redis_replies(ngx_http_passkey_redis_conn_t *conn)
{
    u_char                          text[128];
    ngx_int_t                       rc;
    ngx_uint_t                      readonly, stale, waited;
    ngx_http_passkey_redis_op_t     ack;
    ngx_str_t                       error;
    ngx_queue_t                    *q;
    ngx_connection_t               *c;
    ngx_http_passkey_redis_op_t    *op;
    ngx_http_passkey_redis_link_t  *link, *wait;

    c = conn->peer.connection;

    while (conn->peer.connection == c) {

        if (ngx_queue_empty(&conn->waiting)) {

            /* a reply nothing asked for: the stream is out of step */

            rc = ngx_http_passkey_resp_reply(conn->reader, NULL, &error);

            if (rc == NGX_AGAIN) {
                return NGX_OK;
            }

            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis \"%V\" sent a reply nothing asked "
                          "for", &conn->name);
            ngx_http_passkey_redis_close(conn);
            return NGX_ERROR;
        }

        q = ngx_queue_head(&conn->waiting);
        link = ngx_queue_data(q, ngx_http_passkey_redis_link_t, queue);
        op = link->op;

        error.data = text;
        error.len = sizeof(text);

        /* a WAIT's reply is its own; the write's stays in op */

        if (link->wait && op != NULL) {
            ngx_memzero(&ack, sizeof(ngx_http_passkey_redis_op_t));
            ack.pool = op->pool;
            ack.log = op->log;
        }

        rc = ngx_http_passkey_resp_reply(conn->reader,
                                         link->wait && op ? &ack : op,
                                         &error);

        if (rc == NGX_AGAIN) {
            return NGX_OK;
        }

        if (rc == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis \"%V\" sent a reply that is not "
                          "RESP", &conn->name);
            ngx_http_passkey_redis_close(conn);
            return NGX_ERROR;
        }

        ngx_queue_remove(q);

        if (link->ev.timer_set) {
            ngx_del_timer(&link->ev);
        }

        /* the server is answering: the next failure starts a new backoff */

        conn->backoff = 0;

        if (rc == NGX_DECLINED && link->setup != NULL) {

            /* Redis error texts for AUTH do not echo the password */

            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis %s on \"%V\" failed: %V",
                          link->setup, &conn->name, &error);

            ngx_http_passkey_redis_link_free(link);

            /* what follows would only get NOAUTH errors */

            ngx_http_passkey_redis_backoff(conn);
            ngx_http_passkey_redis_close(conn);
            return NGX_ERROR;
        }

        if (link->hold) {

            /* the write answered; the op waits for the WAIT behind it */

            wait = link->partner;

            if (wait != NULL) {
                wait->partner = NULL;

                if (op != NULL) {
                    op->priv = NULL;

                    if (ngx_http_passkey_redis_redirect(conn, op, link)
                        == NGX_OK)
                    {
                        /* not written here: the WAIT's reply is dropped */
                        wait->op = NULL;

                    } else {
                        op->priv = wait;
                    }
                }
            }

            ngx_http_passkey_redis_link_free(link);
            continue;
        }

        waited = link->wait;

        if (op == NULL) {
            /* cancelled, or the connection's own command: drop it */
            ngx_http_passkey_redis_link_free(link);
            continue;
        }

        op->priv = NULL;

        /* a cluster's node did not run it, and says where it goes */

        rc = waited ? NGX_DECLINED
                    : ngx_http_passkey_redis_redirect(conn, op, link);

        ngx_http_passkey_redis_link_free(link);

        if (rc == NGX_OK) {
            continue;
        }

        /*
         * A master without the replicas it had may be one a failover has
         * left behind: with sentinel=, the next connection asks again.
         */

        stale = (waited
                 && ngx_http_passkey_redis_waited(conn, op, &ack) != NGX_OK
                 && conn->server->sentinels != NULL);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, op->log, 0,
                       "passkey redis result:%d type:%d",
                       (int) op->result, (int) op->type);

        /*
         * A master that a failover made a replica answers writes so; the
         * next connection finds the master again (by sentinel=, or the
         * name's address)
         */

        readonly = (op->type == NGX_HTTP_PASSKEY_REDIS_ERROR
                    && op->str.len >= sizeof("READONLY") - 1
                    && ngx_strncmp(op->str.data, "READONLY",
                                   sizeof("READONLY") - 1) == 0);

        /* may send again, or cancel other ops: the link is gone */

        op->handler(op);

        if ((readonly || stale) && conn->peer.connection == c) {
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "passkey redis \"%V\" %s, reconnecting",
                          &conn->name,
                          readonly ? "is a replica now"
                                   : "lost its replicas");
            ngx_http_passkey_redis_close(conn);
            return NGX_ERROR;
        }
    }

    return NGX_ERROR;
}


/* the WAIT behind a write answered: too few replicas fail the write */

static ngx_int_t
ngx_http_passkey_redis_waited(ngx_http_passkey_redis_conn_t *conn,
    ngx_http_passkey_redis_op_t *op, ngx_http_passkey_redis_op_t *ack)
{
    if (ack->result == NGX_HTTP_PASSKEY_REDIS_OK
        && ack->type == NGX_HTTP_PASSKEY_REDIS_INTEGER
        && (ngx_uint_t) ack->integer >= conn->server->replicas)
    {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_ERR, op->log, 0,
                  "passkey redis \"%V\": the write reached %i of %ui "
                  "replicas in time", &conn->name,
                  ack->type == NGX_HTTP_PASSKEY_REDIS_INTEGER
                  ? ack->integer : (ngx_int_t) 0,
                  conn->server->replicas);

    op->result = NGX_HTTP_PASSKEY_REDIS_UNAVAILABLE;
    op->type = NGX_HTTP_PASSKEY_REDIS_NIL;
    ngx_str_null(&op->str);
    op->elements = NULL;

    return NGX_DECLINED;
}


/*
 * The connection is gone, or given up on: every link waiting on it fails.
 * The connection is detached first, so that a handler sending again opens
 * a new one.
 */

void
ngx_http_passkey_redis_close(ngx_http_passkey_redis_conn_t *conn)
{
    ngx_pool_t                     *pool;
    ngx_queue_t                     waiting, *q;
    ngx_http_passkey_redis_op_t    *op;
    ngx_http_passkey_redis_link_t  *link;

    if (conn->resolving != NULL) {
        ngx_resolve_name_done(conn->resolving);
        conn->resolving = NULL;
    }

    ngx_http_passkey_redis_discover_end(conn);

    if (conn->peer.connection != NULL) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->log, 0,
                       "passkey redis close \"%V\"", &conn->name);

        pool = conn->peer.connection->pool;

#if (NGX_SSL)
        if (conn->peer.connection->ssl) {
            conn->peer.connection->ssl->no_wait_shutdown = 1;
            (void) ngx_ssl_shutdown(conn->peer.connection);
        }
#endif

        ngx_close_connection(conn->peer.connection);
        conn->peer.connection = NULL;

        if (pool != NULL) {
            ngx_destroy_pool(pool);
        }
    }

    if (conn->connected) {
        ngx_http_passkey_metrics_redis_conn(conn->server,
                                            NGX_HTTP_PASSKEY_METRICS_CONN_DOWN);
    }

    conn->active = 0;
    conn->connected = 0;

    ngx_http_passkey_resp_reader_free(conn->reader);
    conn->reader = NULL;

    conn->out.pos = conn->out.start;
    conn->out.last = conn->out.start;

    ngx_queue_init(&waiting);

    if (!ngx_queue_empty(&conn->waiting)) {
        ngx_queue_add(&waiting, &conn->waiting);
        ngx_queue_init(&conn->waiting);
    }

    while (!ngx_queue_empty(&waiting)) {
        q = ngx_queue_head(&waiting);
        link = ngx_queue_data(q, ngx_http_passkey_redis_link_t, queue);

        ngx_queue_remove(q);

        if (link->ev.timer_set) {
            ngx_del_timer(&link->ev);
        }

        op = link->op;

        /* a held write's op is told by its WAIT, further in the queue */

        if (link->hold && link->partner) {
            ngx_http_passkey_redis_link_free(link);
            continue;
        }

        ngx_http_passkey_redis_link_free(link);

        if (op == NULL) {
            continue;
        }

        if (conn->exiting) {
            ngx_http_passkey_redis_drop(op);
            continue;
        }

        op->priv = NULL;

        ngx_http_passkey_redis_deliver(op, NGX_HTTP_PASSKEY_REDIS_UNAVAILABLE);
    }

    /* a node lost may be a master failed over: where are the slots now? */

    if (conn->cluster && !conn->exiting) {
        ngx_http_passkey_redis_cluster_lost(conn);
    }
}


static void
ngx_http_passkey_redis_timeout_handler(ngx_event_t *ev)
{
    ngx_http_passkey_redis_op_t    *op;
    ngx_http_passkey_redis_link_t  *link;
    ngx_http_passkey_redis_conn_t  *conn;

    link = (ngx_http_passkey_redis_link_t *)
               ((u_char *) ev - offsetof(ngx_http_passkey_redis_link_t, ev));

    op = link->op;
    conn = link->conn;

    ngx_log_error(NGX_LOG_ERR, op ? op->log : conn->log, 0,
                  "passkey redis \"%V\" timed out", &conn->name);

    /*
     * The server hangs: give up on the connection, failing what else
     * waits on it.  This op gets TIMEOUT, before the others: their
     * handlers may finalize the request that owns it.
     */

    ngx_queue_remove(&link->queue);

    if (link->partner) {
        ((ngx_http_passkey_redis_link_t *) link->partner)->op = NULL;
        ((ngx_http_passkey_redis_link_t *) link->partner)->partner = NULL;
    }

    ngx_http_passkey_redis_link_free(link);

    if (op != NULL) {
        op->priv = NULL;
    }

    ngx_http_passkey_redis_close(conn);

    if (op != NULL) {
        ngx_http_passkey_redis_deliver(op, NGX_HTTP_PASSKEY_REDIS_TIMEOUT);
    }
}


static void
ngx_http_passkey_redis_fail_handler(ngx_event_t *ev)
{
    ngx_http_passkey_redis_op_t    *op;
    ngx_http_passkey_redis_link_t  *link;

    link = (ngx_http_passkey_redis_link_t *)
               ((u_char *) ev - offsetof(ngx_http_passkey_redis_link_t, ev));

    op = link->op;

    ngx_queue_remove(&link->queue);
    ngx_http_passkey_redis_link_free(link);

    if (op == NULL) {
        return;
    }

    op->priv = NULL;

    ngx_http_passkey_redis_deliver(op, NGX_HTTP_PASSKEY_REDIS_UNAVAILABLE);
}


static void
ngx_http_passkey_redis_deliver(ngx_http_passkey_redis_op_t *op,
    ngx_http_passkey_redis_result_e result)
{
    op->result = result;
    op->type = NGX_HTTP_PASSKEY_REDIS_NIL;
    ngx_str_null(&op->str);
    op->integer = 0;
    op->elements = NULL;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "passkey redis result:%d", (int) op->result);

    op->handler(op);
}


static ngx_int_t
ngx_http_passkey_redis_check_verb(ngx_str_t *verb)
{
    ngx_str_t  *f;

    for (f = ngx_http_passkey_redis_unsupported; f->len; f++) {
        if (verb->len == f->len
            && ngx_strncasecmp(verb->data, f->data, f->len) == 0)
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}

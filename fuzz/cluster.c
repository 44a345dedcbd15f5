
/*
 * Copyright (C) ngx_passkey_module authors
 */


/*
 * What Redis Cluster nodes say: the CLUSTER NODES table (nodes, flags,
 * addresses, slot ranges) and the MOVED and ASK errors that send a
 * command elsewhere; and the slot of a key, by its hash tag.
 *
 * Input: a first line "nodes", "redirect" or "slot", then:
 *   nodes     the reply to CLUSTER NODES, from 127.0.0.1:7000
 *   redirect  the error a node at 127.0.0.1:7000 answered a command with
 *   slot      a key per line
 *
 * Commands go nowhere: the harness notes them.
 * wrap: ngx_http_passkey_redis_queue
 *
 * Checks: the slots learnt point at known nodes; MOVED moves its slot to
 * the node it names; a key's slot is its hash tag's.
 */


#include "../ngx_passkey_module/ngx_http_passkey_redis_cluster.c"

#include "ngx_passkey_fuzz.h"


ngx_int_t __wrap_ngx_http_passkey_redis_queue(
    ngx_http_passkey_redis_conn_t *conn, ngx_http_passkey_redis_op_t *op,
    ngx_uint_t argc, ngx_str_t *argv, ngx_http_passkey_resp_buf_t *cmd);

static void ngx_passkey_fuzz_nodes(ngx_pool_t *pool, ngx_str_t *text);
static void ngx_passkey_fuzz_redirect(ngx_pool_t *pool, ngx_str_t *text);
static void ngx_passkey_fuzz_slot(ngx_pool_t *pool, const u_char *p,
    const u_char *last);
static ngx_http_passkey_redis_cluster_t *ngx_passkey_fuzz_cluster(
    ngx_pool_t *pool);


static ngx_uint_t  ngx_passkey_fuzz_queued;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_passkey_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_str_t      kind, text;
    ngx_pool_t    *pool;
    const u_char  *p, *last;

    pool = ngx_passkey_fuzz_pool();

    p = data;
    last = data + size;

    if (ngx_passkey_fuzz_line(pool, &p, last, &kind, 0) != NGX_OK) {
        goto done;
    }

    text.len = last - p;
    text.data = ngx_passkey_fuzz_copy(pool, p, text.len, 0);

    if (kind.len == 5 && ngx_strncmp(kind.data, "nodes", 5) == 0) {
        ngx_passkey_fuzz_nodes(pool, &text);

    } else if (kind.len == 8 && ngx_strncmp(kind.data, "redirect", 8) == 0) {
        ngx_passkey_fuzz_redirect(pool, &text);

    } else if (kind.len == 4 && ngx_strncmp(kind.data, "slot", 4) == 0) {
        ngx_passkey_fuzz_slot(pool, p, last);
    }

done:

    ngx_passkey_fuzz_done(pool);

    return 0;
}


static void
ngx_passkey_fuzz_nodes(ngx_pool_t *pool, ngx_str_t *text)
{
    u_char                            *slots;
    ngx_int_t                          rc;
    ngx_uint_t                         i, known;
    ngx_http_passkey_redis_cluster_t  *cluster;

    cluster = ngx_passkey_fuzz_cluster(pool);

    slots = ngx_pcalloc(pool, NGX_HTTP_PASSKEY_REDIS_SLOTS);
    if (slots == NULL) {
        abort();
    }

    rc = ngx_http_passkey_redis_nodes_read(cluster, cluster->nodes[0], pool,
                                           text, slots);

    ngx_passkey_fuzz_check(cluster->nnodes <= NGX_HTTP_PASSKEY_REDIS_NODES);

    if (rc != NGX_OK) {
        ngx_passkey_fuzz_check(rc == NGX_ERROR);
        return;
    }

    known = 0;

    for (i = 0; i < NGX_HTTP_PASSKEY_REDIS_SLOTS; i++) {
        ngx_passkey_fuzz_check(slots[i] <= cluster->nnodes);

        if (slots[i]) {
            known++;
        }
    }

    ngx_passkey_fuzz_check(known > 0);
}


static void
ngx_passkey_fuzz_redirect(ngx_pool_t *pool, ngx_str_t *text)
{
    u_char                            *p, *space;
    ngx_int_t                          rc, slot;
    ngx_str_t                          argv[2];
    ngx_http_passkey_redis_op_t        op;
    ngx_http_passkey_redis_link_t      link;
    ngx_http_passkey_redis_cluster_t  *cluster;

    cluster = ngx_passkey_fuzz_cluster(pool);

    ngx_memzero(&op, sizeof(ngx_http_passkey_redis_op_t));
    ngx_memzero(&link, sizeof(ngx_http_passkey_redis_link_t));

    op.pool = pool;
    op.log = ngx_passkey_fuzz_log;
    op.result = NGX_HTTP_PASSKEY_REDIS_OK;
    op.type = NGX_HTTP_PASSKEY_REDIS_ERROR;
    op.str = *text;

    /* the command that went to the node: GET {user}key */

    ngx_str_set(&argv[0], "GET");
    ngx_str_set(&argv[1], "{user}key");

    if (ngx_http_passkey_resp_command(&link.cmd, 2, argv, op.log) != NGX_OK) {
        abort();
    }

    link.op = &op;
    link.conn = cluster->nodes[0];

    ngx_passkey_fuzz_queued = 0;

    rc = ngx_http_passkey_redis_redirect(cluster->nodes[0], &op, &link);

    if (rc == NGX_OK) {

        /* the command went again; MOVED asked for the table too */

        p = text->data + (text->data[0] == 'M' ? 6 : 4);
        space = ngx_strlchr(p, text->data + text->len, ' ');

        ngx_passkey_fuzz_check(space != NULL);

        slot = ngx_atoi(p, space - p);

        ngx_passkey_fuzz_check(slot >= 0
                               && slot < NGX_HTTP_PASSKEY_REDIS_SLOTS);
        ngx_passkey_fuzz_check(ngx_passkey_fuzz_queued == 2
                               && link.cmd.start == NULL);

        if (text->data[0] == 'M') {
            ngx_passkey_fuzz_check(cluster->slots[slot] >= 1
                                   && cluster->slots[slot]
                                      <= cluster->nnodes);
        }

    } else {
        ngx_passkey_fuzz_check(rc == NGX_DECLINED
                               && ngx_passkey_fuzz_queued <= 1);
    }

    if (link.cmd.start) {
        ngx_free(link.cmd.start);
    }

    if (cluster->asking) {
        ngx_destroy_pool(cluster->asking);
    }
}


static void
ngx_passkey_fuzz_slot(ngx_pool_t *pool, const u_char *p, const u_char *last)
{
    u_char     *open, *close;
    ngx_str_t   key, tag, argv[4];
    ngx_uint_t  slot;

    while (ngx_passkey_fuzz_line(pool, &p, last, &key, 0) == NGX_OK) {

        slot = ngx_http_passkey_redis_slot(key.data, key.len);

        ngx_passkey_fuzz_check(slot < NGX_HTTP_PASSKEY_REDIS_SLOTS);

        /* a key with a hash tag is in the tag's slot */

        open = ngx_strlchr(key.data, key.data + key.len, '{');
        close = open ? ngx_strlchr(open + 1, key.data + key.len, '}')
                     : NULL;

        if (close && close > open + 1) {
            tag.data = open + 1;
            tag.len = close - tag.data;

            ngx_passkey_fuzz_check(
                ngx_http_passkey_redis_slot(tag.data, tag.len) == slot);
        }

        /* a script's first key */

        ngx_str_set(&argv[0], "EVAL");
        ngx_str_set(&argv[1], "return 1");
        ngx_str_set(&argv[2], "1");
        argv[3] = key;

        ngx_passkey_fuzz_check(
            ngx_http_passkey_redis_key_slot(4, argv) == (ngx_int_t) slot);
    }
}


/* a cluster whose first seed, 127.0.0.1:7000, answered */

static ngx_http_passkey_redis_cluster_t *
ngx_passkey_fuzz_cluster(ngx_pool_t *pool)
{
    ngx_http_passkey_redis_conn_t     *conn;
    ngx_http_passkey_redis_server_t   *server;
    ngx_http_passkey_redis_cluster_t  *cluster;

    server = ngx_pcalloc(pool, sizeof(ngx_http_passkey_redis_server_t));
    cluster = ngx_pcalloc(pool, sizeof(ngx_http_passkey_redis_cluster_t));

    if (server == NULL || cluster == NULL) {
        abort();
    }

    ngx_str_set(&server->name, "127.0.0.1:7000");

    if (ngx_parse_addr_port(pool, &server->addr, server->name.data,
                            server->name.len)
        != NGX_OK)
    {
        abort();
    }

    server->seeds = ngx_array_create(pool, 1, sizeof(ngx_addr_t));
    if (server->seeds == NULL) {
        abort();
    }

    cluster->server = server;
    cluster->log = ngx_passkey_fuzz_log;

    conn = ngx_http_passkey_redis_conn((ngx_cycle_t *) ngx_cycle, server);
    if (conn == NULL) {
        abort();
    }

    conn->cluster = cluster;
    conn->connected = 1;
    conn->peer.sockaddr = server->addr.sockaddr;
    conn->peer.socklen = server->addr.socklen;

    cluster->nodes[cluster->nnodes++] = conn;

    return cluster;
}


/*
 * As ngx_http_passkey_redis_queue() takes a command: the command's buffer
 * becomes the new link's (freed here), and op->priv points to that link.
 */

ngx_int_t
__wrap_ngx_http_passkey_redis_queue(ngx_http_passkey_redis_conn_t *conn,
    ngx_http_passkey_redis_op_t *op, ngx_uint_t argc, ngx_str_t *argv,
    ngx_http_passkey_resp_buf_t *cmd)
{
    ngx_http_passkey_redis_link_t  *link;

    ngx_passkey_fuzz_queued++;

    ngx_passkey_fuzz_check(conn != NULL && (argc > 0 || cmd != NULL));

    if (cmd) {
        ngx_passkey_fuzz_check(cmd->start != NULL);
        ngx_free(cmd->start);
        ngx_memzero(cmd, sizeof(ngx_http_passkey_resp_buf_t));
    }

    if (op) {
        link = ngx_pcalloc(op->pool, sizeof(ngx_http_passkey_redis_link_t));
        if (link == NULL) {
            abort();
        }

        op->priv = link;
    }

    return NGX_OK;
}


/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_passkey_redis_conn.h"


#define NGX_HTTP_PASSKEY_REDIS_REDIRECTS        5
#define NGX_HTTP_PASSKEY_REDIS_ASK_TIMEOUT      2000
#define NGX_HTTP_PASSKEY_REDIS_ASK_INTERVAL     100


/*
 * Redis Cluster: the node each command goes to.
 *
 * A worker keeps the master of each of the 16384 slots, learnt with
 * CLUSTER NODES from a node it knows (the seeds, at first), and one
 * connection per master.  A command goes to the master of its first
 * key's slot; the keys of one script share a hash tag, so they share the
 * slot.  A node that answers MOVED (the slot has moved: a failover, a
 * resharding) or ASK (the slot is moving, and this key has gone) did not
 * run the command, which goes again where it points.  MOVED, and a node
 * lost, also ask for the whole table again.  Until the table is known,
 * commands go to the seeds, and their MOVED replies teach it.
 */


static ngx_http_passkey_redis_conn_t *ngx_http_passkey_redis_node(
    ngx_http_passkey_redis_cluster_t *cluster, struct sockaddr *sockaddr,
    socklen_t socklen);
static ngx_http_passkey_redis_conn_t *ngx_http_passkey_redis_pick(
    ngx_http_passkey_redis_cluster_t *cluster, ngx_uint_t argc,
    ngx_str_t *argv);
static ngx_int_t ngx_http_passkey_redis_key_slot(ngx_uint_t argc,
    ngx_str_t *argv);
static ngx_uint_t ngx_http_passkey_redis_slot(u_char *key, size_t len);
static void ngx_http_passkey_redis_ask_nodes(
    ngx_http_passkey_redis_cluster_t *cluster);
static void ngx_http_passkey_redis_nodes_told(
    ngx_http_passkey_redis_op_t *op);
static ngx_int_t ngx_http_passkey_redis_nodes_read(
    ngx_http_passkey_redis_cluster_t *cluster,
    ngx_http_passkey_redis_conn_t *asked, ngx_pool_t *pool, ngx_str_t *text,
    u_char *slots);
static ngx_uint_t ngx_http_passkey_redis_flag(ngx_str_t *flags, char *flag);
static ngx_int_t ngx_http_passkey_redis_node_address(ngx_pool_t *pool,
    u_char *start, u_char *end, ngx_http_passkey_redis_conn_t *asked,
    ngx_addr_t *addr);


ngx_int_t
ngx_http_passkey_redis_cluster_init(ngx_cycle_t *cycle,
    ngx_http_passkey_redis_server_t *server)
{
    ngx_uint_t                         i;
    ngx_addr_t                        *seed;
    ngx_http_passkey_redis_conn_t     *conn;
    ngx_http_passkey_redis_cluster_t  *cluster;

    cluster = ngx_pcalloc(cycle->pool,
                          sizeof(ngx_http_passkey_redis_cluster_t));
    if (cluster == NULL) {
        return NGX_ERROR;
    }

    cluster->server = server;
    cluster->log = cycle->log;

    /* the first seed is the address as written: a name is resolved */

    conn = ngx_http_passkey_redis_conn(cycle, server);
    if (conn == NULL) {
        return NGX_ERROR;
    }

    conn->cluster = cluster;
    cluster->nodes[cluster->nnodes++] = conn;

    seed = server->seeds->elts;

    for (i = 0; i < server->seeds->nelts; i++) {
        conn = ngx_http_passkey_redis_node(cluster, seed[i].sockaddr,
                                           seed[i].socklen);
        if (conn == NULL) {
            return NGX_ERROR;
        }
    }

    server->cluster = cluster;

    return NGX_OK;
}


void
ngx_http_passkey_redis_cluster_exit(ngx_http_passkey_redis_server_t *server)
{
    ngx_uint_t                         i;
    ngx_http_passkey_redis_cluster_t  *cluster;

    cluster = server->cluster;

    for (i = 0; i < cluster->nnodes; i++) {
        ngx_http_passkey_redis_conn_exit(cluster->nodes[i]);
    }

    /* its op is unlinked now */

    if (cluster->asking) {
        ngx_destroy_pool(cluster->asking);
        cluster->asking = NULL;
    }

    server->cluster = NULL;
}


/* the node of that address, known or new; NULL: none can be added */

static ngx_http_passkey_redis_conn_t *
ngx_http_passkey_redis_node(ngx_http_passkey_redis_cluster_t *cluster,
    struct sockaddr *sockaddr, socklen_t socklen)
{
    u_char                           *p;
    ngx_uint_t                        i;
    ngx_http_passkey_redis_conn_t    *conn;
    ngx_http_passkey_redis_server_t  *server;
    u_char                            text[NGX_SOCKADDR_STRLEN];

    server = cluster->server;

    for (i = 0; i < cluster->nnodes; i++) {
        conn = cluster->nodes[i];

        if (conn->node) {
            if (ngx_cmp_sockaddr(&conn->sockaddr.sockaddr, conn->socklen,
                                 sockaddr, socklen, 1)
                == NGX_OK)
            {
                return conn;
            }

        } else if (server->host.len == 0
                   && ngx_cmp_sockaddr(server->addr.sockaddr,
                                       server->addr.socklen,
                                       sockaddr, socklen, 1)
                      == NGX_OK)
        {
            return conn;
        }
    }

    if (cluster->nnodes == NGX_HTTP_PASSKEY_REDIS_NODES
        || socklen > sizeof(ngx_sockaddr_t))
    {
        ngx_log_error(NGX_LOG_ERR, cluster->log, 0,
                      "passkey redis cluster \"%V\" has more than %d nodes",
                      &server->name, NGX_HTTP_PASSKEY_REDIS_NODES);
        return NULL;
    }

    conn = ngx_http_passkey_redis_conn((ngx_cycle_t *) ngx_cycle, server);
    if (conn == NULL) {
        return NULL;
    }

    ngx_memcpy(&conn->sockaddr, sockaddr, socklen);
    conn->socklen = socklen;
    conn->node = 1;
    conn->cluster = cluster;

    /* logs name the node */

    conn->name.len = ngx_sock_ntop(sockaddr, socklen, text,
                                   NGX_SOCKADDR_STRLEN, 1);

    p = ngx_pnalloc(ngx_cycle->pool, conn->name.len);
    if (p == NULL) {
        return NULL;
    }

    conn->name.data = ngx_cpymem(p, text, conn->name.len) - conn->name.len;

    cluster->nodes[cluster->nnodes++] = conn;

    return conn;
}


ngx_int_t
ngx_http_passkey_redis_cluster_send(ngx_http_passkey_redis_server_t *server,
    ngx_http_passkey_redis_op_t *op, ngx_uint_t argc, ngx_str_t *argv)
{
    ngx_http_passkey_resp_buf_t     cmd;
    ngx_http_passkey_redis_conn_t  *conn;

    /* formatted once: a redirection sends it again */

    ngx_memzero(&cmd, sizeof(ngx_http_passkey_resp_buf_t));

    if (ngx_http_passkey_resp_command(&cmd, argc, argv, op->log) != NGX_OK) {
        if (cmd.start) {
            ngx_free(cmd.start);
        }

        return NGX_ERROR;
    }

    conn = ngx_http_passkey_redis_pick(server->cluster, argc, argv);

    return ngx_http_passkey_redis_queue(conn, op, 0, NULL, &cmd);
}


static ngx_http_passkey_redis_conn_t *
ngx_http_passkey_redis_pick(ngx_http_passkey_redis_cluster_t *cluster,
    ngx_uint_t argc, ngx_str_t *argv)
{
    ngx_int_t                       slot;
    ngx_uint_t                      i, n;
    ngx_http_passkey_redis_conn_t  *conn;

    slot = ngx_http_passkey_redis_key_slot(argc, argv);

    if (slot >= 0 && cluster->slots[slot]) {
        return cluster->nodes[cluster->slots[slot] - 1];
    }

    if (slot >= 0) {
        ngx_http_passkey_redis_ask_nodes(cluster);
    }

    /* any node, the next one not failing: MOVED points further */

    for (i = 0; i < cluster->nnodes; i++) {
        n = cluster->next++ % cluster->nnodes;
        conn = cluster->nodes[n];

        if (conn->backoff == 0 || conn->connected) {
            return conn;
        }
    }

    return cluster->nodes[cluster->next++ % cluster->nnodes];
}


/*
 * The node did not run the command: "MOVED <slot> <host>:<port>", or
 * "ASK ..." for one command during a resharding.  NGX_OK: the command
 * went again, and the op waits there; NGX_DECLINED: the reply is the op's.
 */

ngx_int_t
ngx_http_passkey_redis_redirect(ngx_http_passkey_redis_conn_t *conn,
    ngx_http_passkey_redis_op_t *op, ngx_http_passkey_redis_link_t *link)
{
    u_char                            *p, *last, *space;
    ngx_int_t                          slot;
    ngx_str_t                          asking;
    ngx_uint_t                         ask, i;
    ngx_addr_t                         addr;
    ngx_http_passkey_redis_conn_t     *target;
    ngx_http_passkey_redis_link_t     *again;
    ngx_http_passkey_redis_cluster_t  *cluster;

    cluster = conn->cluster;

    if (cluster == NULL
        || op->type != NGX_HTTP_PASSKEY_REDIS_ERROR
        || link->cmd.start == NULL)
    {
        return NGX_DECLINED;
    }

    p = op->str.data;
    last = p + op->str.len;

    if (op->str.len > 6 && ngx_strncmp(p, "MOVED ", 6) == 0) {
        ask = 0;
        p += 6;

    } else if (op->str.len > 4 && ngx_strncmp(p, "ASK ", 4) == 0) {
        ask = 1;
        p += 4;

    } else {
        return NGX_DECLINED;
    }

    space = ngx_strlchr(p, last, ' ');

    if (space == NULL) {
        goto invalid;
    }

    slot = ngx_atoi(p, space - p);

    if (slot == NGX_ERROR || slot >= NGX_HTTP_PASSKEY_REDIS_SLOTS
        || ngx_http_passkey_redis_node_address(op->pool, space + 1, last,
                                               conn, &addr)
           != NGX_OK)
    {
        goto invalid;
    }

    if (link->redirects == NGX_HTTP_PASSKEY_REDIS_REDIRECTS) {
        ngx_log_error(NGX_LOG_ERR, op->log, 0,
                      "passkey redis cluster \"%V\" redirected a command "
                      "%d times", &cluster->server->name,
                      NGX_HTTP_PASSKEY_REDIS_REDIRECTS);
        return NGX_DECLINED;
    }

    target = ngx_http_passkey_redis_node(cluster, addr.sockaddr,
                                         addr.socklen);
    if (target == NULL) {
        return NGX_DECLINED;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "passkey redis %s slot %i from \"%V\" to \"%V\"",
                   ask ? "ASK" : "MOVED", slot, &conn->name, &target->name);

    if (!ask) {
        for (i = 0; cluster->nodes[i] != target; i++) { /* void */ }

        cluster->slots[slot] = (u_char) (i + 1);

        ngx_http_passkey_redis_ask_nodes(cluster);

    } else {

        /* the target takes a slot it imports only after ASKING */

        ngx_str_set(&asking, "ASKING");

        if (ngx_http_passkey_redis_queue(target, NULL, 1, &asking, NULL)
            != NGX_OK)
        {
            return NGX_DECLINED;
        }
    }

    /* the command is the new link's now, freed with it */

    if (ngx_http_passkey_redis_queue(target, op, 0, NULL, &link->cmd)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    again = op->priv;
    again->redirects = link->redirects + 1;

    return NGX_OK;

invalid:

    ngx_log_error(NGX_LOG_ERR, op->log, 0,
                  "passkey redis cluster \"%V\" sent a redirection it "
                  "cannot mean", &cluster->server->name);

    return NGX_DECLINED;
}


/* a node's connection failed or was given up on */

void
ngx_http_passkey_redis_cluster_lost(ngx_http_passkey_redis_conn_t *conn)
{
    ngx_http_passkey_redis_ask_nodes(conn->cluster);
}


/*
 * The slot of a command's first key; -1 for a command without keys.
 * EVAL and EVALSHA name their keys after the script and their number.
 */

static ngx_int_t
ngx_http_passkey_redis_key_slot(ngx_uint_t argc, ngx_str_t *argv)
{
    ngx_int_t  n;

    if ((argv[0].len == 4 && ngx_strncasecmp(argv[0].data,
                                             (u_char *) "EVAL", 4) == 0)
        || (argv[0].len == 7 && ngx_strncasecmp(argv[0].data,
                                                (u_char *) "EVALSHA", 7)
                                == 0))
    {
        if (argc < 4) {
            return -1;
        }

        n = ngx_atoi(argv[2].data, argv[2].len);

        return n > 0 ? (ngx_int_t) ngx_http_passkey_redis_slot(argv[3].data,
                                                               argv[3].len)
                     : -1;
    }

    if (argc < 2) {
        return -1;
    }

    return ngx_http_passkey_redis_slot(argv[1].data, argv[1].len);
}


/*
 * Redis's key slot: CRC-16/XMODEM of the key, or of its hash tag, the
 * text between its first "{" and the next "}" when that is not empty.
 */

static ngx_uint_t
ngx_http_passkey_redis_slot(u_char *key, size_t len)
{
    u_char      *open, *close;
    uint16_t     crc;
    ngx_uint_t   i;

    open = ngx_strlchr(key, key + len, '{');

    if (open != NULL) {
        close = ngx_strlchr(open + 1, key + len, '}');

        if (close != NULL && close > open + 1) {
            key = open + 1;
            len = close - key;
        }
    }

    crc = 0;

    while (len--) {
        crc ^= (uint16_t) (*key++ << 8);

        for (i = 0; i < 8; i++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc & (NGX_HTTP_PASSKEY_REDIS_SLOTS - 1);
}


/*
 * CLUSTER NODES, to a node that is not failing: one at a time, and not
 * more often than every 100 ms, as a resharding sends many MOVED.
 */

static void
ngx_http_passkey_redis_ask_nodes(ngx_http_passkey_redis_cluster_t *cluster)
{
    ngx_str_t                       argv[2];
    ngx_uint_t                      i;
    ngx_pool_t                     *pool;
    ngx_http_passkey_redis_op_t    *op;
    ngx_http_passkey_redis_conn_t  *conn;

    if (cluster->asking
        || (cluster->asked
            && ngx_current_msec - cluster->asked
               < NGX_HTTP_PASSKEY_REDIS_ASK_INTERVAL))
    {
        return;
    }

    conn = NULL;

    for (i = 0; i < cluster->nnodes; i++) {
        conn = cluster->nodes[cluster->next++ % cluster->nnodes];

        if (conn->backoff == 0 || conn->connected) {
            break;
        }

        conn = NULL;
    }

    if (conn == NULL) {
        return;
    }

    pool = ngx_create_pool(1024, cluster->log);
    if (pool == NULL) {
        return;
    }

    op = ngx_pcalloc(pool, sizeof(ngx_http_passkey_redis_op_t));
    if (op == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    op->pool = pool;
    op->log = cluster->log;
    op->timeout = NGX_HTTP_PASSKEY_REDIS_ASK_TIMEOUT;
    op->handler = ngx_http_passkey_redis_nodes_told;
    op->data = conn;

    ngx_str_set(&argv[0], "CLUSTER");
    ngx_str_set(&argv[1], "NODES");

    cluster->asking = pool;
    cluster->asked = ngx_current_msec;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, cluster->log, 0,
                   "passkey redis cluster nodes from \"%V\"", &conn->name);

    if (ngx_http_passkey_redis_queue(conn, op, 2, argv, NULL) != NGX_OK) {
        cluster->asking = NULL;
        ngx_destroy_pool(pool);
    }
}


static void
ngx_http_passkey_redis_nodes_told(ngx_http_passkey_redis_op_t *op)
{
    u_char                            *slots;
    ngx_uint_t                         i, changed, masters;
    ngx_http_passkey_redis_conn_t     *asked;
    ngx_http_passkey_redis_cluster_t  *cluster;

    asked = op->data;
    cluster = asked->cluster;

    cluster->asking = NULL;

    slots = NULL;

    if (op->result == NGX_HTTP_PASSKEY_REDIS_OK
        && op->type == NGX_HTTP_PASSKEY_REDIS_STRING)
    {
        slots = ngx_pcalloc(op->pool, NGX_HTTP_PASSKEY_REDIS_SLOTS);

        if (slots != NULL
            && ngx_http_passkey_redis_nodes_read(cluster, asked, op->pool,
                                                 &op->str, slots)
               != NGX_OK)
        {
            slots = NULL;
        }
    }

    if (slots == NULL) {
        ngx_log_error(NGX_LOG_ERR, cluster->log, 0,
                      "passkey redis cluster \"%V\": cannot learn the "
                      "slots from \"%V\"", &cluster->server->name,
                      &asked->name);

        ngx_destroy_pool(op->pool);

        /* another node, at once: this one is failing, or not a cluster's */

        cluster->asked = 0;
        ngx_http_passkey_redis_ask_nodes(cluster);
        return;
    }

    changed = 0;

    for (i = 0; i < NGX_HTTP_PASSKEY_REDIS_SLOTS; i++) {
        if (slots[i] != cluster->slots[i]) {
            changed++;
        }
    }

    ngx_memcpy(cluster->slots, slots, NGX_HTTP_PASSKEY_REDIS_SLOTS);

    ngx_destroy_pool(op->pool);

    if (changed == 0) {
        return;
    }

    masters = 0;

    for (i = 0; i < cluster->nnodes; i++) {
        if (ngx_strlchr(cluster->slots,
                        cluster->slots + NGX_HTTP_PASSKEY_REDIS_SLOTS,
                        (u_char) (i + 1))
            != NULL)
        {
            masters++;
        }
    }

    ngx_log_error(NGX_LOG_NOTICE, cluster->log, 0,
                  "passkey redis cluster \"%V\": %ui masters, %ui slots "
                  "moved", &cluster->server->name, masters, changed);
}


/*
 * CLUSTER NODES: a line per node, "<id> <ip:port@cport[,host]> <flags>
 * <master> <ping> <pong> <epoch> <link> <slot>...", where a slot is
 * "N", "N-M", or in brackets one being moved.  Masters that are not
 * failed serve the slots.
 */

static ngx_int_t
ngx_http_passkey_redis_nodes_read(ngx_http_passkey_redis_cluster_t *cluster,
    ngx_http_passkey_redis_conn_t *asked, ngx_pool_t *pool, ngx_str_t *text,
    u_char *slots)
{
    u_char                         *p, *eol, *last, *f[9], *end, *dash;
    ngx_int_t                       from, to;
    ngx_str_t                       flags;
    ngx_uint_t                      i, n, served, index;
    ngx_addr_t                      addr;
    ngx_http_passkey_redis_conn_t  *node;

    served = 0;
    last = text->data + text->len;

    for (p = text->data; p < last; p = eol + 1) {

        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        /* the first nine fields, each ended by a space */

        for (n = 0; n < 9 && p < eol; n++) {
            f[n] = p;
            p = ngx_strlchr(p, eol, ' ');
            p = p ? p + 1 : eol;
        }

        if (n < 8) {
            continue;
        }

        flags.data = f[2];
        flags.len = f[3] - f[2] - 1;

        /* "fail?" is only a suspicion: such a master still serves */

        if (n < 9
            || !ngx_http_passkey_redis_flag(&flags, "master")
            || ngx_http_passkey_redis_flag(&flags, "fail")
            || ngx_http_passkey_redis_flag(&flags, "handshake")
            || ngx_http_passkey_redis_flag(&flags, "noaddr"))
        {
            continue;
        }

        end = f[1];
        while (end < f[2] - 1 && *end != '@' && *end != ',') {
            end++;
        }

        if (ngx_http_passkey_redis_node_address(pool, f[1], end,
                ngx_http_passkey_redis_flag(&flags, "myself") ? asked : NULL,
                &addr)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        node = ngx_http_passkey_redis_node(cluster, addr.sockaddr,
                                           addr.socklen);
        if (node == NULL) {
            return NGX_ERROR;
        }

        for (index = 0; cluster->nodes[index] != node; index++) {
            /* void */
        }

        /* the slots, each ended by a space or the line's end */

        for (p = f[8]; p < eol; p = end + 1) {
            end = ngx_strlchr(p, eol, ' ');
            if (end == NULL) {
                end = eol;
            }

            if (*p == '[') {
                continue;
            }

            dash = ngx_strlchr(p, end, '-');

            from = ngx_atoi(p, (dash ? dash : end) - p);
            to = dash ? ngx_atoi(dash + 1, end - dash - 1) : from;

            if (from == NGX_ERROR || to == NGX_ERROR || from > to
                || to >= NGX_HTTP_PASSKEY_REDIS_SLOTS)
            {
                return NGX_ERROR;
            }

            for (i = from; i <= (ngx_uint_t) to; i++) {
                slots[i] = (u_char) (index + 1);
            }

            served += to - from + 1;
        }
    }

    return served ? NGX_OK : NGX_ERROR;
}


/* one of the comma-separated flags, exactly */

static ngx_uint_t
ngx_http_passkey_redis_flag(ngx_str_t *flags, char *flag)
{
    u_char  *p, *last, *comma;
    size_t   len;

    len = ngx_strlen(flag);
    last = flags->data + flags->len;

    for (p = flags->data; p < last; p = comma + 1) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        if ((size_t) (comma - p) == len && ngx_strncmp(p, flag, len) == 0) {
            return 1;
        }
    }

    return 0;
}


/*
 * "host:port" as Redis writes a node's address: an IP address, the port
 * after the last colon; an empty host is the node that answered's.
 */

static ngx_int_t
ngx_http_passkey_redis_node_address(ngx_pool_t *pool, u_char *start,
    u_char *end, ngx_http_passkey_redis_conn_t *asked, ngx_addr_t *addr)
{
    u_char     *colon;
    ngx_int_t   port;

    while (end > start && (end[-1] == '\r' || end[-1] == '\n')) {
        end--;
    }

    for (colon = end - 1; colon >= start && *colon != ':'; colon--) {
        /* void */
    }

    if (colon < start) {
        return NGX_ERROR;
    }

    port = ngx_atoi(colon + 1, end - colon - 1);

    if (port < 1 || port > 65535) {
        return NGX_ERROR;
    }

    if (colon == start) {
        if (asked == NULL || !asked->connected) {
            return NGX_ERROR;
        }

        addr->socklen = asked->peer.socklen;
        addr->sockaddr = ngx_palloc(pool, addr->socklen);
        if (addr->sockaddr == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(addr->sockaddr, asked->peer.sockaddr, addr->socklen);

    } else if (ngx_parse_addr(pool, addr, start, colon - start) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_inet_set_port(addr->sockaddr, (in_port_t) port);

    return NGX_OK;
}

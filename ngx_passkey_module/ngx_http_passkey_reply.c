
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


static u_char *ngx_http_passkey_api_route(ngx_http_passkey_bi_call_t *bc,
    u_char *p);
static void ngx_http_passkey_api_scope(ngx_str_t *msg, ngx_str_t *scope);
static char *ngx_http_passkey_api_forbidden(ngx_pool_t *pool,
    ngx_http_passkey_bi_call_t *bc);
static ngx_int_t ngx_http_passkey_send(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, ngx_str_t *body);
static char *ngx_http_passkey_status_title(ngx_uint_t status);
static ngx_int_t ngx_http_passkey_html_escape(ngx_pool_t *pool,
    ngx_str_t *s);


void
ngx_http_passkey_no_store(ngx_http_request_t *r)
{
    /* answers may carry bearer secrets: keep them out of every cache */
    (void) ngx_http_passkey_add_header(r, "Cache-Control", "no-store");
    (void) ngx_http_passkey_add_header(r, "Referrer-Policy", "no-referrer");
}


ngx_int_t
ngx_http_passkey_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_http_passkey_json_t *json)
{
    ngx_str_t  body;
    ngx_str_t  type = ngx_string("application/json");

    if (ngx_http_passkey_json_dump(r->pool, json, &body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_passkey_send(r, status, &type, &body);
}


/* a refusal before the body is read: the body is discarded */

ngx_int_t
ngx_http_passkey_send_early(ngx_http_request_t *r, ngx_uint_t status,
    char *code)
{
    /*
     * The body will not be read: a client that sent "Expect: 100-continue"
     * is not told to send it, as nginx's own error answers do not.
     */

    r->expect_tested = 1;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_passkey_send_problem(r, status, code, NULL);
}


ngx_int_t
ngx_http_passkey_send_not_allowed(ngx_http_request_t *r, char *allow)
{
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "passkey: method %V not allowed", &r->method_name);

    if (ngx_http_passkey_add_header(r, "Allow", allow) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_passkey_send_early(r, NGX_HTTP_NOT_ALLOWED,
                                       "method_not_allowed");
}


/* an answer kept as text: a replay of an idempotent request */

ngx_int_t
ngx_http_passkey_send_raw(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body)
{
    ngx_str_t  type = ngx_string("application/json");

    return ngx_http_passkey_send(r, status, &type, body);
}


/*
 * RFC 9457 problem details, with a stable "code" for programs and the
 * request id that ties the answer to its error_log line.
 */

ngx_int_t
ngx_http_passkey_send_problem(ngx_http_request_t *r, ngx_uint_t status,
    char *code, ngx_str_t *detail)
{
    u_char                        *p;
    ngx_str_t                      body, s;
    ngx_http_passkey_json_t       *json;
    ngx_http_variable_value_t     *vv;
    ngx_http_passkey_main_conf_t  *pmcf;
    ngx_str_t                      type =
                                       ngx_string("application/problem+json");

    ngx_http_passkey_metrics_problem(r, code);

    json = ngx_http_passkey_json_object(r->pool);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s.len = sizeof("urn:ngx-passkey:problem:") - 1 + ngx_strlen(code);
    s.data = ngx_pnalloc(r->pool, s.len);
    if (s.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(s.data, "urn:ngx-passkey:problem:",
                   sizeof("urn:ngx-passkey:problem:") - 1);
    ngx_memcpy(p, code, ngx_strlen(code));

    if (ngx_http_passkey_json_set_string(json, "type", &s) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s.data = (u_char *) ngx_http_passkey_status_title(status);
    s.len = ngx_strlen(s.data);

    if (ngx_http_passkey_json_set_string(json, "title", &s) != NGX_OK
        || ngx_http_passkey_json_set_integer(json, "status", status) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (detail && detail->len
        && ngx_http_passkey_json_set_string(json, "detail", detail) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s.data = (u_char *) code;
    s.len = ngx_strlen(code);

    if (ngx_http_passkey_json_set_string(json, "code", &s) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_passkey_module);

    vv = ngx_http_get_indexed_variable(r, pmcf->request_id_index);

    if (vv != NULL && !vv->not_found && vv->len) {
        s.data = vv->data;
        s.len = vv->len;

        if (ngx_http_passkey_json_set_string(json, "request_id", &s)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_passkey_json_dump(r->pool, json, &body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_passkey_send(r, status, &type, &body);
}


static ngx_int_t
ngx_http_passkey_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *body)
{
    ngx_int_t    rc;
    ngx_buf_t   *b;
    ngx_chain_t  out;

    if (r->header_sent) {
        return NGX_ERROR;
    }

    ngx_http_passkey_no_store(r);

    r->headers_out.status = status;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = body->len + 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    /* a trailing newline keeps curl output and logs readable */

    b->start = ngx_pnalloc(r->pool, body->len + 1);
    if (b->start == NULL) {
        return NGX_ERROR;
    }

    b->pos = b->start;
    b->last = ngx_cpymem(b->pos, body->data, body->len);
    *b->last++ = '\n';
    b->end = b->last;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_passkey_add_header(ngx_http_request_t *r, char *name, char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

    return NGX_OK;
}


static char *
ngx_http_passkey_status_title(ngx_uint_t status)
{
    switch (status) {
    case NGX_HTTP_OK:
        return "OK";
    case NGX_HTTP_BAD_REQUEST:
        return "Bad Request";
    case NGX_HTTP_UNAUTHORIZED:
        return "Unauthorized";
    case NGX_HTTP_FORBIDDEN:
        return "Forbidden";
    case NGX_HTTP_NOT_FOUND:
        return "Not Found";
    case NGX_HTTP_NOT_ALLOWED:
        return "Method Not Allowed";
    case NGX_HTTP_CONFLICT:
        return "Conflict";
    case 410:
        return "Gone";
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        return "Content Too Large";
    case NGX_HTTP_UNSUPPORTED_MEDIA_TYPE:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case NGX_HTTP_BAD_GATEWAY:
        return "Bad Gateway";
    case NGX_HTTP_SERVICE_UNAVAILABLE:
        return "Service Unavailable";
    case NGX_HTTP_GATEWAY_TIME_OUT:
        return "Gateway Timeout";
    default:
        return "Internal Server Error";
    }
}


static char  ngx_http_passkey_html_page[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, "
    "initial-scale=1\">\n"
    "<meta name=\"referrer\" content=\"no-referrer\">\n"
    "<meta name=\"robots\" content=\"noindex\">\n"
    "<title>%V</title>\n"
    "</head>\n"
    "<body>\n"
    "<h1>%V</h1>\n"
    "<p>%ui %V</p>\n"
    "<p><small>code: %s; request: %V</small></p>\n"
    "</body>\n"
    "</html>";


/*
 * A refusal for a person who followed a link: a fixed page with the
 * status, a message and the code, all of the module's own.  Nothing from
 * the request is put in it: the link it answers is a bearer secret.
 */

ngx_int_t
ngx_http_passkey_send_problem_html(ngx_http_request_t *r, ngx_uint_t status,
    char *code, char *title_text)
{
    u_char                        *p;
    size_t                         len;
    ngx_str_t                      body, text, id, title;
    ngx_http_variable_value_t     *vv;
    ngx_http_passkey_main_conf_t  *pmcf;
    ngx_str_t                      type =
                                       ngx_string("text/html; charset=utf-8");

    ngx_http_passkey_metrics_problem(r, code);

    text.data = (u_char *) title_text;
    text.len = ngx_strlen(title_text);

    if (ngx_http_passkey_html_escape(r->pool, &text) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    title.data = (u_char *) ngx_http_passkey_status_title(status);
    title.len = ngx_strlen(title.data);

    ngx_str_null(&id);

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_passkey_module);

    vv = ngx_http_get_indexed_variable(r, pmcf->request_id_index);

    if (vv != NULL && !vv->not_found && vv->len) {
        id.data = vv->data;
        id.len = vv->len;

        if (ngx_http_passkey_html_escape(r->pool, &id) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    len = sizeof(ngx_http_passkey_html_page) - 1 + 2 * text.len
          + NGX_INT_T_LEN + title.len + ngx_strlen(code) + id.len;

    body.data = ngx_pnalloc(r->pool, len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the code is one of the module's, made of letters and "_" */

    p = ngx_snprintf(body.data, len, ngx_http_passkey_html_page, &text,
                     &text, status, &title, code, &id);

    body.len = p - body.data;

    return ngx_http_passkey_send(r, status, &type, &body);
}


static ngx_int_t
ngx_http_passkey_html_escape(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *p;
    size_t   n;

    n = ngx_escape_html(NULL, s->data, s->len);

    if (n == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(pool, s->len + n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_escape_html(p, s->data, s->len);

    s->data = p;
    s->len += n;

    return NGX_OK;
}


/*
 * Ends a request from an API or Redis event rather than from the
 * request's own: posted subrequests and the like must run now.
 */

void
ngx_http_passkey_finalize(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_connection_t  *c;

    c = r->connection;
    c->log->action = NULL;

    ngx_http_finalize_request(r, rc);

    ngx_http_run_posted_requests(c);
}


/*
 * How an API call ended, as the client's answer: status, a stable code and
 * a detail; with one log line.  A 400 is the client's fault only when an
 * identity was being created from its input.
 */

void
ngx_http_passkey_api_problem(ngx_http_request_t *r,
    ngx_http_passkey_bi_call_t *bc, ngx_uint_t creating_identity,
    ngx_http_passkey_problem_t *pb)
{
    char             *code, *detail;
    u_char           *p;
    ngx_str_t         msg;
    ngx_uint_t        status;
    ngx_table_elt_t  *h;

    if (bc->result != NGX_HTTP_PASSKEY_API_OK) {

        switch (bc->result) {

        case NGX_HTTP_PASSKEY_API_TIMEOUT:
            status = NGX_HTTP_GATEWAY_TIME_OUT;
            code = "api_timeout";
            detail = "the Beyond Identity API did not answer in time";
            break;

        case NGX_HTTP_PASSKEY_API_UNREACHABLE:
            status = NGX_HTTP_BAD_GATEWAY;
            code = "api_unreachable";
            detail = "the Beyond Identity API cannot be reached";
            break;

        case NGX_HTTP_PASSKEY_API_BAD_RESPONSE:
            status = NGX_HTTP_BAD_GATEWAY;
            code = "api_bad_response";
            detail = "the Beyond Identity API answered something unexpected";
            break;

        case NGX_HTTP_PASSKEY_API_DENIED:
            status = NGX_HTTP_BAD_GATEWAY;
            code = "api_credentials_rejected";
            detail = "the Beyond Identity API refused this server's "
                     "credentials";
            break;

        default:
            status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            code = "internal_error";
            detail = "internal error";
            break;
        }

        if (bc->method.len) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "passkey: %V %V failed: %s", &bc->method,
                          &bc->path, bc->error ? bc->error : "unknown error");

        } else {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "passkey: %s", bc->error ? bc->error
                                                   : "unknown error");
        }

        goto done;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "passkey: %V %V answered %ui \"%V\" \"%V\"",
                  &bc->method, &bc->path, bc->status, &bc->log_code,
                  &bc->log_message);

    msg = bc->api_message;

    if (msg.len > 200) {
        msg.len = 200;
    }

    detail = NULL;

    switch (bc->status) {

    case NGX_HTTP_BAD_REQUEST:
        if (creating_identity) {
            status = NGX_HTTP_BAD_REQUEST;
            code = "invalid_identity";
            detail = "Beyond Identity rejected the identity";

        } else {
            status = NGX_HTTP_BAD_GATEWAY;
            code = "api_rejected_request";
            detail = "the Beyond Identity API rejected the request";
        }

        break;

    case NGX_HTTP_UNAUTHORIZED:
        status = NGX_HTTP_BAD_GATEWAY;
        code = "api_unauthorized";
        detail = "the Beyond Identity API refused this server's access";
        break;

    case NGX_HTTP_FORBIDDEN:
        status = NGX_HTTP_BAD_GATEWAY;
        code = "api_forbidden";
        detail = ngx_http_passkey_api_forbidden(r->pool, bc);
        break;

    case NGX_HTTP_NOT_FOUND:
        status = NGX_HTTP_NOT_FOUND;
        code = "not_found";
        detail = "Beyond Identity does not know the identity";
        break;

    case NGX_HTTP_CONFLICT:
        status = NGX_HTTP_CONFLICT;
        code = "conflict";
        detail = "Beyond Identity reports a conflict";
        break;

    case 422:
        status = 422;
        code = "unprocessable";
        detail = "Beyond Identity cannot process the request";
        break;

    case 429:
        status = NGX_HTTP_SERVICE_UNAVAILABLE;
        code = "api_rate_limited";
        detail = "the Beyond Identity API is rate limiting this server";

        if (bc->retry_after.len) {
            h = ngx_list_push(&r->headers_out.headers);
            if (h != NULL) {
                h->hash = 1;
#if (nginx_version >= 1023000)
                h->next = NULL;
#endif
                ngx_str_set(&h->key, "Retry-After");
                h->value = bc->retry_after;
            }
        }

        break;

    default:
        status = NGX_HTTP_BAD_GATEWAY;

        if (bc->status >= 500) {
            code = "api_error";
            detail = "the Beyond Identity API failed";

        } else {
            code = "api_unexpected_status";
            detail = "the Beyond Identity API answered an unexpected status";
        }

        break;
    }

    if (msg.len && (status == NGX_HTTP_BAD_REQUEST
                    || status == NGX_HTTP_NOT_FOUND
                    || status == NGX_HTTP_CONFLICT
                    || status == 422))
    {
        /* the API's own words help the caller fix the input */

        p = ngx_pnalloc(r->pool, msg.len + 1);

        if (p != NULL) {
            ngx_cpystrn(p, msg.data, msg.len + 1);
            detail = (char *) p;
        }
    }

done:

    pb->status = status;
    pb->code = code;
    pb->detail = detail;
}


/*
 * A 403 names what was refused, without the ids in its path, and the
 * scope that the API's message names, if any: what the application in
 * the Admin Console needs.
 */

static char *
ngx_http_passkey_api_forbidden(ngx_pool_t *pool, ngx_http_passkey_bi_call_t *bc)
{
    u_char     *p, *detail;
    size_t      len;
    ngx_str_t   scope;

    ngx_http_passkey_api_scope(&bc->api_message, &scope);

    len = sizeof("the Beyond Identity API forbids  to this server: its "
                 "access token lacks a scope or is for another tenant")
          + bc->method.len + 5 * bc->path.len
          + sizeof(" (scope \"\")") + scope.len;

    detail = ngx_pnalloc(pool, len);
    if (detail == NULL) {
        return "the Beyond Identity API forbids this call to this server";
    }

    p = ngx_cpymem(detail, "the Beyond Identity API forbids ",
                   sizeof("the Beyond Identity API forbids ") - 1);
    p = ngx_http_passkey_api_route(bc, p);

    if (scope.len) {
        ngx_sprintf(p, " to this server (scope \"%V\")%Z", &scope);

    } else {
        ngx_sprintf(p, " to this server: its access token lacks a scope or "
                    "is for another tenant%Z");
    }

    return (char *) detail;
}


/*
 * A scope the API's message names, such as "identities:create": a word of
 * lowercase letters, digits, "-" and "_" around one colon
 */

static void
ngx_http_passkey_api_scope(ngx_str_t *msg, ngx_str_t *scope)
{
    u_char      c, *p, *end, *start, *colon;
    ngx_uint_t  colons;

    ngx_str_null(scope);

    p = msg->data;
    end = msg->data + msg->len;

    while (p < end) {
        start = p;
        colon = NULL;
        colons = 0;

        for ( ;; ) {
            if (p == end) {
                break;
            }

            c = *p;

            if (c == ':') {
                colon = p;
                colons++;

            } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                         || c == '-' || c == '_'))
            {
                break;
            }

            p++;
        }

        if (colons == 1
            && colon > start
            && colon < p - 1
            && *start >= 'a' && *start <= 'z'
            && p - start <= 64)
        {
            scope->data = start;
            scope->len = p - start;
            return;
        }

        if (p < end) {
            p++;
        }
    }
}


/*
 * "POST /identities/{id}/credential-binding-jobs": the path's segments
 * alternate between a collection and an id; at most 5 bytes per byte
 */

static u_char *
ngx_http_passkey_api_route(ngx_http_passkey_bi_call_t *bc, u_char *p)
{
    u_char      *s, *end;
    ngx_uint_t   segment;

    p = ngx_cpymem(p, bc->method.data, bc->method.len);
    *p++ = ' ';

    s = bc->path.data;
    end = bc->path.data + bc->path.len;
    segment = 0;

    while (s < end) {

        if (*s != '/') {
            *p++ = *s++;
            continue;
        }

        *p++ = *s++;

        if (++segment % 2) {
            continue;
        }

        /* an id, up to a custom method such as ":revoke" */

        p = ngx_cpymem(p, "{id}", sizeof("{id}") - 1);

        while (s < end && *s != '/' && *s != ':') {
            s++;
        }
    }

    return p;
}

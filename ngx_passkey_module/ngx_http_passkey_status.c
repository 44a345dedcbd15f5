
/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


ngx_int_t
ngx_http_passkey_job_status_handler(ngx_http_request_t *r)
{
    /* TODO: being written */
    return NGX_HTTP_NOT_IMPLEMENTED;
}


ngx_int_t
ngx_http_passkey_job_revoke_handler(ngx_http_request_t *r)
{
    /* TODO: being written */
    return NGX_HTTP_NOT_IMPLEMENTED;
}


/*
 * Copyright (C) ngx_passkey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_passkey_module.h"


ngx_int_t
ngx_http_passkey_invoke_handler(ngx_http_request_t *r)
{
    ngx_http_passkey_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_passkey_module);

    if (!plcf->invoke) {
        return NGX_DECLINED;
    }

    /* TODO: being written */
    return NGX_HTTP_NOT_IMPLEMENTED;
}

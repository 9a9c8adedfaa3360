/*  =========================================================================
    pl_admin - is this request an operator's? (admin.* requests)
    =========================================================================
*/

#include "pl_admin.h"

#include <string.h>

bool
pl_admin_is (const parley_host_t *host, parley_request_t *request)
{
    const char *address = host->request_address (request);
    return !host->request_user (request) && address
        && strncmp (address, PL_ADMIN_ADDRESS_PREFIX, strlen (PL_ADMIN_ADDRESS_PREFIX)) == 0;
}

bool
pl_admin_check (const parley_host_t *host, parley_ctx_t *ctx, parley_request_t **request_p)
{
    if (pl_admin_is (host, *request_p))
        return true;
    host->reply_error (ctx, request_p, "forbidden",
                       "Only an operator's tool (parleyctl) may ask this.");
    return false;
}

const char *
pl_admin_name (const parley_host_t *host, parley_request_t *request)
{
    if (!pl_admin_is (host, request))
        return "";
    return host->request_address (request) + strlen (PL_ADMIN_ADDRESS_PREFIX);
}

/*  =========================================================================
    pl_admin - is this request an operator's? (admin.* requests)

    The broker routes a PARLEY_ROUTE_ADMIN route's requests only from an
    admin peer (parleyctl) and stamps them: no user, and the address
    "admin:" followed by the admin peer's instance (proto/ENVELOPE.md,
    "Admin peers"). A plugin checks both before it acts, so that a request
    that reached it any other way (a broker older than the flag, which
    treats the route as internal and lets plugins call it) changes nothing.

        if (!pl_admin_check (host, ctx, &request))
            return;             //  answered forbidden
        const char *who = pl_admin_name (host, request);   //  for the log
    =========================================================================
*/

#ifndef PL_ADMIN_H_INCLUDED
#define PL_ADMIN_H_INCLUDED

#include "parley_plugin.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The prefix of an admin request's stamped address
#define PL_ADMIN_ADDRESS_PREFIX "admin:"

//  True when the request is an admin peer's: no stamped user, and the
//  stamped address starts with PL_ADMIN_ADDRESS_PREFIX
bool
    pl_admin_is (const parley_host_t *host, parley_request_t *request);

//  As pl_admin_is; when false, answers the request forbidden (taking it:
//  *request_p is nullified) and returns false
bool
    pl_admin_check (const parley_host_t *host, parley_ctx_t *ctx,
                    parley_request_t **request_p);

//  The admin peer's instance ("parleyctl@host:pid"), for the log; borrowed
//  as the request's fields are. "" when the request is not an admin's.
const char *
    pl_admin_name (const parley_host_t *host, parley_request_t *request);

#ifdef __cplusplus
}
#endif

#endif

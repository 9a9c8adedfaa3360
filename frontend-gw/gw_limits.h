/*  =========================================================================
    gw_limits - how many connections the gateway holds, in all and per address

    Counts every client connection from accept to close, per source address
    and in all, and the WebSocket sessions of each address that are not
    signed in. The gateway asks it at accept (may this connection be served
    at all?) and at the WebSocket upgrade (may this address open one more
    session that is not signed in?). No sockets here: the gateway does the
    refusing.

        gw_limits_t *limits = gw_limits_new (18000, 1000, 64);
        gw_admit_t verdict;
        gw_limits_conn_t *conn = gw_limits_admit (limits, "127.0.0.1", &verdict);
        ...
        gw_limits_release (limits, &conn);
        gw_limits_destroy (&limits);
    =========================================================================
*/

#ifndef GW_LIMITS_H_INCLUDED
#define GW_LIMITS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Connections accepted past the global cap for /healthz only, so that a
//  full gateway still says how it is
#define GW_LIMITS_HEALTH_SLOTS  16

typedef enum {
    GW_ADMIT_OK = 0,            //  served
    GW_ADMIT_HEALTH_ONLY,       //  over the global cap: /healthz only, else 503
    GW_ADMIT_FULL,              //  over the global cap and its health slots: 503
    GW_ADMIT_ADDRESS            //  its address has too many connections: 429
} gw_admit_t;

typedef struct _gw_limits_t gw_limits_t;
typedef struct _gw_limits_conn_t gw_limits_conn_t;

//  Creates the counters: at most max_connections client connections in all,
//  max_per_address from one address, of which max_unauthenticated may be
//  WebSocket sessions not signed in. Caller owns return value.
gw_limits_t *
    gw_limits_new (size_t max_connections, size_t max_per_address,
                   size_t max_unauthenticated);

//  Destroys it (every connection released first); nullifies the reference
void
    gw_limits_destroy (gw_limits_t **self_p);

//  A connection just accepted from address (as a person writes it). Returns
//  its record, counted until gw_limits_release, when *verdict_p is OK or
//  HEALTH_ONLY; NULL otherwise. The limits own the record.
gw_limits_conn_t *
    gw_limits_admit (gw_limits_t *self, const char *address, gw_admit_t *verdict_p);

//  The connection closed: uncounts and destroys its record; nullifies it
void
    gw_limits_release (gw_limits_t *self, gw_limits_conn_t **conn_p);

//  True when the connection was admitted past the global cap (/healthz only)
bool
    gw_limits_health_only (gw_limits_conn_t *conn);

//  True when conn's address may open one more session that is not signed in
bool
    gw_limits_session_allowed (gw_limits_t *self, gw_limits_conn_t *conn);

//  Marks conn as a session that is (or no longer is) not signed in
void
    gw_limits_set_unauthenticated (gw_limits_t *self, gw_limits_conn_t *conn,
                                   bool unauthenticated);

//  Client connections counted now, in all and from address
size_t
    gw_limits_connections (gw_limits_t *self);
size_t
    gw_limits_address_connections (gw_limits_t *self, const char *address);

//  The limits it was made with
size_t
    gw_limits_max_connections (gw_limits_t *self);

#ifdef __cplusplus
}
#endif

#endif

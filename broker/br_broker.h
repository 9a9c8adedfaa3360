/*  =========================================================================
    br_broker - the Parley broker: peers, routes, sessions, delivery

    An actor (zactor) that owns one ROUTER socket bound to BR_BROKER_INPROC
    and to every endpoint in its configuration. It speaks the peer protocol of
    proto/ENVELOPE.md: registers peers by HELLO, heartbeats them, routes
    requests by type prefix (and shard key), stamps the session's user,
    answers unavailable/unauthenticated/unknown_type itself, keeps the session
    registry fed by gateways, and fans deliveries out one frame per gateway.
    Admin peers (parleyctl) reach only the admin.* routes, and the broker
    answers admin.online and admin.plugins itself (br_admin). Over tcp://
    only an operator's CURVE key (curve_admin) may say hello as admin.

        br_broker_config_t config = { .endpoints = eps, .endpoint_count = 1 };
        zactor_t *broker = br_broker_start (&config);
        //  NULL if the broker could not bind (it logs why)
        ...
        zactor_destroy (&broker);
    =========================================================================
*/

#ifndef BR_BROKER_H_INCLUDED
#define BR_BROKER_H_INCLUDED

#include <czmq.h>
#include "pl_curve.h"
#include "br_bstar.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Every broker binds this too, for in-process plugins and gateway
#define BR_BROKER_INPROC "inproc://parley-broker"

#define BR_BROKER_HEARTBEAT_DEFAULT         1000    //  ms
#define BR_BROKER_REQUEST_TIMEOUT_DEFAULT   5000    //  ms

typedef struct {
    const char *const *endpoints;   //  extra tcp:// or ipc:// endpoints to bind
    size_t endpoint_count;
    uint32_t heartbeat_ms;          //  0 = default; a peer silent 3 x this is dead
    uint32_t request_timeout_ms;    //  0 = default; unanswered -> unavailable
    const pl_curve_t *curve;        //  the broker's keys (pl_curve_broker_new), borrowed;
                                    //  every tcp:// endpoint then takes only the peers
                                    //  whose public certificates it allows
    bool insecure_peers;            //  without curve, bind tcp:// anyway (logs a warning);
                                    //  otherwise a tcp:// endpoint without keys is refused
    const char *curve_admin;        //  folder of the operators' public certificates, or
                                    //  NULL: over tcp:// only these keys may say hello
                                    //  as kind admin (ipc:// and inproc are not asked)
    const br_bstar_config_t *bstar; //  one of a standby pair (br_bstar.h), or NULL;
                                    //  its heartbeat and keys are the broker's
} br_broker_config_t;

//  The actor. args is a br_broker_config_t *, copied before the actor signals.
//  Binds inproc, then the ipc:// endpoints (socket file made owner-only,
//  0600, in a folder made 0700 if it had to be created), then the tcp://
//  ones with CURVE. Signals 0 on the pipe once bound, or -1 if an endpoint
//  could not be bound or a tcp:// one has no keys (it logs which and why); zactor_new returns either way, so a caller
//  checks with br_broker_start below. Ends on $TERM.
void
    br_broker_actor (zsock_t *pipe, void *args);

//  Starts the actor and waits for its signal. Returns the actor, or NULL
//  if it could not bind. Caller owns return value (zactor_destroy).
zactor_t *
    br_broker_start (const br_broker_config_t *config);

#ifdef __cplusplus
}
#endif

#endif

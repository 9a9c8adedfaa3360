/*  =========================================================================
    br_admin - the answers the broker gives an admin peer itself

    parleyctl (an admin peer: hello kind "admin", proto/ENVELOPE.md) asks the
    broker two things no plugin knows: who is online (admin.online: users
    and how many sessions each has bound) and which peers serve
    (admin.plugins: plugins with their instances and routes, gateways with
    their sessions). The broker's actor walks its registry into the plain
    arrays below; this class sorts, pages and packs them, so that the
    broker's loop keeps none of this logic and it can be tested alone.

    Ownership: the arrays and their strings are the caller's, borrowed for
    the call; the answer frame is the caller's (zframe_destroy).

        br_admin_user_t users [] = { { "alice", 2 }, { "bob", 1 } };
        zframe_t *answer = NULL;
        char message [160];
        if (br_admin_online (users, 2, body, size, &answer, message, sizeof message))
            ...answer bad_request with message
    =========================================================================
*/

#ifndef BR_ADMIN_H_INCLUDED
#define BR_ADMIN_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  admin.online pages: at most this many users in one answer (the default)
#define BR_ADMIN_ONLINE_MAX     1000
//  An answer stops at a whole entry past this many bytes, with more: true
#define BR_ADMIN_ANSWER_BYTES   (768 * 1024)

typedef struct {
    const char *name;               //  the user as bound
    size_t sessions;                //  sessions bound to the user
} br_admin_user_t;

typedef struct {
    const char *kind;               //  "plugin", "gateway" or "admin"
    const char *name;               //  plugin name, gateway nonce, admin name
    const char *instance;           //  may be NULL
    char *const *routes;            //  a plugin's route prefixes
    size_t route_count;
    size_t sessions;                //  a gateway's sessions
} br_admin_peer_t;

//  admin.online {after?, limit?}: the users sorted by lower-cased name
//  after 'after', at most limit (1 to BR_ADMIN_ONLINE_MAX), as {users:
//  [{name, sessions}], more}. Sorts users in place. Returns 0 and sets
//  *answer_p (caller owns it), or -1 with message for a bad request (or
//  out of memory).
int
    br_admin_online (br_admin_user_t *users, size_t count, const void *request, size_t size,
                     zframe_t **answer_p, char *message, size_t message_size);

//  admin.plugins {}: every peer sorted by kind, name and instance, as
//  {peers: [{kind, name, instance, routes, sessions}], more}. Sorts peers
//  in place. Returns 0 and sets *answer_p, or -1 when out of memory.
int
    br_admin_peers (br_admin_peer_t *peers, size_t count, zframe_t **answer_p);

#ifdef __cplusplus
}
#endif

#endif

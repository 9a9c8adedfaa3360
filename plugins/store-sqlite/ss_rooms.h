/*  =========================================================================
    ss_rooms - store-sqlite's rooms, members, invitations and timelines:
    store.room.*, store.member.*, store.invite.add and store.msg.*
    (proto/STORE.md)

    Ownership: ss_rooms_new returns an object the caller owns, destroyed
    with ss_rooms_destroy before the database and the users it was made
    with (both borrowed).
    =========================================================================
*/

#ifndef SS_ROOMS_H_INCLUDED
#define SS_ROOMS_H_INCLUDED

#include "ss_db.h"
#include "ss_indexer.h"
#include "ss_users.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_rooms_s ss_rooms_t;

//  Prepares the statements on db. Returns NULL after logging why not.
ss_rooms_t *
    ss_rooms_new (ss_db_t *db, ss_users_t *users, ss_indexer_t *indexer);

void
    ss_rooms_destroy (ss_rooms_t **self_p);

//  True for the request types ss_rooms_run serves
bool
    ss_rooms_serves (st_type_t type);

//  Runs one request inside the open transaction, as ss_users_run does
int
    ss_rooms_run (ss_rooms_t *self, st_request_t *request);

//  Packs a search's result (schema version 12) into packer: {room, entry},
//  the entry (room_id, seq) as store.msg.history answers it, its reactions
//  included. *found_p is false (nothing packed) when there is no such
//  entry. Returns SQLITE_OK or the failure's code.
int
    ss_rooms_pack_found (ss_rooms_t *self, msgpack_packer *packer, int64_t room_id,
                         uint64_t seq, bool *found_p);

#ifdef __cplusplus
}
#endif

#endif

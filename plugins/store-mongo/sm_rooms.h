/*  =========================================================================
    sm_rooms - rooms, members, invitations and room timelines

    See sm_rooms.c for the documents and why a membership change is one
    conditional update. msg.append comes in runs (sm_run_msg_append); the
    others are one round trip each: each returns 0, or -1 with error set
    when the server failed (the caller then fails the request).
    =========================================================================
*/

#ifndef SM_ROOMS_H_INCLUDED
#define SM_ROOMS_H_INCLUDED

#include "sm_store.h"

//  The document of a timeline entry of the room whose lower-cased name is
//  room_key
void
    sm_build_entry (const char *room_key, const st_entry_t *entry, bson_t *document);

//  Packs a timeline entry (proto/STORE.md) from its document, as it is now
void
    sm_pack_entry (msgpack_packer *packer, const bson_t *document);

int
    sm_run_room_create (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                        bson_error_t *error);

int
    sm_run_room_get (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                     bson_error_t *error);

//  The rooms the user belongs to, by lower-cased name, after the cursor:
//  the users_name_lower index
int
    sm_run_room_joined (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                        bson_error_t *error);

//  Public rooms the user is not in, most recently active first, after the
//  cursor (after_active, after): the public_by_active index
int
    sm_run_room_public (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                        bson_error_t *error);

//  Public rooms by lower-cased name, from a prefix, after the cursor: one
//  range of the public_by_name index (names are ASCII: every name that
//  starts with the prefix sorts below the prefix followed by DEL)
int
    sm_run_room_directory (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                           bson_error_t *error);

//  store.room.all {after?, limit?}: every room, for the operator
int
    sm_run_room_all (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                     bson_error_t *error);

int
    sm_run_room_list (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                      bson_error_t *error);

int
    sm_run_room_delete (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                        bson_error_t *error);

int
    sm_run_member_add (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                       bson_error_t *error);

int
    sm_run_member_remove (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                          bson_error_t *error);

//  Room administration (schema version 10): room.update changes the
//  settings given and appends its notice; room.unban lifts a ban
int
    sm_run_room_update (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                        bson_error_t *error);

int
    sm_run_room_unban (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                       bson_error_t *error);

int
    sm_run_member_list (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                        bson_error_t *error);

int
    sm_run_invite_add (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                       bson_error_t *error);

int
    sm_run_msg_history (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                        bson_error_t *error);

int
    sm_run_msg_append (sm_store_t *self, sm_pending_t *first, sm_pending_t *end);

//  The private rooms a user is invited to (store.room.invited)
int
    sm_run_room_invited (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                         bson_error_t *error);

//  Moves a member's read marker (store.member.read)
int
    sm_run_member_read (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                        bson_error_t *error);

#endif

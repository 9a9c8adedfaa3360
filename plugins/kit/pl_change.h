/*  =========================================================================
    pl_change - a timeline's changes: replies, edits, deletions, reactions

    PROTOCOL.md 1.1, "Replies, edits, deletions and reactions", for the
    plugins whose timelines take them (rooms: a room; pm: a conversation),
    written once:
    - what a request names: a send's reply_to; an edit's, deletion's or
      reaction's target (its 'seq'); a reaction's emoji and on (true when
      absent), read and checked (bad_request) as the lane takes it in;
    - the fields a change adds to a store entry and to a client's entry,
      which have the same names (target, emoji, on, reply_to);
    - a message as the store answers it now: edited (its time as the
      protocol writes times), deleted, reactions, packed for the client and
      measured as JSON without packing;
    - the store's refusal of one element of a run (pl_lane's refused) as
      the client's answer: no_such_message, forbidden, ok without seq for a
      reaction that changes nothing, bad_request past the reactions' cap.

    A value the plugin keeps in its request's arguments; nothing to free.

        pl_change_t change;
        if (!pl_change_read (&change, PL_CHANGE_REACTION, map, intake))
            return false;                               //  refused
        ...the store entry: kind, seq, user, ts, then
        msgpack_pack_map (packer, 5 + pl_change_fields (&change)); ...
        pl_change_pack (&change, packer);
    =========================================================================
*/

#ifndef PL_CHANGE_H_INCLUDED
#define PL_CHANGE_H_INCLUDED

#include "pl_file.h"
#include "pl_lane.h"
#include "pl_limits.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  What an entry of a timeline does (a system entry is the plugin's own)
typedef enum {
    PL_CHANGE_MESSAGE = 0,          //  a message (a send), maybe a reply
    PL_CHANGE_EDIT,
    PL_CHANGE_DELETE,
    PL_CHANGE_REACTION
} pl_change_kind_t;

typedef struct {
    pl_change_kind_t kind;
    uint64_t target;                //  edit, delete, reaction: the message's seq
    uint64_t reply_to;              //  message: the seq it replies to; 0: none
    char emoji [PL_EMOJI_MAX + 1];  //  reaction
    bool on;                        //  reaction: added (true) or taken back
    pl_file_t file;                 //  message: the file it carries (PROTOCOL.md 1.1,
                                    //  "Files", checked by pl_file); id "": none
} pl_change_t;

//  The kind's name as entries carry it: "message", "edit", "delete",
//  "reaction"
const char *
    pl_change_kind_name (pl_change_kind_t kind);

//  Reads the fields a request of kind names, from its map: reply_to? and
//  file? (the file pl_file_checked has, for a send pl_file checked) for a
//  message; seq for the others, emoji and on? for a reaction. Returns
//  true, or false with intake's refusal (bad_request). The text is the
//  plugin's to read.
bool
    pl_change_read (pl_change_t *self, pl_change_kind_t kind, const msgpack_object *map,
                    pl_lane_intake_t *intake);

//  Reads a store entry's change (kind, target, emoji, on, reply_to). Returns
//  false for an entry that is none of the four kinds (a system entry).
bool
    pl_change_from_entry (pl_change_t *self, const msgpack_object *entry);

//  The fields pl_change_pack adds to an open map: target, emoji, on,
//  reply_to, file, those the kind has (0 for a plain message)
uint32_t
    pl_change_fields (const pl_change_t *self);

void
    pl_change_pack (const pl_change_t *self, msgpack_packer *packer);

//  Their JSON bytes as the client gets them, a comma before each
size_t
    pl_change_json_size (const pl_change_t *self);

//  A message as the store has it now (PROTOCOL.md: "as it is now"): the
//  fields pl_change_pack_state adds to an open map: edited (a time), deleted
//  (true), reactions ([{emoji, count, users}], as the store orders them),
//  file ({id, name, size, type}, schema version 13), those the entry has
uint32_t
    pl_change_state_fields (const msgpack_object *entry);

void
    pl_change_pack_state (const msgpack_object *entry, msgpack_packer *packer);

//  Their JSON bytes as the client gets them, a comma before each
size_t
    pl_change_state_json_size (const msgpack_object *entry);

//  Answers op, an element of a run the store refused with code (pl_lane's
//  refused): where names the timeline ("the room 'general'"), deleters
//  who may delete a message ("its author or the room's owner"). An unknown
//  code is a failure (internal).
void
    pl_change_refused (pl_lane_t *lane, pl_lane_key_t *key, pl_lane_op_t *op,
                       const pl_change_t *change, const char *code, const char *where,
                       const char *deleters);

#ifdef __cplusplus
}
#endif

#endif

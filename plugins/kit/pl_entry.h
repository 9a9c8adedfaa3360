/*  =========================================================================
    pl_entry - a timeline entry as clients see it (PROTOCOL.md 1.1): a
    room's entries (messages, system notices, edits, deletions, reactions)
    and a conversation's, packed from their parts or from the store's entry
    (proto/STORE.md). Shared by rooms (room.history, live entries), pm
    (pm.history, the "pm" event) and search (its results), so that an entry
    reads the same wherever a client gets it.

    Plain functions of their input: nothing kept, nothing allocated but a
    copy of a store text freed before they return. msgpack-c only.
    =========================================================================
*/

#ifndef PL_ENTRY_H_INCLUDED
#define PL_ENTRY_H_INCLUDED

#include "pl_change.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Bytes of a name read from a store entry (room and pm entries)
#define PL_ENTRY_NAME_MAX       260

//  The text of a system entry, word for word (PROTOCOL.md): "ann has joined
//  the room lobby.", a kick's with who did it, by (names are at most 260
//  bytes here: the buffer holds any three)
#define PL_ENTRY_SYSTEM_MESSAGE_SIZE 900

//  The members a message mentions: as the store gave them (an array of
//  names) or as a send found them (names); absent when count is 0
typedef struct {
    const msgpack_object *array;    //  or NULL
    char **names;                   //  used when array is NULL
    size_t count;
} pl_entry_mentions_t;

//  The event of a system entry as clients get it: one of the four, a
//  leave for any other (the store holds only these)
const char *
    pl_entry_system_event (const char *event);

//  Writes the text of a system entry into message
//  (PL_ENTRY_SYSTEM_MESSAGE_SIZE bytes), word for word (PROTOCOL.md)
void
    pl_entry_system_message (char *message, const char *event, const char *user, const char *by,
        const char *room);

//  The mentions of one of the store's entries (count 0 for none)
pl_entry_mentions_t
    pl_entry_store_mentions (const msgpack_object *entry);

//  Packs "mentions": [...] as the next member of an open map
void
    pl_entry_pack_mentions (msgpack_packer *packer, const pl_entry_mentions_t *mentions);

//  Packs type, room, seq and from: what a message and a change begin with
void
    pl_entry_pack_head (msgpack_packer *packer, const char *type, const char *room, uint64_t seq,
        const char *user);

//  Packs an edit, a deletion or a reaction as clients see it (PROTOCOL.md
//  1.1): type, room, seq, from, the edit's text, ts, and the change's target
//  (emoji and on of a reaction)
void
    pl_entry_pack_change (msgpack_packer *packer, const char *room, uint64_t seq, const char *user,
        int64_t ts, const char *text, size_t text_size, const pl_change_t *change);

//  Packs a system entry as clients see it: its notice, and by (who did it)
//  when given
void
    pl_entry_pack_system (msgpack_packer *packer, const char *room, uint64_t seq, const char *event,
        const char *user, const char *by, int64_t ts);

//  Packs an entry as clients see it, from its parts (mentions only for a
//  message). change: the entry's (NULL for a system entry); state: the
//  store's entry of a message as it is now (edited, deleted, reactions),
//  NULL for one just sent.
void
    pl_entry_pack (msgpack_packer *packer, const char *room, uint64_t seq, const char *kind,
        const char *user, int64_t ts, const char *text, size_t text_size,
        const char *event, const char *nonce, const pl_entry_mentions_t *mentions,
        const pl_change_t *change, const msgpack_object *state);

//  The text of one of the store's entries, in place (NULL for none)
const char *
    pl_entry_text (const msgpack_object *entry, size_t *size_p);

//  Packs one of the store's entries as the client's entry
void
    pl_entry_pack_room (msgpack_packer *packer, const char *room,
        const msgpack_object *entry);

//  Packs from, to and seq: what every entry of a conversation names
void
    pl_entry_pack_parties (msgpack_packer *packer, const char *from, const char *to, uint64_t seq);

//  Packs a message as clients see it: the "pm" event, or an entry of
//  pm.history and pm.conversations (without type); with its nonce if any,
//  its reply_to (change), and as it is now (state: the store's entry:
//  edited, deleted, reactions; NULL for one just sent)
void
    pl_entry_pack_pm_message (msgpack_packer *packer, bool event, const char *from, const char *to,
        uint64_t seq, const char *text, int64_t ts, const char *nonce,
        const pl_change_t *change, const msgpack_object *state);

//  Packs an edit, a deletion or a reaction as clients see it, live and in
//  pm.history alike (CLIENT-PROTOCOL.md): type, from (who made it), to (the
//  other party), seq, the edit's text, ts, and the change's target (emoji
//  and on of a reaction)
void
    pl_entry_pack_pm_change (msgpack_packer *packer, const char *from, const char *to, uint64_t seq,
        const char *text, int64_t ts, const pl_change_t *change);

//  Packs one of the store's pm entries as the client's: a message as it is
//  now, or a change
void
    pl_entry_pack_pm (msgpack_packer *packer, const msgpack_object *entry);

#ifdef __cplusplus
}
#endif

#endif

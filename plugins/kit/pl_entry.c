/*  =========================================================================
    pl_entry - a timeline entry as clients see it
    =========================================================================
*/

#include "pl_entry.h"
#include "pl_body.h"
#include "pl_limits.h"
#include "pl_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The event of a system entry as clients get it: one of the four, a
//  leave for any other (the store holds only these)
const char *
pl_entry_system_event (const char *event)
{
    static const char *events [] = { "join", "update", "kick" };
    for (size_t index = 0; event && index < 3; index++)
        if (strcmp (event, events [index]) == 0)
            return events [index];
    return "leave";
}

void
pl_entry_system_message (char *message, const char *event, const char *user, const char *by,
                  const char *room)
{
    event = pl_entry_system_event (event);
    if (strcmp (event, "kick") == 0)
        snprintf (message, PL_ENTRY_SYSTEM_MESSAGE_SIZE, "%.260s has been removed from the room %.260s"
                  " by %.260s.", user, room, by? by: "");
    else
        snprintf (message, PL_ENTRY_SYSTEM_MESSAGE_SIZE, strcmp (event, "join") == 0
                  ? "%.260s has joined the room %.260s." : strcmp (event, "update") == 0
                  ? "%.260s has changed the settings of the room %.260s."
                  : "%.260s has left the room %.260s.", user, room);
}


pl_entry_mentions_t
pl_entry_store_mentions (const msgpack_object *entry)
{
    const msgpack_object *array = pl_body_field (entry, "mentions");
    if (!array || array->type != MSGPACK_OBJECT_ARRAY)
        return (pl_entry_mentions_t) { NULL, NULL, 0 };
    return (pl_entry_mentions_t) { array, NULL, array->via.array.size };
}

//  Packs "mentions": [...] as the next member of an open map
void
pl_entry_pack_mentions (msgpack_packer *packer, const pl_entry_mentions_t *mentions)
{
    pl_body_pack_str (packer, "mentions");
    if (mentions->array) {
        msgpack_pack_object (packer, *mentions->array);
        return;
    }
    msgpack_pack_array (packer, (uint32_t) mentions->count);
    for (size_t index = 0; index < mentions->count; index++)
        pl_body_pack_str (packer, mentions->names [index]);
}

//  Packs type, room, seq and from: what a message and a change begin with
void
pl_entry_pack_head (msgpack_packer *packer, const char *type, const char *room, uint64_t seq,
                   const char *user)
{
    pl_body_pack_str (packer, "type");
    pl_body_pack_str (packer, type);
    pl_body_pack_str (packer, "room");
    pl_body_pack_str (packer, room);
    pl_body_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, seq);
    pl_body_pack_str (packer, "from");
    pl_body_pack_str (packer, user);
}

//  Packs an edit, a deletion or a reaction as clients see it (PROTOCOL.md
//  1.1): type, room, seq, from, the edit's text, ts, and the change's target
//  (emoji and on of a reaction)
void
pl_entry_pack_change (msgpack_packer *packer, const char *room, uint64_t seq, const char *user,
                     int64_t ts, const char *text, size_t text_size, const pl_change_t *change)
{
    bool edit = change->kind == PL_CHANGE_EDIT;
    msgpack_pack_map (packer, 5 + edit + pl_change_fields (change));
    pl_entry_pack_head (packer, pl_change_kind_name (change->kind), room, seq, user);
    if (edit) {
        pl_body_pack_str (packer, "text");
        msgpack_pack_str_with_body (packer, text? text: "", text? text_size: 0);
    }
    pl_body_pack_str (packer, "ts");
    pl_body_pack_time (packer, ts);
    pl_change_pack (change, packer);
}

//  Packs a system entry as clients see it: its notice, and by (who did it)
//  when given
void
pl_entry_pack_system (msgpack_packer *packer, const char *room, uint64_t seq, const char *event,
                     const char *user, const char *by, int64_t ts)
{
    char message [PL_ENTRY_SYSTEM_MESSAGE_SIZE];
    pl_entry_system_message (message, event, user, by, room);
    msgpack_pack_map (packer, by && *by? 8: 7);
    pl_body_pack_str (packer, "type");
    pl_body_pack_str (packer, "system");
    pl_body_pack_str (packer, "event");
    pl_body_pack_str (packer, pl_entry_system_event (event));
    pl_body_pack_str (packer, "room");
    pl_body_pack_str (packer, room);
    pl_body_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, seq);
    pl_body_pack_str (packer, "user");
    pl_body_pack_str (packer, user);
    if (by && *by) {
        pl_body_pack_str (packer, "by");
        pl_body_pack_str (packer, by);
    }
    pl_body_pack_str (packer, "ts");
    pl_body_pack_time (packer, ts);
    pl_body_pack_str (packer, "message");
    pl_body_pack_str (packer, message);
}

//  Packs an entry as clients see it, from its parts (mentions only for a
//  message). change: the entry's (NULL for a system entry); state: the
//  store's entry of a message as it is now (edited, deleted, reactions),
//  NULL for one just sent.
void
pl_entry_pack (msgpack_packer *packer, const char *room, uint64_t seq, const char *kind,
              const char *user, int64_t ts, const char *text, size_t text_size,
              const char *event, const char *nonce, const pl_entry_mentions_t *mentions,
              const pl_change_t *change, const msgpack_object *state)
{
    if (change && change->kind != PL_CHANGE_MESSAGE)
        pl_entry_pack_change (packer, room, seq, user, ts, text, text_size, change);
    else
    if (strcmp (kind, "message") == 0) {
        bool mentioning = mentions && mentions->count > 0;
        //  A plain message sent now adds nothing to what it always packed
        uint32_t more = (change? pl_change_fields (change): 0)
                      + (state? pl_change_state_fields (state): 0);
        msgpack_pack_map (packer, 6 + (nonce && *nonce? 1: 0) + (mentioning? 1: 0) + more);
        pl_entry_pack_head (packer, "message", room, seq, user);
        pl_body_pack_str (packer, "text");
        msgpack_pack_str_with_body (packer, text? text: "", text? text_size: 0);
        pl_body_pack_str (packer, "ts");
        pl_body_pack_time (packer, ts);
        if (nonce && *nonce) {
            pl_body_pack_str (packer, "nonce");
            pl_body_pack_str (packer, nonce);
        }
        if (mentioning)
            pl_entry_pack_mentions (packer, mentions);
        if (more && change)
            pl_change_pack (change, packer);
        if (more && state)
            pl_change_pack_state (state, packer);
    }
    else
        pl_entry_pack_system (packer, room, seq, event, user, NULL, ts);
}

//  The text of one of the store's entries, in place (NULL for none)
const char *
pl_entry_text (const msgpack_object *entry, size_t *size_p)
{
    const msgpack_object *text = pl_body_field (entry, "text");
    if (!text || text->type != MSGPACK_OBJECT_STR) {
        *size_p = 0;
        return NULL;
    }
    *size_p = text->via.str.size;
    return text->via.str.ptr;
}

//  Packs one of the store's entries as the client's entry
void
pl_entry_pack_room (msgpack_packer *packer, const char *room,
                              const msgpack_object *entry)
{
    char kind [16], user [260], event [16], nonce [PL_NONCE_MAX + 1];
    pl_body_copy (entry, "kind", kind, sizeof kind);
    pl_body_copy (entry, "user", user, sizeof user);
    pl_body_copy (entry, "event", event, sizeof event);
    pl_body_copy (entry, "nonce", nonce, sizeof nonce);
    if (strcmp (kind, "system") == 0) {
        char by [260];
        pl_body_copy (entry, "by", by, sizeof by);
        pl_entry_pack_system (packer, room, (uint64_t) pl_body_int (entry, "seq"), event, user,
                             by, pl_body_int (entry, "ts"));
        return;
    }
    size_t text_size;
    const char *text = pl_entry_text (entry, &text_size);
    pl_entry_mentions_t mentions = pl_entry_store_mentions (entry);
    pl_change_t change;
    bool changed = pl_change_from_entry (&change, entry);
    pl_entry_pack (packer, room, (uint64_t) pl_body_int (entry, "seq"), kind, user,
                  pl_body_int (entry, "ts"), text, text_size, event, nonce, &mentions,
                  changed? &change: NULL, entry);
}

//  Packs from, to and seq: what every entry of a conversation names
void
pl_entry_pack_parties (msgpack_packer *packer, const char *from, const char *to, uint64_t seq)
{
    pl_body_pack_str (packer, "from");
    pl_body_pack_str (packer, from);
    pl_body_pack_str (packer, "to");
    pl_body_pack_str (packer, to);
    pl_body_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, seq);
}

//  Packs a message as clients see it: the "pm" event, or an entry of
//  pm.history and pm.conversations (without type); with its nonce if any,
//  its reply_to (change), and as it is now (state: the store's entry:
//  edited, deleted, reactions; NULL for one just sent)
void
pl_entry_pack_pm_message (msgpack_packer *packer, bool event, const char *from, const char *to,
                uint64_t seq, const char *text, int64_t ts, const char *nonce,
                const pl_change_t *change, const msgpack_object *state)
{
    bool has_nonce = nonce && *nonce;
    msgpack_pack_map (packer, (event? 6: 5) + has_nonce + pl_change_fields (change)
                              + (state? pl_change_state_fields (state): 0));
    if (event) {
        pl_body_pack_str (packer, "type");
        pl_body_pack_str (packer, "pm");
    }
    pl_entry_pack_parties (packer, from, to, seq);
    pl_body_pack_str (packer, "text");
    pl_body_pack_str (packer, text);
    pl_body_pack_str (packer, "ts");
    pl_body_pack_time (packer, ts);
    if (has_nonce) {
        pl_body_pack_str (packer, "nonce");
        pl_body_pack_str (packer, nonce);
    }
    pl_change_pack (change, packer);
    if (state)
        pl_change_pack_state (state, packer);
}

//  Packs an edit, a deletion or a reaction as clients see it, live and in
//  pm.history alike (CLIENT-PROTOCOL.md): type, from (who made it), to (the
//  other party), seq, the edit's text, ts, and the change's target (emoji
//  and on of a reaction)
void
pl_entry_pack_pm_change (msgpack_packer *packer, const char *from, const char *to, uint64_t seq,
               const char *text, int64_t ts, const pl_change_t *change)
{
    bool edit = change->kind == PL_CHANGE_EDIT;
    msgpack_pack_map (packer, 5 + edit + pl_change_fields (change));
    pl_body_pack_str (packer, "type");
    pl_body_pack_str (packer, pl_change_kind_name (change->kind));
    pl_entry_pack_parties (packer, from, to, seq);
    if (edit) {
        pl_body_pack_str (packer, "text");
        pl_body_pack_str (packer, text? text: "");
    }
    pl_body_pack_str (packer, "ts");
    pl_body_pack_time (packer, ts);
    pl_change_pack (change, packer);
}

//  Packs one of the store's pm entries as the client's: a message as it is
//  now, or a change
void
pl_entry_pack_pm (msgpack_packer *packer, const msgpack_object *entry)
{
    char from [PL_ENTRY_NAME_MAX], to [PL_ENTRY_NAME_MAX], nonce [PL_NONCE_MAX + 1];
    pl_body_copy (entry, "from", from, sizeof from);
    pl_body_copy (entry, "to", to, sizeof to);
    pl_body_copy (entry, "nonce", nonce, sizeof nonce);
    char *text = NULL;
    pl_body_str (entry, "text", &text);
    uint64_t seq = (uint64_t) pl_body_int (entry, "seq");
    int64_t ts = pl_body_int (entry, "ts");
    pl_change_t change;
    if (!pl_change_from_entry (&change, entry))
        change = (pl_change_t) { .kind = PL_CHANGE_MESSAGE };
    if (change.kind == PL_CHANGE_MESSAGE)
        pl_entry_pack_pm_message (packer, false, from, to, seq, text? text: "", ts, nonce, &change, entry);
    else
        pl_entry_pack_pm_change (packer, from, to, seq, text, ts, &change);
    free (text);
}

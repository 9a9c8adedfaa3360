/*  =========================================================================
    sm_validate - a store request's fields, read and checked

    Reads the body of a queued request into its slot (sm_pending_t) as
    proto/STORE.md defines it, or fails the request with bad_request and a
    sentence that names the field. The slot keeps the unpacked body: the
    runs of msg.append and pm.append read their entries again from it.
    =========================================================================
*/

#ifndef SM_VALIDATE_H_INCLUDED
#define SM_VALIDATE_H_INCLUDED

#include "sm_store.h"

//  The value of key in map, or NULL
const msgpack_object *
    sm_field (const msgpack_object *map, const char *key);

//  Reads one timeline entry map (msg.append's 'entry' or an element of its
//  'entries', member.add/remove's 'entry') into entry. Returns 0, or -1
//  after failing pending with a sentence that does not say where the entry
//  was: the caller puts that in front (s_fail_where).
int
    sm_entry_read (sm_pending_t *pending, const msgpack_object *value, sm_entry_t *entry);

//  Reads one private message (pm.append's own fields, or an element of its
//  'messages') into message: its 'from' must be one of the request's two
//  users, read before. Returns 0, or -1 after failing pending with a
//  sentence that does not say where the message was.
int
    sm_pm_message_read (sm_pending_t *pending, const msgpack_object *value,
                        sm_pm_message_t *message);

//  The seqs of msg.append's and pm.append's runs: the first, the last
uint64_t
    sm_first_seq (const sm_pending_t *pending);

uint64_t
    sm_last_seq (const sm_pending_t *pending);

//  The timeline a msg.append or pm.append request appends to: a room's, in
//  messages by 'room', or a conversation's, in pm_messages by 'conv'
const char *
    sm_timeline_key (const sm_pending_t *pending);

const char *
    sm_timeline_field (const sm_pending_t *pending);

//  Validates the fields of pending->op. Returns 0, or -1 with pending failed.
int
    sm_validate (sm_pending_t *pending, const uint8_t *body, size_t size);

#endif

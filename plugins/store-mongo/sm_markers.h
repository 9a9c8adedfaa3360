/*  =========================================================================
    sm_markers - the read markers of room members, and the counts after them

    markers   {room (name_lower), user (name_lower), read_seq}
                                    unique index on (room, user)

    A member's marker is a document of its own, next to the membership (the
    room document's users): the rooms plugin moves it with room.read, a
    join sets it to the join's entry, a member's own message moves it to
    that message (in msg.append's run: no round trip of the caller's own).
    A member without a marker document (a room of schema 5 or before) has
    read everything: its marker is the room's newest entry.

    The counts after a marker are ranges of indexes of messages: the
    unread messages one range of (room, seq), the mentions one range of
    (room, mentioned, seq), never a scan of the room's timeline.
    =========================================================================
*/

#ifndef SM_MARKERS_H_INCLUDED
#define SM_MARKERS_H_INCLUDED

#include "sm_store.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Sets user_key's marker of the room to seq (forward_only: only if that
//  is higher), creating it if need be. Returns 0, or -1 with error set.
int
    sm_marker_set (sm_store_t *self, const char *room_key, const char *user_key,
                   int64_t seq, bool forward_only, bson_error_t *error);

//  Reads user_key's marker of the room into *seq_p. Returns 1, 0 when it
//  has no marker document, or -1 with error set.
int
    sm_marker_get (sm_store_t *self, const char *room_key, const char *user_key,
                   int64_t *seq_p, bson_error_t *error);

//  The markers of user_key in the rooms of count room documents, in one
//  find ($in on the unique index): markers [i] gets the one of rooms [i],
//  -1 where there is none. Returns 0, or -1 with error set.
int
    sm_markers_of (sm_store_t *self, const char *user_key, bson_t *const *rooms,
                   uint32_t count, int64_t *markers, bson_error_t *error);

//  Removes the marker of user_key (a leave), or every marker of the room
//  when user_key is NULL (a delete, a create over a stale timeline).
//  Returns 0, or -1 with error set.
int
    sm_markers_drop (sm_store_t *self, const char *room_key, const char *user_key,
                     bson_error_t *error);

//  Moves each sender's marker to its newest message of the run [first,
//  end) of msg.append requests, in one unordered bulk. Its failure is
//  logged and leaves the appended entries (and their ok) standing.
void
    sm_markers_advance (sm_store_t *self, sm_pending_t *first, sm_pending_t *end);

//  Counts the messages of the room after read_seq that user (as
//  registered) did not send, and those of them that mention user_key.
//  Returns 0, or -1 with error set.
int
    sm_marker_counts (sm_store_t *self, const char *room_key, const char *user,
                      const char *user_key, int64_t read_seq, int64_t *unread_p,
                      int64_t *mentions_p, bson_error_t *error);

//  Appends an entry's mentions to its document: 'mentions', the names as
//  the request gave them, and 'mentioned', those but the sender's,
//  lower-cased (the index's key). Nothing when the entry has none.
void
    sm_entry_mentions_build (const st_entry_t *entry, bson_t *document);

//  The 'mentions' of an entry's document as a msgpack array into buffer
//  (initialized by the caller), and as entry->mentions_packed; nothing
//  when the document has none
void
    sm_entry_mentions_read (const bson_t *document, msgpack_sbuffer *buffer,
                            st_entry_t *entry);

#ifdef __cplusplus
}
#endif

#endif

/*  =========================================================================
    st_reply - the parts of proto/STORE.md's answers, packed once for every
    backend

    A backend reads a row or a document into one of the plain structs
    below and packs it with these, so that both stores answer the same
    maps with the same keys in the same order. Every string is borrowed
    for the call only (st_text_t, st_request.h): nothing here keeps or
    frees what it is given. The packer is the request's
    (st_request_packer) or a list's (st_list.h). A C string is packed with
    the kit's pl_body_pack_str.
    =========================================================================
*/

#ifndef ST_REPLY_H_INCLUDED
#define ST_REPLY_H_INCLUDED

#include "st_request.h"

#ifdef __cplusplus
extern "C" {
#endif

//  A user, as store.user.get and store.user.list answer it
typedef struct {
    st_text_t name;                 //  as registered
    st_text_t password_hash;        //  user.get only: data NULL leaves it out
    int64_t created_at;
    bool seen;                      //  false: last_seen is nil
    int64_t last_seen;
    st_text_t state;                //  "active", "disabled", "deleted"; data NULL
                                    //  packs "active"
} st_user_t;

//  A room map (proto/STORE.md, "room map")
typedef struct {
    st_text_t name;                 //  as created
    st_text_t description;          //  may be empty
    bool is_private;
    uint64_t max_participants;
    st_text_t owner;                //  as registered
    int64_t created_at;
    uint64_t members;               //  the count
    uint64_t last_seq;              //  0 for none
    int64_t active_at;
    int joined;                     //  -1 leaves 'joined' out, else 0 or 1
    //  store.room.joined (schema version 7): the user's read marker and
    //  its counts; store.room.invited: invited
    bool has_marker;                //  false leaves the three out
    uint64_t read_seq;
    uint64_t unread;                //  messages after read_seq not the user's
    uint64_t mentions;              //  of those, the ones that mention the user
    bool invited;                   //  true adds 'invited': true
    //  store.room.public, .directory, .list: the user is banned from this
    //  public room (a ban makes no member, so never with joined)
    bool banned;                    //  true adds 'banned': true
} st_room_t;

//  A pm entry as answered (proto/STORE.md, "pm entry")
typedef struct {
    uint64_t seq;
    st_text_t from;                 //  as registered
    st_text_t to;                   //  as registered
    st_text_t text;
    int64_t ts;
    st_text_t nonce;                //  data NULL: none
    st_change_t change;             //  its kind, a change's fields, a message's state
} st_pm_entry_t;

//  An element of an append's run that the checks refused (schema version
//  9, "Timeline changes"): the run's element at index and why, one of the
//  codes below
typedef struct {
    uint32_t index;
    const char *code;
} st_refusal_t;

#define ST_NO_SUCH_MESSAGE      "no_such_message"
#define ST_FORBIDDEN            "forbidden"
#define ST_UNCHANGED            "unchanged"
#define ST_TOO_MANY_REACTIONS   "too_many_reactions"
#define ST_NO_SUCH_FILE         "no_such_file"      //  schema version 13

//  A repeated nonce of an append's run: the run's element at index, and
//  the seq and ts its nonce was first stored with
typedef struct {
    uint32_t index;
    uint64_t seq;
    int64_t ts;
} st_duplicate_t;

//  A string from a borrowed text; data NULL packs ""
void
    st_reply_text (msgpack_packer *packer, st_text_t text);

void
    st_reply_bool (msgpack_packer *packer, bool value);

//  {name, [password_hash,] created_at, last_seen, state}
void
    st_reply_user (msgpack_packer *packer, const st_user_t *user);

//  The room map, with 'joined' when room->joined >= 0, the marker's
//  read_seq, unread and mentions when has_marker, 'invited' when invited,
//  'banned' when banned
void
    st_reply_room (msgpack_packer *packer, const st_room_t *room);

//  A timeline entry {seq, kind, user, ts, then by kind: a message's text,
//  nonce, mentions, reply_to and its state now (edited, deleted,
//  reactions), a system entry's event and by, a change's target, an
//  edit's text, a reaction's emoji and on}; what is not given is left out
void
    st_reply_entry (msgpack_packer *packer, const st_entry_t *entry);

//  A pm entry {seq, kind, from, to, text, ts, then a message's nonce,
//  reply_to and state now, a change's target, a reaction's emoji and on}
void
    st_reply_pm_entry (msgpack_packer *packer, const st_pm_entry_t *entry);

//  A conversation of store.pm.conversations: {with, last, unread, read_seq,
//  last_seq} (the last two from schema version 7; last is the newest
//  message, last_seq the newest entry's seq from schema version 9)
void
    st_reply_conversation (msgpack_packer *packer, st_text_t with, const st_pm_entry_t *last,
                           uint64_t unread, uint64_t read_seq, uint64_t last_seq);

//  store.pm.read's answer {unread, read_seq}
void
    st_reply_pm_read (st_request_t *request, uint64_t unread, uint64_t read_seq);

//  store.info's answer {backend, schema_version}
void
    st_reply_info (st_request_t *request, const char *backend, uint32_t schema_version);

//  The one-field answers: {key: value}
void
    st_reply_uint (st_request_t *request, const char *key, uint64_t value);
void
    st_reply_name (st_request_t *request, const char *key, st_text_t name);

//  An append that stored nothing for its repeated nonces:
//  {duplicates: [{index, seq, ts}]} (clears what was packed before)
void
    st_reply_duplicates (st_request_t *request, const st_duplicate_t *duplicates,
                         uint32_t count);

//  An append that stored nothing for its refused elements and repeated
//  nonces: {refused: [{index, code}], duplicates: [{index, seq, ts}]},
//  each only when it has elements (clears what was packed before)
void
    st_reply_refused (st_request_t *request, const st_refusal_t *refused, uint32_t count,
                      const st_duplicate_t *duplicates, uint32_t duplicate_count);

//  store.msg.nonce's and store.pm.nonce's answer: {duplicate, seq, ts}
//  when found, {duplicate: false} when not
void
    st_reply_nonce (st_request_t *request, bool found, uint64_t seq, int64_t ts);

//  The common not_found sentences, so that both stores say them alike
void
    st_reply_no_user (st_request_t *request, st_text_t name);
void
    st_reply_no_room (st_request_t *request, st_text_t name);
void
    st_reply_no_token (st_request_t *request);

//  --------------------------------------------------------------------------
//  Files (schema version 13)

//  A file map {id, name, size, type}: a message's 'file', file.commit's
void
    st_reply_file_ref (msgpack_packer *packer, const st_file_ref_t *file);

//  store.file.create's and store.file.commit's answer: {file: {id, name,
//  size, type}}
void
    st_reply_file (st_request_t *request, const st_file_ref_t *file);

//  store.file.get's answer: {id, user, name, type, size, ts, complete}
void
    st_reply_file_get (st_request_t *request, const st_file_ref_t *file, st_text_t user,
                       int64_t ts, bool complete);

//  store.file.read's answer: {name, type, size, data (a bin of size bytes)}
void
    st_reply_file_data (st_request_t *request, const st_file_ref_t *file, const void *data,
                        size_t size);

//  not_found: "No such file."
void
    st_reply_no_file (st_request_t *request);

#ifdef __cplusplus
}
#endif

#endif

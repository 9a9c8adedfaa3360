/*  =========================================================================
    st_request - one store.* request of proto/STORE.md, parsed and validated

    The store front reads a request's body ONCE, here, into a typed request:
    one C struct per request type, every field checked against
    proto/STORE.md (sizes, ranges, required fields, the runs' seqs). A
    backend (store-sqlite, store-mongo) never reads msgpack: it gets an
    st_request_t whose fields are valid, runs it, and sets its answer
    through st_request_fail or st_request_packer (st_reply.h packs the
    answer's parts). The front answers every request, in the order
    received, after the backend's run returns.

    Ownership: st_request_new returns a request the caller owns, destroyed
    with st_request_destroy. It owns the unpacked body: every st_text_t in
    it borrows from that body and is valid until the request is destroyed.
    It owns the arrays of runs (user.seen's users, msg.append's entries,
    pm.append's messages). The parley_request_t it carries is the host's,
    lent until the front replies.

    A request refused at validation is returned all the same, failed with
    bad_request (st_request_code is set): it keeps its place in the order
    of answers. A backend skips it (st_request_live is false).
    =========================================================================
*/

#ifndef ST_REQUEST_H_INCLUDED
#define ST_REQUEST_H_INCLUDED

#include "pl_limits.h"

#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The bounds of proto/STORE.md's values: the kit's protocol limits
//  (pl_limits.h), under the names the stores use
#define ST_NAME_MAX             PL_STORE_NAME_MAX           //  a user name, bytes
#define ST_HASH_MAX             PL_STORE_HASH_MAX           //  password_hash, token_hash
#define ST_ROOM_MAX             PL_ROOM_NAME_MAX            //  a room name, bytes
#define ST_DESCRIPTION_MAX      PL_STORE_DESCRIPTION_MAX    //  a room's description, bytes
#define ST_TEXT_MAX             PL_STORE_TEXT_MAX           //  a message's text, bytes
#define ST_SEEN_MAX             PL_STORE_SEEN_MAX           //  store.user.seen's users
#define ST_RUN_MAX              PL_STORE_APPEND_MAX         //  msg.append's entries, pm.append's
#define ST_NONCE_MAX            PL_NONCE_MAX                //  a nonce's characters
#define ST_LIST_LIMIT_MAX       PL_STORE_LIST_MAX           //  every list's limit
#define ST_KEEP_MAX             1000000 //  store.token.trim's keep
#define ST_TRIM_MAX             1000    //  tokens token.trim deletes in one request
#define ST_PARTICIPANTS_MAX     UINT32_MAX  //  room.create's max_participants
#define ST_MENTIONS_MAX         PL_PARTICIPANTS_MAX //  names an entry's 'mentions' holds
//  The lists' defaults when no limit is given
#define ST_USER_LIST_DEFAULT    1000
#define ST_JOINED_DEFAULT       1000
#define ST_PUBLIC_DEFAULT       200
#define ST_DIRECTORY_DEFAULT    50
#define ST_HISTORY_DEFAULT      50
#define ST_CONVERSATIONS_DEFAULT 200
#define ST_ROOM_ALL_DEFAULT     1000
//  Room for an error sentence
#define ST_MESSAGE_MAX          200

//  The request types, in the order of proto/STORE.md
typedef enum {
    ST_INFO,
    ST_USER_CREATE,
    ST_USER_GET,
    ST_USER_LIST,
    ST_USER_SEEN,
    ST_TOKEN_PUT,
    ST_TOKEN_GET,
    ST_TOKEN_DELETE,
    ST_TOKEN_DELETE_USER,
    ST_TOKEN_PURGE,
    ST_TOKEN_TOUCH,
    ST_TOKEN_TRIM,
    ST_ROOM_CREATE,
    ST_ROOM_GET,
    ST_ROOM_LIST,
    ST_ROOM_JOINED,
    ST_ROOM_PUBLIC,
    ST_ROOM_DIRECTORY,
    ST_ROOM_INVITED,
    ST_ROOM_DELETE,
    ST_MEMBER_ADD,
    ST_MEMBER_REMOVE,
    ST_MEMBER_LIST,
    ST_MEMBER_READ,
    ST_INVITE_ADD,
    ST_MSG_APPEND,
    ST_MSG_HISTORY,
    ST_MSG_NONCE,
    ST_PM_APPEND,
    ST_PM_LAST_SEQ,
    ST_PM_HISTORY,
    ST_PM_CONVERSATIONS,
    ST_PM_READ,
    ST_PM_NONCE,
    //  The operator's (parleyctl, through auth and rooms)
    ST_USER_SET_STATE,
    ST_USER_SET_PASSWORD,
    ST_ROOM_ALL,
    //  Room administration (schema version 10)
    ST_ROOM_UPDATE,
    ST_ROOM_UNBAN,
    //  Search (schema version 12)
    ST_SEARCH,
    //  Files (schema version 13)
    ST_FILE_CREATE,
    ST_FILE_WRITE,
    ST_FILE_COMMIT,
    ST_FILE_GET,
    ST_FILE_READ,
    ST_FILE_SWEEP,
    ST_TYPE_COUNT
} st_type_t;

//  A string borrowed from the request's body: not NUL-terminated. data
//  is NULL (and size 0) for an optional field that was not given.
typedef struct {
    const char *data;
    uint32_t size;
} st_text_t;

//  A name (a user's or a room's) as given, and its ASCII-lower-cased key,
//  NUL-terminated: the key names compare and sort by. For an optional name
//  not given, text.data is NULL and key is "".
typedef struct {
    st_text_t text;
    char key [ST_NAME_MAX + 1];
} st_name_t;

//  An entry's kind (proto/STORE.md, entry; edit, delete and reaction from
//  schema version 9, "Timeline changes")
typedef enum {
    ST_KIND_MESSAGE,
    ST_KIND_SYSTEM,
    ST_KIND_EDIT,
    ST_KIND_DELETE,
    ST_KIND_REACTION
} st_kind_t;

//  The bounds of a change (schema version 9)
#define ST_EMOJI_MAX            32      //  a reaction's emoji, bytes
#define ST_REACTIONS_MAX        20      //  different emoji on one message; users
                                        //  an answer names per emoji

typedef struct st_reactions_s st_reactions_t;  //  st_reactions.h

//  The bounds of a file (schema version 13)
#define ST_FILE_ID_MAX          PL_FILE_ID_MAX      //  an id's characters of [A-Za-z0-9_-]
#define ST_FILE_NAME_MAX        PL_FILE_NAME_MAX    //  a name's bytes
#define ST_FILE_TYPE_MAX        PL_FILE_TYPE_MAX    //  a type's bytes
#define ST_FILE_CHUNK_MAX       PL_FILE_CHUNK_MAX   //  file.write's data, file.read's length

//  The file a message refers to (schema version 13): in requests as the
//  entry gives it, in answers as the store keeps it. id.data NULL: none.
typedef struct {
    st_text_t id;
    st_text_t name;
    uint64_t size;
    st_text_t type;
} st_file_ref_t;

//  What schema version 9 adds to a room entry and to a private message:
//  the change it makes, and in answers the message's state now
typedef struct {
    st_kind_t kind;
    uint64_t target;                //  edit, delete, reaction: the message's seq
    uint64_t reply_to;              //  a message's: the seq it answers, 0 for none
    st_file_ref_t file;             //  a message's file (schema 13), id.data NULL: none
    st_text_t emoji;                //  a reaction's (1 to ST_EMOJI_MAX bytes), else data NULL
    bool on;                        //  a reaction's: true adds it, false takes it back
    //  Answers only: a message as it is now
    bool edited;                    //  edited at least once: edited_at is the last edit's ts
    int64_t edited_at;
    bool deleted;
    st_reactions_t *reactions;      //  its reactions (st_reactions_any), or NULL: none
} st_change_t;

//  A timeline entry (proto/STORE.md, entry)
typedef struct {
    uint64_t seq;                   //  1 or more
    st_change_t change;             //  change.kind: what the entry is
    st_text_t user;                 //  the sender, or whom a system entry is about
    int64_t ts;                     //  milliseconds since 1970
    st_text_t text;                 //  a message's text (may be empty), an edit's new text
                                    //  (1 or more bytes), else data NULL
    st_text_t event;                //  a system entry's: "join", "leave", "update" or
                                    //  "kick", else data NULL
    st_text_t by;                   //  a system entry's who did it (optional), else data NULL
    st_text_t nonce;                //  a message's nonce (1 to PL_NONCE_MAX characters
                                    //  of [A-Za-z0-9_-]), else data NULL
    //  The members a message mentions (schema version 7), absent for none:
    //  in a request, a validated array of 1 to ST_MENTIONS_MAX names,
    //  borrowed from its body; in an answer, the array as msgpack bytes
    const msgpack_object *mentions; //  requests: NULL for none
    st_text_t mentions_packed;      //  answers: data NULL for none
} st_entry_t;

//  One private message of store.pm.append
typedef struct {
    uint64_t seq;                   //  1 or more
    bool from_peer;                 //  sent by 'to', not 'from': a run may go both ways
    int64_t ts;                     //  milliseconds since 1970
    st_text_t text;                 //  a message's (may be empty), an edit's (1 or more
                                    //  bytes); "" for a delete or a reaction
    st_text_t nonce;                //  a message's nonce, or data NULL
    st_change_t change;             //  kind (message when not given), target, emoji, on
} st_pm_message_t;

//  One element of store.user.seen
typedef struct {
    st_name_t name;
    int64_t last_seen;
} st_seen_t;

//  Where a history page starts
typedef enum {
    ST_CURSOR_NONE,                 //  the newest entries
    ST_CURSOR_BEFORE,               //  the newest with seq < seq
    ST_CURSOR_AFTER                 //  the oldest with seq > seq
} st_cursor_t;

typedef struct {
    st_cursor_t cursor;
    uint64_t seq;                   //  the cursor's seq (0 with ST_CURSOR_NONE)
    uint32_t limit;                 //  1 to ST_LIST_LIMIT_MAX
} st_page_t;

//  --------------------------------------------------------------------------
//  The typed requests: one struct per type (types with the same fields
//  share one)

typedef struct {                    //  store.user.create
    st_name_t name;
    st_text_t password_hash;
    int64_t created_at;
} st_user_create_t;

typedef struct {                    //  store.user.get
    st_name_t name;
} st_user_get_t;

typedef struct {                    //  store.user.list
    st_name_t after;                //  optional: key "" when not given
    uint32_t limit;
} st_user_list_t;

typedef struct {                    //  store.user.set_state
    st_name_t name;
    st_text_t state;                //  "active", "disabled" or "deleted"
} st_user_set_state_t;

typedef struct {                    //  store.user.set_password
    st_name_t name;
    st_text_t password_hash;
    st_text_t keep_token;           //  a token_hash not to delete; data NULL: none
} st_user_set_password_t;

typedef struct {                    //  store.user.seen
    st_seen_t *users;               //  1 to ST_SEEN_MAX, owned by the request
    uint32_t count;
} st_user_seen_t;

typedef struct {                    //  store.token.put
    st_text_t token_hash;
    st_name_t user;
    int64_t created_at;
    int64_t expires_at;
} st_token_put_t;

typedef struct {                    //  store.token.get, store.token.delete
    st_text_t token_hash;
} st_token_hash_t;

typedef struct {                    //  store.token.delete_user
    st_name_t user;
} st_token_user_t;

typedef struct {                    //  store.token.purge
    int64_t before;
} st_token_purge_t;

typedef struct {                    //  store.token.touch
    st_text_t token_hash;
    int64_t at;
    int64_t expires_at;             //  the token's new expiry, or 0: unchanged
} st_token_touch_t;

typedef struct {                    //  store.token.trim
    st_name_t user;
    uint64_t keep;                  //  1 to ST_KEEP_MAX
} st_token_trim_t;

typedef struct {                    //  store.room.create
    st_name_t name;                 //  1 to ST_ROOM_MAX bytes
    st_text_t description;          //  0 to ST_DESCRIPTION_MAX bytes (data may be "")
    bool is_private;
    uint32_t max_participants;      //  1 to ST_PARTICIPANTS_MAX
    st_name_t owner;
    int64_t created_at;
    uint64_t max_owned;             //  0 for no limit
    uint64_t max_joined;            //  0 for no limit
} st_room_create_t;

typedef struct {                    //  store.room.get, store.room.delete,
    st_name_t name;                 //  store.member.list ('room')
} st_room_name_t;

typedef struct {                    //  store.room.list
    st_name_t user;
} st_room_list_t;

typedef struct {                    //  store.room.joined, .public, .directory, .invited
    st_name_t user;
    st_name_t after;                //  a room name; key "" when not given
    uint32_t limit;
    bool has_after_active;          //  public: the cursor (after_active, after) given
    int64_t after_active;
    st_name_t prefix;               //  directory: key "" when not given; only
                                    //  ASCII letters, digits, '_', '-'
} st_room_page_t;

typedef struct {                    //  store.member.add, store.member.remove
    st_name_t room;
    st_name_t user;
    bool has_entry;                 //  the join or leave notice given
    st_entry_t entry;
    uint64_t max_joined;            //  add: 0 for no limit
    bool ban;                       //  remove: the user is banned too (schema 10)
} st_member_t;

typedef struct {                    //  store.room.update (schema version 10)
    st_name_t name;
    st_text_t description;          //  0 to ST_DESCRIPTION_MAX bytes; data NULL: unchanged
    bool has_private;               //  private given
    bool is_private;
    uint32_t max_participants;      //  1 to ST_PARTICIPANTS_MAX; 0: unchanged
    bool has_entry;                 //  the update notice given
    st_entry_t entry;
} st_room_update_t;

typedef struct {                    //  store.room.unban (schema version 10)
    st_name_t room;
    st_name_t user;
} st_room_unban_t;

typedef struct {                    //  store.member.read
    st_name_t room;
    st_name_t user;
    uint64_t seq;                   //  1 or more
} st_member_read_t;

typedef struct {                    //  store.invite.add
    st_name_t room;
    st_name_t user;
    st_name_t from;
} st_invite_add_t;

typedef struct {                    //  store.msg.append ('entry' is a run of one)
    st_name_t room;
    st_entry_t *entries;            //  1 to ST_RUN_MAX, seqs one after the other;
    uint32_t count;                 //  owned by the request
} st_msg_append_t;

typedef struct {                    //  store.msg.history
    st_name_t room;
    st_page_t page;
    st_name_t user;                 //  optional: answer this member's read_seq too
} st_msg_history_t;

typedef struct {                    //  store.msg.nonce
    st_name_t room;
    st_name_t user;                 //  the sender
    st_text_t nonce;
} st_msg_nonce_t;

typedef struct {                    //  store.pm.nonce
    st_name_t from;                 //  the sender
    st_name_t to;
    st_text_t nonce;
} st_pm_nonce_t;

typedef struct {                    //  store.pm.append (the single form is a run of one)
    st_name_t from;
    st_name_t to;                   //  not the same user as from
    st_pm_message_t *messages;      //  1 to ST_RUN_MAX, seqs one after the other;
    uint32_t count;                 //  owned by the request
} st_pm_append_t;

typedef struct {                    //  store.pm.last_seq, .history, .read
    st_name_t user;
    st_name_t with;
    st_page_t page;                 //  history
    uint64_t seq;                   //  read
} st_pm_pair_t;

typedef struct {                    //  store.pm.conversations
    st_name_t user;
    uint32_t limit;
} st_pm_conversations_t;

//  store.search's bounds (schema version 12; PROTOCOL.md 1.1, "Search")
#define ST_SEARCH_WORDS_MAX     16      //  words of one search
#define ST_SEARCH_WORD_MAX      64      //  bytes of a normalized word (PL_WORDS_MAX_BYTES)
#define ST_SEARCH_LIMIT_MAX     100     //  results of one page
#define ST_SEARCH_CURSOR_MAX    256     //  bytes of a cursor

//  One word of a search: normalized (pl_words), and whether it is a prefix
typedef struct {
    st_text_t text;                 //  1 to ST_SEARCH_WORD_MAX bytes, without the '*'
    bool prefix;                    //  given with a trailing '*'
} st_word_t;

typedef struct {                    //  store.search (schema version 12)
    st_name_t user;                 //  whose rooms and conversations
    st_word_t words [ST_SEARCH_WORDS_MAX];
    uint32_t count;                 //  1 to ST_SEARCH_WORDS_MAX
    st_name_t room;                 //  optional (key "" when not given): that room only
    st_name_t with;                 //  optional, not with room: that conversation only
    uint32_t limit;                 //  1 to ST_SEARCH_LIMIT_MAX
    st_text_t cursor;               //  optional (data NULL): a 'next' the store gave
} st_search_t;
typedef struct {                    //  store.file.create (schema version 13)
    st_text_t id;                   //  1 to ST_FILE_ID_MAX characters of [A-Za-z0-9_-]
    st_name_t user;
    st_text_t name;                 //  1 to ST_FILE_NAME_MAX bytes
    st_text_t type;                 //  1 to ST_FILE_TYPE_MAX bytes
    uint64_t size;                  //  the whole length, 0 or more
    int64_t ts;
    uint64_t quota;                 //  the user's files' sizes at most; 0: no limit
} st_file_create_t;

typedef struct {                    //  store.file.write
    st_text_t id;
    uint64_t offset;                //  the bytes written so far
    st_text_t data;                 //  0 to ST_FILE_CHUNK_MAX bytes (a bin; may hold NUL)
} st_file_write_t;

typedef struct {                    //  store.file.commit, store.file.get
    st_text_t id;
} st_file_id_t;

typedef struct {                    //  store.file.read
    st_text_t id;
    uint64_t offset;                //  at most the file's size
    uint64_t length;                //  1 to ST_FILE_CHUNK_MAX
} st_file_read_t;

typedef struct {                    //  store.file.sweep
    int64_t before;
} st_file_sweep_t;

//  One request. The typed fields are read-only for a backend; the answer
//  is set through the functions below.
typedef struct st_request_s st_request_t;
struct st_request_s {
    st_type_t type;
    union {
        st_user_create_t user_create;
        st_user_get_t user_get;
        st_user_list_t user_list;
        st_user_seen_t user_seen;
        st_token_put_t token_put;
        st_token_hash_t token_get;
        st_token_hash_t token_delete;
        st_token_user_t token_delete_user;
        st_token_purge_t token_purge;
        st_token_touch_t token_touch;
        st_token_trim_t token_trim;
        st_room_create_t room_create;
        st_room_name_t room_get;
        st_room_list_t room_list;
        st_room_page_t room_joined;
        st_room_page_t room_public;
        st_room_page_t room_directory;
        st_room_page_t room_invited;
        st_room_name_t room_delete;
        st_member_t member_add;
        st_member_t member_remove;
        st_room_name_t member_list;
        st_member_read_t member_read;
        st_invite_add_t invite_add;
        st_msg_append_t msg_append;
        st_msg_history_t msg_history;
        st_msg_nonce_t msg_nonce;
        st_pm_append_t pm_append;
        st_pm_pair_t pm_last_seq;
        st_pm_pair_t pm_history;
        st_pm_conversations_t pm_conversations;
        st_pm_pair_t pm_read;
        st_pm_nonce_t pm_nonce;
        st_user_set_state_t user_set_state;
        st_user_set_password_t user_set_password;
        st_room_page_t room_all;    //  after and limit; user unused
        st_room_update_t room_update;
        st_room_unban_t room_unban;
        st_search_t search;
        st_file_create_t file_create;
        st_file_write_t file_write;
        st_file_id_t file_commit;
        st_file_id_t file_get;
        st_file_read_t file_read;
        st_file_sweep_t file_sweep;
    } as;
    //  Private to st_request.c: use the functions below
    void *host_request;             //  the host's parley_request_t, lent
    char *raw;                      //  a copy of the body's bytes
    msgpack_unpacked body;          //  unpacked from raw: what the st_text_t above borrow
    const char *code;               //  error code, NULL for ok
    char message [ST_MESSAGE_MAX];  //  error sentence
    bool aside;                     //  set aside in this run (st_request_set_aside)
    uint64_t aside_mark;            //  the backend's mark, 0 never set aside
    int64_t aside_since;            //  monotonic ms it was first set aside, 0 never
    msgpack_sbuffer result;         //  the ok answer, a msgpack map
    msgpack_packer packer;          //  writes into result
};

//  --------------------------------------------------------------------------
//  Types

//  The type of a request type's name ("store.user.get"); returns 0 and
//  sets *type_p, or -1 for a type this front does not know
int
    st_type_find (const char *name, st_type_t *type_p);

//  "store.user.get" for ST_USER_GET
const char *
    st_type_name (st_type_t type);

//  "message", "system", "edit", "delete" or "reaction"
const char *
    st_kind_name (st_kind_t kind);

//  True for the types that write (a backend gives each its own savepoint)
bool
    st_type_writes (st_type_t type);

//  --------------------------------------------------------------------------
//  The request

//  Parses and validates body (size bytes, a msgpack map) as a request of
//  type. host_request is the host's request, carried for the reply (may
//  be NULL in tests). Returns a new request (caller owns it), failed with
//  bad_request when the body is refused; NULL only when out of memory.
st_request_t *
    st_request_new (st_type_t type, const void *body, size_t size, void *host_request);

//  Destroys the request and nullifies the reference
void
    st_request_destroy (st_request_t **self_p);

//  True while the request has no answer set and is not set aside: a
//  backend runs only these
bool
    st_request_live (const st_request_t *self);

//  Sets a live request aside: the backend cannot answer it in this run
//  without waiting (store-sqlite: a search whose index is behind the
//  commits before it), and the rest of the batch must not wait for it.
//  It is not live for the rest of this run; the front keeps it unanswered
//  and hands it to the backend's run again with a later batch (st_front.h),
//  where it is live again. mark is the backend's (store-sqlite: the commit
//  the search waits for), kept with the request. A later fail answers it.
void
    st_request_set_aside (st_request_t *self, uint64_t mark);

//  True when the request was set aside in this run (the front's question)
bool
    st_request_is_aside (const st_request_t *self);

//  The front's, before a run: a request set aside is live again
void
    st_request_resume (st_request_t *self);

//  The mark given when it was last set aside, 0 when it never was
uint64_t
    st_request_aside_mark (const st_request_t *self);

//  The monotonic ms (pl_time_mono) it was first set aside, 0 when it never was
int64_t
    st_request_aside_since (const st_request_t *self);

//  Fails the request with code (a proto/STORE.md error code) and a
//  sentence; clears any ok answer packed so far, and ends its being set
//  aside. A later fail replaces it.
void
    st_request_fail (st_request_t *self, const char *code, const char *format, ...)
#if defined(__GNUC__)
    __attribute__ ((format (printf, 3, 4)))
#endif
    ;

//  The packer of the ok answer: the backend packs the answer map into it
//  (st_reply.h). Packing nothing answers an empty map.
msgpack_packer *
    st_request_packer (st_request_t *self);

//  Clears the ok answer packed so far (a run undone, a retry)
void
    st_request_clear (st_request_t *self);

//  The error code, or NULL for ok; the sentence ("" for ok)
const char *
    st_request_code (const st_request_t *self);
const char *
    st_request_message (const st_request_t *self);

//  The ok answer packed so far, and its size
const char *
    st_request_result (const st_request_t *self, size_t *size_p);

//  The host's request (for the front's reply)
void *
    st_request_host (const st_request_t *self);

//  --------------------------------------------------------------------------
//  Names

//  The ASCII-lower-cased copy of text (which holds no NUL, as every text
//  of a validated request) into key (text.size + 1 bytes at least)
void
    st_text_lower (st_text_t text, char *key);

//  True when text holds exactly value
bool
    st_text_is (st_text_t text, const char *value);

#ifdef __cplusplus
}
#endif

#endif

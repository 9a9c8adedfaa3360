/*  =========================================================================
    ss_pm - store-sqlite's private messages

    A conversation is the pair of user ids, the lower in user_a; it carries
    its newest seq and ts and each side's read marker, so that a user's
    conversation list is a walk of two indexes, never a scan of messages.
    The pm plugin owns each conversation's seq: a taken seq is the primary
    key's constraint error, answered conflict.
    =========================================================================
*/

#include "ss_pm.h"
#include "ss_timeline.h"
#include "st_list.h"
#include "st_reply.h"
#include "pl_body.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    S_SQL_CONV_GET,
    S_SQL_CONV_INSERT,
    S_SQL_CONV_ADVANCE,
    S_SQL_CONV_READ,
    S_SQL_CONV_LIST,
    S_SQL_PM_INSERT,
    S_SQL_PM_BEFORE,
    S_SQL_PM_AFTER,
    S_SQL_PM_UNREAD,
    S_SQL_PM_NONCE,
    S_SQL_PM_FOUND,
    S_SQL_COUNT
} s_sql_t;

static const char *s_sql_text [S_SQL_COUNT] = {
    //  A conversation is keyed by its two user ids, the lower first
    [S_SQL_CONV_GET]     = "SELECT id, last_seq, read_a, read_b FROM conversations"
                           " WHERE user_a = ?1 AND user_b = ?2",
    [S_SQL_CONV_INSERT]  = "INSERT INTO conversations (user_a, user_b, last_seq, last_ts,"
                           " read_a, read_b) VALUES (?1, ?2, 0, 0, 0, 0)",
    //  An append below last_seq (the pm plugin filling a seq it skipped)
    //  leaves the newest as it is. last_message and last_ts follow the
    //  run's last message (?4, its ts ?3; 0 for a run of changes only)
    [S_SQL_CONV_ADVANCE] = "UPDATE conversations SET last_seq = MAX (last_seq, ?2),"
                           " last_ts = CASE WHEN ?4 > last_message THEN ?3 ELSE last_ts END,"
                           " last_message = MAX (last_message, ?4) WHERE id = ?1",
    //  Markers never go back: MAX of the old and the new
    [S_SQL_CONV_READ]    = "UPDATE conversations"
                           " SET read_a = CASE WHEN user_a = ?2 THEN MAX (read_a, ?3) ELSE read_a END,"
                           " read_b = CASE WHEN user_b = ?2 THEN MAX (read_b, ?3) ELSE read_b END"
                           " WHERE id = ?1",
    //  The user's conversations, newest first: the two arms walk
    //  conversations_by_a and conversations_by_b from their newest end and
    //  SQLite merges them, so the LIMIT stops both early (no sort, no scan
    //  of the user's messages). Per row: the other's name, the newest
    //  message as it is now (last_message) and the unread count are searches
    //  of primary keys.
#define S_CONV_ARM(me, other, marker) \
    "SELECT c.id, u.name, c.last_message, c.last_ts, e.from_id, e.text, e.ts," \
    " (SELECT count (*) FROM pm_entries AS n WHERE n.conversation_id = c.id" \
    "  AND n.seq > c." marker " AND n.from_id <> c." me \
    "  AND n.kind = 'message' AND n.deleted = 0), c." marker ", c.last_seq," \
    " e.reply_to, e.edited, e.deleted, e.target, e.emoji, e.on_," \
    " e.file_id, e.file_name, e.file_size, e.file_type" \
    " FROM conversations AS c JOIN users AS u ON u.id = c." other \
    " JOIN pm_entries AS e ON e.conversation_id = c.id AND e.seq = c.last_message" \
    " WHERE c." me " = ?1"
    [S_SQL_CONV_LIST]    = S_CONV_ARM ("user_a", "user_b", "read_a")
                           " UNION ALL "
                           S_CONV_ARM ("user_b", "user_a", "read_b")
                           " ORDER BY 4 DESC, 1 DESC LIMIT ?2",
    [S_SQL_PM_INSERT]    = "INSERT INTO pm_entries (conversation_id, seq, from_id, ts, text,"
                           " nonce, kind, reply_to, target, emoji, on_, file_id, file_name,"
                           " file_size, file_type)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
                           " ?14, ?15)",
    //  The columns s_pm_entry_of_row reads, then kind and the change's
#define S_PM_COLUMNS "SELECT seq, from_id, ts, text, nonce, kind, " SS_TIMELINE_COLUMNS
    [S_SQL_PM_BEFORE]    = S_PM_COLUMNS " FROM pm_entries"
                           " WHERE conversation_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
    [S_SQL_PM_AFTER]     = S_PM_COLUMNS " FROM pm_entries"
                           " WHERE conversation_id = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3",
    //  Messages to ?3's user above the marker ?2, not deleted: a range of
    //  the primary key
    [S_SQL_PM_UNREAD]    = "SELECT count (*) FROM pm_entries"
                           " WHERE conversation_id = ?1 AND seq > ?2 AND from_id <> ?3"
                           " AND kind = 'message' AND deleted = 0",
    //  A sender's nonce in the conversation: one search of pm_entries_by_nonce
    [S_SQL_PM_NONCE]     = "SELECT seq, ts FROM pm_entries"
                           " WHERE conversation_id = ?1 AND from_id = ?2 AND nonce = ?3",
    //  A search's result (schema version 12): one entry and its pair's ids
    //  and names
    [S_SQL_PM_FOUND]     = S_PM_COLUMNS ", a.id, a.name, b.name FROM pm_entries"
                           " JOIN conversations AS c ON c.id = pm_entries.conversation_id"
                           " JOIN users AS a ON a.id = c.user_a JOIN users AS b ON b.id = c.user_b"
                           " WHERE conversation_id = ?1 AND seq = ?2"
};

struct ss_pm_s {
    ss_db_t *db;                    //  borrowed
    ss_users_t *users;              //  borrowed: looks users up
    ss_indexer_t *indexer;          //  borrowed: told of each append (schema version 15)
    ss_timeline_t *timeline;        //  the conversations' changes (schema version 9)
    sqlite3_stmt *sql [S_SQL_COUNT];
};

//  The conversations' timeline tables, for ss_timeline: an entry's author
//  is its sender's name key
static const ss_timeline_tables_t s_tables = {
    .entries = "pm_entries", .reactions = "pm_reactions", .key = "conversation_id",
    .author = "(SELECT name_key FROM users WHERE users.id = from_id)"
};

//  The two sides of a private-message request, looked up
typedef struct {
    int64_t me;                     //  user id of 'from' or 'user', 0 if none
    int64_t peer;                   //  user id of 'to' or 'with', 0 if none
    char me_name [ST_NAME_MAX + 1];     //  as registered
    char peer_name [ST_NAME_MAX + 1];   //  as registered
    int64_t conversation;           //  conversations.id, 0 if none yet
    int64_t last_seq;               //  of the conversation
    int64_t my_marker;              //  me's read marker
} s_pair_t;

ss_pm_t *
ss_pm_new (ss_db_t *db, ss_users_t *users, ss_indexer_t *indexer)
{
    ss_pm_t *self = (ss_pm_t *) calloc (1, sizeof (ss_pm_t));
    if (!self)
        return NULL;
    self->db = db;
    self->users = users;
    self->indexer = indexer;
    self->timeline = ss_timeline_new (db, &s_tables);
    if (!self->timeline || ss_db_prepare (db, s_sql_text, S_SQL_COUNT, self->sql))
        ss_pm_destroy (&self);
    return self;
}

void
ss_pm_destroy (ss_pm_t **self_p)
{
    ss_pm_t *self = *self_p;
    if (!self)
        return;
    ss_db_finalize (self->sql, S_SQL_COUNT);
    ss_timeline_destroy (&self->timeline);
    free (self);
    *self_p = NULL;
}

static st_text_t
s_text (const char *string)
{
    return (st_text_t) { string, (uint32_t) strlen (string) };
}

//  Looks up both users and their conversation. Returns SQLITE_OK (the ids
//  are 0 for what does not exist) or a fatal code.
static int
s_pair_find (ss_pm_t *self, const st_name_t *me, const st_name_t *peer, s_pair_t *pair)
{
    memset (pair, 0, sizeof *pair);
    int rc;
    pair->me = ss_users_find (self->users, me, pair->me_name, &rc);
    if (rc != SQLITE_OK)
        return rc;
    pair->peer = ss_users_find (self->users, peer, pair->peer_name, &rc);
    if (rc != SQLITE_OK || !pair->me || !pair->peer || pair->me == pair->peer)
        return rc;
    sqlite3_stmt *stmt = self->sql [S_SQL_CONV_GET];
    bool me_first = pair->me < pair->peer;
    sqlite3_bind_int64 (stmt, 1, me_first ? pair->me : pair->peer);
    sqlite3_bind_int64 (stmt, 2, me_first ? pair->peer : pair->me);
    rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        pair->conversation = sqlite3_column_int64 (stmt, 0);
        pair->last_seq = sqlite3_column_int64 (stmt, 1);
        pair->my_marker = sqlite3_column_int64 (stmt, me_first ? 2 : 3);
    }
    ss_db_finish (stmt);
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
}

//  Fails the request with not_found if either side does not exist; true if so
static bool
s_pair_missing (st_request_t *request, const st_name_t *me, const st_name_t *peer,
                const s_pair_t *pair)
{
    if (pair->me && pair->peer)
        return false;
    st_reply_no_user (request, pair->me ? peer->text : me->text);
    return true;
}

//  Counts the messages to me above marker in the conversation
static int
s_unread (ss_pm_t *self, const s_pair_t *pair, int64_t marker, int64_t *unread_p)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_PM_UNREAD];
    sqlite3_bind_int64 (stmt, 1, pair->conversation);
    sqlite3_bind_int64 (stmt, 2, marker);
    sqlite3_bind_int64 (stmt, 3, pair->me);
    return ss_db_count (stmt, unread_p);
}

//  A pm entry of a S_PM_COLUMNS row: seq, from_id, ts, text, nonce, kind,
//  then the change's columns
static st_pm_entry_t
s_pm_entry_of_row (sqlite3_stmt *stmt, int64_t me_id, const char *me_name,
                   const char *peer_name)
{
    bool from_me = sqlite3_column_int64 (stmt, 1) == me_id;
    bool nonce = sqlite3_column_type (stmt, 4) != SQLITE_NULL;
    st_pm_entry_t entry = {
        .seq = (uint64_t) sqlite3_column_int64 (stmt, 0),
        .from = s_text (from_me ? me_name : peer_name),
        .to = s_text (from_me ? peer_name : me_name),
        .text = ss_db_column_text (stmt, 3),
        .ts = sqlite3_column_int64 (stmt, 2),
        .nonce = nonce ? ss_db_column_text (stmt, 4) : (st_text_t) { NULL, 0 }
    };
    entry.change.kind = ss_timeline_kind (stmt, 5);
    ss_timeline_change_of_row (stmt, 6, &entry.change);
    return entry;
}


//  --------------------------------------------------------------------------
//  store.pm.append

//  The first message starts the conversation; a conflict cannot follow,
//  but the request's savepoint would undo it if one did
static int
s_conversation_start (ss_pm_t *self, s_pair_t *pair)
{
    sqlite3_stmt *insert = self->sql [S_SQL_CONV_INSERT];
    sqlite3_bind_int64 (insert, 1, pair->me < pair->peer ? pair->me : pair->peer);
    sqlite3_bind_int64 (insert, 2, pair->me < pair->peer ? pair->peer : pair->me);
    int rc = ss_db_step_done (insert);
    if (rc == SQLITE_OK)
        pair->conversation = sqlite3_last_insert_rowid (ss_db_handle (self->db));
    return rc;
}

static int
s_message_insert (ss_pm_t *self, st_request_t *request, const s_pair_t *pair,
                  const st_pm_message_t *message)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_PM_INSERT];
    sqlite3_bind_int64 (stmt, 1, pair->conversation);
    sqlite3_bind_int64 (stmt, 2, (int64_t) message->seq);
    sqlite3_bind_int64 (stmt, 3, message->from_peer ? pair->peer : pair->me);
    sqlite3_bind_int64 (stmt, 4, message->ts);
    ss_db_bind_text (stmt, 5, message->text);
    if (message->nonce.data)
        ss_db_bind_text (stmt, 6, message->nonce);
    const st_change_t *change = &message->change;
    sqlite3_bind_text (stmt, 7, st_kind_name (change->kind), -1, SQLITE_STATIC);
    if (change->reply_to)
        sqlite3_bind_int64 (stmt, 8, (int64_t) change->reply_to);
    if (change->target)
        sqlite3_bind_int64 (stmt, 9, (int64_t) change->target);
    if (change->kind == ST_KIND_REACTION) {
        ss_db_bind_text (stmt, 10, change->emoji);
        sqlite3_bind_int (stmt, 11, change->on ? 1 : 0);
    }
    ss_timeline_bind_file (stmt, 12, change);
    int rc = ss_db_step_done (stmt);
    //  Not the timeline's key: the nonce index (the caller names the repeats)
    if (rc == SQLITE_CONSTRAINT_UNIQUE && message->nonce.data)
        return rc;
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        st_request_fail (request, "conflict", "The conversation of '%s' and '%s' has a message"
                         " with seq %" PRIu64 " already.", pair->me_name, pair->peer_name,
                         message->seq);
        return SQLITE_OK;
    }
    return rc;
}

//  What binds the nonce look-ups of a pm.append's run
typedef struct {
    const st_pm_append_t *append;
    const s_pair_t *pair;
} s_run_nonces_t;

//  Binds the look-up of the sender's nonce in the pair's conversation
static void
s_bind_nonce (sqlite3_stmt *stmt, const s_pair_t *pair, bool from_peer, st_text_t nonce)
{
    sqlite3_bind_int64 (stmt, 1, pair->conversation);
    sqlite3_bind_int64 (stmt, 2, from_peer ? pair->peer : pair->me);
    ss_db_bind_text (stmt, 3, nonce);
}

static bool
s_bind_message_nonce (void *arg, uint32_t index, sqlite3_stmt *stmt)
{
    s_run_nonces_t *run = (s_run_nonces_t *) arg;
    const st_pm_message_t *message = &run->append->messages [index];
    if (!message->nonce.data)
        return false;
    s_bind_nonce (stmt, run->pair, message->from_peer, message->nonce);
    return true;
}

static int
s_pm_nonce (ss_pm_t *self, st_request_t *request)
{
    const st_pm_nonce_t *lookup = &request->as.pm_nonce;
    s_pair_t pair;
    bool found = false;
    st_duplicate_t first = { 0, 0, 0 };
    int rc = s_pair_find (self, &lookup->from, &lookup->to, &pair);
    if (rc == SQLITE_OK && pair.conversation) {
        s_bind_nonce (self->sql [S_SQL_PM_NONCE], &pair, false, lookup->nonce);
        rc = ss_db_nonce_find (self->sql [S_SQL_PM_NONCE], &found, &first);
    }
    if (rc == SQLITE_OK)
        st_reply_nonce (request, found, first.seq, first.ts);
    return rc;
}

//  A pm.append's run, as its elements need it
typedef struct {
    ss_pm_t *self;
    st_request_t *request;
    const st_pm_append_t *append;
    const s_pair_t *pair;
} s_append_t;

//  One message of the run (ss_run_t's element): a change or a reply is
//  checked first and applied once its entry is in; only its author
//  deletes a message of a conversation
static int
s_append_element (void *arg, uint32_t index, const char **code_p)
{
    s_append_t *run = (s_append_t *) arg;
    const st_pm_message_t *message = &run->append->messages [index];
    const char *actor = message->from_peer ? run->pair->peer_name : run->pair->me_name;
    char actor_key [ST_NAME_MAX + 1];
    st_text_lower (s_text (actor), actor_key);
    ss_change_t element = {
        .key = run->pair->conversation, .owner_key = NULL, .actor_key = actor_key,
        .actor = s_text (actor), .seq = message->seq, .ts = message->ts,
        .text = message->text, .change = &message->change
    };
    bool changes = ss_timeline_changes (&message->change);
    int rc = changes ? ss_timeline_check (run->self->timeline, &element, code_p) : SQLITE_OK;
    if (rc != SQLITE_OK || *code_p)
        return rc;
    rc = s_message_insert (run->self, run->request, run->pair, message);
    if (rc == SQLITE_OK && st_request_live (run->request) && changes)
        rc = ss_timeline_apply (run->self->timeline, &element);
    return rc;
}

//  The run's seqs rise, so its last is the newest and its last message the
//  newest message: one advance leaves what one per message would (the
//  unread counts are counted from pm_entries, each row with its sender)
static int
s_conversation_advance (ss_pm_t *self, const st_pm_append_t *append, int64_t conversation)
{
    const st_pm_message_t *last = &append->messages [append->count - 1];
    const st_pm_message_t *message = NULL;
    for (uint32_t index = append->count; index > 0 && !message; index--)
        if (append->messages [index - 1].change.kind == ST_KIND_MESSAGE)
            message = &append->messages [index - 1];
    sqlite3_stmt *stmt = self->sql [S_SQL_CONV_ADVANCE];
    sqlite3_bind_int64 (stmt, 1, conversation);
    sqlite3_bind_int64 (stmt, 2, (int64_t) last->seq);
    sqlite3_bind_int64 (stmt, 3, message ? message->ts : 0);
    sqlite3_bind_int64 (stmt, 4, message ? (int64_t) message->seq : 0);
    return ss_db_step_done (stmt);
}

static int
s_pm_append (ss_pm_t *self, st_request_t *request)
{
    const st_pm_append_t *append = &request->as.pm_append;
    s_pair_t pair;
    int rc = s_pair_find (self, &append->from, &append->to, &pair);
    if (rc != SQLITE_OK || s_pair_missing (request, &append->from, &append->to, &pair))
        return rc;
    if (!pair.conversation && (rc = s_conversation_start (self, &pair)) != SQLITE_OK)
        return rc;
    //  Every message of the run inside the request's savepoint: a taken seq
    //  fails the request, and the batch then rolls the savepoint back, so
    //  that none of the run stays, nor the conversation it started. A
    //  refused change or a repeated nonce appends nothing: the answer names
    //  them.
    s_append_t run = { self, request, append, &pair };
    s_run_nonces_t nonces = { append, &pair };
    ss_run_t steps = {
        .count = append->count, .element = s_append_element, .arg = &run,
        .bind_nonce = s_bind_message_nonce, .nonce_arg = &nonces,
        .nonce_stmt = self->sql [S_SQL_PM_NONCE], .where = "The conversation"
    };
    bool stored;
    rc = ss_timeline_run (self->timeline, request, &steps, &stored);
    if (rc != SQLITE_OK || !stored
    ||  (rc = s_conversation_advance (self, append, pair.conversation)) != SQLITE_OK)
        return rc;
    //  The search index reads the new entries after the commit
    ss_indexer_touch (self->indexer, SS_INDEXER_CONVERSATION, pair.conversation,
                      append->messages [0].seq);
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 3);
    pl_body_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, append->messages [append->count - 1].seq);
    pl_body_pack_str (packer, "from");
    pl_body_pack_str (packer, pair.me_name);
    pl_body_pack_str (packer, "to");
    pl_body_pack_str (packer, pair.peer_name);
    return SQLITE_OK;
}


//  --------------------------------------------------------------------------
//  The reads, and store.pm.read

static int
s_pm_last_seq (ss_pm_t *self, st_request_t *request)
{
    const st_pm_pair_t *ask = &request->as.pm_last_seq;
    s_pair_t pair;
    int rc = s_pair_find (self, &ask->user, &ask->with, &pair);
    if (rc == SQLITE_OK)
        st_reply_uint (request, "last_seq", (uint64_t) pair.last_seq);
    return rc;
}

static int
s_pm_history (ss_pm_t *self, st_request_t *request)
{
    const st_pm_pair_t *ask = &request->as.pm_history;
    s_pair_t pair;
    int rc = s_pair_find (self, &ask->user, &ask->with, &pair);
    if (rc != SQLITE_OK)
        return rc;
    bool forward = ask->page.cursor == ST_CURSOR_AFTER;
    st_list_t *messages = st_list_new (ask->page.limit, !forward);
    if (!messages)
        return SQLITE_NOMEM;
    //  Unknown users, or no message yet: an empty conversation
    sqlite3_stmt *stmt = self->sql [forward ? S_SQL_PM_AFTER : S_SQL_PM_BEFORE];
    sqlite3_bind_int64 (stmt, 1, pair.conversation);
    sqlite3_bind_int64 (stmt, 2, ask->page.cursor != ST_CURSOR_NONE
                                 ? (int64_t) ask->page.seq : INT64_MAX);
    sqlite3_bind_int64 (stmt, 3, (int64_t) ask->page.limit + 1);
    //  Rows come nearest the cursor first, so a page cut for its bytes
    //  keeps the entries next to its cursor
    st_reactions_t *reactions = ss_timeline_walk (self->timeline, pair.conversation, forward,
        ask->page.cursor != ST_CURSOR_NONE ? ask->page.seq : INT64_MAX);
    while (reactions && pair.conversation && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        st_pm_entry_t entry = s_pm_entry_of_row (stmt, pair.me, pair.me_name, pair.peer_name);
        if (entry.change.kind == ST_KIND_MESSAGE && !entry.change.deleted) {
            if (st_reactions_load (reactions, entry.seq)) {
                rc = SQLITE_NOMEM;  //  or the walk's failure, below
                break;
            }
            entry.change.reactions = reactions;
        }
        st_reply_pm_entry (st_list_packer (messages), &entry);
        if (!st_list_push (messages))
            break;
    }
    ss_db_finish (stmt);
    int walked = reactions ? ss_timeline_walk_end (self->timeline, &reactions) : SQLITE_NOMEM;
    if (walked != SQLITE_OK)
        rc = walked;
    if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) {
        st_list_answer (messages, request, "messages");
        rc = SQLITE_OK;
    }
    st_list_destroy (&messages);
    return rc;
}

//  Packs one conversation of a S_SQL_CONV_LIST row: id, other's name,
//  last_message, last_ts, then the newest message's from_id, text, ts,
//  then the unread count, the user's read marker, the newest entry's seq,
//  and the message's change columns; its reactions from one walk
static int
s_pack_conversation (ss_pm_t *self, msgpack_packer *packer, sqlite3_stmt *stmt, int64_t me,
                     const char *me_name)
{
    const char *peer_name = (const char *) sqlite3_column_text (stmt, 1);
    if (!peer_name)
        peer_name = "";
    bool from_me = sqlite3_column_int64 (stmt, 4) == me;
    st_pm_entry_t last = {
        .seq = (uint64_t) sqlite3_column_int64 (stmt, 2),
        .from = s_text (from_me ? me_name : peer_name),
        .to = s_text (from_me ? peer_name : me_name),
        .text = ss_db_column_text (stmt, 5),
        .ts = sqlite3_column_int64 (stmt, 6)
    };
    ss_timeline_change_of_row (stmt, 10, &last.change);
    st_reactions_t *reactions = last.change.deleted ? NULL
        : ss_timeline_walk_one (self->timeline, sqlite3_column_int64 (stmt, 0), last.seq);
    if (reactions && st_reactions_load (reactions, last.seq) == 0)
        last.change.reactions = reactions;
    st_reply_conversation (packer, s_text (peer_name), &last,
                           (uint64_t) sqlite3_column_int64 (stmt, 7),
                           (uint64_t) sqlite3_column_int64 (stmt, 8),
                           (uint64_t) sqlite3_column_int64 (stmt, 9));
    return reactions ? ss_timeline_walk_end (self->timeline, &reactions) : SQLITE_OK;
}

static int
s_pm_conversations (ss_pm_t *self, st_request_t *request)
{
    const st_pm_conversations_t *ask = &request->as.pm_conversations;
    char me_name [ST_NAME_MAX + 1];
    int rc;
    int64_t me = ss_users_find (self->users, &ask->user, me_name, &rc);
    if (rc != SQLITE_OK)
        return rc;
    //  The statement's LIMIT bounds the list; the list bounds its bytes
    st_list_t *list = st_list_new (UINT32_MAX, false);
    if (!list)
        return SQLITE_NOMEM;
    sqlite3_stmt *stmt = self->sql [S_SQL_CONV_LIST];
    sqlite3_bind_int64 (stmt, 1, me);
    sqlite3_bind_int64 (stmt, 2, ask->limit);
    //  No such user: no conversations
    while (me && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        int packed = s_pack_conversation (self, st_list_packer (list), stmt, me, me_name);
        if (packed != SQLITE_OK) {
            rc = packed;
            break;
        }
        if (!st_list_push (list))
            break;
    }
    ss_db_finish (stmt);
    if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) {
        st_list_answer (list, request, "conversations");
        rc = SQLITE_OK;
    }
    st_list_destroy (&list);
    return rc;
}

static int
s_pm_read (ss_pm_t *self, st_request_t *request)
{
    const st_pm_pair_t *ask = &request->as.pm_read;
    s_pair_t pair;
    int rc = s_pair_find (self, &ask->user, &ask->with, &pair);
    if (rc != SQLITE_OK || s_pair_missing (request, &ask->user, &ask->with, &pair))
        return rc;
    int64_t unread = 0, marker = 0;
    //  Without a conversation there is nothing to mark: it exists from its
    //  first message, and a marker alone would not make one
    if (pair.conversation) {
        marker = pair.my_marker;
        if ((int64_t) ask->seq > marker) {
            sqlite3_stmt *stmt = self->sql [S_SQL_CONV_READ];
            sqlite3_bind_int64 (stmt, 1, pair.conversation);
            sqlite3_bind_int64 (stmt, 2, pair.me);
            sqlite3_bind_int64 (stmt, 3, (int64_t) ask->seq);
            if ((rc = ss_db_step_done (stmt)) != SQLITE_OK)
                return rc;
            marker = (int64_t) ask->seq;
        }
        if ((rc = s_unread (self, &pair, marker, &unread)) != SQLITE_OK)
            return rc;
    }
    st_reply_pm_read (request, (uint64_t) unread, (uint64_t) marker);
    return SQLITE_OK;
}


//  --------------------------------------------------------------------------
//  Dispatch

typedef int (s_run_fn) (ss_pm_t *self, st_request_t *request);

static s_run_fn *s_runs [ST_TYPE_COUNT] = {
    [ST_PM_APPEND]        = s_pm_append,
    [ST_PM_LAST_SEQ]      = s_pm_last_seq,
    [ST_PM_HISTORY]       = s_pm_history,
    [ST_PM_CONVERSATIONS] = s_pm_conversations,
    [ST_PM_READ]          = s_pm_read,
    [ST_PM_NONCE]         = s_pm_nonce
};

bool
ss_pm_serves (st_type_t type)
{
    return type < ST_TYPE_COUNT && s_runs [type] != NULL;
}

int
ss_pm_run (ss_pm_t *self, st_request_t *request)
{
    return ss_pm_serves (request->type) ? s_runs [request->type] (self, request)
                                        : SQLITE_INTERNAL;
}


//  --------------------------------------------------------------------------
//  A search's result (schema version 12)

int
ss_pm_pack_found (ss_pm_t *self, msgpack_packer *packer, int64_t conversation, uint64_t seq,
                  bool *found_p)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_PM_FOUND];
    sqlite3_bind_int64 (stmt, 1, conversation);
    sqlite3_bind_int64 (stmt, 2, (int64_t) seq);
    int rc = sqlite3_step (stmt);
    *found_p = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW) {
        ss_db_finish (stmt);
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    //  Read from user_a's side: from and to come out right either way. The
    //  pair's three columns are the last, after S_PM_COLUMNS'
    int pair = sqlite3_column_count (stmt) - 3;
    st_pm_entry_t entry = s_pm_entry_of_row (stmt, sqlite3_column_int64 (stmt, pair),
                                             (const char *) sqlite3_column_text (stmt, pair + 1),
                                             (const char *) sqlite3_column_text (stmt, pair + 2));
    st_reactions_t *reactions = ss_timeline_walk_one (self->timeline, conversation, seq);
    rc = reactions ? SQLITE_OK : SQLITE_NOMEM;
    if (reactions && st_reactions_load (reactions, seq))
        rc = SQLITE_NOMEM;          //  or the walk's failure, below
    if (rc == SQLITE_OK) {
        entry.change.reactions = reactions;
        msgpack_pack_map (packer, 3);
        pl_body_pack_str (packer, "from");
        st_reply_text (packer, entry.from);
        pl_body_pack_str (packer, "to");
        st_reply_text (packer, entry.to);
        pl_body_pack_str (packer, "entry");
        st_reply_pm_entry (packer, &entry);
    }
    int walked = reactions ? ss_timeline_walk_end (self->timeline, &reactions) : SQLITE_OK;
    ss_db_finish (stmt);
    return rc == SQLITE_OK ? walked : rc;
}

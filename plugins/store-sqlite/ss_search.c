/*  =========================================================================
    ss_search - store-sqlite's search: store.search over the index file
    =========================================================================
*/

#include "ss_search.h"
#include "st_list.h"
#include "st_reply.h"
#include "pl_body.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The scopes of a search: every room and conversation of the user, one
//  room, one conversation
typedef enum {
    S_SQL_ALL,
    S_SQL_ROOM,
    S_SQL_WITH,
    S_SQL_ROOM_MEMBER,
    S_SQL_CONVERSATION,
    S_SQL_COUNT
} s_sql_t;

//  Each walks the index newest first (rowid descending: the rowid is the
//  message's place in time) from the cursor (?2, exclusive), keeps the rows
//  in scope, and stops after ?4 of them: the scope is part of the same
//  statement, never a filter of a page afterwards. ?1 is the FTS5 query.
#define S_SEARCH_FROM \
    "SELECT d.id, d.room_id, d.conversation_id, d.seq FROM idx.search" \
    " JOIN idx.search_docs AS d ON d.id = search.rowid" \
    " WHERE search MATCH ?1 AND search.rowid < ?2 AND "
#define S_SEARCH_ORDER " ORDER BY search.rowid DESC LIMIT ?4"

//  (Each text in parentheses: clang takes a concatenation in an array of
//  strings for a missing comma otherwise)
static const char *s_sql_text [S_SQL_COUNT] = {
    //  The user's rooms now (members_by_user) and conversations (the two
    //  indexes by user), each read once into a list the walk looks up
    [S_SQL_ALL]          = (S_SEARCH_FROM
                           "(d.room_id IN (SELECT room_id FROM members WHERE user_id = ?3)"
                           " OR d.conversation_id IN (SELECT id FROM conversations"
                           " WHERE user_a = ?3 UNION ALL SELECT id FROM conversations"
                           " WHERE user_b = ?3))" S_SEARCH_ORDER),
    [S_SQL_ROOM]         = (S_SEARCH_FROM
                           "d.room_id = ?3"
                           S_SEARCH_ORDER),
    [S_SQL_WITH]         = (S_SEARCH_FROM
                           "d.conversation_id = ?3"
                           S_SEARCH_ORDER),
    //  A room by name and whether the user is a member
    [S_SQL_ROOM_MEMBER]  = ("SELECT rooms.id, EXISTS (SELECT 1 FROM members WHERE"
                           " members.room_id = rooms.id AND members.user_id = ?2)"
                           " FROM rooms WHERE name_key = ?1"),
    //  A pair's conversation (the lower id first), if any
    [S_SQL_CONVERSATION] = ("SELECT id FROM conversations WHERE user_a = MIN (?1, ?2)"
                           " AND user_b = MAX (?1, ?2)")
};

struct ss_search_s {
    ss_db_t *db;                    //  borrowed
    ss_users_t *users;              //  borrowed
    ss_rooms_t *rooms;              //  borrowed: packs a room's entry
    ss_pm_t *pm;                    //  borrowed: packs a conversation's entry
    sqlite3_stmt *sql [S_SQL_COUNT];
};

//  The FTS5 query of one search: each word a quoted string (a word holds
//  letters and digits only, so no quote), a prefix followed by '*', all of
//  them ANDed by juxtaposition
#define S_QUERY_MAX (ST_SEARCH_WORDS_MAX * (ST_SEARCH_WORD_MAX + 4) + 1)

ss_search_t *
ss_search_new (ss_db_t *db, ss_users_t *users, ss_rooms_t *rooms, ss_pm_t *pm)
{
    ss_search_t *self = (ss_search_t *) calloc (1, sizeof (ss_search_t));
    if (!self)
        return NULL;
    self->db = db;
    self->users = users;
    self->rooms = rooms;
    self->pm = pm;
    if (ss_db_prepare (db, s_sql_text, S_SQL_COUNT, self->sql))
        ss_search_destroy (&self);
    return self;
}

void
ss_search_destroy (ss_search_t **self_p)
{
    ss_search_t *self = *self_p;
    if (!self)
        return;
    ss_db_finalize (self->sql, S_SQL_COUNT);
    free (self);
    *self_p = NULL;
}

//  Writes the FTS5 query of the search's words into query
static void
s_query (const st_search_t *search, char *query)
{
    size_t used = 0;
    for (uint32_t index = 0; index < search->count; index++) {
        const st_word_t *word = &search->words [index];
        query [used++] = '"';
        memcpy (query + used, word->text.data, word->text.size);
        used += word->text.size;
        query [used++] = '"';
        if (word->prefix)
            query [used++] = '*';
        query [used++] = ' ';
    }
    query [used ? used - 1 : 0] = 0;
}

//  The cursor: the rowid of the last result given, in decimal. Returns 0
//  and sets *rowid_p (INT64_MAX without a cursor), or -1 after failing
//  the request
static int
s_cursor (st_request_t *request, int64_t *rowid_p)
{
    st_text_t cursor = request->as.search.cursor;
    *rowid_p = INT64_MAX;
    if (!cursor.data)
        return 0;
    int64_t rowid = 0;
    bool valid = cursor.size >= 1 && cursor.size <= 19;
    for (uint32_t index = 0; valid && index < cursor.size; index++) {
        char c = cursor.data [index];
        valid = c >= '0' && c <= '9';
        rowid = rowid * 10 + (c - '0');
    }
    if (!valid || rowid <= 0) {
        st_request_fail (request, "bad_request", "The field 'cursor' is not one this store"
                         " gave.");
        return -1;
    }
    *rowid_p = rowid;
    return 0;
}

//  Runs a statement that yields one row of up to two integers
static int
s_row (sqlite3_stmt *stmt, int64_t *first_p, int64_t *second_p, bool *found_p)
{
    int rc = sqlite3_step (stmt);
    *found_p = rc == SQLITE_ROW;
    *first_p = *found_p ? sqlite3_column_int64 (stmt, 0) : 0;
    if (second_p)
        *second_p = *found_p ? sqlite3_column_int64 (stmt, 1) : 0;
    ss_db_finish (stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

//  The scope's statement, bound to its key (?3): the user's id, the
//  room's, the conversation's. *empty_p when nothing can match (an unknown
//  user, no conversation yet); the request fails for no such room or user,
//  or a room the user is not in.
static int
s_scope (ss_search_t *self, st_request_t *request, int64_t user_id, sqlite3_stmt **stmt_p,
         bool *empty_p)
{
    const st_search_t *search = &request->as.search;
    int64_t key = user_id, member = 0;
    bool found = true;
    int rc = SQLITE_OK;
    s_sql_t sql = S_SQL_ALL;
    if (search->room.text.data) {
        sql = S_SQL_ROOM;
        sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_MEMBER];
        ss_db_bind_key (stmt, 1, &search->room);
        sqlite3_bind_int64 (stmt, 2, user_id);
        if ((rc = s_row (stmt, &key, &member, &found)) != SQLITE_OK)
            return rc;
        if (!found)
            st_request_fail (request, "not_found", "No room '%.*s'.",
                             (int) search->room.text.size, search->room.text.data);
        else
        if (!member)
            st_request_fail (request, "not_member", "'%.*s' is not a member of '%.*s'.",
                             (int) search->user.text.size, search->user.text.data,
                             (int) search->room.text.size, search->room.text.data);
    }
    else
    if (search->with.text.data) {
        sql = S_SQL_WITH;
        int64_t peer = ss_users_find (self->users, &search->with, NULL, &rc);
        if (rc != SQLITE_OK)
            return rc;
        if (!peer)
            st_request_fail (request, "not_found", "No user '%.*s'.",
                             (int) search->with.text.size, search->with.text.data);
        sqlite3_stmt *stmt = self->sql [S_SQL_CONVERSATION];
        sqlite3_bind_int64 (stmt, 1, user_id);
        sqlite3_bind_int64 (stmt, 2, peer);
        if (peer && (rc = s_row (stmt, &key, NULL, &found)) != SQLITE_OK)
            return rc;
    }
    *empty_p = !user_id || !found;
    *stmt_p = self->sql [sql];
    sqlite3_bind_int64 (*stmt_p, 3, key);
    return SQLITE_OK;
}

//  Packs the result of one row of the walk (id, room_id, conversation_id,
//  seq) into the list; *taken_p false when the list is full
static int
s_pack_row (ss_search_t *self, sqlite3_stmt *stmt, st_list_t *results, bool *taken_p)
{
    bool found;
    uint64_t seq = (uint64_t) sqlite3_column_int64 (stmt, 3);
    int rc = sqlite3_column_type (stmt, 1) != SQLITE_NULL
           ? ss_rooms_pack_found (self->rooms, st_list_packer (results),
                                  sqlite3_column_int64 (stmt, 1), seq, &found)
           : ss_pm_pack_found (self->pm, st_list_packer (results),
                               sqlite3_column_int64 (stmt, 2), seq, &found);
    //  The index follows the timelines after their commits: a row whose
    //  entry went since (a room deleted in this batch) is skipped rather
    //  than answered half
    *taken_p = rc != SQLITE_OK || !found || st_list_push (results);
    return rc;
}

//  Answers {results, next?}: next is the rowid of the last result taken,
//  when the walk stopped before its end
static void
s_answer (st_request_t *request, st_list_t *results, int64_t last)
{
    msgpack_packer *packer = st_request_packer (request);
    bool more = st_list_more (results) && st_list_count (results) > 0;
    msgpack_pack_map (packer, more ? 2 : 1);
    st_list_finish (results, packer, "results");
    if (more) {
        char next [24];
        int size = snprintf (next, sizeof next, "%" PRId64, last);
        pl_body_pack_str (packer, "next");
        msgpack_pack_str (packer, (size_t) size);
        msgpack_pack_str_body (packer, next, (size_t) size);
    }
}

//  Walks the bound statement: limit results, one row more tells whether
//  more remain
static int
s_walk (ss_search_t *self, st_request_t *request, sqlite3_stmt *stmt, bool empty)
{
    const st_search_t *search = &request->as.search;
    st_list_t *results = st_list_new (search->limit, false);
    if (!results) {
        ss_db_finish (stmt);
        return SQLITE_NOMEM;
    }
    int rc = SQLITE_DONE;
    int64_t last = 0;
    bool taken = true;
    while (!empty && taken && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        int64_t rowid = sqlite3_column_int64 (stmt, 0);
        int packed = s_pack_row (self, stmt, results, &taken);
        if (packed != SQLITE_OK) {
            rc = packed;
            break;
        }
        if (taken)
            last = rowid;
    }
    ss_db_finish (stmt);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
        s_answer (request, results, last);
        rc = SQLITE_OK;
    }
    st_list_destroy (&results);
    return rc;
}

int
ss_search_run (ss_search_t *self, st_request_t *request)
{
    const st_search_t *search = &request->as.search;
    int64_t after;
    if (s_cursor (request, &after))
        return SQLITE_OK;
    int rc;
    int64_t user_id = ss_users_find (self->users, &search->user, NULL, &rc);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *stmt = NULL;
    bool empty = false;
    if ((rc = s_scope (self, request, user_id, &stmt, &empty)) != SQLITE_OK
    ||  !st_request_live (request)) {
        if (stmt)
            ss_db_finish (stmt);
        return rc;
    }
    char query [S_QUERY_MAX];
    s_query (search, query);
    sqlite3_bind_text (stmt, 1, query, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64 (stmt, 2, after);
    sqlite3_bind_int64 (stmt, 4, (int64_t) search->limit + 1);
    return s_walk (self, request, stmt, empty);
}

bool
ss_search_leaves_words (const st_request_t *request)
{
    if (request->type == ST_ROOM_DELETE)
        return true;
    if (request->type == ST_MSG_APPEND) {
        const st_msg_append_t *append = &request->as.msg_append;
        for (uint32_t index = 0; index < append->count; index++)
            if (append->entries [index].change.kind == ST_KIND_EDIT
            ||  append->entries [index].change.kind == ST_KIND_DELETE)
                return true;
    }
    if (request->type == ST_PM_APPEND) {
        const st_pm_append_t *append = &request->as.pm_append;
        for (uint32_t index = 0; index < append->count; index++)
            if (append->messages [index].change.kind == ST_KIND_EDIT
            ||  append->messages [index].change.kind == ST_KIND_DELETE)
                return true;
    }
    return false;
}

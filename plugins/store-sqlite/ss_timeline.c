/*  =========================================================================
    ss_timeline - store-sqlite's timeline changes: checks, effects, and the
    walk of a page's reactions
    =========================================================================
*/

#include "ss_timeline.h"
#include "ss_files.h"
#include "st_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    S_SQL_TARGET,
    S_SQL_EDIT,
    S_SQL_BLANK_EDITS,
    S_SQL_DELETE,
    S_SQL_DROP_ALL,
    S_SQL_HAS,
    S_SQL_SINCE,
    S_SQL_EMOJI_COUNT,
    S_SQL_PUT,
    S_SQL_DROP,
    S_SQL_WALK_DOWN,
    S_SQL_WALK_UP,
    S_SQL_WALK_ONE,
    S_SQL_FILE_OF,
    S_SQL_FILES_OF_KEY,
    S_SQL_COUNT
} s_sql_t;

//  The statements over @E (entries), @R (reactions), @K (the timeline's
//  key column) and @A (a row's author, lower-cased). Every one is a search
//  or a range of a primary key or of *_by_target: never a scan.
static const char *s_sql_template [S_SQL_COUNT] = {
    [S_SQL_TARGET]      = "SELECT kind, deleted, @A FROM @E WHERE @K = ?1 AND seq = ?2",
    [S_SQL_EDIT]        = "UPDATE @E SET text = ?3, edited = ?4 WHERE @K = ?1 AND seq = ?2",
    [S_SQL_BLANK_EDITS] = "UPDATE @E SET text = '' WHERE @K = ?1 AND target = ?2"
                          " AND kind = 'edit'",
    [S_SQL_DELETE]      = "UPDATE @E SET text = '', deleted = 1, file_id = NULL,"
                          " file_name = NULL, file_size = NULL, file_type = NULL"
                          " WHERE @K = ?1 AND seq = ?2",
    [S_SQL_DROP_ALL]    = "DELETE FROM @R WHERE @K = ?1 AND seq = ?2",
    [S_SQL_HAS]         = "SELECT 1 FROM @R WHERE @K = ?1 AND seq = ?2 AND emoji = ?3"
                          " AND user_key = ?4",
    [S_SQL_SINCE]       = "SELECT since FROM @R WHERE @K = ?1 AND seq = ?2 AND emoji = ?3"
                          " LIMIT 1",
    [S_SQL_EMOJI_COUNT] = "SELECT count (DISTINCT emoji) FROM @R WHERE @K = ?1 AND seq = ?2",
    [S_SQL_PUT]         = "INSERT INTO @R (@K, seq, emoji, user_key, user, at, since)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_SQL_DROP]        = "DELETE FROM @R WHERE @K = ?1 AND seq = ?2 AND emoji = ?3"
                          " AND user_key = ?4",
    [S_SQL_WALK_DOWN]   = "SELECT seq, emoji, user, at, since FROM @R WHERE @K = ?1"
                          " AND seq < ?2 ORDER BY seq DESC",
    [S_SQL_WALK_UP]     = "SELECT seq, emoji, user, at, since FROM @R WHERE @K = ?1"
                          " AND seq > ?2 ORDER BY seq ASC",
    [S_SQL_WALK_ONE]    = "SELECT seq, emoji, user, at, since FROM @R WHERE @K = ?1"
                          " AND seq = ?2",
    //  Files (schema version 13): a message's, and a whole timeline's (a
    //  room being deleted: a range of the primary key, as the deletion)
    [S_SQL_FILE_OF]     = "SELECT file_id FROM @E WHERE @K = ?1 AND seq = ?2"
                          " AND file_id IS NOT NULL",
    [S_SQL_FILES_OF_KEY]
                        = "SELECT DISTINCT file_id FROM @E WHERE @K = ?1"
                          " AND file_id IS NOT NULL"
};

struct ss_timeline_s {
    ss_db_t *db;                    //  lent
    ss_files_t *files;              //  the files messages refer to (checks, releases)
    sqlite3_stmt *sql [S_SQL_COUNT];
    sqlite3_stmt *walk;             //  the walk under way, NULL for none
    int walk_rc;                    //  what it met: SQLITE_OK or a failure
};

//  Writes template into out with its tokens replaced by the tables' names
static void
s_expand (const char *template, const ss_timeline_tables_t *tables, char *out, size_t size)
{
    size_t used = 0;
    for (const char *c = template; *c && used + 1 < size; c++) {
        const char *name = NULL;
        if (c [0] == '@' && c [1])
            name = c [1] == 'E' ? tables->entries : c [1] == 'R' ? tables->reactions
                 : c [1] == 'K' ? tables->key : c [1] == 'A' ? tables->author : NULL;
        if (name) {
            used += (size_t) snprintf (out + used, size - used, "%s", name);
            if (used >= size)
                used = size - 1;
            c++;
        }
        else
            out [used++] = *c;
    }
    out [used] = 0;
}

ss_timeline_t *
ss_timeline_new (ss_db_t *db, const ss_timeline_tables_t *tables)
{
    ss_timeline_t *self = (ss_timeline_t *) calloc (1, sizeof (ss_timeline_t));
    if (!self)
        return NULL;
    self->db = db;
    char texts [S_SQL_COUNT][512];
    const char *text_of [S_SQL_COUNT];
    for (int index = 0; index < S_SQL_COUNT; index++) {
        s_expand (s_sql_template [index], tables, texts [index], sizeof texts [index]);
        text_of [index] = texts [index];
    }
    //  Prepared at once: the texts need not outlive this call
    if (ss_db_prepare (db, text_of, S_SQL_COUNT, self->sql)
    ||  !(self->files = ss_files_new (db, NULL)))
        ss_timeline_destroy (&self);
    return self;
}

void
ss_timeline_destroy (ss_timeline_t **self_p)
{
    ss_timeline_t *self = *self_p;
    if (!self)
        return;
    ss_db_finalize (self->sql, S_SQL_COUNT);
    ss_files_destroy (&self->files);
    free (self);
    *self_p = NULL;
}

bool
ss_timeline_changes (const st_change_t *change)
{
    return change->kind == ST_KIND_EDIT || change->kind == ST_KIND_DELETE
        || change->kind == ST_KIND_REACTION
        || (change->kind == ST_KIND_MESSAGE && (change->reply_to || change->file.id.data));
}

st_kind_t
ss_timeline_kind (sqlite3_stmt *stmt, int column)
{
    const char *kind = (const char *) sqlite3_column_text (stmt, column);
    for (int index = 0; kind && index <= ST_KIND_REACTION; index++)
        if (strcmp (kind, st_kind_name ((st_kind_t) index)) == 0)
            return (st_kind_t) index;
    return ST_KIND_MESSAGE;
}

void
ss_timeline_change_of_row (sqlite3_stmt *stmt, int first, st_change_t *change)
{
    change->reply_to = (uint64_t) sqlite3_column_int64 (stmt, first);
    change->edited = sqlite3_column_type (stmt, first + 1) != SQLITE_NULL;
    change->edited_at = sqlite3_column_int64 (stmt, first + 1);
    change->deleted = sqlite3_column_int (stmt, first + 2) != 0;
    change->target = (uint64_t) sqlite3_column_int64 (stmt, first + 3);
    if (sqlite3_column_type (stmt, first + 4) != SQLITE_NULL)
        change->emoji = ss_db_column_text (stmt, first + 4);
    change->on = sqlite3_column_int (stmt, first + 5) != 0;
    if (sqlite3_column_type (stmt, first + 6) != SQLITE_NULL) {
        change->file.id = ss_db_column_text (stmt, first + 6);
        change->file.name = ss_db_column_text (stmt, first + 7);
        change->file.size = (uint64_t) sqlite3_column_int64 (stmt, first + 8);
        change->file.type = ss_db_column_text (stmt, first + 9);
    }
}

void
ss_timeline_bind_file (sqlite3_stmt *stmt, int first, const st_change_t *change)
{
    if (change->kind != ST_KIND_MESSAGE || !change->file.id.data)
        return;
    ss_db_bind_text (stmt, first, change->file.id);
    ss_db_bind_text (stmt, first + 1, change->file.name);
    sqlite3_bind_int64 (stmt, first + 2, (int64_t) change->file.size);
    ss_db_bind_text (stmt, first + 3, change->file.type);
}


//  --------------------------------------------------------------------------
//  Checks

//  Binds the timeline and a message's seq, the first two of every statement
static sqlite3_stmt *
s_bound (ss_timeline_t *self, s_sql_t sql, const ss_change_t *element, uint64_t seq)
{
    sqlite3_stmt *stmt = self->sql [sql];
    sqlite3_bind_int64 (stmt, 1, element->key);
    sqlite3_bind_int64 (stmt, 2, (int64_t) seq);
    return stmt;
}

//  The target as a check needs it: found (a message not deleted) and its
//  author, lower-cased, into author
static int
s_target (ss_timeline_t *self, const ss_change_t *element, uint64_t seq, bool *found_p,
          char *author)
{
    sqlite3_stmt *stmt = s_bound (self, S_SQL_TARGET, element, seq);
    int rc = sqlite3_step (stmt);
    *found_p = false;
    if (rc == SQLITE_ROW) {
        *found_p = ss_timeline_kind (stmt, 0) == ST_KIND_MESSAGE
                && sqlite3_column_int (stmt, 1) == 0;
        const char *key = (const char *) sqlite3_column_text (stmt, 2);
        snprintf (author, ST_NAME_MAX + 1, "%s", key ? key : "");
        rc = SQLITE_DONE;
    }
    ss_db_finish (stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

//  Binds a reaction's target, emoji and (when with_user) its user
static sqlite3_stmt *
s_reaction_bound (ss_timeline_t *self, s_sql_t sql, const ss_change_t *element, bool with_user)
{
    sqlite3_stmt *stmt = s_bound (self, sql, element, element->change->target);
    ss_db_bind_text (stmt, 3, element->change->emoji);
    if (with_user)
        sqlite3_bind_text (stmt, 4, element->actor_key, -1, SQLITE_STATIC);
    return stmt;
}

//  Runs a bound statement that yields one integer: *value_p, *found_p
static int
s_one_value (sqlite3_stmt *stmt, int64_t *value_p, bool *found_p)
{
    int rc = sqlite3_step (stmt);
    *found_p = rc == SQLITE_ROW;
    *value_p = *found_p ? sqlite3_column_int64 (stmt, 0) : 0;
    ss_db_finish (stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

//  A reaction: unchanged when it is there already (on) or not there
//  (off); too many when its emoji would be one more than the most
static int
s_check_reaction (ss_timeline_t *self, const ss_change_t *element, const char **code_p)
{
    int64_t value;
    bool has, present;
    int rc = s_one_value (s_reaction_bound (self, S_SQL_HAS, element, true), &value, &has);
    if (rc != SQLITE_OK)
        return rc;
    if (has == element->change->on) {
        *code_p = ST_UNCHANGED;
        return SQLITE_OK;
    }
    if (!element->change->on)
        return SQLITE_OK;
    rc = s_one_value (s_reaction_bound (self, S_SQL_SINCE, element, false), &value, &present);
    if (rc != SQLITE_OK || present)
        return rc;
    int64_t emoji = 0;
    rc = s_one_value (s_bound (self, S_SQL_EMOJI_COUNT, element, element->change->target),
                      &emoji, &present);
    if (rc == SQLITE_OK && emoji >= ST_REACTIONS_MAX)
        *code_p = ST_TOO_MANY_REACTIONS;
    return rc;
}

int
ss_timeline_check (ss_timeline_t *self, const ss_change_t *element, const char **code_p)
{
    const st_change_t *change = element->change;
    *code_p = NULL;
    if (change->kind == ST_KIND_MESSAGE && change->file.id.data) {
        int rc = ss_files_check (self->files, &change->file, element->actor_key, code_p);
        if (rc != SQLITE_OK || *code_p || !change->reply_to)
            return rc;
    }
    bool found;
    char author [ST_NAME_MAX + 1] = "";
    uint64_t seq = change->kind == ST_KIND_MESSAGE ? change->reply_to : change->target;
    int rc = s_target (self, element, seq, &found, author);
    if (rc != SQLITE_OK)
        return rc;
    if (!found)
        *code_p = ST_NO_SUCH_MESSAGE;
    else
    if (change->kind == ST_KIND_EDIT && strcmp (author, element->actor_key) != 0)
        *code_p = ST_FORBIDDEN;
    else
    if (change->kind == ST_KIND_DELETE && strcmp (author, element->actor_key) != 0
    &&  !(element->owner_key && strcmp (element->owner_key, element->actor_key) == 0))
        *code_p = ST_FORBIDDEN;
    else
    if (change->kind == ST_KIND_REACTION)
        return s_check_reaction (self, element, code_p);
    return SQLITE_OK;
}


//  --------------------------------------------------------------------------
//  Effects

//  A deletion: its edits' texts first, then the message, then its
//  reactions. secure_delete overwrites the freed bytes.
static int
s_apply_delete (ss_timeline_t *self, const ss_change_t *element)
{
    uint64_t target = element->change->target;
    char file_id [ST_FILE_ID_MAX + 1] = "";
    sqlite3_stmt *stmt = s_bound (self, S_SQL_FILE_OF, element, target);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW)
        snprintf (file_id, sizeof file_id, "%s", (const char *) sqlite3_column_text (stmt, 0));
    ss_db_finish (stmt);
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    if (rc == SQLITE_OK)
        rc = ss_db_step_done (s_bound (self, S_SQL_BLANK_EDITS, element, target));
    if (rc == SQLITE_OK)
        rc = ss_db_step_done (s_bound (self, S_SQL_DELETE, element, target));
    if (rc == SQLITE_OK)
        rc = ss_db_step_done (s_bound (self, S_SQL_DROP_ALL, element, target));
    //  Its file goes with its last reference (schema version 13)
    if (rc == SQLITE_OK && *file_id)
        rc = ss_files_release (self->files, file_id);
    return rc;
}

//  A reaction on: its since is its emoji's (the seq the emoji went from
//  none to one), or its own seq when the emoji is new on the message
static int
s_apply_reaction (ss_timeline_t *self, const ss_change_t *element)
{
    if (!element->change->on)
        return ss_db_step_done (s_reaction_bound (self, S_SQL_DROP, element, true));
    int64_t since;
    bool present;
    int rc = s_one_value (s_reaction_bound (self, S_SQL_SINCE, element, false), &since,
                         &present);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *stmt = s_reaction_bound (self, S_SQL_PUT, element, true);
    ss_db_bind_text (stmt, 5, element->actor);
    sqlite3_bind_int64 (stmt, 6, (int64_t) element->seq);
    sqlite3_bind_int64 (stmt, 7, present ? since : (int64_t) element->seq);
    return ss_db_step_done (stmt);
}

int
ss_timeline_apply (ss_timeline_t *self, const ss_change_t *element)
{
    const st_change_t *change = element->change;
    if (change->kind == ST_KIND_EDIT) {
        sqlite3_stmt *stmt = s_bound (self, S_SQL_EDIT, element, change->target);
        ss_db_bind_text (stmt, 3, element->text);
        sqlite3_bind_int64 (stmt, 4, element->ts);
        return ss_db_step_done (stmt);
    }
    if (change->kind == ST_KIND_DELETE)
        return s_apply_delete (self, element);
    if (change->kind == ST_KIND_REACTION)
        return s_apply_reaction (self, element);
    return SQLITE_OK;               //  a reply changes nothing but its own row
}


//  --------------------------------------------------------------------------
//  The walk of a page's reactions

static int
s_walk_next (void *cursor, st_reaction_t *row)
{
    ss_timeline_t *self = (ss_timeline_t *) cursor;
    int rc = sqlite3_step (self->walk);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW) {
        self->walk_rc = rc;
        return -1;
    }
    row->seq = (uint64_t) sqlite3_column_int64 (self->walk, 0);
    row->emoji = ss_db_column_text (self->walk, 1);
    row->user = ss_db_column_text (self->walk, 2);
    row->at = (uint64_t) sqlite3_column_int64 (self->walk, 3);
    row->since = (uint64_t) sqlite3_column_int64 (self->walk, 4);
    return 1;
}

static st_reactions_t *
s_walk_start (ss_timeline_t *self, s_sql_t sql, int64_t key, uint64_t seq, bool descending)
{
    self->walk = self->sql [sql];
    self->walk_rc = SQLITE_OK;
    sqlite3_bind_int64 (self->walk, 1, key);
    sqlite3_bind_int64 (self->walk, 2, seq > INT64_MAX ? INT64_MAX : (int64_t) seq);
    st_reactions_t *reactions = st_reactions_new (s_walk_next, self, descending);
    if (!reactions) {
        ss_db_finish (self->walk);
        self->walk = NULL;
    }
    return reactions;
}

st_reactions_t *
ss_timeline_walk (ss_timeline_t *self, int64_t key, bool forward, uint64_t from)
{
    return s_walk_start (self, forward ? S_SQL_WALK_UP : S_SQL_WALK_DOWN, key, from, !forward);
}

st_reactions_t *
ss_timeline_walk_one (ss_timeline_t *self, int64_t key, uint64_t seq)
{
    return s_walk_start (self, S_SQL_WALK_ONE, key, seq, false);
}

int
ss_timeline_walk_end (ss_timeline_t *self, st_reactions_t **reactions_p)
{
    st_reactions_destroy (reactions_p);
    if (self->walk)
        ss_db_finish (self->walk);
    self->walk = NULL;
    return self->walk_rc;
}


//  --------------------------------------------------------------------------
//  A run

//  The refusals of one pass over a run
typedef struct {
    st_refusal_t refused [ST_RUN_MAX];
    uint32_t count;
} s_refusals_t;

//  One pass over the run's elements but those skipped
static int
s_run_pass (st_request_t *request, const ss_run_t *run, const bool *skip,
            s_refusals_t *refusals)
{
    refusals->count = 0;
    for (uint32_t index = 0; index < run->count && index < ST_RUN_MAX; index++) {
        if (skip [index])
            continue;
        const char *code = NULL;
        int rc = run->element (run->arg, index, &code);
        if (rc != SQLITE_OK || !st_request_live (request))
            return rc;
        if (code)
            refusals->refused [refusals->count++] = (st_refusal_t) { index, code };
    }
    return SQLITE_OK;
}

//  The run met a stored nonce: undone, its repeats found, and the rest
//  checked again without them (the elements after a repeat must not see it)
static int
s_run_without_repeats (ss_timeline_t *self, st_request_t *request, const ss_run_t *run,
                       bool *skip, s_refusals_t *refusals, st_duplicate_t *duplicates,
                       uint32_t *repeated_p)
{
    int rc = ss_db_nonce_undo (self->db, run->nonce_stmt, request, run->count, run->bind_nonce,
                               run->nonce_arg, run->where, duplicates, repeated_p);
    if (rc != SQLITE_OK || !st_request_live (request))
        return rc;
    for (uint32_t index = 0; index < *repeated_p; index++)
        skip [duplicates [index].index] = true;
    rc = s_run_pass (request, run, skip, refusals);
    if (rc == SQLITE_CONSTRAINT_UNIQUE) {
        st_request_fail (request, "conflict", "%s has a nonce twice in one run.", run->where);
        rc = SQLITE_OK;
    }
    return rc;
}

int
ss_timeline_run (ss_timeline_t *self, st_request_t *request, const ss_run_t *run,
                 bool *stored_p)
{
    bool skip [ST_RUN_MAX] = { false };
    s_refusals_t refusals;
    st_duplicate_t duplicates [ST_RUN_MAX];
    uint32_t repeated = 0;
    *stored_p = false;
    //  Inserted first: a run without a repeat (the common case) pays no
    //  look-up of its nonces
    int rc = s_run_pass (request, run, skip, &refusals);
    if (rc == SQLITE_CONSTRAINT_UNIQUE)
        rc = s_run_without_repeats (self, request, run, skip, &refusals, duplicates, &repeated);
    if (rc != SQLITE_OK || !st_request_live (request))
        return rc;
    if (refusals.count == 0 && repeated == 0) {
        *stored_p = true;
        return SQLITE_OK;
    }
    //  Nothing of the request stays: the caller sends the rest again
    rc = ss_db_step (self->db, SS_DB_ROLLBACK_TO);
    if (rc == SQLITE_OK)
        st_reply_refused (request, refusals.refused, refusals.count, duplicates, repeated);
    return rc;
}


//  --------------------------------------------------------------------------
//  A timeline deleted whole (schema version 13): its files' references

int
ss_timeline_drop_files (ss_timeline_t *self, int64_t key, ss_timeline_drop_fn *drop, void *arg)
{
    //  The ids first: the rows that hold them go with the drop
    size_t count = 0, allocated = 0;
    char **ids = NULL;
    sqlite3_stmt *stmt = self->sql [S_SQL_FILES_OF_KEY];
    sqlite3_bind_int64 (stmt, 1, key);
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if (count == allocated) {
            allocated = allocated ? allocated * 2 : 16;
            char **grown = (char **) realloc (ids, allocated * sizeof (char *));
            if (!grown) {
                rc = SQLITE_NOMEM;
                break;
            }
            ids = grown;
        }
        if (!(ids [count] = strdup ((const char *) sqlite3_column_text (stmt, 0)))) {
            rc = SQLITE_NOMEM;
            break;
        }
        count++;
    }
    ss_db_finish (stmt);
    rc = rc == SQLITE_DONE ? drop (arg) : rc;
    for (size_t index = 0; index < count; index++) {
        if (rc == SQLITE_OK)
            rc = ss_files_release (self->files, ids [index]);
        free (ids [index]);
    }
    free (ids);
    return rc;
}

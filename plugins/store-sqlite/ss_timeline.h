/*  =========================================================================
    ss_timeline - store-sqlite's timeline changes: the checks and effects
    of edits, deletions, reactions and replies (proto/STORE.md, "Timeline
    changes", schema version 9), and the walk of a page's reactions

    One instance serves the rooms' timelines (entries, reactions, keyed by
    room_id) and one the conversations' (pm_entries, pm_reactions, keyed by
    conversation_id): the same statements over other tables. An append
    checks a change before it inserts its entry and applies it after, in
    the request's savepoint; a plain message (no reply_to) is neither
    checked nor applied, so it costs what it cost before.

    Ownership: the caller owns the instance (ss_timeline_new,
    ss_timeline_destroy); the database is lent for its life. A walk
    (ss_timeline_walk) is the caller's until ss_timeline_walk_end.
    =========================================================================
*/

#ifndef SS_TIMELINE_H_INCLUDED
#define SS_TIMELINE_H_INCLUDED

#include "ss_db.h"
#include "st_reactions.h"
#include "st_request.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_timeline_s ss_timeline_t;

//  The tables of one kind of timeline
typedef struct {
    const char *entries;            //  "entries" or "pm_entries"
    const char *reactions;          //  "reactions" or "pm_reactions"
    const char *key;                //  the timeline's column: "room_id", "conversation_id"
    const char *author;             //  SQL: the lower-cased author of an entries row
} ss_timeline_tables_t;

//  One element of a run, as the checks see it
typedef struct {
    int64_t key;                    //  the room's or the conversation's id
    const char *owner_key;          //  who may delete others' messages (lower-cased),
                                    //  NULL: only the author
    const char *actor_key;          //  who makes the change, lower-cased
    st_text_t actor;                //  the same as the entry gives it (a reaction keeps it)
    uint64_t seq;                   //  the change's own entry
    int64_t ts;
    st_text_t text;                 //  an edit's new text
    const st_change_t *change;
} ss_change_t;

//  An append's run, as ss_timeline_run drives it
typedef struct {
    uint32_t count;                 //  elements, 1 to ST_RUN_MAX
    //  Runs element index: checks it (*code_p set when refused: then it
    //  writes nothing), inserts its entry and applies it. Returns SQLITE_OK,
    //  SQLITE_CONSTRAINT_UNIQUE when its nonce is stored already, or a
    //  failure; may fail the request (conflict)
    int (*element) (void *arg, uint32_t index, const char **code_p);
    void *arg;                      //  the caller's, for element
    ss_db_nonce_bind_fn *bind_nonce;    //  binds element index's nonce look-up
    void *nonce_arg;                //  the caller's, for bind_nonce
    sqlite3_stmt *nonce_stmt;       //  the look-up
    const char *where;              //  "The room", "The conversation"
} ss_run_t;

//  Prepares the statements over tables. NULL after logging why not.
ss_timeline_t *
    ss_timeline_new (ss_db_t *db, const ss_timeline_tables_t *tables);

void
    ss_timeline_destroy (ss_timeline_t **self_p);

//  Runs an append's elements in the request's savepoint, in order, each
//  seeing those before it that were not refused. When any element is
//  refused or repeats a stored nonce, nothing stays (back to the
//  savepoint) and the request is answered {refused, duplicates}; the
//  elements after a repeat are checked without it. *stored_p is true when
//  every element was appended: the caller finishes the write and answers.
//  Returns SQLITE_OK or the failure's code.
int
    ss_timeline_run (ss_timeline_t *self, st_request_t *request, const ss_run_t *run,
                     bool *stored_p);

//  True when an element must be checked and applied: a change, or a reply
bool
    ss_timeline_changes (const st_change_t *change);

//  Checks an element against the timeline as the run has left it:
//  *code_p is NULL when it passes, else the refusal's code (st_reply.h).
//  Returns SQLITE_OK or the failure's code.
int
    ss_timeline_check (ss_timeline_t *self, const ss_change_t *element, const char **code_p);

//  Applies a checked element's effects to its target. SQLITE_OK or the code.
int
    ss_timeline_apply (ss_timeline_t *self, const ss_change_t *element);

//  The kind in a row's kind column
st_kind_t
    ss_timeline_kind (sqlite3_stmt *stmt, int column);

//  Reads a row's change columns from first on, in this order: reply_to,
//  edited, deleted, target, emoji, on_, then a message's file (schema
//  version 13: file_id, file_name, file_size, file_type)
//  (SS_TIMELINE_COLUMNS), into change (its kind set already); borrowed
//  until the next step
#define SS_TIMELINE_COLUMNS     "reply_to, edited, deleted, target, emoji, on_," \
                                " file_id, file_name, file_size, file_type"
void
    ss_timeline_change_of_row (sqlite3_stmt *stmt, int first, st_change_t *change);

//  Binds a message's file (schema version 13) to an insert's parameters
//  first to first + 3 (file_id, file_name, file_size, file_type); binds
//  nothing for no file (NULLs once the statement was reset)
void
    ss_timeline_bind_file (sqlite3_stmt *stmt, int first, const st_change_t *change);

//  Deletes a whole timeline (a room) with its files' references: reads
//  the ids of the files its entries refer to, calls drop (arg) (which
//  deletes the rows), then deletes each file no other entry refers to.
//  SQLITE_OK, or the failure's code (drop's included).
typedef int (ss_timeline_drop_fn) (void *arg);
int
    ss_timeline_drop_files (ss_timeline_t *self, int64_t key, ss_timeline_drop_fn *drop,
                            void *arg);

//  Starts a walk of a timeline's reactions from a page's cursor: seqs
//  below from going down, or above it going up (forward). Returns the
//  reactions to load per entry, NULL when out of memory.
st_reactions_t *
    ss_timeline_walk (ss_timeline_t *self, int64_t key, bool forward, uint64_t from);

//  The same for one message only (the seq)
st_reactions_t *
    ss_timeline_walk_one (ss_timeline_t *self, int64_t key, uint64_t seq);

//  Ends a walk: *reactions_p destroyed and nullified, its statement reset.
//  Returns SQLITE_OK, or the failure the walk met.
int
    ss_timeline_walk_end (ss_timeline_t *self, st_reactions_t **reactions_p);

#ifdef __cplusplus
}
#endif

#endif

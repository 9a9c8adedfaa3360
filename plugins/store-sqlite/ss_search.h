/*  =========================================================================
    ss_search - store-sqlite's search (proto/STORE.md, "Search", schema
    version 15): store.search over the FTS5 index of the index file

    The index (the FTS5 table search and the map search_docs) lives in its
    own file, written by ss_indexer's thread only and attached read-only
    to the store's connection as 'idx': a search walks it and reads the
    scope (members, conversations) and the entries from the main file in
    the same statement. A search runs only in a transaction that begins
    after the indexer passed every commit before the search came (the
    store sets it aside until then: ss_indexer_passed), so the index
    holds every message committed before it.

    Ownership: ss_search_new returns an object the caller owns, destroyed
    with ss_search_destroy before the database, users, rooms and pm it was
    made with (all borrowed).
    =========================================================================
*/

#ifndef SS_SEARCH_H_INCLUDED
#define SS_SEARCH_H_INCLUDED

#include "ss_db.h"
#include "ss_pm.h"
#include "ss_rooms.h"
#include "ss_users.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_search_s ss_search_t;

//  Prepares the statements on db. NULL after logging why not.
ss_search_t *
    ss_search_new (ss_db_t *db, ss_users_t *users, ss_rooms_t *rooms, ss_pm_t *pm);

void
    ss_search_destroy (ss_search_t **self_p);

//  Runs store.search inside the open transaction, setting its answer.
//  Returns SQLITE_OK (an ok or a request error) or the failure's code.
int
    ss_search_run (ss_search_t *self, st_request_t *request);

//  True when a committed request may have left words of an edited or
//  deleted message in the index (an append with an edit or a deletion, a
//  room's deletion): the next compaction has work
bool
    ss_search_leaves_words (const st_request_t *request);

#ifdef __cplusplus
}
#endif

#endif

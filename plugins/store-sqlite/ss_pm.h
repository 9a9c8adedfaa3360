/*  =========================================================================
    ss_pm - store-sqlite's private messages: conversations, their messages
    and read markers, store.pm.* (proto/STORE.md)

    Ownership: ss_pm_new returns an object the caller owns, destroyed with
    ss_pm_destroy before the database and the users it was made with (both
    borrowed).
    =========================================================================
*/

#ifndef SS_PM_H_INCLUDED
#define SS_PM_H_INCLUDED

#include "ss_db.h"
#include "ss_indexer.h"
#include "ss_users.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_pm_s ss_pm_t;

//  Prepares the statements on db. Returns NULL after logging why not.
ss_pm_t *
    ss_pm_new (ss_db_t *db, ss_users_t *users, ss_indexer_t *indexer);

void
    ss_pm_destroy (ss_pm_t **self_p);

//  True for the request types ss_pm_run serves
bool
    ss_pm_serves (st_type_t type);

//  Runs one request inside the open transaction, as ss_users_run does
int
    ss_pm_run (ss_pm_t *self, st_request_t *request);

//  Packs a search's result (schema version 12) into packer: {from, to,
//  entry}, the entry (conversation, seq) as store.pm.history answers it,
//  its reactions included. *found_p is false (nothing packed) when there is
//  no such entry. Returns SQLITE_OK or the failure's code.
int
    ss_pm_pack_found (ss_pm_t *self, msgpack_packer *packer, int64_t conversation,
                      uint64_t seq, bool *found_p);

#ifdef __cplusplus
}
#endif

#endif

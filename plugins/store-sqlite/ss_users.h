/*  =========================================================================
    ss_users - store-sqlite's users and tokens: store.user.* and
    store.token.* (proto/STORE.md), and the look-up of a user by name that
    the rooms and private messages share

    Ownership: ss_users_new returns an object the caller owns, destroyed
    with ss_users_destroy before the database it was made on (borrowed).
    =========================================================================
*/

#ifndef SS_USERS_H_INCLUDED
#define SS_USERS_H_INCLUDED

#include "ss_db.h"
#include "st_request.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_users_s ss_users_t;

//  Prepares the statements on db. Returns NULL after logging why not.
ss_users_t *
    ss_users_new (ss_db_t *db);

void
    ss_users_destroy (ss_users_t **self_p);

//  True for the request types ss_users_run serves
bool
    ss_users_serves (st_type_t type);

//  Runs one request inside the open transaction, setting its answer.
//  Returns SQLITE_OK (an ok or a request error such as conflict, set on
//  the request), or the SQLite code that ended it.
int
    ss_users_run (ss_users_t *self, st_request_t *request);

//  The id of the user named name (any case), 0 if there is none; the name
//  as registered into registered (ST_NAME_MAX + 1 bytes) when not NULL.
//  *rc_p gets SQLITE_OK or the failure's code.
int64_t
    ss_users_find (ss_users_t *self, const st_name_t *name, char *registered, int *rc_p);

#ifdef __cplusplus
}
#endif

#endif

/*  =========================================================================
    sm_users - users and login tokens

    users   {_id: ObjectId, name, name_lower, password_hash, created_at,
             last_seen}                       unique index on name_lower
    tokens  {_id: ObjectId, token_hash, user, created_at, expires_at,
             last_used_at}    unique index on token_hash; indexes on user,
                              expires_at and (user, last_used_at)

    tokens.user is the owner's name as registered (names never change), so
    that store.token.get, the hot path of every login by token, is one find.
    user.create, token.put and user.seen come in runs (sm_run_*(first,
    end)); the others are one round trip each.
    =========================================================================
*/

#ifndef SM_USERS_H_INCLUDED
#define SM_USERS_H_INCLUDED

#include "sm_store.h"

int
    sm_run_user_create (sm_store_t *self, sm_pending_t *first, sm_pending_t *end);

int
    sm_run_token_put (sm_store_t *self, sm_pending_t *first, sm_pending_t *end);

int
    sm_run_user_seen (sm_store_t *self, sm_pending_t *first, sm_pending_t *end);

int
    sm_run_user_get (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                     bson_error_t *error);

int
    sm_run_user_list (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                      bson_error_t *error);

int
    sm_run_token_get (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                      bson_error_t *error);

int
    sm_run_token_delete (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                         bson_error_t *error);

//  The user's name as registered, into name (ST_NAME_MAX + 1 bytes)
int
    sm_find_user_name (sm_store_t *self, const char *key, char *name, bson_error_t *error);

int
    sm_run_token_delete_user (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                              bson_error_t *error);

int
    sm_run_token_purge (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                        bson_error_t *error);

//  store.token.touch {token_hash, at}: the token's last use is at least at
int
    sm_run_token_touch (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                        bson_error_t *error);

//  store.token.trim {user, keep}: deletes the user's tokens past the keep
//  most recently used (at most ST_TRIM_MAX) and answers their hashes. One
//  range of the (user, last_used_at) index.
int
    sm_run_token_trim (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                       bson_error_t *error);

#endif//  The operator's (parleyctl, through auth): an account's state, a new
//  password; both revoke the user's tokens (set_state: unless active)
int
    sm_run_user_set_state (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                           bson_error_t *error);
int
    sm_run_user_set_password (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                              bson_error_t *error);



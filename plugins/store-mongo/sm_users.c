/*  =========================================================================
    sm_users - users and login tokens (see sm_users.h)
    =========================================================================
*/

#include "sm_store.h"
#include "pl_body.h"
#include "st_list.h"
#include "sm_common.h"
#include "st_reply.h"
#include "sm_conn.h"
#include "sm_users.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
s_build_user (const sm_pending_t *pending, bson_t *document)
{
    bson_oid_t oid;
    bson_oid_init (&oid, NULL);
    BSON_APPEND_OID (document, "_id", &oid);
    bson_append_utf8 (document, "name", 4, pending->name.data, (int) pending->name.size);
    BSON_APPEND_UTF8 (document, "name_lower", pending->key);
    bson_append_utf8 (document, "password_hash", 13, pending->hash.data, (int) pending->hash.size);
    BSON_APPEND_INT64 (document, "created_at", pending->created_at);
    BSON_APPEND_NULL (document, "last_seen");
}

int
sm_run_user_create (sm_store_t *self, sm_pending_t *first, sm_pending_t *end)
{
    bson_error_t error;
    sm_match_t match = { first, end, sm_name_key_of, "name_lower", "conflict" };
    if (sm_match_run (self, self->users, &match, NULL, &error)) {
        sm_note_failure (self, "looking for taken names", &error);
        sm_fail_run (self, first, end, &error);
        return sm_is_unreachable (&error) ? -1 : 0;
    }
    sm_settle_duplicates (first, end, sm_name_key_of);
    int rc = sm_insert_run (self, self->users, first, end, s_build_user, "inserting users");
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending)) {
            msgpack_packer *packer = sm_packer (pending);
            msgpack_pack_map (packer, 2);
            pl_body_pack_str (packer, "name");
            msgpack_pack_str_with_body (packer, pending->name.data, pending->name.size);
            pl_body_pack_str (packer, "created_at");
            msgpack_pack_int64 (packer, pending->created_at);
        }
    return rc;
}

static void
s_build_token (const sm_pending_t *pending, bson_t *document)
{
    bson_oid_t oid;
    bson_oid_init (&oid, NULL);
    BSON_APPEND_OID (document, "_id", &oid);
    bson_append_utf8 (document, "token_hash", 10, pending->hash.data, (int) pending->hash.size);
    BSON_APPEND_UTF8 (document, "user", pending->owner);
    BSON_APPEND_INT64 (document, "created_at", pending->created_at);
    BSON_APPEND_INT64 (document, "expires_at", pending->expires_at);
    BSON_APPEND_INT64 (document, "last_used_at", pending->created_at);
}

//  A run of token.put, and the owners the operator disabled or deleted
typedef struct {
    sm_pending_t *first, *end;
} s_run_t;

static void
s_on_inactive_owner (void *arg, const bson_t *document)
{
    s_run_t *run = (s_run_t *) arg;
    char key [ST_NAME_MAX + 1], state [16];
    sm_copy_bson_str (document, "name_lower", key, sizeof key);
    sm_copy_bson_str (document, "state", state, sizeof state);
    for (sm_pending_t *pending = run->first; pending < run->end; pending++)
        if (sm_is_live (pending) && strcmp (pending->key, key) == 0) {
            if (strcmp (state, "deleted") == 0)
                sm_fail (pending, "not_found", "No user is named '%.*s'.",
                         (int) pending->name.size, pending->name.data);
            else
                sm_fail (pending, "forbidden", "The account '%s' is %s.", pending->owner, state);
        }
}

//  Fails the token.put of owners that are not active: one find for the run
static int
s_refuse_inactive (sm_store_t *self, sm_pending_t *first, sm_pending_t *end,
                   bson_error_t *error)
{
    bson_t filter = BSON_INITIALIZER, key, keys, state, states;
    BSON_APPEND_DOCUMENT_BEGIN (&filter, "name_lower", &key);
    BSON_APPEND_ARRAY_BEGIN (&key, "$in", &keys);
    uint32_t index = 0;
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending)) {
            char number [16];
            snprintf (number, sizeof number, "%u", index++);
            BSON_APPEND_UTF8 (&keys, number, pending->key);
        }
    bson_append_array_end (&key, &keys);
    bson_append_document_end (&filter, &key);
    BSON_APPEND_DOCUMENT_BEGIN (&filter, "state", &state);
    BSON_APPEND_ARRAY_BEGIN (&state, "$in", &states);
    BSON_APPEND_UTF8 (&states, "0", "disabled");
    BSON_APPEND_UTF8 (&states, "1", "deleted");
    bson_append_array_end (&state, &states);
    bson_append_document_end (&filter, &state);
    s_run_t run = { first, end };
    int rc = index ? sm_find (self, self->users, &filter, NULL, s_on_inactive_owner, &run, error)
                   : 0;
    bson_destroy (&filter);
    return rc;
}

int
sm_run_token_put (sm_store_t *self, sm_pending_t *first, sm_pending_t *end)
{
    bson_error_t error;
    //  The owners first: not_found is the caller's to know, and the token
    //  is stored under the name as registered
    sm_match_t owners = { first, end, sm_name_key_of, "name_lower", NULL };
    if (sm_match_run (self, self->users, &owners, "name", &error)) {
        sm_note_failure (self, "looking up token owners", &error);
        sm_fail_run (self, first, end, &error);
        return sm_is_unreachable (&error) ? -1 : 0;
    }
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending) && pending->owner [0] == 0)
            sm_fail (pending, "not_found", "No user is named '%.*s'.",
                     (int) pending->name.size, pending->name.data);
    if (s_refuse_inactive (self, first, end, &error)) {
        sm_note_failure (self, "looking up the owners' state", &error);
        sm_fail_run (self, first, end, &error);
        return sm_is_unreachable (&error) ? -1 : 0;
    }

    sm_match_t taken = { first, end, sm_hash_key_of, "token_hash", "conflict" };
    if (sm_match_run (self, self->tokens, &taken, NULL, &error)) {
        sm_note_failure (self, "looking for stored token hashes", &error);
        sm_fail_run (self, first, end, &error);
        return sm_is_unreachable (&error) ? -1 : 0;
    }
    sm_settle_duplicates (first, end, sm_hash_key_of);
    int rc = sm_insert_run (self, self->tokens, first, end, s_build_token, "inserting tokens");
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending)) {
            msgpack_packer *packer = sm_packer (pending);
            msgpack_pack_map (packer, 1);
            pl_body_pack_str (packer, "user");
            pl_body_pack_str (packer, pending->owner);
        }
    return rc;
}

//  user.seen: the names of a run that exist, sorted for bsearch
typedef struct {
    char **keys;                    //  owned strings
    size_t count;
    size_t capacity;
} s_keys_t;

static int
s_compare_keys (const void *left, const void *right)
{
    return strcmp (*(char *const *) left, *(char *const *) right);
}

static void
s_on_known_user (void *arg, const bson_t *document)
{
    s_keys_t *known = (s_keys_t *) arg;
    char key [ST_NAME_MAX + 1];
    sm_copy_bson_str (document, "name_lower", key, sizeof key);
    if (known->count == known->capacity) {
        size_t capacity = known->capacity ? known->capacity * 2 : 64;
        char **keys = (char **) realloc (known->keys, capacity * sizeof (char *));
        if (!keys)
            return;         //  the user counts as unknown: skipped, never a crash
        known->keys = keys;
        known->capacity = capacity;
    }
    char *copy = strdup (key);
    if (copy)
        known->keys [known->count++] = copy;
}

static bool
s_is_known (const s_keys_t *known, const char *key)
{
    return known->count > 0
        && bsearch (&key, known->keys, known->count, sizeof (char *), s_compare_keys) != NULL;
}

//  Finds which of the names the run's live requests list are users, into
//  known (sorted). Returns 0, or -1 with error set.
static int
s_find_known (sm_store_t *self, sm_pending_t *first, sm_pending_t *end, s_keys_t *known,
              bson_error_t *error)
{
    bson_t filter, condition, array;
    sm_in_begin (&filter, "name_lower", &condition, &array);
    uint32_t count = 0;
    for (sm_pending_t *pending = first; pending < end; pending++)
        for (uint32_t index = 0; sm_is_live (pending) && index < pending->user_count; index++) {
            const st_name_t *name = &pending->users [index].name;
            sm_array_append_text (&array, &count, name->key, name->text.size);
        }
    sm_in_end (&filter, &condition, &array);
    bson_t *opts = BCON_NEW ("projection", "{", "name_lower", BCON_INT32 (1), "}");
    int rc = sm_find (self, self->users, &filter, opts, s_on_known_user, known, error);
    bson_destroy (opts);
    bson_destroy (&filter);
    if (rc == 0)
        qsort (known->keys, known->count, sizeof (char *), s_compare_keys);
    return rc;
}

//  Sets last_seen of the known users the run's live requests list, in one
//  ordered bulk (a name listed twice takes the later entry), and counts
//  each request's. Returns 0, or -1 with error set.
static int
s_set_last_seen (sm_store_t *self, sm_pending_t *first, sm_pending_t *end,
                 const s_keys_t *known, bson_error_t *error)
{
    bson_t *bulk_opts = BCON_NEW ("ordered", BCON_BOOL (true));
    mongoc_bulk_operation_t *bulk
        = mongoc_collection_create_bulk_operation_with_opts (self->users, bulk_opts);
    bson_destroy (bulk_opts);
    size_t updates = 0;
    for (sm_pending_t *pending = first; pending < end; pending++)
        for (uint32_t index = 0; sm_is_live (pending) && index < pending->user_count; index++) {
            const char *key = pending->users [index].name.key;
            if (!s_is_known (known, key))
                continue;           //  no such user: skipped, not an error
            pending->updated++;
            bson_t *selector = BCON_NEW ("name_lower", BCON_UTF8 (key));
            bson_t *update = BCON_NEW ("$set", "{", "last_seen",
                                       BCON_INT64 (pending->users [index].last_seen), "}");
            mongoc_bulk_operation_update_one_with_opts (bulk, selector, update, NULL, NULL);
            bson_destroy (selector);
            bson_destroy (update);
            updates++;
        }
    bool ok = true;
    if (updates > 0) {
        bson_t reply;
        self->round_trips++;
        ok = mongoc_bulk_operation_execute (bulk, &reply, error) != 0;
        bson_destroy (&reply);
    }
    mongoc_bulk_operation_destroy (bulk);
    if (ok && updates > 0)
        sm_mark_reachable (self);
    return ok ? 0 : -1;
}

int
sm_run_user_seen (sm_store_t *self, sm_pending_t *first, sm_pending_t *end)
{
    s_keys_t known = { NULL, 0, 0 };
    bson_error_t error;
    int rc = s_find_known (self, first, end, &known, &error);
    if (rc)
        sm_note_failure (self, "looking up users seen", &error);
    else {
        rc = s_set_last_seen (self, first, end, &known, &error);
        //  Setting last_seen again is harmless: the caller's retry
        //  converges on the values it asked for
        if (rc)
            sm_note_failure (self, "setting last_seen", &error);
    }
    if (rc) {
        sm_fail_run (self, first, end, &error);
        rc = sm_is_unreachable (&error) ? -1 : 0;
    }
    for (size_t index = 0; index < known.count; index++)
        free (known.keys [index]);
    free (known.keys);
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending))
            st_reply_uint (pending->request, "updated", pending->updated);
    return rc;
}


//  --------------------------------------------------------------------------
//  Requests that are one round trip each. Each returns 0, or -1 with error
//  set when the server failed (pending is then failed by the caller).


//  The user map of a users document; the password hash only if with_hash
static void
s_user_of (const bson_t *document, bool with_hash, st_user_t *user)
{
    bson_iter_t iter;
    *user = (st_user_t) {
        .name = sm_bson_st_text (document, "name"),
        .created_at = sm_bson_int (document, "created_at", 0),
        .last_seen = sm_bson_int (document, "last_seen", 0)
    };
    if (with_hash)
        user->password_hash = sm_bson_st_text (document, "password_hash");
    //  Absent before the operator first changed it: active
    user->state = sm_bson_st_text (document, "state");
    user->seen = bson_iter_init_find (&iter, document, "last_seen")
              && (BSON_ITER_HOLDS_INT64 (&iter) || BSON_ITER_HOLDS_INT32 (&iter)
              ||  BSON_ITER_HOLDS_DOUBLE (&iter));
}

int
sm_run_user_get (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                 bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("name_lower", BCON_UTF8 (pending->key));
    bson_t found = BSON_INITIALIZER;
    int rc = sm_find_one (self, self->users, filter, NULL, &found, error);
    if (rc == 1) {
        st_user_t user;
        s_user_of (&found, true, &user);
        st_reply_user (packer, &user);
    }
    else
    if (rc == 0)
        st_reply_no_user (pending->request, pending->name);
    bson_destroy (&found);
    bson_destroy (filter);
    return rc < 0 ? -1 : 0;
}

//  A list of users being read
typedef struct {
    st_list_t *list;                //  bounded by its limit and bytes
    bool full;                      //  a user was left out: the rest are too
} s_user_list_t;

static void
s_on_listed_user (void *arg, const bson_t *document)
{
    s_user_list_t *users = (s_user_list_t *) arg;
    if (users->full)
        return;
    st_user_t user;
    s_user_of (document, false, &user);
    st_reply_user (st_list_packer (users->list), &user);
    users->full = !st_list_push (users->list);
}

int
sm_run_user_list (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                  bson_error_t *error)
{
    (void) packer;                  //  the list packs the answer
    //  No 'after': every name sorts after "", as names are not empty. A
    //  string comparison without collation is the byte order STORE.md asks.
    bson_t *filter = BCON_NEW ("name_lower", "{", "$gt", BCON_UTF8 (pending->key), "}");
    //  One more than asked, to know whether more remain
    bson_t *opts = BCON_NEW ("sort", "{", "name_lower", BCON_INT32 (1), "}",
                             "limit", BCON_INT64 ((int64_t) pending->limit + 1),
                             "projection", "{", "name", BCON_INT32 (1),
                                                "created_at", BCON_INT32 (1),
                                                "last_seen", BCON_INT32 (1),
                                                "state", BCON_INT32 (1), "}");
    s_user_list_t users = { st_list_new (pending->limit, false), false };
    int rc = users.list ? sm_find (self, self->users, filter, opts, s_on_listed_user, &users,
                                   error) : 0;
    if (!users.list)
        sm_fail (pending, "internal", "The store ran out of memory.");
    else
    if (rc == 0)
        st_list_answer (users.list, pending->request, "users");
    st_list_destroy (&users.list);
    bson_destroy (opts);
    bson_destroy (filter);
    return rc;
}

int
sm_run_token_get (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                  bson_error_t *error)
{
    bson_t filter = BSON_INITIALIZER;
    bson_append_utf8 (&filter, "token_hash", 10, pending->hash.data, (int) pending->hash.size);
    bson_t found = BSON_INITIALIZER;
    int rc = sm_find_one (self, self->tokens, &filter, NULL, &found, error);
    if (rc == 1) {
        msgpack_pack_map (packer, 4);
        pl_body_pack_str (packer, "token_hash");
        msgpack_pack_str_with_body (packer, pending->hash.data, pending->hash.size);
        pl_body_pack_str (packer, "user");
        sm_pack_bson_str (packer, &found, "user");
        pl_body_pack_str (packer, "created_at");
        sm_pack_bson_time (packer, &found, "created_at");
        pl_body_pack_str (packer, "expires_at");
        sm_pack_bson_time (packer, &found, "expires_at");
    }
    else
    if (rc == 0)
        sm_fail (pending, "not_found", "No such token.");
    bson_destroy (&found);
    bson_destroy (&filter);
    return rc < 0 ? -1 : 0;
}

int
sm_run_token_delete (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                     bson_error_t *error)
{
    //  One findAndModify removes the token and tells us its owner, whom
    //  the caller needs to unbind the sessions
    bson_t filter = BSON_INITIALIZER;
    bson_append_utf8 (&filter, "token_hash", 10, pending->hash.data, (int) pending->hash.size);
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new ();
    mongoc_find_and_modify_opts_set_flags (opts, MONGOC_FIND_AND_MODIFY_REMOVE);
    bson_t reply;
    self->round_trips++;
    bool ok = mongoc_collection_find_and_modify_with_opts (self->tokens, &filter, opts,
                                                           &reply, error);
    int rc = ok ? 0 : -1;
    if (ok) {
        bson_iter_t iter;
        bson_t removed;
        uint32_t size;
        const uint8_t *data;
        if (bson_iter_init_find (&iter, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT (&iter)) {
            bson_iter_document (&iter, &size, &data);
            bson_init_static (&removed, data, size);
            msgpack_pack_map (packer, 1);
            pl_body_pack_str (packer, "user");
            sm_pack_bson_str (packer, &removed, "user");
        }
        else
            sm_fail (pending, "not_found", "No such token.");
    }
    bson_destroy (&reply);
    mongoc_find_and_modify_opts_destroy (opts);
    bson_destroy (&filter);
    return rc;
}

//  Deletes what filter selects and answers {deleted}
static int
s_delete_counted (sm_store_t *self, const bson_t *filter, msgpack_packer *packer,
                  bson_error_t *error)
{
    bson_t reply;
    self->round_trips++;
    bool ok = mongoc_collection_delete_many (self->tokens, filter, NULL, &reply, error);
    if (ok) {
        bson_iter_t iter;
        int64_t deleted = 0;
        if (bson_iter_init_find (&iter, &reply, "deletedCount"))
            deleted = bson_iter_as_int64 (&iter);
        msgpack_pack_map (packer, 1);
        pl_body_pack_str (packer, "deleted");
        msgpack_pack_uint64 (packer, deleted > 0 ? (uint64_t) deleted : 0);
    }
    bson_destroy (&reply);
    return ok ? 0 : -1;
}

//  The user's name as registered, into name (ST_NAME_MAX + 1 bytes)
int
sm_find_user_name (sm_store_t *self, const char *key, char *name, bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("name_lower", BCON_UTF8 (key));
    bson_t *projection = BCON_NEW ("name", BCON_INT32 (1));
    bson_t found = BSON_INITIALIZER;
    int rc = sm_find_one (self, self->users, filter, projection, &found, error);
    if (rc == 1)
        sm_copy_bson_str (&found, "name", name, ST_NAME_MAX + 1);
    bson_destroy (&found);
    bson_destroy (projection);
    bson_destroy (filter);
    return rc;
}

int
sm_run_token_delete_user (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                          bson_error_t *error)
{
    //  Tokens hold the name as registered: find it first
    char owner [ST_NAME_MAX + 1];
    int rc = sm_find_user_name (self, pending->key, owner, error);
    if (rc == 0) {
        msgpack_pack_map (packer, 1);
        pl_body_pack_str (packer, "deleted");
        msgpack_pack_uint32 (packer, 0);
    }
    else
    if (rc == 1) {
        bson_t *selector = BCON_NEW ("user", BCON_UTF8 (owner));
        rc = s_delete_counted (self, selector, packer, error);
        bson_destroy (selector);
    }
    return rc < 0 ? -1 : 0;
}

int
sm_run_token_purge (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                    bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("expires_at", "{", "$lte", BCON_INT64 (pending->before), "}");
    int rc = s_delete_counted (self, filter, packer, error);
    bson_destroy (filter);
    return rc;
}


//  store.token.touch {token_hash, at, expires_at?}: the token's last use is
//  at least at, and its expiry at least expires_at (absent: 0, unchanged)
int
sm_run_token_touch (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                    bson_error_t *error)
{
    bson_t filter = BSON_INITIALIZER;
    bson_append_utf8 (&filter, "token_hash", 10, pending->hash.data, (int) pending->hash.size);
    bson_t *update = pending->expires_at
        ? BCON_NEW ("$max", "{", "last_used_at", BCON_INT64 (pending->before),
                    "expires_at", BCON_INT64 (pending->expires_at), "}")
        : BCON_NEW ("$max", "{", "last_used_at", BCON_INT64 (pending->before), "}");
    bson_t reply;
    self->round_trips++;
    bool ok = mongoc_collection_update_one (self->tokens, &filter, update, NULL, &reply, error);
    if (ok) {
        bson_iter_t iter;
        int64_t matched = 0;
        if (bson_iter_init_find (&iter, &reply, "matchedCount"))
            matched = bson_iter_as_int64 (&iter);
        if (matched == 0)
            sm_fail (pending, "not_found", "No such token.");
        else
            msgpack_pack_map (packer, 0);
    }
    bson_destroy (&reply);
    bson_destroy (update);
    bson_destroy (&filter);
    return ok ? 0 : -1;
}

//  The hashes of the tokens found by store.token.trim, packed as found
typedef struct {
    msgpack_packer packer;          //  into hashes
    msgpack_sbuffer hashes;         //  msgpack strings, one per token
    bson_t in;                      //  the array of the same hashes, for $in
    uint32_t count;
} s_trim_t;

static void
s_on_trimmed (void *arg, const bson_t *document)
{
    s_trim_t *trim = (s_trim_t *) arg;
    bson_iter_t iter;
    if (!bson_iter_init_find (&iter, document, "token_hash") || !BSON_ITER_HOLDS_UTF8 (&iter))
        return;
    uint32_t size;
    const char *hash = bson_iter_utf8 (&iter, &size);
    msgpack_pack_str_with_body (&trim->packer, hash, size);
    char index_key [16];
    const char *key;
    size_t key_size = bson_uint32_to_string (trim->count++, &key, index_key, sizeof index_key);
    bson_append_utf8 (&trim->in, key, (int) key_size, hash, (int) size);
}

//  Deletes the tokens of trim (each of them $in one delete_many)
static int
s_trim_delete (sm_store_t *self, s_trim_t *trim, bson_error_t *error)
{
    if (trim->count == 0)
        return 0;
    bson_t filter = BSON_INITIALIZER, hash;
    BSON_APPEND_DOCUMENT_BEGIN (&filter, "token_hash", &hash);
    BSON_APPEND_ARRAY (&hash, "$in", &trim->in);
    bson_append_document_end (&filter, &hash);
    self->round_trips++;
    bool ok = mongoc_collection_delete_many (self->tokens, &filter, NULL, NULL, error);
    bson_destroy (&filter);
    return ok ? 0 : -1;
}

//  store.token.trim {user, keep}: deletes the user's tokens past the keep
//  most recently used (at most ST_TRIM_MAX) and answers their hashes. One
//  range of the (user, last_used_at) index.
int
sm_run_token_trim (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error)
{
    //  Tokens hold the name as registered: find it first
    char owner [ST_NAME_MAX + 1];
    int rc = sm_find_user_name (self, pending->key, owner, error);
    s_trim_t trim = { .count = 0 };
    msgpack_sbuffer_init (&trim.hashes);
    msgpack_packer_init (&trim.packer, &trim.hashes, msgpack_sbuffer_write);
    bson_init (&trim.in);
    if (rc == 1) {
        bson_t *filter = BCON_NEW ("user", BCON_UTF8 (owner));
        bson_t *opts = BCON_NEW ("sort", "{", "last_used_at", BCON_INT32 (-1),
                                 "created_at", BCON_INT32 (-1), "token_hash", BCON_INT32 (-1), "}",
                                 "skip", BCON_INT64 ((int64_t) pending->keep),
                                 "limit", BCON_INT64 (ST_TRIM_MAX),
                                 "projection", "{", "token_hash", BCON_INT32 (1), "}");
        rc = sm_find (self, self->tokens, filter, opts, s_on_trimmed, &trim, error);
        if (rc == 0)
            rc = s_trim_delete (self, &trim, error);
        bson_destroy (opts);
        bson_destroy (filter);
    }
    if (rc >= 0) {
        msgpack_pack_map (packer, 1);
        pl_body_pack_str (packer, "revoked");
        msgpack_pack_array (packer, trim.count);
        packer->callback (packer->data, trim.hashes.data, trim.hashes.size);
    }
    bson_destroy (&trim.in);
    msgpack_sbuffer_destroy (&trim.hashes);
    return rc < 0 ? -1 : 0;
}


//  --------------------------------------------------------------------------
//  The operator's: store.user.set_state, store.user.set_password (the new
//  value in pending->hash)

//  The user's name as registered and state ("active" when absent); returns
//  1, 0 (no such user) or -1 with error set
static int
s_user_state (sm_store_t *self, sm_pending_t *pending, char *name, char *state, size_t size,
              bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("name_lower", BCON_UTF8 (pending->key));
    bson_t found = BSON_INITIALIZER;
    int rc = sm_find_one (self, self->users, filter, NULL, &found, error);
    if (rc == 1) {
        sm_copy_bson_str (&found, "name", name, ST_NAME_MAX + 1);
        st_text_t text = sm_bson_st_text (&found, "state");
        snprintf (state, size, "%.*s", (int) text.size, text.size ? text.data : "active");
    }
    bson_destroy (&found);
    bson_destroy (filter);
    return rc;
}

//  Sets fields on the user, deletes its tokens (but set_password's kept one),
//  answers {name, state?, tokens}
static int
s_user_change (sm_store_t *self, sm_pending_t *pending, const char *name, bson_t *update,
               bool revoke, msgpack_packer *packer, bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("name_lower", BCON_UTF8 (pending->key));
    self->round_trips++;
    bool ok = mongoc_collection_update_one (self->users, filter, update, NULL, NULL, error);
    bson_destroy (filter);
    int64_t deleted = 0;
    if (ok && revoke) {
        bson_t *tokens = BCON_NEW ("user", BCON_UTF8 (name));
        if (pending->op == ST_USER_SET_PASSWORD && pending->keep_hash.data) {
            //  Every token of the user but the one kept (auth.password's new one)
            bson_t not_kept;
            BSON_APPEND_DOCUMENT_BEGIN (tokens, "token_hash", &not_kept);
            bson_append_utf8 (&not_kept, "$ne", 3, pending->keep_hash.data,
                              (int) pending->keep_hash.size);
            bson_append_document_end (tokens, &not_kept);
        }
        bson_t reply;
        self->round_trips++;
        ok = mongoc_collection_delete_many (self->tokens, tokens, NULL, &reply, error);
        bson_iter_t iter;
        if (ok && bson_iter_init_find (&iter, &reply, "deletedCount"))
            deleted = bson_iter_as_int64 (&iter);
        bson_destroy (&reply);
        bson_destroy (tokens);
    }
    if (!ok)
        return -1;
    bool with_state = pending->op == ST_USER_SET_STATE;
    msgpack_pack_map (packer, with_state ? 3 : 2);
    pl_body_pack_str (packer, "name");
    pl_body_pack_str (packer, name);
    if (with_state) {
        pl_body_pack_str (packer, "state");
        msgpack_pack_str_with_body (packer, pending->hash.data, pending->hash.size);
    }
    pl_body_pack_str (packer, "tokens");
    msgpack_pack_int64 (packer, deleted);
    return 0;
}

int
sm_run_user_set_state (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                       bson_error_t *error)
{
    char name [ST_NAME_MAX + 1], state [16];
    int rc = s_user_state (self, pending, name, state, sizeof state, error);
    if (rc <= 0) {
        if (rc == 0)
            st_reply_no_user (pending->request, pending->name);
        return rc;
    }
    bool deleting = st_text_is (pending->hash, "deleted");
    if (strcmp (state, "deleted") == 0 && !deleting) {
        sm_fail (pending, "conflict", "The account was deleted; it stays so.");
        return 0;
    }
    bson_t *update = deleting
        ? BCON_NEW ("$set", "{", "state", BCON_UTF8 ("deleted"), "password_hash", BCON_UTF8 (""), "}")
        : BCON_NEW ("$set", "{", "state", BCON_UTF8 (st_text_is (pending->hash, "active")
                                                     ? "active" : "disabled"), "}");
    rc = s_user_change (self, pending, name, update, !st_text_is (pending->hash, "active"),
                        packer, error);
    bson_destroy (update);
    return rc;
}

int
sm_run_user_set_password (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                          bson_error_t *error)
{
    char name [ST_NAME_MAX + 1], state [16];
    int rc = s_user_state (self, pending, name, state, sizeof state, error);
    if (rc <= 0 || strcmp (state, "deleted") == 0) {
        if (rc >= 0)
            st_reply_no_user (pending->request, pending->name);
        return rc < 0 ? -1 : 0;
    }
    bson_t update = BSON_INITIALIZER, set;
    BSON_APPEND_DOCUMENT_BEGIN (&update, "$set", &set);
    bson_append_utf8 (&set, "password_hash", 13, pending->hash.data, (int) pending->hash.size);
    bson_append_document_end (&update, &set);
    rc = s_user_change (self, pending, name, &update, true, packer, error);
    bson_destroy (&update);
    return rc;
}

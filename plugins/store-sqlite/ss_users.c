/*  =========================================================================
    ss_users - store-sqlite's users and tokens
    =========================================================================
*/

#include "ss_users.h"
#include "st_list.h"
#include "st_reply.h"
#include "pl_body.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    S_USER_INSERT,
    S_USER_GET,
    S_USER_LIST,
    S_USER_SEEN,
    S_TOKEN_INSERT,
    S_TOKEN_GET,
    S_TOKEN_DELETE,
    S_TOKEN_DELETE_USER,
    S_TOKEN_PURGE,
    S_TOKEN_TOUCH,
    S_TOKEN_BEYOND,
    S_USER_SET_STATE,
    S_USER_SET_PASSWORD,
    S_TOKEN_DELETE_ID,
    S_SQL_COUNT
} s_sql_t;

static const char *s_sql_text [S_SQL_COUNT] = {
    [S_USER_INSERT]      = "INSERT INTO users (name, name_key, password_hash, created_at)"
                           " VALUES (?1, ?2, ?3, ?4)",
    [S_USER_GET]         = "SELECT id, name, password_hash, created_at, last_seen, state"
                           " FROM users WHERE name_key = ?1",
    [S_USER_LIST]        = "SELECT name, created_at, last_seen, state FROM users"
                           " WHERE name_key > ?1 ORDER BY name_key LIMIT ?2",
    [S_USER_SEEN]        = "UPDATE users SET last_seen = ?2 WHERE name_key = ?1",
    [S_TOKEN_INSERT]     = "INSERT INTO tokens (token_hash, user_id, created_at, expires_at,"
                           " last_used_at) VALUES (?1, ?2, ?3, ?4, ?3)",
    [S_TOKEN_GET]        = "SELECT users.name, tokens.created_at, tokens.expires_at"
                           " FROM tokens JOIN users ON users.id = tokens.user_id"
                           " WHERE tokens.token_hash = ?1",
    [S_TOKEN_DELETE]     = "DELETE FROM tokens WHERE token_hash = ?1",
    [S_TOKEN_DELETE_USER]
                         = "DELETE FROM tokens WHERE user_id ="
                           " (SELECT id FROM users WHERE name_key = ?1)",
    [S_TOKEN_PURGE]      = "DELETE FROM tokens WHERE expires_at <= ?1",
    [S_TOKEN_TOUCH]      = "UPDATE tokens SET last_used_at = MAX (last_used_at, ?2),"
                           " expires_at = MAX (expires_at, ?3) WHERE token_hash = ?1",
    //  A user's tokens past the keep (?2) most recently used, least
    //  recently used last: one range of tokens_by_use
    [S_TOKEN_BEYOND]     = "SELECT token_hash FROM tokens WHERE user_id ="
                           " (SELECT id FROM users WHERE name_key = ?1)"
                           " ORDER BY last_used_at DESC, created_at DESC, token_hash DESC"
                           " LIMIT ?3 OFFSET ?2",
    //  A deleted account keeps its row (its name stays taken), not its hash
    [S_USER_SET_STATE]   = "UPDATE users SET state = ?2, password_hash = CASE ?2"
                           " WHEN 'deleted' THEN '' ELSE password_hash END WHERE id = ?1",
    [S_USER_SET_PASSWORD]
                         = "UPDATE users SET password_hash = ?2 WHERE id = ?1",
    [S_TOKEN_DELETE_ID]  = "DELETE FROM tokens WHERE user_id = ?1 AND token_hash IS NOT ?2"
};

struct ss_users_s {
    ss_db_t *db;                    //  borrowed
    sqlite3_stmt *sql [S_SQL_COUNT];
};

ss_users_t *
ss_users_new (ss_db_t *db)
{
    ss_users_t *self = (ss_users_t *) calloc (1, sizeof (ss_users_t));
    if (!self)
        return NULL;
    self->db = db;
    if (ss_db_prepare (db, s_sql_text, S_SQL_COUNT, self->sql))
        ss_users_destroy (&self);
    return self;
}

void
ss_users_destroy (ss_users_t **self_p)
{
    ss_users_t *self = *self_p;
    if (!self)
        return;
    ss_db_finalize (self->sql, S_SQL_COUNT);
    free (self);
    *self_p = NULL;
}

int64_t
ss_users_find (ss_users_t *self, const st_name_t *name, char *registered, int *rc_p)
{
    sqlite3_stmt *stmt = self->sql [S_USER_GET];
    ss_db_bind_key (stmt, 1, name);
    int rc = sqlite3_step (stmt);
    int64_t id = 0;
    if (rc == SQLITE_ROW) {
        id = sqlite3_column_int64 (stmt, 0);
        if (registered)
            snprintf (registered, ST_NAME_MAX + 1, "%s",
                      (const char *) sqlite3_column_text (stmt, 1));
    }
    ss_db_finish (stmt);
    *rc_p = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
    return id;
}

//  A user row's columns from first: name, [password_hash,] created_at,
//  last_seen, state
static st_user_t
s_user_of_row (sqlite3_stmt *stmt, int first, bool with_hash)
{
    st_user_t user = { .name = ss_db_column_text (stmt, first) };
    int next = first + 1;
    if (with_hash)
        user.password_hash = ss_db_column_text (stmt, next++);
    user.created_at = sqlite3_column_int64 (stmt, next);
    user.seen = sqlite3_column_type (stmt, next + 1) != SQLITE_NULL;
    user.last_seen = sqlite3_column_int64 (stmt, next + 1);
    user.state = ss_db_column_text (stmt, next + 2);
    return user;
}

//  The user's id, name as registered and state ("" when there is no such
//  user: id 0). Returns SQLITE_OK or the failure's code.
static int
s_user_state (ss_users_t *self, const st_name_t *name, int64_t *id_p, char *registered,
              char *state, size_t state_size)
{
    sqlite3_stmt *stmt = self->sql [S_USER_GET];
    ss_db_bind_key (stmt, 1, name);
    int rc = sqlite3_step (stmt);
    *id_p = 0;
    *state = 0;
    if (rc == SQLITE_ROW) {
        *id_p = sqlite3_column_int64 (stmt, 0);
        snprintf (registered, ST_NAME_MAX + 1, "%s", (const char *) sqlite3_column_text (stmt, 1));
        snprintf (state, state_size, "%s", (const char *) sqlite3_column_text (stmt, 5));
    }
    ss_db_finish (stmt);
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
}


//  --------------------------------------------------------------------------
//  store.user.*

static int
s_user_create (ss_users_t *self, st_request_t *request)
{
    const st_user_create_t *create = &request->as.user_create;
    sqlite3_stmt *stmt = self->sql [S_USER_INSERT];
    ss_db_bind_text (stmt, 1, create->name.text);
    ss_db_bind_key (stmt, 2, &create->name);
    ss_db_bind_text (stmt, 3, create->password_hash);
    sqlite3_bind_int64 (stmt, 4, create->created_at);
    int rc = ss_db_step_done (stmt);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        st_request_fail (request, "conflict", "The name '%.*s' is taken (names ignore case).",
                         (int) create->name.text.size, create->name.text.data);
        return SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        return rc;
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 2);
    pl_body_pack_str (packer, "name");
    st_reply_text (packer, create->name.text);
    pl_body_pack_str (packer, "created_at");
    msgpack_pack_int64 (packer, create->created_at);
    return SQLITE_OK;
}

static int
s_user_get (ss_users_t *self, st_request_t *request)
{
    const st_name_t *name = &request->as.user_get.name;
    sqlite3_stmt *stmt = self->sql [S_USER_GET];
    ss_db_bind_key (stmt, 1, name);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        st_user_t user = s_user_of_row (stmt, 1, true);
        st_reply_user (st_request_packer (request), &user);
        rc = SQLITE_OK;
    }
    else
    if (rc == SQLITE_DONE) {
        st_reply_no_user (request, name->text);
        rc = SQLITE_OK;
    }
    ss_db_finish (stmt);
    return rc;
}

static int
s_user_list (ss_users_t *self, st_request_t *request)
{
    const st_user_list_t *list = &request->as.user_list;
    sqlite3_stmt *stmt = self->sql [S_USER_LIST];
    ss_db_bind_key (stmt, 1, &list->after);     //  "" when no 'after': every name sorts after
    //  One more than asked, to know whether more remain
    sqlite3_bind_int64 (stmt, 2, (int64_t) list->limit + 1);
    st_list_t *users = st_list_new (list->limit, false);
    if (!users) {
        ss_db_finish (stmt);
        return SQLITE_NOMEM;
    }
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        st_user_t user = s_user_of_row (stmt, 0, false);
        st_reply_user (st_list_packer (users), &user);
        if (!st_list_push (users))
            break;
    }
    ss_db_finish (stmt);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
        st_list_answer (users, request, "users");
        rc = SQLITE_OK;
    }
    st_list_destroy (&users);
    return rc;
}

static int
s_user_seen (ss_users_t *self, st_request_t *request)
{
    const st_user_seen_t *seen = &request->as.user_seen;
    sqlite3_stmt *stmt = self->sql [S_USER_SEEN];
    uint32_t updated = 0;
    for (uint32_t index = 0; index < seen->count; index++) {
        ss_db_bind_key (stmt, 1, &seen->users [index].name);
        sqlite3_bind_int64 (stmt, 2, seen->users [index].last_seen);
        int rc = ss_db_step_done (stmt);
        if (rc != SQLITE_OK)
            return rc;
        if (sqlite3_changes (ss_db_handle (self->db)) > 0)
            updated++;
    }
    st_reply_uint (request, "updated", updated);
    return SQLITE_OK;
}


//  --------------------------------------------------------------------------
//  store.token.*

static int
s_token_put (ss_users_t *self, st_request_t *request)
{
    const st_token_put_t *put = &request->as.token_put;
    //  The user first: not_found is the caller's to know, and we answer
    //  with the name as registered
    char registered [ST_NAME_MAX + 1], state [16];
    int64_t user_id;
    int rc = s_user_state (self, &put->user, &user_id, registered, state, sizeof state);
    if (rc != SQLITE_OK)
        return rc;
    if (!user_id || strcmp (state, "deleted") == 0) {
        st_reply_no_user (request, put->user.text);
        return SQLITE_OK;
    }
    if (strcmp (state, "active") != 0) {
        st_request_fail (request, "forbidden", "The account '%s' is %s.", registered, state);
        return SQLITE_OK;
    }
    sqlite3_stmt *stmt = self->sql [S_TOKEN_INSERT];
    ss_db_bind_text (stmt, 1, put->token_hash);
    sqlite3_bind_int64 (stmt, 2, user_id);
    sqlite3_bind_int64 (stmt, 3, put->created_at);
    sqlite3_bind_int64 (stmt, 4, put->expires_at);
    rc = ss_db_step_done (stmt);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        st_request_fail (request, "conflict", "This token hash is stored already.");
        return SQLITE_OK;
    }
    if (rc == SQLITE_OK)
        st_reply_name (request, "user", (st_text_t) { registered, (uint32_t) strlen (registered) });
    return rc;
}

static int
s_token_get (ss_users_t *self, st_request_t *request)
{
    st_text_t hash = request->as.token_get.token_hash;
    sqlite3_stmt *stmt = self->sql [S_TOKEN_GET];
    ss_db_bind_text (stmt, 1, hash);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        msgpack_packer *packer = st_request_packer (request);
        msgpack_pack_map (packer, 4);
        pl_body_pack_str (packer, "token_hash");
        st_reply_text (packer, hash);
        pl_body_pack_str (packer, "user");
        st_reply_text (packer, ss_db_column_text (stmt, 0));
        pl_body_pack_str (packer, "created_at");
        msgpack_pack_int64 (packer, sqlite3_column_int64 (stmt, 1));
        pl_body_pack_str (packer, "expires_at");
        msgpack_pack_int64 (packer, sqlite3_column_int64 (stmt, 2));
        rc = SQLITE_OK;
    }
    else
    if (rc == SQLITE_DONE) {
        st_reply_no_token (request);
        rc = SQLITE_OK;
    }
    ss_db_finish (stmt);
    return rc;
}

static int
s_token_delete (ss_users_t *self, st_request_t *request)
{
    st_text_t hash = request->as.token_delete.token_hash;
    //  The owner first: the caller needs it to unbind its sessions
    sqlite3_stmt *get = self->sql [S_TOKEN_GET];
    ss_db_bind_text (get, 1, hash);
    int rc = sqlite3_step (get);
    if (rc == SQLITE_ROW)
        st_reply_name (request, "user", ss_db_column_text (get, 0));
    else
    if (rc == SQLITE_DONE)
        st_reply_no_token (request);
    ss_db_finish (get);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    sqlite3_stmt *stmt = self->sql [S_TOKEN_DELETE];
    ss_db_bind_text (stmt, 1, hash);
    return ss_db_step_done (stmt);
}

//  token.delete_user and token.purge: a delete that answers its count
static int
s_token_delete_counted (ss_users_t *self, st_request_t *request)
{
    sqlite3_stmt *stmt;
    if (request->type == ST_TOKEN_DELETE_USER) {
        stmt = self->sql [S_TOKEN_DELETE_USER];
        ss_db_bind_key (stmt, 1, &request->as.token_delete_user.user);
    }
    else {
        stmt = self->sql [S_TOKEN_PURGE];
        sqlite3_bind_int64 (stmt, 1, request->as.token_purge.before);
    }
    int rc = ss_db_step_done (stmt);
    if (rc == SQLITE_OK)
        st_reply_uint (request, "deleted", (uint64_t) sqlite3_changes (ss_db_handle (self->db)));
    return rc;
}

//  store.token.touch {token_hash, at, expires_at?}: the token's last use is
//  at least at, and its expiry at least expires_at (absent: 0, unchanged)
static int
s_token_touch (ss_users_t *self, st_request_t *request)
{
    const st_token_touch_t *touch = &request->as.token_touch;
    sqlite3_stmt *stmt = self->sql [S_TOKEN_TOUCH];
    ss_db_bind_text (stmt, 1, touch->token_hash);
    sqlite3_bind_int64 (stmt, 2, touch->at);
    sqlite3_bind_int64 (stmt, 3, touch->expires_at);
    int rc = ss_db_step_done (stmt);
    if (rc != SQLITE_OK)
        return rc;
    if (sqlite3_changes (ss_db_handle (self->db)) == 0)
        st_reply_no_token (request);
    else
        msgpack_pack_map (st_request_packer (request), 0);
    return SQLITE_OK;
}

//  Deletes each token whose hash is in list's items
static int
s_token_delete_listed (ss_users_t *self, const char *data, size_t size)
{
    msgpack_unpacked hash;
    msgpack_unpacked_init (&hash);
    size_t offset = 0;
    int rc = SQLITE_OK;
    while (rc == SQLITE_OK
       &&  msgpack_unpack_next (&hash, data, size, &offset) == MSGPACK_UNPACK_SUCCESS) {
        sqlite3_stmt *delete = self->sql [S_TOKEN_DELETE];
        sqlite3_bind_text (delete, 1, hash.data.via.str.ptr, (int) hash.data.via.str.size,
                           SQLITE_STATIC);
        rc = ss_db_step_done (delete);
    }
    msgpack_unpacked_destroy (&hash);
    return rc;
}

//  store.token.trim {user, keep}: deletes the user's tokens past the keep
//  most recently used (at most ST_TRIM_MAX) and answers their hashes
static int
s_token_trim (ss_users_t *self, st_request_t *request)
{
    const st_token_trim_t *trim = &request->as.token_trim;
    sqlite3_stmt *stmt = self->sql [S_TOKEN_BEYOND];
    ss_db_bind_key (stmt, 1, &trim->user);
    sqlite3_bind_int64 (stmt, 2, (int64_t) trim->keep);
    sqlite3_bind_int64 (stmt, 3, ST_TRIM_MAX);
    msgpack_sbuffer hashes;
    msgpack_sbuffer_init (&hashes);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &hashes, msgpack_sbuffer_write);
    uint32_t count = 0;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        st_reply_text (&packer, ss_db_column_text (stmt, 0));
        count++;
    }
    ss_db_finish (stmt);
    if (rc == SQLITE_DONE)
        rc = s_token_delete_listed (self, hashes.data, hashes.size);
    if (rc == SQLITE_OK) {
        msgpack_packer *answer = st_request_packer (request);
        msgpack_pack_map (answer, 1);
        pl_body_pack_str (answer, "revoked");
        msgpack_pack_array (answer, count);
        answer->callback (answer->data, hashes.data, hashes.size);
    }
    msgpack_sbuffer_destroy (&hashes);
    return rc;
}


//  --------------------------------------------------------------------------
//  The operator's: store.user.set_state, store.user.set_password

//  Deletes every token of the user but keep (a token_hash; data NULL: none);
//  *count_p says how many
static int
s_tokens_revoke (ss_users_t *self, int64_t user_id, st_text_t keep, int64_t *count_p)
{
    sqlite3_stmt *stmt = self->sql [S_TOKEN_DELETE_ID];
    sqlite3_bind_int64 (stmt, 1, user_id);
    if (keep.data)
        ss_db_bind_text (stmt, 2, keep);
    else
        sqlite3_bind_null (stmt, 2);
    int rc = ss_db_step_done (stmt);
    *count_p = rc == SQLITE_OK ? sqlite3_changes (ss_db_handle (self->db)) : 0;
    return rc;
}

//  {name, state?, tokens}: the answer of both
static void
s_pack_changed (st_request_t *request, const char *registered, st_text_t state, int64_t tokens)
{
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, state.data ? 3 : 2);
    pl_body_pack_str (packer, "name");
    pl_body_pack_str (packer, registered);
    if (state.data) {
        pl_body_pack_str (packer, "state");
        st_reply_text (packer, state);
    }
    pl_body_pack_str (packer, "tokens");
    msgpack_pack_int64 (packer, tokens);
}

//  A deleted account stays deleted; any other state revokes the tokens
//  unless it is active
static int
s_user_set_state (ss_users_t *self, st_request_t *request)
{
    const st_user_set_state_t *set = &request->as.user_set_state;
    char registered [ST_NAME_MAX + 1], state [16];
    int64_t user_id, tokens = 0;
    int rc = s_user_state (self, &set->name, &user_id, registered, state, sizeof state);
    if (rc != SQLITE_OK || !user_id) {
        if (rc == SQLITE_OK)
            st_reply_no_user (request, set->name.text);
        return rc;
    }
    if (strcmp (state, "deleted") == 0 && !st_text_is (set->state, "deleted")) {
        st_request_fail (request, "conflict", "The account '%s' was deleted; it stays so.",
                         registered);
        return SQLITE_OK;
    }
    sqlite3_stmt *stmt = self->sql [S_USER_SET_STATE];
    sqlite3_bind_int64 (stmt, 1, user_id);
    ss_db_bind_text (stmt, 2, set->state);
    rc = ss_db_step_done (stmt);
    if (rc == SQLITE_OK && !st_text_is (set->state, "active"))
        rc = s_tokens_revoke (self, user_id, (st_text_t) { .data = NULL }, &tokens);
    if (rc == SQLITE_OK)
        s_pack_changed (request, registered, set->state, tokens);
    return rc;
}

static int
s_user_set_password (ss_users_t *self, st_request_t *request)
{
    const st_user_set_password_t *set = &request->as.user_set_password;
    char registered [ST_NAME_MAX + 1], state [16];
    int64_t user_id, tokens = 0;
    int rc = s_user_state (self, &set->name, &user_id, registered, state, sizeof state);
    if (rc != SQLITE_OK)
        return rc;
    if (!user_id || strcmp (state, "deleted") == 0) {
        st_reply_no_user (request, set->name.text);
        return SQLITE_OK;
    }
    sqlite3_stmt *stmt = self->sql [S_USER_SET_PASSWORD];
    sqlite3_bind_int64 (stmt, 1, user_id);
    ss_db_bind_text (stmt, 2, set->password_hash);
    rc = ss_db_step_done (stmt);
    if (rc == SQLITE_OK)
        rc = s_tokens_revoke (self, user_id, set->keep_token, &tokens);
    if (rc == SQLITE_OK)
        s_pack_changed (request, registered, (st_text_t) { NULL, 0 }, tokens);
    return rc;
}


//  --------------------------------------------------------------------------
//  Dispatch

typedef int (s_run_fn) (ss_users_t *self, st_request_t *request);

static s_run_fn *s_runs [ST_TYPE_COUNT] = {
    [ST_USER_CREATE]       = s_user_create,
    [ST_USER_GET]          = s_user_get,
    [ST_USER_LIST]         = s_user_list,
    [ST_USER_SEEN]         = s_user_seen,
    [ST_TOKEN_PUT]         = s_token_put,
    [ST_TOKEN_GET]         = s_token_get,
    [ST_TOKEN_DELETE]      = s_token_delete,
    [ST_TOKEN_DELETE_USER] = s_token_delete_counted,
    [ST_TOKEN_PURGE]       = s_token_delete_counted,
    [ST_TOKEN_TOUCH]       = s_token_touch,
    [ST_TOKEN_TRIM]        = s_token_trim,
    [ST_USER_SET_STATE]    = s_user_set_state,
    [ST_USER_SET_PASSWORD] = s_user_set_password
};

bool
ss_users_serves (st_type_t type)
{
    return type < ST_TYPE_COUNT && s_runs [type] != NULL;
}

int
ss_users_run (ss_users_t *self, st_request_t *request)
{
    return ss_users_serves (request->type) ? s_runs [request->type] (self, request)
                                           : SQLITE_INTERNAL;
}

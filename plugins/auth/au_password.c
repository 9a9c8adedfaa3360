/*  =========================================================================
    au_password - auth.password {password, new_password} -> {token}
    (PROTOCOL.md, "Accounts (1.1)")

    The order of the steps keeps "an error changed nothing": the fresh token
    is stored before the password changes, and store.user.set_password
    (which keeps that token and deletes the others) is the one write that
    changes the account. A failure before it leaves at most a token that
    nobody holds (it expires, or a trim takes it).
    =========================================================================
*/

#include "au_password.h"
#include "pl_body.h"
#include "pl_limits.h"

static const char s_busy [] = "The server is busy checking passwords; try again in a moment.";
static const char s_no_memory [] = "The server ran out of memory; try again.";

static void s_on_token_put (void *state, void *arg, const pl_call_reply_t *reply);
static void s_on_changed (void *state, void *arg, const pl_call_reply_t *reply);

//  The request's fields are read and the new password is acceptable: the
//  login limits first, then the account's hash from the store
static void
s_start (auth_t *self, parley_request_t *request, const char *user,
         const char *password, size_t size, const char *new_password, size_t new_size)
{
    const char *address = self->host->request_address (request);
    char key [PL_USERNAME_MAX + 1] = "";
    size_t user_size = strlen (user);
    char *pair = user_size <= PL_USERNAME_MAX
               ? auth_login_keys (user, user_size, address, key) : NULL;
    if (auth_login_limited (self, &request, address, *key ? key : NULL, pair)) {
        zstr_free (&pair);
        return;
    }
    op_t *op = auth_op_new (self, OP_PASSWORD, request);
    if (op) {
        op->name = strdup (user);
        op->name_key = *key ? strdup (key) : NULL;
        op->pair_key = pair;
        pair = NULL;
        op->password = auth_strndup (password, size);
        op->password_size = size;
        op->new_password = auth_strndup (new_password, new_size);
        op->new_password_size = new_size;
    }
    zstr_free (&pair);
    if (!op)
        self->host->reply_error (self->ctx, &request, "internal", s_no_memory);
    else
    if (!op->name || (*key && !op->name_key) || !op->password || !op->new_password)
        auth_op_fail (self, op, "internal", s_no_memory);
    else
    if (size < PL_PASSWORD_MIN || size > PL_PASSWORD_MAX) {
        //  No account has such a password: wrong, after the same time
        op->unknown_user = true;
        auth_op_verify (self, op, self->dummy_hash);
    }
    else
        auth_op_call_one (self, op, "store.user.get", "name", op->name,
                          auth_login_on_user_get);
}

void
au_password_request (auth_t *self, parley_request_t *request)
{
    msgpack_unpacked fields;
    if (auth_body (self, &request, &fields))
        return;
    const char *password, *new_password, *weak;
    size_t size, new_size;
    const char *user = self->host->request_user (request);
    if (pl_body_strn (&fields.data, "password", &password, &size) != 1
    ||  pl_body_strn (&fields.data, "new_password", &new_password, &new_size) != 1)
        self->host->reply_error (self->ctx, &request, "bad_request", "auth.password needs the"
                                 " fields 'password' and 'new_password', strings.");
    else
    if (!user)
        self->host->reply_error (self->ctx, &request, "unauthenticated", "Log in first:"
                                 " auth.password changes the password of the session's user.");
    else
    if ((weak = au_common_weak (self->common, user, new_password, new_size)))
        self->host->reply_error (self->ctx, &request, "weak_password", weak);
    else
        s_start (self, request, user, password, size, new_password, new_size);
    msgpack_unpacked_destroy (&fields);
}

//  The current password was checked: a wrong one is a failed login for the
//  limits; a right one has the new password hashed
static void
s_on_verified (auth_t *self, op_t *op, au_job_t *job)
{
    if (!job->ok || op->unknown_user) {
        auth_failures_count (self, op);
        self->host->log (self->ctx, PARLEY_LOG_INFO, "password change of '%s' from %s refused:"
                         " wrong current password", op->name, auth_addr (op->address));
        auth_op_fail (self, op, "bad_credentials", "The current password is wrong.");
        return;
    }
    auth_failures_clear (self, op);
    op->verified = true;
    au_job_t *hash = au_job_new_hash (op->new_password, op->new_password_size, op);
    sodium_memzero (op->new_password, op->new_password_size);
    auth_op_submit (self, op, hash);
}

//  The new password is hashed: a fresh token for this session first
static void
s_on_hashed (auth_t *self, op_t *op, au_job_t *job)
{
    if (!job->ok || !(op->password_hash = strdup (job->hash))) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR, "hashing the new password of '%s' failed"
                         " (out of memory?)", op->name);
        auth_op_fail (self, op, "internal", "The server could not store the password; try"
                      " again.");
        return;
    }
    auth_op_issue_token (self, op, s_on_token_put);
}

void
au_password_on_job (auth_t *self, op_t *op, au_job_t *job)
{
    //  Not run: its time ran out in the queue (and nothing counts)
    if (job->expired)
        auth_op_unavailable (self, op, s_busy, au_pool_hash_ms (self->pool), false);
    else
    if (!op->verified)
        s_on_verified (self, op, job);
    else
        s_on_hashed (self, op, job);
}

//  store.token.put: the fresh token is there; the password changes, and
//  every token but the fresh one goes
static void
s_on_token_put (void *state, void *arg, const pl_call_reply_t *reply)
{
    auth_t *self = (auth_t *) state;
    op_t *op = (op_t *) arg;
    if (!auth_token_put_failed (self, op, reply, "The account is gone.")) {
        pl_pack_t pack;
        pl_pack_start (&pack, 3, "name", op->name);
        pl_pack_kstr (&pack, "password_hash", op->password_hash);
        pl_pack_kstr (&pack, "keep_token", op->token_hash);
        auth_op_call (self, op, "store.user.set_password", &pack, s_on_changed);
        pl_pack_release (&pack);
    }
}

//  store.user.set_password: done. The other sessions go; this one stays,
//  bound now with the fresh token.
static void
s_on_changed (void *state, void *arg, const pl_call_reply_t *reply)
{
    auth_t *self = (auth_t *) state;
    op_t *op = (op_t *) arg;
    if (reply->code && streq (reply->code, "not_found")) {
        auth_op_fail (self, op, "bad_credentials", "The account is gone.");
        return;
    }
    if (reply->code) {
        auth_op_store_failed (self, op, reply);
        return;
    }
    size_t sessions = auth_logout_user (self, op->name, op->session);
    if (auth_binding_record (self, op->session, op->name, op->token_hash))
        self->host->log (self->ctx, PARLEY_LOG_WARNING, "out of memory: a logout will not find"
                         " the new token of session %016" PRIx64 " ('%s')", op->session,
                         op->name);
    int64_t tokens = pl_body_int (reply->body, "tokens");
    self->host->log (self->ctx, PARLEY_LOG_INFO, "'%s' changed the password from %s; %lld"
                     " other token%s revoked, %zu other session%s logged out", op->name,
                     auth_addr (op->address), (long long) tokens, tokens == 1 ? "" : "s",
                     sessions, sessions == 1 ? "" : "s");
    pl_pack_t pack;
    pl_pack_start (&pack, 1, "token", op->token);
    self->host->reply (self->ctx, &op->request, pack.buffer.data, pack.buffer.size);
    pl_pack_release (&pack);
    auth_op_finish (self, op);
}

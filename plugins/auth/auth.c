/*  =========================================================================
    auth - accounts and sessions: auth.register, auth.login, auth.resume,
    auth.logout (PROTOCOL.md, "Authentication"); auth.password is served by
    au_password.c (PROTOCOL.md, "Accounts"), which shares this file's state
    and helpers through au_plugin.h

    Passwords are hashed with argon2id (libsodium) on a small pool of worker
    threads (au_pool), never on this instance's thread; a worker that
    finishes a job wakes the instance (host->wake, plugin ABI 1.2), whose
    on_wake collects it. Each store call carries its own handler (pl_call). Accounts and tokens live in the store (store.user.*,
    store.token.*, proto/STORE.md); a token is 32 random bytes sent as
    base64url and stored only as the hex BLAKE2b-256 of that text.

    To revoke a token on every session that uses it, the plugin remembers
    which session it bound with which token (a binding). The broker confirms
    each bind with a BOUND session event and reports CLOSED when a session
    goes; after a RESET (the broker (re)welcomed this instance) the bindings
    are kept but must be confirmed again by the BOUND snapshot that follows,
    and the ones that are not are dropped a little later. A session bound
    while another auth instance (or an earlier run of this one) was serving
    has no binding here: we do not know its token, so its logout only unbinds
    it (see README.md). Run exactly one auth instance.

    Failed logins are limited per (lower-cased username, client address)
    pair, per address, and per username only at a much higher threshold, so
    that failures from a few other addresses never lock the owner out
    (au_limiter); registrations are limited per address. Both are checked
    before any work is spent and answer rate_limited with retry_after_ms.
    =========================================================================
*/

#include "parley_plugin.h"
#include "pl_admin.h"
#include "pl_body.h"
#include "pl_call.h"
#include "pl_limits.h"
#include "pl_options.h"
#include "pl_pack.h"
#include "pl_reply.h"
#include "pl_text.h"
#include "au_plugin.h"
#include "au_password.h"

#include <czmq.h>
#include <msgpack.h>
#include <sodium.h>

//  --------------------------------------------------------------------------
//  Limits and defaults

#define AUTH_WORKERS_DEFAULT        2
#define AUTH_QUEUE_DEFAULT          256         //  hash jobs in the pool at once
#define AUTH_OPS_LIMIT_DEFAULT      2           //  argon2id passes
#define AUTH_MEM_LIMIT_DEFAULT      (19u << 20) //  argon2id memory: 19 MiB
#define AUTH_MAX_FAILURES_PAIR      5           //  per (username, address)
#define AUTH_MAX_FAILURES_USER      200         //  per username, from every address
#define AUTH_MAX_FAILURES_ADDRESS   20
#define AUTH_REGISTER_RATE          30          //  registrations per address per minute
#define AUTH_REGISTER_WINDOW_MS     60000
#define AUTH_RETRY_MIN_MS           100         //  least retry_after_ms we say
#define AUTH_STORE_RESERVE_MS       250         //  time left a new account needs
                                                //  after its hash: store.user.create
                                                //  and store.token.put
#define AUTH_RESERVE_PART           10          //  a hash must be done with a tenth
                                                //  of the request's time to spare
#define AUTH_FAILURE_WINDOW_MS      60000
#define AUTH_LIMITER_KEYS           10000       //  keys kept per limiter
#define AUTH_TOKEN_TTL_DAYS         30
#define AUTH_MAX_TOKENS             100         //  live tokens per user
#define AUTH_TOUCH_INTERVAL_MS      60000       //  a token's last use, to the minute
#define AUTH_HOUSEKEEPING_MS        5000
#define AUTH_UNCONFIRMED_MS         30000       //  a binding the broker never confirmed
#define AUTH_PURGE_EVERY_MS         (3600 * 1000)

#define DAY_MS                      (24LL * 3600 * 1000)

//  --------------------------------------------------------------------------
//  State

//  What a session was bound with, so that a logout can find every session
//  that uses the same token
typedef struct {
    char sid_key [17];              //  the session id in hex: the table's key
    uint64_t sid;                   //  the session
    char *user;                     //  the user it was bound to, as registered
    char token_hash [TOKEN_HASH_HEX + 1];
    bool confirmed;                 //  the broker said BOUND for it since
    int64_t since;                  //  monotonic ms: recorded, or last RESET
    void *token_handle;             //  this binding's place in its token's list
} binding_t;

//  The sessions that use one token
typedef struct {
    char token_hash [TOKEN_HASH_HEX + 1];
    zlistx_t *bindings;             //  binding_t *, not owned
} token_t;


//  --------------------------------------------------------------------------
//  Small helpers

const char *
auth_addr (const char *address)
{
    return address ? address : "(no address)";
}

//  A valid username's bytes (at most PL_USERNAME_MAX) as a C string in text
static const char *
s_copy_name (char *text, const char *name, size_t size)
{
    memcpy (text, name, size);
    text [size] = 0;
    return text;
}

//  The protocol's username rule (pl_text) for a msgpack string's bytes
static bool
s_username_valid (const char *name, size_t size)
{
    char text [PL_USERNAME_MAX + 1];
    if (size > PL_USERNAME_MAX || memchr (name, 0, size))
        return false;
    memcpy (text, name, size);
    text [size] = 0;
    return pl_text_username_valid (text);
}

static bool
s_token_text_valid (const char *token, size_t size)
{
    if (size != TOKEN_TEXT)
        return false;
    for (size_t index = 0; index < size; index++) {
        char c = token [index];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '_' || c == '-'))
            return false;
    }
    return true;
}

//  A NUL-terminated copy of a msgpack string. Caller owns return value.
char *
auth_strndup (const char *text, size_t size)
{
    char *copy = (char *) malloc (size + 1);
    if (copy) {
        if (size)
            memcpy (copy, text, size);
        copy [size] = 0;
    }
    return copy;
}

//  The hex BLAKE2b-256 of a token's text: all the store ever sees of it
static void
s_token_hash (const char *token, size_t size, char *hex)
{
    uint8_t digest [32];
    crypto_generichash (digest, sizeof digest, (const uint8_t *) token, size, NULL, 0);
    sodium_bin2hex (hex, TOKEN_HASH_HEX + 1, digest, sizeof digest);
}

//  A string field present and a string: its bytes (borrowed) and size.
//  Returns 0, or -1 when absent, nil or not a string.
static int
s_field_str (const msgpack_object *map, const char *name, const char **text, size_t *size)
{
    return pl_body_strn (map, name, text, size) == 1 ? 0 : -1;
}


//  True when the store's user map says the account is in state (an older
//  store says nothing: active)
static bool
s_state_is (const msgpack_object *user, const char *state)
{
    const char *text;
    size_t size;
    return s_field_str (user, "state", &text, &size) == 0 && size == strlen (state)
        && memcmp (text, state, size) == 0;
}


//  --------------------------------------------------------------------------
//  Bindings: which session uses which token

static void
s_binding_remove (auth_t *self, binding_t *binding)
{
    token_t *token = (token_t *) zhashx_lookup (self->tokens, binding->token_hash);
    if (token) {
        zlistx_delete (token->bindings, binding->token_handle);
        if (zlistx_size (token->bindings) == 0) {
            zlistx_destroy (&token->bindings);
            zhashx_delete (self->tokens, token->token_hash);
            free (token);
        }
    }
    zhashx_delete (self->bindings, binding->sid_key);
    free (binding->user);
    free (binding);
}

static binding_t *
s_binding_lookup (auth_t *self, uint64_t sid)
{
    char key [17];
    snprintf (key, sizeof key, "%016" PRIx64, sid);
    return (binding_t *) zhashx_lookup (self->bindings, key);
}

//  Remembers that we are binding session to user with token_hash. Returns
//  0, or -1 when out of memory (the session then logs out without revoking
//  the token on its other sessions; logged by the caller).
int
auth_binding_record (auth_t *self, uint64_t sid, const char *user, const char *token_hash)
{
    if (!sid)
        return 0;
    bool confirmed = false;
    binding_t *old = s_binding_lookup (self, sid);
    if (old) {
        //  The broker sends no new BOUND when a session is bound again to
        //  the same user, so such a binding stays confirmed
        confirmed = old->confirmed && streq (old->user, user);
        s_binding_remove (self, old);
    }
    binding_t *binding = (binding_t *) calloc (1, sizeof (binding_t));
    if (!binding)
        return -1;
    snprintf (binding->sid_key, sizeof binding->sid_key, "%016" PRIx64, sid);
    binding->sid = sid;
    binding->user = strdup (user);
    binding->confirmed = confirmed;
    binding->since = zclock_mono ();
    memcpy (binding->token_hash, token_hash, sizeof binding->token_hash);
    if (!binding->user) {
        free (binding);
        return -1;
    }
    token_t *token = (token_t *) zhashx_lookup (self->tokens, token_hash);
    if (!token) {
        token = (token_t *) calloc (1, sizeof (token_t));
        if (token) {
            memcpy (token->token_hash, token_hash, sizeof token->token_hash);
            token->bindings = zlistx_new ();
        }
        if (!token || !token->bindings
            || zhashx_insert (self->tokens, token->token_hash, token)) {
            if (token)
                zlistx_destroy (&token->bindings);
            free (token);
            free (binding->user);
            free (binding);
            return -1;
        }
    }
    binding->token_handle = zlistx_add_end (token->bindings, binding);
    if (!binding->token_handle || zhashx_insert (self->bindings, binding->sid_key, binding)) {
        if (binding->token_handle)
            zlistx_delete (token->bindings, binding->token_handle);
        binding->token_handle = NULL;
        if (zlistx_size (token->bindings) == 0) {
            zlistx_destroy (&token->bindings);
            zhashx_delete (self->tokens, token->token_hash);
            free (token);
        }
        free (binding->user);
        free (binding);
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Operations in progress

op_t *
auth_op_new (auth_t *self, op_kind_t kind, parley_request_t *request)
{
    op_t *op = (op_t *) calloc (1, sizeof (op_t));
    if (!op)
        return NULL;
    op->kind = kind;
    op->request = request;
    op->session = self->host->request_session (request);
    const char *address = self->host->request_address (request);
    if (address)
        op->address = strdup (address);
    op->handle = zlistx_add_end (self->ops, op);
    if ((address && !op->address) || !op->handle) {
        if (op->handle)
            zlistx_delete (self->ops, op->handle);
        free (op->address);
        free (op);
        return NULL;
    }
    return op;
}

static void
s_op_free (op_t *op)
{
    if (op->password) {
        sodium_memzero (op->password, op->password_size);
        free (op->password);
    }
    if (op->new_password) {
        sodium_memzero (op->new_password, op->new_password_size);
        free (op->new_password);
    }
    free (op->password_hash);
    free (op->address);
    free (op->name);
    free (op->name_key);
    free (op->pair_key);
    sodium_memzero (op->token, sizeof op->token);
    free (op);
}

//  Forgets an operation whose request has been answered
void
auth_op_finish (auth_t *self, op_t *op)
{
    zlistx_delete (self->ops, op->handle);
    s_op_free (op);
}

void
auth_op_fail (auth_t *self, op_t *op, const char *code, const char *message)
{
    self->host->reply_error (self->ctx, &op->request, code, message);
    auth_op_finish (self, op);
}

//  Answers unavailable: with retry_after_ms, and with "outcome": "unknown"
//  when the request may have taken effect (unknown)
void
auth_op_unavailable (auth_t *self, op_t *op, const char *message, int64_t retry_ms, bool unknown)
{
    if (retry_ms < AUTH_RETRY_MIN_MS)
        retry_ms = AUTH_RETRY_MIN_MS;
    if (unknown)
        pl_reply_error_unknown (self->host, self->ctx, &op->request, "unavailable", message,
                                retry_ms);
    else
        pl_reply_error_retry (self->host, self->ctx, &op->request, "unavailable", message,
                              retry_ms);
    auth_op_finish (self, op);
}

//  The store answered an error we do not expect from it: a lost answer to a
//  write may have done it (outcome unknown), any other did nothing
void
auth_op_store_failed (auth_t *self, op_t *op, const pl_call_reply_t *reply)
{
    self->host->log (self->ctx, PARLEY_LOG_WARNING, "%s answered %s (%s)%s", reply->type,
                     reply->code ? reply->code : "an unreadable body",
                     reply->message ? reply->message : "",
                     reply->outcome_unknown ? ", outcome unknown" : "");
    auth_op_unavailable (self, op, reply->outcome_unknown
                         ? "The account service lost its storage's answer; the request may or may"
                        " not have taken effect."
                         : "The account service is unavailable right now; try again in a moment.",
                         reply->retry_ms, reply->outcome_unknown);
}

//  The time op's request has left (ABI minor 3), or -1
static int64_t
s_op_time_left (auth_t *self, op_t *op)
{
    if (self->host->abi_minor < 3 || !self->host->request_time_left || !op->request)
        return -1;
    return self->host->request_time_left (op->request);
}

//  Sends a store request for op with the time its request has left;
//  handler reads its answer. A request whose time is gone starts nothing.
void
auth_op_call (auth_t *self, op_t *op, const char *type, pl_pack_t *pack, pl_call_fn *handler)
{
    if (!pl_call_send_within (self->calls, type, pack->buffer.data, pack->buffer.size,
                              s_op_time_left (self, op), handler, op))
        return;
    //  Not sent (its time is gone): nothing of this step was done, but a
    //  registration's account may already be stored, which the client must
    //  learn by logging in (PROTOCOL.md 1.1 "Outcomes")
    if (op->created)
        auth_op_unavailable (self, op, "Your account was created, but the session could not be"
                             " opened in time; log in in a moment.", au_pool_hash_ms (self->pool),
                             true);
    else
        auth_op_unavailable (self, op, "The account service is unavailable right now; try again"
                             " in a moment.", au_pool_hash_ms (self->pool), false);
}

//  Sends a store request with one string field
void
auth_op_call_one (auth_t *self, op_t *op, const char *type, const char *field, const char *value,
                  pl_call_fn *handler)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1);
    pl_pack_kstr (&pack, field, value);
    auth_op_call (self, op, type, &pack, handler);
    pl_pack_release (&pack);
}

//  Hands a job to the pool for op; a worker wakes us when it is done
void
auth_op_submit (auth_t *self, op_t *op, au_job_t *job)
{
    if (!job) {
        auth_op_fail (self, op, "internal", "The server ran out of memory; try again.");
        return;
    }
    //  Admitted only when the hash will be done with a tenth of the time
    //  left to spare (the store's steps after it, the answer's way back)
    int64_t time_left = s_op_time_left (self, op);
    if (time_left >= 0)
        time_left -= time_left / AUTH_RESERVE_PART;
    int64_t retry_ms = 0;
    if (au_pool_submit_within (self->pool, &job, time_left, &retry_ms)) {
        au_job_destroy (&job);
        auth_op_unavailable (self, op, "The server is busy checking passwords; try again in a"
                             " moment.", retry_ms, false);
    }
}

//  Creates a token for op->name and stores its hash; handler reads the
//  store's answer
void
auth_op_issue_token (auth_t *self, op_t *op, pl_call_fn *handler)
{
    uint8_t raw [TOKEN_BYTES];
    randombytes_buf (raw, sizeof raw);
    sodium_bin2base64 (op->token, sizeof op->token, raw, sizeof raw,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero (raw, sizeof raw);
    s_token_hash (op->token, strlen (op->token), op->token_hash);

    int64_t now = zclock_time ();
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 4);
    pl_pack_kstr (&pack, "token_hash", op->token_hash);
    pl_pack_kstr (&pack, "user", op->name);
    pl_pack_kint (&pack, "created_at", now);
    pl_pack_kint (&pack, "expires_at", now + self->token_ttl_ms);
    auth_op_call (self, op, "store.token.put", &pack, handler);
    pl_pack_release (&pack);
}

static void s_on_trimmed (void *state, void *arg, const pl_call_reply_t *reply);

//  After a new token of user: asks the store to revoke the user's tokens
//  past the max_tokens most recently used; s_on_trimmed unbinds their
//  sessions. Nobody waits for it: a failure is logged, and the next login
//  trims again.
static void
s_trim_tokens (auth_t *self, const char *user)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 2);
    pl_pack_kstr (&pack, "user", user);
    pl_pack_kuint (&pack, "keep", self->max_tokens);
    if (pl_call_send (self->calls, "store.token.trim", pack.buffer.data, pack.buffer.size,
                      s_on_trimmed, NULL))
        self->host->log (self->ctx, PARLEY_LOG_WARNING,
                         "could not ask the store to trim the tokens of '%s'", user);
    pl_pack_release (&pack);
}

static void
s_on_touched (void *state, void *arg, const pl_call_reply_t *reply)
{
    auth_t *self = (auth_t *) state;
    //  not_found: logged out meanwhile
    if (reply->code && !streq (reply->code, "not_found"))
        self->host->log (self->ctx, PARLEY_LOG_WARNING, "store.token.touch answered %s (%s)",
                         reply->code, reply->message ? reply->message : "");
}

//  After a resume: the token's last use is now and it stays valid for its
//  lifetime from now (store.token.touch with expires_at), so that a trim
//  keeps the tokens in use and a token used within its lifetime never
//  expires. Recorded to touch_every_ms: not when the expiry the store holds
//  is within that of now + lifetime, i.e. the token was issued or its use
//  recorded that recently (a write per reconnect would cost a reconnect
//  storm a store write each), nor twice within it from here. touch_every_ms
//  is at most half the lifetime, so that a recorded expiry is never more
//  than half a lifetime behind the last use.
static void
s_touch_token (auth_t *self, const char *token_hash, int64_t expires_at)
{
    int64_t now = zclock_mono ();
    int64_t renewed = zclock_time () + self->token_ttl_ms;
    if (self->touch_every_ms
        && (expires_at + self->touch_every_ms > renewed
            || au_limiter_check (self->touched, token_hash, now) > 0))
        return;
    au_limiter_fail (self->touched, token_hash, now);
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 3);
    pl_pack_kstr (&pack, "token_hash", token_hash);
    pl_pack_kint (&pack, "at", zclock_time ());
    pl_pack_kint (&pack, "expires_at", renewed);
    pl_call_send (self->calls, "store.token.touch", pack.buffer.data, pack.buffer.size,
                  s_on_touched, NULL);
    pl_pack_release (&pack);
}

//  Answers ok {user, token} and binds the session to user
static void
s_op_bind (auth_t *self, op_t *op, const char *user)
{
    if (auth_binding_record (self, op->session, user, op->token_hash))
        self->host->log (self->ctx, PARLEY_LOG_WARNING,
                         "out of memory: a logout will not find the token of session "
                         "%016" PRIx64 " ('%s')", op->session, user);
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 2);
    pl_pack_kstr (&pack, "user", user);
    pl_pack_kstr (&pack, "token", op->token);
    self->host->reply_bind (self->ctx, &op->request, user, pack.buffer.data, pack.buffer.size);
    pl_pack_release (&pack);
    auth_op_finish (self, op);
}


//  --------------------------------------------------------------------------
//  Reading requests

//  Unpacks the request's body into fields; on failure answers bad_request
//  and returns -1 (the request is then answered)
int
auth_body (auth_t *self, parley_request_t **request_p, msgpack_unpacked *fields)
{
    size_t size;
    const uint8_t *body = self->host->request_body (*request_p, &size);
    msgpack_unpacked_init (fields);
    if (!pl_body_unpack (fields, body, size)) {
        msgpack_unpacked_destroy (fields);
        self->host->reply_error (self->ctx, request_p, "bad_request",
                                 "The request's fields are not a map.");
        return -1;
    }
    return 0;
}

//  Reads username and password (register, login). Returns 0, or answers
//  bad_request and returns -1.
static int
s_credentials (auth_t *self, parley_request_t **request_p, const char *type,
               const msgpack_object *map, const char **name, size_t *name_size,
               const char **password, size_t *password_size)
{
    const char *missing = NULL;
    if (s_field_str (map, "username", name, name_size))
        missing = "username";
    else
    if (s_field_str (map, "password", password, password_size))
        missing = "password";
    if (missing) {
        char message [160];
        snprintf (message, sizeof message, "%s needs the field '%s', a string.", type, missing);
        self->host->reply_error (self->ctx, request_p, "bad_request", message);
        return -1;
    }
    return 0;
}

static void
s_already (auth_t *self, parley_request_t **request_p, const char *user)
{
    char message [160];
    snprintf (message, sizeof message,
              "This session is already logged in as %s; log out first.", user);
    self->host->reply_error (self->ctx, request_p, "already_authenticated", message);
}


//  --------------------------------------------------------------------------
//  Rate limits: rate_limited with retry_after_ms (PROTOCOL.md 1.1 "Outcomes")

//  Answers rate_limited, saying whose limit and when to try again
static void
s_rate_limited (auth_t *self, parley_request_t **request_p, const char *what,
                int64_t wait_ms)
{
    char message [200];
    long long seconds = (wait_ms + 999) / 1000;
    snprintf (message, sizeof message, "%s; try again in %lld second%s.",
              what, seconds, seconds == 1 ? "" : "s");
    pl_reply_error_retry (self->host, self->ctx, request_p, "rate_limited", message, wait_ms);
}

//  Answers rate_limited and returns true when address has registered
//  register_rate accounts within the last minute; else counts this one
static bool
s_register_limited (auth_t *self, parley_request_t **request_p, const char *address)
{
    if (!address)
        return false;           //  another plugin: not a client's address
    int64_t now = zclock_mono ();
    int64_t wait_ms = au_limiter_check (self->registrations, address, now);
    if (wait_ms > 0) {
        self->host->log (self->ctx, PARLEY_LOG_INFO,
                         "registration from %s refused: too many from this address", address);
        s_rate_limited (self, request_p, "Too many accounts were registered from your "
                        "address lately", wait_ms);
        return true;
    }
    au_limiter_fail (self->registrations, address, now);
    return false;
}


//  --------------------------------------------------------------------------
//  auth.register {username, password} -> {user, token}

static void s_register_on_user_get (void *state, void *arg, const pl_call_reply_t *reply);

static void
s_register (auth_t *self, parley_request_t *request)
{
    msgpack_unpacked fields;
    if (auth_body (self, &request, &fields))
        return;
    const char *name, *password;
    size_t name_size, password_size;
    if (s_credentials (self, &request, "auth.register", &fields.data, &name, &name_size,
                       &password, &password_size)) {
        msgpack_unpacked_destroy (&fields);
        return;
    }
    const char *user = self->host->request_user (request);
    char valid_name [PL_USERNAME_MAX + 1];
    const char *weak = NULL;
    if (!s_username_valid (name, name_size))
        self->host->reply_error (self->ctx, &request, "invalid_username",
                                 "A username has 3 to 32 characters: letters, digits, "
                                 "'_', '.' or '-'.");
    else
    if ((weak = au_common_weak (self->common, s_copy_name (valid_name, name, name_size),
                                password, password_size)))
        self->host->reply_error (self->ctx, &request, "weak_password", weak);
    else
    if (user)
        s_already (self, &request, user);
    else
    if (s_register_limited (self, &request, self->host->request_address (request)))
        ;                       //  answered
    else {
        op_t *op = auth_op_new (self, OP_REGISTER, request);
        if (op) {
            op->name = auth_strndup (name, name_size);
            op->password = auth_strndup (password, password_size);
            op->password_size = password_size;
        }
        if (!op || !op->name || !op->password) {
            if (op)
                auth_op_fail (self, op, "internal", "The server ran out of memory; try again.");
            else
                self->host->reply_error (self->ctx, &request, "internal",
                                         "The server ran out of memory; try again.");
        }
        else
            //  Asking first answers username_taken without spending a hash;
            //  store.user.create's conflict still settles a race
            auth_op_call_one (self, op, "store.user.get", "name", op->name,
                              s_register_on_user_get);
    }
    msgpack_unpacked_destroy (&fields);
}

//  store.user.get: an answer means the name is taken; not_found, hash
static void
s_register_on_user_get (void *state, void *arg, const pl_call_reply_t *reply)
{
    auth_t *self = (auth_t *) state;
    op_t *op = (op_t *) arg;
    if (!reply->code)
        auth_op_fail (self, op, "username_taken", "This username is taken; choose another.");
    else
    if (streq (reply->code, "not_found")) {
        au_job_t *job = au_job_new_hash (op->password, op->password_size, op);
        sodium_memzero (op->password, op->password_size);
        auth_op_submit (self, op, job);
    }
    else
        auth_op_store_failed (self, op, reply);
}

static void
s_register_on_token_put (void *state, void *arg, const pl_call_reply_t *reply)
{
    auth_t *self = (auth_t *) state;
    op_t *op = (op_t *) arg;
    if (reply->code) {
        self->host->log (self->ctx, PARLEY_LOG_WARNING,
                         "store.token.put for new user '%s' answered %s (%s)",
                         op->name, reply->code, reply->message ? reply->message : "");
        //  The request took effect in part: the client checks with a login
        auth_op_unavailable (self, op, "Your account was created, but the session could not be"
                             " opened; log in in a moment.", reply->retry_ms, true);
    }
    else
        s_op_bind (self, op, op->name);     //  a new user's one token: nothing to trim
}

//  store.user.create: the account is there, under the name as registered
static void
s_register_on_created (void *state, void *arg, const pl_call_reply_t *reply)
{
    auth_t *self = (auth_t *) state;
    op_t *op = (op_t *) arg;
    const char *name;
    size_t name_size;
    if (reply->code && streq (reply->code, "conflict"))
        auth_op_fail (self, op, "username_taken", "This username is taken; choose another.");
    else
    if (reply->code || s_field_str (reply->body, "name", &name, &name_size))
        auth_op_store_failed (self, op, reply);
    else {
        char *registered = auth_strndup (name, name_size);
        if (!registered) {
            auth_op_fail (self, op, "internal", "The server ran out of memory; try again.");
            return;
        }
        free (op->name);
        op->name = registered;
        op->created = true;
        self->host->log (self->ctx, PARLEY_LOG_INFO, "'%s' registered from %s",
                         op->name, auth_addr (op->address));
        auth_op_issue_token (self, op, s_register_on_token_put);
    }
}

static void
s_register_on_job (auth_t *self, op_t *op, au_job_t *job)
{
    //  No account is begun that could not be finished before the deadline:
    //  the client is told unavailable, and nothing was created
    int64_t time_left = s_op_time_left (self, op);
    if (job->expired || (time_left >= 0 && time_left < AUTH_STORE_RESERVE_MS)) {
        auth_op_unavailable (self, op, "The server is busy checking passwords; try again in a"
                             " moment.", au_pool_hash_ms (self->pool), false);
        return;
    }
    if (!job->ok) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "hashing the password of new user '%s' failed (out of memory?)",
                         op->name);
        auth_op_fail (self, op, "internal", "The server could not store the password; try again.");
        return;
    }
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 3);
    pl_pack_kstr (&pack, "name", op->name);
    pl_pack_kstr (&pack, "password_hash", job->hash);
    pl_pack_kint (&pack, "created_at", zclock_time ());
    auth_op_call (self, op, "store.user.create", &pack, s_register_on_created);
    pl_pack_release (&pack);
}


//  --------------------------------------------------------------------------
//  auth.login {username, password} -> {user, token}

//  Answers rate_limited and returns true when this name from this address,
//  the address, or (at a much higher threshold) the name has failed too
//  often lately. pair_key is NULL when the name is not valid or there is
//  no address.
bool
auth_login_limited (auth_t *self, parley_request_t **request_p, const char *address,
                    const char *name_key, const char *pair_key)
{
    int64_t now = zclock_mono ();
    int64_t wait_ms = 0;
    const char *what = NULL;
    if (pair_key && (wait_ms = au_limiter_check (self->pair_failures, pair_key, now)) > 0)
        what = "Too many failed logins for this username from your address";
    else
    if (address && (wait_ms = au_limiter_check (self->address_failures, address, now)) > 0)
        what = "Too many failed logins from your address";
    else
    if (name_key && (wait_ms = au_limiter_check (self->user_failures, name_key, now)) > 0)
        what = "Too many failed logins for this username";
    if (!what)
        return false;
    s_rate_limited (self, request_p, what, wait_ms);
    return true;
}

//  Hands op's password to the pool to check against an encoded hash; op's
//  own copy is wiped, as the job holds one now
void
auth_op_verify (auth_t *self, op_t *op, const char *hash)
{
    au_job_t *job = au_job_new_verify (op->password, op->password_size, hash, op);
    sodium_memzero (op->password, op->password_size);
    auth_op_submit (self, op, job);
}

//  store.user.get: the account's name as registered and its hash to verify
//  against; an unknown user is verified against the dummy hash, so that it
//  takes as long as a wrong password does
void
auth_login_on_user_get (void *state, void *arg, const pl_call_reply_t *reply)
{
    auth_t *self = (auth_t *) state;
    op_t *op = (op_t *) arg;
    const char *name, *hash;
    size_t name_size, hash_size;
    if (reply->code && streq (reply->code, "not_found")) {
        op->unknown_user = true;
        auth_op_verify (self, op, self->dummy_hash);
    }
    else
    if (reply->code || s_field_str (reply->body, "name", &name, &name_size)
        || s_field_str (reply->body, "password_hash", &hash, &hash_size))
        auth_op_store_failed (self, op, reply);
    else
    if (s_state_is (reply->body, "deleted")) {
        //  Gone, as far as a login can tell
        op->unknown_user = true;
        auth_op_verify (self, op, self->dummy_hash);
    }
    else {
        op->disabled = s_state_is (reply->body, "disabled");
        char *registered = auth_strndup (name, name_size);
        char *encoded = auth_strndup (hash, hash_size);
        if (!registered || !encoded) {
            free (registered);
            free (encoded);
            auth_op_fail (self, op, "internal", "The server ran out of memory; try again.");
            return;
        }
        free (op->name);
        op->name = registered;
        auth_op_verify (self, op, encoded);
        free (encoded);
    }
}

//  Lower-cases a valid name into key (PL_USERNAME_MAX + 1 bytes). Returns
//  "key address" for the pair limiter (caller owns it; a username holds no
//  space, so it is unambiguous), or NULL without an address.
char *
auth_login_keys (const char *name, size_t name_size, const char *address, char *key)
{
    for (size_t index = 0; index < name_size; index++)
        key [index] = (char) tolower ((unsigned char) name [index]);
    key [name_size] = 0;
    return address ? zsys_sprintf ("%s %s", key, address) : NULL;
}

//  A login with its fields read: the limits first, then the store or, for
//  a name no account can have, the dummy hash
static void
s_login_checked (auth_t *self, parley_request_t *request, const char *name, size_t name_size,
                 const char *password, size_t password_size)
{
    bool valid = s_username_valid (name, name_size);
    const char *address = self->host->request_address (request);
    char key [PL_USERNAME_MAX + 1] = "";
    char *pair = valid ? auth_login_keys (name, name_size, address, key) : NULL;
    if (auth_login_limited (self, &request, address, valid ? key : NULL, pair)) {
        zstr_free (&pair);
        return;
    }
    op_t *op = auth_op_new (self, OP_LOGIN, request);
    if (op) {
        op->password = auth_strndup (password, password_size);
        op->password_size = password_size;
        if (valid) {
            op->name = auth_strndup (name, name_size);
            op->name_key = strdup (key);
        }
        op->pair_key = pair;
        pair = NULL;
    }
    zstr_free (&pair);
    if (!op || !op->password || (valid && (!op->name || !op->name_key))) {
        if (op)
            auth_op_fail (self, op, "internal", "The server ran out of memory; try again.");
        else
            self->host->reply_error (self->ctx, &request, "internal",
                                     "The server ran out of memory; try again.");
    }
    else
    if (!valid || password_size < PL_PASSWORD_MIN || password_size > PL_PASSWORD_MAX) {
        //  No such account can exist; answer as for any unknown user,
        //  after the same time
        op->unknown_user = true;
        auth_op_verify (self, op, self->dummy_hash);
    }
    else
        auth_op_call_one (self, op, "store.user.get", "name", op->name, auth_login_on_user_get);
}

static void
s_login (auth_t *self, parley_request_t *request)
{
    msgpack_unpacked fields;
    if (auth_body (self, &request, &fields))
        return;
    const char *name, *password;
    size_t name_size, password_size;
    const char *user = self->host->request_user (request);
    if (s_credentials (self, &request, "auth.login", &fields.data, &name, &name_size,
                       &password, &password_size))
        ;                       //  answered
    else
    if (user)
        s_already (self, &request, user);
    else
        s_login_checked (self, request, name, name_size, password, password_size);
    msgpack_unpacked_destroy (&fields);
}

bool
auth_token_put_failed (auth_t *self, op_t *op, const pl_call_reply_t *reply, const char *gone)
{
    //  The operator disabled or deleted the account while we checked it
    if (reply->code && streq (reply->code, "forbidden"))
        auth_op_fail (self, op, "account_disabled",
                      "This account is disabled; ask the server's operator.");
    else
    if (reply->code && streq (reply->code, "not_found"))
        auth_op_fail (self, op, "bad_credentials", gone);
    else
    if (reply->code)
        auth_op_store_failed (self, op, reply);
    return reply->code != NULL;
}

static void
s_login_on_token_put (void *state, void *arg, const pl_call_reply_t *reply)
{
    auth_t *self = (auth_t *) state;
    op_t *op = (op_t *) arg;
    if (auth_token_put_failed (self, op, reply, "The username or the password is wrong."))
        ;                       //  answered
    else {
        self->host->log (self->ctx, PARLEY_LOG_INFO, "'%s' logged in from %s", op->name,
                         auth_addr (op->address));
        s_trim_tokens (self, op->name);
        s_op_bind (self, op, op->name);
    }
}

void
auth_failures_count (auth_t *self, op_t *op)
{
    int64_t now = zclock_mono ();
    if (op->address)
        au_limiter_fail (self->address_failures, op->address, now);
    if (op->name_key)
        au_limiter_fail (self->user_failures, op->name_key, now);
    if (op->pair_key)
        au_limiter_fail (self->pair_failures, op->pair_key, now);
}

void
auth_failures_clear (auth_t *self, op_t *op)
{
    if (op->name_key)
        au_limiter_clear (self->user_failures, op->name_key);
    if (op->pair_key)
        au_limiter_clear (self->pair_failures, op->pair_key);
}

static void
s_login_on_job (auth_t *self, op_t *op, au_job_t *job)
{
    //  Not checked, so not a failure: its time ran out in the queue
    if (job->expired) {
        auth_op_unavailable (self, op, "The server is busy checking passwords; try again in a"
                             " moment.", au_pool_hash_ms (self->pool), false);
        return;
    }
    if (job->ok && !op->unknown_user && op->disabled) {
        //  Told only to whoever knows the password
        self->host->log (self->ctx, PARLEY_LOG_INFO, "login as disabled '%s' from %s refused",
                         op->name, auth_addr (op->address));
        auth_op_fail (self, op, "account_disabled",
                      "This account is disabled; ask the server's operator.");
        return;
    }
    if (job->ok && !op->unknown_user) {
        auth_failures_clear (self, op);
        auth_op_issue_token (self, op, s_login_on_token_put);
        return;
    }
    auth_failures_count (self, op);
    if (op->name)
        self->host->log (self->ctx, PARLEY_LOG_INFO, "failed login as '%s' from %s (%s)",
                         op->name, auth_addr (op->address),
                         op->unknown_user ? "no such user" : "wrong password");
    else
        self->host->log (self->ctx, PARLEY_LOG_INFO,
                         "failed login from %s (not a valid username)", auth_addr (op->address));
    auth_op_fail (self, op, "bad_credentials", "The username or the password is wrong.");
}


//  --------------------------------------------------------------------------
//  auth.resume {token} -> {user, token}

static void s_resume_on_token_get (void *state, void *arg, const pl_call_reply_t *reply);

static void
s_resume (auth_t *self, parley_request_t *request)
{
    msgpack_unpacked fields;
    if (auth_body (self, &request, &fields))
        return;
    const char *token;
    size_t token_size;
    const char *user = self->host->request_user (request);
    if (s_field_str (&fields.data, "token", &token, &token_size))
        self->host->reply_error (self->ctx, &request, "bad_request",
                                 "auth.resume needs the field 'token', a string.");
    else
    if (user)
        s_already (self, &request, user);
    else
    if (!s_token_text_valid (token, token_size))
        self->host->reply_error (self->ctx, &request, "invalid_token",
                                 "This token is not valid (unknown, expired or revoked); "
                                 "log in again.");
    else {
        op_t *op = auth_op_new (self, OP_RESUME, request);
        if (!op)
            self->host->reply_error (self->ctx, &request, "internal",
                                     "The server ran out of memory; try again.");
        else {
            memcpy (op->token, token, token_size);
            op->token [token_size] = 0;
            s_token_hash (op->token, token_size, op->token_hash);
            auth_op_call_one (self, op, "store.token.get", "token_hash", op->token_hash,
                              s_resume_on_token_get);
        }
    }
    msgpack_unpacked_destroy (&fields);
}

//  store.token.get: whose token, until when
static void
s_resume_on_token_get (void *state, void *arg, const pl_call_reply_t *reply)
{
    auth_t *self = (auth_t *) state;
    op_t *op = (op_t *) arg;
    const char *name;
    size_t name_size;
    int64_t expires_at, created_at;
    if (reply->code && streq (reply->code, "not_found"))
        auth_op_fail (self, op, "invalid_token",
                      "This token is not valid (unknown, expired or revoked); log in again.");
    else
    if (reply->code || s_field_str (reply->body, "user", &name, &name_size)
        || pl_body_int64 (reply->body, "expires_at", &expires_at) != 1
        || pl_body_int64 (reply->body, "created_at", &created_at) != 1)
        auth_op_store_failed (self, op, reply);
    else
    if (expires_at <= zclock_time ())
        auth_op_fail (self, op, "invalid_token",
                      "This token has expired; log in again.");
    else {
        op->name = auth_strndup (name, name_size);
        if (!op->name) {
            auth_op_fail (self, op, "internal", "The server ran out of memory; try again.");
            return;
        }
        self->host->log (self->ctx, PARLEY_LOG_INFO, "'%s' resumed a session from %s",
                         op->name, auth_addr (op->address));
        s_touch_token (self, op->token_hash, expires_at);
        s_op_bind (self, op, op->name);
    }
}


//  --------------------------------------------------------------------------
//  auth.check {token} -> {user}: whose valid token this is, for another
//  plugin (the files plugin's uploads arrive over HTTP, without a session).
//  One store.token.get: no password hash, no renewal, no binding.

static void s_check_on_token_get (void *state, void *arg, const pl_call_reply_t *reply);

#define S_INVALID_TOKEN "This token is not valid (unknown, expired or revoked); log in again."

static void
s_check (auth_t *self, parley_request_t *request)
{
    msgpack_unpacked fields;
    if (auth_body (self, &request, &fields))
        return;
    const char *token;
    size_t token_size;
    op_t *op = NULL;
    if (s_field_str (&fields.data, "token", &token, &token_size))
        self->host->reply_error (self->ctx, &request, "bad_request",
                                 "auth.check needs the field 'token', a string.");
    else
    if (!s_token_text_valid (token, token_size))
        self->host->reply_error (self->ctx, &request, "invalid_token", S_INVALID_TOKEN);
    else
    if (!(op = auth_op_new (self, OP_CHECK, request)))
        self->host->reply_error (self->ctx, &request, "internal",
                                 "The server ran out of memory; try again.");
    else {
        s_token_hash (token, token_size, op->token_hash);
        auth_op_call_one (self, op, "store.token.get", "token_hash", op->token_hash,
                          s_check_on_token_get);
    }
    msgpack_unpacked_destroy (&fields);
}

//  store.token.get: a token of a disabled or deleted account is revoked
//  with it (store.user.set_state), so a stored, unexpired token is valid
static void
s_check_on_token_get (void *state, void *arg, const pl_call_reply_t *reply)
{
    auth_t *self = (auth_t *) state;
    op_t *op = (op_t *) arg;
    const char *name;
    size_t name_size;
    int64_t expires_at;
    if (reply->code && streq (reply->code, "not_found"))
        auth_op_fail (self, op, "invalid_token", S_INVALID_TOKEN);
    else
    if (reply->code || s_field_str (reply->body, "user", &name, &name_size)
        || pl_body_int64 (reply->body, "expires_at", &expires_at) != 1)
        auth_op_store_failed (self, op, reply);
    else
    if (expires_at <= zclock_time ())
        auth_op_fail (self, op, "invalid_token", "This token has expired; log in again.");
    else {
        pl_pack_t pack;
        pl_pack_init (&pack);
        pl_pack_map (&pack, 1);
        pl_pack_str (&pack, "user");
        pl_pack_strn (&pack, name, name_size);
        self->host->reply (self->ctx, &op->request, (const uint8_t *) pack.buffer.data,
                           pack.buffer.size);
        pl_pack_release (&pack);
        auth_op_finish (self, op);
    }
}


//  --------------------------------------------------------------------------
//  auth.logout -> {}: revokes the session's token on every session using it

static void s_logout_on_deleted (void *state, void *arg, const pl_call_reply_t *reply);

static void
s_logout (auth_t *self, parley_request_t *request)
{
    const char *user = self->host->request_user (request);
    if (!user) {
        //  Nothing to log out of: ok, and nothing changes
        self->host->reply (self->ctx, &request, NULL, 0);
        return;
    }
    op_t *op = auth_op_new (self, OP_LOGOUT, request);
    if (!op) {
        self->host->reply_error (self->ctx, &request, "internal",
                                 "The server ran out of memory; try again.");
        return;
    }
    op->name = strdup (user);
    if (!op->name) {
        auth_op_fail (self, op, "internal", "The server ran out of memory; try again.");
        return;
    }
    binding_t *binding = s_binding_lookup (self, op->session);
    if (binding && streq (binding->user, user)) {
        memcpy (op->token_hash, binding->token_hash, sizeof op->token_hash);
        auth_op_call_one (self, op, "store.token.delete", "token_hash", op->token_hash,
                          s_logout_on_deleted);
    }
    else {
        //  Bound before this instance knew it (see README): unbind only
        self->host->log (self->ctx, PARLEY_LOG_INFO,
                         "'%s' logged out from %s (token of this session unknown here: "
                         "only this session is unbound)", user, auth_addr (op->address));
        self->host->reply_bind (self->ctx, &op->request, NULL, NULL, 0);
        auth_op_finish (self, op);
    }
}

//  Every session bound with token_hash but except is unbound, then hears
//  that it is logged out, and its binding is forgotten. Returns how many.
static size_t
s_revoke_sessions (auth_t *self, const char *token_hash, uint64_t except)
{
    //  Every other session of the token hears why, then is unbound; the
    //  deliver goes first so that the event reaches them while bound
    uint64_t *others = NULL;
    size_t other_count = 0;
    token_t *token = (token_t *) zhashx_lookup (self->tokens, token_hash);
    if (token) {
        others = (uint64_t *) calloc (zlistx_size (token->bindings), sizeof (uint64_t));
        binding_t *binding = (binding_t *) zlistx_first (token->bindings);
        while (binding) {
            if (others && binding->sid != except)
                others [other_count++] = binding->sid;
            binding = (binding_t *) zlistx_next (token->bindings);
        }
        //  Removing the last binding frees the token
        binding_t *next = (binding_t *) zlistx_first (token->bindings);
        while (next) {
            bool last = zlistx_size (token->bindings) == 1;
            s_binding_remove (self, next);
            if (last)
                break;
            next = (binding_t *) zlistx_first (token->bindings);
        }
    }
    if (other_count) {
        //  Unbound first, then told: the broker takes them in this order, so
        //  that a request sent on hearing logged_out is already anonymous
        self->host->unbind_sessions (self->ctx, others, other_count);
        pl_pack_t pack;
        pl_pack_init (&pack);
        pl_pack_map (&pack, 1);
        pl_pack_kstr (&pack, "type", "logged_out");
        self->host->deliver_sessions (self->ctx, others, other_count, pack.buffer.data,
                                      pack.buffer.size);
        pl_pack_release (&pack);
    }
    free (others);
    return other_count;
}

//  store.token.delete: the token is gone (not_found: gone already)
static void
s_logout_on_deleted (void *state, void *arg, const pl_call_reply_t *reply)
{
    auth_t *self = (auth_t *) state;
    op_t *op = (op_t *) arg;
    if (reply->code && !streq (reply->code, "not_found")) {
        auth_op_store_failed (self, op, reply);
        return;
    }
    size_t other_count = s_revoke_sessions (self, op->token_hash, op->session);
    self->host->log (self->ctx, PARLEY_LOG_INFO,
                     "'%s' logged out from %s; token revoked, %zu other session%s unbound",
                     op->name, auth_addr (op->address), other_count, other_count == 1 ? "" : "s");
    self->host->reply_bind (self->ctx, &op->request, NULL, NULL, 0);
    auth_op_finish (self, op);
}


//  --------------------------------------------------------------------------
//  The operator's: admin.users.* from parleyctl (an admin peer; README.md,
//  "Operators"). Every bound session is tracked from the broker's events,
//  whoever bound it, so that a disabled or deleted user is logged out of
//  all of them.

#define AUTH_GENERATED_BYTES        18          //  a generated password: 24 characters

static void
s_online_track (auth_t *self, int event, uint64_t session, const char *user)
{
    char key [17];
    snprintf (key, sizeof key, "%016" PRIx64, session);
    if (event == PARLEY_SESSION_RESET)
        zhashx_purge (self->online);
    else
    if (event == PARLEY_SESSION_BOUND && user) {
        char *copy = strdup (user);
        if (copy)
            zhashx_update (self->online, key, copy);
    }
    else
    if (event == PARLEY_SESSION_CLOSED)
        zhashx_delete (self->online, key);
}

//  Every session of user (bound, or being bound by us) but except hears
//  logged_out and is unbound. Returns how many.
size_t
auth_logout_user (auth_t *self, const char *user, uint64_t except)
{
    char except_key [17];
    snprintf (except_key, sizeof except_key, "%016" PRIx64, except);
    zhashx_t *found = zhashx_new ();
    if (!found)
        return 0;
    for (char *name = (char *) zhashx_first (self->online); name;
         name = (char *) zhashx_next (self->online))
        if (strcasecmp (name, user) == 0
            && !streq ((const char *) zhashx_cursor (self->online), except_key))
            zhashx_update (found, (const char *) zhashx_cursor (self->online), self);
    for (binding_t *binding = (binding_t *) zhashx_first (self->bindings); binding;
         binding = (binding_t *) zhashx_next (self->bindings))
        if (strcasecmp (binding->user, user) == 0 && binding->sid != except)
            zhashx_update (found, binding->sid_key, self);
    size_t count = 0;
    uint64_t *sids = (uint64_t *) calloc (zhashx_size (found) + 1, sizeof (uint64_t));
    for (void *item = zhashx_first (found); item && sids; item = zhashx_next (found)) {
        sids [count] = strtoull ((const char *) zhashx_cursor (found), NULL, 16);
        binding_t *binding = s_binding_lookup (self, sids [count++]);
        if (binding)
            s_binding_remove (self, binding);
    }
    if (count) {
        //  Unbound first, then told (as s_revoke_sessions)
        self->host->unbind_sessions (self->ctx, sids, count);
        static const uint8_t logged_out [] = "\x81\xa4type\xaalogged_out";
        self->host->deliver_sessions (self->ctx, sids, count, logged_out,
                                      sizeof logged_out - 1);
    }
    free (sids);
    zhashx_destroy (&found);
    return count;
}

//  {user, state?, tokens, sessions, password?}: what was done
static void
s_admin_done (auth_t *self, op_t *op, const char *state, int64_t tokens, size_t sessions)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 3 + (state ? 1 : 0) + (op->generated ? 1 : 0));
    pl_pack_kstr (&pack, "user", op->name);
    if (state)
        pl_pack_kstr (&pack, "state", state);
    pl_pack_kint (&pack, "tokens", tokens);
    pl_pack_kuint (&pack, "sessions", sessions);
    if (op->generated)
        pl_pack_kstr (&pack, "password", op->token);
    self->host->log (self->ctx, PARLEY_LOG_INFO, "operator %s: '%s' %s; %lld token%s revoked,"
                     " %zu session%s logged out", auth_addr (op->address), op->name,
                     state ? state : "has a new password", (long long) tokens,
                     tokens == 1 ? "" : "s", sessions, sessions == 1 ? "" : "s");
    self->host->reply (self->ctx, &op->request, pack.buffer.data, pack.buffer.size);
    pl_pack_release (&pack);
    auth_op_finish (self, op);
}

//  The store changed the account: its sessions go, unless it is active now
static void
s_admin_on_changed (void *state, void *arg, const pl_call_reply_t *reply)
{
    auth_t *self = (auth_t *) state;
    op_t *op = (op_t *) arg;
    char *name = NULL, *account = NULL;
    if (reply->code && (streq (reply->code, "not_found") || streq (reply->code, "conflict")))
        auth_op_fail (self, op, streq (reply->code, "not_found") ? "no_such_user" : "conflict",
                      reply->message ? reply->message : "No such user.");
    else
    if (reply->code || pl_body_str (reply->body, "name", &name) != 1)
        auth_op_store_failed (self, op, reply);
    else {
        pl_body_str (reply->body, "state", &account);
        free (op->name);
        op->name = name;
        name = NULL;
        bool active = account && streq (account, "active");
        size_t sessions = active ? 0 : auth_logout_user (self, op->name, 0);
        s_admin_done (self, op, account, pl_body_int (reply->body, "tokens"), sessions);
    }
    free (name);
    free (account);
}

//  The new password is hashed: the store takes it and revokes the tokens
static void
s_admin_reset_on_job (auth_t *self, op_t *op, au_job_t *job)
{
    if (!job->ok) {
        auth_op_fail (self, op, "internal", "The server could not hash the password.");
        return;
    }
    pl_pack_t pack;
    pl_pack_start (&pack, 2, "name", op->name);
    pl_pack_kstr (&pack, "password_hash", job->hash);
    auth_op_call (self, op, "store.user.set_password", &pack, s_admin_on_changed);
    pl_pack_release (&pack);
}

//  admin.users.reset_password {user, password?}: the password given (8 to
//  1024 bytes) or one made here, answered once
static void
s_admin_reset (auth_t *self, op_t *op, const msgpack_object *fields)
{
    const char *given;
    size_t size;
    if (s_field_str (fields, "password", &given, &size) == 0) {
        const char *weak = memchr (given, 0, size) ? "A password holds no NUL byte."
                         : au_common_weak (self->common, op->name, given, size);
        if (weak) {
            auth_op_fail (self, op, "weak_password", weak);
            return;
        }
        op->password = auth_strndup (given, size);
        op->password_size = size;
    }
    else {
        uint8_t raw [AUTH_GENERATED_BYTES];
        randombytes_buf (raw, sizeof raw);
        sodium_bin2base64 (op->token, sizeof op->token, raw, sizeof raw,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_memzero (raw, sizeof raw);
        op->generated = true;
        op->password_size = strlen (op->token);
        op->password = auth_strndup (op->token, op->password_size);
    }
    if (!op->password) {
        auth_op_fail (self, op, "internal", "The server ran out of memory; try again.");
        return;
    }
    au_job_t *job = au_job_new_hash (op->password, op->password_size, op);
    sodium_memzero (op->password, op->password_size);
    auth_op_submit (self, op, job);
}

//  admin.users.list {after?}: the store's page, passed on
static void
s_admin_on_listed (void *state, void *arg, const pl_call_reply_t *reply)
{
    auth_t *self = (auth_t *) state;
    op_t *op = (op_t *) arg;
    if (reply->code) {
        auth_op_store_failed (self, op, reply);
        return;
    }
    pl_reply_object (self->host, self->ctx, &op->request, reply->body);
    auth_op_finish (self, op);
}

//  Reads the request's user and sends op's store call
static void
s_admin_start (auth_t *self, op_t *op, const char *verb, const msgpack_object *fields)
{
    const char *after;
    size_t size;
    pl_pack_t pack;
    if (streq (verb, "list")) {
        bool paged = s_field_str (fields, "after", &after, &size) == 0;
        op->name = paged ? auth_strndup (after, size) : NULL;
        pl_pack_init (&pack);
        pl_pack_map (&pack, paged ? 2 : 1);
        pl_pack_kuint (&pack, "limit", 1000);
        if (paged)
            pl_pack_kstr (&pack, "after", op->name ? op->name : "");
        auth_op_call (self, op, "store.user.list", &pack, s_admin_on_listed);
        pl_pack_release (&pack);
        return;
    }
    const char *user;
    if (s_field_str (fields, "user", &user, &size) || !size || size > PL_STORE_NAME_MAX
    ||  !(op->name = auth_strndup (user, size))) {
        auth_op_fail (self, op, "bad_request", "The field 'user' must be a user name.");
        return;
    }
    if (streq (verb, "reset_password")) {
        s_admin_reset (self, op, fields);
        return;
    }
    pl_pack_start (&pack, 2, "name", op->name);
    pl_pack_kstr (&pack, "state", streq (verb, "disable") ? "disabled"
                                : streq (verb, "delete") ? "deleted" : "active");
    auth_op_call (self, op, "store.user.set_state", &pack, s_admin_on_changed);
    pl_pack_release (&pack);
}

static void
s_admin (auth_t *self, parley_request_t *request, const char *type)
{
    const char *verb = type + strlen ("admin.users.");
    if (!pl_admin_check (self->host, self->ctx, &request))
        return;
    if (!streq (verb, "list") && !streq (verb, "disable") && !streq (verb, "enable")
    &&  !streq (verb, "delete") && !streq (verb, "reset_password")) {
        self->host->reply_error (self->ctx, &request, "unknown_type", "auth serves"
                                 " admin.users.list, disable, enable, delete and reset_password.");
        return;
    }
    msgpack_unpacked fields;
    if (auth_body (self, &request, &fields))
        return;
    op_t *op = auth_op_new (self, OP_ADMIN, request);
    if (!op)
        self->host->reply_error (self->ctx, &request, "internal",
                                 "The server ran out of memory; try again.");
    else
        s_admin_start (self, op, verb, &fields.data);
    msgpack_unpacked_destroy (&fields);
}


//  --------------------------------------------------------------------------
//  Timers

//  The descriptor's on_wake: a worker finished jobs (s_pool_notify woke us)
static void
s_on_wake (void *state)
{
    auth_t *self = (auth_t *) state;
    au_job_t *job;
    while ((job = au_pool_done (self->pool))) {
        op_t *op = (op_t *) job->cookie;
        if (op->kind == OP_REGISTER)
            s_register_on_job (self, op, job);
        else
        if (op->kind == OP_ADMIN)
            s_admin_reset_on_job (self, op, job);
        else
        if (op->kind == OP_PASSWORD)
            au_password_on_job (self, op, job);
        else
            s_login_on_job (self, op, job);
        au_job_destroy (&job);
    }
}

//  On a pool worker's thread: host->wake is the one host function it may call
static void
s_pool_notify (void *arg)
{
    auth_t *self = (auth_t *) arg;
    self->host->wake (self->ctx);
}

static void
s_on_purged (void *state, void *arg, const pl_call_reply_t *reply)
{
    auth_t *self = (auth_t *) state;
    if (reply->code)
        self->host->log (self->ctx, PARLEY_LOG_WARNING,
                         "store.token.purge answered %s (%s); will try again later",
                         reply->code, reply->message ? reply->message : "");
}

//  Asks the store to delete the expired tokens; nobody waits for it
static void
s_purge_tokens (auth_t *self)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1);
    pl_pack_kint (&pack, "before", zclock_time ());
    pl_call_send (self->calls, "store.token.purge", pack.buffer.data, pack.buffer.size,
                  s_on_purged, NULL);
    pl_pack_release (&pack);
}

//  Bindings the broker never confirmed: the session went before the bind,
//  or it was not re-bound after a RESET
static void
s_bindings_expire (auth_t *self, int64_t now)
{
    zlistx_t *stale = zlistx_new ();
    if (!stale)
        return;
    binding_t *binding = (binding_t *) zhashx_first (self->bindings);
    while (binding) {
        if (!binding->confirmed && binding->since + AUTH_UNCONFIRMED_MS <= now)
            zlistx_add_end (stale, binding);
        binding = (binding_t *) zhashx_next (self->bindings);
    }
    binding = (binding_t *) zlistx_first (stale);
    while (binding) {
        s_binding_remove (self, binding);
        binding = (binding_t *) zlistx_next (stale);
    }
    zlistx_destroy (&stale);
}

static void
s_housekeeping (void *state)
{
    auth_t *self = (auth_t *) state;
    int64_t now = zclock_mono ();
    au_limiter_expire (self->pair_failures, now);
    au_limiter_expire (self->user_failures, now);
    au_limiter_expire (self->address_failures, now);
    au_limiter_expire (self->registrations, now);
    au_limiter_expire (self->touched, now);
    s_bindings_expire (self, now);
    if (now >= self->next_purge) {
        self->next_purge = now + AUTH_PURGE_EVERY_MS;
        s_purge_tokens (self);
    }
}


//  --------------------------------------------------------------------------
//  The callbacks

//  The options, as init reads them (README.md, "Options")
typedef struct {
    uint64_t workers, queue, ops_limit, mem_limit;
    uint64_t max_pair, max_user, max_address, window_ms, register_rate;
    uint64_t ttl_days, ttl_ms, max_tokens, touch_interval_ms;
    const char *common_passwords;   //  a list of one's own, or NULL: the built-in one
} settings_t;

//  Reads every option. Returns 0, or -1 after logging each value refused.
static int
s_settings_read (const parley_host_t *host, parley_ctx_t *ctx, settings_t *set)
{
    pl_options_t options = pl_options (host, ctx, "auth");
    set->workers = pl_options_uint (&options, "workers", AUTH_WORKERS_DEFAULT, 1, 64);
    set->queue = pl_options_uint (&options, "queue", AUTH_QUEUE_DEFAULT, 1, 100000);
    set->ops_limit = pl_options_uint (&options, "ops_limit", AUTH_OPS_LIMIT_DEFAULT,
                                      crypto_pwhash_OPSLIMIT_MIN, 100);
    set->mem_limit = pl_options_uint (&options, "mem_limit", AUTH_MEM_LIMIT_DEFAULT,
                                      crypto_pwhash_MEMLIMIT_MIN, 4ULL << 30);
    set->max_pair = pl_options_uint (&options, "max_failures_pair", AUTH_MAX_FAILURES_PAIR,
                                     0, 1000000);
    set->max_user = pl_options_uint (&options, "max_failures_user", AUTH_MAX_FAILURES_USER,
                                     0, 1000000);
    set->register_rate = pl_options_uint (&options, "register_rate", AUTH_REGISTER_RATE,
                                          0, 1000000);
    set->max_tokens = pl_options_uint (&options, "max_tokens", AUTH_MAX_TOKENS, 1, 1000000);
    set->touch_interval_ms = pl_options_uint (&options, "touch_interval_ms",
                                              AUTH_TOUCH_INTERVAL_MS, 0, DAY_MS);
    set->max_address = pl_options_uint (&options, "max_failures_address",
                                        AUTH_MAX_FAILURES_ADDRESS, 0, 1000000);
    set->window_ms = pl_options_uint (&options, "failure_window_ms", AUTH_FAILURE_WINDOW_MS,
                                      1, DAY_MS);
    set->ttl_days = pl_options_uint (&options, "token_ttl_days", AUTH_TOKEN_TTL_DAYS, 1, 3650);
    set->ttl_ms = pl_options_uint (&options, "token_ttl_ms", 0, 0, 3650 * DAY_MS);
    set->common_passwords = pl_options_str (&options, "common_passwords", NULL);
    return pl_options_refused (&options) ? -1 : 0;
}

//  Creates the pool, the limiters and the tables. Returns 0, or -1 after
//  logging why (the caller destroys what was made).
static int
s_parts_new (auth_t *self, const settings_t *set)
{
    self->calls = pl_call_new (self->host, self->ctx, self);
    self->pool = au_pool_new (set->workers, set->queue, set->ops_limit, set->mem_limit);
    if (self->pool)
        au_pool_set_notify (self->pool, s_pool_notify, self);
    self->pair_failures = au_limiter_new (set->max_pair, set->window_ms, AUTH_LIMITER_KEYS);
    self->user_failures = au_limiter_new (set->max_user, set->window_ms, AUTH_LIMITER_KEYS);
    self->address_failures = au_limiter_new (set->max_address, set->window_ms,
                                             AUTH_LIMITER_KEYS);
    self->registrations = au_limiter_new (set->register_rate, AUTH_REGISTER_WINDOW_MS,
                                          AUTH_LIMITER_KEYS);
    self->touched = au_limiter_new (self->touch_every_ms ? 1 : 0, self->touch_every_ms,
                                    AUTH_LIMITER_KEYS);
    self->ops = zlistx_new ();
    self->bindings = zhashx_new ();
    self->tokens = zhashx_new ();
    self->online = zhashx_new ();
    if (self->online)
        zhashx_set_destructor (self->online, (zhashx_destructor_fn *) zstr_free);
    if (!self->online || !self->calls || !self->pool || !self->pair_failures || !self->user_failures
        || !self->address_failures || !self->registrations || !self->touched || !self->ops
        || !self->bindings || !self->tokens) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "could not start %llu password workers (out of memory?)",
                         (unsigned long long) set->workers);
        return -1;
    }
    return 0;
}

//  An unknown user's login verifies against this, so that it takes as
//  long as a wrong password does. Costs one hash at start. Returns 0, or
//  -1 after logging why.
static int
s_dummy_hash_make (auth_t *self, const settings_t *set)
{
    char secret [32];
    randombytes_buf (secret, sizeof secret);
    int hashed = au_pool_hash_now (self->pool, secret, sizeof secret, self->dummy_hash,
                                   sizeof self->dummy_hash);
    sodium_memzero (secret, sizeof secret);
    if (hashed)
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "argon2id with ops_limit %llu and mem_limit %llu bytes failed "
                         "(out of memory?)", (unsigned long long) set->ops_limit,
                         (unsigned long long) set->mem_limit);
    return hashed ? -1 : 0;
}

//  The common passwords refused: the built-in list, or auth.common_passwords.
//  Returns 0, or -1 after logging why.
static int
s_common_load (auth_t *self, const settings_t *set)
{
    char error [160] = "";
    self->common = au_common_new (set->common_passwords, error, sizeof error);
    if (!self->common)
        self->host->log (self->ctx, PARLEY_LOG_ERROR, "auth.common_passwords: cannot use '%s':"
                         " %s", set->common_passwords ? set->common_passwords
                                                      : "(built-in list)", error);
    return self->common ? 0 : -1;
}

static void
s_log_ready (auth_t *self, const settings_t *set)
{
    self->host->log (self->ctx, PARLEY_LOG_INFO,
                     "ready: argon2id ops_limit %llu, mem_limit %llu KiB, %llu workers; at most "
                     "%llu failed logins per username and address, %llu per address and %llu "
                     "per username in %llu ms; %llu registrations per address a minute; tokens "
                     "valid %lld s from their last use, %llu per user, their use recorded to "
                     "%lld ms; %zu common passwords refused (%s)",
                     (unsigned long long) set->ops_limit,
                     (unsigned long long) (set->mem_limit >> 10),
                     (unsigned long long) set->workers, (unsigned long long) set->max_pair,
                     (unsigned long long) set->max_address, (unsigned long long) set->max_user,
                     (unsigned long long) set->window_ms,
                     (unsigned long long) set->register_rate,
                     (long long) (self->token_ttl_ms / 1000),
                     (unsigned long long) set->max_tokens,
                     (long long) self->touch_every_ms, au_common_size (self->common),
                     set->common_passwords ? set->common_passwords : "built-in list");
}

static void s_destroy (void **state_p);

static int
s_init (parley_ctx_t *ctx, const parley_host_t *host, void **state_p)
{
    //  The pool's workers hand their jobs back through host->wake
    if (host->abi_minor < 2 || !host->wake) {
        host->log (ctx, PARLEY_LOG_ERROR, "auth needs a host of plugin ABI 1.2 or later "
                   "(host->wake); this one offers 1.%u", (unsigned) host->abi_minor);
        return -1;
    }
    if (sodium_init () < 0) {
        host->log (ctx, PARLEY_LOG_ERROR, "libsodium could not start");
        return -1;
    }
    settings_t set;
    if (s_settings_read (host, ctx, &set))
        return -1;
    auth_t *self = (auth_t *) calloc (1, sizeof (auth_t));
    if (!self) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        return -1;
    }
    self->ctx = ctx;
    self->host = host;
    self->token_ttl_ms = set.ttl_ms ? (int64_t) set.ttl_ms : (int64_t) set.ttl_days * DAY_MS;
    self->max_tokens = set.max_tokens;
    //  A use recorded at most half a lifetime late (see s_touch_token)
    self->touch_every_ms = (int64_t) set.touch_interval_ms;
    if (self->touch_every_ms > self->token_ttl_ms / 2)
        self->touch_every_ms = self->token_ttl_ms / 2;
    if (s_parts_new (self, &set) || s_common_load (self, &set)
        || s_dummy_hash_make (self, &set)) {
        s_destroy ((void **) &self);
        return -1;
    }
    self->housekeeping_timer = host->timer_add (ctx, AUTH_HOUSEKEEPING_MS, s_housekeeping);
    self->next_purge = zclock_mono ();
    s_log_ready (self, &set);
    *state_p = self;
    return 0;
}

static void
s_destroy (void **state_p)
{
    auth_t *self = (auth_t *) *state_p;
    if (!self)
        return;
    //  Workers first: they may hold jobs whose cookies are our ops, and
    //  they call host->wake, which they may not once we return
    au_pool_destroy (&self->pool);
    //  Calls still waiting: the host drops them with us
    pl_call_destroy (&self->calls);
    au_limiter_destroy (&self->pair_failures);
    au_limiter_destroy (&self->user_failures);
    au_limiter_destroy (&self->address_failures);
    au_limiter_destroy (&self->registrations);
    au_limiter_destroy (&self->touched);
    au_common_destroy (&self->common);
    if (self->ops) {
        //  Their requests and calls are the host's to drop now
        op_t *op = (op_t *) zlistx_first (self->ops);
        while (op) {
            s_op_free (op);
            op = (op_t *) zlistx_next (self->ops);
        }
        zlistx_destroy (&self->ops);
    }
    if (self->bindings) {
        binding_t *binding = (binding_t *) zhashx_first (self->bindings);
        while (binding) {
            free (binding->user);
            free (binding);
            binding = (binding_t *) zhashx_next (self->bindings);
        }
        zhashx_destroy (&self->bindings);
    }
    if (self->tokens) {
        token_t *token = (token_t *) zhashx_first (self->tokens);
        while (token) {
            zlistx_destroy (&token->bindings);
            free (token);
            token = (token_t *) zhashx_next (self->tokens);
        }
        zhashx_destroy (&self->tokens);
    }
    zhashx_destroy (&self->online);
    free (self);
    *state_p = NULL;
}

static void
s_on_request (void *state, parley_request_t *request)
{
    auth_t *self = (auth_t *) state;
    const char *type = self->host->request_type (request);
    if (type && streq (type, "auth.register"))
        s_register (self, request);
    else
    if (type && streq (type, "auth.login"))
        s_login (self, request);
    else
    if (type && streq (type, "auth.resume"))
        s_resume (self, request);
    else
    if (type && streq (type, "auth.logout"))
        s_logout (self, request);
    else
    if (type && streq (type, "auth.password"))
        au_password_request (self, request);
    else
    if (type && streq (type, "auth.check"))
        s_check (self, request);
    else
    if (type && strncmp (type, "admin.users.", 12) == 0)
        s_admin (self, request, type);
    else {
        char message [160];
        snprintf (message, sizeof message,
                  "auth serves auth.register, auth.login, auth.resume, auth.logout and "
                  "auth.password, "
                  "not '%.64s'.", type ? type : "");
        self->host->reply_error (self->ctx, &request, "unknown_type", message);
    }
}

//  The store revoked these tokens (store.token.trim): their sessions hear
//  logged_out and are unbound, as on a logout
static void
s_on_trimmed (void *state, void *arg, const pl_call_reply_t *reply)
{
    auth_t *self = (auth_t *) state;
    if (reply->code) {
        self->host->log (self->ctx, PARLEY_LOG_WARNING,
                         "store.token.trim answered %s (%s); the next login trims again",
                         reply->code, reply->message ? reply->message : "");
        return;
    }
    const msgpack_object *revoked = pl_body_field (reply->body, "revoked");
    size_t sessions = 0;
    uint32_t count = revoked && revoked->type == MSGPACK_OBJECT_ARRAY
                   ? revoked->via.array.size : 0;
    for (uint32_t index = 0; index < count; index++) {
        const msgpack_object *hash = &revoked->via.array.ptr [index];
        char token_hash [TOKEN_HASH_HEX + 1];
        if (hash->type != MSGPACK_OBJECT_STR || hash->via.str.size != TOKEN_HASH_HEX)
            continue;
        memcpy (token_hash, hash->via.str.ptr, TOKEN_HASH_HEX);
        token_hash [TOKEN_HASH_HEX] = 0;
        sessions += s_revoke_sessions (self, token_hash, 0);
    }
    if (count)
        self->host->log (self->ctx, PARLEY_LOG_INFO,
                         "%u least recently used token%s revoked past %llu per user; "
                         "%zu session%s unbound", count, count == 1 ? "" : "s",
                         (unsigned long long) self->max_tokens, sessions,
                         sessions == 1 ? "" : "s");
}

//  Every answer to a store call runs the handler it was sent with
static void
s_on_reply (void *state, void *cookie, const char *code, const char *message,
            const uint8_t *body, size_t size)
{
    auth_t *self = (auth_t *) state;
    pl_call_reply (self->calls, cookie, code, message, body, size);
}

static void
s_on_session (void *state, int event, uint64_t session, const char *user)
{
    auth_t *self = (auth_t *) state;
    s_online_track (self, event, session, user);
    if (event == PARLEY_SESSION_RESET) {
        //  Kept, but each must be confirmed by the BOUND snapshot that follows
        int64_t now = zclock_mono ();
        binding_t *binding = (binding_t *) zhashx_first (self->bindings);
        while (binding) {
            binding->confirmed = false;
            binding->since = now;
            binding = (binding_t *) zhashx_next (self->bindings);
        }
        return;
    }
    binding_t *binding = s_binding_lookup (self, session);
    if (!binding)
        return;
    if (event == PARLEY_SESSION_BOUND) {
        if (user && streq (binding->user, user))
            binding->confirmed = true;
        else
            s_binding_remove (self, binding);
    }
    else
    if (event == PARLEY_SESSION_CLOSED && binding->confirmed)
        //  An unconfirmed binding belongs to a bind still on its way; this
        //  CLOSED is about the session's previous one
        s_binding_remove (self, binding);
}


//  --------------------------------------------------------------------------
//  The descriptor

static const parley_route_t s_routes [] = {
    //  Public: auth.* is what a session uses before it has a user. One
    //  instance (PARLEY_SHARD_NONE with one instance): the bindings and the
    //  failure counters live in its memory.
    { .prefix = "auth.", .flags = PARLEY_ROUTE_PUBLIC, .shard = PARLEY_SHARD_NONE },
    //  Another plugin's: whose token this is (the files plugin's uploads)
    { .prefix = "auth.check", .flags = PARLEY_ROUTE_INTERNAL, .shard = PARLEY_SHARD_NONE },
    //  The operator's (parleyctl): accounts listed, disabled, deleted, reset
    { .prefix = "admin.users.", .flags = PARLEY_ROUTE_INTERNAL | PARLEY_ROUTE_ADMIN,
      .shard = PARLEY_SHARD_NONE },
    { .prefix = NULL }
};

static const parley_plugin_t s_descriptor = {
    .abi_major = PARLEY_ABI_MAJOR,
    .abi_minor = PARLEY_ABI_MINOR,
    .size = sizeof (parley_plugin_t),
    .flags = PARLEY_PLUGIN_SESSIONS,
    .name = "auth",
    .version = "1.0.0",
    .description = "accounts and sessions: register, login, resume and logout with argon2id "
                   "and revocable tokens",
    .routes = s_routes,
    .init = s_init,
    .destroy = s_destroy,
    .on_request = s_on_request,
    .on_reply = s_on_reply,
    .on_batch_end = NULL,
    .on_session = s_on_session,
    .on_wake = s_on_wake
};

PARLEY_PLUGIN_DEFINE (s_descriptor)

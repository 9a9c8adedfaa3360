/*  =========================================================================
    au_plugin - the auth plugin's state and the helpers that its request
    files share (auth.c defines them; au_password.c uses them)

    Internal to plugins/auth: not a class of its own but the plugin's one
    instance (auth_t) and the requests it is serving (op_t). An op_t is made
    by auth_op_new and freed by auth_op_finish (or a reply helper that
    calls it: auth_op_fail, auth_op_unavailable, auth_op_store_failed); a
    store call's handler or a pool job's cookie holds it meanwhile.
    =========================================================================
*/

#ifndef AU_PLUGIN_H_INCLUDED
#define AU_PLUGIN_H_INCLUDED

#include "parley_plugin.h"
#include "pl_call.h"
#include "pl_pack.h"
#include "au_common.h"
#include "au_limiter.h"
#include "au_pool.h"

#include <czmq.h>
#include <msgpack.h>
#include <sodium.h>

#define TOKEN_BYTES                 32
#define TOKEN_TEXT                  43          //  base64url of 32 bytes, no padding
#define TOKEN_HASH_HEX              64


typedef enum { OP_REGISTER = 1, OP_LOGIN, OP_RESUME, OP_LOGOUT, OP_ADMIN, OP_PASSWORD,
               OP_CHECK } op_kind_t;

//  One request being served, across store calls and pool jobs. Which store
//  answer it waits for is the handler of its call (pl_call); which job, its
//  kind (a register hashes, a login verifies).
typedef struct {
    op_kind_t kind;                 //  which request
    parley_request_t *request;      //  lent by the host until we reply
    uint64_t session;               //  the requesting session
    char *address;                  //  the client's address, or NULL
    char *name;                     //  username as given, then as registered
    char *name_key;                 //  lower-cased username for the limiter, or
                                    //  NULL when it is not a valid username
    char *pair_key;                 //  "name_key address" for the limiter, or NULL
    char *password;                 //  owned until a pool job takes a copy
    size_t password_size;           //  bytes in password
    bool unknown_user;              //  login: verifying only to spend the time
    bool disabled;                  //  login: the account is disabled (parleyctl)
    bool created;                   //  register: the account is stored; what fails
                                    //  after it has an unknown outcome for the client
    bool generated;                 //  admin reset: the password in token was made here
    bool verified;                  //  auth.password: the current password matched;
                                    //  its pool job now hashes new_password
    char *new_password;             //  auth.password: owned until a job takes a copy
    size_t new_password_size;       //  bytes in new_password
    char *password_hash;            //  auth.password: the new hash, owned
    char token [TOKEN_TEXT + 1];    //  issued or resumed token
    char token_hash [TOKEN_HASH_HEX + 1];
    void *handle;                   //  place in auth_t.ops
} op_t;

typedef struct {
    parley_ctx_t *ctx;              //  the host's handle
    const parley_host_t *host;      //  the host's function table
    pl_call_t *calls;               //  store calls in flight, each with its handler
    au_pool_t *pool;                //  argon2id workers
    au_limiter_t *pair_failures;    //  failed logins per "username address"
    au_limiter_t *user_failures;    //  failed logins per lower-cased username
    au_limiter_t *address_failures; //  failed logins per client address
    au_limiter_t *registrations;    //  registrations per client address
    au_limiter_t *touched;          //  tokens whose use was recorded within
                                    //  touch_every_ms (one "failure" each)
    int64_t touch_every_ms;         //  touch_interval_ms, at most half the token
                                    //  lifetime; 0: every resume records its use
    au_common_t *common;            //  the passwords refused (weak_password)
    char dummy_hash [crypto_pwhash_STRBYTES];  //  verified for unknown users
    int64_t token_ttl_ms;           //  validity of a new token
    uint64_t max_tokens;            //  live tokens per user; the least recently
                                    //  used go past it
    int housekeeping_timer;         //  expiry of limiter keys and bindings
    int64_t next_purge;             //  monotonic ms of the next store.token.purge
    zlistx_t *ops;                  //  op_t *, owned: every request in progress
    zhashx_t *bindings;             //  sid_key -> binding_t *, owned
    zhashx_t *tokens;               //  token_hash -> token_t *, owned
    zhashx_t *online;               //  sid_key -> user (char *, owned): every bound
                                    //  session the broker told of, for the operator
                                    //  (parleyctl) to log a user out everywhere
} auth_t;


//  --------------------------------------------------------------------------
//  Helpers (auth.c)

//  The client's address for a log line
const char *
    auth_addr (const char *address);

//  A NUL-terminated copy of a msgpack string. Caller owns return value.
char *
    auth_strndup (const char *text, size_t size);

//  Unpacks the request's body into fields; on failure answers bad_request
//  and returns -1 (the request is then answered)
int
    auth_body (auth_t *self, parley_request_t **request_p, msgpack_unpacked *fields);

//  A new operation for request (lent until it is answered), or NULL when
//  out of memory (the request is not answered then)
op_t *
    auth_op_new (auth_t *self, op_kind_t kind, parley_request_t *request);

//  Forgets an operation whose request has been answered
void
    auth_op_finish (auth_t *self, op_t *op);

//  Answers the error and forgets op
void
    auth_op_fail (auth_t *self, op_t *op, const char *code, const char *message);

//  Answers unavailable with retry_after_ms (and "outcome": "unknown" when
//  unknown) and forgets op
void
    auth_op_unavailable (auth_t *self, op_t *op, const char *message, int64_t retry_ms,
                         bool unknown);

//  The store answered an error we do not expect: unavailable (outcome
//  unknown when the answer to a write was lost); forgets op
void
    auth_op_store_failed (auth_t *self, op_t *op, const pl_call_reply_t *reply);

//  Sends a store request for op with the time its request has left;
//  handler reads its answer (or op is answered unavailable at once)
void
    auth_op_call (auth_t *self, op_t *op, const char *type, pl_pack_t *pack,
                  pl_call_fn *handler);

//  Sends a store request with one string field
void
    auth_op_call_one (auth_t *self, op_t *op, const char *type, const char *field,
                      const char *value, pl_call_fn *handler);

//  Hands a job (NULL: out of memory) to the pool for op, admitted by the
//  time op's request has left; a refused op is answered unavailable
void
    auth_op_submit (auth_t *self, op_t *op, au_job_t *job);

//  Hands op's password to the pool to check against an encoded hash; op's
//  own copy is wiped
void
    auth_op_verify (auth_t *self, op_t *op, const char *hash);

//  Makes a token for op->name (op->token, op->token_hash) and stores its
//  hash with store.token.put; handler reads the store's answer
void
    auth_op_issue_token (auth_t *self, op_t *op, pl_call_fn *handler);

//  Answers rate_limited (returning true) when this name from this address,
//  the address, or the name has failed too often lately (the login limits)
bool
    auth_login_limited (auth_t *self, parley_request_t **request_p, const char *address,
                        const char *name_key, const char *pair_key);

//  Lower-cases a valid name into key (PL_USERNAME_MAX + 1 bytes); returns
//  "key address" for the pair limiter (caller owns it), or NULL without an
//  address
char *
    auth_login_keys (const char *name, size_t name_size, const char *address, char *key);

//  A store.user.get handler: op->name becomes the name as registered and
//  op's password is verified against the account's hash (a missing or
//  deleted account against the dummy hash, with op->unknown_user set)
void
    auth_login_on_user_get (void *state, void *arg, const pl_call_reply_t *reply);

//  A wrong password for op's name from op's address counts against the
//  three login limits; auth_failures_clear forgets the name's and the
//  pair's after a right one
void
    auth_failures_count (auth_t *self, op_t *op);
void
    auth_failures_clear (auth_t *self, op_t *op);

//  store.token.put of op's new token failed: answers account_disabled
//  (forbidden: the operator disabled the account meanwhile), bad_credentials
//  with the sentence gone (not_found: deleted meanwhile) or unavailable, and
//  returns true; returns false when the token is stored
bool
    auth_token_put_failed (auth_t *self, op_t *op, const pl_call_reply_t *reply,
                           const char *gone);

//  Remembers that session uses token_hash for user (a logout revokes it on
//  all its sessions). Returns 0, or -1 when out of memory.
int
    auth_binding_record (auth_t *self, uint64_t sid, const char *user, const char *token_hash);

//  Every session of user but except (0: none) hears logged_out and is
//  unbound. Returns how many.
size_t
    auth_logout_user (auth_t *self, const char *user, uint64_t except);

#endif

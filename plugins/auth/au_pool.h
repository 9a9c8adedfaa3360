/*  =========================================================================
    au_pool - worker threads that hash and verify passwords (argon2id)

    Hashing a password costs tens of milliseconds by design. The auth plugin's
    own thread must not spend them: it hands each job to this pool, and the
    worker that finishes a job calls the pool's notify (the plugin's
    host->wake), after which the plugin collects it. A job is handed over
    whole, as a message would be: once submitted, only the pool touches it,
    until au_pool_done gives it back. Both queues are bounded: submit refuses
    a job when queue_max jobs are waiting or running or finished uncollected.

    Jobs keep the password in memory of their own and wipe it when destroyed.

    Admission (PROTOCOL.md 1.1 "Outcomes"): the pool measures the time a
    hash takes (pl_service, seeded by au_pool_hash_now) and
    au_pool_submit_within takes a job only when the jobs waiting ahead of
    it, shared by the workers, leave it done within its time left;
    otherwise it refuses it at once with the retry_after_ms to answer. A
    job whose time ran out while it waited is not run: a worker hands it
    back expired, at once.

        au_pool_t *pool = au_pool_new (2, 256, 2, 19 << 20);
        au_pool_set_notify (pool, s_wake, self);
        au_job_t *job = au_job_new_hash (password, size, cookie);
        int64_t retry_ms;
        if (au_pool_submit_within (pool, &job, time_left, &retry_ms))
            ... refused: job is still ours; unavailable, retry_after_ms ...
        ...
        while ((job = au_pool_done (pool))) { ...; au_job_destroy (&job); }
        au_pool_destroy (&pool);
    =========================================================================
*/

#ifndef AU_POOL_H_INCLUDED
#define AU_POOL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    AU_JOB_HASH = 1,                //  password -> encoded argon2id string
    AU_JOB_VERIFY = 2               //  password, encoded string -> match or not
} au_job_kind_t;

typedef struct {
    au_job_kind_t kind;             //  what to do
    char *password;                 //  owned, wiped at destroy
    size_t password_size;           //  bytes in password (may hold NULs)
    char *hash;                     //  owned: VERIFY's input, HASH's result
    bool ok;                        //  result: HASH succeeded, or VERIFY matched
    bool expired;                   //  result: not run, its time ran out first
    int64_t deadline;               //  monotonic ms its time runs out; 0 = none
    void *cookie;                   //  the submitter's, untouched by the pool
} au_job_t;

typedef struct _au_pool_t au_pool_t;

//  A job that hashes password. Copies password. Returns NULL when out of
//  memory. Caller owns return value.
au_job_t *
    au_job_new_hash (const char *password, size_t password_size, void *cookie);

//  A job that verifies password against an encoded hash. Copies both.
//  Returns NULL when out of memory. Caller owns return value.
au_job_t *
    au_job_new_verify (const char *password, size_t password_size, const char *hash,
                       void *cookie);

//  Wipes the password, destroys the job; nullifies the reference.
void
    au_job_destroy (au_job_t **self_p);

//  Starts workers threads (1 to 64) hashing with these argon2id costs
//  (opslimit, memlimit as libsodium's crypto_pwhash_str takes them). Returns
//  NULL when a thread could not start or out of memory. Caller owns return
//  value.
au_pool_t *
    au_pool_new (size_t workers, size_t queue_max, unsigned long long opslimit,
                 size_t memlimit);

//  Stops the workers (a running job finishes first), destroys every job
//  still inside, nullifies the reference.
void
    au_pool_destroy (au_pool_t **self_p);

//  Calls notify (arg) on the worker's thread each time a job is finished and
//  ready for au_pool_done, outside the pool's lock. notify must be safe to
//  call from any thread and must not block (host->wake is both). Set it
//  before the first submit; NULL for none (the owner polls).
void
    au_pool_set_notify (au_pool_t *self, void (*notify) (void *arg), void *arg);

//  Hands a job to the workers. Returns 0 and nullifies the reference, or -1
//  when the pool is full (the job stays the caller's).
int
    au_pool_submit (au_pool_t *self, au_job_t **job_p);

//  The same for a job that must be done within time_left_ms (< 0: no
//  deadline). Returns 0 and nullifies the reference; or -1 when the pool
//  is full, or the jobs waiting ahead would not let it be done in time:
//  the job stays the caller's, and *retry_ms_p (when not NULL) is how long
//  until the pool has drained enough (retry_after_ms).
int
    au_pool_submit_within (au_pool_t *self, au_job_t **job_p, int64_t time_left_ms,
                           int64_t *retry_ms_p);

//  The measured time of one hash, msecs (0 before the first)
int64_t
    au_pool_hash_ms (au_pool_t *self);

//  The next finished job, or NULL if none is finished. Never blocks.
//  Caller owns return value.
au_job_t *
    au_pool_done (au_pool_t *self);

//  Jobs submitted and not yet collected with au_pool_done
size_t
    au_pool_busy (au_pool_t *self);

//  Hashes password now, on the caller's thread, with the pool's costs (the
//  plugin's dummy hash at start; its time is the pool's first measure).
//  Returns 0 and writes a NUL-terminated string of at most size bytes into
//  hash, or -1.
int
    au_pool_hash_now (au_pool_t *self, const char *password, size_t password_size,
                      char *hash, size_t size);

#ifdef __cplusplus
}
#endif

#endif

/*  =========================================================================
    test_auth_units - the auth plugin's two classes on their own

    au_limiter: the sliding window, clearing, the bound on keys and expiry.
    au_pool: real argon2id hashes on real threads (at the smallest cost, so
    the tests stay quick), verification both ways, the bound on the queue,
    and a pool destroyed with work still inside. End-to-end behaviour is in
    integration-tests/tests/10-auth.test.js.
    =========================================================================
*/

#include "au_limiter.h"
#include "au_pool.h"

#include <czmq.h>
#include <pthread.h>
#include <time.h>
#include <sodium.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

//  --------------------------------------------------------------------------
//  au_limiter

static void
test_limiter_refuses_after_max_failures_within_window (void **state)
{
    au_limiter_t *limiter = au_limiter_new (3, 1000, 100);
    assert_non_null (limiter);
    assert_int_equal (au_limiter_check (limiter, "alice", 0), 0);
    au_limiter_fail (limiter, "alice", 100);
    au_limiter_fail (limiter, "alice", 200);
    assert_int_equal (au_limiter_check (limiter, "alice", 250), 0);
    au_limiter_fail (limiter, "alice", 300);
    //  The oldest failure (100) leaves the window at 1100
    assert_int_equal (au_limiter_check (limiter, "alice", 300), 800);
    assert_int_equal (au_limiter_check (limiter, "alice", 1099), 1);
    assert_int_equal (au_limiter_check (limiter, "alice", 1100), 0);
    //  Another key is not affected
    assert_int_equal (au_limiter_check (limiter, "bob", 300), 0);
    au_limiter_destroy (&limiter);
    assert_null (limiter);
    au_limiter_destroy (&limiter);
}

static void
test_limiter_window_slides_with_newest_failures (void **state)
{
    au_limiter_t *limiter = au_limiter_new (2, 1000, 100);
    au_limiter_fail (limiter, "k", 0);
    au_limiter_fail (limiter, "k", 900);
    assert_int_equal (au_limiter_check (limiter, "k", 950), 50);
    au_limiter_fail (limiter, "k", 1500);         //  failures at 900 and 1500 now
    assert_int_equal (au_limiter_check (limiter, "k", 1500), 400);
    assert_int_equal (au_limiter_check (limiter, "k", 1900), 0);
    au_limiter_destroy (&limiter);
}

static void
test_limiter_clear_forgets_failures (void **state)
{
    au_limiter_t *limiter = au_limiter_new (1, 1000, 100);
    au_limiter_fail (limiter, "alice", 10);
    assert_true (au_limiter_check (limiter, "alice", 20) > 0);
    au_limiter_clear (limiter, "alice");
    assert_int_equal (au_limiter_check (limiter, "alice", 20), 0);
    assert_int_equal (au_limiter_size (limiter), 0);
    au_limiter_clear (limiter, "nobody");
    au_limiter_destroy (&limiter);
}

static void
test_limiter_evicts_oldest_key_at_bound (void **state)
{
    au_limiter_t *limiter = au_limiter_new (1, 1000, 3);
    au_limiter_fail (limiter, "a", 1);
    au_limiter_fail (limiter, "b", 2);
    au_limiter_fail (limiter, "c", 3);
    au_limiter_fail (limiter, "a", 4);            //  a is now the newest
    au_limiter_fail (limiter, "d", 5);            //  evicts b, the oldest
    assert_int_equal (au_limiter_size (limiter), 3);
    assert_int_equal (au_limiter_check (limiter, "b", 6), 0);
    assert_true (au_limiter_check (limiter, "a", 6) > 0);
    assert_true (au_limiter_check (limiter, "c", 6) > 0);
    assert_true (au_limiter_check (limiter, "d", 6) > 0);
    au_limiter_destroy (&limiter);
}

static void
test_limiter_expire_drops_quiet_keys (void **state)
{
    au_limiter_t *limiter = au_limiter_new (5, 1000, 100);
    au_limiter_fail (limiter, "old", 0);
    au_limiter_fail (limiter, "new", 800);
    au_limiter_expire (limiter, 1000);
    assert_int_equal (au_limiter_size (limiter), 1);
    au_limiter_expire (limiter, 1800);
    assert_int_equal (au_limiter_size (limiter), 0);
    au_limiter_destroy (&limiter);
}

static void
test_limiter_zero_max_never_refuses (void **state)
{
    au_limiter_t *limiter = au_limiter_new (0, 0, 0);
    assert_non_null (limiter);
    for (int index = 0; index < 100; index++)
        au_limiter_fail (limiter, "alice", index);
    assert_int_equal (au_limiter_check (limiter, "alice", 100), 0);
    au_limiter_destroy (&limiter);
    assert_null (au_limiter_new (3, 0, 10));
}


//  --------------------------------------------------------------------------
//  au_pool

#define S_OPS crypto_pwhash_OPSLIMIT_MIN
#define S_MEM (64u << 10)

//  Waits up to 10 s for the next finished job
static au_job_t *
s_wait_done (au_pool_t *pool)
{
    int64_t deadline = zclock_mono () + 10000;
    while (zclock_mono () < deadline) {
        au_job_t *job = au_pool_done (pool);
        if (job)
            return job;
        zclock_sleep (2);
    }
    return NULL;
}

static void
test_pool_hashes_and_verifies_on_workers (void **state)
{
    au_pool_t *pool = au_pool_new (2, 16, S_OPS, S_MEM);
    assert_non_null (pool);
    int cookie;
    au_job_t *job = au_job_new_hash ("correct horse", 13, &cookie);
    assert_int_equal (au_pool_submit (pool, &job), 0);
    assert_null (job);
    job = s_wait_done (pool);
    assert_non_null (job);
    assert_true (job->ok);
    assert_ptr_equal (job->cookie, &cookie);
    assert_non_null (strstr (job->hash, "$argon2id$"));
    char *hash = strdup (job->hash);
    au_job_destroy (&job);

    au_job_t *right = au_job_new_verify ("correct horse", 13, hash, NULL);
    au_job_t *wrong = au_job_new_verify ("correct horsf", 13, hash, NULL);
    assert_int_equal (au_pool_submit (pool, &right), 0);
    assert_int_equal (au_pool_submit (pool, &wrong), 0);
    int matched = 0, refused = 0;
    for (int index = 0; index < 2; index++) {
        job = s_wait_done (pool);
        assert_non_null (job);
        if (job->ok)
            matched++;
        else
            refused++;
        au_job_destroy (&job);
    }
    assert_int_equal (matched, 1);
    assert_int_equal (refused, 1);
    assert_int_equal (au_pool_busy (pool), 0);
    assert_null (au_pool_done (pool));
    free (hash);
    au_pool_destroy (&pool);
    assert_null (pool);
}

static void
test_pool_verify_of_garbage_hash_fails (void **state)
{
    au_pool_t *pool = au_pool_new (1, 4, S_OPS, S_MEM);
    au_job_t *job = au_job_new_verify ("password", 8, "not a hash", NULL);
    assert_int_equal (au_pool_submit (pool, &job), 0);
    job = s_wait_done (pool);
    assert_non_null (job);
    assert_false (job->ok);
    au_job_destroy (&job);
    au_pool_destroy (&pool);
}

static void
test_pool_password_with_nul_bytes_is_whole (void **state)
{
    au_pool_t *pool = au_pool_new (1, 4, S_OPS, S_MEM);
    char hash [crypto_pwhash_STRBYTES];
    assert_int_equal (au_pool_hash_now (pool, "abc\0def1", 8, hash, sizeof hash), 0);
    au_job_t *job = au_job_new_verify ("abc\0xyz1", 8, hash, NULL);
    assert_int_equal (au_pool_submit (pool, &job), 0);
    job = s_wait_done (pool);
    assert_false (job->ok);
    au_job_destroy (&job);
    job = au_job_new_verify ("abc\0def1", 8, hash, NULL);
    assert_int_equal (au_pool_submit (pool, &job), 0);
    job = s_wait_done (pool);
    assert_true (job->ok);
    au_job_destroy (&job);
    au_pool_destroy (&pool);
}

static void
test_pool_refuses_jobs_beyond_queue_bound (void **state)
{
    au_pool_t *pool = au_pool_new (1, 2, S_OPS, S_MEM);
    au_job_t *first = au_job_new_hash ("password1", 9, NULL);
    au_job_t *second = au_job_new_hash ("password2", 9, NULL);
    au_job_t *third = au_job_new_hash ("password3", 9, NULL);
    assert_int_equal (au_pool_submit (pool, &first), 0);
    assert_int_equal (au_pool_submit (pool, &second), 0);
    assert_int_equal (au_pool_submit (pool, &third), -1);
    assert_non_null (third);                      //  still ours
    //  Finished but uncollected jobs still count against the bound
    zclock_sleep (200);
    assert_int_equal (au_pool_submit (pool, &third), -1);
    au_job_t *job = s_wait_done (pool);
    au_job_destroy (&job);
    assert_int_equal (au_pool_submit (pool, &third), 0);
    au_pool_destroy (&pool);                      //  with jobs inside
}

//  What the notify of test_pool_notifies_each_finished_job counted
typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int count;
} s_notified_t;

static void
s_notify (void *arg)
{
    s_notified_t *notified = (s_notified_t *) arg;
    pthread_mutex_lock (&notified->mutex);
    notified->count++;
    pthread_cond_signal (&notified->cond);
    pthread_mutex_unlock (&notified->mutex);
}

//  The worker tells the owner when a job is done: once told, the job is
//  there to collect, with no polling
static void
test_pool_notifies_each_finished_job (void **state)
{
    s_notified_t notified = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
    au_pool_t *pool = au_pool_new (2, 8, S_OPS, S_MEM);
    au_pool_set_notify (pool, s_notify, &notified);
    for (int index = 0; index < 3; index++) {
        au_job_t *job = au_job_new_hash ("password1", 9, NULL);
        assert_int_equal (au_pool_submit (pool, &job), 0);
    }
    for (int collected = 0; collected < 3; collected++) {
        pthread_mutex_lock (&notified.mutex);
        struct timespec deadline;
        clock_gettime (CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 10;
        while (notified.count <= collected)
            if (pthread_cond_timedwait (&notified.cond, &notified.mutex, &deadline))
                break;
        assert_true (notified.count > collected);
        pthread_mutex_unlock (&notified.mutex);
        au_job_t *job = au_pool_done (pool);
        assert_non_null (job);
        assert_true (job->ok);
        au_job_destroy (&job);
    }
    assert_int_equal (au_pool_busy (pool), 0);
    au_pool_destroy (&pool);
    assert_int_equal (notified.count, 3);
}

static void
test_pool_refuses_bad_sizes (void **state)
{
    assert_null (au_pool_new (0, 4, S_OPS, S_MEM));
    assert_null (au_pool_new (65, 4, S_OPS, S_MEM));
    assert_null (au_pool_new (1, 0, S_OPS, S_MEM));
}

//  With one hash measured (au_pool_hash_now), a job is taken only when the
//  jobs ahead leave it done in its time; a refusal says when to retry
static void
test_pool_admits_only_jobs_that_fit_their_time (void **state)
{
    au_pool_t *pool = au_pool_new (1, 64, 3, 8u << 20);
    assert_non_null (pool);
    char hash [crypto_pwhash_STRBYTES];
    assert_int_equal (au_pool_hash_now (pool, "password", 8, hash, sizeof hash), 0);
    assert_true (au_pool_hash_ms (pool) >= 1);
    for (int index = 0; index < 5; index++) {
        au_job_t *job = au_job_new_hash ("password", 8, NULL);
        assert_int_equal (au_pool_submit (pool, &job), 0);
    }
    au_job_t *late = au_job_new_hash ("password", 8, NULL);
    int64_t retry_ms = 0;
    assert_int_equal (au_pool_submit_within (pool, &late, 1, &retry_ms), -1);
    assert_non_null (late);                     //  still ours
    assert_true (retry_ms >= 100);
    au_job_destroy (&late);
    au_job_t *patient = au_job_new_hash ("password", 8, NULL);
    assert_int_equal (au_pool_submit_within (pool, &patient, 600000, &retry_ms), 0);
    assert_null (patient);
    for (int index = 0; index < 6; index++) {
        au_job_t *job = s_wait_done (pool);
        assert_non_null (job);
        assert_true (job->ok);
        assert_false (job->expired);
        au_job_destroy (&job);
    }
    au_pool_destroy (&pool);
}

//  A job whose time ran out before a worker took it comes back not run
static void
test_pool_hands_back_an_expired_job_unrun (void **state)
{
    au_pool_t *pool = au_pool_new (1, 4, S_OPS, S_MEM);
    au_job_t *job = au_job_new_hash ("password", 8, NULL);
    //  Nothing measured yet: admitted, with no time at all
    assert_int_equal (au_pool_submit_within (pool, &job, 0, NULL), 0);
    job = s_wait_done (pool);
    assert_non_null (job);
    assert_true (job->expired);
    assert_false (job->ok);
    assert_null (job->hash);
    au_job_destroy (&job);
    au_pool_destroy (&pool);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_limiter_refuses_after_max_failures_within_window),
        cmocka_unit_test (test_limiter_window_slides_with_newest_failures),
        cmocka_unit_test (test_limiter_clear_forgets_failures),
        cmocka_unit_test (test_limiter_evicts_oldest_key_at_bound),
        cmocka_unit_test (test_limiter_expire_drops_quiet_keys),
        cmocka_unit_test (test_limiter_zero_max_never_refuses),
        cmocka_unit_test (test_pool_hashes_and_verifies_on_workers),
        cmocka_unit_test (test_pool_verify_of_garbage_hash_fails),
        cmocka_unit_test (test_pool_password_with_nul_bytes_is_whole),
        cmocka_unit_test (test_pool_refuses_jobs_beyond_queue_bound),
        cmocka_unit_test (test_pool_notifies_each_finished_job),
        cmocka_unit_test (test_pool_refuses_bad_sizes),
        cmocka_unit_test (test_pool_admits_only_jobs_that_fit_their_time),
        cmocka_unit_test (test_pool_hands_back_an_expired_job_unrun),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

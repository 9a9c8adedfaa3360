/*  =========================================================================
    au_pool - worker threads that hash and verify passwords (argon2id)

    Two FIFO queues behind one mutex: jobs to do (workers wait on a condition
    variable) and jobs done (the owner collects them when notified, never
    waits). The mutex is
    held only to link and unlink jobs, never while hashing, so the owner's
    thread is never held up for longer than a few pointer moves.
    =========================================================================
*/

#include "au_pool.h"
#include "pl_service.h"
#include "pl_thread.h"
#include "pl_time.h"

#include <assert.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define AU_POOL_MAX_WORKERS 64

//  A queue link around a job
typedef struct s_link_t {
    au_job_t *job;                  //  owned while queued
    struct s_link_t *next;          //  toward the back
} s_link_t;

typedef struct {
    s_link_t *front;                //  oldest
    s_link_t *back;                 //  newest
} s_queue_t;

struct _au_pool_t {
    pthread_mutex_t mutex;          //  guards the queues, busy and stopping
    pthread_cond_t wake;            //  signalled when a job arrives or at stop
    s_queue_t todo;                 //  submitted, not started
    s_queue_t done;                 //  finished, not collected
    size_t waiting;                 //  jobs in todo
    size_t running;                 //  jobs a worker has now
    size_t busy;                    //  submitted and not collected
    pl_service_t service;           //  the measured time of one job
    size_t queue_max;               //  bound of busy
    bool stopping;                  //  workers leave when set
    unsigned long long opslimit;    //  argon2id time cost
    size_t memlimit;                //  argon2id memory cost, bytes
    pthread_t threads [AU_POOL_MAX_WORKERS];
    size_t thread_count;            //  started threads
    void (*notify) (void *arg);     //  called when a job is done, or NULL
    void *notify_arg;
};

static void
s_push (s_queue_t *queue, s_link_t *link)
{
    link->next = NULL;
    if (queue->back)
        queue->back->next = link;
    else
        queue->front = link;
    queue->back = link;
}

static s_link_t *
s_pop (s_queue_t *queue)
{
    s_link_t *link = queue->front;
    if (link) {
        queue->front = link->next;
        if (!queue->front)
            queue->back = NULL;
    }
    return link;
}

//  Copies size bytes into a new buffer with a NUL after them
static char *
s_copy (const char *source, size_t size)
{
    char *copy = (char *) malloc (size + 1);
    if (copy) {
        if (size)
            memcpy (copy, source, size);
        copy [size] = 0;
    }
    return copy;
}

au_job_t *
au_job_new_hash (const char *password, size_t password_size, void *cookie)
{
    au_job_t *self = (au_job_t *) calloc (1, sizeof (au_job_t));
    if (!self)
        return NULL;
    self->kind = AU_JOB_HASH;
    self->cookie = cookie;
    self->password_size = password_size;
    self->password = s_copy (password, password_size);
    if (!self->password)
        au_job_destroy (&self);
    return self;
}

au_job_t *
au_job_new_verify (const char *password, size_t password_size, const char *hash, void *cookie)
{
    au_job_t *self = au_job_new_hash (password, password_size, cookie);
    if (self) {
        self->kind = AU_JOB_VERIFY;
        self->hash = strdup (hash);
        if (!self->hash)
            au_job_destroy (&self);
    }
    return self;
}

void
au_job_destroy (au_job_t **self_p)
{
    au_job_t *self = *self_p;
    if (self) {
        if (self->password) {
            sodium_memzero (self->password, self->password_size);
            free (self->password);
        }
        free (self->hash);
        free (self);
        *self_p = NULL;
    }
}

//  Runs the job unless its time ran out while it waited. Returns its time
//  in msecs, or -1 when it did not run.
static int64_t
s_run (au_pool_t *self, au_job_t *job)
{
    int64_t started = pl_time_mono ();
    if (job->deadline && started >= job->deadline) {
        job->expired = true;
        job->ok = false;
        sodium_memzero (job->password, job->password_size);
        return -1;
    }
    if (job->kind == AU_JOB_HASH) {
        char hash [crypto_pwhash_STRBYTES];
        job->ok = crypto_pwhash_str (hash, job->password, job->password_size,
                                     self->opslimit, self->memlimit) == 0;
        if (job->ok) {
            free (job->hash);
            job->hash = strdup (hash);
            job->ok = job->hash != NULL;
        }
    }
    else
        job->ok = crypto_pwhash_str_verify (job->hash, job->password,
                                            job->password_size) == 0;
    //  The password is not needed any more: wipe it now rather than when
    //  the owner gets round to destroying the job
    sodium_memzero (job->password, job->password_size);
    return pl_time_mono () - started;
}

static void *
s_worker (void *argument)
{
    au_pool_t *self = (au_pool_t *) argument;
    pl_thread_name ("auth-hash");
    pthread_mutex_lock (&self->mutex);
    while (true) {
        while (!self->stopping && !self->todo.front)
            pthread_cond_wait (&self->wake, &self->mutex);
        if (self->stopping)
            break;
        s_link_t *link = s_pop (&self->todo);
        self->waiting--;
        self->running++;
        pthread_mutex_unlock (&self->mutex);
        int64_t spent = s_run (self, link->job);
        pthread_mutex_lock (&self->mutex);
        self->running--;
        if (spent >= 0)
            pl_service_add (&self->service, spent);
        s_push (&self->done, link);
        //  Told outside the lock: the owner may collect at once
        void (*notify) (void *arg) = self->notify;
        void *notify_arg = self->notify_arg;
        if (notify) {
            pthread_mutex_unlock (&self->mutex);
            notify (notify_arg);
            pthread_mutex_lock (&self->mutex);
        }
    }
    pthread_mutex_unlock (&self->mutex);
    return NULL;
}

au_pool_t *
au_pool_new (size_t workers, size_t queue_max, unsigned long long opslimit, size_t memlimit)
{
    if (workers < 1 || workers > AU_POOL_MAX_WORKERS || queue_max < 1)
        return NULL;
    if (sodium_init () < 0)
        return NULL;
    au_pool_t *self = (au_pool_t *) calloc (1, sizeof (au_pool_t));
    if (!self)
        return NULL;
    self->queue_max = queue_max;
    self->opslimit = opslimit;
    self->memlimit = memlimit;
    if (pthread_mutex_init (&self->mutex, NULL)) {
        free (self);
        return NULL;
    }
    if (pthread_cond_init (&self->wake, NULL)) {
        pthread_mutex_destroy (&self->mutex);
        free (self);
        return NULL;
    }
    while (self->thread_count < workers) {
        if (pthread_create (&self->threads [self->thread_count], NULL, s_worker, self)) {
            au_pool_destroy (&self);
            return NULL;
        }
        self->thread_count++;
    }
    return self;
}

static void
s_queue_purge (s_queue_t *queue)
{
    s_link_t *link;
    while ((link = s_pop (queue))) {
        au_job_destroy (&link->job);
        free (link);
    }
}

void
au_pool_destroy (au_pool_t **self_p)
{
    au_pool_t *self = *self_p;
    if (self) {
        pthread_mutex_lock (&self->mutex);
        self->stopping = true;
        pthread_cond_broadcast (&self->wake);
        pthread_mutex_unlock (&self->mutex);
        for (size_t index = 0; index < self->thread_count; index++)
            pthread_join (self->threads [index], NULL);
        s_queue_purge (&self->todo);
        s_queue_purge (&self->done);
        pthread_cond_destroy (&self->wake);
        pthread_mutex_destroy (&self->mutex);
        free (self);
        *self_p = NULL;
    }
}

void
au_pool_set_notify (au_pool_t *self, void (*notify) (void *arg), void *arg)
{
    assert (self);
    pthread_mutex_lock (&self->mutex);
    self->notify = notify;
    self->notify_arg = arg;
    pthread_mutex_unlock (&self->mutex);
}

int
au_pool_submit (au_pool_t *self, au_job_t **job_p)
{
    return au_pool_submit_within (self, job_p, -1, NULL);
}

int
au_pool_submit_within (au_pool_t *self, au_job_t **job_p, int64_t time_left_ms,
                       int64_t *retry_ms_p)
{
    assert (self);
    assert (job_p && *job_p);
    s_link_t *link = (s_link_t *) malloc (sizeof (s_link_t));
    if (!link)
        return -1;
    pthread_mutex_lock (&self->mutex);
    //  The jobs a worker has now count as whole ones: they may have just begun
    size_t ahead = self->waiting + self->running;
    int64_t retry_ms = pl_service_refuse (&self->service, ahead, self->thread_count,
                                          time_left_ms);
    if (retry_ms > 0)
        pl_service_refused (&self->service, ahead);
    if (self->busy >= self->queue_max && retry_ms == 0) {
        retry_ms = pl_service_wait (&self->service, ahead, self->thread_count);
        if (retry_ms < PL_SERVICE_RETRY_MIN_MS)
            retry_ms = PL_SERVICE_RETRY_MIN_MS;
    }
    if (retry_ms > 0) {
        pthread_mutex_unlock (&self->mutex);
        free (link);
        if (retry_ms_p)
            *retry_ms_p = retry_ms;
        return -1;
    }
    link->job = *job_p;
    *job_p = NULL;
    link->job->deadline = time_left_ms >= 0 ? pl_time_mono () + time_left_ms : 0;
    s_push (&self->todo, link);
    self->waiting++;
    self->busy++;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->mutex);
    return 0;
}

au_job_t *
au_pool_done (au_pool_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->mutex);
    s_link_t *link = s_pop (&self->done);
    if (link)
        self->busy--;
    pthread_mutex_unlock (&self->mutex);
    au_job_t *job = NULL;
    if (link) {
        job = link->job;
        free (link);
    }
    return job;
}

int64_t
au_pool_hash_ms (au_pool_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->mutex);
    int64_t hash_ms = pl_service_ms (&self->service);
    pthread_mutex_unlock (&self->mutex);
    return hash_ms;
}

size_t
au_pool_busy (au_pool_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->mutex);
    size_t busy = self->busy;
    pthread_mutex_unlock (&self->mutex);
    return busy;
}

int
au_pool_hash_now (au_pool_t *self, const char *password, size_t password_size,
                  char *hash, size_t size)
{
    assert (self);
    char encoded [crypto_pwhash_STRBYTES];
    int64_t started = pl_time_mono ();
    if (crypto_pwhash_str (encoded, password, password_size, self->opslimit, self->memlimit))
        return -1;
    pthread_mutex_lock (&self->mutex);
    pl_service_add (&self->service, pl_time_mono () - started);
    pthread_mutex_unlock (&self->mutex);
    if (strlen (encoded) >= size)
        return -1;
    strcpy (hash, encoded);
    return 0;
}

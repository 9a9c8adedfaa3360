/*  =========================================================================
    st_front - the store front: one plugin entry for every store backend

    on_request validates and queues; on_batch_end (or a full queue) hands
    the queue to the backend and answers it in order. A request refused at
    validation waits in the queue all the same, so that answers keep the
    order the requests came in (proto/STORE.md, Ordering). A request the
    backend set aside stays at the head of the queue, unanswered, and runs
    again with what comes after it (st_front.h).
    =========================================================================
*/

#include "st_front.h"
#include "pl_admin.h"
#include "pl_body.h"
#include "pl_reply.h"
#include "pl_service.h"
#include "pl_time.h"
#include "pl_timer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Per-instance state
typedef struct {
    parley_ctx_t *ctx;              //  the host's handle
    const parley_host_t *host;      //  the host's function table
    const st_backend_t *backend;    //  the backend's table
    void *state;                    //  the backend's state
    st_request_t **queue;           //  ST_ASIDE_MAX + ST_BATCH_MAX slots
    size_t queued;                  //  slots in use
    size_t aside;                   //  the first of them: set aside by the backend
    int aside_timer;                //  runs them again while there are any, 0 for none
    uint64_t requests;              //  requests answered, for the log
    uint64_t expired;               //  requests not started: their time was gone
    pl_service_t batch;             //  a batch's measured time: retry_after_ms
    st_stats_t stats;               //  the backend's figures, lent to it; its
                                    //  store is NULL when the backend has none
    int tick_timer;                 //  the backend's tick, 0 for none
} s_front_t;

const parley_route_t st_front_routes [] = {
    { .prefix = "store.", .flags = PARLEY_ROUTE_INTERNAL, .shard = PARLEY_SHARD_NONE },
    { .prefix = "admin.store.", .flags = PARLEY_ROUTE_INTERNAL | PARLEY_ROUTE_ADMIN,
      .shard = PARLEY_SHARD_NONE },
    { .prefix = NULL }
};

static void
s_answer (s_front_t *self, st_request_t *request)
{
    parley_request_t *host_request = (parley_request_t *) st_request_host (request);
    const char *code = st_request_code (request);
    if (code && strcmp (code, "unavailable") == 0) {
        int64_t retry_ms = pl_service_ms (&self->batch);
        pl_reply_error_retry (self->host, self->ctx, &host_request, code,
                              st_request_message (request), retry_ms > PL_SERVICE_RETRY_MIN_MS
                              ? retry_ms : PL_SERVICE_RETRY_MIN_MS);
    }
    else
    if (code)
        self->host->reply_error (self->ctx, &host_request, code, st_request_message (request));
    else {
        size_t size;
        const char *result = st_request_result (request, &size);
        //  A backend that packed nothing answers an empty map
        static const uint8_t empty_map = 0x80;
        self->host->reply (self->ctx, &host_request, size ? (const void *) result : &empty_map,
                           size ? size : 1);
    }
    self->requests++;
}

//  Fails the requests whose time is gone (ABI minor 3) before the backend
//  sees them: their callers have been told unavailable, or are about to
//  be, so none of them is started, and nothing is written for them later
static void
s_expire (s_front_t *self)
{
    const parley_host_t *host = self->host;
    if (host->abi_minor < 3 || !host->request_time_left)
        return;
    for (size_t index = 0; index < self->queued; index++) {
        st_request_t *request = self->queue [index];
        if (st_request_live (request)
        &&  host->request_time_left ((parley_request_t *) st_request_host (request)) == 0) {
            st_request_fail (request, "unavailable", "The store could not start this in time;"
                             " nothing was done.");
            self->expired++;
        }
    }
}

static void s_flush (s_front_t *self);

//  The timer while requests are set aside: nothing else may come to run
//  them again (an idle store), and their give-up and deadlines pass
static void
s_run_aside (void *state)
{
    s_flush ((s_front_t *) state);
}

//  Arms the timer when requests are set aside, cancels it when none is
static void
s_watch_aside (s_front_t *self)
{
    pl_timer_while (self->host, self->ctx, &self->aside_timer, self->aside > 0,
                    ST_FRONT_ASIDE_MS, s_run_aside);
}

//  Answers the requests of the queue in order, but those the backend set
//  aside: they move to its head, in order, ST_ASIDE_MAX at most
static void
s_answer_queue (s_front_t *self)
{
    size_t kept = 0;
    for (size_t index = 0; index < self->queued; index++) {
        st_request_t *request = self->queue [index];
        if (st_request_is_aside (request) && kept == ST_ASIDE_MAX)
            st_request_fail (request, "unavailable", "Too many requests wait in the store;"
                             " try again.");
        if (st_request_is_aside (request))
            self->queue [kept++] = request;
        else {
            s_answer (self, request);
            st_request_destroy (&request);
        }
    }
    self->queued = self->aside = kept;
}

//  Runs the queue through the backend and answers it in order; what was
//  set aside before runs again first (it came first)
static void
s_flush (s_front_t *self)
{
    if (self->queued == 0)
        return;
    for (size_t index = 0; index < self->aside; index++)
        st_request_resume (self->queue [index]);
    s_expire (self);
    //  A run of what was set aside alone is a look, not a batch: it would
    //  lower the measured batch time that retry_after_ms tells
    bool fresh = self->queued > self->aside;
    int64_t started = pl_time_mono ();
    self->backend->run (self->state, self->queue, self->queued);
    if (fresh)
        pl_service_add (&self->batch, pl_time_mono () - started);
    s_answer_queue (self);
    s_watch_aside (self);
}

//  On destroy: what is still set aside answers unavailable
static void
s_release_aside (s_front_t *self)
{
    for (size_t index = 0; index < self->queued; index++) {
        st_request_fail (self->queue [index], "unavailable", "The store is stopping; try"
                         " again.");
        s_answer (self, self->queue [index]);
        st_request_destroy (&self->queue [index]);
    }
    self->queued = self->aside = 0;
    s_watch_aside (self);
}

//  The backend's housekeeping, after what is queued has run
static void
s_tick (void *state)
{
    s_front_t *self = (s_front_t *) state;
    s_flush (self);
    self->backend->tick (self->state);
}

static void
s_front_free (s_front_t **self_p)
{
    s_front_t *self = *self_p;
    if (!self)
        return;
    if (self->state)
        self->backend->close (&self->state);
    free (self->queue);
    free (self);
    *self_p = NULL;
}

int
st_front_init (const st_backend_t *backend, parley_ctx_t *ctx,
               const parley_host_t *host, void **state_p)
{
    s_front_t *self = (s_front_t *) calloc (1, sizeof (s_front_t));
    if (self)
        self->queue = (st_request_t **) calloc (ST_ASIDE_MAX + ST_BATCH_MAX,
                                                sizeof (st_request_t *));
    if (!self || !self->queue) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        s_front_free (&self);
        return -1;
    }
    self->ctx = ctx;
    self->host = host;
    self->backend = backend;
    if (backend->open (ctx, host, &self->state)) {
        self->state = NULL;
        s_front_free (&self);
        return -1;
    }
    if (backend->stats)
        backend->stats (self->state, &self->stats);
    //  A host without timers (the fuzz host may have none) runs no tick
    if (backend->tick && host->timer_add)
        self->tick_timer = host->timer_add (ctx, ST_FRONT_TICK_MS, s_tick);
    *state_p = self;
    return 0;
}

void
st_front_destroy (void **state_p)
{
    s_front_t *self = (s_front_t *) *state_p;
    if (!self)
        return;
    //  What was queued still gets its run and its answer
    s_flush (self);
    s_release_aside (self);
    if (self->tick_timer > 0 && self->host->timer_cancel)
        self->host->timer_cancel (self->ctx, self->tick_timer);
    self->host->log (self->ctx, PARLEY_LOG_DEBUG, "answered %" PRIu64 " requests, %" PRIu64
                     " of them not started because their time was gone", self->requests,
                     self->expired);
    s_front_free (&self);
    *state_p = NULL;
}

//  Answers the backend's backup state
static void
s_admin_status (s_front_t *self, parley_request_t **request_p)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    self->backend->backup_status (self->state, &packer);
    self->host->reply (self->ctx, request_p, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
}


//  --------------------------------------------------------------------------
//  The operator's requests: admin.store.backup {path} starts a backup (every
//  write acknowledged before is in it), admin.store.backup_status {} says
//  how it goes

static void
s_admin_backup (s_front_t *self, parley_request_t *request)
{
    size_t size;
    const uint8_t *body = self->host->request_body (request, &size);
    msgpack_unpacked fields;
    msgpack_unpacked_init (&fields);
    const msgpack_object *map = pl_body_unpack (&fields, body, size);
    char *path = NULL;
    if (!map || pl_body_str (map, "path", &path) != 1)
        self->host->reply_error (self->ctx, &request, "bad_request",
                                 "admin.store.backup needs 'path', the backup's file.");
    else {
        //  The requests queued now are answered first: in the copy too
        s_flush (self);
        char message [ST_MESSAGE_MAX + 3000];
        const char *code = self->backend->backup (self->state, path, message, sizeof message);
        if (code)
            self->host->reply_error (self->ctx, &request, code, message);
        else
            s_admin_status (self, &request);
    }
    free (path);
    msgpack_unpacked_destroy (&fields);
}

static void
s_admin (s_front_t *self, parley_request_t *request, const char *name)
{
    bool start = strcmp (name, "admin.store.backup") == 0;
    if (!pl_admin_check (self->host, self->ctx, &request))
        return;
    if (!start && strcmp (name, "admin.store.backup_status") != 0)
        self->host->reply_error (self->ctx, &request, "unknown_type",
                                 "The store serves admin.store.backup and"
                                 " admin.store.backup_status.");
    else
    if (!self->backend->backup)
        self->host->reply_error (self->ctx, &request, "not_supported",
                                 self->backend->backup_refusal ? self->backend->backup_refusal
                                 : "This store makes no backups.");
    else
    if (start)
        s_admin_backup (self, request);
    else
        s_admin_status (self, &request);
}

void
st_front_on_request (void *state, parley_request_t *request)
{
    s_front_t *self = (s_front_t *) state;
    if (self->queued - self->aside == ST_BATCH_MAX)
        s_flush (self);
    const char *name = self->host->request_type (request);
    if (name && strncmp (name, "admin.store.", 12) == 0) {
        s_admin (self, request, name);
        return;
    }
    st_type_t type;
    if (st_type_find (name, &type)) {
        char message [160];
        snprintf (message, sizeof message, "%s does not serve '%.64s'.",
                  self->backend->name, name ? name : "");
        self->host->reply_error (self->ctx, &request, "unknown_type", message);
        return;
    }
    size_t size;
    const uint8_t *body = self->host->request_body (request, &size);
    st_request_t *parsed = st_request_new (type, body, size, request);
    if (!parsed) {
        self->host->reply_error (self->ctx, &request, "internal", "The store is out of memory.");
        return;
    }
    self->queue [self->queued++] = parsed;
}

void
st_front_on_batch_end (void *state)
{
    s_flush ((s_front_t *) state);
}

//  A backend's thread woke the instance (store-sqlite's indexer passed a
//  commit that a search set aside waits for): what is set aside runs again
void
st_front_on_wake (void *state)
{
    s_flush ((s_front_t *) state);
}

void
st_front_on_metrics (void *state)
{
    s_front_t *self = (s_front_t *) state;
    if (self->stats.store)
        st_stats_report (&self->stats, self->host, self->ctx);
}

/*  =========================================================================
    st_front - the store front: one plugin entry for every store backend

    on_request validates and queues; on_batch_end (or a full queue) hands
    the queue to the backend and answers it in order. A request refused at
    validation waits in the queue all the same, so that answers keep the
    order the requests came in (proto/STORE.md, Ordering).
    =========================================================================
*/

#include "st_front.h"

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
    st_request_t **queue;           //  ST_BATCH_MAX slots
    size_t queued;                  //  slots in use
    uint64_t requests;              //  requests answered, for the log
} s_front_t;

const parley_route_t st_front_routes [] = {
    { .prefix = "store.", .flags = PARLEY_ROUTE_INTERNAL, .shard = PARLEY_SHARD_NONE },
    { .prefix = NULL }
};

static void
s_answer (s_front_t *self, st_request_t *request)
{
    parley_request_t *host_request = (parley_request_t *) st_request_host (request);
    const char *code = st_request_code (request);
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

//  Runs the queue through the backend and answers it in order
static void
s_flush (s_front_t *self)
{
    if (self->queued == 0)
        return;
    self->backend->run (self->state, self->queue, self->queued);
    for (size_t index = 0; index < self->queued; index++) {
        s_answer (self, self->queue [index]);
        st_request_destroy (&self->queue [index]);
    }
    self->queued = 0;
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
        self->queue = (st_request_t **) calloc (ST_BATCH_MAX, sizeof (st_request_t *));
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
    self->host->log (self->ctx, PARLEY_LOG_DEBUG, "answered %" PRIu64 " requests",
                     self->requests);
    s_front_free (&self);
    *state_p = NULL;
}

void
st_front_on_request (void *state, parley_request_t *request)
{
    s_front_t *self = (s_front_t *) state;
    if (self->queued == ST_BATCH_MAX)
        s_flush (self);
    const char *name = self->host->request_type (request);
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

/*  =========================================================================
    st_front - the store front: one plugin entry for every store backend

    A store plugin (store-sqlite, store-mongo) is a backend: a table of a
    few functions. The front is the plugin: it serves the `store.` route,
    answers unknown_type, parses and validates each request once into an
    st_request_t (st_request.h), queues it, and at the end of the host's
    batch (on_batch_end), or when ST_BATCH_MAX requests wait, hands the
    queue to the backend's run. Then it answers every request in the order
    received: the error set on it, or its ok answer. A backend never
    replies and never reads msgpack. A request whose time is gone when its
    batch starts (host->request_time_left, ABI minor 3) is answered
    unavailable and never reaches the backend: no write is started after
    its caller was told it failed (proto/STORE.md, "Deadlines"). Every
    unavailable carries retry_after_ms.

    A backend may set a request aside (st_request_set_aside) when it cannot
    answer it without waiting (store-sqlite: a search whose index is behind
    the commits before it): the rest of the batch runs and is answered at
    once. The front keeps what was set aside and hands it to the backend's
    run again, first in the queue, with the next batch, after a host->wake
    (on_wake) and every ST_FRONT_ASIDE_MS until the backend answers it;
    the deadline check above applies to it at each of those runs. At most
    ST_ASIDE_MAX are kept (the rest answer unavailable); on destroy, what
    is still set aside answers unavailable.

    A backend's .c file:

        static const st_backend_t s_backend = {
            .name = "store-sqlite",
            .version = "1.0.0",
            .description = "the embedded store: ...",
            .open = s_open,
            .close = s_close,
            .run = s_run
        };
        ST_FRONT_DEFINE (s_backend)

    Ownership: the front owns its queue and every request in it, those set
    aside included; a backend's run borrows the requests for the call only
    (it may keep per-request state of its own in an array parallel to the
    batch, or in the request's aside mark across runs). The
    backend's state is the backend's: made by open, destroyed by close.
    =========================================================================
*/

#ifndef ST_FRONT_H_INCLUDED
#define ST_FRONT_H_INCLUDED

#include "parley_plugin.h"
#include "st_request.h"
#include "st_stats.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Most requests queued before the front runs them without waiting for
//  the end of the host's batch: bounds memory and latency
#define ST_BATCH_MAX            1024
//  Most requests kept set aside between batches (beyond: unavailable)
#define ST_ASIDE_MAX            1024

typedef struct {
    const char *name;               //  the plugin's name, "store-sqlite"
    const char *version;            //  the plugin's version, "1.0.0"
    const char *description;        //  one line for logs and --help

    //  Opens the backend with its options (host->option: ask for every
    //  option here, as init must). Returns 0 and sets *state_p, or -1 to
    //  refuse to start, after logging why through host->log.
    int (*open) (parley_ctx_t *ctx, const parley_host_t *host, void **state_p);

    //  Closes the backend and nullifies the reference. The front has run
    //  every queued request before.
    void (*close) (void **state_p);

    //  Runs a batch: requests [0 .. count), in that order as far as any
    //  caller can tell (proto/STORE.md, Ordering). For each live request
    //  (st_request_live) the backend sets an answer: st_request_fail, or
    //  an ok map packed into st_request_packer. A live request left
    //  without an answer answers an empty map. Requests already failed
    //  (bad_request at validation) are skipped. A live request may be set
    //  aside instead (st_request_set_aside): it comes back, live, first
    //  in a later run. A run may hold only such requests: it then has
    //  nothing else to do than look at them again.
    void (*run) (void *state, st_request_t **requests, size_t count);

    //  parleyctl backup (admin.store.backup, admin.store.backup_status;
    //  README.md "Backups"). Optional: a backend without them answers
    //  not_supported with backup_refusal, a sentence that says what to use.
    //  backup starts a copy of the database to path (absolute) while the
    //  store serves: NULL when started, or an error code with message.
    const char *(*backup) (void *state, const char *path, char *message, size_t size);
    //  Packs the state of the last backup: a map with at least state
    //  ("idle", "running", "done", "failed"), path and error
    void (*backup_status) (void *state, msgpack_packer *packer);
    const char *backup_refusal;

    //  The store's figures for /metrics (st_stats.h). Optional: the front
    //  lends its figures after open; the backend sets them up
    //  (st_stats_init) and observes each commit into them until close.
    void (*stats) (void *state, st_stats_t *stats);
    //  Housekeeping. Optional: called every ST_FRONT_TICK_MS on the
    //  instance's thread, between batches (store-sqlite compacts its search
    //  index there when its own option says it is time)
    void (*tick) (void *state);
} st_backend_t;

//  How often a backend's tick runs
#define ST_FRONT_TICK_MS        1000
//  How often requests set aside are run again when nothing else (a batch,
//  a wake) brings them back: how late their give-up and deadline may be
#define ST_FRONT_ASIDE_MS       50

//  The plugin's callbacks, for ST_FRONT_DEFINE: not called directly
int
    st_front_init (const st_backend_t *backend, parley_ctx_t *ctx,
                   const parley_host_t *host, void **state_p);
void
    st_front_destroy (void **state_p);
void
    st_front_on_request (void *state, parley_request_t *request);
void
    st_front_on_batch_end (void *state);
void
    st_front_on_metrics (void *state);
void
    st_front_on_wake (void *state);

//  The routes every store serves: store.* internal (only plugins call the
//  store), not sharded (one instance per database; proto/STORE.md,
//  Ordering); admin.store.* for the operator (parleyctl) only
extern const parley_route_t st_front_routes [];

//  Defines the plugin's descriptor and its exported describe function for
//  the backend table named backend (a static const st_backend_t)
#define ST_FRONT_DEFINE(backend) \
    static int \
    s_st_front_init (parley_ctx_t *ctx, const parley_host_t *host, void **state_p) \
    { \
        return st_front_init (&(backend), ctx, host, state_p); \
    } \
    static parley_plugin_t s_st_front_descriptor; \
    PARLEY_PLUGIN_EXPORT const parley_plugin_t * \
    parley_plugin_describe (const parley_abi_t *supported, size_t count) \
    { \
        (void) supported; (void) count; \
        s_st_front_descriptor = (parley_plugin_t) { \
            .abi_major = PARLEY_ABI_MAJOR, \
            .abi_minor = PARLEY_ABI_MINOR, \
            .size = sizeof (parley_plugin_t), \
            .name = (backend).name, \
            .version = (backend).version, \
            .description = (backend).description, \
            .routes = st_front_routes, \
            .init = s_st_front_init, \
            .destroy = st_front_destroy, \
            .on_request = st_front_on_request, \
            .on_batch_end = st_front_on_batch_end, \
            .on_wake = st_front_on_wake, \
            .on_metrics = st_front_on_metrics \
        }; \
        return &s_st_front_descriptor; \
    }

#ifdef __cplusplus
}
#endif

#endif

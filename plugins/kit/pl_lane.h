/*  =========================================================================
    pl_lane - a per-key serial lane: one request at a time per key, writes
    at the head batched into one store run, gap-free seqs

    For a sharded plugin that keeps state per key (rooms: a room; pm: a
    pair of users). The broker sends every request about one key to one
    instance; the lane makes that instance the one place the key's seq is
    assigned. Per key it keeps:

    - the plugin's state for the key (made by the class's state_new), and
      the key's last stored seq, loaded by the class's load action on first
      need (pl_lane_ready) and loaded again after a write whose outcome is
      unknown;
    - a queue of requests (at most queue_max), served one at a time. An
      action serves the request at the head: it answers it (the lane pops
      it) or makes one store call (pl_lane_call, pl_lane_write) and is
      handed the answer; a request neither answered nor waiting after its
      action or answer is run again (its state moved on: loaded, a name
      learnt, a member added), so that an action is a few small steps;
    - runs: the writes of one kind waiting at the head take seqs last + 1 ..
      last + k (pl_lane_run) and go to the store as one call; each request
      of the run is handed the answer in order. A conflict (a seq taken)
      reloads the key and sends the run again once; those of it tried once
      already get the class's failure. An unavailable answer (the outcome
      unknown) reloads the key before the next write.

    Idle keys leave the lane (pl_lane_evict), so that a key that moved to
    another instance and back is loaded fresh.

    Ownership: the lane owns its keys, their states (class state_destroy)
    and the queued requests' arguments (class args_destroy). A request the
    host lent is held in the queue until an action answers it through
    op->request; requests still queued at destroy belong to the host again.

        pl_lane_t *lane = pl_lane_new (ctx, host, &s_class, self, PL_LANE_QUEUE_MAX);
        pl_lane_key_t *key = pl_lane_key (lane, "general", args);
        if (key && !pl_lane_full (lane, key))
            pl_lane_submit (lane, key, &request, s_send_start, args, bytes);
        ...on_reply, cookie is a key: pl_lane_answer (lane, cookie, code, message, body, size);
        ...each tick: pl_lane_evict (lane, idle_ms);
        pl_lane_destroy (&lane);
    =========================================================================
*/

#ifndef PL_LANE_H_INCLUDED
#define PL_LANE_H_INCLUDED

#include "parley_plugin.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Requests waiting for one key, by default; one more is refused
#define PL_LANE_QUEUE_MAX       10000

//  The first int of every key, the cookie of its store calls, so that a
//  plugin's on_reply tells them from its other cookies
#define PL_LANE_COOKIE          0x6c616e65

typedef struct _pl_lane_t pl_lane_t;
typedef struct _pl_lane_key_t pl_lane_key_t;
typedef struct _pl_lane_op_t pl_lane_op_t;

//  One request in a key's queue. The plugin reads and writes request, seq
//  and ts, reads args and next; the lane owns the rest.
struct _pl_lane_op_t {
    parley_request_t *request;      //  lent by the host; NULL once answered
    void *args;                     //  the request's parsed fields, owned
    uint64_t seq;                   //  a write's seq (pl_lane_run)
    int64_t ts;                     //  a write's time, wall-clock ms (pl_lane_run)
    size_t bytes;                   //  what it adds to a run (its text)
    pl_lane_op_t *next;             //  next in the queue
    void (*start) (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op);
                                    //  the request type's action
    bool retried;                   //  sent again once after a conflict
};

//  A request type's action: serves op, the head of key's queue
typedef void (pl_lane_action_fn) (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op);

//  A store answer for op (code NULL: ok, with body, a map, never NULL then)
typedef void (pl_lane_answer_fn) (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op,
                                  const char *code, const char *message,
                                  const msgpack_object *body, size_t size);

//  What a plugin tells the lane about its keys
typedef struct {
    //  The plugin's state for a new key, from the arguments of its first
    //  request. Caller (the lane) owns it; NULL when out of memory. May be
    //  NULL for a plugin with no state but the key's seq.
    void *(*state_new) (void *plugin, const char *key, const void *args);
    void (*state_destroy) (void **state_p);
    //  Destroys a request's arguments and nullifies the reference
    void (*args_destroy) (void **args_p);
    //  Loads the key's state for op: store calls whose last answer calls
    //  pl_lane_loaded, or pl_lane_fail_all
    pl_lane_action_fn *load;
    //  The key's state is stale: forget it (may be NULL)
    void (*forget) (void *plugin, pl_lane_key_t *key);
    //  Whether a loaded key whose queue is empty stays (NULL: always, until
    //  idle); a room the store does not have is not worth keeping
    bool (*keep) (void *plugin, pl_lane_key_t *key);
    //  Answers op for a store error its action has no answer of its own for
    pl_lane_answer_fn *failure;
    //  The message of unavailable when a store call cannot be sent
    const char *unreachable;
} pl_lane_class_t;

//  Creates a lane. cls and plugin are borrowed for the lane's lifetime;
//  queue_max bounds each key's queue. Caller owns return value; NULL if out
//  of memory.
pl_lane_t *
    pl_lane_new (parley_ctx_t *ctx, const parley_host_t *host, const pl_lane_class_t *cls,
                 void *plugin, size_t queue_max);

//  Destroys the lane, its keys and their queues; the requests still queued
//  belong to the host again. Nullifies the reference.
void
    pl_lane_destroy (pl_lane_t **self_p);

//  The key's lane entry, made (with state_new (args)) if new. Returns it
//  (borrowed), or NULL if out of memory.
pl_lane_key_t *
    pl_lane_key (pl_lane_t *self, const char *name, const void *args);

//  True when the key's queue holds queue_max requests already
bool
    pl_lane_full (pl_lane_t *self, pl_lane_key_t *key);

//  Queues a request whose action is start; takes the request (nullifies
//  *request_p) and args (the lane destroys them), then serves the queue
//  (key may be gone after: see keep). bytes: what it adds to a run.
//  Returns 0, or -1 if out of memory (the request and args are left to the
//  caller).
int
    pl_lane_submit (pl_lane_t *self, pl_lane_key_t *key, parley_request_t **request_p,
                    pl_lane_action_fn *start, void *args, size_t bytes);

//  For an action: true when the key is loaded; else starts the class's
//  load (the action runs again once it is) and returns false
bool
    pl_lane_ready (pl_lane_t *self, pl_lane_key_t *key);

//  The load is done: the key's last stored seq is last_seq
void
    pl_lane_loaded (pl_lane_t *self, pl_lane_key_t *key, uint64_t last_seq);

//  Forgets the key's state (class forget too): loaded again before use
void
    pl_lane_forget (pl_lane_t *self, pl_lane_key_t *key);

//  Answers every queued request with the error (the key could not load)
void
    pl_lane_fail_all (pl_lane_t *self, pl_lane_key_t *key, const char *code,
                      const char *message);

//  Takes the run of requests at the head of the queue: those with the
//  head's action, at most max_count, whose bytes stay within max_bytes
//  (the head always comes), each accepted by joins (NULL: all) after the
//  head. Gives them seqs last + 1 .. last + k and ts now. Returns k (>= 1).
size_t
    pl_lane_run (pl_lane_t *self, pl_lane_key_t *key, size_t max_count, size_t max_bytes,
                 bool (*joins) (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op));

//  Sends a store call for the head request; its answer goes to answer.
//  Returns 0, or -1 when it could not be sent (the head has been answered
//  unavailable with the class's message).
int
    pl_lane_call (pl_lane_t *self, pl_lane_key_t *key, const char *type,
                  const void *body, size_t size, pl_lane_answer_fn *answer);

//  Sends the store write of the count requests at the head (a run, or one
//  write that changes the key's state): answer is handed each of them in
//  order and answers each (a write of one may leave its request to run
//  again, or make another call). A conflict reloads the key and sends the
//  run again once; unavailable reloads the key before the next write.
//  Returns 0, or -1 when it could not be sent (the count requests have
//  been answered unavailable).
int
    pl_lane_write (pl_lane_t *self, pl_lane_key_t *key, const char *type,
                   const void *body, size_t size, size_t count, pl_lane_answer_fn *answer);

//  The store answered a call whose cookie is one of this lane's keys:
//  hands it to its answer, then serves the queue on
void
    pl_lane_answer (pl_lane_t *self, void *cookie, const char *code, const char *message,
                    const msgpack_object *body, size_t size);

//  Removes the keys whose queue is empty and that were last used idle_ms
//  ago or more
void
    pl_lane_evict (pl_lane_t *self, int64_t idle_ms);

//  The key's name (as given to pl_lane_key), its plugin state, its last
//  stored seq (0 before the load); all borrowed
const char *
    pl_lane_name (pl_lane_key_t *key);
void *
    pl_lane_state (pl_lane_key_t *key);
uint64_t
    pl_lane_last_seq (pl_lane_key_t *key);

//  A write of op is stored: the key's last seq moves on to op->seq
void
    pl_lane_stored (pl_lane_key_t *key, pl_lane_op_t *op);

//  The number of keys in the lane
size_t
    pl_lane_size (pl_lane_t *self);

#ifdef __cplusplus
}
#endif

#endif

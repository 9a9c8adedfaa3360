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
      already are answered as failures (pl_lane_failure). An unavailable
      answer (the outcome unknown) reloads the key before the next write.

    Requests come in through pl_lane_request: the class's table of request
    types names each type's action; the class's read takes its fields (or
    refuses them: pl_lane_refuse) and names its key; a type with a rate
    counts against its user's token bucket (rate_limited, with
    retry_after_ms); then the key's queue, or unavailable when it is full.
    A request whose read sets intake's at_once is first offered to the
    class's at_once, which may answer it there and then from what is known
    without a store call (a typing, from a loaded room's members): it then
    waits behind nothing, neither the key's store call out nor its queue.

    Nonces (PROTOCOL.md 1.1, "Outcomes, retries and idempotency"): a
    request may carry one (intake's nonce). Each key remembers the nonces
    of its recent stored writes (pl_nonce, at most set_nonces of them), so
    the lane answers a repeat itself before any action runs: ok with the
    first write's seq and ts and duplicate: true. A run never takes a
    request whose nonce the key knows or an earlier request of the run
    carries (it waits, and is answered as a repeat at the head). After a
    restart the map is cold and the store finds the repeat: a write's ok
    answer with 'duplicates' ([{index, seq, ts}], nothing stored) answers
    those requests as repeats and sends the rest of the run again,
    numbered anew. The store may refuse elements of a run the same way
    (timeline changes: an edit of a message that is not there): an ok
    answer with 'refused' ([{index, code}], nothing stored) has the class
    answer those (its refused) and sends the rest again, numbered anew,
    'duplicates' and 'refused' alike. A refusal that a repeat must not get (rate_limited,
    not_member: pl_lane_deny) first looks the nonce up: in the map, then
    in the store (the class's look_up).

    Deadlines (ABI minor 3, host->request_time_left): a request is admitted
    only when the work queued for its key (queue length x the measured time
    of one op of its type, pl_service: the store calls' time shared by the
    ops they served, once PL_LANE_ADMIT_SAMPLES calls are measured) fits in
    the time it has left; otherwise it is
    refused at once, unavailable with retry_after_ms from that measure. A
    request whose time runs out while it waits, or grows shorter than two
    store calls of its type take (measured), is answered unavailable
    (retry_after_ms) before its action starts, and is dropped from a run
    before the run is numbered, so that a run is stored whole with
    consecutive seqs. A store call carries the earliest deadline of the
    requests it is for, less 1/PL_LANE_MARGIN_PART of it. A store answer
    whose outcome is unknown (the store had the write and went silent)
    reaches the run's callers as unavailable with "outcome": "unknown"
    (pl_lane_failure); any unavailable reloads the key before the next
    write.

    Idle keys leave the lane, so that a key that moved to another instance
    and back is loaded fresh: a key idle for idle_ms is loaded again when a
    request comes for it, and the requests coming in sweep the idle keys
    out every PL_LANE_SWEEP_MS (no timer: a lane nobody asks holds still).

    Store calls go through the plugin's pl_call, each with its key as its
    context: the plugin's on_reply is pl_call_reply, for the lane's calls
    and its own alike.

    Ownership: the lane owns its keys, their states (class state_destroy)
    and the queued requests' arguments (class args_destroy); it borrows the
    plugin's pl_call, which must outlive it. A request the host lent is held
    in the queue until an action answers it through op->request; requests
    still queued at destroy belong to the host again.

        self->calls = pl_call_new (host, ctx, self);
        self->lane = pl_lane_new (ctx, host, self->calls, &s_class, self, PL_LANE_QUEUE_MAX);
        pl_lane_set_rate (self->lane, 20, 40);
        ...on_request: if (pl_lane_request (self->lane, &request) != 0) (not a lane type)
        ...on_reply: pl_call_reply (self->calls, cookie, code, message, body, size);
        pl_lane_destroy (&self->lane);      //  then pl_call_destroy (&self->calls)
    =========================================================================
*/

#ifndef PL_LANE_H_INCLUDED
#define PL_LANE_H_INCLUDED

#include "parley_plugin.h"
#include "pl_call.h"
#include "pl_pack.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Requests waiting for one key, by default; one more is refused
#define PL_LANE_QUEUE_MAX       10000

//  Text bytes a run of writes carries at most (pl_lane_run's max_bytes), so
//  that its store request stays well under the envelope's frame limit:
//  256 messages of 4,000 emoji would pass it
#define PL_LANE_RUN_BYTES       (512 * 1024)

//  A key unused this long leaves the lane, by default (pl_lane_set_idle)
#define PL_LANE_IDLE_MS         60000

//  How often the requests coming in sweep the idle keys out
#define PL_LANE_SWEEP_MS        5000

//  A store call has the earliest deadline of the requests it is for, less
//  1/PL_LANE_MARGIN_PART of it: the answer's way back to the client
#define PL_LANE_MARGIN_PART     10

//  Store calls of a type measured before its requests are refused by the
//  time they would wait: a lone op's call says little of a run's
#define PL_LANE_ADMIT_SAMPLES   8

typedef struct _pl_lane_t pl_lane_t;
typedef struct _pl_lane_key_t pl_lane_key_t;
typedef struct _pl_lane_op_t pl_lane_op_t;

//  One request in a key's queue. The plugin reads and writes request, seq
//  and ts, reads user, args and next; the lane owns the rest.
struct _pl_lane_op_t {
    parley_request_t *request;      //  lent by the host; NULL once answered
    char *user;                     //  the stamped user, as registered, owned
    void *args;                     //  the request's parsed fields, owned
    uint64_t seq;                   //  a write's seq (pl_lane_run)
    int64_t ts;                     //  a write's time, wall-clock ms (pl_lane_run)
    size_t bytes;                   //  what it adds to a run (its text)
    pl_lane_op_t *next;             //  next in the queue
    void (*start) (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op);
                                    //  the request type's action
    bool retried;                   //  sent again once after a conflict
    char *nonce;                    //  the request's nonce, owned; NULL for none
    const char *denied;             //  pl_lane_deny's code while its nonce is
                                    //  looked up (a literal), else NULL
    char *denial;                   //  its sentence, owned
    int64_t retry_ms;               //  its retry_after_ms (0: none)
    bool started;                   //  its action has run: no longer dropped
                                    //  when its time is gone
    size_t kind;                    //  its type's place in the class's table
};

//  A request type's action: serves op, the head of key's queue
typedef void (pl_lane_action_fn) (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op);

//  A store answer for op (code NULL: ok, with body, a map, never NULL then;
//  an ok that is not a map comes as the code internal)
typedef void (pl_lane_answer_fn) (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op,
                                  const char *code, const char *message,
                                  const msgpack_object *body);

//  What is wrong with a request, if anything, as it comes in; and what it
//  is when nothing is: its fields, its key, its weight in a run
typedef struct {
    const char *code;               //  NULL while nothing is wrong
    char message [256];             //  the refusal's sentence
    int64_t retry_ms;               //  with code: when to try again (0: not said)
    void *args;                     //  the fields read; the lane owns them
    char *key;                      //  the key's name; the lane owns it
    size_t bytes;                   //  what the request adds to a run (its text)
    char *nonce;                    //  the request's nonce (NULL: none); the lane
                                    //  owns it. A type with a rate does not refuse
                                    //  a request with a nonce at once: it is
                                    //  looked up first (pl_lane_deny)
    bool at_once;                   //  the class's at_once may answer it as it
                                    //  comes in (read sets it; false by default)
} pl_lane_intake_t;

//  One request type served on the lane
typedef struct {
    const char *type;               //  "msg.send"; NULL ends a table
    pl_lane_action_fn *start;       //  its action
    const char *rate_limited;       //  the refusal when its user's bucket is
                                    //  empty; NULL: no rate
    const void *extra;              //  the plugin's own, for read
} pl_lane_type_t;

//  What a plugin tells the lane about its keys
typedef struct {
    //  The request types, ending with a NULL type
    const pl_lane_type_t *types;
    //  Reads a request of type from user: sets intake's args, key and bytes
    //  and returns true, or returns false with the refusal (pl_lane_refuse)
    bool (*read) (void *plugin, const pl_lane_type_t *type, const char *user,
                  const msgpack_object *map, pl_lane_intake_t *intake);
    //  The refusal when the key's queue is full (unavailable)
    void (*busy) (void *plugin, pl_lane_key_t *key, const void *args,
                  pl_lane_intake_t *intake);
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
    //  What users are told is failing: "room" for "The room service failed"
    const char *service;
    //  Sends the store call that looks op's nonce up, with
    //  pl_lane_looked_up as its answer (NULL: the class has no nonces)
    pl_lane_action_fn *look_up;
    //  For a request whose read set intake's at_once: may answer op as it
    //  comes in, ahead of the key's queue, its bound and admission, from
    //  what is known without a store call (a typing, from a loaded room's
    //  cached members: it need not wait behind the room's writes). An op it
    //  leaves unanswered is queued as any other, its start run at its turn.
    //  op is a stand-in that owns nothing. May be NULL.
    pl_lane_action_fn *at_once;
    //  Answers op, an element of a run the store refused (its answer's
    //  'refused': code is the store's, e.g. no_such_message, forbidden,
    //  unchanged, too_many_reactions); NULL: answered internal
    void (*refused) (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code);
} pl_lane_class_t;

//  Creates a lane. calls (made with the plugin's state), cls and plugin are
//  borrowed for the lane's lifetime; queue_max bounds each key's queue.
//  Caller owns return value; NULL if out of memory.
pl_lane_t *
    pl_lane_new (parley_ctx_t *ctx, const parley_host_t *host, pl_call_t *calls,
                 const pl_lane_class_t *cls, void *plugin, size_t queue_max);

//  Destroys the lane, its keys and their queues; the requests still queued
//  belong to the host again. Nullifies the reference.
void
    pl_lane_destroy (pl_lane_t **self_p);

//  The types with a rate take a token of their user's bucket: rate a
//  second, burst at once (at least 1); a rate of 0 (the default) is no limit
void
    pl_lane_set_rate (pl_lane_t *self, double rate, double burst);

//  Each key remembers the nonces of at most max writes (default
//  PL_NONCE_CACHE_DEFAULT; 0: none, every repeat is found by the store)
void
    pl_lane_set_nonces (pl_lane_t *self, size_t max);

//  A key unused for idle_ms leaves the lane (default PL_LANE_IDLE_MS)
void
    pl_lane_set_idle (pl_lane_t *self, int64_t idle_ms);

//  Takes a request from the host when its type is one of the class's:
//  reads it, checks its rate, queues it (then serves the queue) or answers
//  the refusal. Returns 0 when taken (*request_p nullified), -1 when the
//  type is not the lane's (the request is left to the caller).
int
    pl_lane_request (pl_lane_t *self, parley_request_t **request_p);

//  Sets intake's refusal. Returns false, for a reader to return.
bool
    pl_lane_refuse (pl_lane_intake_t *intake, const char *code, const char *format, ...)
#if defined(__GNUC__)
    __attribute__ ((format (printf, 3, 4)))
#endif
    ;

//  The key's lane entry, made (with state_new (args)) if new or idle for
//  idle_ms. Returns it (borrowed), or NULL if out of memory.
pl_lane_key_t *
    pl_lane_key (pl_lane_t *self, const char *name, const void *args);

//  True when the key's queue holds queue_max requests already
bool
    pl_lane_full (pl_lane_t *self, pl_lane_key_t *key);

//  Queues a request of user (copied) whose action is start; takes the
//  request (nullifies *request_p) and args (the lane destroys them), then
//  serves the queue (key may be gone after: see keep). bytes: what it adds
//  to a run. Returns 0, or -1 if out of memory (the request and args are
//  left to the caller).
int
    pl_lane_submit (pl_lane_t *self, pl_lane_key_t *key, parley_request_t **request_p,
                    const char *user, pl_lane_action_fn *start, void *args, size_t bytes);

//  Answers op with an error (takes its request)
void
    pl_lane_error (pl_lane_t *self, pl_lane_op_t *op, const char *code, const char *format, ...)
#if defined(__GNUC__)
    __attribute__ ((format (printf, 4, 5)))
#endif
    ;

//  Answers op ok with body (a msgpack map, copied; NULL for none)
void
    pl_lane_ok (pl_lane_t *self, pl_lane_op_t *op, const void *body, size_t size);

//  Answers op with a refusal that a repeat must not get (rate_limited with
//  retry_ms, not_member): when op carries a nonce, the key's map and then
//  the store (the class's look_up) are asked first, and a repeat is
//  answered as one. retry_ms 0: no retry_after_ms.
void
    pl_lane_deny (pl_lane_t *self, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                  int64_t retry_ms, const char *format, ...)
#if defined(__GNUC__)
    __attribute__ ((format (printf, 6, 7)))
#endif
    ;

//  The answer of a look_up's store call: ok with duplicate: true, seq and
//  ts answers op as a repeat; ok without answers pl_lane_deny's refusal;
//  an error answers as pl_lane_failure
void
    pl_lane_looked_up (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                       const char *message, const msgpack_object *body);

//  Answers op for a store error its action has no answer of its own for:
//  logged, then unavailable ("cannot reach its storage") or internal
void
    pl_lane_failure (pl_lane_t *self, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                     const char *message);

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

//  The key could not load (code: the store's error, NULL for a malformed
//  answer): logged, and every queued request answered unavailable or
//  internal
void
    pl_lane_fail_all (pl_lane_t *self, pl_lane_key_t *key, const char *code);

//  Takes the run of requests at the head of the queue: those with the
//  head's action, at most max_count, whose bytes stay within max_bytes
//  (the head always comes), each accepted by joins (NULL: all) after the
//  head, and none whose nonce the key knows or an earlier one of the run
//  carries (it waits: a repeat). Gives them seqs last + 1 .. last + k and
//  ts now. Returns k (>= 1).
size_t
    pl_lane_run (pl_lane_t *self, pl_lane_key_t *key, size_t max_count, size_t max_bytes,
                 bool (*joins) (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op));

//  Sends a store call for the head request, the body packed in pack (which
//  it releases); its answer goes to answer. Returns 0, or -1 when it could
//  not be sent (the head has been answered unavailable).
int
    pl_lane_call (pl_lane_t *self, pl_lane_key_t *key, const char *type, pl_pack_t *pack,
                  pl_lane_answer_fn *answer);

//  The same for a call that changes nothing (a page of history, a nonce
//  or a user looked up): an answer lost on the way leaves no outcome
//  unknown, so a failure answers plain unavailable (pl_lane_failure)
int
    pl_lane_read (pl_lane_t *self, pl_lane_key_t *key, const char *type, pl_pack_t *pack,
                  pl_lane_answer_fn *answer);

//  Sends the store write of the count requests at the head (a run, or one
//  write that changes the key's state): answer is handed each of them in
//  order and answers each (a write of one may leave its request to run
//  again, or make another call). A conflict reloads the key and sends the
//  run again once; unavailable reloads the key before the next write.
//  Returns 0, or -1 when it could not be sent (the count requests have
//  been answered unavailable).
int
    pl_lane_write (pl_lane_t *self, pl_lane_key_t *key, const char *type, pl_pack_t *pack,
                   size_t count, pl_lane_answer_fn *answer);

//  Removes the keys whose queue is empty and that were last used idle_ms
//  ago or more, and the users' buckets that have filled up again (a full
//  bucket is as good as a new one); pl_lane_request calls it every
//  PL_LANE_SWEEP_MS
void
    pl_lane_evict (pl_lane_t *self);

//  The key's name (as given to pl_lane_key), its plugin state, its last
//  stored seq (0 before the load); all borrowed
const char *
    pl_lane_name (pl_lane_key_t *key);
void *
    pl_lane_state (pl_lane_key_t *key);
uint64_t
    pl_lane_last_seq (pl_lane_key_t *key);

//  A write of op is stored: the key's last seq moves on to op->seq, and the
//  key remembers op's nonce
void
    pl_lane_stored (pl_lane_key_t *key, pl_lane_op_t *op);

//  The number of keys in the lane
size_t
    pl_lane_size (pl_lane_t *self);

//  True when the key's state is loaded (pl_lane_loaded) and not forgotten
//  since: what a type's at_once may answer from
bool
    pl_lane_is_loaded (pl_lane_key_t *key);

//  --------------------------------------------------------------------------
//  A page of a key's timeline, as clients ask for one (room.history,
//  pm.history): limit, and a seq cursor before or after

typedef struct {
    uint32_t limit;                 //  entries, 1 to the reader's max
    int64_t before;                 //  seq cursor, -1 for none
    int64_t after;                  //  seq cursor, -1 for none
} pl_lane_page_t;

//  Reads limit (default fallback, at most max), before and after from a
//  request's map into page. Returns true, or false with the refusal
//  (bad_request).
bool
    pl_lane_page_read (const msgpack_object *map, uint32_t fallback, uint32_t max,
                       pl_lane_page_t *page, pl_lane_intake_t *intake);

//  The fields pl_lane_page_pack packs (1 to 2)
uint32_t
    pl_lane_page_fields (const pl_lane_page_t *page);

//  Packs the page as a store call has it: limit, and before or after
void
    pl_lane_page_pack (pl_pack_t *pack, const pl_lane_page_t *page);

#ifdef __cplusplus
}
#endif

#endif

/*  =========================================================================
    pl_lane - a per-key serial lane (see pl_lane.h)

    Map of the state: two tables of names (chained hashes): the keys, and
    the users' token buckets. Each key holds the plugin's state, its last
    stored seq and a singly linked queue of ops. A key has at most one
    store call out (busy), for its head op, with the answer handler and the
    run's length (writing) it was sent with. Nothing grows without a bound:
    a queue stops at queue_max, idle keys leave and so do the buckets that
    have filled up again (pl_lane_evict): a full bucket is a new one.
    =========================================================================
*/

#include "pl_lane.h"
#include "pl_body.h"
#include "pl_bucket.h"
#include "pl_hash.h"
#include "pl_nonce.h"
#include "pl_reply.h"
#include "pl_service.h"
#include "pl_text.h"
#include "pl_time.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SLOTS_MIN     64              //  a table's first size

//  A named entry of a table; it sits inside what it names
typedef struct s_entry_s s_entry_t;
struct s_entry_s {
    char *name;                     //  owned
    s_entry_t *chain;               //  next entry in the same slot
};

typedef struct {
    s_entry_t **slots;              //  owned
    size_t count;                   //  slots, a power of two
    size_t size;                    //  entries
} s_table_t;

struct _pl_lane_key_t {
    s_entry_t entry;                //  in the lane's keys; its name
    pl_lane_t *lane;                //  the lane it is in: its calls' context
    void *state;                    //  the plugin's, owned (class state_destroy)
    bool loaded;                    //  last_seq (and the plugin's state) are loaded
    uint64_t last_seq;              //  the newest stored write's seq
    bool busy;                      //  a store call is out for the head op
    pl_lane_answer_fn *answer;      //  where its answer goes
    size_t writing;                 //  ops of the write out (0: a plain call)
    pl_lane_op_t *head;             //  queued ops, owned; the head is being served
    pl_lane_op_t *tail;
    size_t queued;                  //  ops in the queue
    int64_t touched;                //  monotonic ms of the last request
    pl_nonce_t *nonces;             //  its recent writes' nonces, owned
    int64_t call_sent;              //  monotonic ms the call out was sent
    size_t call_kind;               //  the kind of the ops it was sent for
    bool reading;                   //  the call out changes nothing (pl_lane_read)
    bool unknown;                   //  while an answer is handed over: the call
                                    //  failed with its outcome unknown
    int64_t retry_ms;               //  ... and the callee's retry_after_ms
};

//  A user's allowance, in the lane's buckets
typedef struct {
    s_entry_t entry;                //  the lower-cased user
    pl_bucket_t bucket;
} s_allowance_t;

struct _pl_lane_t {
    parley_ctx_t *ctx;              //  the host's handle
    const parley_host_t *host;      //  the host's function table
    pl_call_t *calls;               //  the plugin's, borrowed: every store call
    const pl_lane_class_t *cls;     //  the plugin's callbacks, borrowed
    void *plugin;                   //  the plugin's state, borrowed
    size_t queue_max;               //  ops one key may queue
    s_table_t keys;                 //  pl_lane_key_t, owned
    s_table_t allowances;           //  s_allowance_t, owned
    double rate;                    //  tokens a second; 0: no rate
    double burst;                   //  a bucket's size
    int64_t idle_ms;                //  a key unused this long leaves
    size_t nonces_max;              //  nonces a key remembers
    int64_t swept;                  //  monotonic ms of the last sweep
    pl_service_t service;           //  one op's measured time, every key's
    pl_service_t *services;         //  owned: the same for each kind of op (a
                                    //  type of the class's table, then the others)
    pl_service_t *call_times;       //  owned: a whole store call's time, by kind
    size_t kinds;                   //  entries in services
};

//  What a sweep of the keys goes by
typedef struct {
    pl_lane_t *lane;
    int64_t now;                    //  monotonic ms
    int64_t idle_ms;                //  a key idle this long goes
} s_sweep_t;

#define S_KEY(entry_p)        ((pl_lane_key_t *) ((char *) (entry_p) \
                                - offsetof (pl_lane_key_t, entry)))


//  --------------------------------------------------------------------------
//  Tables of names

static int
s_table_init (s_table_t *self)
{
    self->slots = (s_entry_t **) calloc (S_SLOTS_MIN, sizeof (s_entry_t *));
    self->count = S_SLOTS_MIN;
    self->size = 0;
    return self->slots? 0: -1;
}

//  Where name is, or would go
static s_entry_t **
s_table_slot (s_table_t *self, const char *name)
{
    s_entry_t **slot = &self->slots [pl_hash_name (name) & (self->count - 1)];
    while (*slot && strcmp ((*slot)->name, name) != 0)
        slot = &(*slot)->chain;
    return slot;
}

//  Doubles the table when it holds as many entries as slots; a failed
//  allocation leaves it as it is (longer chains, still right)
static void
s_table_grow (s_table_t *self)
{
    if (self->size < self->count)
        return;
    size_t count = self->count * 2;
    s_entry_t **slots = (s_entry_t **) calloc (count, sizeof (s_entry_t *));
    if (!slots)
        return;
    for (size_t index = 0; index < self->count; index++)
        while (self->slots [index]) {
            s_entry_t *entry = self->slots [index];
            self->slots [index] = entry->chain;
            size_t target = pl_hash_name (entry->name) & (count - 1);
            entry->chain = slots [target];
            slots [target] = entry;
        }
    free (self->slots);
    self->slots = slots;
    self->count = count;
}

//  Puts entry (its name set, not in the table) where slot says
static void
s_table_put (s_table_t *self, s_entry_t **slot, s_entry_t *entry)
{
    entry->chain = NULL;
    *slot = entry;
    self->size++;
    s_table_grow (self);
}

//  Takes out each entry that gone says is gone, and hands it to destroy;
//  gone NULL takes out all
static void
s_table_sweep (s_table_t *self, void *context, bool (*gone) (void *context, s_entry_t *entry),
               void (*destroy) (void *context, s_entry_t *entry))
{
    for (size_t index = 0; index < self->count; index++) {
        s_entry_t **slot = &self->slots [index];
        while (*slot) {
            s_entry_t *entry = *slot;
            if (!gone || gone (context, entry)) {
                *slot = entry->chain;
                self->size--;
                destroy (context, entry);
            }
            else
                slot = &entry->chain;
        }
    }
}


//  --------------------------------------------------------------------------
//  Keys and ops

static void
s_op_destroy (pl_lane_t *self, pl_lane_op_t **op_p)
{
    pl_lane_op_t *op = *op_p;
    if (op) {
        if (op->args)
            self->cls->args_destroy (&op->args);
        free (op->nonce);
        free (op->denial);
        free (op->user);
        free (op);
        *op_p = NULL;
    }
}

static void
s_key_destroy (pl_lane_t *self, pl_lane_key_t **key_p)
{
    pl_lane_key_t *key = *key_p;
    if (key) {
        while (key->head) {
            pl_lane_op_t *op = key->head;
            key->head = op->next;
            s_op_destroy (self, &op);
        }
        if (key->state && self->cls->state_destroy)
            self->cls->state_destroy (&key->state);
        pl_nonce_destroy (&key->nonces);
        free (key->entry.name);
        free (key);
        *key_p = NULL;
    }
}

static void
s_key_sweep_destroy (void *context, s_entry_t *entry)
{
    pl_lane_key_t *key = S_KEY (entry);
    s_key_destroy (((s_sweep_t *) context)->lane, &key);
}

static void
s_free_entry (void *context, s_entry_t *entry)
{
    (void) context;
    free (entry->name);
    free (entry);           //  the entry is the allowance's first field
}

//  Takes the key out of the table and destroys it
static void
s_key_remove (pl_lane_t *self, pl_lane_key_t *key)
{
    s_entry_t **slot = s_table_slot (&self->keys, key->entry.name);
    assert (*slot == &key->entry);
    *slot = key->entry.chain;
    self->keys.size--;
    s_key_destroy (self, &key);
}


//  --------------------------------------------------------------------------
//  Lifecycle

pl_lane_t *
pl_lane_new (parley_ctx_t *ctx, const parley_host_t *host, pl_call_t *calls,
             const pl_lane_class_t *cls, void *plugin, size_t queue_max)
{
    assert (host && calls && cls && cls->types && cls->read && cls->busy);
    assert (cls->args_destroy);
    assert (cls->load && cls->service);
    pl_lane_t *self = (pl_lane_t *) calloc (1, sizeof (pl_lane_t));
    if (!self)
        return NULL;
    self->ctx = ctx;
    self->host = host;
    self->calls = calls;
    self->cls = cls;
    self->plugin = plugin;
    self->queue_max = queue_max;
    self->idle_ms = PL_LANE_IDLE_MS;
    self->nonces_max = PL_NONCE_CACHE_DEFAULT;
    self->swept = pl_time_mono ();
    while (cls->types [self->kinds].type)
        self->kinds++;
    self->kinds++;                  //  the ops of pl_lane_submit's own actions
    self->services = (pl_service_t *) calloc (self->kinds, sizeof (pl_service_t));
    self->call_times = (pl_service_t *) calloc (self->kinds, sizeof (pl_service_t));
    if (!self->services || !self->call_times || s_table_init (&self->keys) || s_table_init (&self->allowances))
        pl_lane_destroy (&self);
    return self;
}

void
pl_lane_destroy (pl_lane_t **self_p)
{
    pl_lane_t *self = *self_p;
    if (self) {
        s_sweep_t sweep = { self, 0, 0 };
        if (self->keys.slots)
            s_table_sweep (&self->keys, &sweep, NULL, s_key_sweep_destroy);
        if (self->allowances.slots)
            s_table_sweep (&self->allowances, self, NULL, s_free_entry);
        free (self->keys.slots);
        free (self->allowances.slots);
        free (self->services);
        free (self->call_times);
        free (self);
        *self_p = NULL;
    }
}

void
pl_lane_set_rate (pl_lane_t *self, double rate, double burst)
{
    self->rate = rate > 0? rate: 0;
    self->burst = burst < 1? 1: burst;
}

void
pl_lane_set_nonces (pl_lane_t *self, size_t max)
{
    self->nonces_max = max;
}

void
pl_lane_set_idle (pl_lane_t *self, int64_t idle_ms)
{
    self->idle_ms = idle_ms;
}

static bool s_key_idle (void *context, s_entry_t *entry);

pl_lane_key_t *
pl_lane_key (pl_lane_t *self, const char *name, const void *args)
{
    s_entry_t **slot = s_table_slot (&self->keys, name);
    s_sweep_t sweep = { self, pl_time_mono (), self->idle_ms };
    if (*slot && !s_key_idle (&sweep, *slot))
        return S_KEY (*slot);
    if (*slot) {
        //  Idle: it may have moved to another instance and back
        s_key_remove (self, S_KEY (*slot));
        slot = s_table_slot (&self->keys, name);
    }
    pl_lane_key_t *key = (pl_lane_key_t *) calloc (1, sizeof (pl_lane_key_t));
    if (key) {
        key->lane = self;
        key->entry.name = strdup (name);
        key->nonces = pl_nonce_new (self->nonces_max);
        if (key->entry.name && self->cls->state_new)
            key->state = self->cls->state_new (self->plugin, name, args);
    }
    if (!key || !key->entry.name || !key->nonces
    ||  (self->cls->state_new && !key->state)) {
        s_key_destroy (self, &key);
        return NULL;
    }
    key->touched = pl_time_mono ();
    s_table_put (&self->keys, slot, &key->entry);
    return key;
}

bool
pl_lane_full (pl_lane_t *self, pl_lane_key_t *key)
{
    return key->queued >= self->queue_max;
}


//  --------------------------------------------------------------------------
//  Answers

//  The request's time left (ABI minor 3); -1 when it has no deadline or the
//  host cannot say
static int64_t
s_time_left (pl_lane_t *self, pl_lane_op_t *op)
{
    const parley_host_t *host = self->host;
    if (!op->request || host->abi_minor < 3 || !host->request_time_left)
        return -1;
    return host->request_time_left (op->request);
}

//  retry_after_ms of the key's refusals: the work its queue holds
static int64_t
s_retry_ms (pl_lane_t *self, pl_lane_key_t *key)
{
    int64_t wait = pl_service_wait (&self->service, key ? key->queued : 0, 1);
    return wait > PL_SERVICE_RETRY_MIN_MS ? wait : PL_SERVICE_RETRY_MIN_MS;
}

static bool
s_retries (const char *code)
{
    return strcmp (code, "unavailable") == 0 || strcmp (code, "rate_limited") == 0;
}

void
pl_lane_error (pl_lane_t *self, pl_lane_op_t *op, const char *code, const char *format, ...)
{
    char message [512];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    if (s_retries (code))
        pl_reply_error_retry (self->host, self->ctx, &op->request, code, message,
                              s_retry_ms (self, NULL));
    else
        self->host->reply_error (self->ctx, &op->request, code, message);
}

//  A request whose time ran out in the queue, before its action started:
//  its caller has been told, or is about to be; nothing was done
static void
s_expire (pl_lane_t *self, pl_lane_key_t *key, pl_lane_op_t *op)
{
    pl_reply_error_retry (self->host, self->ctx, &op->request, "unavailable",
                          "The service could not get to the request in time; try again"
                          " shortly.", s_retry_ms (self, key));
}

void
pl_lane_ok (pl_lane_t *self, pl_lane_op_t *op, const void *body, size_t size)
{
    self->host->reply (self->ctx, &op->request, body, size);
}

void
pl_lane_failure (pl_lane_t *self, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                 const char *message)
{
    self->host->log (self->ctx, PARLEY_LOG_WARNING, "store refused a request about '%s': %s"
                     " (%s)%s", key->entry.name, code, message? message: "",
                     key->unknown? ", outcome unknown": "");
    int64_t retry_ms = key->retry_ms > 0? key->retry_ms: s_retry_ms (self, key);
    char text [256];
    if (key->unknown) {
        //  The store had the write and its answer was lost: it may be done
        snprintf (text, sizeof text, "The %s service lost its storage's answer; the request"
                  " may or may not have taken effect.", self->cls->service);
        pl_reply_error_unknown (self->host, self->ctx, &op->request,
                                strcmp (code, "unavailable") == 0? "unavailable": "internal",
                                text, retry_ms);
    }
    else
    if (strcmp (code, "unavailable") == 0) {
        //  Nothing was done: when to try again is the store's word, or the
        //  key's work ahead
        snprintf (text, sizeof text, "The %s service cannot reach its storage now; try again"
                  " later.", self->cls->service);
        pl_reply_error_retry (self->host, self->ctx, &op->request, "unavailable", text,
                              retry_ms);
    }
    else
        pl_lane_error (self, op, "internal", "The %s service failed; try again.",
                       self->cls->service);
}

void
pl_lane_fail_all (pl_lane_t *self, pl_lane_key_t *key, const char *code)
{
    self->host->log (self->ctx, PARLEY_LOG_WARNING, "could not load '%s': %s",
                     key->entry.name, code? code: "malformed answer");
    code = code && strcmp (code, "unavailable") == 0? "unavailable": "internal";
    //  A load writes nothing: a lost answer leaves nothing unknown for the
    //  requests that waited for it
    for (pl_lane_op_t *op = key->head; op; op = op->next)
        if (op->request)
            pl_lane_error (self, op, code, "The %s service cannot reach its storage now;"
                           " try again later.", self->cls->service);
}


//  --------------------------------------------------------------------------
//  Repeats: requests whose nonce was stored already

//  Answers op as the repeat of the write stored at seq and ts, which the
//  key then remembers
static void
s_reply_duplicate (pl_lane_t *self, pl_lane_key_t *key, pl_lane_op_t *op, uint64_t seq,
                   int64_t ts)
{
    if (op->nonce)
        pl_nonce_put (key->nonces, op->user, op->nonce, seq, ts);
    pl_pack_t pack;
    pl_pack_init (&pack);
    msgpack_pack_map (&pack.packer, 3);
    pl_pack_kuint (&pack, "seq", seq);
    pl_body_pack_str (&pack.packer, "ts");
    pl_body_pack_time (&pack.packer, ts);
    pl_pack_kbool (&pack, "duplicate", true);
    pl_lane_ok (self, op, pack.buffer.data, pack.buffer.size);
    pl_pack_release (&pack);
}

//  True when op's nonce is one the key knows: then op is answered as the
//  repeat it is (at the head of the queue, and for a request coming in)
static bool
s_repeat (pl_lane_t *self, pl_lane_key_t *key, pl_lane_op_t *op)
{
    uint64_t seq;
    int64_t ts;
    if (!op->nonce || !pl_nonce_get (key->nonces, op->user, op->nonce, &seq, &ts))
        return false;
    s_reply_duplicate (self, key, op, seq, ts);
    return true;
}

//  Answers op with a refusal, with retry_after_ms when retry_ms > 0
static void
s_refuse_now (pl_lane_t *self, pl_lane_op_t *op, const char *code, const char *message,
              int64_t retry_ms)
{
    if (retry_ms > 0)
        pl_reply_error_retry (self->host, self->ctx, &op->request, code, message, retry_ms);
    else
        self->host->reply_error (self->ctx, &op->request, code, message);
}

void
pl_lane_deny (pl_lane_t *self, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
              int64_t retry_ms, const char *format, ...)
{
    char message [512];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    if (s_repeat (self, key, op))
        return;
    free (op->denial);
    if (!op->nonce || !self->cls->look_up || !(op->denial = strdup (message))) {
        s_refuse_now (self, op, code, message, retry_ms);
        return;
    }
    op->denied = code;
    op->retry_ms = retry_ms;
    self->cls->look_up (self->plugin, key, op);
}

void
pl_lane_looked_up (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                   const char *message, const msgpack_object *body)
{
    (void) plugin;
    pl_lane_t *self = key->lane;
    if (code)
        pl_lane_failure (self, key, op, code, message);
    else
    if (pl_body_bool (body, "duplicate"))
        s_reply_duplicate (self, key, op, (uint64_t) pl_body_int (body, "seq"),
                           pl_body_int (body, "ts"));
    else
        s_refuse_now (self, op, op->denied? op->denied: "internal",
                      op->denial? op->denial: "", op->retry_ms);
}

//  A request refused for its rate, with a nonce: at the head, it is looked
//  up before it is refused (its sentence and wait are in the op)
static void
s_deferred_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    (void) plugin;
    char *denial = op->denial;
    op->denial = NULL;
    pl_lane_deny (key->lane, key, op, "rate_limited", op->retry_ms, "%s", denial? denial: "");
    free (denial);
}

//  True when op may not join a run that starts at head: the key knows its
//  nonce, or an earlier request of the run carries it (it waits to be
//  answered as a repeat at the head)
static bool
s_nonce_waits (pl_lane_key_t *key, pl_lane_op_t *head, pl_lane_op_t *op)
{
    uint64_t seq;
    int64_t ts;
    if (!op->nonce)
        return false;
    if (pl_nonce_get (key->nonces, op->user, op->nonce, &seq, &ts))
        return true;
    for (pl_lane_op_t *earlier = head; earlier != op; earlier = earlier->next)
        if (earlier->nonce && strcmp (earlier->nonce, op->nonce) == 0
        &&  pl_text_same_name (earlier->user, op->user))
            return true;
    return false;
}


//  --------------------------------------------------------------------------
//  Serving the queue

//  True when op's time is gone, or too short for the store call its kind
//  makes (twice the measured time of one): a call that could not answer
//  in time is not begun, and would shorten the deadline of its whole run
static bool
s_too_late (pl_lane_t *self, pl_lane_op_t *op)
{
    int64_t left = s_time_left (self, op);
    if (left < 0)
        return false;
    return left == 0 || left < 2 * pl_service_ms (&self->call_times [op->kind]);
}

//  Takes the head op off the queue and destroys it (it has been answered)
static void
s_pop (pl_lane_t *self, pl_lane_key_t *key)
{
    pl_lane_op_t *op = key->head;
    if (!op)
        return;
    key->head = op->next;
    if (!key->head)
        key->tail = NULL;
    key->queued--;
    s_op_destroy (self, &op);
}

//  Serves the key's queue until its head waits for the store or it is
//  empty; then lets go of a key the plugin does not keep. An action that
//  leaves its op unanswered and not waiting is run again: its state moved.
static void
s_kick (pl_lane_t *self, pl_lane_key_t *key)
{
    while (key->head && !key->busy) {
        pl_lane_op_t *op = key->head;
        if (op->request && !op->started && s_too_late (self, op)) {
            //  Dropped at the head of an idle key, nothing ahead of it: for
            //  the measure alone, unless its time is gone
            if (s_time_left (self, op) > 0)
                pl_service_refused (&self->call_times [op->kind], 0);
            s_expire (self, key, op);
        }
        else
        if (op->request && !s_repeat (self, key, op)) {
            op->started = true;
            op->start (self->plugin, key, op);
        }
        if (key->head == op && op->request == NULL)
            s_pop (self, key);
    }
    if (!key->head && key->loaded && self->cls->keep && !self->cls->keep (self->plugin, key))
        s_key_remove (self, key);
}

//  The kind of an op whose action is start: its type's place in the class's
//  table, or the last kind for an action of the plugin's own
static size_t
s_kind (pl_lane_t *self, pl_lane_action_fn *start)
{
    size_t kind = 0;
    while (kind < self->kinds - 1 && self->cls->types [kind].start != start)
        kind++;
    return kind;
}

//  A new op of user whose action is start. Returns it, or NULL if out of
//  memory.
static pl_lane_op_t *
s_op_new (const char *user, pl_lane_action_fn *start)
{
    pl_lane_op_t *op = (pl_lane_op_t *) calloc (1, sizeof (pl_lane_op_t));
    if (op && user && !(op->user = strdup (user)))
        free (op), op = NULL;
    if (op)
        op->start = start;
    return op;
}

//  Puts op (holding the request, its args) at the end of the key's queue,
//  then serves the queue
static void
s_enqueue (pl_lane_t *self, pl_lane_key_t *key, pl_lane_op_t *op)
{
    op->kind = s_kind (self, op->start);
    if (key->tail)
        key->tail->next = op;
    else
        key->head = op;
    key->tail = op;
    key->queued++;
    key->touched = pl_time_mono ();
    s_kick (self, key);
}

int
pl_lane_submit (pl_lane_t *self, pl_lane_key_t *key, parley_request_t **request_p,
                const char *user, pl_lane_action_fn *start, void *args, size_t bytes)
{
    pl_lane_op_t *op = s_op_new (user, start);
    if (!op)
        return -1;
    op->request = *request_p;
    *request_p = NULL;
    op->args = args;
    op->bytes = bytes;
    s_enqueue (self, key, op);
    return 0;
}

bool
pl_lane_ready (pl_lane_t *self, pl_lane_key_t *key)
{
    if (key->loaded)
        return true;
    self->cls->load (self->plugin, key, key->head);
    return false;
}

void
pl_lane_loaded (pl_lane_t *self, pl_lane_key_t *key, uint64_t last_seq)
{
    (void) self;
    key->loaded = true;
    key->last_seq = last_seq;
}

void
pl_lane_forget (pl_lane_t *self, pl_lane_key_t *key)
{
    key->loaded = false;
    key->last_seq = 0;
    //  Only stored writes are in the map, but a room deleted and made again
    //  starts afresh: the store knows the nonces that still hold
    pl_nonce_purge (key->nonces);
    if (self->cls->forget)
        self->cls->forget (self->plugin, key);
}

//  The op after prev, when its time is gone before it started: answered
//  and taken out of the queue, before it is given a seq (a run is stored
//  whole, with consecutive seqs: nothing leaves it afterwards). Returns
//  true when it was.
static bool
s_drop_expired (pl_lane_t *self, pl_lane_key_t *key, pl_lane_op_t *prev)
{
    pl_lane_op_t *op = prev->next;
    if (!op || op->started || !op->request || !s_too_late (self, op))
        return false;
    prev->next = op->next;
    if (key->tail == op)
        key->tail = prev;
    key->queued--;
    s_expire (self, key, op);
    s_op_destroy (self, &op);
    return true;
}

size_t
pl_lane_run (pl_lane_t *self, pl_lane_key_t *key, size_t max_count, size_t max_bytes,
             bool (*joins) (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op))
{
    pl_lane_op_t *head = key->head;
    assert (head && max_count > 0);
    size_t count = 0;
    size_t bytes = 0;
    int64_t now = pl_time_now ();
    pl_lane_op_t *prev = head;
    for (pl_lane_op_t *op = head; op && op->start == head->start && count < max_count; ) {
        if (op != head && s_drop_expired (self, key, prev)) {
            op = prev->next;
            continue;
        }
        if (op != head && ((joins && !joins (self->plugin, key, op))
                        || s_nonce_waits (key, head, op)))
            break;
        bytes += op->bytes;
        if (count && bytes > max_bytes)
            break;
        op->seq = key->last_seq + 1 + count;
        op->ts = now;
        op->started = true;         //  in a run: it goes to the store with it
        count++;
        prev = op;
        op = op->next;
    }
    return count;
}


//  --------------------------------------------------------------------------
//  Store calls and their answers

static void s_answered (void *state, void *arg, const pl_call_reply_t *reply);

//  The deadline of a store call for the count ops at the head: the earliest
//  of theirs, less a margin for the answer's way back (1/PL_LANE_MARGIN_PART
//  of it), at least 1 ms; -1 when none of them has one
static int64_t
s_call_time_left (pl_lane_t *self, pl_lane_key_t *key, size_t count)
{
    int64_t earliest = -1;
    for (pl_lane_op_t *op = key->head; op && count; op = op->next, count--) {
        int64_t left = s_time_left (self, op);
        if (left >= 0 && (earliest < 0 || left < earliest))
            earliest = left;
    }
    if (earliest < 0)
        return -1;
    int64_t call = earliest - earliest / PL_LANE_MARGIN_PART;
    return call > 0? call: 1;
}

//  Sends the call and releases the pack; when it cannot go, answers the
//  ops it was for
static int
s_send (pl_lane_t *self, pl_lane_key_t *key, const char *type, pl_pack_t *pack,
        size_t writing, pl_lane_answer_fn *answer)
{
    assert (key->head && !key->busy);
    int64_t time_left = s_call_time_left (self, key, writing? writing: 1);
    key->call_sent = pl_time_mono ();
    key->call_kind = key->head->kind;
    key->busy = true;
    key->answer = answer;
    key->writing = writing;
    int rc = pl_call_send_within (self->calls, type, pack->buffer.data, pack->buffer.size,
                                  time_left, s_answered, key);
    pl_pack_release (pack);
    if (rc == 0)
        return 0;
    key->busy = false;
    key->writing = 0;
    size_t count = writing? writing: 1;
    for (pl_lane_op_t *op = key->head; op && count; op = op->next, count--)
        if (op->request)
            pl_lane_error (self, op, "unavailable", "The %s service could not reach its"
                           " store; try again later.", self->cls->service);
    return -1;
}

int
pl_lane_call (pl_lane_t *self, pl_lane_key_t *key, const char *type, pl_pack_t *pack,
              pl_lane_answer_fn *answer)
{
    return s_send (self, key, type, pack, 0, answer);
}

int
pl_lane_read (pl_lane_t *self, pl_lane_key_t *key, const char *type, pl_pack_t *pack,
              pl_lane_answer_fn *answer)
{
    key->reading = true;
    int rc = s_send (self, key, type, pack, 0, answer);
    if (rc != 0)
        key->reading = false;
    return rc;
}

int
pl_lane_write (pl_lane_t *self, pl_lane_key_t *key, const char *type, pl_pack_t *pack,
               size_t count, pl_lane_answer_fn *answer)
{
    return s_send (self, key, type, pack, count? count: 1, answer);
}

//  A write's seq was taken: the store knows better. Reload, then send the
//  run once more; those of it tried once already (they come first) fail.
static void
s_conflict (pl_lane_t *self, pl_lane_key_t *key, size_t writing, const char *code,
            const char *message)
{
    self->host->log (self->ctx, PARLEY_LOG_WARNING, "seq %" PRIu64 " of '%s' is taken;"
                     " reloading it", key->head->seq, key->entry.name);
    pl_lane_forget (self, key);
    while (writing && key->head && key->head->retried) {
        pl_lane_failure (self, key, key->head, code, message);
        s_pop (self, key);
        writing--;
    }
    for (pl_lane_op_t *op = key->head; writing && op; op = op->next, writing--)
        op->retried = true;
}

//  Takes the answered ops among the first count of the queue out of it
static void
s_remove_answered (pl_lane_t *self, pl_lane_key_t *key, size_t count)
{
    pl_lane_op_t **link = &key->head;
    pl_lane_op_t *previous = NULL;
    while (*link && count--) {
        pl_lane_op_t *op = *link;
        if (op->request) {
            previous = op;
            link = &op->next;
            continue;
        }
        *link = op->next;
        if (key->tail == op)
            key->tail = previous;
        key->queued--;
        s_op_destroy (self, &op);
    }
}

//  The op of the run at index (of writing), still to be answered; NULL
//  for an index outside the run
static pl_lane_op_t *
s_run_op (pl_lane_key_t *key, size_t writing, int64_t index)
{
    if (index < 0 || (size_t) index >= writing)
        return NULL;
    pl_lane_op_t *op = key->head;
    for (int64_t step = 0; op && step < index; step++)
        op = op->next;
    return op && op->request? op: NULL;
}

//  Answers op, named by item of a write's list; returns false when the
//  item says nothing op can be answered with
typedef bool (s_listed_fn) (pl_lane_t *self, pl_lane_key_t *key, pl_lane_op_t *op,
                            const msgpack_object *item);

//  A repeat named by 'duplicates' ({index, seq, ts}): answered as one
static bool
s_listed_duplicate (pl_lane_t *self, pl_lane_key_t *key, pl_lane_op_t *op,
                    const msgpack_object *item)
{
    if (!op->nonce)
        return false;
    s_reply_duplicate (self, key, op, (uint64_t) pl_body_int (item, "seq"),
                       pl_body_int (item, "ts"));
    return true;
}

//  An element named by 'refused' ({index, code}): the class answers it
static bool
s_listed_refusal (pl_lane_t *self, pl_lane_key_t *key, pl_lane_op_t *op,
                  const msgpack_object *item)
{
    char code [64];
    pl_body_copy (item, "code", code, sizeof code);
    if (!*code)
        return false;
    if (self->cls->refused)
        self->cls->refused (self->plugin, key, op, code);
    else
        pl_lane_failure (self, key, op, "internal", code);
    return true;
}

//  Answers the requests of the run (of writing) that a list of a write's
//  answer names by index, each with answer. Returns how many it answered.
static size_t
s_answer_listed (pl_lane_t *self, pl_lane_key_t *key, size_t writing,
                 const msgpack_object *list, s_listed_fn *answer)
{
    size_t answered = 0;
    for (uint32_t item = 0; list && item < list->via.array.size; item++) {
        const msgpack_object *listed = &list->via.array.ptr [item];
        pl_lane_op_t *op = s_run_op (key, writing, pl_body_int (listed, "index"));
        if (op && answer (self, key, op, listed))
            answered++;
    }
    return answered;
}

//  The array field name of an ok answer, when it has elements; else NULL
static const msgpack_object *
s_run_list (const msgpack_object *body, const char *name)
{
    const msgpack_object *list = pl_body_field (body, name);
    return list && list->type == MSGPACK_OBJECT_ARRAY && list->via.array.size? list: NULL;
}

//  A write answered ok with 'duplicates' or 'refused' stored nothing: the
//  requests of the run they name are answered (repeats; the class's
//  refusals); the others stay at the head, to go again numbered anew.
//  Returns false when the answer names none (an ordinary ok).
static bool
s_not_appended (pl_lane_t *self, pl_lane_key_t *key, size_t writing, const msgpack_object *body)
{
    const msgpack_object *duplicates = s_run_list (body, "duplicates");
    const msgpack_object *refused = s_run_list (body, "refused");
    if (!duplicates && !refused)
        return false;
    size_t answered = s_answer_listed (self, key, writing, duplicates, s_listed_duplicate)
                    + s_answer_listed (self, key, writing, refused, s_listed_refusal);
    //  A list that names no request of the run would send it again for ever
    size_t count = answered? 0: writing;
    for (pl_lane_op_t *op = key->head; op && count; op = op->next, count--)
        if (op->request)
            pl_lane_failure (self, key, op, "internal", "the store's duplicates or refusals"
                             " name no request of the run");
    self->host->log (self->ctx, PARLEY_LOG_DEBUG, "%zu element(s) of a run of '%s' not"
                     " appended (repeats, refusals)", answered, key->entry.name);
    s_remove_answered (self, key, writing);
    return true;
}

//  Hands the answer to each op of a write, in order, and pops each. An
//  answer that leaves its op unanswered (a write of one that goes on) or
//  makes a call of its own ends the run's answers: the op goes on alone.
static void
s_write_answered (pl_lane_t *self, pl_lane_key_t *key, pl_lane_answer_fn *answer,
                  size_t writing, const char *code, const char *message,
                  const msgpack_object *body)
{
    if (code && strcmp (code, "unavailable") == 0)
        pl_lane_forget (self, key);       //  the write may have happened
    if (!code && s_not_appended (self, key, writing, body))
        return;
    while (writing-- && key->head) {
        pl_lane_op_t *op = key->head;
        answer (self->plugin, key, op, code, message, body);
        if (key->busy || op->request)
            return;
        s_pop (self, key);
    }
}

//  The store answered a key's call (pl_call's handler; arg is the key):
//  hands it to its answer, then serves the queue on
static void
s_answered (void *state, void *arg, const pl_call_reply_t *reply)
{
    (void) state;
    pl_lane_key_t *key = (pl_lane_key_t *) arg;
    pl_lane_t *self = key->lane;
    assert (key->busy);
    const char *code = reply->code;
    const char *message = reply->message;
    if (!code && !reply->body)
        code = "internal", message = "the store's answer is not a map";
    pl_lane_answer_fn *answer = key->answer;
    size_t writing = key->writing;
    key->busy = false;
    key->writing = 0;
    key->touched = pl_time_mono ();
    //  The service of the ops of its kind: the store call's time, shared by
    //  the ops of a run (what the lane does itself is not worth counting)
    uint64_t served = writing? writing: 1;
    pl_service_add_batch (&self->service, key->touched - key->call_sent, served);
    pl_service_add_batch (&self->services [key->call_kind], key->touched - key->call_sent,
                          served);
    pl_service_add (&self->call_times [key->call_kind], key->touched - key->call_sent);
    //  pl_lane_failure tells its callers so while the answer is handed over;
    //  a read whose answer was lost did nothing all the same
    key->unknown = code && reply->outcome_unknown && !key->reading;
    key->reading = false;
    key->retry_ms = code? reply->retry_ms: 0;
    if (!key->head)
        ;
    else
    if (writing && code && strcmp (code, "conflict") == 0)
        s_conflict (self, key, writing, code, message);
    else
    if (writing)
        s_write_answered (self, key, answer, writing, code, message, reply->body);
    else {
        pl_lane_op_t *op = key->head;
        answer (self->plugin, key, op, code, message, reply->body);
        if (key->head == op && !op->request && !key->busy)
            s_pop (self, key);
    }
    key->unknown = false;
    key->retry_ms = 0;
    s_kick (self, key);
}


//  --------------------------------------------------------------------------
//  Requests coming in

bool
pl_lane_refuse (pl_lane_intake_t *intake, const char *code, const char *format, ...)
{
    intake->code = code;
    va_list args;
    va_start (args, format);
    vsnprintf (intake->message, sizeof intake->message, format, args);
    va_end (args);
    return false;
}

//  A user's allowance: 0 when one more request may go now, else the
//  milliseconds until it may (retry_after_ms)
static int64_t
s_rate_wait (pl_lane_t *self, const char *user)
{
    if (self->rate <= 0)
        return 0;
    char *name = pl_text_lower_dup (user);
    if (!name)
        return 0;
    int64_t now = pl_time_mono ();
    s_entry_t **slot = s_table_slot (&self->allowances, name);
    s_allowance_t *allowance = (s_allowance_t *) *slot;
    if (!allowance && (allowance = (s_allowance_t *) calloc (1, sizeof *allowance))) {
        allowance->entry.name = name;
        name = NULL;
        allowance->bucket = pl_bucket_full (self->burst, now);
        s_table_put (&self->allowances, slot, &allowance->entry);
    }
    free (name);
    return allowance? pl_bucket_take (&allowance->bucket, self->rate, self->burst, now): 0;
}

//  Refuses a request the work queued for its key would not let be served
//  in the time it has left (measured service time). Returns true if so.
static bool
s_admit (pl_lane_t *self, pl_lane_key_t *key, const pl_lane_type_t *type,
         parley_request_t *request, pl_lane_intake_t *intake)
{
    //  What ops of its kind cost, once measured enough to judge by
    pl_service_t *service = &self->services [type - self->cls->types];
    if (service->samples < PL_LANE_ADMIT_SAMPLES)
        return false;
    pl_lane_op_t probe = { .request = request };
    int64_t retry_ms = pl_service_refuse (service, key->queued, 1, s_time_left (self, &probe));
    if (retry_ms == 0)
        return false;
    pl_service_refused (service, key->queued);
    pl_lane_refuse (intake, "unavailable", "The %s service has more work for '%.40s' than it"
                    " can do in time; try again shortly.", self->cls->service, key->entry.name);
    intake->retry_ms = retry_ms;
    return true;
}

//  A repeat of a write the key remembers is answered at once, before the
//  queue's bound and admission (PROTOCOL.md: a repeat is recognised before
//  any limit), as at the head (s_repeat). Returns true when request was
//  answered so.
static bool
s_intake_repeat (pl_lane_t *self, pl_lane_key_t *key, parley_request_t **request_p,
                 const char *user, pl_lane_intake_t *intake)
{
    //  A stand-in op that owns nothing: the request is answered through it
    pl_lane_op_t probe = { .request = *request_p, .user = (char *) user,
                           .nonce = intake->nonce };
    if (!s_repeat (self, key, &probe))
        return false;
    *request_p = NULL;
    return true;
}

//  A request the class's at_once may answer as it comes in: answered ahead
//  of the key's queue, its bound and admission (it waits for nothing),
//  through a stand-in op that owns nothing. Returns true when it was.
static bool
s_at_once (pl_lane_t *self, pl_lane_key_t *key, const pl_lane_type_t *type,
           parley_request_t **request_p, const char *user, pl_lane_intake_t *intake)
{
    pl_lane_op_t probe = { .request = *request_p, .user = (char *) user,
                           .args = intake->args, .start = type->start,
                           .kind = (size_t) (type - self->cls->types) };
    self->cls->at_once (self->plugin, key, &probe);
    if (probe.request)
        return false;               //  it waits its turn
    *request_p = NULL;
    key->touched = pl_time_mono ();
    return true;
}

//  Reads, checks and queues a request of type; sets intake's refusal
//  when it is refused. Takes the request when it is queued.
static void
s_intake (pl_lane_t *self, const pl_lane_type_t *type, parley_request_t **request_p,
          const char *user, const msgpack_object *map, pl_lane_intake_t *intake)
{
    if (!self->cls->read (self->plugin, type, user, map, intake))
        return;
    //  A repeat is recognised before any limit: a request with a nonce
    //  goes to its key's queue all the same, to be looked up at the head
    int64_t wait = type->rate_limited? s_rate_wait (self, user): 0;
    bool deferred = wait > 0 && intake->nonce && self->cls->look_up;
    if (wait > 0 && !deferred) {
        intake->retry_ms = wait;
        pl_lane_refuse (intake, "rate_limited", "%s", type->rate_limited);
        return;
    }
    pl_lane_key_t *key = pl_lane_key (self, intake->key, intake->args);
    if (key && s_intake_repeat (self, key, request_p, user, intake))
        return;
    if (key && intake->at_once && self->cls->at_once && !deferred
    &&  s_at_once (self, key, type, request_p, user, intake))
        return;
    pl_lane_op_t *op = key && !pl_lane_full (self, key)
                     ? s_op_new (user, deferred? s_deferred_start: type->start): NULL;
    if (op && deferred && !(op->denial = strdup (type->rate_limited)))
        s_op_destroy (self, &op);
    if (key && pl_lane_full (self, key)) {
        self->cls->busy (self->plugin, key, intake->args, intake);
        intake->retry_ms = s_retry_ms (self, key);
    }
    else
    if (op && s_admit (self, key, type, *request_p, intake))
        s_op_destroy (self, &op);   //  refused: it would not be served in time
    else
    if (!op)
        pl_lane_refuse (intake, "internal", "Out of memory; try again.");
    else {
        op->request = *request_p;
        *request_p = NULL;
        op->args = intake->args;
        op->bytes = intake->bytes;
        op->nonce = intake->nonce;
        op->retry_ms = deferred? wait: 0;
        intake->args = NULL;
        intake->nonce = NULL;
        s_enqueue (self, key, op);
    }
}

static const pl_lane_type_t *
s_type (pl_lane_t *self, const char *name)
{
    for (const pl_lane_type_t *type = self->cls->types; type->type; type++)
        if (strcmp (type->type, name) == 0)
            return type;
    return NULL;
}

int
pl_lane_request (pl_lane_t *self, parley_request_t **request_p)
{
    const parley_host_t *host = self->host;
    const char *name = host->request_type (*request_p);
    const pl_lane_type_t *type = s_type (self, name? name: "");
    if (!type)
        return -1;
    if (pl_time_mono () - self->swept >= PL_LANE_SWEEP_MS) {
        pl_lane_evict (self);
        self->swept = pl_time_mono ();
    }
    const char *user = host->request_user (*request_p);
    size_t size;
    const uint8_t *body = host->request_body (*request_p, &size);
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    pl_lane_intake_t intake = { .code = NULL };
    const msgpack_object *fields = NULL;
    if (!user)
        pl_lane_refuse (&intake, "unauthenticated", "Log in first.");
    else
    if (!(fields = pl_body_unpack (&unpacked, body, size)))
        pl_lane_refuse (&intake, "bad_request", "The request's fields are not a map.");
    else
        s_intake (self, type, request_p, user, fields, &intake);
    if (intake.code && intake.retry_ms > 0)
        pl_reply_error_retry (host, self->ctx, request_p, intake.code, intake.message,
                              intake.retry_ms);
    else
    if (intake.code)
        host->reply_error (self->ctx, request_p, intake.code, intake.message);
    if (intake.args)
        self->cls->args_destroy (&intake.args);
    free (intake.key);
    free (intake.nonce);
    msgpack_unpacked_destroy (&unpacked);
    return 0;
}


//  --------------------------------------------------------------------------
//  Housekeeping and accessors

static bool
s_key_idle (void *context, s_entry_t *entry)
{
    pl_lane_key_t *key = S_KEY (entry);
    s_sweep_t *sweep = (s_sweep_t *) context;
    return !key->head && !key->busy && sweep->now - key->touched >= sweep->idle_ms;
}

//  A bucket that has filled up again is as good as a new one
static bool
s_allowance_full (void *context, s_entry_t *entry)
{
    pl_lane_t *self = (pl_lane_t *) context;
    pl_bucket_t bucket = ((s_allowance_t *) entry)->bucket;
    int64_t refill_ms = self->rate > 0? (int64_t) (self->burst * 1000 / self->rate): 0;
    return pl_time_mono () - bucket.refilled >= refill_ms;
}

void
pl_lane_evict (pl_lane_t *self)
{
    s_sweep_t sweep = { self, pl_time_mono (), self->idle_ms };
    s_table_sweep (&self->keys, &sweep, s_key_idle, s_key_sweep_destroy);
    s_table_sweep (&self->allowances, self, s_allowance_full, s_free_entry);
}

const char *
pl_lane_name (pl_lane_key_t *key)
{
    return key->entry.name;
}

void *
pl_lane_state (pl_lane_key_t *key)
{
    return key->state;
}

uint64_t
pl_lane_last_seq (pl_lane_key_t *key)
{
    return key->last_seq;
}

void
pl_lane_stored (pl_lane_key_t *key, pl_lane_op_t *op)
{
    key->last_seq = op->seq;
    if (op->nonce)
        pl_nonce_put (key->nonces, op->user, op->nonce, op->seq, op->ts);
}

size_t
pl_lane_size (pl_lane_t *self)
{
    return self->keys.size;
}

bool
pl_lane_is_loaded (pl_lane_key_t *key)
{
    return key->loaded;
}


//  --------------------------------------------------------------------------
//  A page of a timeline

//  A seq cursor field into *seq_p (-1 when absent)
static bool
s_page_seq (const msgpack_object *map, const char *name, int64_t *seq_p,
            pl_lane_intake_t *intake)
{
    uint64_t value = 0;
    int found = pl_body_uint (map, name, &value);
    if (found < 0 || value > INT64_MAX)
        return pl_lane_refuse (intake, "bad_request",
                               "The field '%s' must be a seq (a whole number).", name);
    *seq_p = found == 1? (int64_t) value: -1;
    return true;
}

bool
pl_lane_page_read (const msgpack_object *map, uint32_t fallback, uint32_t max,
                   pl_lane_page_t *page, pl_lane_intake_t *intake)
{
    uint64_t value = fallback;
    int found = pl_body_uint (map, "limit", &value);
    if (found < 0 || value < 1 || value > max)
        return pl_lane_refuse (intake, "bad_request",
                               "The field 'limit' must be a whole number from 1 to %u.", max);
    page->limit = (uint32_t) value;
    if (!s_page_seq (map, "before", &page->before, intake)
    ||  !s_page_seq (map, "after", &page->after, intake))
        return false;
    if (page->before >= 0 && page->after >= 0)
        return pl_lane_refuse (intake, "bad_request", "Give 'before' or 'after', not both.");
    return true;
}

uint32_t
pl_lane_page_fields (const pl_lane_page_t *page)
{
    return 1 + (page->before >= 0) + (page->after >= 0);
}

void
pl_lane_page_pack (pl_pack_t *pack, const pl_lane_page_t *page)
{
    pl_pack_kuint (pack, "limit", page->limit);
    if (page->before >= 0)
        pl_pack_kint (pack, "before", page->before);
    if (page->after >= 0)
        pl_pack_kint (pack, "after", page->after);
}

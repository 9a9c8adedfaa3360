/*  =========================================================================
    pl_lane - a per-key serial lane (see pl_lane.h)

    Map of the state: a table of keys (chained hash on the key's name); each
    key holds the plugin's state, its last stored seq and a singly linked
    queue of ops. A key has at most one store call out (busy), for its head
    op, with the answer handler and the run's length (writing) it was sent
    with. Nothing grows without a bound: the queue stops at queue_max and
    idle keys leave (pl_lane_evict).
    =========================================================================
*/

#include "pl_lane.h"
#include "pl_time.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct _pl_lane_key_t {
    int cookie;                     //  PL_LANE_COOKIE: the key is its calls' cookie
    char *name;                     //  the table's key, owned
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
    pl_lane_key_t *chain;           //  next key in the same bucket
};

struct _pl_lane_t {
    parley_ctx_t *ctx;              //  the host's handle
    const parley_host_t *host;      //  the host's function table
    const pl_lane_class_t *cls;     //  the plugin's callbacks, borrowed
    void *plugin;                   //  the plugin's state, borrowed
    size_t queue_max;               //  ops one key may queue
    pl_lane_key_t **buckets;        //  the table, owned
    size_t bucket_count;            //  a power of two
    size_t size;                    //  keys in the table
};

#define S_BUCKETS_MIN   64


//  --------------------------------------------------------------------------
//  The table of keys

static size_t
s_hash (const char *name)
{
    uint64_t hash = 14695981039346656037ULL;        //  FNV-1a
    for (const unsigned char *cursor = (const unsigned char *) name; *cursor; cursor++)
        hash = (hash ^ *cursor) * 1099511628211ULL;
    return (size_t) hash;
}

static pl_lane_key_t **
s_slot (pl_lane_t *self, const char *name)
{
    pl_lane_key_t **slot = &self->buckets [s_hash (name) & (self->bucket_count - 1)];
    while (*slot && strcmp ((*slot)->name, name) != 0)
        slot = &(*slot)->chain;
    return slot;
}

//  Doubles the table when it holds as many keys as buckets; a failed
//  allocation leaves it as it is (longer chains, still right)
static void
s_grow (pl_lane_t *self)
{
    if (self->size < self->bucket_count)
        return;
    size_t count = self->bucket_count * 2;
    pl_lane_key_t **buckets = (pl_lane_key_t **) calloc (count, sizeof (pl_lane_key_t *));
    if (!buckets)
        return;
    for (size_t index = 0; index < self->bucket_count; index++)
        while (self->buckets [index]) {
            pl_lane_key_t *key = self->buckets [index];
            self->buckets [index] = key->chain;
            size_t target = s_hash (key->name) & (count - 1);
            key->chain = buckets [target];
            buckets [target] = key;
        }
    free (self->buckets);
    self->buckets = buckets;
    self->bucket_count = count;
}

static void
s_op_destroy (pl_lane_t *self, pl_lane_op_t **op_p)
{
    pl_lane_op_t *op = *op_p;
    if (op) {
        if (op->args)
            self->cls->args_destroy (&op->args);
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
        free (key->name);
        free (key);
        *key_p = NULL;
    }
}

//  Takes the key out of the table and destroys it
static void
s_key_remove (pl_lane_t *self, pl_lane_key_t *key)
{
    pl_lane_key_t **slot = s_slot (self, key->name);
    assert (*slot == key);
    *slot = key->chain;
    self->size--;
    s_key_destroy (self, &key);
}


//  --------------------------------------------------------------------------
//  Lifecycle

pl_lane_t *
pl_lane_new (parley_ctx_t *ctx, const parley_host_t *host, const pl_lane_class_t *cls,
             void *plugin, size_t queue_max)
{
    assert (host && cls && cls->args_destroy);
    assert (cls->load && cls->failure && cls->unreachable);
    pl_lane_t *self = (pl_lane_t *) calloc (1, sizeof (pl_lane_t));
    if (self)
        self->buckets = (pl_lane_key_t **) calloc (S_BUCKETS_MIN, sizeof (pl_lane_key_t *));
    if (!self || !self->buckets) {
        free (self);
        return NULL;
    }
    self->ctx = ctx;
    self->host = host;
    self->cls = cls;
    self->plugin = plugin;
    self->queue_max = queue_max;
    self->bucket_count = S_BUCKETS_MIN;
    return self;
}

void
pl_lane_destroy (pl_lane_t **self_p)
{
    pl_lane_t *self = *self_p;
    if (self) {
        for (size_t index = 0; index < self->bucket_count; index++)
            while (self->buckets [index]) {
                pl_lane_key_t *key = self->buckets [index];
                self->buckets [index] = key->chain;
                s_key_destroy (self, &key);
            }
        free (self->buckets);
        free (self);
        *self_p = NULL;
    }
}

pl_lane_key_t *
pl_lane_key (pl_lane_t *self, const char *name, const void *args)
{
    pl_lane_key_t **slot = s_slot (self, name);
    if (*slot)
        return *slot;
    pl_lane_key_t *key = (pl_lane_key_t *) calloc (1, sizeof (pl_lane_key_t));
    if (key) {
        key->cookie = PL_LANE_COOKIE;
        key->name = strdup (name);
        if (key->name && self->cls->state_new)
            key->state = self->cls->state_new (self->plugin, name, args);
    }
    if (!key || !key->name || (self->cls->state_new && !key->state)) {
        s_key_destroy (self, &key);
        return NULL;
    }
    key->touched = pl_time_mono ();
    *slot = key;
    self->size++;
    s_grow (self);
    return key;
}

bool
pl_lane_full (pl_lane_t *self, pl_lane_key_t *key)
{
    return key->queued >= self->queue_max;
}


//  --------------------------------------------------------------------------
//  Serving the queue

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
        if (!op->request) {
            s_pop (self, key);
            continue;
        }
        op->start (self->plugin, key, op);
        if (key->head == op && op->request == NULL)
            s_pop (self, key);
    }
    if (!key->head && key->loaded && self->cls->keep && !self->cls->keep (self->plugin, key))
        s_key_remove (self, key);
}

int
pl_lane_submit (pl_lane_t *self, pl_lane_key_t *key, parley_request_t **request_p,
                pl_lane_action_fn *start, void *args, size_t bytes)
{
    pl_lane_op_t *op = (pl_lane_op_t *) calloc (1, sizeof (pl_lane_op_t));
    if (!op)
        return -1;
    op->request = *request_p;
    *request_p = NULL;
    op->args = args;
    op->bytes = bytes;
    op->start = start;
    if (key->tail)
        key->tail->next = op;
    else
        key->head = op;
    key->tail = op;
    key->queued++;
    key->touched = pl_time_mono ();
    s_kick (self, key);
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
    if (self->cls->forget)
        self->cls->forget (self->plugin, key);
}

void
pl_lane_fail_all (pl_lane_t *self, pl_lane_key_t *key, const char *code, const char *message)
{
    for (pl_lane_op_t *op = key->head; op; op = op->next)
        if (op->request)
            self->host->reply_error (self->ctx, &op->request, code, message);
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
    for (pl_lane_op_t *op = head; op && op->start == head->start && count < max_count;
         op = op->next) {
        if (op != head && joins && !joins (self->plugin, key, op))
            break;
        bytes += op->bytes;
        if (count && bytes > max_bytes)
            break;
        op->seq = key->last_seq + 1 + count;
        op->ts = now;
        count++;
    }
    return count;
}


//  --------------------------------------------------------------------------
//  Store calls and their answers

//  Sends the call; when it cannot go, answers the ops it was for
static int
s_send (pl_lane_t *self, pl_lane_key_t *key, const char *type, const void *body,
        size_t size, size_t writing, pl_lane_answer_fn *answer)
{
    assert (key->head && !key->busy);
    key->busy = true;
    key->answer = answer;
    key->writing = writing;
    if (self->host->call (self->ctx, type, body, size, key) == 0)
        return 0;
    key->busy = false;
    key->writing = 0;
    size_t count = writing? writing: 1;
    for (pl_lane_op_t *op = key->head; op && count; op = op->next, count--)
        if (op->request)
            self->host->reply_error (self->ctx, &op->request, "unavailable",
                                     self->cls->unreachable);
    return -1;
}

int
pl_lane_call (pl_lane_t *self, pl_lane_key_t *key, const char *type,
              const void *body, size_t size, pl_lane_answer_fn *answer)
{
    return s_send (self, key, type, body, size, 0, answer);
}

int
pl_lane_write (pl_lane_t *self, pl_lane_key_t *key, const char *type,
               const void *body, size_t size, size_t count, pl_lane_answer_fn *answer)
{
    return s_send (self, key, type, body, size, count? count: 1, answer);
}

//  A write's seq was taken: the store knows better. Reload, then send the
//  run once more; those of it tried once already (they come first) fail.
static void
s_conflict (pl_lane_t *self, pl_lane_key_t *key, size_t writing, const char *code,
            const char *message)
{
    self->host->log (self->ctx, PARLEY_LOG_WARNING, "seq %" PRIu64 " of '%s' is taken;"
                     " reloading it", key->head->seq, key->name);
    pl_lane_forget (self, key);
    while (writing && key->head && key->head->retried) {
        self->cls->failure (self->plugin, key, key->head, code, message, NULL, 0);
        s_pop (self, key);
        writing--;
    }
    for (pl_lane_op_t *op = key->head; writing && op; op = op->next, writing--)
        op->retried = true;
}

//  Hands the answer to each op of a write, in order, and pops each. An
//  answer that leaves its op unanswered (a write of one that goes on) or
//  makes a call of its own ends the run's answers: the op goes on alone.
static void
s_write_answered (pl_lane_t *self, pl_lane_key_t *key, pl_lane_answer_fn *answer,
                  size_t writing, const char *code, const char *message,
                  const msgpack_object *body, size_t size)
{
    if (code && strcmp (code, "unavailable") == 0)
        pl_lane_forget (self, key);       //  the write may have happened
    while (writing-- && key->head) {
        pl_lane_op_t *op = key->head;
        answer (self->plugin, key, op, code, message, body, size);
        if (key->busy || op->request)
            return;
        s_pop (self, key);
    }
}

void
pl_lane_answer (pl_lane_t *self, void *cookie, const char *code, const char *message,
                const msgpack_object *body, size_t size)
{
    pl_lane_key_t *key = (pl_lane_key_t *) cookie;
    assert (key && key->cookie == PL_LANE_COOKIE && key->busy);
    pl_lane_answer_fn *answer = key->answer;
    size_t writing = key->writing;
    key->busy = false;
    key->writing = 0;
    key->touched = pl_time_mono ();
    if (!key->head)
        ;
    else
    if (writing && code && strcmp (code, "conflict") == 0)
        s_conflict (self, key, writing, code, message);
    else
    if (writing)
        s_write_answered (self, key, answer, writing, code, message, body, size);
    else {
        pl_lane_op_t *op = key->head;
        answer (self->plugin, key, op, code, message, body, size);
        if (key->head == op && !op->request && !key->busy)
            s_pop (self, key);
    }
    s_kick (self, key);
}

void
pl_lane_evict (pl_lane_t *self, int64_t idle_ms)
{
    int64_t now = pl_time_mono ();
    for (size_t index = 0; index < self->bucket_count; index++) {
        pl_lane_key_t **slot = &self->buckets [index];
        while (*slot) {
            pl_lane_key_t *key = *slot;
            if (!key->head && !key->busy && now - key->touched >= idle_ms) {
                *slot = key->chain;
                self->size--;
                s_key_destroy (self, &key);
            }
            else
                slot = &key->chain;
        }
    }
}


//  --------------------------------------------------------------------------
//  Accessors

const char *
pl_lane_name (pl_lane_key_t *key)
{
    return key->name;
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
}

size_t
pl_lane_size (pl_lane_t *self)
{
    return self->size;
}

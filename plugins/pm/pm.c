/*  =========================================================================
    pm - private messages: pm.* (PROTOCOL.md, "Private messages")

    Sharded by the pair of users: the broker sends pm.send (pair of the
    stamped user and "to"), pm.history and pm.read (pair of the stamped user
    and "with") to the one instance that owns the pair (rendezvous hash of
    the sorted, lower-cased names), so that instance is the one place the
    conversation's seq is assigned. pm.conversations has no pair: any
    instance answers it from the store.

    Each conversation the instance has touched is cached with its last seq,
    loaded from the store (store.pm.last_seq) on first touch. Requests about
    a conversation go through its queue and are served one at a time; a
    pm.send holds the queue until the store has acknowledged the append,
    and only then is the message delivered to both users and the request
    answered. So seq N+1 is handed out only after N is stored: a failed
    write never leaves a gap. The sends waiting at the head of the queue,
    from either user, go to the store together, as one store.pm.append of
    their messages that is stored whole or not at all: a busy conversation
    stores a run of messages per round trip, not one. A write whose outcome
    is unknown (unavailable, a timeout) or refused for its seq (conflict)
    makes the conversation reload its last seq before the next write. This
    is rooms.c's design, applied to pairs of users.
    =========================================================================
*/

#include "parley_plugin.h"
#include "pl_body.h"
#include "pl_bucket.h"
#include "pl_reply.h"
#include "pl_text.h"
#include "pl_time.h"

#include <czmq.h>
#include <strings.h>
#include <inttypes.h>
#include <msgpack.h>

//  --------------------------------------------------------------------------
//  Limits and defaults (PROTOCOL.md, "Names, limits, times")

#define PM_TEXT_MAX             4000        //  characters
#define PM_HISTORY_DEFAULT      50
#define PM_HISTORY_MAX          200
#define PM_CONVERSATIONS_MAX    1000        //  the store's largest page
#define PM_QUEUE_MAX            10000       //  requests waiting for one conversation
#define PM_APPEND_MAX           256         //  messages in one store.pm.append (STORE.md)
#define PM_APPEND_BYTES         (512 * 1024)  //  text bytes in one store.pm.append
#define PM_USERS_CACHED_MAX     100000      //  names known to exist, cached
#define PM_TICK_MS              5000        //  the housekeeping timer
#define PM_IDLE_MS_DEFAULT      60000       //  an idle conversation leaves the cache
#define PM_RATE_DEFAULT         20.0        //  pm.send per user per second
#define PM_BURST_DEFAULT        40.0        //  pm.send burst per user
#define PM_NAME_MAX             260         //  bytes of a name read from the store


//  --------------------------------------------------------------------------
//  State

typedef enum { OP_SEND, OP_HISTORY, OP_READ } op_kind_t;

//  Which store answer the conversation's head op waits for
typedef enum {
    STAGE_NONE, STAGE_LOAD, STAGE_USER, STAGE_WRITE, STAGE_HISTORY
} stage_t;

typedef enum { COOKIE_CONV = 1, COOKIE_LIST } cookie_kind_t;

//  One client request about a conversation, waiting in its queue
typedef struct op_s op_t;
struct op_s {
    op_kind_t kind;                 //  what was asked
    parley_request_t *request;      //  lent by the host until we reply
    char *user;                     //  the stamped user, as registered
    char *other;                    //  "to" or "with", as the client wrote it
    char *text;                     //  send: the message
    int64_t before;                 //  history: seq cursor, -1 for none
    int64_t after;                  //  history: seq cursor, -1 for none
    uint32_t limit;                 //  history
    uint64_t seq;                   //  send: the seq being written; read: the marker
    int64_t ts;                     //  send: its time, wall-clock ms
    bool retried;                   //  resent once after a reload already
    op_t *next;                     //  next in the conversation's queue
};

//  A conversation this instance has touched
typedef struct {
    cookie_kind_t cookie;           //  COOKIE_CONV: the conversation is its calls' cookie
    char *key;                      //  "lower(a)\nlower(b)", a < b: the table's key
    bool loaded;                    //  last_seq comes from the store
    uint64_t last_seq;              //  the newest stored message's seq
    stage_t stage;                  //  the store answer the head op waits for
    size_t writing;                 //  sends at the head in the store write, when > 1
    op_t *head;                     //  queued requests, owned; head is being served
    op_t *tail;
    size_t queued;                  //  requests in the queue
    int64_t touched;                //  monotonic ms of the last request
} conv_t;

//  A pm.conversations in progress
typedef struct list_s list_t;
struct list_s {
    cookie_kind_t cookie;           //  COOKIE_LIST
    parley_request_t *request;      //  lent by the host until we reply
    list_t *prev;                   //  neighbours in pm_t.lists
    list_t *next;
};

//  A user's pm.send allowance

typedef struct {
    parley_ctx_t *ctx;              //  the host's handle
    const parley_host_t *host;      //  the host's function table
    zhashx_t *convs;                //  key -> conv_t *, owned
    zhashx_t *users;                //  lower-cased name -> name as registered, owned
    zhashx_t *buckets;              //  lower-cased user -> pl_bucket_t *, owned
    list_t *lists;                  //  pm.conversations in progress, owned
    double rate;                    //  pm.send per user per second; 0 turns limits off
    double burst;                   //  pm.send burst per user
    int64_t idle_ms;                //  idle conversations leave the cache after this
    int timer;                      //  the housekeeping timer
    uint64_t messages;              //  messages stored, for the log at exit
} pm_t;


//  --------------------------------------------------------------------------
//  Small helpers (body fields and text rules are proto/pl_body and pl_text)

//  The conversation's key: both names lower-cased, in order, joined by a
//  newline (names never hold one). Caller owns it; NULL when out of memory.
static char *
s_pair_key (const char *one, const char *two)
{
    char *first = pl_text_lower_dup (one);
    char *second = pl_text_lower_dup (two);
    char *key = NULL;
    if (first && second) {
        if (strcmp (first, second) > 0) {
            char *swap = first;
            first = second;
            second = swap;
        }
        size_t size = strlen (first) + strlen (second) + 2;
        key = (char *) malloc (size);
        if (key)
            snprintf (key, size, "%s\n%s", first, second);
    }
    free (first);
    free (second);
    return key;
}

//  Starts a store call's map with n fields and its first string field
static void
s_call_begin (msgpack_sbuffer *buffer, msgpack_packer *packer, size_t fields,
              const char *field, const char *value)
{
    msgpack_sbuffer_init (buffer);
    msgpack_packer_init (packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_map (packer, fields);
    pl_body_pack_str (packer, field);
    pl_body_pack_str (packer, value);
}


//  --------------------------------------------------------------------------
//  Users known to exist, with their names as registered: users are never
//  deleted, so a name seen once stays true; the cache is only bounded

static const char *
s_user_known (pm_t *self, const char *name)
{
    char *key = pl_text_lower_dup (name);
    const char *registered = key? (const char *) zhashx_lookup (self->users, key): NULL;
    free (key);
    return registered;
}

static void
s_user_remember (pm_t *self, const char *name)
{
    if (!*name)
        return;
    char *key = pl_text_lower_dup (name);
    char *copy = strdup (name);
    if (key && copy) {
        if (zhashx_size (self->users) >= PM_USERS_CACHED_MAX)
            zhashx_purge (self->users);
        zhashx_update (self->users, key, copy);
        copy = NULL;
    }
    free (key);
    free (copy);
}


//  --------------------------------------------------------------------------
//  Messages

//  Packs a message as clients see it: the "pm" event, or an entry of
//  pm.history and pm.conversations (without type)
static void
s_pack_message (msgpack_packer *packer, bool event, const char *from, const char *to,
                uint64_t seq, const char *text, int64_t ts)
{
    msgpack_pack_map (packer, event? 6: 5);
    if (event) {
        pl_body_pack_str (packer, "type");
        pl_body_pack_str (packer, "pm");
    }
    pl_body_pack_str (packer, "from");
    pl_body_pack_str (packer, from);
    pl_body_pack_str (packer, "to");
    pl_body_pack_str (packer, to);
    pl_body_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, seq);
    pl_body_pack_str (packer, "text");
    pl_body_pack_str (packer, text);
    pl_body_pack_str (packer, "ts");
    pl_body_pack_time (packer, ts);
}

//  Packs one of the store's pm entries as the client's message
static void
s_pack_store_message (msgpack_packer *packer, const msgpack_object *entry)
{
    char from [PM_NAME_MAX], to [PM_NAME_MAX];
    pl_body_copy (entry, "from", from, sizeof from);
    pl_body_copy (entry, "to", to, sizeof to);
    char *text = NULL;
    pl_body_str (entry, "text", &text);
    s_pack_message (packer, false, from, to, (uint64_t) pl_body_int (entry, "seq"),
                    text? text: "", pl_body_int (entry, "ts"));
    free (text);
}


//  JSON bytes of one store entry as the client will see it
static size_t
s_entry_json_size (msgpack_sbuffer *scratch, const msgpack_object *entry,
                   const msgpack_object *conversation)
{
    scratch->size = 0;
    msgpack_packer packer;
    msgpack_packer_init (&packer, scratch, msgpack_sbuffer_write);
    if (conversation) {
        char with [PM_NAME_MAX];
        pl_body_copy (conversation, "with", with, sizeof with);
        msgpack_pack_map (&packer, 3);
        pl_body_pack_str (&packer, "with");
        pl_body_pack_str (&packer, with);
        pl_body_pack_str (&packer, "last");
        s_pack_store_message (&packer, entry);
        pl_body_pack_str (&packer, "unread");
        msgpack_pack_uint64 (&packer, (uint64_t) pl_body_int (conversation, "unread"));
    }
    else
        s_pack_store_message (&packer, entry);
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    size_t offset = 0;
    size_t size = PL_REPLY_MAX;
    if (msgpack_unpack_next (&unpacked, scratch->data, scratch->size, &offset)
        == MSGPACK_UNPACK_SUCCESS)
        size = pl_reply_json_size (&unpacked.data);
    msgpack_unpacked_destroy (&unpacked);
    return size;
}

//  How many items of a store array fit the reply, counted from its start
//  (from_start) or from its end: the side next to the request's cursor.
//  entries_field names the message of an item ("last" of a conversation),
//  NULL when the item is the message.
static uint32_t
s_reply_fit (const msgpack_object *items, bool from_start, const char *entries_field)
{
    uint32_t count = items->via.array.size;
    msgpack_sbuffer scratch;
    msgpack_sbuffer_init (&scratch);
    pl_reply_budget_t budget = pl_reply_budget (PL_REPLY_LIST_BUDGET);
    uint32_t fit = 0;
    while (fit < count) {
        const msgpack_object *item = &items->via.array.ptr [from_start ? fit : count - 1 - fit];
        size_t size = entries_field
                    ? s_entry_json_size (&scratch, pl_body_field (item, entries_field), item)
                    : s_entry_json_size (&scratch, item, NULL);
        if (!pl_reply_budget_take (&budget, size))
            break;
        fit++;
    }
    msgpack_sbuffer_destroy (&scratch);
    return fit;
}


//  --------------------------------------------------------------------------
//  The conversation's queue

static void
s_op_destroy (op_t **self_p)
{
    op_t *self = *self_p;
    if (self) {
        free (self->user);
        free (self->other);
        free (self->text);
        free (self);
        *self_p = NULL;
    }
}

static void
s_conv_destroy (conv_t **self_p)
{
    conv_t *self = *self_p;
    if (self) {
        //  Requests still queued belong to the host after destroy
        op_t *op = self->head;
        while (op) {
            op_t *next = op->next;
            s_op_destroy (&op);
            op = next;
        }
        free (self->key);
        free (self);
        *self_p = NULL;
    }
}

static void
s_reply_error (pm_t *self, op_t *op, const char *code, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_reply_error (pm_t *self, op_t *op, const char *code, const char *format, ...)
{
    char message [512];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    self->host->reply_error (self->ctx, &op->request, code, message);
}

//  Takes the head op off the queue and destroys it (it has been answered)
static void
s_conv_pop (conv_t *conv)
{
    op_t *op = conv->head;
    if (!op)
        return;
    conv->head = op->next;
    if (!conv->head)
        conv->tail = NULL;
    conv->queued--;
    conv->stage = STAGE_NONE;
    s_op_destroy (&op);
}

//  Sends a store call for the conversation's head op (or for the sends at
//  the head, conv->writing of them). Returns 0, or -1 when nothing was sent
//  (those ops have been answered unavailable and popped).
static int
s_conv_call (pm_t *self, conv_t *conv, stage_t stage, const char *type,
             msgpack_sbuffer *buffer)
{
    conv->stage = stage;
    int rc = self->host->call (self->ctx, type, buffer->data, buffer->size, conv);
    msgpack_sbuffer_destroy (buffer);
    if (rc != 0) {
        conv->stage = STAGE_NONE;
        size_t count = conv->writing? conv->writing: 1;
        conv->writing = 0;
        while (count-- && conv->head) {
            s_reply_error (self, conv->head, "unavailable",
                           "The private message service could not reach its store; "
                           "try again later.");
            s_conv_pop (conv);
        }
    }
    return rc;
}

static void
s_no_such_user (pm_t *self, op_t *op)
{
    s_reply_error (self, op, "no_such_user", "There is no user named '%.40s'.", op->other);
}

static void
s_failure (pm_t *self, op_t *op, const char *code, const char *message)
{
    self->host->log (self->ctx, PARLEY_LOG_WARNING,
                     "store refused a request of '%s' about '%s': %s (%s)",
                     op->user, op->other, code, message? message: "");
    if (strcmp (code, "unavailable") == 0)
        s_reply_error (self, op, "unavailable",
                       "The private message service cannot reach its storage now; "
                       "try again later.");
    else
        s_reply_error (self, op, "internal", "The private message service failed; try again.");
}

//  Packs a send's seq, text and ts, as store.pm.append has them: in its own
//  fields for one message, in each element of 'messages' for a run
static void
s_pack_store_fields (msgpack_packer *packer, const op_t *op)
{
    pl_body_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, op->seq);
    pl_body_pack_str (packer, "text");
    pl_body_pack_str (packer, op->text);
    pl_body_pack_str (packer, "ts");
    msgpack_pack_int64 (packer, op->ts);
}

//  Starts serving the head op of a conversation whose last seq is loaded.
//  Either answers it at once (and pops it) or sends one store call.
static void
s_op_start (pm_t *self, conv_t *conv, op_t *op)
{
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    switch (op->kind) {
        case OP_SEND: {
            //  The sends queued behind this one, from either user, are
            //  stored with it: seqs last + 1 .. last + count
            //  A run also stays under PM_APPEND_BYTES of text, so that the
            //  request stays well under the envelope's frame limit
            size_t count = 0;
            size_t bytes = 0;
            for (op_t *next = op; next && next->kind == OP_SEND && count < PM_APPEND_MAX;
                 next = next->next) {
                bytes += strlen (next->text);
                if (count && bytes > PM_APPEND_BYTES)
                    break;
                next->seq = conv->last_seq + 1 + count;
                next->ts = pl_time_now ();
                count++;
            }
            s_call_begin (&buffer, &packer, count == 1? 5: 3, "from", op->user);
            pl_body_pack_str (&packer, "to");
            pl_body_pack_str (&packer, op->other);
            if (count == 1)
                s_pack_store_fields (&packer, op);
            else {
                pl_body_pack_str (&packer, "messages");
                msgpack_pack_array (&packer, (uint32_t) count);
                op_t *next = op;
                for (size_t index = 0; index < count; index++, next = next->next) {
                    msgpack_pack_map (&packer, 4);
                    pl_body_pack_str (&packer, "from");
                    pl_body_pack_str (&packer, next->user);
                    s_pack_store_fields (&packer, next);
                }
            }
            conv->writing = count;
            s_conv_call (self, conv, STAGE_WRITE, "store.pm.append", &buffer);
            return;
        }

        case OP_READ:
            //  A marker beyond the newest message would hide messages not
            //  sent yet: it stops at the last seq
            if (op->seq > conv->last_seq)
                op->seq = conv->last_seq;
            if (op->seq == 0) {
                //  No message yet: nothing to mark, nothing unread
                msgpack_sbuffer_init (&buffer);
                msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
                msgpack_pack_map (&packer, 1);
                pl_body_pack_str (&packer, "unread");
                msgpack_pack_uint64 (&packer, 0);
                self->host->reply (self->ctx, &op->request, buffer.data, buffer.size);
                msgpack_sbuffer_destroy (&buffer);
                s_conv_pop (conv);
                return;
            }
            s_call_begin (&buffer, &packer, 3, "user", op->user);
            pl_body_pack_str (&packer, "with");
            pl_body_pack_str (&packer, op->other);
            pl_body_pack_str (&packer, "seq");
            msgpack_pack_uint64 (&packer, op->seq);
            s_conv_call (self, conv, STAGE_WRITE, "store.pm.read", &buffer);
            return;

        case OP_HISTORY: {
            size_t fields = 3 + (op->before >= 0) + (op->after >= 0);
            s_call_begin (&buffer, &packer, fields, "user", op->user);
            pl_body_pack_str (&packer, "with");
            pl_body_pack_str (&packer, op->other);
            pl_body_pack_str (&packer, "limit");
            msgpack_pack_uint32 (&packer, op->limit);
            if (op->before >= 0) {
                pl_body_pack_str (&packer, "before");
                msgpack_pack_int64 (&packer, op->before);
            }
            if (op->after >= 0) {
                pl_body_pack_str (&packer, "after");
                msgpack_pack_int64 (&packer, op->after);
            }
            s_conv_call (self, conv, STAGE_HISTORY, "store.pm.history", &buffer);
            return;
        }
    }
}

//  Serves the conversation's queue until an op waits for the store or it
//  is empty
static void
s_conv_kick (pm_t *self, conv_t *conv)
{
    while (conv->head && conv->stage == STAGE_NONE) {
        op_t *op = conv->head;
        if (op->kind != OP_SEND && !s_user_known (self, op->other)) {
            //  History and markers need the other user to exist (a send
            //  learns it from the append); the answer gives the name as
            //  registered too
            msgpack_sbuffer buffer;
            msgpack_packer packer;
            s_call_begin (&buffer, &packer, 1, "name", op->other);
            s_conv_call (self, conv, STAGE_USER, "store.user.get", &buffer);
            continue;
        }
        if (!conv->loaded && op->kind != OP_HISTORY) {
            msgpack_sbuffer buffer;
            msgpack_packer packer;
            s_call_begin (&buffer, &packer, 2, "user", op->user);
            pl_body_pack_str (&packer, "with");
            pl_body_pack_str (&packer, op->other);
            s_conv_call (self, conv, STAGE_LOAD, "store.pm.last_seq", &buffer);
            continue;
        }
        s_op_start (self, conv, op);
    }
}

//  Answers every queued op with the error (the store could not load the
//  conversation)
static void
s_conv_fail_all (pm_t *self, conv_t *conv, const char *code, const char *message)
{
    while (conv->head) {
        self->host->reply_error (self->ctx, &conv->head->request, code, message);
        s_conv_pop (conv);
    }
}

//  The "pm" event to every session of both users, then the sender's ok.
//  The store's answer names the run's pair as registered, 'from' being the
//  sender of its first message: a send the other way swaps them.
static void
s_send_done (pm_t *self, conv_t *conv, op_t *op, const msgpack_object *body)
{
    char from [PM_NAME_MAX], to [PM_NAME_MAX];
    pl_body_copy (body, "from", from, sizeof from);
    pl_body_copy (body, "to", to, sizeof to);
    if (*from && *to && !pl_text_same_name (op->user, from)) {
        char swap [PM_NAME_MAX];
        memcpy (swap, from, sizeof swap);
        memcpy (from, to, sizeof from);
        memcpy (to, swap, sizeof to);
    }
    if (!*from)
        snprintf (from, sizeof from, "%s", op->user);
    if (!*to)
        snprintf (to, sizeof to, "%s", op->other);
    s_user_remember (self, to);
    conv->last_seq = op->seq;
    self->messages++;

    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    s_pack_message (&packer, true, from, to, op->seq, op->text, op->ts);
    const char *users [2] = { from, to };
    self->host->deliver_users (self->ctx, users, 2, buffer.data, buffer.size);
    msgpack_sbuffer_clear (&buffer);
    msgpack_pack_map (&packer, 2);
    pl_body_pack_str (&packer, "seq");
    msgpack_pack_uint64 (&packer, op->seq);
    pl_body_pack_str (&packer, "ts");
    pl_body_pack_time (&packer, op->ts);
    self->host->reply (self->ctx, &op->request, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
}

//  The ok of pm.read, and a "pm_read" event to the reader's sessions, so that
//  their other tabs and devices clear the conversation's badge too
static void
s_read_done (pm_t *self, op_t *op, const msgpack_object *body)
{
    const char *with = s_user_known (self, op->other);
    uint64_t unread = (uint64_t) pl_body_int (body, "unread");
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 4);
    pl_body_pack_str (&packer, "type");
    pl_body_pack_str (&packer, "pm_read");
    pl_body_pack_str (&packer, "with");
    pl_body_pack_str (&packer, with? with: op->other);
    pl_body_pack_str (&packer, "seq");
    msgpack_pack_uint64 (&packer, op->seq);
    pl_body_pack_str (&packer, "unread");
    msgpack_pack_uint64 (&packer, unread);
    const char *users [1] = { op->user };
    self->host->deliver_users (self->ctx, users, 1, buffer.data, buffer.size);
    msgpack_sbuffer_clear (&buffer);
    msgpack_pack_map (&packer, 1);
    pl_body_pack_str (&packer, "unread");
    msgpack_pack_uint64 (&packer, unread);
    self->host->reply (self->ctx, &op->request, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
}

//  The store answered the write of a send
static void
s_send_reply (pm_t *self, conv_t *conv, op_t *op, const char *code, const char *message,
              const msgpack_object *body)
{
    if (!code)
        s_send_done (self, conv, op, body);
    else
    if (strcmp (code, "not_found") == 0)
        s_no_such_user (self, op);
    else
        s_failure (self, op, code, message);
}

//  The store answered a call of the conversation's head op, or the write of
//  the sends at the head
static void
s_conv_reply (pm_t *self, conv_t *conv, const char *code, const char *message,
              const msgpack_object *body)
{
    stage_t stage = conv->stage;
    conv->stage = STAGE_NONE;
    op_t *op = conv->head;
    if (!op)
        return;

    if (stage == STAGE_LOAD) {
        const msgpack_object *last = pl_body_field (body, "last_seq");
        if (code || !last || last->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            self->host->log (self->ctx, PARLEY_LOG_WARNING,
                             "could not load the conversation of '%s' and '%s': %s",
                             op->user, op->other, code? code: "malformed answer");
            s_conv_fail_all (self, conv,
                             code && strcmp (code, "unavailable") == 0? "unavailable"
                                                                      : "internal",
                             "The private message service cannot reach its storage now; "
                             "try again later.");
        }
        else {
            conv->last_seq = last->via.u64;
            conv->loaded = true;
        }
        s_conv_kick (self, conv);
        return;
    }
    if (stage == STAGE_USER) {
        if (code && strcmp (code, "not_found") == 0)
            s_no_such_user (self, op);
        else
        if (code)
            s_failure (self, op, code, message);
        else {
            char name [PM_NAME_MAX];
            pl_body_copy (body, "name", name, sizeof name);
            s_user_remember (self, *name? name: op->other);
            s_conv_kick (self, conv);       //  the op goes on to its history
            return;
        }
        s_conv_pop (conv);
        s_conv_kick (self, conv);
        return;
    }

    size_t writing = conv->writing? conv->writing: 1;
    conv->writing = 0;
    switch (op->kind) {
        case OP_SEND:
            if (code && strcmp (code, "conflict") == 0) {
                //  Our seq was taken: the store knows better. Reload, then
                //  try once more. Those tried once already come first in
                //  the run.
                self->host->log (self->ctx, PARLEY_LOG_WARNING,
                                 "seq %" PRIu64 " of the conversation of '%s' and '%s' "
                                 "is taken; reloading it", op->seq, op->user, op->other);
                conv->loaded = false;
                while (writing && conv->head && conv->head->retried) {
                    s_failure (self, conv->head, code, message);
                    s_conv_pop (conv);
                    writing--;
                }
                for (op_t *next = conv->head; writing && next; next = next->next, writing--)
                    next->retried = true;
                s_conv_kick (self, conv);
                return;
            }
            if (code && strcmp (code, "unavailable") == 0)
                //  The write may have happened: learn the last seq again
                conv->loaded = false;
            while (writing-- && conv->head) {
                s_send_reply (self, conv, conv->head, code, message, body);
                s_conv_pop (conv);
            }
            s_conv_kick (self, conv);
            return;

        case OP_READ:
            if (!code)
                s_read_done (self, op, body);
            else
            if (strcmp (code, "not_found") == 0)
                s_no_such_user (self, op);
            else
                s_failure (self, op, code, message);
            break;

        case OP_HISTORY:
            if (code)
                s_failure (self, op, code, message);
            else {
                const msgpack_object *messages = pl_body_field (body, "messages");
                uint32_t count = messages && messages->type == MSGPACK_OBJECT_ARRAY
                               ? messages->via.array.size: 0;
                //  A page cut for its size keeps the entries next to its
                //  cursor: the oldest after 'after', else the newest
                bool forward = op->after >= 0;
                uint32_t fit = count? s_reply_fit (messages, forward, NULL): 0;
                bool more = pl_body_bool (body, "more") || fit < count;
                uint32_t first = forward? 0: count - fit;
                count = fit;
                msgpack_sbuffer buffer;
                msgpack_sbuffer_init (&buffer);
                msgpack_packer packer;
                msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
                msgpack_pack_map (&packer, 2);
                pl_body_pack_str (&packer, "messages");
                msgpack_pack_array (&packer, count);
                for (uint32_t index = first; index < first + count; index++)
                    s_pack_store_message (&packer, &messages->via.array.ptr [index]);
                pl_body_pack_str (&packer, "more");
                more? msgpack_pack_true (&packer): msgpack_pack_false (&packer);
                self->host->reply (self->ctx, &op->request, buffer.data, buffer.size);
                msgpack_sbuffer_destroy (&buffer);
            }
            break;
    }
    s_conv_pop (conv);
    s_conv_kick (self, conv);
}


//  --------------------------------------------------------------------------
//  pm.conversations: from the store, any instance

static void
s_list_request (pm_t *self, parley_request_t *request)
{
    list_t *list = (list_t *) calloc (1, sizeof (list_t));
    if (!list) {
        self->host->reply_error (self->ctx, &request, "internal", "Out of memory; try again.");
        return;
    }
    list->cookie = COOKIE_LIST;
    list->request = request;
    const char *user = self->host->request_user (request);
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    s_call_begin (&buffer, &packer, 2, "user", user? user: "");
    pl_body_pack_str (&packer, "limit");
    msgpack_pack_uint32 (&packer, PM_CONVERSATIONS_MAX);
    int rc = self->host->call (self->ctx, "store.pm.conversations", buffer.data, buffer.size,
                               list);
    msgpack_sbuffer_destroy (&buffer);
    if (rc != 0) {
        self->host->reply_error (self->ctx, &list->request, "unavailable",
                                 "The private message service cannot reach its storage now; "
                                 "try again later.");
        free (list);
        return;
    }
    list->next = self->lists;
    if (self->lists)
        self->lists->prev = list;
    self->lists = list;
}

static void
s_list_reply (pm_t *self, list_t *list, const char *code, const char *message,
              const msgpack_object *body)
{
    if (list->prev)
        list->prev->next = list->next;
    else
        self->lists = list->next;
    if (list->next)
        list->next->prev = list->prev;

    const msgpack_object *convs = pl_body_field (body, "conversations");
    if (code || !convs || convs->type != MSGPACK_OBJECT_ARRAY) {
        self->host->log (self->ctx, PARLEY_LOG_WARNING,
                         "could not list conversations: %s (%s)",
                         code? code: "malformed answer", message? message: "");
        self->host->reply_error (self->ctx, &list->request,
                                 code && strcmp (code, "unavailable") == 0? "unavailable"
                                                                          : "internal",
                                 "The private message service cannot reach its storage now; "
                                 "try again later.");
    }
    else {
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        //  The newest that fit; "more" says that older ones were left out
        uint32_t count = s_reply_fit (convs, true, "last");
        bool more = pl_body_bool (body, "more") || count < convs->via.array.size;
        msgpack_pack_map (&packer, 2);
        pl_body_pack_str (&packer, "conversations");
        msgpack_pack_array (&packer, count);
        for (uint32_t index = 0; index < count; index++) {
            const msgpack_object *conv = &convs->via.array.ptr [index];
            char with [PM_NAME_MAX];
            pl_body_copy (conv, "with", with, sizeof with);
            msgpack_pack_map (&packer, 3);
            pl_body_pack_str (&packer, "with");
            pl_body_pack_str (&packer, with);
            pl_body_pack_str (&packer, "last");
            s_pack_store_message (&packer, pl_body_field (conv, "last"));
            pl_body_pack_str (&packer, "unread");
            msgpack_pack_uint64 (&packer, (uint64_t) pl_body_int (conv, "unread"));
        }
        pl_body_pack_str (&packer, "more");
        more? msgpack_pack_true (&packer): msgpack_pack_false (&packer);
        self->host->reply (self->ctx, &list->request, buffer.data, buffer.size);
        msgpack_sbuffer_destroy (&buffer);
    }
    free (list);
}


//  --------------------------------------------------------------------------
//  Requests: shape and values first, then the conversation's queue

//  A user's allowance of sends (and invitations): 0 when one more may go
//  now, else the milliseconds until it may (retry_after_ms)
static int64_t
s_rate_wait (pm_t *self, const char *user)
{
    if (self->rate <= 0)
        return 0;
    char *key = pl_text_lower_dup (user);
    if (!key)
        return 0;
    int64_t now = pl_time_mono ();
    pl_bucket_t *bucket = (pl_bucket_t *) zhashx_lookup (self->buckets, key);
    if (!bucket) {
        bucket = (pl_bucket_t *) malloc (sizeof (pl_bucket_t));
        if (!bucket) {
            free (key);
            return 0;
        }
        *bucket = pl_bucket_full (self->burst, now);
        zhashx_insert (self->buckets, key, bucket);
    }
    free (key);
    return pl_bucket_take (bucket, self->rate, self->burst, now);
}

static void
s_on_request (void *state, parley_request_t *request)
{
    pm_t *self = (pm_t *) state;
    const parley_host_t *host = self->host;
    const char *type = host->request_type (request);
    const char *user = host->request_user (request);
    type = type? type: "";

    op_kind_t kind;
    if (strcmp (type, "pm.conversations") == 0) {
        if (!user)
            host->reply_error (self->ctx, &request, "unauthenticated", "Log in first.");
        else
            s_list_request (self, request);
        return;
    }
    else if (strcmp (type, "pm.send") == 0)      kind = OP_SEND;
    else if (strcmp (type, "pm.history") == 0)   kind = OP_HISTORY;
    else if (strcmp (type, "pm.read") == 0)      kind = OP_READ;
    else {
        char message [160];
        snprintf (message, sizeof message, "There is no request '%.64s'.", type);
        host->reply_error (self->ctx, &request, "unknown_type", message);
        return;
    }
    if (!user) {
        host->reply_error (self->ctx, &request, "unauthenticated", "Log in first.");
        return;
    }

    size_t body_size;
    const uint8_t *body = host->request_body (request, &body_size);
    msgpack_unpacked fields;
    msgpack_unpacked_init (&fields);
    size_t offset = 0;
    if (msgpack_unpack_next (&fields, (const char *) body, body_size, &offset)
            != MSGPACK_UNPACK_SUCCESS || fields.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy (&fields);
        host->reply_error (self->ctx, &request, "bad_request",
                           "The request's fields are not a map.");
        return;
    }
    const msgpack_object *map = &fields.data;
    const char *code = NULL;
    int64_t retry_ms = 0;           //  with rate_limited: when to try again
    char message [256] = "";
    const char *other_field = kind == OP_SEND? "to": "with";
    op_t *op = (op_t *) calloc (1, sizeof (op_t));
    if (!op || !(op->user = strdup (user))) {
        code = "internal";
        snprintf (message, sizeof message, "Out of memory; try again.");
        goto done;
    }
    op->kind = kind;
    op->before = -1;
    op->after = -1;
    op->limit = PM_HISTORY_DEFAULT;

    //  Shape: every field present and of its type
    if (pl_body_str (map, other_field, &op->other) != 1) {
        code = "bad_request";
        snprintf (message, sizeof message, "The field '%s' must be a string: a user's name.",
                  other_field);
        goto done;
    }
    if (kind == OP_SEND) {
        int found = pl_body_text (map, "text", &op->text);
        if (found == -2) {
            code = "invalid_text";
            snprintf (message, sizeof message, "A message cannot hold a NUL character.");
            goto done;
        }
        if (found != 1) {
            code = "bad_request";
            snprintf (message, sizeof message, "The field 'text' must be a string.");
            goto done;
        }
    }
    else
    if (kind == OP_READ) {
        if (pl_body_uint (map, "seq", &op->seq) != 1 || op->seq < 1 || op->seq > INT64_MAX) {
            code = "bad_request";
            snprintf (message, sizeof message,
                      "The field 'seq' must be a seq (a whole number from 1): "
                      "the newest message read.");
            goto done;
        }
    }
    else {
        uint64_t value;
        int found = pl_body_uint (map, "limit", &value);
        if (found < 0 || (found == 1 && (value < 1 || value > PM_HISTORY_MAX))) {
            code = "bad_request";
            snprintf (message, sizeof message,
                      "The field 'limit' must be a whole number from 1 to %d.", PM_HISTORY_MAX);
            goto done;
        }
        if (found == 1)
            op->limit = (uint32_t) value;
        found = pl_body_uint (map, "before", &value);
        if (found < 0 || (found == 1 && value > INT64_MAX)) {
            code = "bad_request";
            snprintf (message, sizeof message, "The field 'before' must be a seq (a whole number).");
            goto done;
        }
        if (found == 1)
            op->before = (int64_t) value;
        found = pl_body_uint (map, "after", &value);
        if (found < 0 || (found == 1 && value > INT64_MAX)) {
            code = "bad_request";
            snprintf (message, sizeof message, "The field 'after' must be a seq (a whole number).");
            goto done;
        }
        if (found == 1)
            op->after = (int64_t) value;
        if (op->before >= 0 && op->after >= 0) {
            code = "bad_request";
            snprintf (message, sizeof message, "Give 'before' or 'after', not both.");
            goto done;
        }
    }

    //  Values
    if (pl_text_same_name (op->other, user)) {
        code = "bad_request";
        snprintf (message, sizeof message, kind == OP_SEND
                  ? "You cannot send a private message to yourself."
                  : "There is no conversation with yourself.");
        goto done;
    }
    if (kind == OP_SEND) {
        size_t length = pl_text_utf8_length (op->text);
        if (length < 1 || length > PM_TEXT_MAX || !pl_text_has_content (op->text)) {
            code = "invalid_text";
            snprintf (message, sizeof message,
                      "A message is 1 to %d characters and not only white space.", PM_TEXT_MAX);
            goto done;
        }
    }
    if (!pl_text_username_valid (op->other)) {
        code = "no_such_user";
        snprintf (message, sizeof message, "There is no user named '%.40s'.", op->other);
        goto done;
    }
    if (kind == OP_SEND && (retry_ms = s_rate_wait (self, user)) > 0) {
        code = "rate_limited";
        snprintf (message, sizeof message,
                  "You are sending messages too fast; wait a moment and try again.");
        goto done;
    }

    //  Into the conversation's queue
    {
        char *key = s_pair_key (user, op->other);
        conv_t *conv = key? (conv_t *) zhashx_lookup (self->convs, key): NULL;
        if (key && !conv) {
            conv = (conv_t *) calloc (1, sizeof (conv_t));
            if (conv) {
                conv->cookie = COOKIE_CONV;
                conv->key = key;
                key = NULL;
                zhashx_insert (self->convs, conv->key, conv);
            }
        }
        free (key);
        if (!conv) {
            code = "internal";
            snprintf (message, sizeof message, "Out of memory; try again.");
            goto done;
        }
        if (conv->queued >= PM_QUEUE_MAX) {
            code = "unavailable";
            snprintf (message, sizeof message,
                      "The conversation with '%.40s' is too busy now; try again shortly.",
                      op->other);
            goto done;
        }
        op->request = request;
        request = NULL;
        if (conv->tail)
            conv->tail->next = op;
        else
            conv->head = op;
        conv->tail = op;
        conv->queued++;
        conv->touched = pl_time_mono ();
        op = NULL;
        s_conv_kick (self, conv);
    }

done:
    if (code && retry_ms > 0)
        pl_reply_error_retry (host, self->ctx, &request, code, message, retry_ms);
    else
    if (code)
        host->reply_error (self->ctx, &request, code, message);
    s_op_destroy (&op);
    msgpack_unpacked_destroy (&fields);
}

static void
s_on_reply (void *state, void *cookie, const char *code, const char *message,
            const uint8_t *body, size_t size)
{
    pm_t *self = (pm_t *) state;
    msgpack_unpacked answer;
    msgpack_unpacked_init (&answer);
    size_t offset = 0;
    const msgpack_object *map = NULL;
    if (body && size
    &&  msgpack_unpack_next (&answer, (const char *) body, size, &offset) == MSGPACK_UNPACK_SUCCESS
    &&  answer.data.type == MSGPACK_OBJECT_MAP)
        map = &answer.data;
    if (!code && !map)
        code = "internal", message = "the store's answer is not a map";

    if (*(cookie_kind_t *) cookie == COOKIE_LIST)
        s_list_reply (self, (list_t *) cookie, code, message, map);
    else
        s_conv_reply (self, (conv_t *) cookie, code, message, map);
    msgpack_unpacked_destroy (&answer);
}


//  --------------------------------------------------------------------------
//  Housekeeping: idle conversations leave the cache, so that one that moved
//  to another instance and back is loaded fresh

static void
s_tick (void *state)
{
    pm_t *self = (pm_t *) state;
    int64_t now = pl_time_mono ();
    zlistx_t *idle = zlistx_new ();
    if (!idle)
        return;
    for (conv_t *conv = (conv_t *) zhashx_first (self->convs); conv;
         conv = (conv_t *) zhashx_next (self->convs))
        if (!conv->head && conv->stage == STAGE_NONE && now - conv->touched >= self->idle_ms)
            zlistx_add_end (idle, conv->key);
    for (char *key = (char *) zlistx_first (idle); key; key = (char *) zlistx_next (idle))
        zhashx_delete (self->convs, key);
    zlistx_destroy (&idle);
}


//  --------------------------------------------------------------------------
//  Init and destroy

static double
s_option_number (parley_ctx_t *ctx, const parley_host_t *host, const char *name, double fallback)
{
    const char *value = host->option (ctx, name);
    if (!value)
        return fallback;
    char *end;
    double number = strtod (value, &end);
    if (end == value || *end || number < 0) {
        host->log (ctx, PARLEY_LOG_WARNING, "option %s=%s is not a number; using %g",
                   name, value, fallback);
        return fallback;
    }
    return number;
}

static void
s_conv_free (void **item_p)
{
    s_conv_destroy ((conv_t **) item_p);
}

static int
s_init (parley_ctx_t *ctx, const parley_host_t *host, void **state_p)
{
    pm_t *self = (pm_t *) calloc (1, sizeof (pm_t));
    if (!self) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        return -1;
    }
    self->ctx = ctx;
    self->host = host;
    self->convs = zhashx_new ();
    self->users = zhashx_new ();
    self->buckets = zhashx_new ();
    if (!self->convs || !self->users || !self->buckets) {
        zhashx_destroy (&self->convs);
        zhashx_destroy (&self->users);
        zhashx_destroy (&self->buckets);
        free (self);
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        return -1;
    }
    zhashx_set_destructor (self->convs, s_conv_free);
    zhashx_set_key_duplicator (self->convs, NULL);      //  the key lives in the conversation
    zhashx_set_key_destructor (self->convs, NULL);
    zhashx_set_destructor (self->users, (zhashx_destructor_fn *) zstr_free);
    zhashx_set_destructor (self->buckets, (zhashx_destructor_fn *) zstr_free);

    self->rate = s_option_number (ctx, host, "msg_rate", PM_RATE_DEFAULT);
    self->burst = s_option_number (ctx, host, "msg_burst", PM_BURST_DEFAULT);
    if (self->burst < 1)
        self->burst = 1;
    self->idle_ms = (int64_t) s_option_number (ctx, host, "idle_ms", PM_IDLE_MS_DEFAULT);
    self->timer = host->timer_add (ctx, PM_TICK_MS, s_tick);
    host->log (ctx, PARLEY_LOG_INFO, "ready: pm.send limited to %g a second (burst %g) per user",
               self->rate, self->burst);
    *state_p = self;
    return 0;
}

static void
s_destroy (void **state_p)
{
    pm_t *self = (pm_t *) *state_p;
    if (self) {
        self->host->log (self->ctx, PARLEY_LOG_INFO, "stopping after %" PRIu64 " messages",
                         self->messages);
        if (self->timer > 0)
            self->host->timer_cancel (self->ctx, self->timer);
        zhashx_destroy (&self->convs);
        zhashx_destroy (&self->users);
        zhashx_destroy (&self->buckets);
        //  Requests still held belong to the host after destroy
        while (self->lists) {
            list_t *next = self->lists->next;
            free (self->lists);
            self->lists = next;
        }
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  The descriptor. The broker shards a route by one field, and the pair's
//  other name is "to" in pm.send but "with" in pm.history and pm.read: so
//  one route per type (the longest prefix wins). Both fields hash the same
//  sorted pair, so one conversation lands on one instance whichever type
//  asks. "pm." catches other pm.* types, answered unknown_type here.

static const parley_route_t s_routes [] = {
    { .prefix = "pm.send", .flags = 0, .shard = PARLEY_SHARD_USER_PAIR, .shard_field = "to" },
    { .prefix = "pm.history", .flags = 0, .shard = PARLEY_SHARD_USER_PAIR,
      .shard_field = "with" },
    { .prefix = "pm.read", .flags = 0, .shard = PARLEY_SHARD_USER_PAIR, .shard_field = "with" },
    { .prefix = "pm.", .flags = 0, .shard = PARLEY_SHARD_NONE, .shard_field = NULL },
    { .prefix = NULL }
};

static const parley_plugin_t s_descriptor = {
    .abi_major = PARLEY_ABI_MAJOR,
    .abi_minor = PARLEY_ABI_MINOR,
    .size = sizeof (parley_plugin_t),
    .flags = 0,
    .name = "pm",
    .version = "1.0.0",
    .description = "private messages: pm.*, sharded by the pair of users",
    .routes = s_routes,
    .init = s_init,
    .destroy = s_destroy,
    .on_request = s_on_request,
    .on_reply = s_on_reply,
    .on_batch_end = NULL,
    .on_session = NULL
};

PARLEY_PLUGIN_DEFINE (s_descriptor)

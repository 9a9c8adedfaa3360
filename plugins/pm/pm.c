/*  =========================================================================
    pm - private messages: pm.* (PROTOCOL.md, "Private messages")

    Sharded by the pair of users: the broker sends pm.send (pair of the
    stamped user and "to"), pm.history and pm.read (pair of the stamped user
    and "with") to the one instance that owns the pair (rendezvous hash of
    the sorted, lower-cased names), so that instance is the one place the
    conversation's seq is assigned. pm.conversations has no pair: any
    instance answers it from the store.

    The conversations are keys of a lane (pl_lane): each one the instance
    has touched has its last seq, loaded from the store (store.pm.last_seq)
    on first need, and its requests are served one at a time. A pm.send
    takes the next seq and holds the conversation until the store has
    acknowledged the append; only then is the message delivered to both
    users and the request answered, so a failed write never leaves a gap.
    The sends waiting at the head, from either user, go to the store as one
    store.pm.append; a conflict or an unknown outcome reloads the seq.
    A send's nonce (PROTOCOL.md 1.1) goes with its message; a repeat is
    answered by the lane (its map, or the store's duplicates), and a send
    refused for its rate is looked up first (s_nonce_look_up).

    Each request type is a row of s_types: its fields, its checks before
    the queue, and its action on the lane.
    =========================================================================
*/

#include "parley_plugin.h"
#include "pl_body.h"
#include "pl_call.h"
#include "pl_entry.h"
#include "pl_change.h"
#include "pl_file.h"
#include "pl_lane.h"
#include "pl_limits.h"
#include "pl_nonce.h"
#include "pl_options.h"
#include "pl_pack.h"
#include "pl_reply.h"
#include "pl_service.h"
#include "pl_text.h"
#include "pl_throttle.h"
#include "pl_time.h"

#include <czmq.h>
#include <strings.h>
#include <inttypes.h>
#include <msgpack.h>

//  --------------------------------------------------------------------------
//  Defaults and bounds of this plugin (the protocol's limits are pl_limits.h)

#define PM_USERS_CACHED_MAX     100000      //  names known to exist, cached
#define PM_RATE_DEFAULT         20.0        //  pm.send per user per second
#define PM_BURST_DEFAULT        40.0        //  pm.send burst per user
#define PM_NAME_MAX             260         //  bytes of a name read from the store
#define PM_TYPING_MS_DEFAULT    2000        //  one typing per user and recipient this often


//  --------------------------------------------------------------------------
//  State

//  One client request's fields, read before it enters the conversation's
//  queue
typedef struct {
    char *other;                    //  "to" or "with", as the client wrote it
    char *text;                     //  send: the message; edit: its new text
    pl_lane_page_t page;            //  history
    uint64_t mark;                  //  read: the newest message read
    pl_change_t change;             //  send: its reply_to; edit, delete, react: the
                                    //  target and the reaction
} args_t;

//  A pm.conversations in progress
typedef struct list_s list_t;
struct list_s {
    parley_request_t *request;      //  lent by the host until we reply
    int64_t called;                 //  pl_time_mono when its store call went out
    list_t *prev;                   //  neighbours in pm_t.lists
    list_t *next;
};

typedef struct {
    parley_ctx_t *ctx;              //  the host's handle
    const parley_host_t *host;      //  the host's function table
    pl_call_t *calls;               //  every store call, owned
    pl_lane_t *lane;                //  the conversations, by pair key, owned
    pl_file_check_t *files;         //  sends with a file, looked up first (PROTOCOL.md
                                    //  1.1 "Files"), owned
    zhashx_t *users;                //  lower-cased name -> name as registered, owned
    list_t *lists;                  //  pm.conversations in progress, owned
    pl_service_t lists_time;        //  their store calls' measured time: the
                                    //  retry_after_ms of a failed one
    int64_t idle_ms;                //  idle conversations leave the cache after this
    uint64_t nonce_cache;           //  nonces each conversation remembers, for the lane
    uint64_t messages;              //  messages stored, for the log at exit
    pl_throttle_t *typing;          //  the typings relayed lately, owned
} pm_t;


//  --------------------------------------------------------------------------
//  Small helpers (body fields and text rules are proto/pl_body and pl_text)

//  The conversation's key: both names lower-cased, in order, joined by
//  " and " (names never hold a space). Caller owns it; NULL when out of
//  memory.
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
        size_t size = strlen (first) + strlen (second) + 6;
        key = (char *) malloc (size);
        if (key)
            snprintf (key, size, "%s and %s", first, second);
    }
    free (first);
    free (second);
    return key;
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



//  Packs one of the store's conversations as the client's: {with, last,
//  unread, read_seq, last_seq} (PROTOCOL.md 1.1)
static void
s_pack_conversation (msgpack_packer *packer, const msgpack_object *conversation)
{
    char with [PM_NAME_MAX];
    pl_body_copy (conversation, "with", with, sizeof with);
    msgpack_pack_map (packer, 5);
    pl_body_pack_str (packer, "with");
    pl_body_pack_str (packer, with);
    pl_body_pack_str (packer, "last");
    pl_entry_pack_pm (packer, pl_body_field (conversation, "last"));
    const char *counts [] = { "unread", "read_seq", "last_seq" };
    for (size_t index = 0; index < sizeof counts / sizeof counts [0]; index++) {
        int64_t value = pl_body_int (conversation, counts [index]);
        pl_body_pack_str (packer, counts [index]);
        msgpack_pack_uint64 (packer, value > 0? (uint64_t) value: 0);
    }
}

//  JSON bytes of one store entry as the client will see it
static size_t
s_entry_json_size (msgpack_sbuffer *scratch, const msgpack_object *entry,
                   const msgpack_object *conversation)
{
    scratch->size = 0;
    msgpack_packer packer;
    msgpack_packer_init (&packer, scratch, msgpack_sbuffer_write);
    if (conversation)
        s_pack_conversation (&packer, conversation);
    else
        pl_entry_pack_pm (&packer, entry);
    size_t size = pl_reply_json_size_packed (scratch->data, scratch->size);
    return size == SIZE_MAX ? PL_REPLY_MAX : size;
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


//  Starts a store call's map with n fields: user (op's) and with (the other)
static void
s_call_pair (pl_pack_t *pack, uint32_t fields, const pl_lane_op_t *op)
{
    pl_pack_start (pack, fields, "user", op->user);
    pl_pack_kstr (pack, "with", ((const args_t *) op->args)->other);
}

static void
s_args_destroy (void **args_p)
{
    args_t *args = (args_t *) *args_p;
    if (args) {
        free (args->other);
        free (args->text);
        free (args);
        *args_p = NULL;
    }
}

static void
s_no_such_user (pm_t *self, pl_lane_op_t *op)
{
    pl_lane_error (self->lane, op, "no_such_user", "There is no user named '%.40s'.",
                   ((const args_t *) op->args)->other);
}

//  The store answered an ok, or not_found for the other user
static void
s_answer_or_no_user (pm_t *self, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                     const char *message)
{
    if (strcmp (code, "not_found") == 0)
        s_no_such_user (self, op);
    else
        pl_lane_failure (self->lane, key, op, code, message);
}


//  --------------------------------------------------------------------------
//  Loading a conversation: its last seq

static void
s_conv_loaded (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
               const char *message, const msgpack_object *body)
{
    (void) message;
    pm_t *self = (pm_t *) plugin;
    (void) op;
    const msgpack_object *last = pl_body_field (body, "last_seq");
    if (code || !last || last->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        pl_lane_fail_all (self->lane, key, code);
    else
        pl_lane_loaded (self->lane, key, last->via.u64);
}

//  The lane's class load
static void
s_conv_load (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    pl_pack_t pack;
    s_call_pair (&pack, 2, op);
    pl_lane_call (((pm_t *) plugin)->lane, key, "store.pm.last_seq", &pack, s_conv_loaded);
}

static void
s_user_answer (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
               const char *message, const msgpack_object *body)
{
    pm_t *self = (pm_t *) plugin;
    if (code)
        s_answer_or_no_user (self, key, op, code, message);
    else {
        //  The op runs again, the name known now
        char name [PM_NAME_MAX];
        pl_body_copy (body, "name", name, sizeof name);
        s_user_remember (self, *name? name: ((const args_t *) op->args)->other);
    }
}

//  For the actions that need the other user to exist (history, markers; a
//  send learns it from the append): true when known; else asks the store
//  (the answer gives the name as registered too) and returns false
static bool
s_user_ready (pm_t *self, pl_lane_key_t *key, pl_lane_op_t *op)
{
    const args_t *args = (const args_t *) op->args;
    if (s_user_known (self, args->other))
        return true;
    pl_pack_t pack;
    pl_pack_start (&pack, 1, "name", args->other);
    pl_lane_read (self->lane, key, "store.user.get", &pack, s_user_answer);
    return false;
}


//  The "pm" event (or the change's entry) to every session of both users,
//  then the sender's ok.
//  The store's answer names the run's pair as registered, 'from' being the
//  sender of its first message: a send the other way swaps them.
static void
s_send_done (pm_t *self, pl_lane_key_t *key, pl_lane_op_t *op, const msgpack_object *body)
{
    const args_t *args = (const args_t *) op->args;
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
        snprintf (to, sizeof to, "%s", args->other);
    s_user_remember (self, to);
    pl_lane_stored (key, op);
    bool sent = args->change.kind == PL_CHANGE_MESSAGE;
    self->messages += sent;

    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    if (sent)
        pl_entry_pack_pm_message (&packer, true, from, to, op->seq, args->text, op->ts, op->nonce,
                        &args->change, NULL);
    else
        pl_entry_pack_pm_change (&packer, from, to, op->seq, args->text, op->ts, &args->change);
    const char *users [2] = { from, to };
    self->host->deliver_users (self->ctx, users, 2, buffer.data, buffer.size);
    msgpack_sbuffer_clear (&buffer);
    msgpack_pack_map (&packer, 2);
    pl_body_pack_str (&packer, "seq");
    msgpack_pack_uint64 (&packer, op->seq);
    pl_body_pack_str (&packer, "ts");
    pl_body_pack_time (&packer, op->ts);
    pl_lane_ok (self->lane, op, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
}

//  The ok of pm.read {unread, read_seq}, and a "read" event to the reader's
//  sessions, {"type": "read", "with", "seq"} (PROTOCOL.md 1.1), so that
//  their other tabs and devices clear the conversation's badge too
static void
s_read_done (pm_t *self, pl_lane_op_t *op, const msgpack_object *body)
{
    const args_t *args = (const args_t *) op->args;
    const char *with = s_user_known (self, args->other);
    uint64_t unread = (uint64_t) pl_body_int (body, "unread");
    int64_t marker = pl_body_int (body, "read_seq");
    uint64_t read_seq = marker > 0? (uint64_t) marker: 0;
    pl_pack_t pack;
    pl_pack_start (&pack, 3, "type", "read");
    pl_pack_kstr (&pack, "with", with? with: args->other);
    pl_pack_kuint (&pack, "seq", read_seq);
    pl_pack_deliver_user (&pack, self->host, self->ctx, op->user);
    pl_pack_clear (&pack);
    pl_pack_map (&pack, 2);
    pl_pack_kuint (&pack, "unread", unread);
    pl_pack_kuint (&pack, "read_seq", read_seq);
    pl_lane_ok (self->lane, op, pack.buffer.data, pack.buffer.size);
    pl_pack_release (&pack);
}

//  --------------------------------------------------------------------------
//  pm.send: the sends at the head of the conversation, one store.pm.append

//  The fields s_pack_store_fields packs for op
static uint32_t
s_store_fields (const pl_lane_op_t *op)
{
    const pl_change_t *change = &((const args_t *) op->args)->change;
    bool message = change->kind == PL_CHANGE_MESSAGE;
    return 2 + (message || change->kind == PL_CHANGE_EDIT) + (op->nonce != NULL) + !message
         + pl_change_fields (change);
}

//  Packs a send's seq, text and ts, as store.pm.append has them: in its own
//  fields for one message, in each element of 'messages' for a run; a
//  change's kind and fields (a deletion and a reaction have no text)
static void
s_pack_store_fields (msgpack_packer *packer, const pl_lane_op_t *op)
{
    const args_t *args = (const args_t *) op->args;
    pl_body_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, op->seq);
    if (args->text) {
        pl_body_pack_str (packer, "text");
        pl_body_pack_str (packer, args->text);
    }
    pl_body_pack_str (packer, "ts");
    msgpack_pack_int64 (packer, op->ts);
    if (op->nonce) {
        pl_body_pack_str (packer, "nonce");
        pl_body_pack_str (packer, op->nonce);
    }
    if (args->change.kind != PL_CHANGE_MESSAGE) {
        pl_body_pack_str (packer, "kind");
        pl_body_pack_str (packer, pl_change_kind_name (args->change.kind));
    }
    pl_change_pack (&args->change, packer);
}

//  The store answered the run's write, for one send of it; not_found: one
//  of the users does not exist
static void
s_send_written (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                const char *message, const msgpack_object *body)
{
    if (code)
        s_answer_or_no_user ((pm_t *) plugin, key, op, code, message);
    else
        s_send_done ((pm_t *) plugin, key, op, body);
}

//  The lane's class refused: the store refused op, an element of a run (a
//  reply to, or a change of, a message that is not there; a change by the
//  other party; a reaction that changes nothing)
static void
s_change_refused (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code)
{
    pm_t *self = (pm_t *) plugin;
    const args_t *args = (const args_t *) op->args;
    const char *with = s_user_known (self, args->other);
    char where [PM_NAME_MAX + 32];
    snprintf (where, sizeof where, "your conversation with '%s'", with? with: args->other);
    pl_change_refused (self->lane, key, op, &args->change, code, where, "its author");
}

//  The lane's class look_up: is op's nonce stored in the conversation?
static void
s_nonce_look_up (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    pm_t *self = (pm_t *) plugin;
    pl_pack_t pack;
    pl_pack_start (&pack, 3, "from", op->user);
    pl_pack_kstr (&pack, "to", ((const args_t *) op->args)->other);
    pl_pack_kstr (&pack, "nonce", op->nonce);
    pl_lane_read (self->lane, key, "store.pm.nonce", &pack, pl_lane_looked_up);
}

static void
s_send_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    pm_t *self = (pm_t *) plugin;
    const args_t *args = (const args_t *) op->args;
    if (!pl_lane_ready (self->lane, key))
        return;
    //  The sends queued behind this one, from either user, are stored with
    //  it; a run stays under PL_LANE_RUN_BYTES of text (the envelope's limit)
    size_t count = pl_lane_run (self->lane, key, PL_STORE_APPEND_MAX, PL_LANE_RUN_BYTES, NULL);
    pl_pack_t pack;
    pl_pack_start (&pack, count == 1? 2 + s_store_fields (op): 3, "from", op->user);
    pl_pack_kstr (&pack, "to", args->other);
    if (count == 1)
        s_pack_store_fields (&pack.packer, op);
    else {
        pl_body_pack_str (&pack.packer, "messages");
        msgpack_pack_array (&pack.packer, (uint32_t) count);
        pl_lane_op_t *next = op;
        for (size_t index = 0; index < count; index++, next = next->next) {
            msgpack_pack_map (&pack.packer, 1 + s_store_fields (next));
            pl_pack_kstr (&pack, "from", next->user);
            s_pack_store_fields (&pack.packer, next);
        }
    }
    pl_lane_write (self->lane, key, "store.pm.append", &pack, count, s_send_written);
}


//  --------------------------------------------------------------------------
//  pm.read: a read marker, at most the last seq

static void
s_read_answer (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
               const char *message, const msgpack_object *body)
{
    if (code)
        s_answer_or_no_user ((pm_t *) plugin, key, op, code, message);
    else
        s_read_done ((pm_t *) plugin, op, body);
}

static void
s_read_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    pm_t *self = (pm_t *) plugin;
    args_t *args = (args_t *) op->args;
    if (!s_user_ready (self, key, op) || !pl_lane_ready (self->lane, key))
        return;
    //  A marker beyond the newest message would hide messages not sent
    //  yet: it stops at the last seq
    if (args->mark > pl_lane_last_seq (key))
        args->mark = pl_lane_last_seq (key);
    pl_pack_t pack;
    if (args->mark == 0) {
        //  No message yet: nothing to mark, nothing unread
        pl_pack_init (&pack);
        pl_pack_map (&pack, 2);
        pl_pack_kuint (&pack, "unread", 0);
        pl_pack_kuint (&pack, "read_seq", 0);
        pl_lane_ok (self->lane, op, pack.buffer.data, pack.buffer.size);
        pl_pack_release (&pack);
        return;
    }
    s_call_pair (&pack, 3, op);
    pl_pack_kuint (&pack, "seq", args->mark);
    pl_lane_call (self->lane, key, "store.pm.read", &pack, s_read_answer);
}


//  --------------------------------------------------------------------------
//  pm.history

//  Answers pm.history: the store's page, cut further if the client's reply
//  would pass its limit; a cut page keeps the entries next to its cursor
//  (the oldest after 'after', else the newest)
static void
s_history_answer (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                  const char *message, const msgpack_object *body)
{
    pm_t *self = (pm_t *) plugin;
    if (code) {
        pl_lane_failure (self->lane, key, op, code, message);
        return;
    }
    const msgpack_object *messages = pl_body_field (body, "messages");
    uint32_t count = messages && messages->type == MSGPACK_OBJECT_ARRAY
                   ? messages->via.array.size: 0;
    bool forward = ((const args_t *) op->args)->page.after >= 0;
    uint32_t fit = count? s_reply_fit (messages, forward, NULL): 0;
    bool more = pl_body_bool (body, "more") || fit < count;
    uint32_t first = forward? 0: count - fit;
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 2);
    pl_pack_str (&pack, "messages");
    msgpack_pack_array (&pack.packer, fit);
    for (uint32_t index = first; index < first + fit; index++)
        pl_entry_pack_pm (&pack.packer, &messages->via.array.ptr [index]);
    pl_pack_kbool (&pack, "more", more);
    pl_lane_ok (self->lane, op, pack.buffer.data, pack.buffer.size);
    pl_pack_release (&pack);
}

static void
s_history_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    pm_t *self = (pm_t *) plugin;
    const args_t *args = (const args_t *) op->args;
    if (!s_user_ready (self, key, op))
        return;
    pl_pack_t pack;
    s_call_pair (&pack, 2 + pl_lane_page_fields (&args->page), op);
    pl_lane_page_pack (&pack, &args->page);
    pl_lane_read (self->lane, key, "store.pm.history", &pack, s_history_answer);
}


//  --------------------------------------------------------------------------
//  typing with a recipient (pm.typing: the gateway's name for it,
//  proto/ENVELOPE.md "Client types"): relayed to the recipient's sessions,
//  at most one per user and recipient every pm.typing_interval_ms (the
//  others answered ok); never stored. A recipient known to exist is
//  answered as it comes in (at_once), without waiting behind the
//  conversation's writes; else at its turn, once the store named it.

static void
s_typing_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    pm_t *self = (pm_t *) plugin;
    if (!s_user_ready (self, key, op))
        return;
    const char *to = s_user_known (self, ((const args_t *) op->args)->other);
    if (pl_throttle_pass (self->typing, op->user, to, pl_time_mono ())) {
        pl_pack_t pack;
        pl_pack_start (&pack, 3, "type", "typing");
        pl_pack_kstr (&pack, "user", op->user);
        pl_pack_kstr (&pack, "to", to);
        pl_pack_deliver_user (&pack, self->host, self->ctx, to);
        pl_pack_release (&pack);
    }
    pl_lane_ok (self->lane, op, NULL, 0);
}

//  The lane's class at_once (for typings only): a recipient known to exist
//  needs no store call
static void
s_typing_at_once (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    if (s_user_known ((pm_t *) plugin, ((const args_t *) op->args)->other))
        s_typing_start (plugin, key, op);
}

//  A typing names a user or a room (the rooms plugin's), never both; it
//  may be answered as it comes in
static bool
s_read_typing (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake)
{
    (void) args;
    if (pl_body_field (map, "room"))
        return pl_lane_refuse (intake, "bad_request",
                               "A typing names a 'room' or a user 'to', not both.");
    intake->at_once = true;
    return true;
}


//  --------------------------------------------------------------------------
//  pm.conversations: from the store, any instance

static void s_list_answered (void *state, void *arg, const pl_call_reply_t *reply);

//  Answers a pm.conversations whose store call failed with code (the
//  store's retry_after_ms told_ms, 0: none)
static void
s_list_failed (pm_t *self, list_t *list, const char *code, int64_t told_ms)
{
    pl_reply_store_failed (self->host, self->ctx, &list->request, code,
                           "The private message service cannot reach its storage now;"
                           " try again later.", told_ms, pl_service_ms (&self->lists_time));
}

static void
s_list_request (pm_t *self, parley_request_t *request)
{
    list_t *list = (list_t *) calloc (1, sizeof (list_t));
    if (!list) {
        self->host->reply_error (self->ctx, &request, "internal", "Out of memory; try again.");
        return;
    }
    list->request = request;
    const char *user = self->host->request_user (request);
    pl_pack_t pack;
    pl_pack_start (&pack, 2, "user", user? user: "");
    pl_pack_kuint (&pack, "limit", PL_STORE_LIST_MAX);
    list->called = pl_time_mono ();
    int rc = pl_call_send (self->calls, "store.pm.conversations", pack.buffer.data,
                           pack.buffer.size, s_list_answered, list);
    pl_pack_release (&pack);
    if (rc != 0) {
        s_list_failed (self, list, "unavailable", 0);
        free (list);
        return;
    }
    list->next = self->lists;
    if (self->lists)
        self->lists->prev = list;
    self->lists = list;
}

//  The store answered a pm.conversations (pl_call's handler; arg is the list)
static void
s_list_answered (void *state, void *arg, const pl_call_reply_t *reply)
{
    pm_t *self = (pm_t *) state;
    list_t *list = (list_t *) arg;
    const char *code = reply->code;
    const char *message = reply->message;
    const msgpack_object *body = reply->body;
    if (list->prev)
        list->prev->next = list->next;
    else
        self->lists = list->next;
    if (list->next)
        list->next->prev = list->prev;

    const msgpack_object *convs = pl_body_field (body, "conversations");
    pl_service_add (&self->lists_time, pl_time_mono () - list->called);
    if (code || !convs || convs->type != MSGPACK_OBJECT_ARRAY) {
        self->host->log (self->ctx, PARLEY_LOG_WARNING,
                         "could not list conversations: %s (%s)",
                         code? code: "malformed answer", message? message: "");
        s_list_failed (self, list, code, reply->retry_ms);
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
        for (uint32_t index = 0; index < count; index++)
            s_pack_conversation (&packer, &convs->via.array.ptr [index]);
        pl_body_pack_str (&packer, "more");
        more? msgpack_pack_true (&packer): msgpack_pack_false (&packer);
        self->host->reply (self->ctx, &list->request, buffer.data, buffer.size);
        msgpack_sbuffer_destroy (&buffer);
    }
    free (list);
}


//  --------------------------------------------------------------------------
//  Requests: each type's fields and checks, then the conversation's queue
//  (the lane's intake)

//  A send's and an edit's text
static bool
s_read_text (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake)
{
    int found = pl_body_text (map, "text", &args->text);
    if (found == -2)
        return pl_lane_refuse (intake, "invalid_text", "A message cannot hold a NUL character.");
    if (found != 1)
        return pl_lane_refuse (intake, "bad_request", "The field 'text' must be a string.");
    return true;
}

static bool
s_read_send (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake)
{
    if (pl_nonce_read (map, &intake->nonce) < 0)
        return pl_lane_refuse (intake, "bad_request", "The field 'nonce' must be 1 to %d"
                               " letters, digits, '_' or '-'.", PL_NONCE_MAX);
    //  With a file (PROTOCOL.md 1.1, "Files") the text may be left out
    if (args->change.file.id [0] && !pl_body_field (map, "text"))
        return (args->text = strdup ("")) != NULL
            || pl_lane_refuse (intake, "internal", "The server ran out of memory.");
    return s_read_text (args, map, intake);
}

static bool
s_read_read (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake)
{
    if (pl_body_uint (map, "seq", &args->mark) != 1 || args->mark < 1
    ||  args->mark > INT64_MAX)
        return pl_lane_refuse (intake, "bad_request", "The field 'seq' must be a seq (a whole"
                               " number from 1): the newest message read.");
    return true;
}

static bool
s_read_history (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake)
{
    return pl_lane_page_read (map, PL_HISTORY_DEFAULT, PL_HISTORY_MAX, &args->page, intake);
}

static bool
s_check_send (args_t *args, pl_lane_intake_t *intake)
{
    size_t length = pl_text_utf8_length (args->text);
    //  A message with a file may have no text (PROTOCOL.md 1.1, "Files")
    if (length == 0 && args->change.file.id [0])
        return true;
    if (length < 1 || length > PL_TEXT_MAX || !pl_text_has_content (args->text))
        return pl_lane_refuse (intake, "invalid_text", "A message is 1 to %d characters and"
                               " not only white space.", PL_TEXT_MAX);
    return true;
}

//  A request type's field that names the other user, how its fields are
//  read (their shape: first the timeline change's, pl_change, for a type
//  that makes one) and checked (their values)
typedef struct {
    const char *other;              //  "to" or "with"
    bool (*read) (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake);
    bool (*check) (args_t *args, pl_lane_intake_t *intake);
    bool changes;                   //  appends to the timeline: a change of kind
    pl_change_kind_t kind;
} fields_t;

static const fields_t s_send_fields = { .other = "to", .read = s_read_send,
    .check = s_check_send, .changes = true, .kind = PL_CHANGE_MESSAGE };
static const fields_t s_history_fields = { .other = "with", .read = s_read_history };
static const fields_t s_read_fields = { .other = "with", .read = s_read_read };
static const fields_t s_edit_fields = { .other = "with", .read = s_read_text,
    .check = s_check_send, .changes = true, .kind = PL_CHANGE_EDIT };
static const fields_t s_delete_fields = { .other = "with", .changes = true,
    .kind = PL_CHANGE_DELETE };
static const fields_t s_react_fields = { .other = "with", .changes = true,
    .kind = PL_CHANGE_REACTION };
static const fields_t s_typing_fields = { .other = "to", .read = s_read_typing };

//  The request types about one conversation. Timeline changes are appended
//  as sends are, in the same runs, and count against the same rate
//  (PROTOCOL.md 1.1).
static const pl_lane_type_t s_types [] = {
    { "pm.send",    s_send_start,
      "You are sending messages too fast; wait a moment and try again.", &s_send_fields },
    { "pm.edit",    s_send_start,
      "You are changing messages too fast; wait a moment and try again.", &s_edit_fields },
    { "pm.delete",  s_send_start,
      "You are changing messages too fast; wait a moment and try again.", &s_delete_fields },
    { "pm.react",   s_send_start,
      "You are reacting too fast; wait a moment and try again.", &s_react_fields },
    { "pm.history", s_history_start, NULL, &s_history_fields },
    { "pm.read",    s_read_start,    NULL, &s_read_fields },
    { "pm.typing",  s_typing_start,
      "You are sending messages and typing notices too fast; wait a moment and try again.",
      &s_typing_fields },
    { .type = NULL }
};

//  The lane's class read: the other user, the type's fields, then their
//  values; the key is the sorted pair
static bool
s_read (void *plugin, const pl_lane_type_t *type, const char *user,
        const msgpack_object *map, pl_lane_intake_t *intake)
{
    (void) plugin;
    const fields_t *fields = (const fields_t *) type->extra;
    args_t *args = (args_t *) calloc (1, sizeof (args_t));
    intake->args = args;
    if (!args)
        return pl_lane_refuse (intake, "internal", "Out of memory; try again.");
    if (pl_body_str (map, fields->other, &args->other) != 1)
        return pl_lane_refuse (intake, "bad_request",
                               "The field '%s' must be a string: a user's name.", fields->other);
    if (fields->changes && !pl_change_read (&args->change, fields->kind, map, intake))
        return false;
    if (fields->read && !fields->read (args, map, intake))
        return false;
    if (pl_text_same_name (args->other, user))
        return pl_lane_refuse (intake, "bad_request", "%s", strcmp (fields->other, "to") == 0
                               ? "You cannot send a private message to yourself."
                               : "There is no conversation with yourself.");
    if (fields->check && !fields->check (args, intake))
        return false;
    if (!pl_text_username_valid (args->other))
        return pl_lane_refuse (intake, "no_such_user", "There is no user named '%.40s'.",
                               args->other);
    intake->key = s_pair_key (user, args->other);
    intake->bytes = args->text? strlen (args->text): 0;
    return intake->key || pl_lane_refuse (intake, "internal", "Out of memory; try again.");
}

//  The lane's class busy: the conversation's queue is full
static void
s_busy (void *plugin, pl_lane_key_t *key, const void *args, pl_lane_intake_t *intake)
{
    (void) plugin, (void) key;
    pl_lane_refuse (intake, "unavailable", "The conversation with '%.40s' is too busy now;"
                    " try again shortly.", ((const args_t *) args)->other);
}

//  A send whose file was checked (pl_file) goes to the lane as any other
static void
s_submit (void *plugin, parley_request_t **request_p)
{
    pm_t *self = (pm_t *) plugin;
    if (pl_lane_request (self->lane, request_p) != 0)
        self->host->reply_error (self->ctx, request_p, "internal",
                                 "The private message service failed.");
}

static void
s_on_request (void *state, parley_request_t *request)
{
    pm_t *self = (pm_t *) state;
    const parley_host_t *host = self->host;
    const char *type = host->request_type (request);
    type = type? type: "";
    //  A send with a file: the store looks the file up before the lane
    if (strcmp (type, "pm.send") == 0 && pl_file_check_request (self->files, &request) == 0)
        return;
    if (pl_lane_request (self->lane, &request) == 0)
        return;
    if (strcmp (type, "pm.conversations") != 0) {
        char message [160];
        snprintf (message, sizeof message, "There is no request '%.64s'.", type);
        host->reply_error (self->ctx, &request, "unknown_type", message);
    }
    else
    if (!host->request_user (request))
        host->reply_error (self->ctx, &request, "unauthenticated", "Log in first.");
    else
        s_list_request (self, request);
}

//  Every store call, the lane's and pm.conversations', goes through pl_call
static void
s_on_reply (void *state, void *cookie, const char *code, const char *message,
            const uint8_t *body, size_t size)
{
    pm_t *self = (pm_t *) state;
    pl_call_reply (self->calls, cookie, code, message, body, size);
}


//  --------------------------------------------------------------------------
//  Init and destroy

static const pl_lane_class_t s_conv_class = {
    .types = s_types,
    .read = s_read,
    .busy = s_busy,
    .args_destroy = s_args_destroy,
    .load = s_conv_load,
    .service = "private message",
    .look_up = s_nonce_look_up,
    .at_once = s_typing_at_once,
    .refused = s_change_refused
};

static void s_destroy (void **state_p);

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
    //  The options (README.md, "Options"), each in its range
    pl_options_t options = pl_options (host, ctx, "pm");
    double rate = pl_options_number (&options, "msg_rate", PM_RATE_DEFAULT, 0, 1e9);
    double burst = pl_options_number (&options, "msg_burst", PM_BURST_DEFAULT, 0, 1e9);
    self->idle_ms = pl_options_int (&options, "idle_ms", PL_LANE_IDLE_MS, 0, INT64_MAX);
    self->nonce_cache = pl_options_uint (&options, "nonce_cache", PL_NONCE_CACHE_DEFAULT,
                                         0, 1000000);
    int64_t typing_ms = pl_options_int (&options, "typing_interval_ms", PM_TYPING_MS_DEFAULT,
                                        0, 3600000);
    if (pl_options_refused (&options)) {
        s_destroy ((void **) &self);
        return -1;
    }
    self->calls = pl_call_new (host, ctx, self);
    self->lane = self->calls? pl_lane_new (ctx, host, self->calls, &s_conv_class, self,
                                           PL_LANE_QUEUE_MAX): NULL;
    self->files = self->calls? pl_file_check_new (host, ctx, self->calls, s_submit, self): NULL;
    self->users = zhashx_new ();
    self->typing = pl_throttle_new (typing_ms, PL_THROTTLE_MAX);
    if (!self->lane || !self->files || !self->users || !self->typing) {
        s_destroy ((void **) &self);
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        return -1;
    }
    zhashx_set_destructor (self->users, (zhashx_destructor_fn *) zstr_free);
    pl_lane_set_rate (self->lane, rate, burst);
    pl_lane_set_idle (self->lane, self->idle_ms);
    pl_lane_set_nonces (self->lane, (size_t) self->nonce_cache);
    host->log (ctx, PARLEY_LOG_INFO, "ready: pm.send limited to %g a second (burst %g) per user",
               rate, burst < 1? 1: burst);
    *state_p = self;
    return 0;
}

static void
s_destroy (void **state_p)
{
    pm_t *self = (pm_t *) *state_p;
    if (self) {
        if (self->lane)
            self->host->log (self->ctx, PARLEY_LOG_INFO, "stopping after %" PRIu64 " messages",
                             self->messages);
        pl_file_check_destroy (&self->files);
        pl_lane_destroy (&self->lane);
        pl_call_destroy (&self->calls);
        zhashx_destroy (&self->users);
        pl_throttle_destroy (&self->typing);
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
//  other name is "to" in pm.send but "with" in the others (pm.history,
//  pm.read, pm.edit, pm.delete, pm.react): so
//  one route per type (the longest prefix wins). Both fields hash the same
//  sorted pair, so one conversation lands on one instance whichever type
//  asks. "pm." catches other pm.* types, answered unknown_type here.

static const parley_route_t s_routes [] = {
    { .prefix = "pm.send", .flags = 0, .shard = PARLEY_SHARD_USER_PAIR, .shard_field = "to" },
    { .prefix = "pm.history", .flags = 0, .shard = PARLEY_SHARD_USER_PAIR,
      .shard_field = "with" },
    { .prefix = "pm.read", .flags = 0, .shard = PARLEY_SHARD_USER_PAIR, .shard_field = "with" },
    { .prefix = "pm.edit", .flags = 0, .shard = PARLEY_SHARD_USER_PAIR, .shard_field = "with" },
    { .prefix = "pm.delete", .flags = 0, .shard = PARLEY_SHARD_USER_PAIR,
      .shard_field = "with" },
    { .prefix = "pm.react", .flags = 0, .shard = PARLEY_SHARD_USER_PAIR, .shard_field = "with" },
    //  A client's typing with 'to' (the gateway names it so)
    { .prefix = "pm.typing", .flags = 0, .shard = PARLEY_SHARD_USER_PAIR, .shard_field = "to" },
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

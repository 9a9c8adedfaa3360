/*  =========================================================================
    store-mongo - the store for clusters: proto/STORE.md on MongoDB

    Serves the store.* requests of proto/STORE.md from six collections of
    one MongoDB database, through one mongoc_client_t used only on this
    instance's own thread (calls block that thread, which exists for it).
    This file queues requests and applies them in batches; the rest is
    split by what it keeps:

        sm_conn      the client, the indexes, what the server's errors mean
        sm_validate  a request's fields, read and checked
        sm_users     users, tokens
        sm_rooms     rooms, messages (a room's members, invitations, timeline)
        sm_pm        pm_messages, conversations
        sm_append    the insert of a run of msg.append or pm.append
        sm_common    finds, BSON readers, runs of inserts, timeline pages

    Batching: on_request validates a request and queues it; on_batch_end
    applies the queue in the order received. A run of consecutive
    user.create, of token.put, of user.seen, of msg.append or of pm.append
    requests goes to the server
    together: one find for what the run needs to know (taken names, owners,
    known users, taken seqs), then one insert_many (unordered: each
    document's error comes back with its index, so every request gets its
    own answer; msg.append's and pm.append's are ordered, so that a
    request's run never leaves a gap: see sm_run_msg_append) or one ordered
    bulk of updates. Every
    other request is one round trip. Answers go out in order, each after
    the server acknowledged its write.

    Uniqueness: the unique indexes are the guarantee (a duplicate key, error
    11000, answers conflict). The run also looks for taken names and token
    hashes before inserting, and settles duplicates inside the run itself:
    the JavaScript test server creates unique indexes but does not enforce
    them (NOTES.md), and an error decided here is cheaper than one decided
    by the server.

    Failure: an error that says the server cannot be reached (no server
    selectable, a broken connection) answers unavailable to that request and
    to the rest of the batch without trying them; the next batch tries
    again. A server that is down at start is not an error: init succeeds,
    logs a warning, and creates the indexes once the server answers.
    =========================================================================
*/

#include "sm_store.h"
#include "sm_common.h"
#include "sm_conn.h"
#include "sm_pm.h"
#include "sm_rooms.h"
#include "sm_users.h"
#include "sm_validate.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


//  Applies one request that is a round trip of its own. Returns 0, or -1
//  with error set when the server failed (s_run_single then fails it).
typedef int (s_single_fn) (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                           bson_error_t *error);

//  Applies a run of requests of one type, [first, end), and decides each
//  one's answer. Returns 0, or -1 if the server could not be reached.
typedef int (s_run_fn) (sm_store_t *self, sm_pending_t *first, sm_pending_t *end);

//  The requests we serve, in the order of sm_op_t: s_ops [op] is op's
static const struct {
    const char *type;               //  the request type
    sm_op_t op;                     //  what it does
    s_single_fn *single;            //  applies it alone, or NULL
    s_run_fn *run;                  //  applies a run of them, or NULL
} s_ops [] = {
    { "store.info",              SM_OP_INFO,              sm_run_info, NULL },
    { "store.user.create",       SM_OP_USER_CREATE,       NULL, sm_run_user_create },
    { "store.user.get",          SM_OP_USER_GET,          sm_run_user_get, NULL },
    { "store.user.list",         SM_OP_USER_LIST,         sm_run_user_list, NULL },
    { "store.user.seen",         SM_OP_USER_SEEN,         NULL, sm_run_user_seen },
    { "store.token.put",         SM_OP_TOKEN_PUT,         NULL, sm_run_token_put },
    { "store.token.get",         SM_OP_TOKEN_GET,         sm_run_token_get, NULL },
    { "store.token.delete",      SM_OP_TOKEN_DELETE,      sm_run_token_delete, NULL },
    { "store.token.delete_user", SM_OP_TOKEN_DELETE_USER, sm_run_token_delete_user, NULL },
    { "store.token.purge",       SM_OP_TOKEN_PURGE,       sm_run_token_purge, NULL },
    { "store.token.touch",       SM_OP_TOKEN_TOUCH,       sm_run_token_touch, NULL },
    { "store.token.trim",        SM_OP_TOKEN_TRIM,        sm_run_token_trim, NULL },
    { "store.room.create",       SM_OP_ROOM_CREATE,       sm_run_room_create, NULL },
    { "store.room.get",          SM_OP_ROOM_GET,          sm_run_room_get, NULL },
    { "store.room.list",         SM_OP_ROOM_LIST,         sm_run_room_list, NULL },
    { "store.room.joined",       SM_OP_ROOM_JOINED,       sm_run_room_joined, NULL },
    { "store.room.public",       SM_OP_ROOM_PUBLIC,       sm_run_room_public, NULL },
    { "store.room.directory",    SM_OP_ROOM_DIRECTORY,    sm_run_room_directory, NULL },
    { "store.room.delete",       SM_OP_ROOM_DELETE,       sm_run_room_delete, NULL },
    { "store.member.add",        SM_OP_MEMBER_ADD,        sm_run_member_add, NULL },
    { "store.member.remove",     SM_OP_MEMBER_REMOVE,     sm_run_member_remove, NULL },
    { "store.member.list",       SM_OP_MEMBER_LIST,       sm_run_member_list, NULL },
    { "store.invite.add",        SM_OP_INVITE_ADD,        sm_run_invite_add, NULL },
    { "store.msg.append",        SM_OP_MSG_APPEND,        NULL, sm_run_msg_append },
    { "store.msg.history",       SM_OP_MSG_HISTORY,       sm_run_msg_history, NULL },
    { "store.pm.append",         SM_OP_PM_APPEND,         NULL, sm_run_pm_append },
    { "store.pm.last_seq",       SM_OP_PM_LAST_SEQ,       sm_run_pm_last_seq, NULL },
    { "store.pm.history",        SM_OP_PM_HISTORY,        sm_run_pm_history, NULL },
    { "store.pm.conversations",  SM_OP_PM_CONVERSATIONS,  sm_run_pm_conversations, NULL },
    { "store.pm.read",           SM_OP_PM_READ,           sm_run_pm_read, NULL }
};
#define S_OP_COUNT (sizeof s_ops / sizeof s_ops [0])


//  --------------------------------------------------------------------------
//  Runs one request that is a round trip of its own. Returns 0, or -1 if
//  the server could not be reached.
static int
s_run_single (sm_store_t *self, sm_pending_t *pending)
{
    msgpack_packer packer;
    msgpack_packer_init (&packer, &pending->result, msgpack_sbuffer_write);
    bson_error_t error;
    assert (s_ops [pending->op].op == pending->op && s_ops [pending->op].single);
    int rc = s_ops [pending->op].single (self, pending, &packer, &error);
    if (rc == 0) {
        sm_mark_reachable (self);
        return 0;
    }
    sm_note_failure (self, s_ops [pending->op].type, &error);
    sm_fail_unavailable (self, pending, &error);
    return sm_is_unreachable (&error) ? -1 : 0;
}


//  --------------------------------------------------------------------------
//  The batch: runs and single requests in order, answers in order

static void
s_reply (sm_store_t *self, sm_pending_t *pending)
{
    if (pending->code)
        self->host->reply_error (self->ctx, &pending->request, pending->code, pending->message);
    else
        self->host->reply (self->ctx, &pending->request, pending->result.data,
                           pending->result.size);
    self->requests++;
    sm_pending_reset (pending);
}

//  What a request adds to the documents its run sends, into the most a run
//  may send (bound_p): user.seen's entries, msg.append's entries and
//  pm.append's messages; 0 for the runs that only the batch bounds
static size_t
s_run_weight (const sm_pending_t *pending, size_t *bound_p)
{
    switch (pending->op) {
        case SM_OP_USER_SEEN:
            *bound_p = SM_SEEN_RUN_MAX;
            return pending->users->via.array.size;
        case SM_OP_MSG_APPEND:
        case SM_OP_PM_APPEND:
            *bound_p = SM_APPEND_RUN_MAX;
            return pending->entry_count;
        default:
            *bound_p = SIZE_MAX;
            return 0;
    }
}

//  The end of the run that starts at first: requests of the same kind, with
//  requests refused at validation among them (they touch nothing)
static sm_pending_t *
s_run_end (sm_pending_t *first, sm_pending_t *limit)
{
    sm_pending_t *end = first + 1;
    size_t bound;
    size_t weight = s_run_weight (first, &bound);
    for (; end < limit; end++) {
        if (!sm_is_live (end))
            continue;
        if (end->op != first->op)
            break;
        weight += s_run_weight (end, &bound);
        if (weight > bound)
            break;
    }
    return end;
}

//  Applies and answers everything queued
static void
s_flush (sm_store_t *self)
{
    if (self->pending_count == 0)
        return;
    self->batch_down = false;
    bson_error_t error;
    if (sm_prepare (self, &error)) {
        sm_note_failure (self, "creating the indexes", &error);
        if (!self->batch_down) {
            //  The server answered no: it cannot serve us as it is
            self->batch_down = true;
            self->down_error = error;
        }
    }
    sm_pending_t *limit = self->pending + self->pending_count;
    sm_pending_t *answered = self->pending;
    sm_pending_t *pending = self->pending;
    while (pending < limit) {
        if (!sm_is_live (pending)) {
            pending++;          //  refused at validation; its answer stands
            continue;
        }
        if (self->batch_down) {
            sm_fail_unavailable (self, pending, &self->down_error);
            pending++;
            continue;
        }
        sm_pending_t *end = pending + 1;
        if (s_ops [pending->op].run) {
            end = s_run_end (pending, limit);
            s_ops [pending->op].run (self, pending, end);
        }
        else
            s_run_single (self, pending);
        //  What is decided goes out now, in order
        for (; answered < end; answered++)
            s_reply (self, answered);
        pending = end;
    }
    for (; answered < limit; answered++)
        s_reply (self, answered);
    self->pending_count = 0;
}


//  --------------------------------------------------------------------------


static int
s_init (parley_ctx_t *ctx, const parley_host_t *host, void **state_p)
{
    sm_store_t *self = sm_store_new (ctx, host);
    if (!self)
        return -1;
    *state_p = self;
    return 0;
}

static void
s_destroy (void **state_p)
{
    sm_store_t *self = (sm_store_t *) *state_p;
    if (!self)
        return;
    //  What was queued still gets applied and answered
    s_flush (self);
    self->host->log (self->ctx, PARLEY_LOG_INFO,
                     "closing %s after %" PRIu64 " requests in %" PRIu64 " server operations",
                     self->where, self->requests, self->round_trips);
    sm_store_destroy (&self);
    *state_p = NULL;
}

static void
s_on_request (void *state, parley_request_t *request)
{
    sm_store_t *self = (sm_store_t *) state;
    if (self->pending_count == SM_BATCH_MAX)
        s_flush (self);

    const char *type = self->host->request_type (request);
    size_t op_index = 0;
    while (op_index < S_OP_COUNT && !(type && strcmp (type, s_ops [op_index].type) == 0))
        op_index++;
    if (op_index == S_OP_COUNT) {
        char message [160];
        snprintf (message, sizeof message, "store-mongo does not serve '%.64s'.",
                  type ? type : "");
        self->host->reply_error (self->ctx, &request, "unknown_type", message);
        return;
    }
    //  Queued even when invalid, so that answers keep the order received
    sm_pending_t *pending = &self->pending [self->pending_count++];
    memset (pending, 0, sizeof *pending);
    pending->request = request;
    pending->op = s_ops [op_index].op;
    msgpack_unpacked_init (&pending->fields);
    msgpack_sbuffer_init (&pending->result);
    size_t size;
    const uint8_t *body = self->host->request_body (request, &size);
    sm_validate (pending, body, size);
}

static void
s_on_batch_end (void *state)
{
    s_flush ((sm_store_t *) state);
}


//  --------------------------------------------------------------------------
//  The descriptor

static const parley_route_t s_routes [] = {
    //  INTERNAL: only plugins call the store. SHARD_NONE: any instance may
    //  serve any request; per-caller order holds only with one instance
    //  (proto/STORE.md, Ordering), as for store-sqlite.
    { .prefix = "store.", .flags = PARLEY_ROUTE_INTERNAL, .shard = PARLEY_SHARD_NONE },
    { .prefix = NULL }
};

static const parley_plugin_t s_descriptor = {
    .abi_major = PARLEY_ABI_MAJOR,
    .abi_minor = PARLEY_ABI_MINOR,
    .size = sizeof (parley_plugin_t),
    .flags = 0,
    .name = "store-mongo",
    .version = "1.0.0",
    .description = "the store for clusters: proto/STORE.md on MongoDB, batched writes",
    .routes = s_routes,
    .init = s_init,
    .destroy = s_destroy,
    .on_request = s_on_request,
    .on_reply = NULL,
    .on_batch_end = s_on_batch_end,
    .on_session = NULL
};

PARLEY_PLUGIN_DEFINE (s_descriptor)

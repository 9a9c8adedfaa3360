/*  =========================================================================
    store-mongo - the store for clusters: proto/STORE.md on MongoDB

    Serves the store.* requests of proto/STORE.md from the collections of
    one MongoDB database, through one mongoc_client_t used only on this
    instance's own thread (calls block that thread, which exists for it).
    It is a backend of the store front (plugins/store), which validates
    every request once and answers them. This file applies the front's
    batches; the rest is split by what it keeps:

        sm_conn      the client, the indexes, what the server's errors mean
        sm_request   a typed request, as the runs read it
        sm_users     users, tokens
        sm_rooms     rooms, messages (a room's members, invitations, timeline)
        sm_pm        pm_messages, conversations
        sm_append    the insert of a run of msg.append or pm.append
        sm_changes   edits, deletions, reactions, replies: checks, effects
        sm_markers   read markers and mentions
        sm_words     the words of a message's document (schema 12)
        sm_search    store.search (schema 12)
        sm_files     files, their state and references (schema 13)
        sm_gridfs    their bytes, in a GridFS bucket (schema 15)
        sm_common    finds, BSON readers, runs of inserts, timeline pages

    Batching: the front queues the validated requests and hands the batch
    to s_run, which applies it in the order received. A run of consecutive
    user.create, of token.put, of user.seen, of msg.append or of pm.append
    requests goes to the server
    together: one find for what the run needs to know (taken names, owners,
    known users, taken seqs), then one insert_many (unordered: each
    document's error comes back with its index, so every request gets its
    own answer; msg.append's and pm.append's are ordered, so that a
    request's run never leaves a gap: see sm_run_msg_append) or one ordered
    bulk of updates. Every
    other request is one round trip. The front answers in order, once the
    batch is applied: each ok after the server acknowledged its write.

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
#include "sm_changes.h"
#include "sm_append.h"
#include "sm_common.h"
#include "sm_conn.h"
#include "sm_pm.h"
#include "sm_rooms.h"
#include "sm_request.h"
#include "sm_users.h"
#include "sm_search.h"
#include "sm_files.h"

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

//  How store-mongo applies each request type: alone, or in runs
static const struct {
    s_single_fn *single;            //  applies it alone, or NULL
    s_run_fn *run;                  //  applies a run of them, or NULL
} s_ops [ST_TYPE_COUNT] = {
    [ST_INFO]                 = { sm_run_info, NULL },
    [ST_USER_CREATE]          = { NULL, sm_run_user_create },
    [ST_USER_GET]             = { sm_run_user_get, NULL },
    [ST_USER_LIST]            = { sm_run_user_list, NULL },
    [ST_USER_SEEN]            = { NULL, sm_run_user_seen },
    [ST_TOKEN_PUT]            = { NULL, sm_run_token_put },
    [ST_TOKEN_GET]            = { sm_run_token_get, NULL },
    [ST_TOKEN_DELETE]         = { sm_run_token_delete, NULL },
    [ST_TOKEN_DELETE_USER]    = { sm_run_token_delete_user, NULL },
    [ST_TOKEN_PURGE]          = { sm_run_token_purge, NULL },
    [ST_TOKEN_TOUCH]          = { sm_run_token_touch, NULL },
    [ST_TOKEN_TRIM]           = { sm_run_token_trim, NULL },
    [ST_ROOM_CREATE]          = { sm_run_room_create, NULL },
    [ST_ROOM_GET]             = { sm_run_room_get, NULL },
    [ST_ROOM_LIST]            = { sm_run_room_list, NULL },
    [ST_ROOM_JOINED]          = { sm_run_room_joined, NULL },
    [ST_ROOM_PUBLIC]          = { sm_run_room_public, NULL },
    [ST_ROOM_DIRECTORY]       = { sm_run_room_directory, NULL },
    [ST_ROOM_INVITED]         = { sm_run_room_invited, NULL },
    [ST_ROOM_DELETE]          = { sm_run_room_delete, NULL },
    [ST_MEMBER_ADD]           = { sm_run_member_add, NULL },
    [ST_MEMBER_REMOVE]        = { sm_run_member_remove, NULL },
    [ST_MEMBER_LIST]          = { sm_run_member_list, NULL },
    [ST_MEMBER_READ]          = { sm_run_member_read, NULL },
    [ST_INVITE_ADD]           = { sm_run_invite_add, NULL },
    [ST_MSG_APPEND]           = { NULL, sm_run_msg_append },
    [ST_MSG_NONCE]            = { sm_run_nonce, NULL },
    [ST_PM_NONCE]             = { sm_run_nonce, NULL },
    [ST_MSG_HISTORY]          = { sm_run_msg_history, NULL },
    [ST_PM_APPEND]            = { NULL, sm_run_pm_append },
    [ST_PM_LAST_SEQ]          = { sm_run_pm_last_seq, NULL },
    [ST_PM_HISTORY]           = { sm_run_pm_history, NULL },
    [ST_PM_CONVERSATIONS]     = { sm_run_pm_conversations, NULL },
    [ST_PM_READ]              = { sm_run_pm_read, NULL },
    [ST_USER_SET_STATE]       = { sm_run_user_set_state, NULL },
    [ST_USER_SET_PASSWORD]    = { sm_run_user_set_password, NULL },
    [ST_ROOM_ALL]             = { sm_run_room_all, NULL },
    [ST_ROOM_UPDATE]          = { sm_run_room_update, NULL },
    [ST_ROOM_UNBAN]           = { sm_run_room_unban, NULL },
    [ST_SEARCH]               = { sm_run_search, NULL },
    [ST_FILE_CREATE]          = { sm_run_file_create, NULL },
    [ST_FILE_WRITE]           = { sm_run_file_write, NULL },
    [ST_FILE_COMMIT]          = { sm_run_file_commit, NULL },
    [ST_FILE_GET]             = { sm_run_file_get, NULL },
    [ST_FILE_READ]            = { sm_run_file_read, NULL },
    [ST_FILE_SWEEP]           = { sm_run_file_sweep, NULL }
};


//  --------------------------------------------------------------------------
//  Runs one request that is a round trip of its own. Returns 0, or -1 if
//  the server could not be reached.
static int
s_run_single (sm_store_t *self, sm_pending_t *pending)
{
    bson_error_t error;
    assert (s_ops [pending->op].single);
    int rc = s_ops [pending->op].single (self, pending, sm_packer (pending), &error);
    if (rc == 0) {
        sm_mark_reachable (self);
        return 0;
    }
    sm_note_failure (self, st_type_name (pending->op), &error);
    sm_fail_unavailable (self, pending, &error);
    return sm_is_unreachable (&error) ? -1 : 0;
}


//  --------------------------------------------------------------------------
//  The batch: runs and single requests in order

//  What a request adds to the documents its run sends, into the most a run
//  may send (bound_p): user.seen's entries, msg.append's entries and
//  pm.append's messages; 0 for the runs that only the batch bounds
static size_t
s_run_weight (const sm_pending_t *pending, size_t *bound_p)
{
    switch (pending->op) {
        case ST_USER_SEEN:
            *bound_p = SM_SEEN_RUN_MAX;
            return pending->user_count;
        case ST_MSG_APPEND:
        case ST_PM_APPEND:
            *bound_p = SM_APPEND_RUN_MAX;
            return pending->entry_count;
        default:
            *bound_p = SIZE_MAX;
            return 0;
    }
}

//  The end of the run that starts at first: requests of the same kind, with
//  requests refused at validation among them (they touch nothing)
//  An append that carries changes (edits, deletions, reactions, replies)
//  is a run of its own: its checks read its targets as the requests before
//  it left them (sm_changes.h)
static sm_pending_t *
s_run_end (sm_pending_t *first, sm_pending_t *limit)
{
    sm_pending_t *end = first + 1;
    size_t bound;
    size_t weight = s_run_weight (first, &bound);
    if (sm_changes (first))
        return end;
    for (; end < limit; end++) {
        if (!sm_is_live (end))
            continue;
        if (end->op != first->op || sm_changes (end))
            break;
        weight += s_run_weight (end, &bound);
        if (weight > bound)
            break;
    }
    return end;
}

//  Applies the requests of the batch and sets each one's answer
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
        pending = end;
    }
    self->pending_count = 0;
}


//  --------------------------------------------------------------------------
//  The backend of the store front

static int
s_open (parley_ctx_t *ctx, const parley_host_t *host, void **state_p)
{
    sm_store_t *self = sm_store_new (ctx, host);
    if (!self)
        return -1;
    *state_p = self;
    return 0;
}

static void
s_close (void **state_p)
{
    sm_store_t *self = (sm_store_t *) *state_p;
    if (!self)
        return;
    self->host->log (self->ctx, PARLEY_LOG_INFO,
                     "closing %s after %" PRIu64 " requests in %" PRIu64 " server operations",
                     self->where, self->requests, self->round_trips);
    sm_store_destroy (&self);
    *state_p = NULL;
}

//  Runs the front's batch, SM_BATCH_MAX requests at a time (the front
//  hands over no more than that)
static void
s_run (void *state, st_request_t **requests, size_t count)
{
    sm_store_t *self = (sm_store_t *) state;
    for (size_t index = 0; index < count; index++) {
        sm_request_load (&self->pending [self->pending_count++], requests [index]);
        if (self->pending_count == SM_BATCH_MAX)
            s_flush (self);
    }
    s_flush (self);
    self->requests += count;
}

//  The front's route is SHARD_NONE: any instance may serve any request;
//  per-caller order holds only with one instance (proto/STORE.md, Ordering)
static void
s_stats (void *state, st_stats_t *stats)
{
    sm_store_t *self = (sm_store_t *) state;
    st_stats_init (stats, "mongo", 1u << ST_COMMIT_MSG_APPEND | 1u << ST_COMMIT_PM_APPEND);
    self->stats = stats;
}

static const st_backend_t s_backend = {
    .name = "store-mongo",
    .version = "1.0.0",
    .description = "the store for clusters: proto/STORE.md on MongoDB, batched writes",
    .open = s_open,
    .close = s_close,
    .run = s_run,
    //  MongoDB has its own tools for a consistent copy of a live database
    .backup_refusal = "store-mongo makes no backups itself: use mongodump (with --oplog on a"
                      " replica set) and mongorestore; see deploy/README.md, \"Backups\".",
    .stats = s_stats
};

ST_FRONT_DEFINE (s_backend)

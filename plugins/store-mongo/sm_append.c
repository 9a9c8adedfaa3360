/*  =========================================================================
    sm_append - the insert of a run of timeline appends (see sm_append.h)
    =========================================================================
*/

#include "sm_store.h"
#include "sm_append.h"
#include "sm_changes.h"
#include "sm_common.h"
#include "sm_conn.h"
#include "sm_pm.h"
#include "sm_rooms.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The seqs of msg.append's and pm.append's runs: the first, the last
uint64_t
sm_first_seq (const sm_pending_t *pending)
{
    return pending->op == ST_PM_APPEND ? pending->seq : pending->entry.seq;
}

uint64_t
sm_last_seq (const sm_pending_t *pending)
{
    return sm_first_seq (pending) + pending->entry_count - 1;
}

//  The timeline a msg.append or pm.append request appends to: a room's, in
//  messages by 'room', or a conversation's, in pm_messages by 'conv'
const char *
sm_timeline_key (const sm_pending_t *pending)
{
    return pending->op == ST_PM_APPEND ? pending->conv : pending->room_key;
}

const char *
sm_timeline_field (const sm_pending_t *pending)
{
    return pending->op == ST_PM_APPEND ? "conv" : "room";
}

//  msg.append, a run of requests, each appending a run of 1 to
//  ST_RUN_MAX entries to one room: one find of the rooms, one of the
//  seqs taken, one ordered insert_many of every entry of the run, one bulk
//  of $max on the rooms' last_seq.
//
//  A request is applied whole or not at all (proto/STORE.md, Atomicity) as
//  far as a server without transactions allows. Every reason to refuse one
//  is found before anything is inserted: no such room, a seq of its run
//  taken in the timeline or by an earlier request of the same run. Its
//  entries then go in one ordered insert, in seq order: the server stores
//  them in that order and stops at the first that fails, so that a failure
//  part way (the server lost, a write concern not met, a seq taken
//  meanwhile by another writer) can leave a first part of a request's run
//  stored, never a gap. That request answers unavailable, and its outcome
//  is unknown as any lost answer's: a retry answers conflict if its first
//  seq was stored. Requests whose entries all came before the failure are
//  ok; those after it are inserted again from the first of them.


void
sm_on_room_exists (void *arg, const bson_t *document)
{
    sm_span_t *span = (sm_span_t *) arg;
    uint32_t size;
    const char *key = sm_bson_text (document, "name_lower", &size);
    for (sm_pending_t *pending = span->first; pending < span->end; pending++)
        if (sm_is_live (pending) && strlen (pending->room_key) == size
        &&  memcmp (pending->room_key, key, size) == 0)
            pending->room_found = true;
}

//  An entry of a timeline (a room's or a conversation's) holds a seq that
//  the appends of a run of msg.append or pm.append to it would take
static void
s_on_seq_taken (void *arg, const bson_t *document)
{
    sm_span_t *span = (sm_span_t *) arg;
    uint32_t size;
    const char *key = sm_bson_text (document, sm_timeline_field (span->first), &size);
    int64_t seq = sm_bson_int (document, "seq", 0);
    if (seq <= 0)
        return;
    for (sm_pending_t *pending = span->first; pending < span->end; pending++)
        if (sm_is_live (pending) && strlen (sm_timeline_key (pending)) == size
        &&  memcmp (sm_timeline_key (pending), key, size) == 0
        &&  sm_first_seq (pending) <= (uint64_t) seq && (uint64_t) seq <= sm_last_seq (pending))
            sm_fail_seq_taken (pending, (uint64_t) seq, false);
}

//  Looks for entries of the timelines with a seq that a live request of the
//  run (msg.append or pm.append, from first) would append:
//  {$or: [{room, seq: {$gte: first, $lte: last}}, ...]}, one range of the
//  (room, seq) or (conv, seq) index per request. Returns 0 or -1.
int
sm_find_seqs_taken (sm_store_t *self, sm_pending_t *first, sm_pending_t *end, bson_error_t *error)
{
    bool pm = first->op == ST_PM_APPEND;
    bson_t filter = BSON_INITIALIZER, clauses;
    BSON_APPEND_ARRAY_BEGIN (&filter, "$or", &clauses);
    uint32_t count = 0;
    for (sm_pending_t *pending = first; pending < end; pending++) {
        if (!sm_is_live (pending))
            continue;
        char index_key [16];
        const char *key;
        size_t key_size = bson_uint32_to_string (count++, &key, index_key, sizeof index_key);
        bson_t clause, range;
        bson_append_document_begin (&clauses, key, (int) key_size, &clause);
        BSON_APPEND_UTF8 (&clause, sm_timeline_field (pending), sm_timeline_key (pending));
        BSON_APPEND_DOCUMENT_BEGIN (&clause, "seq", &range);
        BSON_APPEND_INT64 (&range, "$gte", (int64_t) sm_first_seq (pending));
        BSON_APPEND_INT64 (&range, "$lte", (int64_t) sm_last_seq (pending));
        bson_append_document_end (&clause, &range);
        bson_append_document_end (&clauses, &clause);
    }
    bson_append_array_end (&filter, &clauses);
    int rc = 0;
    if (count > 0) {
        sm_span_t span = { first, end };
        bson_t *opts = BCON_NEW ("projection", "{", sm_timeline_field (first), BCON_INT32 (1),
                                 "seq", BCON_INT32 (1), "}",
                                 "hint", BCON_UTF8 (pm ? SM_PM_INDEX : SM_TIMELINE_INDEX));
        rc = sm_find (self, pm ? self->pm_messages : self->messages, &filter, opts,
                      s_on_seq_taken, &span, error);
        bson_destroy (opts);
    }
    bson_destroy (&filter);
    return rc;
}

//  The nonce of element index of pending's run (data NULL: none), and its
//  sender, lower-cased, into sender
static st_text_t
s_nonce_at (const sm_pending_t *pending, uint32_t index, char *sender)
{
    if (pending->op == ST_PM_APPEND) {
        const st_pm_message_t *message = &pending->messages [index];
        strcpy (sender, message->from_peer ? pending->peer_key : pending->key);
        return message->nonce;
    }
    st_text_lower (pending->entries [index].user, sender);
    return pending->entries [index].nonce;
}

//  Notes that element index of pending's run repeats a stored entry
static void
s_note_repeat (sm_pending_t *pending, uint32_t index, const bson_t *document)
{
    if (!pending->duplicates)
        pending->duplicates = (st_duplicate_t *) calloc (pending->entry_count,
                                                         sizeof (st_duplicate_t));
    for (uint32_t item = 0; pending->duplicates && item < pending->duplicate_count; item++)
        if (pending->duplicates [item].index == index)
            return;
    if (pending->duplicates)
        pending->duplicates [pending->duplicate_count++] = (st_duplicate_t) {
            index, (uint64_t) sm_bson_int (document, "seq", 0), sm_bson_int (document, "ts", 0)
        };
}

//  A stored entry with a nonce that a live request of the run carries
static void
s_on_repeat (void *arg, const bson_t *document)
{
    sm_span_t *span = (sm_span_t *) arg;
    uint32_t key_size, sender_size;
    const char *key = sm_bson_text (document, sm_timeline_field (span->first), &key_size);
    const char *sender = sm_bson_text (document, "sender", &sender_size);
    st_text_t nonce = sm_bson_nonce (document);
    for (sm_pending_t *pending = span->first; pending < span->end; pending++) {
        if (!sm_is_live (pending) || strlen (sm_timeline_key (pending)) != key_size
        ||  memcmp (sm_timeline_key (pending), key, key_size) != 0)
            continue;
        for (uint32_t index = 0; index < pending->entry_count; index++) {
            char own [ST_NAME_MAX + 1];
            st_text_t mine = s_nonce_at (pending, index, own);
            if (mine.data && mine.size == nonce.size && nonce.data
            &&  memcmp (mine.data, nonce.data, mine.size) == 0
            &&  strlen (own) == sender_size && memcmp (own, sender, sender_size) == 0)
                s_note_repeat (pending, index, document);
        }
    }
}

//  Adds {field: key, nonce: {$in: [...]}} for pending's nonces to clauses.
//  Returns false when it has none.
static bool
s_repeat_clause (const sm_pending_t *pending, bson_t *clauses, uint32_t at)
{
    char index_key [16], sender [ST_NAME_MAX + 1];
    const char *key;
    bool any = false;
    for (uint32_t index = 0; index < pending->entry_count && !any; index++)
        any = s_nonce_at (pending, index, sender).data != NULL;
    if (!any)
        return false;
    size_t key_size = bson_uint32_to_string (at, &key, index_key, sizeof index_key);
    bson_t clause, condition, array;
    bson_append_document_begin (clauses, key, (int) key_size, &clause);
    BSON_APPEND_UTF8 (&clause, sm_timeline_field (pending), sm_timeline_key (pending));
    BSON_APPEND_DOCUMENT_BEGIN (&clause, "nonce", &condition);
    BSON_APPEND_ARRAY_BEGIN (&condition, "$in", &array);
    uint32_t count = 0;
    for (uint32_t index = 0; index < pending->entry_count; index++) {
        st_text_t nonce = s_nonce_at (pending, index, sender);
        if (nonce.data)
            sm_array_append_text (&array, &count, nonce.data, nonce.size);
    }
    bson_append_array_end (&condition, &array);
    bson_append_document_end (&clause, &condition);
    bson_append_document_end (clauses, &clause);
    return true;
}

//  The requests with repeats answer them and leave the run; one with
//  changes keeps them for its checks, which answer both (sm_changes.h)
static void
s_answer_repeats (sm_pending_t *first, sm_pending_t *end)
{
    for (sm_pending_t *pending = first; pending < end; pending++) {
        if (pending->duplicate_count && sm_is_live (pending) && !sm_changes (pending)) {
            st_reply_duplicates (pending->request, pending->duplicates,
                                 pending->duplicate_count);
            pending->repeated = true;
        }
    }
}

int
sm_find_repeats (sm_store_t *self, sm_pending_t *first, sm_pending_t *end, bson_error_t *error)
{
    bool pm = first->op == ST_PM_APPEND;
    bson_t filter = BSON_INITIALIZER, clauses;
    BSON_APPEND_ARRAY_BEGIN (&filter, "$or", &clauses);
    uint32_t count = 0;
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending) && s_repeat_clause (pending, &clauses, count))
            count++;
    bson_append_array_end (&filter, &clauses);
    int rc = 0;
    if (count > 0) {
        sm_span_t span = { first, end };
        bson_t *opts = BCON_NEW ("projection", "{", sm_timeline_field (first), BCON_INT32 (1),
                                 "sender", BCON_INT32 (1), "nonce", BCON_INT32 (1),
                                 "seq", BCON_INT32 (1), "ts", BCON_INT32 (1), "}");
        rc = sm_find (self, pm ? self->pm_messages : self->messages, &filter, opts,
                      s_on_repeat, &span, error);
        bson_destroy (opts);
        if (rc == 0)
            s_answer_repeats (first, end);
    }
    bson_destroy (&filter);
    for (sm_pending_t *pending = first; pending < end; pending++) {
        if (rc == 0 && sm_is_live (pending) && sm_changes (pending))
            continue;
        free (pending->duplicates);
        pending->duplicates = NULL;
        pending->duplicate_count = 0;
    }
    return rc;
}

int
sm_check_changes (sm_store_t *self, sm_pending_t *first, sm_pending_t *end, bson_error_t *error)
{
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending) && sm_changes (pending)
        &&  sm_changes_check (self, pending, error))
            return -1;
    return 0;
}

void
sm_apply_changes (sm_store_t *self, sm_pending_t *first, sm_pending_t *end)
{
    for (sm_pending_t *pending = first; pending < end; pending++) {
        if (!pending->changes)
            continue;
        bson_error_t error;
        if (!sm_is_live (pending))
            sm_changes_drop (pending);
        else
        if (sm_changes_apply (self, pending, &error)) {
            //  The entries are stored, their effects maybe not all: the
            //  outcome is unknown, and a repeat converges
            sm_note_failure (self, "applying timeline changes", &error);
            sm_fail_unavailable (self, pending, &error);
        }
    }
}

int
sm_run_nonce (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
              bson_error_t *error)
{
    (void) packer;
    bool pm = pending->op == ST_PM_NONCE;
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8 (&filter, pm ? "conv" : "room", pm ? pending->conv : pending->room_key);
    BSON_APPEND_UTF8 (&filter, "sender", pending->key);
    bson_append_utf8 (&filter, "nonce", 5, pending->nonce.data, (int) pending->nonce.size);
    bson_t *projection = BCON_NEW ("seq", BCON_INT32 (1), "ts", BCON_INT32 (1));
    bson_t found = BSON_INITIALIZER;
    int rc = sm_find_one (self, pm ? self->pm_messages : self->messages, &filter, projection,
                          &found, error);
    if (rc >= 0)
        st_reply_nonce (pending->request, rc == 1, (uint64_t) sm_bson_int (&found, "seq", 0),
                        sm_bson_int (&found, "ts", 0));
    bson_destroy (&found);
    bson_destroy (projection);
    bson_destroy (&filter);
    return rc < 0 ? -1 : 0;
}

//  Two live requests of the run whose runs share a seq of one timeline: the
//  later one conflicts, as it would have had they come in separate batches
void
sm_settle_overlaps (sm_pending_t *first, sm_pending_t *end)
{
    for (sm_pending_t *pending = first + 1; pending < end; pending++) {
        if (!sm_is_live (pending))
            continue;
        for (sm_pending_t *earlier = first; earlier < pending; earlier++)
            if (sm_is_live (earlier)
            &&  strcmp (sm_timeline_key (earlier), sm_timeline_key (pending)) == 0
            &&  sm_first_seq (earlier) <= sm_last_seq (pending)
            &&  sm_first_seq (pending) <= sm_last_seq (earlier)) {
                //  The first seq they share
                uint64_t shared = sm_first_seq (earlier) > sm_first_seq (pending)
                                ? sm_first_seq (earlier) : sm_first_seq (pending);
                sm_fail_seq_taken (pending, shared, false);
                break;
            }
    }
}

//  Builds the document of element index of pending's run (msg.append: an
//  entry; pm.append: a message)
static void
s_build_run_document (const sm_pending_t *pending, uint32_t index, bson_t *document)
{
    if (pending->op == ST_PM_APPEND)
        sm_build_pm_message (pending, &pending->messages [index], document);
    else
        sm_build_entry (pending->room_key, &pending->entries [index], document);
}

//  Inserts the entries (or private messages) of the live requests of
//  [first, end), in order, with ordered insert_many (see above for a
//  failure part way) and answers the requests it could not append.
//  Returns 0, or -1 if the server could not be reached.
//  The documents of every entry (or message) of the run's live requests
static int
s_run_documents (sm_pending_t *first, sm_pending_t *end, sm_docs_t *docs)
{
    size_t capacity = 0;
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending))
            capacity += pending->entry_count;
    if (sm_docs_init (docs, capacity, first, end))
        return -1;
    for (sm_pending_t *pending = first; pending < end; pending++)
        for (uint32_t index = 0; index < pending->entry_count && sm_is_live (pending); index++)
            s_build_run_document (pending, index, sm_docs_add (docs, pending));
    return 0;
}

//  One ordered insert_many of the documents from start on. Returns where
//  the next one starts: after the request whose document failed, answered
//  here, or docs->count when done; *rc_p is -1 if the server was lost.
static size_t
s_insert_from (sm_store_t *self, mongoc_collection_t *collection, const char *what,
               sm_docs_t *docs, size_t start, int *rc_p)
{
    bson_t *opts = BCON_NEW ("ordered", BCON_BOOL (true));
    bson_t reply;
    bson_error_t error;
    self->round_trips++;
    bool ok = mongoc_collection_insert_many (collection, (const bson_t **) docs->documents + start,
                                             docs->count - start, opts, &reply, &error);
    bson_destroy (opts);
    //  An ordered insert reports its one failed document: those before
    //  it are stored, those after it are not
    bson_iter_t errors;
    size_t index = 0;
    bson_error_t own;
    bool known = !ok && !sm_is_unreachable (&error)
              && !bson_has_field (&reply, "writeConcernErrors")
              && sm_write_errors (&reply, &errors) && bson_iter_next (&errors)
              && sm_write_error (&errors, docs->count - start, &index, &own);
    bson_destroy (&reply);
    if (ok)
        sm_mark_reachable (self);
    if (ok || !known) {
        if (!ok) {
            //  What the server stored of the rest is unknown
            sm_note_failure (self, what, &error);
            sm_docs_fail (self, docs, start, &error);
            *rc_p = sm_is_unreachable (&error) ? -1 : 0;
        }
        return docs->count;
    }
    size_t failed = start + index;
    sm_pending_t *owner = docs->owners [failed];
    bool first_of_its_run = failed == 0 || docs->owners [failed - 1] != owner;
    if (sm_is_duplicate_key (&own))
        //  Nothing of its run is stored if it failed first: a plain
        //  conflict; else its outcome is unknown
        sm_fail_seq_taken (owner, (uint64_t) sm_bson_int (docs->documents [failed], "seq", 0),
                           !first_of_its_run);
    else {
        sm_note_failure (self, what, &own);
        sm_fail_unavailable (self, owner, &own);
    }
    //  The requests after it, again
    while (failed < docs->count && docs->owners [failed] == owner)
        failed++;
    return failed;
}

int
sm_insert_entries (sm_store_t *self, sm_pending_t *first, sm_pending_t *end)
{
    bool pm = first->op == ST_PM_APPEND;
    mongoc_collection_t *collection = pm ? self->pm_messages : self->messages;
    const char *what = pm ? "appending private messages" : "appending entries";
    sm_docs_t docs;
    if (s_run_documents (first, end, &docs))
        return 0;
    int rc = 0;
    size_t start = 0;               //  the first document not yet inserted
    int64_t started = st_stats_now ();
    while (start < docs.count)
        start = s_insert_from (self, collection, what, &docs, start, &rc);
    if (self->stats && rc == 0 && docs.count > 0)
        st_stats_commit (self->stats, pm ? ST_COMMIT_PM_APPEND : ST_COMMIT_MSG_APPEND,
                         started, docs.count);
    sm_docs_destroy (&docs);
    return rc;
}


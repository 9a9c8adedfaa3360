/*  =========================================================================
    sm_append - the insert of a run of timeline appends

    What msg.append and pm.append share: the seqs of a run looked up before
    anything is inserted, overlaps inside the run settled, then one ordered
    insert_many of every entry (or private message) of the run. See
    sm_append.c for what a failure part way leaves.
    =========================================================================
*/

#ifndef SM_APPEND_H_INCLUDED
#define SM_APPEND_H_INCLUDED

#include "sm_store.h"

typedef struct {
    sm_pending_t *first;            //  the run
    sm_pending_t *end;
} sm_span_t;

//  The seqs of msg.append's and pm.append's runs: the first, the last
uint64_t
    sm_first_seq (const sm_pending_t *pending);

uint64_t
    sm_last_seq (const sm_pending_t *pending);

//  The timeline a msg.append or pm.append request appends to: a room's, in
//  messages by 'room', or a conversation's, in pm_messages by 'conv'
const char *
    sm_timeline_key (const sm_pending_t *pending);

const char *
    sm_timeline_field (const sm_pending_t *pending);

void
    sm_on_room_exists (void *arg, const bson_t *document);

//  Checks the live requests of the run that carry changes (a run of one:
//  sm_changes.h) and queues their effects; one with refusals or repeats is
//  answered and leaves the run. Returns 0, or -1 with error set.
int
    sm_check_changes (sm_store_t *self, sm_pending_t *first, sm_pending_t *end,
                      bson_error_t *error);

//  Runs the queued effects of the run's requests whose entries are stored
//  (drops those of the others); a failure answers that request unavailable
void
    sm_apply_changes (sm_store_t *self, sm_pending_t *first, sm_pending_t *end);

//  Looks for the nonces of the live requests of the run (msg.append or
//  pm.append, from first) in their timelines: one find, a range of the
//  nonce index per request. A request with any answers them
//  (st_reply_duplicates), appends nothing and is no longer live; one with
//  changes keeps them for sm_check_changes. Returns 0, or -1 with error set.
int
    sm_find_repeats (sm_store_t *self, sm_pending_t *first, sm_pending_t *end,
                     bson_error_t *error);

//  store.msg.nonce and store.pm.nonce: is the sender's nonce stored in the
//  room or conversation? Returns 0, or -1 with error set.
int
    sm_run_nonce (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                  bson_error_t *error);

//  Looks for entries of the timelines with a seq that a live request of the
//  run (msg.append or pm.append, from first) would append:
//  {$or: [{room, seq: {$gte: first, $lte: last}}, ...]}, one range of the
//  (room, seq) or (conv, seq) index per request. Returns 0 or -1.
int
    sm_find_seqs_taken (sm_store_t *self, sm_pending_t *first, sm_pending_t *end,
                        bson_error_t *error);

//  Two live requests of the run whose runs share a seq of one timeline: the
//  later one conflicts, as it would have had they come in separate batches
void
    sm_settle_overlaps (sm_pending_t *first, sm_pending_t *end);

//  Inserts the entries (or private messages) of the live requests of
//  [first, end), in order, with ordered insert_many (see above for a
//  failure part way) and answers the requests it could not append.
//  Returns 0, or -1 if the server could not be reached.
int
    sm_insert_entries (sm_store_t *self, sm_pending_t *first, sm_pending_t *end);

#endif

/*  =========================================================================
    sm_changes - store-mongo's timeline changes: the checks and effects of
    edits, deletions, reactions and replies (proto/STORE.md, "Timeline
    changes", schema version 9), and their fields in documents

    A msg.append or pm.append request that carries a change (or a reply) is
    a run of its own: it is checked against its targets, read with one
    find, before anything is written; the effects are queued as one
    ordered bulk of updates, run after the entries are inserted. A message
    document holds the message as it is now (text, edited, deleted) and
    its reactions as rows {emoji, user, key, at, since}, so a history page
    stays one range of documents.

    Ownership: sm_changes_check leaves the queued bulk in the request's
    slot (pending->changes); sm_changes_apply runs and destroys it,
    sm_changes_drop destroys it unrun.
    =========================================================================
*/

#ifndef SM_CHANGES_H_INCLUDED
#define SM_CHANGES_H_INCLUDED

#include "sm_store.h"

//  True when a msg.append or pm.append request holds an element that is
//  checked: a change, or a reply
bool
    sm_changes (const sm_pending_t *pending);

//  Checks a live change request (alone in its run) and queues its effects;
//  a request with refused elements or repeated nonces (pending->duplicates,
//  freed here) is answered {refused, duplicates} and leaves the run.
//  Returns 0, or -1 with error set.
int
    sm_changes_check (sm_store_t *self, sm_pending_t *pending, bson_error_t *error);

//  Runs the queued effects of a request whose entries are stored. Its
//  failure leaves the entries stored (the outcome is unknown, as any lost
//  answer's: a repeat converges). Returns 0, or -1 with error set.
int
    sm_changes_apply (sm_store_t *self, sm_pending_t *pending, bson_error_t *error);

//  Destroys the queued effects unrun
void
    sm_changes_drop (sm_pending_t *pending);

//  Adds a change's fields to an entry's document (kind is the caller's)
void
    sm_changes_build (const st_change_t *change, bson_t *document);

//  Reads a document's kind, change fields and state into change, and its
//  reactions into *reactions_p (a new object the caller destroys, NULL
//  for none); the document must outlive them
void
    sm_changes_read (const bson_t *document, uint64_t seq, st_change_t *change,
                     st_reactions_t **reactions_p);

#endif

/*  =========================================================================
    sm_pm - private messages: conversations, read markers

    See sm_pm.c for the documents. pm.append comes in runs
    (sm_run_pm_append); the others are one round trip each: each returns 0,
    or -1 with error set when the server failed.
    =========================================================================
*/

#ifndef SM_PM_H_INCLUDED
#define SM_PM_H_INCLUDED

#include "sm_store.h"

void
    sm_build_pm_message (const sm_pending_t *pending, const st_pm_message_t *message,
                         bson_t *document);

//  Packs a pm entry (proto/STORE.md) from its document, as it is now
void
    sm_pack_pm_entry (msgpack_packer *packer, const bson_t *document);

//  pm.append, a run of requests, each appending a run of 1 to ST_RUN_MAX
//  messages to one conversation: one find of the users, then as msg.append
//  (see above, also for a failure part way): one find of the seqs taken,
//  one ordered insert_many of every message of the run; then
//  s_advance_conversations
int
    sm_run_pm_append (sm_store_t *self, sm_pending_t *first, sm_pending_t *end);

int
    sm_run_pm_last_seq (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                        bson_error_t *error);

int
    sm_run_pm_history (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                       bson_error_t *error);

int
    sm_run_pm_conversations (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                             bson_error_t *error);

int
    sm_run_pm_read (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                    bson_error_t *error);

#endif

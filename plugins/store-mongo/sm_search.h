/*  =========================================================================
    sm_search - store.search on MongoDB (schema version 12)

    Not $text (it ORs words, stems, drops stop words and knows no prefix):
    the messages' `words` (sm_words.h), matched with $all for the whole
    words and, per prefix word, an $elemMatch range, restricted in the same
    find to the rooms the user is a member of now ($in of them, read
    first) and to the user's conversations. Newest first by (ts, _id):
    one find per collection of limit + 1 documents, merged; the cursor is
    the last result's ts and _id.
    =========================================================================
*/

#ifndef SM_SEARCH_H_INCLUDED
#define SM_SEARCH_H_INCLUDED

#include "sm_store.h"

//  store.search. Returns 0, or -1 with error set.
int
    sm_run_search (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error);

#endif

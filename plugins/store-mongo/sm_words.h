/*  =========================================================================
    sm_words - the words of a message's document (schema version 12)

    A message document (a room's `messages`, a conversation's
    `pm_messages`) carries `words`: the distinct words of its current text
    as the kit's pl_words normalizes them (case-folded, accents removed),
    sorted, so that store.search matches them with `$all` and a range per
    prefix on the multikey indexes SM_WORDS_INDEX and SM_PM_WORDS_INDEX.
    The append writes them with the document, an edit recomputes them in
    the update that sets the new text, a deletion removes them in the
    update that blanks the text: a message is searched by its text as it
    is now, in the same write that makes it so.
    =========================================================================
*/

#ifndef SM_WORDS_H_INCLUDED
#define SM_WORDS_H_INCLUDED

#include "sm_store.h"

//  Appends key: [the distinct words of text, sorted] to document (an
//  empty array for a text without words)
void
    sm_words_append (bson_t *document, const char *key, const char *text, size_t size);

//  Migration to schema version 12: fills `words` of every message document
//  of both collections that has none (not deleted, kind message or none),
//  a page of documents per bulk. Returns 0, or -1 with error set; a repeat
//  continues where a failure stopped.
int
    sm_words_fill (sm_store_t *self, bson_error_t *error);

#endif

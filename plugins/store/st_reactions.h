/*  =========================================================================
    st_reactions - the reactions of the messages of one answer, grouped and
    packed once for every backend (proto/STORE.md, "Timeline changes")

    A backend walks one range of its reactions (rows of a message, an
    emoji, a user, the reaction's seq and the seq at which that emoji went
    from none to one on that message) in the same order as it walks the
    page's entries, newest first or oldest first. For each message of the
    page it loads that message's rows, which skips the rows of seqs the
    page passed, and packs them: the emoji by their 0-to-1 seq, each
    {emoji, count, users} with at most the first ST_REACTIONS_MAX users by
    the seq of their reaction. So a page costs one range of entries and
    one range of reactions, walked side by side.

        st_reactions_t *reactions = st_reactions_new (s_next_row, stmt, true);
        while (entry row) {
            if (st_reactions_load (reactions, seq))
                fail;
            entry.change.reactions = reactions;
            st_reply_entry (packer, &entry);
        }
        st_reactions_destroy (&reactions);

    Ownership: the caller owns the object (st_reactions_new,
    st_reactions_destroy); it copies each row it keeps; the cursor is the
    caller's, lent for the object's life.
    =========================================================================
*/

#ifndef ST_REACTIONS_H_INCLUDED
#define ST_REACTIONS_H_INCLUDED

#include "st_request.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  One reaction as a backend reads it; strings borrowed until the next row
typedef struct {
    uint64_t seq;                   //  the message's
    st_text_t emoji;                //  1 to ST_EMOJI_MAX bytes
    st_text_t user;                 //  as registered, 1 to ST_NAME_MAX bytes
    uint64_t at;                    //  the reaction entry's seq
    uint64_t since;                 //  the seq at which the emoji went from 0 to 1
} st_reaction_t;

//  Reads the walk's next row into *row: returns 1 for a row, 0 at the
//  end, -1 when the backend failed (it says why in its own answer)
typedef int (st_reactions_next_fn) (void *cursor, st_reaction_t *row);

//  A walk of reactions whose seqs go down (descending) or up. next may be
//  NULL: no reactions at all. NULL only when out of memory.
st_reactions_t *
    st_reactions_new (st_reactions_next_fn *next, void *cursor, bool descending);

//  Destroys the object and nullifies the reference
void
    st_reactions_destroy (st_reactions_t **self_p);

//  Keeps the reactions of the message seq (the walk's rows before it are
//  dropped). Returns 0, or -1 when the walk failed or memory ran out.
int
    st_reactions_load (st_reactions_t *self, uint64_t seq);

//  True when the loaded message has reactions
bool
    st_reactions_any (const st_reactions_t *self);

//  Packs the loaded message's reactions: an array of {emoji, count, users}
void
    st_reactions_pack (st_reactions_t *self, msgpack_packer *packer);

#ifdef __cplusplus
}
#endif

#endif

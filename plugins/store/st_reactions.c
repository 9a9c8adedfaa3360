/*  =========================================================================
    st_reactions - the reactions of the messages of one answer, grouped and
    packed once for every backend
    =========================================================================
*/

#include "st_reactions.h"
#include "pl_body.h"

#include <stdlib.h>
#include <string.h>

//  A row kept: its strings copied, since the backend's are borrowed
typedef struct {
    uint64_t seq;
    uint64_t at;
    uint64_t since;
    uint32_t emoji_size;
    uint32_t user_size;
    char emoji [ST_EMOJI_MAX];
    char user [ST_NAME_MAX];
} s_row_t;

struct st_reactions_s {
    st_reactions_next_fn *next;     //  the backend's walk, NULL: none
    void *cursor;                   //  its state, lent
    bool descending;                //  seqs go down
    bool ahead;                     //  a row read but not yet kept (next message's)
    bool ended;                     //  the walk has no more rows
    s_row_t lookahead;
    s_row_t *rows;                  //  the loaded message's
    uint32_t count;
    uint32_t capacity;
};

st_reactions_t *
st_reactions_new (st_reactions_next_fn *next, void *cursor, bool descending)
{
    st_reactions_t *self = (st_reactions_t *) calloc (1, sizeof (st_reactions_t));
    if (!self)
        return NULL;
    self->next = next;
    self->cursor = cursor;
    self->descending = descending;
    self->ended = next == NULL;
    return self;
}

void
st_reactions_destroy (st_reactions_t **self_p)
{
    if (*self_p) {
        free ((*self_p)->rows);
        free (*self_p);
        *self_p = NULL;
    }
}

//  Reads the walk's next row into the lookahead: 1, 0 at the end, -1
static int
s_read_ahead (st_reactions_t *self)
{
    st_reaction_t row;
    memset (&row, 0, sizeof row);
    int rc = self->next (self->cursor, &row);
    if (rc <= 0) {
        self->ended = true;
        return rc;
    }
    //  A backend's row is within the contract's bounds: cut what is not
    s_row_t *kept = &self->lookahead;
    kept->seq = row.seq;
    kept->at = row.at;
    kept->since = row.since;
    kept->emoji_size = row.emoji.size < ST_EMOJI_MAX ? row.emoji.size : ST_EMOJI_MAX;
    kept->user_size = row.user.size < ST_NAME_MAX ? row.user.size : ST_NAME_MAX;
    if (kept->emoji_size)
        memcpy (kept->emoji, row.emoji.data, kept->emoji_size);
    if (kept->user_size)
        memcpy (kept->user, row.user.data, kept->user_size);
    self->ahead = true;
    return 1;
}

static int
s_keep (st_reactions_t *self)
{
    if (self->count == self->capacity) {
        uint32_t capacity = self->capacity ? self->capacity * 2 : 16;
        s_row_t *rows = (s_row_t *) realloc (self->rows, capacity * sizeof (s_row_t));
        if (!rows)
            return -1;
        self->rows = rows;
        self->capacity = capacity;
    }
    self->rows [self->count++] = self->lookahead;
    self->ahead = false;
    return 0;
}

int
st_reactions_load (st_reactions_t *self, uint64_t seq)
{
    self->count = 0;
    while (self->ahead || !self->ended) {
        if (!self->ahead) {
            int rc = s_read_ahead (self);
            if (rc <= 0)
                return rc;
        }
        uint64_t row_seq = self->lookahead.seq;
        if (row_seq == seq) {
            if (s_keep (self))
                return -1;
        }
        else
        if (self->descending ? row_seq < seq : row_seq > seq)
            return 0;               //  a later message's: kept ahead
        else
            self->ahead = false;    //  a message the page does not show
    }
    return 0;
}

bool
st_reactions_any (const st_reactions_t *self)
{
    return self && self->count > 0;
}

//  Emoji by the seq they went from 0 to 1, then users by reaction seq
static int
s_compare (const void *one, const void *two)
{
    const s_row_t *a = (const s_row_t *) one, *b = (const s_row_t *) two;
    if (a->since != b->since)
        return a->since < b->since ? -1 : 1;
    uint32_t size = a->emoji_size < b->emoji_size ? a->emoji_size : b->emoji_size;
    int order = memcmp (a->emoji, b->emoji, size);
    if (order || a->emoji_size != b->emoji_size)
        return order ? order : a->emoji_size < b->emoji_size ? -1 : 1;
    return a->at < b->at ? -1 : a->at > b->at ? 1 : 0;
}

static bool
s_same_emoji (const s_row_t *a, const s_row_t *b)
{
    return a->emoji_size == b->emoji_size && memcmp (a->emoji, b->emoji, a->emoji_size) == 0;
}

//  Packs one emoji: the rows from first, count of them
static void
s_pack_emoji (msgpack_packer *packer, const s_row_t *first, uint32_t count)
{
    msgpack_pack_map (packer, 3);
    pl_body_pack_str (packer, "emoji");
    msgpack_pack_str_with_body (packer, first->emoji, first->emoji_size);
    pl_body_pack_str (packer, "count");
    msgpack_pack_uint32 (packer, count);
    pl_body_pack_str (packer, "users");
    uint32_t shown = count < ST_REACTIONS_MAX ? count : ST_REACTIONS_MAX;
    msgpack_pack_array (packer, shown);
    for (uint32_t index = 0; index < shown; index++)
        msgpack_pack_str_with_body (packer, first [index].user, first [index].user_size);
}

void
st_reactions_pack (st_reactions_t *self, msgpack_packer *packer)
{
    qsort (self->rows, self->count, sizeof (s_row_t), s_compare);
    uint32_t groups = 0;
    for (uint32_t index = 0; index < self->count; index++)
        if (index == 0 || !s_same_emoji (&self->rows [index - 1], &self->rows [index]))
            groups++;
    msgpack_pack_array (packer, groups);
    for (uint32_t start = 0; start < self->count; ) {
        uint32_t end = start + 1;
        while (end < self->count && s_same_emoji (&self->rows [start], &self->rows [end]))
            end++;
        s_pack_emoji (packer, &self->rows [start], end - start);
        start = end;
    }
}

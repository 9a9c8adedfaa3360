/*  =========================================================================
    pl_nonce - the recent nonces of one key (see pl_nonce.h)

    Map of the state: a ring of at most max entries, oldest first from
    'oldest', and a table of chains into it by the hash of the entry's
    name ("<lower-cased user> <nonce>": names hold no space). Putting into
    a full ring reuses the oldest slot, which first leaves its chain. Both
    are made on the first put.
    =========================================================================
*/

#include "pl_nonce.h"
#include "pl_body.h"
#include "pl_hash.h"
#include "pl_limits.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define S_NONE  SIZE_MAX            //  the end of a chain

typedef struct {
    char *name;                     //  "<user lower-cased> <nonce>", owned; NULL: free
    uint64_t seq;
    int64_t ts;
    size_t chain;                   //  the next slot in the same bucket, or S_NONE
} s_slot_t;

struct _pl_nonce_t {
    size_t max;                     //  slots in the ring
    s_slot_t *ring;                 //  owned; NULL until the first put
    size_t *buckets;                //  the first slot of each chain, owned
    size_t bucket_count;            //  a power of two, at least max
    size_t oldest;                  //  the slot the next put takes when full
    size_t size;                    //  slots in use
};

//  "<user lower-cased> <nonce>". Caller frees it; NULL if out of memory.
static char *
s_name (const char *user, const char *nonce)
{
    size_t user_size = strlen (user);
    size_t size = user_size + 1 + strlen (nonce) + 1;
    char *name = (char *) malloc (size);
    if (!name)
        return NULL;
    for (size_t index = 0; index < user_size; index++)
        name [index] = (char) tolower ((unsigned char) user [index]);
    name [user_size] = ' ';
    strcpy (name + user_size + 1, nonce);
    return name;
}

pl_nonce_t *
pl_nonce_new (size_t max)
{
    pl_nonce_t *self = (pl_nonce_t *) calloc (1, sizeof (pl_nonce_t));
    if (self)
        self->max = max;
    return self;
}

void
pl_nonce_destroy (pl_nonce_t **self_p)
{
    pl_nonce_t *self = *self_p;
    if (self) {
        pl_nonce_purge (self);
        free (self->ring);
        free (self->buckets);
        free (self);
        *self_p = NULL;
    }
}

//  Makes the ring and the table on first need. Returns 0 or -1.
static int
s_ready (pl_nonce_t *self)
{
    if (self->ring)
        return 0;
    size_t count = 16;
    while (count < self->max)
        count *= 2;
    self->ring = (s_slot_t *) calloc (self->max, sizeof (s_slot_t));
    self->buckets = (size_t *) malloc (count * sizeof (size_t));
    if (!self->ring || !self->buckets) {
        free (self->ring), self->ring = NULL;
        free (self->buckets), self->buckets = NULL;
        return -1;
    }
    for (size_t index = 0; index < count; index++)
        self->buckets [index] = S_NONE;
    self->bucket_count = count;
    return 0;
}

//  Where the link to the slot named name is, or the end of its chain
static size_t *
s_link (pl_nonce_t *self, const char *name)
{
    size_t *link = &self->buckets [pl_hash_name (name) & (self->bucket_count - 1)];
    while (*link != S_NONE && strcmp (self->ring [*link].name, name) != 0)
        link = &self->ring [*link].chain;
    return link;
}

//  Empties the oldest slot of a full ring, for reuse
static void
s_drop_oldest (pl_nonce_t *self)
{
    s_slot_t *slot = &self->ring [self->oldest];
    size_t *link = s_link (self, slot->name);
    *link = slot->chain;
    free (slot->name);
    slot->name = NULL;
    self->size--;
}

int
pl_nonce_put (pl_nonce_t *self, const char *user, const char *nonce, uint64_t seq, int64_t ts)
{
    if (self->max == 0)
        return 0;
    char *name = s_name (user, nonce);
    if (!name || s_ready (self)) {
        free (name);
        return -1;
    }
    size_t *link = s_link (self, name);
    if (*link != S_NONE) {
        self->ring [*link].seq = seq;
        self->ring [*link].ts = ts;
        free (name);
        return 0;
    }
    size_t index = (self->oldest + self->size) % self->max;
    if (self->size == self->max) {
        //  The oldest slot takes the newest entry; the next one is the oldest
        s_drop_oldest (self);
        index = self->oldest;
        self->oldest = (self->oldest + 1) % self->max;
        link = s_link (self, name);     //  its chain may have changed
    }
    self->ring [index] = (s_slot_t) { name, seq, ts, S_NONE };
    *link = index;
    self->size++;
    return 0;
}

bool
pl_nonce_get (pl_nonce_t *self, const char *user, const char *nonce, uint64_t *seq_p,
              int64_t *ts_p)
{
    if (!self->ring)
        return false;
    char *name = s_name (user, nonce);
    if (!name)
        return false;
    size_t index = *s_link (self, name);
    free (name);
    if (index == S_NONE)
        return false;
    *seq_p = self->ring [index].seq;
    *ts_p = self->ring [index].ts;
    return true;
}

void
pl_nonce_purge (pl_nonce_t *self)
{
    if (!self->ring)
        return;
    for (size_t index = 0; index < self->max; index++) {
        free (self->ring [index].name);
        self->ring [index].name = NULL;
    }
    for (size_t index = 0; index < self->bucket_count; index++)
        self->buckets [index] = S_NONE;
    self->oldest = 0;
    self->size = 0;
}

size_t
pl_nonce_size (pl_nonce_t *self)
{
    return self->size;
}

bool
pl_nonce_valid (const char *nonce)
{
    size_t length = strlen (nonce);
    if (length < 1 || length > PL_NONCE_MAX)
        return false;
    for (const char *cursor = nonce; *cursor; cursor++)
        if (!isalnum ((unsigned char) *cursor) && *cursor != '_' && *cursor != '-')
            return false;
    return true;
}

int
pl_nonce_read (const msgpack_object *map, char **nonce_p)
{
    *nonce_p = NULL;
    char *nonce = NULL;
    int found = pl_body_str (map, "nonce", &nonce);
    if (found == 0)
        return 0;
    if (found == 1 && pl_nonce_valid (nonce)) {
        *nonce_p = nonce;
        return 1;
    }
    free (nonce);
    return -1;
}

/*  =========================================================================
    pl_nonce - the recent nonces of one key (see pl_nonce.h)

    Map of the state: a ring of at most max slots, oldest first from
    'oldest', and a table of chains into it by the hash of the slot's name
    ("<lower-cased user> <nonce>": names hold no space). A slot holds its
    name itself: a message's put and look-ups allocate nothing. A chain is
    walked on two arrays beside the ring, each slot's hash and its next
    link (12 bytes a slot), the names compared only when the hashes agree:
    the send path of every message with a nonce comes here three times,
    mostly for a nonce that is not there, and a walk over the slots
    themselves (over 100 bytes each, a room's ring 130 KiB) missed the
    cache at every step. Putting into a full ring reuses the oldest slot,
    which first leaves its chain. All are made on the first put.
    =========================================================================
*/

#include "pl_nonce.h"
#include "pl_body.h"
#include "pl_limits.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define S_NONE      UINT32_MAX      //  the end of a chain
//  The longest name a slot holds: a user's name, a space, a nonce. A
//  longer one (no valid user's) is not remembered: the store still knows.
#define S_NAME_MAX  (PL_USERNAME_MAX + 1 + PL_NONCE_MAX)

typedef struct {
    uint64_t seq;
    int64_t ts;
    uint8_t size;                   //  of the name; 0: the slot is free
    char name [S_NAME_MAX];         //  "<user lower-cased> <nonce>", not terminated
} s_slot_t;

struct _pl_nonce_t {
    size_t max;                     //  slots in the ring
    s_slot_t *ring;                 //  owned; NULL until the first put
    uint64_t *hashes;               //  each slot's name's hash, owned
    uint32_t *chains;               //  each slot's next in its bucket, or S_NONE; owned
    uint32_t *buckets;              //  the first slot of each chain, owned
    size_t bucket_count;            //  a power of two, at least max
    size_t oldest;                  //  the slot the next put takes when full
    size_t size;                    //  slots in use
};

//  A name as a slot holds it, with its hash
typedef struct {
    char text [S_NAME_MAX];
    size_t size;
    uint64_t hash;
} s_name_t;

//  Makes user's nonce's name (FNV-1a as it goes). False when it is longer
//  than a slot holds.
static bool
s_name (s_name_t *name, const char *user, const char *nonce)
{
    size_t user_size = strlen (user);
    size_t nonce_size = strlen (nonce);
    if (user_size + 1 + nonce_size > S_NAME_MAX)
        return false;
    uint64_t hash = 14695981039346656037ULL;
    for (size_t index = 0; index < user_size; index++) {
        name->text [index] = (char) tolower ((unsigned char) user [index]);
        hash = (hash ^ (unsigned char) name->text [index]) * 1099511628211ULL;
    }
    name->text [user_size] = ' ';
    hash = (hash ^ ' ') * 1099511628211ULL;
    for (size_t index = 0; index < nonce_size; index++)
        hash = (hash ^ (unsigned char) nonce [index]) * 1099511628211ULL;
    memcpy (name->text + user_size + 1, nonce, nonce_size);
    name->size = user_size + 1 + nonce_size;
    name->hash = hash;
    return true;
}

pl_nonce_t *
pl_nonce_new (size_t max)
{
    pl_nonce_t *self = (pl_nonce_t *) calloc (1, sizeof (pl_nonce_t));
    if (self)
        //  Slots are counted by uint32_t links
        self->max = max < S_NONE? max: S_NONE - 1;
    return self;
}

void
pl_nonce_destroy (pl_nonce_t **self_p)
{
    pl_nonce_t *self = *self_p;
    if (self) {
        free (self->ring);
        free (self->hashes);
        free (self->chains);
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
    self->hashes = (uint64_t *) calloc (self->max, sizeof (uint64_t));
    self->chains = (uint32_t *) calloc (self->max, sizeof (uint32_t));
    self->buckets = (uint32_t *) malloc (count * sizeof (uint32_t));
    if (!self->ring || !self->hashes || !self->chains || !self->buckets) {
        free (self->ring), self->ring = NULL;
        free (self->hashes), self->hashes = NULL;
        free (self->chains), self->chains = NULL;
        free (self->buckets), self->buckets = NULL;
        return -1;
    }
    for (size_t index = 0; index < count; index++)
        self->buckets [index] = S_NONE;
    self->bucket_count = count;
    return 0;
}

//  Where the link to the slot with this name and hash is, or the end of
//  its chain
static uint32_t *
s_link (pl_nonce_t *self, const char *name, size_t size, uint64_t hash)
{
    uint32_t *link = &self->buckets [hash & (self->bucket_count - 1)];
    while (*link != S_NONE) {
        if (self->hashes [*link] == hash) {
            const s_slot_t *slot = &self->ring [*link];
            if (slot->size == size && memcmp (slot->name, name, size) == 0)
                break;
        }
        link = &self->chains [*link];
    }
    return link;
}

//  Empties the oldest slot of a full ring, for reuse
static void
s_drop_oldest (pl_nonce_t *self)
{
    s_slot_t *slot = &self->ring [self->oldest];
    uint32_t *link = s_link (self, slot->name, slot->size, self->hashes [self->oldest]);
    *link = self->chains [self->oldest];
    slot->size = 0;
    self->size--;
}

int
pl_nonce_put (pl_nonce_t *self, const char *user, const char *nonce, uint64_t seq, int64_t ts)
{
    s_name_t name;
    if (self->max == 0 || !s_name (&name, user, nonce))
        return 0;
    if (s_ready (self))
        return -1;
    uint32_t *link = s_link (self, name.text, name.size, name.hash);
    if (*link != S_NONE) {
        self->ring [*link].seq = seq;
        self->ring [*link].ts = ts;
        return 0;
    }
    size_t index = (self->oldest + self->size) % self->max;
    if (self->size == self->max) {
        //  The oldest slot takes the newest entry; the next one is the oldest
        s_drop_oldest (self);
        index = self->oldest;
        self->oldest = (self->oldest + 1) % self->max;
        link = s_link (self, name.text, name.size, name.hash);     //  its chain may have changed
    }
    s_slot_t *slot = &self->ring [index];
    self->hashes [index] = name.hash;
    self->chains [index] = S_NONE;
    slot->seq = seq;
    slot->ts = ts;
    slot->size = (uint8_t) name.size;
    memcpy (slot->name, name.text, name.size);
    *link = (uint32_t) index;
    self->size++;
    return 0;
}

bool
pl_nonce_get (pl_nonce_t *self, const char *user, const char *nonce, uint64_t *seq_p,
              int64_t *ts_p)
{
    s_name_t name;
    if (!self->ring || !s_name (&name, user, nonce))
        return false;
    uint32_t index = *s_link (self, name.text, name.size, name.hash);
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
    for (size_t index = 0; index < self->max; index++)
        self->ring [index].size = 0;
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

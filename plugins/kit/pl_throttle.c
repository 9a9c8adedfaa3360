/*  =========================================================================
    pl_throttle - at most one event per (who, where) every interval (see
    pl_throttle.h)

    Map of the state: a table of chains by the hash of the entry's name
    ("<who lower-cased>\n<where lower-cased>": names hold no newline), and
    the same entries in one list by the time they passed, oldest first.
    An entry is only ever put at the newest end (one that passes again
    was dropped as expired first), so the list stays in time order and
    expiry is a walk from its head.
    =========================================================================
*/

#include "pl_throttle.h"
#include "pl_hash.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define S_SLOTS_MIN     64              //  the table's first size

typedef struct s_entry_s s_entry_t;
struct s_entry_s {
    char *name;                     //  owned
    int64_t passed;                 //  monotonic ms it last passed
    s_entry_t *chain;               //  next entry in the same slot
    s_entry_t *newer;               //  next in the list by time
};

struct _pl_throttle_t {
    int64_t interval_ms;            //  one pass per name this often
    size_t max;                     //  entries kept at most
    s_entry_t **slots;              //  owned; NULL until the first entry
    size_t count;                   //  slots, a power of two
    size_t size;                    //  entries
    s_entry_t *oldest;              //  the list's head: the first to expire
    s_entry_t *newest;              //  its tail
};

//  "<who>\n<where>", lower-cased. Caller frees it; NULL if out of memory.
static char *
s_name (const char *who, const char *where)
{
    size_t who_size = strlen (who);
    size_t size = who_size + 1 + strlen (where) + 1;
    char *name = (char *) malloc (size);
    if (!name)
        return NULL;
    memcpy (name, who, who_size);
    name [who_size] = '\n';
    strcpy (name + who_size + 1, where);
    for (char *cursor = name; *cursor; cursor++)
        *cursor = (char) tolower ((unsigned char) *cursor);
    return name;
}

pl_throttle_t *
pl_throttle_new (int64_t interval_ms, size_t max)
{
    pl_throttle_t *self = (pl_throttle_t *) calloc (1, sizeof (pl_throttle_t));
    if (self) {
        self->interval_ms = interval_ms > 0? interval_ms: 0;
        self->max = max > 0? max: 1;
    }
    return self;
}

void
pl_throttle_destroy (pl_throttle_t **self_p)
{
    pl_throttle_t *self = *self_p;
    if (self) {
        while (self->oldest) {
            s_entry_t *entry = self->oldest;
            self->oldest = entry->newer;
            free (entry->name);
            free (entry);
        }
        free (self->slots);
        free (self);
        *self_p = NULL;
    }
}

//  Where the link to the entry named name is, or the end of its chain
static s_entry_t **
s_link (pl_throttle_t *self, const char *name)
{
    s_entry_t **link = &self->slots [pl_hash_name (name) & (self->count - 1)];
    while (*link && strcmp ((*link)->name, name) != 0)
        link = &(*link)->chain;
    return link;
}

//  Drops the oldest entry: out of its chain and off the list's head
static void
s_drop_oldest (pl_throttle_t *self)
{
    s_entry_t *entry = self->oldest;
    s_entry_t **link = s_link (self, entry->name);
    *link = entry->chain;
    self->oldest = entry->newer;
    if (!self->oldest)
        self->newest = NULL;
    self->size--;
    free (entry->name);
    free (entry);
}

//  Makes the table on first need, and doubles it when it holds as many
//  entries as slots (a failed allocation leaves longer chains). Returns 0,
//  or -1 when there is no table.
static int
s_table_ready (pl_throttle_t *self)
{
    if (!self->slots) {
        self->slots = (s_entry_t **) calloc (S_SLOTS_MIN, sizeof (s_entry_t *));
        self->count = self->slots? S_SLOTS_MIN: 0;
        return self->slots? 0: -1;
    }
    if (self->size < self->count)
        return 0;
    size_t count = self->count * 2;
    s_entry_t **slots = (s_entry_t **) calloc (count, sizeof (s_entry_t *));
    if (!slots)
        return 0;
    for (s_entry_t *entry = self->oldest; entry; entry = entry->newer) {
        s_entry_t **slot = &slots [pl_hash_name (entry->name) & (count - 1)];
        entry->chain = *slot;
        *slot = entry;
    }
    free (self->slots);
    self->slots = slots;
    self->count = count;
    return 0;
}

//  Remembers name (taken) as passed at now, at the list's newest end
static void
s_put (pl_throttle_t *self, char *name, int64_t now)
{
    s_entry_t *entry = (s_entry_t *) calloc (1, sizeof (s_entry_t));
    if (!entry || s_table_ready (self) != 0) {
        free (entry);
        free (name);
        return;
    }
    entry->name = name;
    entry->passed = now;
    s_entry_t **link = s_link (self, name);
    *link = entry;
    if (self->newest)
        self->newest->newer = entry;
    else
        self->oldest = entry;
    self->newest = entry;
    self->size++;
}

bool
pl_throttle_pass (pl_throttle_t *self, const char *who, const char *where, int64_t now)
{
    if (self->interval_ms == 0)
        return true;
    while (self->oldest && now - self->oldest->passed >= self->interval_ms)
        s_drop_oldest (self);
    char *name = s_name (who, where);
    if (!name)
        return true;
    if (self->slots && *s_link (self, name)) {
        free (name);                //  passed within the interval
        return false;
    }
    while (self->size >= self->max)
        s_drop_oldest (self);
    s_put (self, name, now);
    return true;
}

size_t
pl_throttle_size (pl_throttle_t *self)
{
    return self->size;
}

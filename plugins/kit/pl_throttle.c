/*  =========================================================================
    pl_throttle - at most one event per (who, where) every interval (see
    pl_throttle.h)

    Map of the state: a table of chains by the hash of the entry's name
    ("<who lower-cased>\n<where lower-cased>": names hold no newline), and
    the same entries in one list by the time they passed, oldest first.
    An entry is only ever put at the newest end (one that passes again
    was dropped as expired first, or handed its held value over and was
    moved there as passed now), so the list stays in time order and
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
    //  A held value (pl_throttle_hold), with the names as given: owned,
    //  both NULL when nothing is held
    char *who;
    char *where;
    uint64_t value;
};

struct _pl_throttle_t {
    int64_t interval_ms;            //  one pass per name this often
    size_t max;                     //  entries kept at most
    s_entry_t **slots;              //  owned; NULL until the first entry
    size_t count;                   //  slots, a power of two
    size_t size;                    //  entries
    s_entry_t *oldest;              //  the list's head: the first to expire
    s_entry_t *newest;              //  its tail
    size_t held;                    //  entries that hold a value
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

static void
s_entry_destroy (s_entry_t **entry_p)
{
    s_entry_t *entry = *entry_p;
    free (entry->name);
    free (entry->who);
    free (entry->where);
    free (entry);
    *entry_p = NULL;
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
            s_entry_destroy (&entry);
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

//  Takes the oldest entry out of its chain and off the list's head.
//  Caller owns it.
static s_entry_t *
s_unlink_oldest (pl_throttle_t *self)
{
    s_entry_t *entry = self->oldest;
    s_entry_t **link = s_link (self, entry->name);
    *link = entry->chain;
    self->oldest = entry->newer;
    if (!self->oldest)
        self->newest = NULL;
    entry->chain = entry->newer = NULL;
    self->size--;
    return entry;
}

//  Puts entry at the list's newest end and into its chain
static void
s_link_newest (pl_throttle_t *self, s_entry_t *entry)
{
    s_entry_t **link = s_link (self, entry->name);
    *link = entry;
    if (self->newest)
        self->newest->newer = entry;
    else
        self->oldest = entry;
    self->newest = entry;
    self->size++;
}

//  Hands entry's held value to due and forgets it; the names are freed
//  after the call, once the throttle is whole again (due may call in)
static void
s_hand_over (pl_throttle_t *self, s_entry_t *entry, pl_throttle_due_fn *due, void *arg)
{
    char *who = entry->who;
    char *where = entry->where;
    entry->who = entry->where = NULL;
    self->held--;
    if (due)
        due (arg, who, where, entry->value);
    free (who);
    free (where);
}

//  Drops the oldest entry, handing over what it holds first: the bound
//  may deliver early, never lose
static void
s_drop_oldest (pl_throttle_t *self, pl_throttle_due_fn *due, void *arg)
{
    s_entry_t *entry = s_unlink_oldest (self);
    if (entry->who)
        s_hand_over (self, entry, due, arg);
    s_entry_destroy (&entry);
}

//  Walks the entries whose interval is over at now, oldest first: one that
//  holds a value hands it over and passes again at now (to the newest
//  end); the others are dropped
static void
s_expire (pl_throttle_t *self, int64_t now, pl_throttle_due_fn *due, void *arg)
{
    while (self->oldest && now - self->oldest->passed >= self->interval_ms) {
        if (self->oldest->who && due) {
            s_entry_t *entry = s_unlink_oldest (self);
            entry->passed = now;
            s_link_newest (self, entry);
            s_hand_over (self, entry, due, arg);
        }
        else
            s_drop_oldest (self, due, arg);
    }
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

//  Remembers name (taken) as passed at now, at the list's newest end.
//  Returns the entry, or NULL when out of memory (name is freed).
static s_entry_t *
s_put (pl_throttle_t *self, char *name, int64_t now)
{
    s_entry_t *entry = (s_entry_t *) calloc (1, sizeof (s_entry_t));
    if (!entry || s_table_ready (self) != 0) {
        free (entry);
        free (name);
        return NULL;
    }
    entry->name = name;
    entry->passed = now;
    s_link_newest (self, entry);
    return entry;
}

bool
pl_throttle_pass (pl_throttle_t *self, const char *who, const char *where, int64_t now)
{
    return pl_throttle_hold (self, who, where, 0, now, NULL, NULL);
}

//  The entry of name, or NULL
static s_entry_t *
s_find (pl_throttle_t *self, const char *name)
{
    return self->slots? *s_link (self, name): NULL;
}

//  Keeps value for entry, the largest of those held; false when out of
//  memory (nothing is held then)
static bool
s_keep (pl_throttle_t *self, s_entry_t *entry, const char *who, const char *where,
        uint64_t value)
{
    if (entry->who) {
        if (value > entry->value)
            entry->value = value;
        return true;
    }
    entry->who = strdup (who);
    entry->where = strdup (where);
    if (!entry->who || !entry->where) {
        free (entry->who);
        free (entry->where);
        entry->who = entry->where = NULL;
        return false;
    }
    entry->value = value;
    self->held++;
    return true;
}

bool
pl_throttle_hold (pl_throttle_t *self, const char *who, const char *where,
                  uint64_t value, int64_t now, pl_throttle_due_fn *due, void *arg)
{
    if (self->interval_ms == 0)
        return true;
    s_expire (self, now, due, arg);
    char *name = s_name (who, where);
    if (!name)
        return true;
    s_entry_t *entry = s_find (self, name);
    if (entry) {
        free (name);                //  passed within the interval
        //  A throttle that passes (no due) swallows; one that holds keeps
        //  the value, or lets it pass when it cannot
        return due? !s_keep (self, entry, who, where, value): false;
    }
    while (self->size >= self->max)
        s_drop_oldest (self, due, arg);
    s_put (self, name, now);
    return true;
}

void
pl_throttle_due (pl_throttle_t *self, int64_t now, pl_throttle_due_fn *due, void *arg)
{
    s_expire (self, now, due, arg);
}

void
pl_throttle_settle (pl_throttle_t *self, const char *who, const char *where, uint64_t value)
{
    char *name = s_name (who, where);
    s_entry_t *entry = name? s_find (self, name): NULL;
    free (name);
    if (entry && entry->who && entry->value <= value)
        s_hand_over (self, entry, NULL, NULL);
}

size_t
pl_throttle_held (pl_throttle_t *self)
{
    return self->held;
}

size_t
pl_throttle_size (pl_throttle_t *self)
{
    return self->size;
}

/*  =========================================================================
    au_limiter - counts failures per key in a sliding window, with a bound

    Each key keeps the times of its last max_failures failures in a ring.
    The key is limited while the ring is full and its oldest time is still
    inside the window: that is exactly "max_failures failures within the last
    window_ms". Keys sit in a list ordered by their last failure, oldest
    first, which is both the eviction order and the expiry order.
    =========================================================================
*/

#include "au_limiter.h"

#include <czmq.h>

typedef struct {
    char *key;                      //  owned copy of the key
    int64_t *times;                 //  ring of failure times, max_failures long
    size_t count;                   //  failures in the ring, up to max_failures
    size_t oldest;                  //  index of the oldest failure in the ring
    void *handle;                   //  this entry's place in the limiter's order
} s_entry_t;

struct _au_limiter_t {
    size_t max_failures;            //  failures allowed within the window
    int64_t window_ms;              //  the sliding window
    size_t max_keys;                //  bound of the table
    zhashx_t *entries;              //  key -> s_entry_t *
    zlistx_t *order;                //  s_entry_t *, oldest last failure first
};

static void
s_entry_destroy (s_entry_t **self_p)
{
    s_entry_t *self = *self_p;
    if (self) {
        free (self->key);
        free (self->times);
        free (self);
        *self_p = NULL;
    }
}

//  The newest failure time of an entry that has at least one
static int64_t
s_entry_newest (au_limiter_t *limiter, s_entry_t *entry)
{
    size_t newest = (entry->oldest + entry->count - 1) % limiter->max_failures;
    return entry->times [newest];
}

//  Removes an entry from both containers and frees it
static void
s_remove (au_limiter_t *self, s_entry_t *entry)
{
    zlistx_delete (self->order, entry->handle);
    zhashx_delete (self->entries, entry->key);
    s_entry_destroy (&entry);
}

au_limiter_t *
au_limiter_new (size_t max_failures, int64_t window_ms, size_t max_keys)
{
    if (max_failures && (window_ms <= 0 || max_keys == 0))
        return NULL;
    au_limiter_t *self = (au_limiter_t *) calloc (1, sizeof (au_limiter_t));
    if (!self)
        return NULL;
    self->max_failures = max_failures;
    self->window_ms = window_ms;
    self->max_keys = max_keys;
    self->entries = zhashx_new ();
    self->order = zlistx_new ();
    if (!self->entries || !self->order) {
        au_limiter_destroy (&self);
        return NULL;
    }
    return self;
}

void
au_limiter_destroy (au_limiter_t **self_p)
{
    au_limiter_t *self = *self_p;
    if (self) {
        if (self->order) {
            s_entry_t *entry = (s_entry_t *) zlistx_first (self->order);
            while (entry) {
                s_entry_destroy (&entry);
                entry = (s_entry_t *) zlistx_next (self->order);
            }
            zlistx_destroy (&self->order);
        }
        zhashx_destroy (&self->entries);
        free (self);
        *self_p = NULL;
    }
}

int64_t
au_limiter_check (au_limiter_t *self, const char *key, int64_t now)
{
    assert (self);
    assert (key);
    if (!self->max_failures)
        return 0;
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->entries, key);
    if (!entry || entry->count < self->max_failures)
        return 0;
    int64_t free_at = entry->times [entry->oldest] + self->window_ms;
    return free_at > now ? free_at - now : 0;
}

int
au_limiter_fail (au_limiter_t *self, const char *key, int64_t now)
{
    assert (self);
    assert (key);
    if (!self->max_failures)
        return 0;
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->entries, key);
    if (!entry) {
        if (zhashx_size (self->entries) >= self->max_keys)
            s_remove (self, (s_entry_t *) zlistx_first (self->order));
        entry = (s_entry_t *) calloc (1, sizeof (s_entry_t));
        if (!entry)
            return -1;
        entry->key = strdup (key);
        entry->times = (int64_t *) calloc (self->max_failures, sizeof (int64_t));
        if (!entry->key || !entry->times) {
            s_entry_destroy (&entry);
            return -1;
        }
        entry->handle = zlistx_add_end (self->order, entry);
        if (!entry->handle || zhashx_insert (self->entries, entry->key, entry)) {
            if (entry->handle)
                zlistx_delete (self->order, entry->handle);
            s_entry_destroy (&entry);
            return -1;
        }
    }
    else
        zlistx_move_end (self->order, entry->handle);

    if (entry->count < self->max_failures) {
        entry->times [(entry->oldest + entry->count) % self->max_failures] = now;
        entry->count++;
    }
    else {
        //  Full: the newest failure takes the oldest one's place
        entry->times [entry->oldest] = now;
        entry->oldest = (entry->oldest + 1) % self->max_failures;
    }
    return 0;
}

void
au_limiter_clear (au_limiter_t *self, const char *key)
{
    assert (self);
    assert (key);
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->entries, key);
    if (entry)
        s_remove (self, entry);
}

void
au_limiter_expire (au_limiter_t *self, int64_t now)
{
    assert (self);
    s_entry_t *entry = (s_entry_t *) zlistx_first (self->order);
    while (entry && s_entry_newest (self, entry) + self->window_ms <= now) {
        s_remove (self, entry);
        entry = (s_entry_t *) zlistx_first (self->order);
    }
}

size_t
au_limiter_size (au_limiter_t *self)
{
    assert (self);
    return zhashx_size (self->entries);
}

/*  =========================================================================
    st_list - a list answer bounded by its limit and by its bytes
    =========================================================================
*/

#include "st_list.h"
#include "st_request.h"

#include <stdlib.h>
#include <string.h>

struct st_list_s {
    uint32_t limit;                 //  items at most
    bool reversed;                  //  written out last pushed first
    bool more;                      //  items remain past the last taken
    msgpack_sbuffer items;          //  the items taken, packed, then the next
    msgpack_packer packer;          //  writes into items
    size_t *starts;                 //  reversed: where each item starts
    uint32_t count;                 //  items taken
    size_t taken;                   //  bytes of items taken
};

st_list_t *
st_list_new (uint32_t limit, bool reversed)
{
    st_list_t *self = (st_list_t *) calloc (1, sizeof (st_list_t));
    if (!self)
        return NULL;
    self->limit = limit;
    self->reversed = reversed;
    msgpack_sbuffer_init (&self->items);
    msgpack_packer_init (&self->packer, &self->items, msgpack_sbuffer_write);
    //  A reversed list is a history page: its limit is at most 1000
    if (reversed && limit <= 100000) {
        self->starts = (size_t *) malloc (((size_t) limit + 1) * sizeof (size_t));
        if (!self->starts) {
            st_list_destroy (&self);
            return NULL;
        }
    }
    return self;
}

void
st_list_destroy (st_list_t **self_p)
{
    st_list_t *self = *self_p;
    if (!self)
        return;
    msgpack_sbuffer_destroy (&self->items);
    free (self->starts);
    free (self);
    *self_p = NULL;
}

msgpack_packer *
st_list_packer (st_list_t *self)
{
    return &self->packer;
}

bool
st_list_push (st_list_t *self)
{
    //  The first item is always taken: an answer holds at least one
    if (self->count == self->limit || (self->count && self->items.size > ST_LIST_BUDGET)
    ||  (self->reversed && !self->starts)) {
        self->items.size = self->taken;     //  the answer stops at a whole item
        self->more = true;
        return false;
    }
    if (self->starts)
        self->starts [self->count] = self->taken;
    self->count++;
    self->taken = self->items.size;
    return true;
}

void
st_list_set_more (st_list_t *self)
{
    self->more = true;
}

bool
st_list_more (const st_list_t *self)
{
    return self->more;
}

uint32_t
st_list_count (const st_list_t *self)
{
    return self->count;
}

void
st_list_finish (st_list_t *self, msgpack_packer *packer, const char *key)
{
    msgpack_pack_str_with_body (packer, key, strlen (key));
    msgpack_pack_array (packer, self->count);
    if (!self->reversed) {
        packer->callback (packer->data, self->items.data, self->taken);
        return;
    }
    for (uint32_t index = self->count; index-- > 0;) {
        size_t end = index + 1 < self->count ? self->starts [index + 1] : self->taken;
        packer->callback (packer->data, self->items.data + self->starts [index],
                          end - self->starts [index]);
    }
}

void
st_list_answer (st_list_t *self, st_request_t *request, const char *key)
{
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 2);
    st_list_finish (self, packer, key);
    msgpack_pack_str_with_body (packer, "more", 4);
    if (self->more)
        msgpack_pack_true (packer);
    else
        msgpack_pack_false (packer);
}

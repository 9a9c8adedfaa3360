/*  =========================================================================
    st_list - a list answer bounded by its limit and by its bytes

    proto/STORE.md, "Answers bounded by bytes": a list stops at a whole
    item when its limit is reached or when the next item would pass
    ST_LIST_BUDGET, and says so with `more: true`. A history page read
    from its cursor's side keeps the items next to the cursor: a list made
    reversed writes its items out in the opposite order of their packing
    (rows read newest first, answered oldest first).

        st_list_t *list = st_list_new (limit, false);
        while (row) {
            st_reply_room (st_list_packer (list), &room);
            if (!st_list_push (list))
                break;              //  past the limit or the bytes: more
        }
        st_list_finish (list, st_request_packer (request), "rooms");
        //  then the answer's other fields, e.g. st_list_more (list)
        st_list_destroy (&list);

    Ownership: the caller owns the list (st_list_new, st_list_destroy).
    =========================================================================
*/

#ifndef ST_LIST_H_INCLUDED
#define ST_LIST_H_INCLUDED

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  What the items of one answer may take, packed: the envelope's body
//  limit (1 MiB) less 64 KiB for the rest of the answer
#define ST_LIST_BUDGET          (1024 * 1024 - 64 * 1024)

typedef struct st_list_s st_list_t;

//  A list of at most limit items (UINT32_MAX for no limit but the bytes);
//  reversed writes the items out last pushed first. NULL when out of memory.
st_list_t *
    st_list_new (uint32_t limit, bool reversed);

void
    st_list_destroy (st_list_t **self_p);

//  The packer for the next item: pack exactly one item, then push
msgpack_packer *
    st_list_packer (st_list_t *self);

//  Takes the item packed since the last push. Returns true when taken;
//  false when dropped because it passed the limit or the budget: the list
//  then says more, and the caller stops. The first item is always taken
//  for its bytes (an answer holds at least one; proto/STORE.md). So a caller reads one row more
//  than its limit and pushes each until a push fails.
bool
    st_list_push (st_list_t *self);

//  Says that items remain after the last one taken, for a caller that
//  knows it without packing one more
void
    st_list_set_more (st_list_t *self);

bool
    st_list_more (const st_list_t *self);

//  Items taken
uint32_t
    st_list_count (const st_list_t *self);

//  Packs key and the array of the items taken into packer (the caller has
//  opened the answer map); the caller packs "more" itself if the answer has it
void
    st_list_finish (st_list_t *self, msgpack_packer *packer, const char *key);

//  The common answer {key: [items], more: bool} into the request's packer
//  (as a whole map of two fields)
struct st_request_s;
void
    st_list_answer (st_list_t *self, struct st_request_s *request, const char *key);

#ifdef __cplusplus
}
#endif

#endif

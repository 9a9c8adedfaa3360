/*  =========================================================================
    rm_list - room.list and room.directory: pages of rooms from the store

    Neither request names a room, so any instance of the rooms plugin
    answers them, from the store alone (store.room.joined, store.room.public,
    store.room.directory: proto/STORE.md). Each reply stays under the
    client's reply limit (pl_reply): a page that would pass it stops at a
    whole room and carries `next`, an opaque cursor the client sends back
    as `cursor` (proto/CLIENT-PROTOCOL.md, "Rooms", for its form and the
    order of room.list).

    The pager owns the pages in flight; each is the context of its store
    calls, sent through the plugin's pl_call (which the pager borrows and
    which must outlive it): the plugin's on_reply is pl_call_reply.

        rm_list_t *lists = rm_list_new (ctx, host, calls, 200);
        rm_list_request (lists, request, "room.list");      //  takes the request
        rm_list_destroy (&lists);
    =========================================================================
*/

#ifndef RM_LIST_H_INCLUDED
#define RM_LIST_H_INCLUDED

#include "parley_plugin.h"
#include "pl_call.h"

#include <msgpack.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _rm_list_t rm_list_t;

//  Creates a pager whose store calls go through calls (borrowed).
//  public_max: the other public rooms room.list gives at most (PROTOCOL.md:
//  200). Caller owns return value; NULL if out of memory.
rm_list_t *
    rm_list_new (parley_ctx_t *ctx, const parley_host_t *host, pl_call_t *calls,
                 uint32_t public_max);

//  Destroys the pager and its pages; the requests still held belong to the
//  host after destroy. Nullifies the reference.
void
    rm_list_destroy (rm_list_t **self_p);

//  Serves room.list or room.directory (type): takes the request, which the
//  host lends until it is answered, now (bad input, the store unreachable)
//  or when the store has answered.
void
    rm_list_request (rm_list_t *self, parley_request_t *request, const char *type);

#ifdef __cplusplus
}
#endif

#endif

/*  =========================================================================
    pl_file - a message's file (PROTOCOL.md 1.1 "Files"): msg.send's and
    pm.send's 'file', looked up before the lane takes the send

    A send that names a file (the id of an upload) must name a complete
    file of its sender's. The check is a store call (store.file.get), made
    before the send enters its key's lane, so that the lane never waits on
    it: pl_file_check_request takes such a send, asks the store, answers
    bad_request itself when the file is not one of the sender's uploads,
    and otherwise hands the request to the plugin's submit (which gives it
    to the lane). While submit runs, the file is known to pl_change_read,
    which copies it into the send's change: the store entry and the
    delivered entry carry it as {id, name, size, type} (pl_change_pack).

    Ownership: pl_file_check_new returns a checker the caller owns,
    destroyed with pl_file_check_destroy before the pl_call it borrows.
    A request it takes is held until the store answers, then answered or
    handed to submit.
    =========================================================================
*/

#ifndef PL_FILE_H_INCLUDED
#define PL_FILE_H_INCLUDED

#include "parley_plugin.h"
#include "pl_call.h"
#include "pl_limits.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  A file as a message carries it; id "" for none
typedef struct {
    char id [PL_FILE_ID_MAX + 1];
    char name [PL_FILE_NAME_MAX + 1];
    uint64_t size;
    char type [PL_FILE_TYPE_MAX + 1];
} pl_file_t;

typedef struct _pl_file_check_t pl_file_check_t;

//  Hands a send whose file was checked to the lane (takes the request)
typedef void (pl_file_submit_fn) (void *plugin, parley_request_t **request_p);

//  A checker whose store calls go through calls (made with plugin as its
//  state). NULL when out of memory.
pl_file_check_t *
    pl_file_check_new (const parley_host_t *host, parley_ctx_t *ctx, pl_call_t *calls,
                       pl_file_submit_fn *submit, void *plugin);

//  Drops the sends still waiting for the store (their requests go back to
//  the host with the plugin) and nullifies the reference
void
    pl_file_check_destroy (pl_file_check_t **self_p);

//  Takes a send whose body names a 'file' (returns 0, *request_p
//  nullified: answered now or later, or submitted); returns -1 for a
//  request without one (left to the caller)
int
    pl_file_check_request (pl_file_check_t *self, parley_request_t **request_p);

//  The file of the send being submitted now, or NULL (for pl_change_read)
const pl_file_t *
    pl_file_checked (void);

//  True when map names a file (a field 'file')
bool
    pl_file_named (const msgpack_object *map);

//  The map {id, name, size, type} of file, into an open map's value
void
    pl_file_pack (const pl_file_t *file, msgpack_packer *packer);

//  Its JSON bytes as the client gets them
size_t
    pl_file_json_size (const pl_file_t *file);

#ifdef __cplusplus
}
#endif

#endif

/*  =========================================================================
    ss_backup - a consistent copy of the live database, made while the
    store serves (parleyctl backup FILE)

    One backup at a time, on a thread of its own with a read-only
    connection of its own: it opens a read transaction on the file (WAL: a
    snapshot that writers never block nor disturb) and copies it page by
    page with SQLite's online backup API, SQLITE_BACKUP_PAGES pages a step,
    into FILE.partial beside FILE. Every write acknowledged before the
    backup started is in the snapshot. Then it runs integrity_check on the
    copy, fsyncs it, renames it to FILE (atomic: FILE is whole or absent)
    and fsyncs the folder. The store's own thread never waits for it: it
    only reads the state (under a lock) when asked.

    Ownership: ss_backup_new returns an object the caller owns; destroying
    it waits for a running copy to finish. host and ctx are borrowed (for
    the log, on the store's thread only).
    =========================================================================
*/

#ifndef SS_BACKUP_H_INCLUDED
#define SS_BACKUP_H_INCLUDED

#include "parley_plugin.h"

#include <msgpack.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Pages copied in one step of the backup API
#define SS_BACKUP_PAGES         256

typedef struct ss_backup_s ss_backup_t;

ss_backup_t *
    ss_backup_new (parley_ctx_t *ctx, const parley_host_t *host);

void
    ss_backup_destroy (ss_backup_t **self_p);

//  Starts copying the database file source to path (absolute, a file that
//  does not exist in a folder that does). Returns NULL when started, or a
//  STORE.md error code (conflict: one is running, or path exists;
//  bad_request: path refused; internal) with a sentence in message.
const char *
    ss_backup_start (ss_backup_t *self, const char *source, const char *path,
                     char *message, size_t message_size);

//  Packs {state ("idle", "running", "done", "failed"), path, pages_done,
//  pages, bytes, integrity, error, started_at, finished_at}
void
    ss_backup_status (ss_backup_t *self, msgpack_packer *packer);

#ifdef __cplusplus
}
#endif

#endif

/*  =========================================================================
    ss_backup - a consistent copy of the live database, made while the
    store serves (parleyctl backup FILE)
    =========================================================================
*/

#include "ss_backup.h"
#include "pl_body.h"
#include "pl_thread.h"
#include "pl_time.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum { S_IDLE, S_RUNNING, S_DONE, S_FAILED } s_state_t;

static const char *s_state_names [] = { "idle", "running", "done", "failed" };

struct ss_backup_s {
    parley_ctx_t *ctx;              //  the host's handle, for the log
    const parley_host_t *host;
    pthread_t thread;
    bool joinable;                  //  a thread was started and not joined
    bool reported;                  //  the end was logged
    pthread_mutex_t lock;           //  guards what follows
    s_state_t state;
    char *source;                   //  the live file
    char *path;                     //  the backup's file
    int64_t pages_done, pages;
    int64_t bytes;
    char integrity [64];
    char error [256];
    int64_t started_at, finished_at;
};

ss_backup_t *
ss_backup_new (parley_ctx_t *ctx, const parley_host_t *host)
{
    ss_backup_t *self = (ss_backup_t *) calloc (1, sizeof (ss_backup_t));
    if (!self)
        return NULL;
    self->ctx = ctx;
    self->host = host;
    pthread_mutex_init (&self->lock, NULL);
    return self;
}

void
ss_backup_destroy (ss_backup_t **self_p)
{
    ss_backup_t *self = *self_p;
    if (!self)
        return;
    if (self->joinable)
        pthread_join (self->thread, NULL);
    pthread_mutex_destroy (&self->lock);
    free (self->source);
    free (self->path);
    free (self);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  On the backup's thread

static void
s_fail (ss_backup_t *self, const char *what, const char *why)
{
    pthread_mutex_lock (&self->lock);
    snprintf (self->error, sizeof self->error, "%s: %s", what, why);
    self->state = S_FAILED;
    self->finished_at = pl_time_now ();
    pthread_mutex_unlock (&self->lock);
}

//  Copies the snapshot page by page. Returns 0, or -1 after s_fail.
static int
s_copy (ss_backup_t *self, sqlite3 *source, sqlite3 *copy)
{
    //  A read transaction for the whole copy: one snapshot, and no restart
    //  when the store commits meanwhile (it writes through another connection)
    if (sqlite3_exec (source, "BEGIN; SELECT count (*) FROM sqlite_schema", NULL, NULL, NULL)
            != SQLITE_OK) {
        s_fail (self, "cannot read the database", sqlite3_errmsg (source));
        return -1;
    }
    sqlite3_backup *backup = sqlite3_backup_init (copy, "main", source, "main");
    if (!backup) {
        s_fail (self, "cannot start the backup", sqlite3_errmsg (copy));
        return -1;
    }
    int rc;
    do {
        rc = sqlite3_backup_step (backup, SS_BACKUP_PAGES);
        pthread_mutex_lock (&self->lock);
        self->pages = sqlite3_backup_pagecount (backup);
        self->pages_done = self->pages - sqlite3_backup_remaining (backup);
        pthread_mutex_unlock (&self->lock);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
            usleep (10000);
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    sqlite3_backup_finish (backup);
    sqlite3_exec (source, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_DONE) {
        s_fail (self, "the copy failed", sqlite3_errstr (rc));
        return -1;
    }
    return 0;
}

//  integrity_check on the copy; its first line into the state
static int
s_check (ss_backup_t *self, sqlite3 *copy)
{
    sqlite3_stmt *stmt = NULL;
    const char *answer = NULL;
    if (sqlite3_prepare_v2 (copy, "PRAGMA integrity_check", -1, &stmt, NULL) == SQLITE_OK
    &&  sqlite3_step (stmt) == SQLITE_ROW)
        answer = (const char *) sqlite3_column_text (stmt, 0);
    pthread_mutex_lock (&self->lock);
    snprintf (self->integrity, sizeof self->integrity, "%s", answer ? answer : "unknown");
    pthread_mutex_unlock (&self->lock);
    bool ok = answer && strcmp (answer, "ok") == 0;
    if (!ok)
        s_fail (self, "integrity_check of the copy", answer ? answer : sqlite3_errmsg (copy));
    sqlite3_finalize (stmt);
    return ok ? 0 : -1;
}

//  fsync of a file or a folder; -1 after s_fail
static int
s_sync (ss_backup_t *self, const char *path, int flags)
{
    int fd = open (path, flags);
    int rc = fd < 0 ? -1 : fsync (fd);
    if (fd >= 0)
        close (fd);
    if (rc)
        s_fail (self, path, strerror (errno));
    return rc;
}

//  The copy into partial, checked; then synced and renamed to the path
static void
s_run (ss_backup_t *self, const char *partial)
{
    sqlite3 *source = NULL, *copy = NULL;
    int rc = sqlite3_open_v2 (self->source, &source, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_open_v2 (partial, &copy, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK)
        s_fail (self, "cannot open", sqlite3_errstr (rc));
    else {
        sqlite3_busy_timeout (source, 5000);
        rc = s_copy (self, source, copy) || s_check (self, copy) ? -1 : 0;
    }
    sqlite3_close (source);
    //  Closing the copy's last connection folds any WAL of its own into it
    sqlite3_close (copy);
    char *folder_of = strdup (self->path);
    if (rc == 0 && folder_of && s_sync (self, partial, O_RDONLY) == 0) {
        if (rename (partial, self->path))
            s_fail (self, "cannot rename the copy", strerror (errno));
        else
        if (s_sync (self, dirname (folder_of), O_RDONLY | O_DIRECTORY) == 0) {
            struct stat status;
            pthread_mutex_lock (&self->lock);
            self->bytes = stat (self->path, &status) == 0 ? (int64_t) status.st_size : 0;
            self->state = S_DONE;
            self->finished_at = pl_time_now ();
            pthread_mutex_unlock (&self->lock);
        }
    }
    free (folder_of);
    if (self->state != S_DONE)
        remove (partial);
}

static void *
s_thread (void *arg)
{
    ss_backup_t *self = (ss_backup_t *) arg;
    pl_thread_name ("sqlite-backup");
    size_t size = strlen (self->path) + sizeof ".partial";
    char *partial = (char *) malloc (size);
    if (!partial)
        s_fail (self, "out of memory", "");
    else {
        snprintf (partial, size, "%s.partial", self->path);
        remove (partial);       //  a leftover of a copy that died midway
        s_run (self, partial);
    }
    free (partial);
    return NULL;
}


//  --------------------------------------------------------------------------
//  On the store's thread

//  Refuses a path that is not absolute, exists, or has no folder
static const char *
s_refuse (const char *path, char *message, size_t message_size)
{
    struct stat status;
    char *copy = strdup (path);
    const char *code = NULL;
    if (!copy) {
        snprintf (message, message_size, "The store is out of memory.");
        code = "internal";
    }
    else
    if (*path != '/' || strlen (path) > 3000) {
        snprintf (message, message_size, "The backup's path must be absolute (and under"
                  " 3000 bytes), a path on the store's machine.");
        code = "bad_request";
    }
    else
    if (stat (path, &status) == 0) {
        snprintf (message, message_size, "%s exists already; remove it or name another"
                  " file.", path);
        code = "conflict";
    }
    else
    if (stat (dirname (copy), &status) || !S_ISDIR (status.st_mode)) {
        snprintf (message, message_size, "The folder of %s does not exist on the store's"
                  " machine.", path);
        code = "not_found";
    }
    free (copy);
    return code;
}

const char *
ss_backup_start (ss_backup_t *self, const char *source, const char *path,
                 char *message, size_t message_size)
{
    pthread_mutex_lock (&self->lock);
    bool running = self->state == S_RUNNING;
    pthread_mutex_unlock (&self->lock);
    if (running) {
        snprintf (message, message_size, "A backup to %s is running; wait for it to end.",
                  self->path);
        return "conflict";
    }
    const char *code = s_refuse (path, message, message_size);
    if (code)
        return code;
    if (self->joinable)
        pthread_join (self->thread, NULL);
    self->joinable = false;
    free (self->source);
    free (self->path);
    self->source = strdup (source);
    self->path = strdup (path);
    self->state = S_RUNNING;
    self->reported = false;
    self->pages = self->pages_done = self->bytes = self->finished_at = 0;
    self->integrity [0] = self->error [0] = 0;
    self->started_at = pl_time_now ();
    if (!self->source || !self->path
    ||  pthread_create (&self->thread, NULL, s_thread, self)) {
        self->state = S_FAILED;
        snprintf (message, message_size, "The store could not start the backup.");
        return "internal";
    }
    self->joinable = true;
    self->host->log (self->ctx, PARLEY_LOG_INFO, "backup of %s to %s started", source, path);
    return NULL;
}

//  Logs the end once, on the store's thread
static void
s_report (ss_backup_t *self)
{
    if (self->reported || (self->state != S_DONE && self->state != S_FAILED))
        return;
    self->reported = true;
    if (self->state == S_DONE)
        self->host->log (self->ctx, PARLEY_LOG_INFO, "backup to %s done: %lld bytes, %lld pages,"
                         " integrity_check ok", self->path, (long long) self->bytes,
                         (long long) self->pages);
    else
        self->host->log (self->ctx, PARLEY_LOG_ERROR, "backup to %s failed: %s", self->path,
                         self->error);
}

void
ss_backup_status (ss_backup_t *self, msgpack_packer *packer)
{
    pthread_mutex_lock (&self->lock);
    s_report (self);
    msgpack_pack_map (packer, 9);
    pl_body_pack_str (packer, "state");
    pl_body_pack_str (packer, s_state_names [self->state]);
    pl_body_pack_str (packer, "path");
    pl_body_pack_str (packer, self->path ? self->path : "");
    pl_body_pack_str (packer, "pages_done");
    msgpack_pack_int64 (packer, self->pages_done);
    pl_body_pack_str (packer, "pages");
    msgpack_pack_int64 (packer, self->pages);
    pl_body_pack_str (packer, "bytes");
    msgpack_pack_int64 (packer, self->bytes);
    pl_body_pack_str (packer, "integrity");
    pl_body_pack_str (packer, self->integrity);
    pl_body_pack_str (packer, "error");
    pl_body_pack_str (packer, self->error);
    pl_body_pack_str (packer, "started_at");
    msgpack_pack_int64 (packer, self->started_at);
    pl_body_pack_str (packer, "finished_at");
    msgpack_pack_int64 (packer, self->finished_at);
    pthread_mutex_unlock (&self->lock);
}

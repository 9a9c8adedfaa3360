/*  =========================================================================
    store_bench - acknowledged writes per second, group commit versus one
    transaction per write

    Usage: store_bench [WRITES [IN_FLIGHT [FOLDER]]]   (20000, 256, /tmp)

    Drives store-sqlite through the real plugin host as the conformance suite
    does, and sends WRITES store.token.put requests as fast as the store
    acknowledges them, at most IN_FLIGHT unanswered at once: once with group
    commit, once with store-sqlite.group_commit=false. Each run starts on a
    fresh database file in FOLDER (put it on the disk you mean to measure:
    /tmp may be a tmpfs, where fsync costs nothing).
    =========================================================================
*/

#include "sc_broker.h"

static void
s_pack_put (msgpack_sbuffer *buffer, int index)
{
    msgpack_packer packer;
    msgpack_packer_init (&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 4);
    char hash [80];
    snprintf (hash, sizeof hash, "%064d", index);
    sc_pack_kstr (&packer, "token_hash", hash);
    sc_pack_kstr (&packer, "user", "bench");
    sc_pack_kint (&packer, "created_at", 1700000000000 + index);
    sc_pack_kint (&packer, "expires_at", 1800000000000 + index);
}

//  Returns acknowledged writes per second, or -1
static double
s_run (const char *folder, bool group_commit, int writes, int in_flight)
{
    char path [512];
    snprintf (path, sizeof path, "%s/store-bench-%d-%s.db", folder, (int) getpid (),
              group_commit ? "group" : "single");
    char option [600];
    snprintf (option, sizeof option, "store-sqlite.path=%s", path);
    const char *options [] = {
        option, group_commit ? "store-sqlite.group_commit=true" : "store-sqlite.group_commit=false"
    };
    sc_broker_t *broker = sc_broker_new ();
    char error [512];
    if (sc_broker_start (broker, STORE_SQLITE_PLUGIN, options, 2, error, sizeof error)) {
        fprintf (stderr, "store_bench: %s\n", error);
        sc_broker_destroy (&broker);
        return -1;
    }
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 3);
    sc_pack_kstr (&packer, "name", "bench");
    sc_pack_kstr (&packer, "password_hash", "h");
    sc_pack_kint (&packer, "created_at", 1);
    sc_reply_t *reply = sc_broker_call (broker, "store.user.create", buffer.data, buffer.size);
    sc_reply_destroy (&reply);

    int64_t started = zclock_usecs ();
    int sent = 0, acknowledged = 0, failed = 0;
    while (acknowledged + failed < writes) {
        while (sent < writes && sent - acknowledged - failed < in_flight) {
            msgpack_sbuffer_clear (&buffer);
            s_pack_put (&buffer, sent);
            if (!sc_broker_send (broker, "store.token.put", buffer.data, buffer.size))
                break;
            sent++;
        }
        reply = sc_broker_recv (broker, 30000);
        if (!reply)
            break;
        if (reply->code)
            failed++;
        else
            acknowledged++;
        sc_reply_destroy (&reply);
    }
    double seconds = (zclock_usecs () - started) / 1e6;
    msgpack_sbuffer_destroy (&buffer);
    sc_broker_destroy (&broker);
    char *command = zsys_sprintf ("rm -f '%s' '%s-wal' '%s-shm'", path, path, path);
    if (system (command) != 0)
        fprintf (stderr, "store_bench: could not remove %s\n", path);
    zstr_free (&command);
    if (failed || acknowledged < writes) {
        fprintf (stderr, "store_bench: %d of %d writes failed or unanswered\n",
                 writes - acknowledged, writes);
        return -1;
    }
    printf ("%-34s %6d writes in %7.3f s: %9.0f acknowledged writes/s\n",
            group_commit ? "group commit (one tx per batch)" : "one transaction per write",
            writes, seconds, writes / seconds);
    return writes / seconds;
}

int
main (int argc, char *argv [])
{
    int writes = argc > 1 ? atoi (argv [1]) : 20000;
    int in_flight = argc > 2 ? atoi (argv [2]) : 256;
    const char *folder = argc > 3 ? argv [3] : "/tmp";
    if (writes < 1 || in_flight < 1) {
        fprintf (stderr, "usage: %s [WRITES [IN_FLIGHT [FOLDER]]]\n", argv [0]);
        return 2;
    }
    printf ("store-sqlite: %d store.token.put, up to %d in flight, WAL, synchronous=FULL, in %s\n",
            writes, in_flight, folder);
    double grouped = s_run (folder, true, writes, in_flight);
    double single = s_run (folder, false, writes, in_flight);
    if (grouped < 0 || single < 0)
        return 1;
    printf ("group commit is %.1fx one transaction per write\n", grouped / single);
    return 0;
}

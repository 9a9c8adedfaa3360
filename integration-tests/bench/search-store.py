#!/usr/bin/env python3
"""Fills a parley store-sqlite file for parley-bench's search scenario with
--prepared PREFIX: M public rooms PREFIXroom0 .. PREFIXroom<M-1> owned by the
user PREFIXowner, and H messages written straight into the tables with SQL
(not through the server: a million sends through it take longer than a
sitting), message i in room i % M at seq i // M + 1, one millisecond apart,
its text the scenario's (every second one holds 'pbcommon', one in H/100
'pbrare'). At schema 12 to 14 the store's own triggers index every message
as it is inserted, exactly as they do for a send; from schema 15 the index
is a file of its own (parley.search.db) that the store's indexer thread
builds at the next start, in the background (its log says when it is
built and how long it took). The file must exist at schema 12 or later:
start parley on its folder once and stop it first.

    build/bin/parley --data DIR ... & sleep 2; kill %1
    python3 integration-tests/bench/search-store.py DIR/parley.db --rooms 1000 --entries 1000000
"""

import argparse
import sqlite3
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("database")
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=1000000)
    parser.add_argument("--prefix", default="pbprep-")
    args = parser.parse_args()
    db = sqlite3.connect(args.database, isolation_level=None)
    version = db.execute("SELECT MAX (version) FROM schema_version").fetchone()[0]
    if version < 12:
        raise SystemExit(f"{args.database}: schema version {version}, not 12: start parley on it first")
    every = max(10, args.entries // 100)
    start = int(time.time() * 1000) - args.entries
    owner = args.prefix + "owner"
    db.execute("BEGIN")
    db.execute("INSERT INTO users (name, name_key, password_hash, created_at) VALUES (?, ?, 'x', ?)",
               (owner, owner.lower(), start))
    owner_id = db.execute("SELECT id FROM users WHERE name_key = ?", (owner.lower(),)).fetchone()[0]
    for room in range(args.rooms):
        name = f"{args.prefix}room{room}"
        db.execute("INSERT INTO rooms (name, name_key, description, private, max_participants,"
                   " owner_id, created_at, active_at) VALUES (?, ?, '', 0, 10000, ?, ?, ?)",
                   (name, name.lower(), owner_id, start, start + args.entries))
        room_id = db.execute("SELECT id FROM rooms WHERE name_key = ?", (name.lower(),)).fetchone()[0]
        db.execute("INSERT INTO members (room_id, user_id, joined_at) VALUES (?, ?, ?)",
                   (room_id, owner_id, start))
    ids = {room: db.execute("SELECT id FROM rooms WHERE name_key = ?",
                            (f"{args.prefix}room{room}".lower(),)).fetchone()[0]
           for room in range(args.rooms)}
    def rows():
        for index in range(args.entries):
            # parley_bench.c's s_search_is_rare: a multiplicative hash spreads them
            rare = (((index * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF) >> 32) % every == 7
            common = index % 2 == 0
            words = (" words pbcommon and pbrare" if common and rare else
                     " words pbcommon and more" if common else " words pbrare" if rare else " words")
            yield (ids[index % args.rooms], index // args.rooms + 1, owner, start + index,
                   f"pb {index} 0{words}")
    db.executemany("INSERT INTO entries (room_id, seq, kind, user, ts, text)"
                   " VALUES (?, ?, 'message', ?, ?, ?)", rows())
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(f"{args.entries} messages in {args.rooms} rooms, {args.prefix}room0..")


main()

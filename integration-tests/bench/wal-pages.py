#!/usr/bin/env python3
# wal-pages.py BUILD KEY SHAPE: how many pages store-sqlite's room appends write to the WAL,
# with and without a nonce index, counted (not timed, so a loaded machine does not move it).
# On the real schema (a fresh parley.db made by BUILD/bin/parley), 500 users in 100 rooms of 5;
# COMMITS commits (default 1000), each carrying RUNS runs (default 20) of MSGS messages
# (default 3) into distinct random rooms, each run with its senders' read markers and the
# room's active_at, as store-sqlite's msg.append does; synchronous FULL, autocheckpoint off.
# KEY: none (no nonces), room (schema 11's index: room_id, nonce, user), nonce (nonce,
# room_id, user). SHAPE: time (the web client's: the time in base 36 first) or random (UUID).
# Prints the WAL frames (pages) written per commit and per message.
import os, random, shutil, signal, sqlite3, subprocess, sys, tempfile, time
build, key, shape = sys.argv[1], sys.argv[2], sys.argv[3]
COMMITS = int(os.environ.get('COMMITS', 1000))
RUNS, MSGS = int(os.environ.get('RUNS', 20)), int(os.environ.get('MSGS', 3))
work = tempfile.mkdtemp(prefix='wal-pages-')
server = subprocess.Popen([os.path.join(build, 'bin', 'parley'), '--listen', '127.0.0.1:%d' % random.randrange(20000, 30000),
                           '--data', work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
path = os.path.join(work, 'parley.db')
for _ in range(300):
    time.sleep(0.1)
    try:
        if sqlite3.connect(path).execute('SELECT count (*) FROM sqlite_master'
                                         ' WHERE name = "entries_by_nonce"').fetchone()[0]:
            break
    except sqlite3.Error:
        pass
time.sleep(0.5)
server.send_signal(signal.SIGTERM); server.wait()
db = sqlite3.connect(path, isolation_level=None)
db.execute('PRAGMA journal_mode = WAL'); db.execute('PRAGMA synchronous = FULL')
db.execute('DROP INDEX entries_by_nonce')
if key == 'room':
    db.execute('CREATE UNIQUE INDEX entries_by_nonce ON entries (room_id, nonce, user COLLATE NOCASE) WHERE nonce IS NOT NULL')
if key == 'nonce':
    db.execute('CREATE UNIQUE INDEX entries_by_nonce ON entries (nonce, room_id, user COLLATE NOCASE) WHERE nonce IS NOT NULL')
db.execute('BEGIN')
for u in range(500):
    db.execute('INSERT INTO users (id, name, name_key, password_hash, created_at) VALUES (?, ?, ?, ?, 0)', (u + 1, f'User{u}', f'user{u}', 'x'))
for r in range(100):
    db.execute('INSERT INTO rooms (id, name, name_key, description, private, max_participants, owner_id, created_at) VALUES (?, ?, ?, "", 0, 10000, ?, 0)', (r + 1, f'room{r}', f'room{r}', r * 5 + 1))
    for m in range(5):
        db.execute('INSERT INTO members (room_id, user_id, joined_at) VALUES (?, ?, 0)', (r + 1, r * 5 + m + 1))
db.execute('COMMIT'); db.execute('PRAGMA wal_checkpoint(TRUNCATE)')
db.execute('PRAGMA wal_autocheckpoint = 0')
rng = random.Random(7); seqs = [0] * 101; salt = rng.getrandbits(32); count = 0
def nonce(index):
    if shape == 'random': return '%032x' % rng.getrandbits(128)
    ms = int(time.time() * 1000); digits = ''
    for _ in range(9): digits = '0123456789abcdefghijklmnopqrstuvwxyz'[ms % 36] + digits; ms //= 36
    return '%s-%08x%016x' % (digits, salt, index)
insert = ('INSERT INTO entries (room_id, seq, kind, user, ts, text, event, nonce, mentions, reply_to, target, emoji, on_, by_name)'
          ' VALUES (?, ?, "message", ?, ?, ?, NULL, ?, NULL, NULL, NULL, NULL, NULL, NULL)')
frames = lambda: os.path.getsize(path + '-wal') // (4096 + 24) if os.path.exists(path + '-wal') else 0
start = frames()
for c in range(COMMITS):
    db.execute('BEGIN IMMEDIATE')
    for room in rng.sample(range(1, 101), RUNS):
        senders = set()
        for _ in range(MSGS):
            user = (room - 1) * 5 + rng.randrange(5); seqs[room] += 1; count += 1
            db.execute(insert, (room, seqs[room], f'User{user}', int(time.time() * 1000), f'pb {count} {time.time_ns()}', None if key == 'none' else nonce(count)))
            senders.add(user + 1)
        for user in senders:
            db.execute('UPDATE members SET read_seq = ? WHERE room_id = ? AND user_id = ?', (seqs[room], room, user))
        db.execute('UPDATE rooms SET active_at = MAX (active_at, ?) WHERE id = ?', (int(time.time() * 1000), room))
    db.execute('COMMIT')
written = frames() - start
db.close()
print(f'{key:6} {shape:7} runs {RUNS} x {MSGS}: WAL frames {written / COMMITS:6.1f}/commit {written / count:5.3f}/msg')
shutil.rmtree(work)

// parleyctl, the operator's tool, against real processes: over ipc:// (the
// socket file's mode is the credential) and over tcp:// with its own CURVE
// key; every command, what a user sees of it, that no client session can
// ask what it asks, and a backup made while three clients keep sending,
// restored into a new data folder and served again.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import {
    Client, binDir, eventually, pluginPath, sleep, startBroker, startParley, tempDir, testKeys,
} from '../lib/harness.js';
import { connectUser, fails, ok, PASSWORD, startRoomsParley } from '../lib/rooms.js';

const parleyctlBin = path.join(binDir, 'parleyctl');

// Runs parleyctl; resolves with its exit code, stdout and stderr (never throws)
function parleyctl(args, timeoutMs = 60000) {
    return new Promise((resolve) => {
        execFile(parleyctlBin, args, { timeout: timeoutMs }, (error, stdout, stderr) => {
            resolve({ code: error ? (error.code ?? -1) : 0, stdout, stderr });
        });
    });
}

// parley over its data folder's ipc socket, and a parleyctl bound to it
async function startWithCtl(options = {}) {
    const data = options.dataDir ?? tempDir('parley-ctl-');
    const socket = path.join(data, 'run', 'broker.sock');
    const server = await startRoomsParley({ ...options, dataDir: data,
                                            args: ['--bind', `ipc://${socket}`, ...(options.args ?? [])] });
    const ctl = (...args) => parleyctl(['--broker', `ipc://${socket}`, ...args]);
    const json = async (...args) => {
        const run = await ctl('--json', ...args);
        assert.equal(run.code, 0, `parleyctl ${args.join(' ')}: ${run.code}\n${run.stderr}`);
        return JSON.parse(run.stdout);
    };
    return { server, data, socket, ctl, json };
}

test('who and plugins over ipc: the users online with their sessions, the plugins with their routes', async () => {
    const { server, ctl, json } = await startWithCtl();
    const clients = [];
    try {
        await connectUser(server.url, 'alice', clients);
        const second = await Client.connect(server.url);
        clients.push(second);
        await ok(second, { type: 'auth.login', username: 'alice', password: PASSWORD });
        await connectUser(server.url, 'bob', clients);
        const online = await json('who');
        assert.deepEqual(online.users, [{ name: 'alice', sessions: 2 }, { name: 'bob', sessions: 1 }]);
        const text = await ctl('who');
        assert.equal(text.code, 0);
        assert.match(text.stdout, /alice\s+2/);
        assert.match(text.stdout, /2 users online, 3 sessions/);

        const peers = (await json('plugins')).peers;
        const plugin = (name) => peers.find((peer) => peer.kind === 'plugin' && peer.name === name);
        assert.ok(plugin('auth').routes.includes('auth.'), JSON.stringify(peers));
        assert.ok(plugin('auth').routes.includes('admin.users.'));
        assert.ok(plugin('rooms').routes.includes('room.'));
        assert.ok(plugin('store-sqlite').routes.includes('store.'));
        assert.ok(peers.some((peer) => peer.kind === 'gateway' && peer.sessions === 3));
        const listed = await ctl('plugins');
        assert.match(listed.stdout, /plugin\s+rooms\s+1\s+room\. msg\./);
    } finally {
        for (const client of clients)
            await client.close();
        await server.stop();
    }
});

// An operator's key: allowed in (--curve-allow) and in a --curve-admin folder
function operatorKey() {
    const keys = testKeys();
    const dir = tempDir('parley-admin-');
    const admin = path.join(dir, 'admin');
    const cert = path.join(dir, 'operator.cert');
    execFileSync(path.join(binDir, 'parley-keygen'), ['--allow', keys.allow, '--admin', admin, cert]);
    return { admin, cert };
}

test('over tcp parleyctl needs an operator key: in --curve-admin it works, an allowed peer key is refused', async () => {
    const operator = operatorKey();
    const broker = await startBroker({ args: ['--plugin', pluginPath('example'),
                                              '--curve-admin', operator.admin] });
    try {
        const keys = testKeys();
        const allowed = await parleyctl(['--broker', broker.endpoint, '--curve-cert', operator.cert,
                                         '--curve-broker', keys.broker, '--json', 'plugins']);
        assert.equal(allowed.code, 0, allowed.stderr);
        assert.ok(JSON.parse(allowed.stdout).peers.some((peer) => peer.name === 'example'));
        // A gateway's or plugin's key passes the handshake but is no operator
        const peer = await parleyctl(['--broker', broker.endpoint, '--curve-cert', keys.peer,
                                      '--curve-broker', keys.broker, 'who']);
        assert.equal(peer.code, 1, peer.stderr);
        assert.match(peer.stderr, /refused us: the key \S+ may not say hello as admin: it is not in the broker's --curve-admin folder/);
        assert.ok(await broker.proc.waitForOutput(/refused a peer: the key \S+ may not say hello as admin/, 10000),
                  broker.proc.output);
        const stranger = await parleyctl(['--broker', broker.endpoint, '--curve-cert', keys.stranger,
                                          '--curve-broker', keys.broker, '--timeout', '1500', 'who']);
        assert.equal(stranger.code, 3, stranger.stderr);
        assert.match(stranger.stderr, /did not answer/);
        const none = await parleyctl(['--broker', broker.endpoint, '--timeout', '1500', 'who']);
        assert.equal(none.code, 3);
    } finally {
        await broker.stop();
    }
});

test('over tcp a broker without --curve-admin takes no operator, and without keys none either', async () => {
    const keys = testKeys();
    const keyed = await startBroker({ args: ['--plugin', pluginPath('example')] });
    try {
        const peer = await parleyctl(['--broker', keyed.endpoint, '--curve-cert', keys.peer,
                                      '--curve-broker', keys.broker, 'plugins']);
        assert.equal(peer.code, 1, peer.stderr);
        assert.match(peer.stderr, /--curve-admin/);
    } finally {
        await keyed.stop();
    }
    const insecure = await startBroker({ args: ['--plugin', pluginPath('example')], curve: false });
    try {
        const run = await parleyctl(['--broker', insecure.endpoint, 'plugins']);
        assert.equal(run.code, 1, run.stderr);
        assert.match(run.stderr, /may not say hello as admin over tcp:\/\/ without CURVE keys/);
        assert.equal(run.stdout, '');
    } finally {
        await insecure.stop();
    }
});

test('no client session can ask an admin request, even logged in; parleyctl refuses bad usage', async () => {
    const { server, ctl, json } = await startWithCtl();
    const clients = [];
    try {
        const alice = await connectUser(server.url, 'alice', clients);
        await ok(alice, { type: 'room.create', room: 'kept' });
        const anonymous = await Client.connect(server.url);
        clients.push(anonymous);
        for (const client of [alice, anonymous])
            for (const fields of [
                { type: 'admin.users.list' }, { type: 'admin.users.delete', user: 'alice' },
                { type: 'admin.users.reset_password', user: 'alice', password: 'hijacked!!' },
                { type: 'admin.rooms.delete', room: 'kept' }, { type: 'admin.rooms.list' },
                { type: 'admin.online' }, { type: 'admin.plugins' },
                { type: 'admin.store.backup', path: '/tmp/stolen.db' },
            ])
                await fails(client, fields, 'unknown_type');
        // Nothing changed
        await ok(alice, { type: 'room.join', room: 'kept' });
        const fresh = await Client.connect(server.url);
        clients.push(fresh);
        await ok(fresh, { type: 'auth.login', username: 'alice', password: PASSWORD });
        assert.deepEqual((await json('users', 'list')).users.map((user) => user.state), ['active']);

        for (const args of [[], ['users'], ['users', 'drop', 'x'], ['rooms', 'kick', 'only-room'],
                            ['backup'], ['who', 'extra']]) {
            const run = await ctl(...args);
            assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
        }
        assert.equal((await parleyctl(['who'])).code, 2);           // no --broker
    } finally {
        for (const client of clients)
            await client.close();
        await server.stop();
    }
});

test('users: disable logs the live session out and refuses logins, enable lets them in again', async () => {
    const { server, ctl, json } = await startWithCtl();
    const clients = [];
    try {
        const bob = await connectUser(server.url, 'bob', clients);
        const other = await Client.connect(server.url);
        clients.push(other);
        const login = await ok(other, { type: 'auth.login', username: 'bob', password: PASSWORD });
        await connectUser(server.url, 'carol', clients);

        const disabled = await json('users', 'disable', 'BOB');
        assert.equal(disabled.user, 'bob');
        assert.equal(disabled.state, 'disabled');
        assert.equal(disabled.sessions, 2);
        assert.equal(disabled.tokens, 2);
        for (const session of [bob, other]) {
            await session.nextEvent((event) => event.type === 'logged_out');
            await fails(session, { type: 'room.list' }, 'unauthenticated');
        }
        await fails(other, { type: 'auth.resume', token: login.token }, 'invalid_token');
        await fails(other, { type: 'auth.login', username: 'bob', password: PASSWORD }, 'account_disabled');
        await fails(other, { type: 'auth.login', username: 'bob', password: 'wrong password' }, 'bad_credentials');
        const users = (await json('users', 'list')).users;
        assert.deepEqual(users.map((user) => [user.name, user.state]), [['bob', 'disabled'], ['carol', 'active']]);
        assert.match((await ctl('users', 'list')).stdout, /bob\s+disabled/);
        assert.ok(!(await json('who')).users.some((user) => user.name === 'bob'));

        assert.equal((await json('users', 'enable', 'bob')).state, 'active');
        await ok(other, { type: 'auth.login', username: 'bob', password: PASSWORD });

        const missing = await ctl('users', 'disable', 'nobody');
        assert.equal(missing.code, 1);
        assert.match(missing.stderr, /no_such_user/);
    } finally {
        for (const client of clients)
            await client.close();
        await server.stop();
    }
});

test('users: reset-password sets the given or a generated one and revokes every token', async () => {
    const { server, ctl, json } = await startWithCtl();
    const clients = [];
    try {
        const dave = await connectUser(server.url, 'dave', clients);
        const stale = await Client.connect(server.url);
        clients.push(stale);
        const session = await ok(stale, { type: 'auth.login', username: 'dave', password: PASSWORD });

        const generated = await json('users', 'reset-password', 'dave');
        assert.equal(generated.user, 'dave');
        assert.match(generated.password, /^[A-Za-z0-9_-]{20,}$/);
        assert.equal(generated.tokens, 2);
        await dave.nextEvent((event) => event.type === 'logged_out');
        const fresh = await Client.connect(server.url);
        clients.push(fresh);
        await fails(fresh, { type: 'auth.resume', token: session.token }, 'invalid_token');
        await fails(fresh, { type: 'auth.login', username: 'dave', password: PASSWORD }, 'bad_credentials');
        await ok(fresh, { type: 'auth.login', username: 'dave', password: generated.password });

        const given = await ctl('users', 'reset-password', 'dave', '--password', 'a new secret');
        assert.equal(given.code, 0, given.stderr);
        assert.match(given.stdout, /dave: password reset; 1 session logged out/);
        assert.doesNotMatch(given.stdout, /new password/);
        const again = await Client.connect(server.url);
        clients.push(again);
        await ok(again, { type: 'auth.login', username: 'dave', password: 'a new secret' });
        const weak = await ctl('users', 'reset-password', 'dave', '--password', 'short');
        assert.equal(weak.code, 1);
        assert.match(weak.stderr, /weak_password/);
        // One of the 10,000 most common passwords, in any case (auth's list)
        const common = await ctl('users', 'reset-password', 'dave', '--password', 'QWERTY123');
        assert.equal(common.code, 1);
        assert.match(common.stderr, /weak_password/);
        assert.match(common.stderr, /most common/);
        await ok(again, { type: 'ping' });      // the refused resets changed nothing
    } finally {
        for (const client of clients)
            await client.close();
        await server.stop();
    }
});

test('users: a deleted user is logged out, cannot log in, and its name stays reserved', async () => {
    const { server, ctl, json } = await startWithCtl();
    const clients = [];
    try {
        const erin = await connectUser(server.url, 'Erin', clients);
        const deleted = await json('users', 'delete', 'erin');
        assert.deepEqual([deleted.user, deleted.state, deleted.sessions], ['Erin', 'deleted', 1]);
        await erin.nextEvent((event) => event.type === 'logged_out');
        const stranger = await Client.connect(server.url);
        clients.push(stranger);
        await fails(stranger, { type: 'auth.login', username: 'Erin', password: PASSWORD }, 'bad_credentials');
        for (const name of ['Erin', 'erin', 'ERIN'])
            await fails(stranger, { type: 'auth.register', username: name, password: PASSWORD }, 'username_taken');
        const again = await ctl('users', 'enable', 'erin');
        assert.equal(again.code, 1);
        assert.match(again.stderr, /deleted/);
        assert.equal((await ctl('users', 'reset-password', 'erin')).code, 1);
        assert.deepEqual((await json('users', 'list')).users.map((user) => [user.name, user.state]),
                         [['Erin', 'deleted']]);
    } finally {
        for (const client of clients)
            await client.close();
        await server.stop();
    }
});

test('rooms: list shows private rooms too, kick leaves a leave entry, delete tells the members', async () => {
    const { server, ctl, json } = await startWithCtl();
    const clients = [];
    try {
        const owner = await connectUser(server.url, 'owner', clients);
        const member = await connectUser(server.url, 'member', clients);
        await ok(owner, { type: 'room.create', room: 'Lobby' });
        await ok(owner, { type: 'room.create', room: 'hidden', private: true });
        await ok(owner, { type: 'room.invite', room: 'hidden', user: 'member' });
        await ok(member, { type: 'room.join', room: 'Lobby' });
        await ok(member, { type: 'room.join', room: 'hidden' });
        await ok(member, { type: 'msg.send', room: 'Lobby', text: 'hello' });

        const rooms = (await json('rooms', 'list')).rooms;
        assert.deepEqual(rooms.map((room) => [room.name, room.private, room.members]),
                         [['hidden', true, 2], ['Lobby', false, 2]]);
        assert.match((await ctl('rooms', 'list')).stdout, /hidden\s+private\s+2/);

        const kicked = await json('rooms', 'kick', 'lobby', 'member');
        assert.deepEqual([kicked.room, kicked.user], ['Lobby', 'member']);
        const leave = await member.nextEvent((event) => event.type === 'system' && event.event === 'leave');
        assert.equal(leave.user, 'member');
        assert.equal(leave.room, 'Lobby');
        await fails(member, { type: 'room.history', room: 'Lobby' }, 'not_member');
        const history = await ok(owner, { type: 'room.history', room: 'Lobby' });
        assert.deepEqual(history.messages.at(-1).event, 'leave');
        assert.equal(history.messages.at(-1).seq, leave.seq);
        const twice = await ctl('rooms', 'kick', 'Lobby', 'member');
        assert.equal(twice.code, 1);
        assert.match(twice.stderr, /not_member/);

        const removed = await json('rooms', 'delete', 'hidden');
        assert.equal(removed.members, 2);
        for (const client of [owner, member]) {
            const event = await client.nextEvent((each) => each.type === 'system' && each.event === 'delete');
            assert.equal(event.room, 'hidden');
            assert.equal(event.user, null);
        }
        await fails(owner, { type: 'room.join', room: 'hidden' }, 'no_such_room');
        assert.deepEqual((await json('rooms', 'list')).rooms.map((room) => room.name), ['Lobby']);
        const gone = await ctl('rooms', 'delete', 'hidden');
        assert.equal(gone.code, 1);
        assert.match(gone.stderr, /no_such_room/);
    } finally {
        for (const client of clients)
            await client.close();
        await server.stop();
    }
});

// Sends one message after another until stopped; acked: the seqs the server
// acknowledged, with the time each ack came back
function keepSending(client, room, acked) {
    let running = true;
    const done = (async () => {
        for (let index = 0; running; index++) {
            const reply = await client.request({ type: 'msg.send', room, text: `${client.user} ${index}` });
            if (reply.type === 'ok')
                acked.push({ seq: reply.seq, at: Date.now() });
            else
                await sleep(20);
        }
    })();
    return async () => {
        running = false;
        await done;
    };
}

test('backup while three clients keep sending; restored into a new data folder, every message acknowledged before it is there', async () => {
    const { server, ctl, json } = await startWithCtl();
    const clients = [];
    const acked = [];
    let restored;
    try {
        const senders = [];
        for (const name of ['ann', 'ben', 'cat']) {
            const client = await connectUser(server.url, name, clients);
            if (name === 'ann')
                await ok(client, { type: 'room.create', room: 'busy' });
            else
                await ok(client, { type: 'room.join', room: 'busy' });
            senders.push(keepSending(client, 'busy', acked));
        }
        await eventually(() => acked.length >= 150, 60000);
        const backupFile = path.join(tempDir('parley-backup-'), 'copy.db');
        const startedAt = Date.now();
        const before = acked.filter((each) => each.at < startedAt).map((each) => each.seq);
        const made = await json('backup', backupFile);
        assert.equal(made.state, 'done');
        assert.equal(made.integrity, 'ok');
        assert.equal(made.path, backupFile);
        assert.ok(made.pages > 0 && made.bytes === statSync(backupFile).size);
        assert.ok(!existsSync(`${backupFile}.partial`));
        await sleep(300);                               // still sending after it
        for (const stop of senders)
            await stop();
        assert.ok(acked.length > before.length, 'messages were acknowledged during and after the backup');

        const again = await ctl('backup', backupFile);  // never overwrites
        assert.equal(again.code, 1);
        assert.match(again.stderr, /exists/);

        // integrity_check of the copy, by SQLite itself
        const check = await new Promise((resolve) => execFile('sqlite3', [backupFile, 'PRAGMA integrity_check;'],
            (error, stdout) => resolve(error ? String(error) : stdout.trim())));
        assert.equal(check, 'ok');

        // Restore: the copy is the data file of a new folder, and parley serves it
        const data = tempDir('parley-restored-');
        mkdirSync(data, { recursive: true });
        copyFileSync(backupFile, path.join(data, 'parley.db'));
        restored = await startRoomsParley({ dataDir: data });
        const reader = await Client.connect(restored.url);
        clients.push(reader);
        await ok(reader, { type: 'auth.login', username: 'ann', password: PASSWORD });
        const seqs = new Set();
        let page = await ok(reader, { type: 'room.history', room: 'busy', limit: 200 });
        for (;;) {
            for (const entry of page.messages)
                seqs.add(entry.seq);
            if (!page.more || page.messages.length === 0)
                break;
            page = await ok(reader, { type: 'room.history', room: 'busy', limit: 200, before: page.messages[0].seq });
        }
        const missing = before.filter((seq) => !seqs.has(seq));
        assert.deepEqual(missing, [], `acknowledged before the backup but not in it: ${missing.length} of ${before.length}`);
    } finally {
        for (const client of clients)
            await client.close();
        await restored?.stop();
        await server.stop();
    }
});

test('backup of store-mongo says that mongodump is the tool', async () => {
    const data = tempDir('parley-ctl-mongo-');
    const socket = path.join(data, 'run', 'broker.sock');
    const { proc: mongo, uri } = await (async () => {
        const { Proc, repoRoot } = await import('../lib/harness.js');
        const server = new Proc('mongo-test-server', process.execPath,
            [path.join(repoRoot, 'plugins', 'store-mongo', 'test-server', 'serve.mjs'), '0']);
        assert.ok(await server.waitForOutput(/listening on \d+/, 15000));
        const port = Number(/listening on (\d+)/.exec(server.output)[1]);
        return { proc: server, uri: `mongodb://127.0.0.1:${port}/parley_ctl` };
    })();
    const server = await startParley({ dataDir: data, args: ['--store', uri, '--bind', `ipc://${socket}`] });
    try {
        const run = await parleyctl(['--broker', `ipc://${socket}`, 'backup', path.join(data, 'copy.db')]);
        assert.equal(run.code, 1, run.stderr);
        assert.match(run.stderr, /mongodump/);
        assert.match(run.stderr, /not_supported/);
        assert.ok(!existsSync(path.join(data, 'copy.db')));
    } finally {
        await server.stop();
        await mongo.stop();
    }
});

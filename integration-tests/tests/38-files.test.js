// Files, the server's rules end to end (PROTOCOL.md 1.1 "Files";
// proto/CLIENT-PROTOCOL.md, "Files"): uploads through the gateway's POST
// /files (the files plugin, auth.check, the store), msg.send and pm.send
// with a file and the entries and histories that carry it, another user's
// file refused, the upload limit and the quota, the file gone (404) with
// its last message and with its room, a file two messages share kept until
// both are deleted, an upload nobody refers to swept after files.orphan_s,
// an idle upload forgotten after files.upload_idle_s, and auth.check out of
// a client's reach. Runs on store-sqlite, and on store-mongo with
// PARLEY_TEST_STORE=mongo.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Client, eventually, sleep } from '../lib/harness.js';
import { startRoomsParley, pluginArgs, ok, fails, nextEntry, PASSWORD } from '../lib/rooms.js';

const MAX_UPLOAD = 4096;
const QUOTA = 10000;

const clients = [];
const servers = [];
let main;

after(async () => {
    for (const client of clients)
        client.ws.terminate();
    for (const server of servers)
        await server.stop();
});

async function start(options) {
    const args = [...pluginArgs('pm')];
    for (const option of options)
        args.push('--option', option);
    const server = await startRoomsParley({ args });
    servers.push(server);
    return server;
}

async function mainServer() {
    main ??= await start([`files.max_upload=${MAX_UPLOAD}`, `files.quota=${QUOTA}`]);
    return main;
}

// A signed-in client that keeps its token (the Bearer of its uploads)
async function connect(server, username) {
    const client = await Client.connect(`ws://127.0.0.1:${server.port}/ws`);
    clients.push(client);
    let reply = await client.request({ type: 'auth.register', username, password: PASSWORD });
    if (reply.type === 'error' && reply.code === 'username_taken')
        reply = await client.request({ type: 'auth.login', username, password: PASSWORD });
    assert.equal(reply.type, 'ok', JSON.stringify(reply));
    client.user = reply.user;
    client.token = reply.token;
    return client;
}

// POST /files: { status, body (parsed JSON) }
async function upload(server, token, bytes, { name = 'notes.txt', type = 'text/plain' } = {}) {
    const response = await fetch(`http://127.0.0.1:${server.port}/files`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': type,
                   'X-Filename': encodeURIComponent(name) },
        body: bytes });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function uploaded(server, client, bytes, options) {
    const answer = await upload(server, client.token, bytes, options);
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    return answer.body.file;
}

async function download(server, id) {
    const response = await fetch(`http://127.0.0.1:${server.port}/files/${id}`);
    return { status: response.status, bytes: Buffer.from(await response.arrayBuffer()) };
}

const bytesOf = (size, seed = 7) => Buffer.from(Array.from({ length: size }, (_, i) => (i * seed) % 256));

test('an upload answers the file with a random 128-bit id; msg.send with it (and no text) is delivered and kept with the file', async () => {
    const server = await mainServer();
    const alice = await connect(server, 'fl_alice');
    const bob = await connect(server, 'fl_bob');
    const bytes = bytesOf(1000);
    const file = await uploaded(server, alice, bytes, { name: 'chat log é.txt' });
    assert.match(file.id, /^[A-Za-z0-9_-]{22}$/);
    assert.deepEqual(file, { id: file.id, name: 'chat log é.txt', size: 1000, type: 'text/plain' });
    const again = await uploaded(server, alice, bytes);
    assert.notEqual(again.id, file.id);
    const got = await download(server, file.id);
    assert.equal(got.status, 200);
    assert.ok(got.bytes.equals(bytes));

    await ok(alice, { type: 'room.create', room: 'fl-general' });
    await ok(bob, { type: 'room.join', room: 'fl-general' });
    const live = nextEntry(bob, 'fl-general', (frame) => frame.type === 'message');
    const sent = await ok(alice, { type: 'msg.send', room: 'fl-general', file: file.id });
    const entry = await live;
    assert.deepEqual(entry.file, file);
    assert.equal(entry.text, '');
    assert.equal(entry.seq, sent.seq);
    // With text too, and in the history as it is now (an edit keeps the file)
    const withText = await ok(alice, { type: 'msg.send', room: 'fl-general', text: 'see this',
                                       file: again.id });
    await ok(alice, { type: 'msg.edit', room: 'fl-general', seq: withText.seq, text: 'see that' });
    const history = await ok(bob, { type: 'room.history', room: 'fl-general' });
    const kept = history.messages.find((each) => each.seq === withText.seq);
    assert.deepEqual(kept.file, again);
    assert.equal(kept.text, 'see that');
    assert.deepEqual(history.messages.find((each) => each.seq === sent.seq).file, file);
});

test('a file that is not one of the sender\'s complete uploads is bad_request and nothing is sent; text stays required without a file', async () => {
    const server = await mainServer();
    const alice = await connect(server, 'fo_alice');
    const bob = await connect(server, 'fo_bob');
    const file = await uploaded(server, alice, bytesOf(10));
    await ok(alice, { type: 'room.create', room: 'fo-room' });
    await ok(bob, { type: 'room.join', room: 'fo-room' });
    const before = (await ok(bob, { type: 'room.history', room: 'fo-room' })).messages.length;
    for (const bad of [file.id, 'AAAAAAAAAAAAAAAAAAAAAA', 'no/such', '', 42, null, { id: file.id }]) {
        const refused = await fails(bob, { type: 'msg.send', room: 'fo-room', text: 'x', file: bad },
                                    'bad_request');
        assert.match(refused.message, /file/);
    }
    await fails(bob, { type: 'pm.send', to: 'fo_alice', text: 'x', file: file.id }, 'bad_request');
    assert.equal((await ok(bob, { type: 'room.history', room: 'fo-room' })).messages.length, before);
    await fails(alice, { type: 'msg.send', room: 'fo-room', text: '' }, 'invalid_text');
    await fails(alice, { type: 'msg.send', room: 'fo-room', text: '   ', file: file.id },
                'invalid_text');
});

test('pm.send with a file: the pm event, pm.history and pm.conversations carry it', async () => {
    const server = await mainServer();
    const alice = await connect(server, 'fp_alice');
    const bob = await connect(server, 'fp_bob');
    const file = await uploaded(server, alice, bytesOf(64), { name: 'cat.png', type: 'image/png' });
    const live = bob.nextEvent((frame) => frame.type === 'pm');
    const sent = await ok(alice, { type: 'pm.send', to: 'FP_BOB', text: '', file: file.id });
    const event = await live;
    assert.deepEqual(event.file, file);
    assert.equal(event.seq, sent.seq);
    const history = await ok(bob, { type: 'pm.history', with: 'fp_alice' });
    assert.deepEqual(history.messages.find((each) => each.seq === sent.seq).file, file);
    const conversation = (await ok(bob, { type: 'pm.conversations' })).conversations
        .find((each) => each.with === 'fp_alice');
    assert.deepEqual(conversation.last.file, file);
});

test('uploads past files.max_upload or the quota are 413, a bad token 401, and change nothing', async () => {
    const server = await mainServer();
    const carol = await connect(server, 'fq_carol');
    const tooLarge = await upload(server, carol.token, bytesOf(MAX_UPLOAD + 1));
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.body.error, 'too_large');
    await uploaded(server, carol, bytesOf(MAX_UPLOAD));
    await uploaded(server, carol, bytesOf(MAX_UPLOAD));
    // 8192 of 10000 taken: 1808 more fit, 1809 do not
    const over = await upload(server, carol.token, bytesOf(QUOTA - 2 * MAX_UPLOAD + 1));
    assert.equal(over.status, 413);
    assert.equal(over.body.error, 'quota_exceeded');
    await uploaded(server, carol, bytesOf(QUOTA - 2 * MAX_UPLOAD));
    const full = await upload(server, carol.token, bytesOf(1));
    assert.equal(full.body.error, 'quota_exceeded');
    // Another user's quota is their own
    const dave = await connect(server, 'fq_dave');
    await uploaded(server, dave, bytesOf(MAX_UPLOAD));
    // The last character changed: to another one, as a token that ends in A has 1 in 16 chances
    const forged = dave.token.slice(0, -1) + (dave.token.endsWith('A') ? 'E' : 'A');
    for (const token of ['', 'x'.repeat(43), forged]) {
        const refused = await upload(server, token, bytesOf(10));
        assert.equal(refused.status, 401, JSON.stringify(refused.body));
    }
    // A token of a session that logged out is no longer valid
    await ok(dave, { type: 'auth.logout' });
    assert.equal((await upload(server, dave.token, bytesOf(10))).status, 401);
});

test('auth.check is another plugin\'s route: a client gets unknown_type', async () => {
    const server = await mainServer();
    const erin = await connect(server, 'fc_erin');
    await fails(erin, { type: 'auth.check', token: erin.token }, 'unknown_type');
});

test('a file goes with the last message that refers to it: deleted messages, a deleted room', async () => {
    const server = await mainServer();
    const alice = await connect(server, 'fd_alice');
    const bob = await connect(server, 'fd_bob');
    const shared = await uploaded(server, alice, bytesOf(100));
    const alone = await uploaded(server, alice, bytesOf(100, 3));
    await ok(alice, { type: 'room.create', room: 'fd-room' });
    await ok(bob, { type: 'room.join', room: 'fd-room' });
    const one = await ok(alice, { type: 'msg.send', room: 'fd-room', text: 'one', file: shared.id });
    const two = await ok(alice, { type: 'msg.send', room: 'fd-room', text: 'two', file: shared.id });
    const three = await ok(alice, { type: 'msg.send', room: 'fd-room', text: '', file: alone.id });
    await ok(alice, { type: 'msg.delete', room: 'fd-room', seq: three.seq });
    assert.equal((await download(server, alone.id)).status, 404);
    await ok(alice, { type: 'msg.delete', room: 'fd-room', seq: one.seq });
    assert.equal((await download(server, shared.id)).status, 200);
    const history = await ok(bob, { type: 'room.history', room: 'fd-room' });
    assert.equal(history.messages.find((each) => each.seq === one.seq).file, undefined);
    assert.deepEqual(history.messages.find((each) => each.seq === two.seq).file, shared);
    await ok(alice, { type: 'msg.delete', room: 'fd-room', seq: two.seq });
    assert.equal((await download(server, shared.id)).status, 404);
    // A deleted file cannot be sent again
    await fails(alice, { type: 'msg.send', room: 'fd-room', text: 'x', file: alone.id },
                'bad_request');
    // Nor one whose last message is being deleted while the send comes: the
    // look-up or the store's check in the append refuses it
    const racing = await uploaded(server, alice, bytesOf(10));
    const first = await ok(alice, { type: 'msg.send', room: 'fd-room', text: '', file: racing.id });
    const [deleted, again] = await Promise.all([
        alice.request({ type: 'msg.delete', room: 'fd-room', seq: first.seq }),
        alice.request({ type: 'msg.send', room: 'fd-room', text: 'again', file: racing.id })]);
    assert.equal(deleted.type, 'ok', JSON.stringify(deleted));
    assert.deepEqual([again.type, again.code], ['error', 'bad_request'], JSON.stringify(again));
    assert.equal((await download(server, racing.id)).status, 404);

    // The room's files go with the room; one also sent in a conversation stays
    const inRoom = await uploaded(server, alice, bytesOf(10));
    const alsoPm = await uploaded(server, alice, bytesOf(10, 5));
    await ok(alice, { type: 'room.create', room: 'fd-gone' });
    await ok(alice, { type: 'msg.send', room: 'fd-gone', text: '', file: inRoom.id });
    await ok(alice, { type: 'msg.send', room: 'fd-gone', text: '', file: alsoPm.id });
    await ok(alice, { type: 'pm.send', to: 'fd_bob', text: 'also here', file: alsoPm.id });
    await ok(alice, { type: 'room.delete', room: 'fd-gone' });
    assert.equal((await download(server, inRoom.id)).status, 404);
    assert.equal((await download(server, alsoPm.id)).status, 200);
});

test('an upload no message refers to is swept files.orphan_s after it; one a message refers to stays', async () => {
    const server = await start(['files.orphan_s=2', 'files.sweep_s=1']);
    const alice = await connect(server, 'fs_alice');
    const orphan = await uploaded(server, alice, bytesOf(50));
    const sent = await uploaded(server, alice, bytesOf(50, 11));
    await ok(alice, { type: 'room.create', room: 'fs-room' });
    await ok(alice, { type: 'msg.send', room: 'fs-room', text: '', file: sent.id });
    const gone = await eventually(async () => (await download(server, orphan.id)).status === 404,
                                  30000, 250);
    assert.ok(gone, 'the orphan was never swept');
    await sleep(2500);
    assert.equal((await download(server, sent.id)).status, 200);
});

// Sends the headers of an upload of size bytes and then part bytes of its
// body over a raw socket; returns { socket, answer: a promise of the status }
function startRawUpload(server, token, size, part) {
    const socket = net.connect(server.port, '127.0.0.1');
    let received = '';
    const answer = new Promise((resolve) => {
        socket.on('data', (data) => {
            received += data.toString('latin1');
            const status = /^HTTP\/1\.1 (\d{3})/.exec(received);
            if (status)
                resolve(Number(status [1]));
        });
        socket.on('error', () => resolve(0));
        socket.on('close', () => resolve(0));
    });
    socket.write(`POST /files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n`
                 + `Content-Type: text/plain\r\nX-Filename: slow.txt\r\nContent-Length: ${size}\r\n\r\n`);
    socket.write(bytesOf(part));
    return { socket, answer };
}

test('an upload idle for files.upload_idle_s is forgotten: its next piece is refused', async () => {
    const server = await start(['files.upload_idle_s=1']);
    const frank = await connect(server, 'fi_frank');
    // A quick one goes through with pieces of the default chunk
    await uploaded(server, frank, bytesOf(3000));
    const slow = startRawUpload(server, frank.token, 600000, 300000);
    // The first pieces are stored; then nothing comes for longer than the idle time
    await sleep(3500);
    slow.socket.write(bytesOf(300000));
    const status = await slow.answer;
    slow.socket.destroy();
    assert.equal(status, 400);
});

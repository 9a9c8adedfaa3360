// What the rooms tests share: a server with the rooms plugin, users, and
// small assertions over replies and room events.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { startParley, Client, binDir, eventually, stoppedCleanly, withClients } from './harness.js';

export const PASSWORD = 'correct horse';
// Quick argon2id: these tests are about rooms, not password hashing
export const FAST_AUTH = ['--option', 'auth.ops_limit=1', '--option', 'auth.mem_limit=65536'];

// parley loads a plugin (rooms, pm) by default once the lead adds it there;
// until then it must be asked for (asking twice would fail: an instance name
// is unique)
const loadedDefault = new Map();
export function loadedByDefault(plugin) {
    if (!loadedDefault.has(plugin)) {
        const help = spawnSync(path.join(binDir, 'parley'), ['--help'], { encoding: 'utf8' });
        const text = `${help.stdout ?? ''}${help.stderr ?? ''}`;
        const line = text.split('\n').find((each) => /^Default plugins/i.test(each)) ?? '';
        loadedDefault.set(plugin, new RegExp(`\\b${plugin}\\b`).test(line));
    }
    return loadedDefault.get(plugin);
}

export function pluginArgs(plugin) {
    return loadedByDefault(plugin) ? [] : ['--plugin', plugin];
}

export const roomsArgs = () => pluginArgs('rooms');

// parley with the rooms plugin; stop() checks a clean exit and no sanitizer report
// port: the port to listen on (a restart on the same data keeps its clients' url)
export async function startRoomsParley({ dataDir, args = [], port } = {}) {
    return stoppedCleanly(await startParley({ dataDir, port,
                                              args: [...roomsArgs(), ...FAST_AUTH, ...args] }));
}

// A logged-in client: registers the user (or logs in when register says taken)
export async function connectUser(url, username, clients) {
    const client = await Client.connect(url);
    clients?.push(client);
    return logInAs(client, username);
}

// Runs body(connect) against server, connect(name) giving a logged-in client
// of it; then every client is closed and the server stopped (withClients)
export async function withUsers(server, body) {
    await withClients(server, ({ connect }) =>
        body(async (username) => logInAs(await connect(), username)));
}

async function logInAs(client, username) {
    let reply = await client.request({ type: 'auth.register', username, password: PASSWORD });
    if (reply.type === 'error' && reply.code === 'username_taken')
        reply = await client.request({ type: 'auth.login', username, password: PASSWORD });
    assert.equal(reply.type, 'ok', `${username}: ${JSON.stringify(reply)}`);
    client.user = reply.user;
    return client;
}

export async function ok(client, fields) {
    const reply = await client.request(fields);
    assert.equal(reply.type, 'ok', `${JSON.stringify(fields)} -> ${JSON.stringify(reply)}`);
    return reply;
}

export async function fails(client, fields, code) {
    const reply = await client.request(fields);
    assert.equal(reply.type, 'error', `${JSON.stringify(fields)} -> ${JSON.stringify(reply)}`);
    assert.equal(reply.code, code, `${JSON.stringify(fields)} -> ${JSON.stringify(reply)}`);
    assert.equal(typeof reply.message, 'string');
    assert.ok(reply.message.length > 0);
    return reply;
}

export const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

// Timeline entries and room events of a client, in arrival order, kept apart
// from the harness's queue so that tests can look at everything received
export function recordRoomEvents(client) {
    const log = [];
    client.ws.on('message', (data) => {
        const frame = JSON.parse(data.toString());
        if (frame.type === 'message' || frame.type === 'system' || frame.type === 'invite')
            log.push(frame);
    });
    return log;
}

export function nextEntry(client, room, predicate = () => true, timeoutMs = 10000) {
    return client.nextEvent((frame) =>
        (frame.type === 'message' || frame.type === 'system') && frame.room === room
        && predicate(frame), timeoutMs);
}

// The store may have been declared dead while it was stopped: until it has
// registered again its requests answer unavailable, and a client retries
export async function untilServed(client, request) {
    const reply = await eventually(async () => {
        const answer = await client.request(request);
        assert.ok(answer.type === 'ok' || answer.code === 'unavailable', JSON.stringify(answer));
        return answer.type === 'ok' ? answer : null;
    }, 15000);
    assert.ok(reply, `${JSON.stringify(request)} was never served`);
    return reply;
}

// Nonces msg.send and pm.send refuse (PROTOCOL.md 1.1: 1 to 64 of [A-Za-z0-9_-])
export const BAD_NONCES = ['', 'x'.repeat(65), 'a b', 'a.b', 'café', 'semi;colon', 42, true, ['a'],
                           { a: 1 }];

// Asserts that reply answers a repeat of the send whose ok was first
export function assertRepeatOf(reply, first) {
    assert.deepEqual([reply.seq, reply.ts, reply.duplicate], [first.seq, first.ts, true],
                     JSON.stringify(reply));
}

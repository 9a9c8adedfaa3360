// The example plugin over real processes: parley with the plugin loaded, a
// WebSocket client as a browser would be. Run by `make integration-tests`
// (and so by `make test`) after the suite in integration-tests/tests/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Proc, binDir, eventually, freePort, startParley, tempDir } from '../../../integration-tests/lib/harness.js';
import path from 'node:path';

const FAST_AUTH = ['--option', 'auth.ops_limit=1', '--option', 'auth.mem_limit=65536'];
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

async function signUp(url, username) {
    const client = await Client.connect(url);
    const reply = await client.request({ type: 'auth.register', username, password: 'correct horse' });
    assert.equal(reply.type, 'ok', JSON.stringify(reply));
    return client;
}

test('example.whois asks the store and answers from its reply, for logged-in users only', async () => {
    const server = await startParley({ args: FAST_AUTH });
    try {
        const stranger = await Client.connect(server.url);
        const refused = await stranger.request({ type: 'example.whois', user: 'Ada' });
        assert.equal(refused.code, 'unauthenticated', JSON.stringify(refused));

        const ada = await signUp(server.url, 'Ada');
        const found = await ada.request({ type: 'example.whois', user: 'ADA' });
        assert.equal(found.type, 'ok', JSON.stringify(found));
        assert.equal(found.user, 'Ada', 'the name as registered');
        assert.match(found.created_at, ISO_MS);
        assert.ok('last_seen' in found);
        assert.deepEqual(Object.keys(found).filter((key) => key !== '__binary').sort(),
            ['created_at', 'id', 'last_seen', 'type', 'user'],
            'nothing else of the store\'s answer (the password hash) reaches the client');

        const missing = await ada.request({ type: 'example.whois', user: 'nobody' });
        assert.equal(missing.code, 'no_such_user', JSON.stringify(missing));
        for (const user of [undefined, 42, '', 'x'.repeat(33)]) {
            const bad = await ada.request({ type: 'example.whois', user });
            assert.equal(bad.code, 'bad_request', `${JSON.stringify(user)}: ${JSON.stringify(bad)}`);
        }
        await Promise.all([stranger.close(), ada.close()]);
    } finally {
        await server.stop();
    }
});

test('example.stats counts bound sessions from session events and echoes per interval from its timer', async () => {
    const server = await startParley({ args: [...FAST_AUTH, '--option', 'example.tick_ms=200'] });
    try {
        const watcher = await Client.connect(server.url);
        const stats = async () => {
            const reply = await watcher.request({ type: 'example.stats' });
            assert.equal(reply.type, 'ok', JSON.stringify(reply));
            return reply;
        };
        assert.equal((await stats()).sessions, 0);
        const ada = await signUp(server.url, 'ada');
        const bob = await signUp(server.url, 'bob');
        assert.ok(await eventually(async () => (await stats()).sessions === 2, 10000), 'two sessions bound');
        await bob.close();
        assert.ok(await eventually(async () => (await stats()).sessions === 1, 10000), 'one left');

        for (let index = 0; index < 3; index++)
            assert.equal((await ada.request({ type: 'example.echo', n: index })).type, 'ok');
        assert.equal((await stats()).echoes, 3);
        // The timer moves the count into the last interval, and the next tick empties it
        assert.ok(await eventually(async () => (await stats()).echoes_last_interval === 3, 10000));
        assert.ok(await eventually(async () => (await stats()).echoes_last_interval === 0, 10000));
        await Promise.all([watcher.close(), ada.close()]);
    } finally {
        await server.stop();
    }
});

test('an unknown example type names the three it serves; a tick_ms out of range stops the start', async () => {
    const server = await startParley();
    try {
        const client = await Client.connect(server.url);
        const reply = await client.request({ type: 'example.nope' });
        assert.equal(reply.code, 'unknown_type');
        assert.match(reply.message, /example\.echo, example\.whois and example\.stats/);
        await client.close();
    } finally {
        await server.stop();
    }
    const data = tempDir();
    const proc = new Proc('parley', path.join(binDir, 'parley'), ['--listen', `127.0.0.1:${await freePort()}`,
        '--data', data, '--plugin', 'example', '--option', 'example.tick_ms=5']);
    const status = await proc.exited;
    assert.equal(status.code, 1, proc.output);
    assert.match(proc.output, /option example\.tick_ms=5 refused: want a whole number from 10/);
});

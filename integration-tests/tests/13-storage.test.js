// The store behind the accounts, as an operator meets it: a broken SQLite file
// stops parley with a clear error, an unreachable MongoDB gives `unavailable`
// and no crash, and accounts on MongoDB (the wire-compatible test server)
// survive a restart of parley.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import {
    Proc, startParley, Client, binDir, freePort, repoRoot, sanitizerReports, tempDir,
} from '../lib/harness.js';

const testServerDir = path.join(repoRoot, 'plugins', 'store-mongo', 'test-server');

async function startMongoTestServer() {
    const proc = new Proc('mongo-test-server', process.execPath,
        [path.join(testServerDir, 'serve.mjs'), '0']);
    assert.ok(await proc.waitForOutput(/listening on \d+/, 15000),
        `the MongoDB test server did not start\n${proc.output}`);
    const port = Number(/listening on (\d+)/.exec(proc.output)[1]);
    return { proc, uri: `mongodb://127.0.0.1:${port}/parley_it` };
}

function assertClean(proc, status) {
    assert.deepEqual(sanitizerReports(proc.output), [], proc.output);
    assert.equal(status.code, 0, `${proc.name} exited with ${JSON.stringify(status)}\n${proc.output}`);
}

test('a SQLite file that is not a database stops parley with an error naming it', async () => {
    const data = tempDir();
    mkdirSync(data, { recursive: true });
    writeFileSync(path.join(data, 'parley.db'), 'this is not a database, it is a shopping list\n'.repeat(200));
    const port = await freePort();
    const parley = new Proc('parley', path.join(binDir, 'parley'),
        ['--listen', `127.0.0.1:${port}`, '--data', data]);
    const status = await parley.exited;
    assert.notEqual(status.code, 0);
    assert.match(parley.output, /parley\.db/);
    assert.match(parley.output, /not a database|corrupt/i);
    assert.deepEqual(sanitizerReports(parley.output), []);
});

test('an unreachable MongoDB answers unavailable, and parley keeps serving', async () => {
    const closedPort = await freePort();
    const server = await startParley({ args: ['--store', `mongodb://127.0.0.1:${closedPort}/parley`] });
    try {
        const client = await Client.connect(server.url);
        const reply = await client.request({ type: 'auth.register', username: 'alice', password: 'correct horse' });
        assert.equal(reply.type, 'error');
        assert.equal(reply.code, 'unavailable');
        assert.equal((await client.request({ type: 'ping' })).type, 'ok');
        await client.close();
    } finally {
        assertClean(server.proc, await server.stop());
    }
});

test('a malformed MongoDB URI stops parley with a clear error', async () => {
    const port = await freePort();
    const parley = new Proc('parley', path.join(binDir, 'parley'),
        ['--listen', `127.0.0.1:${port}`, '--data', tempDir(), '--store', 'mongodb://127.0.0.1:notaport/x']);
    const status = await parley.exited;
    assert.notEqual(status.code, 0);
    assert.match(parley.output, /store-mongo/);
    assert.match(parley.output, /uri/i);
});

test('accounts on MongoDB survive a restart of parley', async () => {
    const mongo = await startMongoTestServer();
    try {
        let server = await startParley({ args: ['--store', mongo.uri] });
        let token;
        try {
            const client = await Client.connect(server.url);
            const registered = await client.request({ type: 'auth.register', username: 'Mongo_User', password: 'correct horse' });
            assert.equal(registered.type, 'ok', JSON.stringify(registered));
            token = registered.token;
            const listed = await client.request({ type: 'presence.list' });
            assert.deepEqual(listed.users.map((user) => [user.user, user.online]), [['Mongo_User', true]]);
            await client.close();
        } finally {
            assertClean(server.proc, await server.stop());
        }

        server = await startParley({ args: ['--store', mongo.uri] });
        try {
            const client = await Client.connect(server.url);
            const resumed = await client.request({ type: 'auth.resume', token });
            assert.equal(resumed.type, 'ok', JSON.stringify(resumed));
            assert.equal(resumed.user, 'Mongo_User');
            const taken = await (await Client.connect(server.url)).request({ type: 'auth.register', username: 'mongo_user', password: 'another one' });
            assert.equal(taken.code, 'username_taken');
            const login = await (await Client.connect(server.url)).request({ type: 'auth.login', username: 'MONGO_USER', password: 'correct horse' });
            assert.equal(login.type, 'ok');
            assert.equal(login.user, 'Mongo_User');
            await client.close();
        } finally {
            assertClean(server.proc, await server.stop());
        }
    } finally {
        await mongo.proc.stop();
    }
});

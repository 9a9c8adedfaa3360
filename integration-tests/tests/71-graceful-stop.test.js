// The graceful stop (SIGTERM, --stop-timeout): new connections and requests
// refused, every request in flight answered (its reply, or unavailable when the
// bound comes), sessions closed with 1001, the process gone within the bound.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import {
    startParley, startBroker, startGateway, Client, testPluginDir, pluginPath, sanitizerReports,
    httpsGet, tempDir,
} from '../lib/harness.js';
import { TestCa } from '../lib/tls.js';

const probe = path.join(testPluginDir, 'probe.so');
// Quick argon2id: these tests are about stopping, not password hashing
const FAST_AUTH = ['--option', 'auth.ops_limit=1', '--option', 'auth.mem_limit=65536'];

// probe's requests are for signed-in sessions
async function signedIn(url, username, options = {}) {
    const client = await Client.connect(url, options);
    const reply = await client.request({ type: 'auth.register', username, password: 'correct horse' });
    assert.equal(reply.type, 'ok', JSON.stringify(reply));
    return client;
}

// Sends the requests without waiting, then a ping: its reply says the
// gateway has read (and so passed on) every one of them
async function inFlight(client, requests) {
    const replies = requests.map((fields) => client.request(fields));
    assert.equal((await client.request({ type: 'ping' })).type, 'ok');
    return replies;
}

// SIGTERM, then the exit: code 0 and no sanitizer report, well before the
// harness's own kill
async function terminate(proc) {
    proc.signal('SIGTERM');
    const timer = setTimeout(() => proc.signal('SIGKILL'), 60000);
    const status = await proc.exited;
    clearTimeout(timer);
    assert.deepEqual(sanitizerReports(proc.output), []);
    assert.deepEqual(status, { code: 0, signal: null }, proc.output);
}

test('SIGTERM on parley: requests in flight get their replies, new work is refused, sessions see 1001', async () => {
    const server = await startParley({ args: ['--plugin', probe, '--stop-timeout', '4000', ...FAST_AUTH] });
    const asker = await signedIn(server.url, 'asker');
    const bystander = await signedIn(server.url, 'bystander');
    // Three answered a second after they arrive, one the plugin never answers
    const [slow1, slow2, slow3, held] = await inFlight(asker, [
        { type: 'probe.slow' }, { type: 'probe.slow' }, { type: 'probe.slow' }, { type: 'probe.hold' }]);
    const stopped = terminate(server.proc);
    assert.ok(await server.proc.waitForOutput(/stopping within 4000 ms/, 10000), server.proc.output);

    // While it drains (the held request keeps it draining for 3 s): nothing new
    const health = await fetch(`${server.http}/healthz`).catch((error) => error);
    assert.ok(health instanceof Error || health.status === 503, `healthz said ${health.status}`);
    await assert.rejects(Client.connect(server.url));
    const refused = await bystander.request({ type: 'example.echo', text: 'too late' });
    assert.equal(refused.type, 'error');
    assert.equal(refused.code, 'unavailable');
    assert.match(refused.message, /stopping/);

    // Every request in flight answered: the slow ones by the plugin...
    for (const reply of [slow1, slow2, slow3]) {
        const answer = await reply;
        assert.equal(answer.type, 'ok', JSON.stringify(answer));
        assert.equal(answer.slow, 3);
    }
    // ... the held one by the gateway when the bound came
    const last = await held;
    assert.equal(last.type, 'error');
    assert.equal(last.code, 'unavailable');

    for (const client of [asker, bystander]) {
        const { code, reason } = await client.closed;
        assert.equal(code, 1001);
        assert.equal(reason, 'server stopping');
    }
    await stopped;
    assert.match(server.proc.output, /stopped \(0 sessions open, 0 requests in flight\)/);
});

test('SIGTERM on parley-gw over wss: the reply in flight arrives, then 1001', async () => {
    const ca = new TestCa();
    const data = tempDir('parley-data-');
    const broker = await startBroker({ args: [
        '--plugin', pluginPath('store-sqlite'), '--option', `store-sqlite.path=${data}/parley.db`,
        '--plugin', pluginPath('auth'), '--plugin', probe, ...FAST_AUTH] });
    const gateway = await startGateway(broker.endpoint,
        { tls: ca.issue('stop', '5001'), args: ['--stop-timeout', '10000'] });
    try {
        const client = await signedIn(gateway.url, 'tls-asker', { ca: ca.pem });
        const [slow] = await inFlight(client, [{ type: 'probe.slow' }]);
        const stopped = terminate(gateway.proc);
        const answer = await slow;
        assert.equal(answer.type, 'ok', JSON.stringify(answer));
        assert.equal((await client.closed).code, 1001);
        await stopped;
        // A new TLS connection finds nobody
        await assert.rejects(httpsGet(`${gateway.http}/healthz`, ca.pem));
    } finally {
        await gateway.stop();
        await broker.stop();
        ca.remove();
        rmSync(data, { recursive: true, force: true });
    }
});

test('a second SIGTERM stops at once, whatever is still in flight', async () => {
    const server = await startParley({ args: ['--plugin', probe, '--stop-timeout', '600000', ...FAST_AUTH] });
    const client = await signedIn(server.url, 'holder');
    const [held] = await inFlight(client, [{ type: 'probe.hold' }]);
    held.catch(() => {});
    server.proc.signal('SIGTERM');
    assert.ok(await server.proc.waitForOutput(/stopping within 600000 ms/, 10000), server.proc.output);
    await terminate(server.proc);
    await client.closed;
});

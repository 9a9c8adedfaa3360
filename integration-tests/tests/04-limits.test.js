// The gateway's connection limits (CLIENT-PROTOCOL.md "Transport"): sessions
// not signed in per address, connections per address, connections in all,
// and the time a session has to sign in. Real parley processes, real
// sockets from 127.0.0.x source addresses.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startParley, sanitizerReports, eventually, Proc, freePort, tempDir, binDir,
         waitForHealth, sleep } from '../lib/harness.js';
import { attempt, closed, get } from '../lib/limits.js';
import path from 'node:path';
import { rmSync } from 'node:fs';

const CHEAP_HASH = ['--option', 'auth.ops_limit=1', '--option', 'auth.mem_limit=8192'];

async function stopClean(server) {
    const status = await server.stop();
    assert.deepEqual(sanitizerReports(server.proc.output), []);
    assert.equal(status.code, 0, `parley exited with ${JSON.stringify(status)}\n${server.proc.output}`);
}

function closeAll(sockets) {
    for (const ws of sockets)
        ws.terminate();
}

test('sessions not signed in: past the limit per address refused with 429, closed with 1008 after the timeout, other addresses and /healthz unaffected', async () => {
    const server = await startParley({ args: [...CHEAP_HASH, '--auth-timeout', '3000',
        '--max-unauthenticated-per-address', '8'] });
    const sockets = [];
    try {
        // A signed-in session, which the timeout must leave alone
        const member = await attempt(server.url, '127.0.0.1');
        assert.ok(member.ws, `the member connects: ${JSON.stringify(member)}`);
        sockets.push(member.ws);
        const replies = [];
        member.ws.on('message', (data) => replies.push(JSON.parse(data.toString())));
        member.ws.send(JSON.stringify({ type: 'auth.register', id: 1,
            username: `limits${Date.now() % 100000}`, password: 'a long enough password' }));
        assert.ok(await eventually(() => replies.find((reply) => reply.id === 1), 15000),
            'the registration is answered');
        assert.equal(replies.find((reply) => reply.id === 1).type, 'ok');

        const silent = [];
        for (let index = 0; index < 8; index++) {
            const result = await attempt(server.url, '127.0.0.1');
            assert.ok(result.ws, `silent connection ${index} opens: ${JSON.stringify(result)}`);
            silent.push(result.ws);
            sockets.push(result.ws);
        }
        const refused = await attempt(server.url, '127.0.0.1');
        assert.equal(refused.status, 429, `the 9th is refused: ${JSON.stringify(refused)}`);
        assert.match(refused.body, /not signed in/);

        const other = await attempt(server.url, '127.0.0.2');
        assert.ok(other.ws, `another address still connects: ${JSON.stringify(other)}`);
        sockets.push(other.ws);
        const health = await get(server.port, '/healthz', '127.0.0.1');
        assert.equal(health.status, 200, `/healthz answers: ${JSON.stringify(health)}`);

        // The silent ones are closed by the server, each with 1008
        const closes = await Promise.all(silent.map((ws) => closed(ws, 30000)));
        for (const close of closes)
            assert.deepEqual(close, { code: 1008, reason: 'authenticate first' });

        // The signed-in session outlived them and still works
        member.ws.send(JSON.stringify({ type: 'ping', id: 2 }));
        assert.ok(await eventually(() => replies.find((reply) => reply.id === 2), 10000),
            'the signed-in session is still served');
        // ... and there is room again for this address
        const again = await attempt(server.url, '127.0.0.1');
        assert.ok(again.ws, `a new connection opens once they are gone: ${JSON.stringify(again)}`);
        sockets.push(again.ws);
        assert.equal((await get(server.port, '/healthz', '127.0.0.1')).status, 200);
        assert.match(server.proc.output, /did not sign in within 3000 ms; closing it \(1008\)/);
    } finally {
        closeAll(sockets);
        await stopClean(server);
    }
});

test('connections per address: past --max-per-address refused with 429, others unaffected', async () => {
    const server = await startParley({ args: ['--max-per-address', '12'] });
    const sockets = [];
    try {
        for (let index = 0; index < 12; index++) {
            const result = await attempt(server.url, '127.0.0.3');
            assert.ok(result.ws, `connection ${index} opens: ${JSON.stringify(result)}`);
            sockets.push(result.ws);
        }
        const refused = await attempt(server.url, '127.0.0.3');
        assert.equal(refused.status, 429, `the 13th is refused: ${JSON.stringify(refused)}`);
        assert.match(refused.body, /Too many connections from your address/);
        const page = await get(server.port, '/healthz', '127.0.0.3');
        assert.ok(page.status === 429 || page.error, 'plain HTTP from that address too');

        const other = await attempt(server.url, '127.0.0.4');
        assert.ok(other.ws, `another address connects: ${JSON.stringify(other)}`);
        sockets.push(other.ws);
        assert.equal((await get(server.port, '/healthz', '127.0.0.1')).status, 200);

        // One closed, one more may come
        sockets[0].close();
        await closed(sockets[0], 10000);
        const next = await eventually(async () => {
            const result = await attempt(server.url, '127.0.0.3');
            return result.ws ? result : null;
        }, 10000, 100);
        assert.ok(next && next.ws, 'a place freed is taken again');
        sockets.push(next.ws);
    } finally {
        closeAll(sockets);
        await stopClean(server);
    }
});

// The log lines that say a connection was refused or could not be accepted
function refusalLines(output) {
    return output.split('\n').filter((line) => /refused one|accept:/.test(line));
}

// Opens WebSockets until the gateway refuses one (it counts the harness'
// keep-alive /healthz connection too, so the first refusal comes at the cap
// or just below), then tries extra more at once
async function fillAndOverflow(server, cap, extra) {
    const sockets = [];
    for (;;) {
        const result = await attempt(server.url, `127.0.1.${1 + (sockets.length % 50)}`);
        if (!result.ws) {
            assert.equal(result.status, 503, `the first refused gets 503: ${JSON.stringify(result)}`);
            break;
        }
        sockets.push(result.ws);
        assert.ok(sockets.length <= cap, `no more than ${cap} open`);
    }
    assert.ok(sockets.length >= cap - 3, `about ${cap} opened: ${sockets.length}`);
    const results = await Promise.all(Array.from({ length: extra },
        (_, index) => attempt(server.url, `127.0.2.${1 + (index % 50)}`)));
    return { sockets, results };
}

test('at the global cap new connections get 503 at once, /healthz still answers, and the log stays small', async () => {
    const server = await startParley({ args: ['--max-connections', '30'] });
    let sockets = [];
    try {
        const filled = await fillAndOverflow(server, 30, 300);
        sockets = filled.sockets;
        for (const result of filled.results)
            if (result.ws)
                sockets.push(result.ws);
        assert.equal(filled.results.filter((result) => result.ws).length, 0,
            'nothing past the cap opens');
        const answered = filled.results.filter((result) => result.status === 503);
        assert.ok(answered.length >= 250, `most get 503: ${answered.length} of 300 ` +
            `(${JSON.stringify(filled.results.find((result) => result.status !== 503))})`);
        assert.match(answered[0].body, /The server is full/);
        const health = await get(server.port, '/healthz');
        assert.equal(health.status, 200, `/healthz answers at the cap: ${JSON.stringify(health)}`);
        const lines = refusalLines(server.proc.output);
        assert.ok(lines.length >= 1 && lines.length <= 20,
            `300 refusals make a few log lines, not one each: ${lines.length}`);
        // Below the cap again, connections open again
        closeAll(sockets.splice(0, 5));
        const next = await eventually(async () => {
            const result = await attempt(server.url, '127.0.0.5');
            return result.ws ? result : null;
        }, 10000, 100);
        assert.ok(next && next.ws, 'connections open again below the cap');
        sockets.push(next.ws);
    } finally {
        closeAll(sockets);
        await stopClean(server);
    }
});

test('with few descriptors (prlimit) the cap comes from the limit: 503, no accept-error flood, /healthz answers', async () => {
    const port = await freePort();
    const data = tempDir('parley-data-');
    const proc = new Proc('parley', '/usr/bin/prlimit', ['--nofile=400', '--',
        path.join(binDir, 'parley'), '--listen', `127.0.0.1:${port}`, '--data', data,
        '--heartbeat', '200']);
    const server = { proc, port, url: `ws://127.0.0.1:${port}/ws`,
        stop: async () => { const status = await proc.stop(); rmSync(data, { recursive: true, force: true }); return status; } };
    let sockets = [];
    try {
        await waitForHealth(port);
        const cap = Number(/at most (\d+) connections \(descriptor limit 400\)/.exec(proc.output)?.[1]);
        assert.ok(cap > 10 && cap < 400, `the cap is below the descriptor limit: ${cap}\n${proc.output}`);
        const filled = await fillAndOverflow(server, cap, 400);
        sockets = filled.sockets;
        for (const result of filled.results)
            if (result.ws)
                sockets.push(result.ws);
        assert.equal(filled.results.filter((result) => result.ws).length, 0, 'nothing past the cap opens');
        const answered = filled.results.filter((result) => result.status === 503).length;
        assert.ok(answered >= 300, `most get 503: ${answered} of 400`);
        assert.equal((await get(port, '/healthz')).status, 200, '/healthz answers at the cap');
        await sleep(500);
        const lines = refusalLines(proc.output);
        assert.ok(lines.length <= 20, `a few log lines, not one per refusal: ${lines.length}`);
        assert.ok(proc.output.split('\n').length < 2 * cap + 200,
            `the log stays small: ${proc.output.split('\n').length} lines`);
    } finally {
        closeAll(sockets);
        await stopClean(server);
    }
});

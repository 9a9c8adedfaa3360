// Deadlines travel with requests (DESIGN.md; PROTOCOL.md 1.1 "Outcomes"):
// in a split deployment, a part that stalls past a request's deadline does
// not keep the client waiting, and does not do the work later. The stalled
// process is stopped with SIGSTOP (a disk that hangs, a process swapped
// out) and announces a long heartbeat, so that the broker does not take it
// for dead: what answers the client is the deadline. The test sends only
// once every thread of the process has stopped (Proc.pause): kill()
// returns before they have, and on a loaded machine a store told to stop
// has been seen to take the write, start its batch in time and stop in the
// middle of it, committing after the client was told the outcome is
// unknown. That is what "outcome": "unknown" means, and no check can rule
// it out (a process may stop between any check and its commit); what is
// tested here is a write that reaches a process already stalled.
// - the store stalls: the client's msg.send is answered unavailable with
//   retry_after_ms before the request timeout; once the store runs again,
//   the message is not stored (its time was gone when the store read it),
//   and the room's timeline goes on without a gap;
// - the rooms plugin stalls: the broker's backstop answers unavailable with
//   "outcome": "unknown" (the plugin had the request) and retry_after_ms,
//   and the message is not stored later either.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { rmSync } from 'node:fs';
import {
    startBroker, startGateway, startPluginProcess, pluginPath, sanitizerReports, tempDir,
    eventually, sleep,
} from '../lib/harness.js';
import { connectUser, ok, untilServed } from '../lib/rooms.js';

const REQUEST_TIMEOUT_MS = 5000;            // the broker's default
const FAST_AUTH = ['--option', 'auth.ops_limit=1', '--option', 'auth.mem_limit=65536'];
// A stalled plugin process is not declared dead while the test waits
const LONG_HEARTBEAT = ['--heartbeat', '60000'];

// broker (auth and, unless apart, rooms inside; pm too when asked), the
// store in a process of its own, rooms in one of its own when apart, and a
// gateway
async function startSplit({ roomsApart, pm = false }) {
    const data = tempDir('parley-deadlines-');
    const plugins = [...(roomsApart ? ['auth'] : ['auth', 'rooms']), ...(pm ? ['pm'] : [])];
    const broker = await startBroker({
        args: [...plugins.flatMap((name) => ['--plugin', pluginPath(name)]), ...FAST_AUTH],
    });
    const procs = { broker: broker.proc };
    procs.store = startPluginProcess(broker.endpoint, [pluginPath('store-sqlite')], {
        args: ['--option', `store-sqlite.path=${path.join(data, 'parley.db')}`, ...LONG_HEARTBEAT],
    });
    if (roomsApart)
        procs.rooms = startPluginProcess(broker.endpoint, [pluginPath('rooms')], { args: LONG_HEARTBEAT });
    const names = ['store-sqlite', 'auth', 'rooms', ...(pm ? ['pm'] : [])];
    assert.ok(await eventually(() => names.every((name) =>
        broker.proc.output.includes(`welcomed plugin '${name}'`)), 20000), broker.proc.output);
    const gateway = await startGateway(broker.endpoint);
    procs.gateway = gateway.proc;
    return { data, procs, url: gateway.url };
}

async function stopSplit({ data, procs }, clients) {
    for (const client of clients)
        client.ws.terminate();
    for (const proc of Object.values(procs))
        proc.signal('SIGCONT');
    for (const name of ['gateway', 'rooms', 'store', 'broker']) {
        const proc = procs[name];
        if (!proc)
            continue;
        const status = await proc.stop();
        assert.deepEqual(sanitizerReports(proc.output), [], proc.output);
        assert.equal(status.code, 0, `${name} exited with ${JSON.stringify(status)}\n${proc.output}`);
    }
    rmSync(data, { recursive: true, force: true });
}

// The room's history once the service answers again, oldest first
async function historyOnceBack(client, room) {
    let reply;
    assert.ok(await eventually(async () => {
        reply = await client.request({ type: 'room.history', room, limit: 50 });
        return reply.type === 'ok';
    }, 20000, 250), `room.history never came back: ${JSON.stringify(reply)}`);
    return reply.messages.filter((entry) => entry.text !== undefined)
        .sort((a, b) => a.seq - b.seq);
}

// A send into the stalled part: refused before the timeout, with when to retry
async function sendIntoStall(client, room, text) {
    const sent = Date.now();
    const reply = await client.request({ type: 'msg.send', room, text }, 3 * REQUEST_TIMEOUT_MS);
    const took = Date.now() - sent;
    assert.equal(reply.type, 'error', JSON.stringify(reply));
    assert.equal(reply.code, 'unavailable', JSON.stringify(reply));
    assert.ok(Number.isInteger(reply.retry_after_ms) && reply.retry_after_ms > 0, JSON.stringify(reply));
    // Answered by a deadline, not by the gateway's backstop (twice the timeout)
    assert.ok(took < 2 * REQUEST_TIMEOUT_MS, `answered after ${took} ms`);
    return reply;
}

test('a store that stalls past the deadline: the client is told unavailable in time, and the message is never stored', { timeout: 120000 }, async () => {
    const split = await startSplit({ roomsApart: false });
    const clients = [];
    try {
        const alice = await connectUser(split.url, 'alice', clients);
        await ok(alice, { type: 'room.create', room: 'stall' });
        await ok(alice, { type: 'msg.send', room: 'stall', text: 'before' });

        assert.ok(await split.procs.store.pause(), 'the store did not stop');
        const reply = await sendIntoStall(alice, 'stall', 'lost in the stall');
        // The write was on its way to the store when the broker gave up on
        // its answer: the outcome is unknown to the server too
        assert.equal(reply.outcome, 'unknown', JSON.stringify(reply));
        // Long past the write's deadline, the store runs again
        await sleep(1000);
        split.procs.store.signal('SIGCONT');

        const history = await historyOnceBack(alice, 'stall');
        // The store read the write when its time was gone: it refused it
        assert.deepEqual(history.map((entry) => entry.text), ['before'],
                         `the message answered unavailable was stored: ${JSON.stringify(history)}`);
        assert.ok(await eventually(() => /'store\.msg\.append' came after its time was gone/
            .test(split.procs.store.output), 10000), split.procs.store.output);
        // The timeline goes on where it was, without a gap. The lane measured
        // the stalled call, so it may refuse a send or two (unavailable,
        // retry_after_ms) until its measure comes down: a client retries.
        const after = await untilServed(alice, { type: 'msg.send', room: 'stall', text: 'after' });
        assert.equal(after.seq, history[history.length - 1].seq + 1, JSON.stringify(after));
    } finally {
        await stopSplit(split, clients);
    }
});

test('a plugin that stalls: the broker answers unavailable with outcome unknown and retry_after_ms, and the work is not done later', { timeout: 120000 }, async () => {
    const split = await startSplit({ roomsApart: true });
    const clients = [];
    try {
        const alice = await connectUser(split.url, 'alice', clients);
        await ok(alice, { type: 'room.create', room: 'quiet' });
        await ok(alice, { type: 'msg.send', room: 'quiet', text: 'before' });

        assert.ok(await split.procs.rooms.pause(), 'the rooms plugin did not stop');
        const reply = await sendIntoStall(alice, 'quiet', 'sent to a stalled plugin');
        assert.equal(reply.outcome, 'unknown', JSON.stringify(reply));
        await sleep(1000);
        split.procs.rooms.signal('SIGCONT');

        const history = await historyOnceBack(alice, 'quiet');
        assert.deepEqual(history.map((entry) => entry.text), ['before'],
                         `the message answered unavailable was stored: ${JSON.stringify(history)}`);
    } finally {
        await stopSplit(split, clients);
    }
});

// Reads refused while the store stalls tell the client when to try again
// with a figure of the plugin's (CLIENT-PROTOCOL.md, "Deadlines"), not the
// gateway's default of 1000 ms: the lists the measured time of their store
// calls (the one that stalled among them), the lanes' reads the store's
// answer passed on. A read changes nothing: none says "outcome": "unknown".
test('reads while the store stalls: unavailable with retry_after_ms from the plugin, and no unknown outcome', { timeout: 120000 }, async () => {
    const split = await startSplit({ roomsApart: false, pm: true });
    const clients = [];
    try {
        const alice = await connectUser(split.url, 'alice', clients);
        await connectUser(split.url, 'bob', clients);
        await ok(alice, { type: 'room.create', room: 'reads' });
        await ok(alice, { type: 'msg.send', room: 'reads', text: 'hello' });
        await ok(alice, { type: 'pm.send', to: 'bob', text: 'hello' });

        assert.ok(await split.procs.store.pause(), 'the store did not stop');
        const reads = [{ type: 'room.list' }, { type: 'pm.conversations' },
                       { type: 'room.history', room: 'reads' }, { type: 'pm.history', with: 'bob' }];
        const replies = await Promise.all(reads.map((read) => alice.request(read, 3 * REQUEST_TIMEOUT_MS)));
        split.procs.store.signal('SIGCONT');
        for (const reply of replies) {
            assert.equal(reply.code, 'unavailable', JSON.stringify(replies));
            assert.ok(Number.isInteger(reply.retry_after_ms) && reply.retry_after_ms > 0,
                      JSON.stringify(replies));
        }
        // A read did nothing, whatever became of its store call: no outcome
        // is unknown
        for (const reply of replies)
            assert.equal(reply.outcome, undefined, JSON.stringify(replies));
        // The lists' store calls were measured for the first time by the
        // one that stalled: seconds, not the gateway's 1000
        for (const reply of replies.slice(0, 2))
            assert.ok(reply.retry_after_ms > 1000, JSON.stringify(replies));
        // Back in service once the store runs again
        await untilServed(alice, { type: 'room.list' });
        await untilServed(alice, { type: 'pm.conversations' });
    } finally {
        await stopSplit(split, clients);
    }
});

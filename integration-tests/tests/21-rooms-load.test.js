// Rooms under load and split between instances (PROTOCOL.md, "Rooms"):
// - a few thousand messages from several clients into one room: every member
//   session receives every entry exactly once, in seq order, with no gap;
// - two instances of the rooms plugin, each in its own parley-plugin process,
//   serving one broker: the rooms are split between them and users see no
//   difference.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    startBroker, startGateway, startPluginProcess, pluginPath, sanitizerReports, tempDir,
    eventually, untilRegistered, LOAD_HEARTBEAT,
} from '../lib/harness.js';
import { startRoomsParley, connectUser, ok, FAST_AUTH, nextEntry, untilServed } from '../lib/rooms.js';

// Every timeline entry of room a client receives, in arrival order
function recordEntries(client, room) {
    const entries = [];
    client.ws.on('message', (data) => {
        const frame = JSON.parse(data.toString());
        if ((frame.type === 'message' || frame.type === 'system') && frame.room === room)
            entries.push(frame);
    });
    return entries;
}

const SENDERS = 5;
const PER_SENDER = 600;
const WINDOW = 32;          // requests in flight per sender

test('thousands of messages from several clients reach every member session once, in seq order, without gaps', async () => {
    // The load must not make a thread kept from the CPU look dead (parley's
    // own heartbeat), and a send may wait in the queues as long as the
    // client waits for it (60 s), not the broker's 5 s backstop: either would
    // answer it unavailable, outcome unknown, and leave a hole in the count
    const server = await startRoomsParley({ args: ['--option', 'rooms.msg_rate=0', ...LOAD_HEARTBEAT,
                                                   '--request-timeout', '60000'] });
    const clients = [];
    try {
        const senders = [];
        for (let index = 0; index < SENDERS; index++)
            senders.push(await connectUser(server.url, `ld_sender${index}`, clients));
        const watcher = await connectUser(server.url, 'ld_watcher', clients);
        const watcherTab = await connectUser(server.url, 'ld_watcher', clients);
        const sessions = [...senders, watcher, watcherTab];

        await ok(senders[0], { type: 'room.create', room: 'ld-room', max_participants: 100 });
        for (const client of [...senders.slice(1), watcher])
            await ok(client, { type: 'room.join', room: 'ld-room' });
        const firstSeq = (await ok(watcher, { type: 'room.history', room: 'ld-room', limit: 1 }))
            .messages[0].seq + 1;
        const logs = sessions.map((client) => recordEntries(client, 'ld-room'));

        // Each sender keeps WINDOW requests in flight until it has sent PER_SENDER
        const sentText = new Map();     // seq -> text
        const started = Date.now();
        await Promise.all(senders.map(async (client, which) => {
            let next = 0;
            const lane = async () => {
                while (next < PER_SENDER) {
                    const text = `sender ${which} message ${next++}`;
                    const reply = await client.request({ type: 'msg.send', room: 'ld-room', text }, 60000);
                    assert.equal(reply.type, 'ok', JSON.stringify(reply));
                    assert.ok(!sentText.has(reply.seq), `seq ${reply.seq} answered twice`);
                    sentText.set(reply.seq, text);
                }
            };
            await Promise.all(Array.from({ length: WINDOW }, lane));
        }));
        const total = SENDERS * PER_SENDER;
        const elapsed = Date.now() - started;
        console.log(`${total} messages stored and answered in ${elapsed} ms`
                    + ` (${Math.round(total * 1000 / elapsed)}/s)`);

        const seqs = [...sentText.keys()].sort((a, b) => a - b);
        assert.equal(seqs.length, total);
        assert.equal(seqs[0], firstSeq);
        assert.equal(seqs.at(-1), firstSeq + total - 1, 'the answered seqs have no gap');

        const lastSeq = seqs.at(-1);
        await eventually(() => logs.every((log) => log.at(-1)?.seq === lastSeq), 30000);
        for (const [index, log] of logs.entries()) {
            assert.equal(log.length, total, `session ${index} received ${log.length} of ${total}`);
            for (let at = 0; at < log.length; at++) {
                const entry = log[at];
                assert.equal(entry.seq, firstSeq + at, `session ${index}: entry ${at} out of order or missing`);
                assert.equal(entry.type, 'message');
                assert.equal(entry.text, sentText.get(entry.seq));
            }
        }
        // The stored timeline is the same
        let after = firstSeq - 1;
        let more = true;
        while (more) {
            const page = await ok(watcher, { type: 'room.history', room: 'ld-room', after, limit: 200 });
            for (const entry of page.messages)
                assert.equal(entry.text, sentText.get(entry.seq));
            after = page.messages.at(-1)?.seq ?? after;
            more = page.more;
        }
        assert.equal(after, lastSeq);
    } finally {
        for (const client of clients)
            client.ws.terminate();
        await server.stop();
    }
});

test('two rooms instances in separate parley-plugin processes split the rooms, and users see no difference', async () => {
    const data = tempDir('parley-rooms-split-');
    // Every process on parley's own heartbeat: this test is not about dead
    // peers, and a loaded machine must not make one of them
    const broker = await startBroker({ args: [
        '--plugin', pluginPath('store-sqlite'), '--plugin', pluginPath('auth'),
        '--plugin', pluginPath('presence'),
        '--option', `store-sqlite.path=${data}/parley.db`, ...FAST_AUTH, ...LOAD_HEARTBEAT,
    ] });
    const instanceArgs = ['--option', 'rooms.msg_rate=0', ...LOAD_HEARTBEAT];
    const instances = [
        startPluginProcess(broker.endpoint, [pluginPath('rooms')], { args: instanceArgs }),
        startPluginProcess(broker.endpoint, [pluginPath('rooms')], { args: instanceArgs }),
    ];
    let gateway;
    const clients = [];
    try {
        // Both instances welcomed, so that the broker splits the rooms
        // between them from the first one on
        await untilRegistered(instances);
        gateway = await startGateway(broker.endpoint, { args: LOAD_HEARTBEAT });
        const alice = await connectUser(gateway.url, 'sp_alice', clients);
        const bob = await connectUser(gateway.url, 'sp_bob', clients);
        assert.ok(await eventually(async () => (await alice.request({ type: 'room.list' })).type === 'ok', 10000));

        const ROOMS = 16;
        const names = Array.from({ length: ROOMS }, (_, i) => `Split-${i}`);
        for (const name of names) {
            const { room } = await ok(alice, { type: 'room.create', room: name, description: name });
            assert.equal(room.name, name);
        }
        for (const name of names) {
            const joined = await ok(bob, { type: 'room.join', room: name.toLowerCase() });
            assert.equal(joined.room.name, name);
            assert.deepEqual(joined.members.map((m) => m.user), ['sp_alice', 'sp_bob']);
            assert.equal(joined.history.at(-1).message, `sp_bob has joined the room ${name}.`);
        }
        for (const name of names)
            for (let index = 0; index < 3; index++) {
                const sent = await ok(index % 2 ? alice : bob, { type: 'msg.send', room: name, text: `${name} ${index}` });
                assert.equal(sent.seq, 2 + index);
                const entry = await nextEntry(alice, name, (e) => e.type === 'message' && e.seq === sent.seq);
                assert.equal(entry.text, `${name} ${index}`);
            }
        const listed = (await ok(bob, { type: 'room.list' })).rooms.filter((room) => room.name.startsWith('Split-'));
        assert.equal(listed.length, ROOMS);
        assert.ok(listed.every((room) => room.joined && room.members === 2));
        for (const name of names) {
            const { messages } = await ok(alice, { type: 'room.history', room: name });
            assert.deepEqual(messages.map((entry) => entry.seq), [1, 2, 3, 4]);
        }
        for (const name of names.slice(0, 4))
            await ok(alice, { type: 'room.delete', room: name });

        // Each instance served some of the rooms: each logs the rooms it created
        const served = instances.map((instance) =>
            names.filter((name) => instance.output.includes(`created the public room '${name}'`)));
        assert.ok(served[0].length > 0 && served[1].length > 0,
                  `rooms per instance: ${served.map((list) => list.length)}\n${instances[0].output}\n${instances[1].output}`);
        assert.equal(served[0].length + served[1].length, ROOMS, 'each room has one owner');
        console.log(`rooms per instance: ${served[0].length} and ${served[1].length}`);
    } finally {
        for (const client of clients)
            client.ws.terminate();
        await gateway?.stop();
        for (const instance of instances) {
            const status = await instance.stop();
            assert.deepEqual(sanitizerReports(instance.output), [], instance.output);
            assert.equal(status.code, 0, instance.output);
        }
        await broker.stop();
        assert.deepEqual(sanitizerReports(broker.proc.output), [], broker.proc.output);
    }
});

test('a store that stalls past the request timeout leaves no gap and no repeated seq', async () => {
    const data = tempDir('parley-rooms-stall-');
    const broker = await startBroker({ args: [
        '--request-timeout', '800', '--plugin', pluginPath('auth'), '--plugin', pluginPath('presence'),
        '--plugin', pluginPath('rooms'), ...FAST_AUTH, '--option', 'rooms.msg_rate=0',
    ] });
    const store = startPluginProcess(broker.endpoint, [pluginPath('store-sqlite')],
                                     { args: ['--option', `store-sqlite.path=${data}/parley.db`] });
    let gateway;
    const clients = [];
    try {
        gateway = await startGateway(broker.endpoint);
        let alice;
        assert.ok(await eventually(async () => {
            try {
                alice = await connectUser(gateway.url, 'st_alice', clients);
                return true;
            } catch {
                return false;
            }
        }, 10000));
        await ok(alice, { type: 'room.create', room: 'st-room' });
        const log = recordEntries(alice, 'st-room');
        for (let index = 0; index < 3; index++)
            await ok(alice, { type: 'msg.send', room: 'st-room', text: `before ${index}` });

        // The store stops answering: the requests in flight get unavailable
        assert.ok(await store.pause(), 'the process stopped');
        const stalled = await Promise.all(Array.from({ length: 3 }, (_, index) =>
            alice.request({ type: 'msg.send', room: 'st-room', text: `stalled ${index}` })));
        assert.ok(stalled.every((reply) => reply.type === 'error' && reply.code === 'unavailable'),
                  JSON.stringify(stalled));
        store.signal('SIGCONT');

        // Afterwards the room's timeline goes on without a gap or a repeat
        const sent = [];
        for (let index = 0; index < 3; index++)
            sent.push((await untilServed(alice, { type: 'msg.send', room: 'st-room', text: `after ${index}` })).seq);
        const { messages } = await ok(alice, { type: 'room.history', room: 'st-room', limit: 200 });
        const seqs = messages.map((entry) => entry.seq);
        assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => 1 + i), JSON.stringify(messages));
        assert.deepEqual(sent, seqs.slice(-3));
        assert.deepEqual(messages.slice(-3).map((entry) => entry.text), ['after 0', 'after 1', 'after 2']);
        // Live entries were never out of order
        const live = log.map((entry) => entry.seq);
        assert.deepEqual(live, [...live].sort((a, b) => a - b));
        assert.equal(new Set(live).size, live.length);
    } finally {
        store.signal('SIGCONT');
        for (const client of clients)
            client.ws.terminate();
        await gateway?.stop();
        await store.stop();
        await broker.stop();
        assert.deepEqual(sanitizerReports(broker.proc.output), [], broker.proc.output);
    }
});

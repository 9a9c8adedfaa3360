// Private messages under load (PROTOCOL.md, "Private messages"): several
// users, each with two sessions, exchange a few thousand private messages
// concurrently; every message reaches every session of both parties exactly
// once, in seq order per conversation, with no gap, and the history holds
// them all.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    startBroker, startGateway, startPluginProcess, pluginPath, sanitizerReports, tempDir,
    eventually, untilRegistered, LOAD_HEARTBEAT,
} from '../lib/harness.js';
import { connectUser, ok, FAST_AUTH, untilServed } from '../lib/rooms.js';
import { rmSync } from 'node:fs';
import { startPmParley, recordPm } from '../lib/pm.js';

const USERS = 6;
const PER_PAIR_EACH_WAY = 100;  // 6 users: 15 pairs x 2 directions x 100 = 3000 messages
const WINDOW = 16;              // requests in flight per sending session

const pairKey = (one, two) => [one.toLowerCase(), two.toLowerCase()].sort().join('|');

test('thousands of private messages between several users reach both parties\' sessions once, in seq order, without gaps', async () => {
    // The load must not make a thread kept from the CPU look dead (parley's
    // own heartbeat), and a send may wait in the queues as long as the
    // client waits for it (60 s), not the broker's 5 s backstop: either would
    // answer it unavailable, outcome unknown, and leave a hole in the count
    const server = await startPmParley({ args: ['--option', 'pm.msg_rate=0', ...LOAD_HEARTBEAT,
                                                '--request-timeout', '60000'] });
    const clients = [];
    try {
        const names = Array.from({ length: USERS }, (_, index) => `pl_user${index}`);
        const sessions = [];            // [{ name, client, log }]
        for (const name of names)
            for (let tab = 0; tab < 2; tab++) {
                const client = await connectUser(server.url, name, clients);
                sessions.push({ name, client, log: recordPm(client) });
            }

        // Each user's first session sends to every other user; its second
        // session only listens. Each sender keeps WINDOW requests in flight.
        const acked = new Map();        // pair -> Map(seq -> text)
        const started = Date.now();
        await Promise.all(names.map(async (name, which) => {
            const client = sessions[which * 2].client;
            const jobs = [];
            for (let count = 0; count < PER_PAIR_EACH_WAY; count++)
                for (const other of names)
                    if (other !== name)
                        jobs.push({ to: other, text: `${name} to ${other} #${count}` });
            let next = 0;
            const lane = async () => {
                while (next < jobs.length) {
                    const job = jobs[next++];
                    const reply = await client.request({ type: 'pm.send', ...job }, 60000);
                    assert.equal(reply.type, 'ok', JSON.stringify(reply));
                    const key = pairKey(name, job.to);
                    if (!acked.has(key))
                        acked.set(key, new Map());
                    assert.ok(!acked.get(key).has(reply.seq), `seq ${reply.seq} of ${key} answered twice`);
                    acked.get(key).set(reply.seq, { from: name, text: job.text });
                }
            };
            await Promise.all(Array.from({ length: WINDOW }, lane));
        }));
        const total = USERS * (USERS - 1) * PER_PAIR_EACH_WAY;
        const elapsed = Date.now() - started;
        console.log(`${total} private messages stored and answered in ${elapsed} ms`
                    + ` (${Math.round(total * 1000 / elapsed)}/s)`);

        const perPair = 2 * PER_PAIR_EACH_WAY;
        assert.equal(acked.size, USERS * (USERS - 1) / 2);
        for (const [key, seqs] of acked) {
            const sorted = [...seqs.keys()].sort((a, b) => a - b);
            assert.equal(sorted.length, perPair, key);
            assert.equal(sorted[0], 1, key);
            assert.equal(sorted.at(-1), perPair, `${key}: the answered seqs have no gap`);
        }

        // Every session hears every message of its user's conversations once,
        // in seq order per conversation
        const expectedPerSession = (USERS - 1) * perPair;
        await eventually(() => sessions.every(({ log }) => log.length >= expectedPerSession), 30000);
        for (const { name, log } of sessions) {
            assert.equal(log.length, expectedPerSession, `${name} received ${log.length}`);
            const lastSeq = new Map();
            for (const event of log) {
                assert.equal(event.type, 'pm');
                const key = pairKey(event.from, event.to);
                assert.ok(event.from === name || event.to === name, `${name} got ${key}`);
                const previous = lastSeq.get(key) ?? 0;
                assert.equal(event.seq, previous + 1, `${name}: ${key} went from ${previous} to ${event.seq}`);
                lastSeq.set(key, event.seq);
                const sent = acked.get(key).get(event.seq);
                assert.equal(event.text, sent.text);
                assert.equal(event.from, sent.from);
            }
            assert.equal(lastSeq.size, USERS - 1);
        }

        // The store has them all, in order
        const reader = sessions[1].client;
        for (const other of names.slice(1)) {
            const seen = [];
            let before;
            for (;;) {
                const page = await ok(reader, { type: 'pm.history', with: other, limit: 200,
                                                ...(before ? { before } : {}) });
                seen.unshift(...page.messages.map((each) => each.seq));
                if (!page.more)
                    break;
                before = page.messages[0].seq;
            }
            assert.deepEqual(seen, Array.from({ length: perPair }, (_, index) => index + 1));
        }
        const list = (await ok(reader, { type: 'pm.conversations' })).conversations;
        assert.equal(list.length, USERS - 1);
        for (const conversation of list)
            assert.equal(conversation.last.seq, perPair);
    } finally {
        for (const client of clients)
            client.close();
        await server.stop();
    }
});

test('two pm instances in separate parley-plugin processes split the conversations; pm.send, pm.history and pm.read of one pair meet on one instance', async () => {
    const data = tempDir('parley-pm-split-');
    // Every process on parley's own heartbeat: this test is not about dead
    // peers, and a loaded machine must not make one of them
    const broker = await startBroker({ args: [
        '--plugin', pluginPath('store-sqlite'), '--plugin', pluginPath('auth'),
        '--plugin', pluginPath('presence'),
        '--option', `store-sqlite.path=${data}/parley.db`, ...FAST_AUTH, ...LOAD_HEARTBEAT,
    ] });
    const instanceArgs = ['--option', 'pm.msg_rate=0', ...LOAD_HEARTBEAT];
    const instances = [
        startPluginProcess(broker.endpoint, [pluginPath('pm')], { args: instanceArgs }),
        startPluginProcess(broker.endpoint, [pluginPath('pm')], { args: instanceArgs }),
    ];
    let gateway;
    const clients = [];
    try {
        // Both instances welcomed, so that the broker splits the pairs
        // between them from the first message on
        await untilRegistered(instances);
        gateway = await startGateway(broker.endpoint, { args: LOAD_HEARTBEAT });
        const USERS_SPLIT = 8;
        const names = Array.from({ length: USERS_SPLIT }, (_, index) => `Sp_User${index}`);
        const users = [];
        for (const name of names)
            users.push(await connectUser(gateway.url, name, clients));
        assert.ok(await eventually(async () =>
            (await users[0].request({ type: 'pm.conversations' })).type === 'ok', 10000));

        // Every pair: three messages, alternating, each named in another case
        let total = 0;
        for (let one = 0; one < USERS_SPLIT; one++)
            for (let two = one + 1; two < USERS_SPLIT; two++)
                for (let index = 0; index < 3; index++) {
                    const [from, to] = index % 2 ? [two, one] : [one, two];
                    const sent = await ok(users[from], { type: 'pm.send',
                        to: index ? names[to].toUpperCase() : names[to].toLowerCase(),
                        text: `${names[from]} -> ${names[to]} ${index}` });
                    assert.equal(sent.seq, index + 1);
                    total++;
                }
        for (let one = 0; one < USERS_SPLIT; one++)
            for (let two = 0; two < USERS_SPLIT; two++) {
                if (one === two)
                    continue;
                const { messages } = await ok(users[one], { type: 'pm.history', with: names[two].toLowerCase() });
                assert.deepEqual(messages.map((each) => each.seq), [1, 2, 3]);
                const read = await ok(users[one], { type: 'pm.read', with: names[two], seq: 3 });
                assert.equal(read.unread, 0);
            }
        for (const user of users) {
            const list = (await ok(user, { type: 'pm.conversations' })).conversations;
            assert.equal(list.length, USERS_SPLIT - 1);
            assert.ok(list.every((each) => each.unread === 0 && each.last.seq === 3));
        }

        for (const client of clients)
            client.ws.terminate();
        clients.length = 0;
        await gateway.stop();
        gateway = undefined;
        const counts = [];
        for (const instance of instances) {
            await instance.stop();
            counts.push(Number(/stopping after (\d+) messages/.exec(instance.output)?.[1]));
        }
        console.log(`messages per instance: ${counts.join(' and ')}`);
        assert.ok(counts[0] > 0 && counts[1] > 0, `messages per instance: ${counts}`);
        assert.equal(counts[0] + counts[1], total, 'each conversation has one owner');
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
        rmSync(data, { recursive: true, force: true });
    }
});

test('a store that stalls past the request timeout leaves no gap and no repeated seq in a conversation', async () => {
    const data = tempDir('parley-pm-stall-');
    const broker = await startBroker({ args: [
        '--request-timeout', '800', '--plugin', pluginPath('auth'), '--plugin', pluginPath('presence'),
        '--plugin', pluginPath('pm'), ...FAST_AUTH, '--option', 'pm.msg_rate=0',
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
                alice = await connectUser(gateway.url, 'pst_alice', clients);
                return true;
            } catch {
                return false;
            }
        }, 10000));
        const bob = await connectUser(gateway.url, 'pst_bob', clients);
        const log = recordPm(bob);
        for (let index = 0; index < 3; index++)
            await ok(alice, { type: 'pm.send', to: 'pst_bob', text: `before ${index}` });

        // The store stops answering: the requests in flight get unavailable
        assert.ok(await store.pause(), 'the process stopped');
        const stalled = await Promise.all(Array.from({ length: 3 }, (_, index) =>
            alice.request({ type: 'pm.send', to: 'pst_bob', text: `stalled ${index}` })));
        assert.ok(stalled.every((reply) => reply.type === 'error' && reply.code === 'unavailable'),
                  JSON.stringify(stalled));
        store.signal('SIGCONT');

        // Afterwards the conversation goes on without a gap or a repeat
        const sent = [];
        for (let index = 0; index < 3; index++)
            sent.push((await untilServed(alice, { type: 'pm.send', to: 'pst_bob', text: `after ${index}` })).seq);
        const { messages } = await ok(bob, { type: 'pm.history', with: 'pst_alice', limit: 200 });
        const seqs = messages.map((entry) => entry.seq);
        assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => 1 + i), JSON.stringify(messages));
        assert.deepEqual(sent, seqs.slice(-3));
        assert.deepEqual(messages.slice(-3).map((entry) => entry.text), ['after 0', 'after 1', 'after 2']);
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
        rmSync(data, { recursive: true, force: true });
    }
});

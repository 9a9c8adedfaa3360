// A cluster on one machine as it would run on several: each part on a host of
// its own (a network namespace with its own address, joined to the others by
// a bridge), every peer over CURVE tcp to the broker: the broker, two
// gateways, two rooms instances, pm, auth, presence and the store. Users on
// either gateway talk to each other in rooms and privately; when one rooms
// instance is killed its rooms move to the other and no acknowledged message
// is lost. Needs root for `ip netns` (skipped, with the reason, elsewhere).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { binDir, eventually, pluginPath, sanitizerReports, tempDir, testKeys, Client } from '../lib/harness.js';
import { Network, netnsUnavailable } from '../lib/netns.js';
import { PASSWORD, ok, untilServed } from '../lib/rooms.js';

const unavailable = netnsUnavailable();
const HEARTBEAT = ['--heartbeat', '200'];
const BROKER_PORT = 5555;
const GATEWAY_PORT = 8080;
const PLUGIN_HOSTS = ['rooms1', 'rooms2', 'pm', 'auth', 'presence', 'store'];

async function healthy(url) {
    try {
        return (await fetch(url)).status === 200;
    } catch {
        return false;
    }
}

// Starts every part on its host, into procs; returns the gateways' urls
async function startCluster(net, data, procs) {
    const keys = testKeys();
    const brokerEndpoint = `tcp://${net.address('broker')}:${BROKER_PORT}`;
    const peer = ['--broker', brokerEndpoint, '--curve-cert', keys.peer, '--curve-broker', keys.broker,
                  ...HEARTBEAT];
    procs.broker = net.spawn('broker', 'broker', path.join(binDir, 'parley-broker'),
        ['--bind', brokerEndpoint, '--curve-cert', keys.broker, '--curve-allow', keys.allow, ...HEARTBEAT]);
    const plugin = (host, name, options = []) => net.spawn(host, host, path.join(binDir, 'parley-plugin'),
        [...peer, ...options.flatMap((option) => ['--option', option]), pluginPath(name)]);
    procs.store = plugin('store', 'store-sqlite', [`store-sqlite.path=${path.join(data, 'parley.db')}`]);
    procs.auth = plugin('auth', 'auth', ['auth.register_rate=0', 'auth.ops_limit=1', 'auth.mem_limit=65536']);
    procs.presence = plugin('presence', 'presence');
    procs.pm = plugin('pm', 'pm');
    procs.rooms1 = plugin('rooms1', 'rooms');
    procs.rooms2 = plugin('rooms2', 'rooms');
    const gateways = [];
    for (const host of ['gw1', 'gw2']) {
        procs[host] = net.spawn(host, host, path.join(binDir, 'parley-gw'),
            ['--listen', `${net.address(host)}:${GATEWAY_PORT}`, ...peer]);
        gateways.push(`${net.address(host)}:${GATEWAY_PORT}`);
    }
    for (const address of gateways)
        assert.ok(await eventually(() => healthy(`http://${address}/healthz`), 20000),
                  `the gateway at ${address} never answered /healthz\n${procs.gw1.output}\n${procs.gw2.output}`);
    // Two rooms instances, by their names (a peer may say hello twice on a busy machine)
    const roomsInstances = () => new Set([...procs.broker.output.matchAll(
        /welcomed plugin 'rooms' \((rooms@[^)]+)\)/g)].map((match) => match[1])).size;
    const welcomed = await eventually(() => roomsInstances() === 2
        && ['auth', 'pm', 'presence', 'store-sqlite'].every((name) =>
            procs.broker.output.includes(`welcomed plugin '${name}'`)), 20000);
    assert.ok(welcomed, `not every plugin reached the broker\n${procs.broker.output}`);
    return gateways.map((address) => `ws://${address}/ws`);
}

async function signUp(url, username, clients) {
    const client = await Client.connect(url);
    clients.push(client);
    const reply = await untilServed(client, { type: 'auth.register', username, password: PASSWORD });
    client.user = reply.user;
    return client;
}

function messageIn(client, room, text) {
    return client.nextEvent((frame) => frame.type === 'message' && frame.room === room
                                       && frame.text === text, 15000);
}

test('users on two gateways talk in rooms and privately across hosts, all over CURVE tcp; a rooms instance killed loses nothing', { skip: unavailable ?? false }, async () => {
    const net = Network.create(['broker', 'gw1', 'gw2', ...PLUGIN_HOSTS]);
    const data = tempDir('parley-cluster-');
    const clients = [];
    const procs = {};
    try {
        const [east, west] = await startCluster(net, data, procs);
        const ann = await signUp(east, 'ann', clients);
        const bob = await signUp(west, 'bob', clients);

        // Rooms until each rooms instance serves some (the broker spreads
        // them by a hash of the name over the live instances)
        const rooms = [];
        const servedBy = (proc) => new Set([...proc.output.matchAll(/created the \w+ room '(cluster-\d+)'/g)]
            .map((match) => match[1]));
        while (rooms.length < 8 || servedBy(procs.rooms1).size === 0 || servedBy(procs.rooms2).size === 0) {
            assert.ok(rooms.length < 40, 'one rooms instance got every room');
            const room = `cluster-${rooms.length}`;
            await ok(ann, { type: 'room.create', room });
            rooms.push(room);
            await eventually(() => servedBy(procs.rooms1).has(room) || servedBy(procs.rooms2).has(room), 5000);
        }
        const sent = new Map(rooms.map((room) => [room, []]));
        for (const room of rooms) {
            await ok(bob, { type: 'room.join', room });
            const fromAnn = `ann in ${room}`;
            const arrival = messageIn(bob, room, fromAnn);
            await ok(ann, { type: 'msg.send', room, text: fromAnn });
            await arrival;
            const fromBob = `bob in ${room}`;
            const back = messageIn(ann, room, fromBob);
            await ok(bob, { type: 'msg.send', room, text: fromBob });
            await back;
            sent.get(room).push(fromAnn, fromBob);
        }

        // Privately, gateway to gateway
        const privately = ann.nextEvent((frame) => frame.type === 'pm' && frame.text === 'across hosts', 15000);
        await ok(bob, { type: 'pm.send', to: 'ann', text: 'across hosts' });
        assert.equal((await privately).from, 'bob');

        // Presence sees both, whichever gateway each came through
        const online = await eventually(async () => {
            const { users } = await ok(ann, { type: 'presence.list' });
            return ['ann', 'bob'].every((name) => users.some((entry) => entry.user === name && entry.online));
        }, 10000);
        assert.ok(online, 'ann does not see both users online');

        // One rooms instance dies: its rooms are served by the other from the store
        procs.rooms1.signal('SIGKILL');
        await procs.rooms1.exited;
        for (const room of rooms) {
            const text = `after the kill in ${room}`;
            const arrival = messageIn(bob, room, text);
            await untilServed(ann, { type: 'msg.send', room, text });
            await arrival;
            sent.get(room).push(text);
        }
        for (const room of rooms) {
            const { messages } = await ok(bob, { type: 'room.history', room, limit: 200 });
            const texts = messages.filter((entry) => entry.type === 'message').map((entry) => entry.text);
            assert.deepEqual(texts, sent.get(room), `the history of ${room}`);
        }
    } finally {
        await Promise.all(clients.map((client) => client.close()));
        const order = ['gw1', 'gw2', ...PLUGIN_HOSTS, 'broker'];
        for (const name of order) {
            const proc = procs[name];
            if (!proc)
                continue;
            const status = await proc.stop();
            assert.deepEqual(sanitizerReports(proc.output), [], `${name}\n${proc.output}`);
            if (name !== 'rooms1')
                assert.equal(status.code, 0, `${name} exited with ${JSON.stringify(status)}\n${proc.output}`);
        }
        net.destroy();
        rmSync(data, { recursive: true, force: true });
    }
});

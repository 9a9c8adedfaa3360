// /metrics: the whole page read by a strict parser of Prometheus' text format,
// every family the gateway promises present, the ones a small load touches
// moving, no user data in it, and who may read it (--metrics). The store's
// commits (plugin ABI 1.4) reach it from the store in process and from a
// parley-plugin process; on store-mongo too (PARLEY_TEST_STORE=mongo).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Client, Proc, binDir, eventually, httpsGet, mongoUriFor, pluginPath, startBroker, startGateway,
         startParley, startPluginProcess, sanitizerReports, tempDir } from '../lib/harness.js';
import { stopCleanly } from '../lib/clean-stop.js';
import { startRoomsParley, connectUser, ok, FAST_AUTH } from '../lib/rooms.js';
import { attempt, get } from '../lib/limits.js';
import { parseExposition, sampleValue } from '../lib/metrics.js';
import { TestCa } from '../lib/tls.js';

// Every family frontend-gw/README.md lists, with its type
const FAMILIES = {
    parley_gateway_connections_total: 'counter',
    parley_gateway_connections_open: 'gauge',
    parley_gateway_connections_refused_total: 'counter',
    parley_gateway_sessions_total: 'counter',
    parley_gateway_sessions_open: 'gauge',
    parley_gateway_sessions_authenticated: 'gauge',
    parley_gateway_auth_timeouts_total: 'counter',
    parley_gateway_requests_total: 'counter',
    parley_gateway_request_duration_seconds: 'histogram',
    parley_gateway_requests_in_flight: 'gauge',
    parley_gateway_events_total: 'counter',
    parley_gateway_deliveries_total: 'counter',
    parley_gateway_frames_sent_total: 'counter',
    parley_gateway_sent_bytes_total: 'counter',
    parley_gateway_slow_consumers_total: 'counter',
    parley_gateway_queued_frames: 'gauge',
    parley_gateway_queued_bytes: 'gauge',
    parley_gateway_queued_frames_max: 'gauge',
    parley_gateway_broker_up: 'gauge',
    parley_gateway_broker_lost_total: 'counter',
    parley_gateway_broker_welcomes_total: 'counter',
    parley_gateway_stopping: 'gauge',
    parley_gateway_file_requests_total: 'counter',
    parley_gateway_file_bytes_total: 'counter',
    // The broker's, from its STATS answer (proto/ENVELOPE.md)
    parley_broker_plugin_up: 'gauge',
    parley_broker_requests_routed_total: 'counter',
    parley_broker_requests_unavailable_total: 'counter',
    parley_broker_requests_timed_out_total: 'counter',
    parley_broker_sessions: 'gauge',
};
const LABELS = new Set(['reason', 'type', 'code', 'how', 'le', 'name', 'instance', 'store', 'operation',
                        'way', 'status']);
// The store's families (README.md, "Metrics") and what its appends commit as
const STORE = process.env.PARLEY_TEST_STORE === 'mongo'
    ? { name: 'mongo', plugin: 'store-mongo', operation: 'msg.append' }
    : { name: 'sqlite', plugin: 'store-sqlite', operation: 'transaction' };

async function scrape(port, localAddress = '127.0.0.1') {
    const page = await get(port, '/metrics', localAddress);
    assert.equal(page.status, 200, JSON.stringify(page));
    assert.match(page.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    const families = parseExposition(page.body);
    for (const [name, family] of families) {
        assert.match(name, /^parley_/, `${name} starts with parley_`);
        for (const sample of family.samples)
            for (const label of Object.keys(sample.labels))
                assert.ok(LABELS.has(label), `${sample.name} has no label ${label}`);
    }
    return { families, text: page.body };
}

const value = (families, name, labels) => sampleValue(families, name, labels) ?? 0;

test('the page parses strictly, has every family, and moves under a small load', async () => {
    const server = await startRoomsParley({ args: ['--max-unauthenticated-per-address', '2'] });
    const clients = [];
    try {
        // The broker's figures come with the scrape after the first (the
        // gateway asks for them when the page is read, and keeps the answer)
        const before = await eventually(async () => {
            const { families } = await scrape(server.port);
            return families.has('parley_broker_plugin_up') ? families : null;
        }, 15000, 200);
        assert.ok(before, 'the broker\'s families reach the page');
        for (const [name, type] of Object.entries(FAMILIES))
            assert.equal(before.get(name)?.type, type, `${name} is a ${type}`);
        assert.equal(value(before, 'parley_gateway_broker_up'), 1);
        assert.ok(value(before, 'parley_gateway_broker_welcomes_total') >= 1);

        // Users sign up one at a time: 127.0.0.1 may hold 2 sessions not signed in
        const alice = await connectUser(server.url, 'mira', clients);
        const bob = await connectUser(server.url, 'tobias', clients);
        await ok(alice, { type: 'room.create', room: 'metrics-room' });
        await ok(bob, { type: 'room.join', room: 'metrics-room' });
        for (let index = 0; index < 5; index++)
            await ok(alice, { type: 'msg.send', room: 'metrics-room', text: `hello ${index}` });
        await bob.nextEvent((event) => event.type === 'message' && event.text === 'hello 4');
        await ok(alice, { type: 'ping' });
        const unknown = await alice.request({ type: 'nosuch.thing' });
        assert.equal(unknown.type, 'error');
        const badJson = await alice.sendAwaiting('{"type": ', undefined);
        assert.equal(badJson.code, 'bad_json');
        // A refused connection: a third session not signed in from 127.0.0.9
        const waiting = [await attempt(server.url, '127.0.0.9'), await attempt(server.url, '127.0.0.9')];
        const refused = await attempt(server.url, '127.0.0.9');
        assert.equal(refused.status, 429);

        // A page whose broker part has seen the sends and the four sessions
        // (it is at most a heartbeat old, and the gateway tells the broker of
        // a session after the client sees it open)
        const sent = value(before, 'parley_broker_requests_routed_total') + 9;
        const { families: after, text } = await eventually(async () => {
            const page = await scrape(server.port);
            return value(page.families, 'parley_broker_requests_routed_total') >= sent
                && value(page.families, 'parley_broker_sessions') >= 4 ? page : null;
        }, 30000, 200) ?? await scrape(server.port);
        const moved = (name, labels) => assert.ok(value(after, name, labels) > value(before, name, labels),
            `${name}${JSON.stringify(labels ?? {})} moved: ${value(before, name, labels)} -> ${value(after, name, labels)}`);
        moved('parley_gateway_connections_total');
        moved('parley_gateway_connections_refused_total', { reason: 'unauthenticated' });
        moved('parley_gateway_sessions_total');
        moved('parley_gateway_requests_total', { type: 'auth.register', code: 'ok' });
        moved('parley_gateway_requests_total', { type: 'msg.send', code: 'ok' });
        moved('parley_gateway_requests_total', { type: 'ping', code: 'ok' });
        moved('parley_gateway_requests_total', { type: 'other', code: 'bad_json' });
        assert.equal(value(after, 'parley_gateway_requests_total', { type: 'other', code: 'unknown_type' }), 1,
                     'an unknown type counts as other, not by its name');
        assert.ok(value(after, 'parley_gateway_request_duration_seconds_count', { type: 'msg.send' }) >= 5);
        moved('parley_gateway_events_total');
        moved('parley_gateway_deliveries_total');
        moved('parley_gateway_frames_sent_total');
        moved('parley_gateway_sent_bytes_total');
        moved('parley_broker_requests_routed_total');
        for (const plugin of ['auth', 'rooms'])
            assert.ok(after.get('parley_broker_plugin_up').samples.some((sample) =>
                sample.labels.name === plugin && sample.value === 1), `${plugin} is up`);
        assert.ok(value(after, 'parley_broker_sessions') >= 4);
        assert.ok(value(after, 'parley_gateway_sessions_open') >= 4);
        assert.ok(value(after, 'parley_gateway_sessions_authenticated') >= 2);
        assert.ok(value(after, 'parley_gateway_connections_open') >= 4);
        // Counters only: no user, room or address on the page
        for (const secret of ['mira', 'tobias', 'metrics-room', 'hello', '127.0.0.9', 'nosuch'])
            assert.ok(!text.includes(secret), `the page does not say '${secret}'`);
        for (const each of waiting)
            each.ws?.close();
    } finally {
        for (const client of clients)
            await client.close();
        await server.stop();
    }
});

test('--metrics says who may read the page; elsewhere it is 403, and a bad value is refused', async () => {
    const server = await startRoomsParley({ args: ['--metrics', '127.0.0.3,::1'] });
    try {
        assert.equal((await get(server.port, '/metrics', '127.0.0.1')).status, 403);
        assert.equal((await get(server.port, '/metrics', '127.0.0.2')).status, 403);
        const allowed = await get(server.port, '/metrics', '127.0.0.3');
        assert.equal(allowed.status, 200);
        assert.ok(parseExposition(allowed.body).has('parley_gateway_requests_total'));
        assert.equal((await get(server.port, '/healthz', '127.0.0.2')).status, 200);
    } finally {
        await server.stop();
    }
    for (const bad of ['nobody', '127.0.0.1,', '10.0.0.0/8'])
        for (const program of ['parley', 'parley-gw']) {
            const run = spawnSync(path.join(binDir, program), ['--metrics', bad], { encoding: 'utf8' });
            assert.ok(run.status === 1 || run.status === 2, `${program} --metrics ${bad}: ${run.status} ${run.stderr}`);
            assert.match(run.stderr, /--metrics wants local, off, any or IP addresses/);
        }
});

test('--metrics off serves the page to nobody; with TLS the page is served over https', async () => {
    const off = await startRoomsParley({ args: ['--metrics', 'off'] });
    try {
        assert.equal((await get(off.port, '/metrics')).status, 403);
    } finally {
        await off.stop();
    }
    const ca = new TestCa();
    try {
        const tls = ca.issue('metrics', '2001');
        const server = await startParley({ tls });
        try {
            const client = await Client.connect(server.url, { ca: tls.ca });
            assert.equal((await client.request({ type: 'ping' })).type, 'ok');
            await client.close();
            const page = await httpsGet(`${server.http}/metrics`, tls.ca);
            assert.equal(page.status, 200);
            const families = parseExposition(page.body);
            assert.ok(sampleValue(families, 'parley_gateway_requests_total', { type: 'ping', code: 'ok' }) >= 1);
            assert.ok(sampleValue(families, 'parley_gateway_sent_bytes_total') > 0);
        } finally {
            await stopCleanly(server);
        }
    } finally {
        ca.remove();
    }
});

test('files over HTTP count by way and status, and their bytes', async () => {
    const server = await startParley();
    try {
        const client = await Client.connect(server.url);
        const registered = await client.request({ type: 'auth.register', username: 'filer',
                                                  password: 'correct horse battery' });
        assert.equal(registered.type, 'ok', JSON.stringify(registered));
        await client.close();
        const before = (await scrape(server.port)).families;
        const data = Buffer.alloc(300000, 7);
        const upload = (token) => fetch(`${server.http}/files`, {
            method: 'POST', body: data,
            headers: { Authorization: `Bearer ${token}`, 'X-Filename': 'counted.bin' } });
        const created = await upload(registered.token);
        assert.equal(created.status, 201);
        const { file } = await created.json();
        assert.equal((await upload('A'.repeat(43))).status, 401);
        const download = await fetch(`${server.http}/files/${file.id}`);
        assert.equal(download.status, 200);
        assert.equal((await download.arrayBuffer()).byteLength, data.length);
        assert.equal((await fetch(`${server.http}/files/${'B'.repeat(22)}`)).status, 404);

        const { families: after, text } = await scrape(server.port);
        const moved = (name, labels, by) => assert.equal(value(after, name, labels) - value(before, name, labels), by,
            `${name}${JSON.stringify(labels)}`);
        moved('parley_gateway_file_requests_total', { way: 'upload', status: '201' }, 1);
        moved('parley_gateway_file_requests_total', { way: 'upload', status: '401' }, 1);
        moved('parley_gateway_file_requests_total', { way: 'download', status: '200' }, 1);
        moved('parley_gateway_file_requests_total', { way: 'download', status: '404' }, 1);
        moved('parley_gateway_file_bytes_total', { way: 'upload' }, data.length);
        moved('parley_gateway_file_bytes_total', { way: 'download' }, data.length);
        assert.ok(!text.includes(file.id) && !text.includes('counted.bin'), 'no file id or name on the page');
    } finally {
        await stopCleanly(server);
    }
});

test('a gateway of its own counts the broker it lost and the one that welcomed it again, with its plugins', async () => {
    let broker = await startBroker({ args: ['--plugin', pluginPath('example')] });
    const gateway = await startGateway(broker.endpoint);
    try {
        const up = (families) => families.get('parley_broker_plugin_up')?.samples
            .some((sample) => sample.labels.name === 'example' && sample.value === 1);
        const first = await eventually(async () => {
            const { families } = await scrape(gateway.port);
            return up(families) ? families : null;
        }, 15000, 200);
        assert.ok(first, 'the example plugin is up');
        assert.equal(value(first, 'parley_gateway_broker_welcomes_total'), 1);
        const lost = () => value(first, 'parley_gateway_broker_lost_total', { how: 'silent' })
                         + value(first, 'parley_gateway_broker_lost_total', { how: 'restarted' });
        assert.equal(lost(), 0);

        // kill -9 and a new broker on the same endpoint
        broker.proc.signal('SIGKILL');
        await broker.proc.exited;
        const again = new Proc('parley-broker', broker.proc.file, broker.proc.args);
        broker = { proc: again, stop: () => again.stop() };
        const after = await eventually(async () => {
            const { families } = await scrape(gateway.port);
            const seen = value(families, 'parley_gateway_broker_lost_total', { how: 'silent' })
                       + value(families, 'parley_gateway_broker_lost_total', { how: 'restarted' });
            return seen >= 1 && value(families, 'parley_gateway_broker_up') === 1 && up(families)
                ? families : null;
        }, 30000, 200);
        assert.ok(after, 'the loss, the welcome and the plugin again reach the page');
        assert.equal(value(after, 'parley_gateway_broker_welcomes_total'), 2);
    } finally {
        const status = await gateway.stop();
        await broker.stop();
        assert.deepEqual(sanitizerReports(gateway.proc.output), []);
        assert.equal(status.code, 0, gateway.proc.output);
    }
});

// The sum of a store family's sample (_count or _sum) over every series
// of this store and operation
function storeTotal(families, sample) {
    const base = sample.replace(/_(count|sum)$/, '');
    return (families.get(base)?.samples ?? [])
        .filter((each) => each.name === sample && each.labels.store === STORE.name
                       && each.labels.operation === STORE.operation)
        .reduce((total, each) => total + each.value, 0);
}

// A user sends messages; both store families move on the page of the
// gateway at port, from the store instance named like instancePattern
async function storeFamiliesMove(port, url, instancePattern) {
    const clients = [];
    try {
        // The plugins' figures come with the broker's answer after the one
        // that asked them (proto/ENVELOPE.md, "Stats")
        const before = await eventually(async () => {
            const { families } = await scrape(port);
            return families.has('parley_store_commit_seconds') && families.has('parley_store_batch_size')
                ? families : null;
        }, 15000, 200);
        assert.ok(before, 'the store\'s families reach the page');
        assert.equal(before.get('parley_store_commit_seconds').type, 'histogram');
        assert.equal(before.get('parley_store_batch_size').type, 'histogram');
        const writer = await eventually(async () => {
            try {
                return await connectUser(url, 'metrics_writer', clients);
            } catch {
                return null;            // the split deployment's plugins are still saying hello
            }
        }, 15000, 200);
        assert.ok(writer, 'a user signs up');
        await ok(writer, { type: 'room.create', room: 'store-metrics' });
        for (let index = 0; index < 6; index++)
            await ok(writer, { type: 'msg.send', room: 'store-metrics', text: `stored ${index}` });
        const counts = (families) => ['parley_store_commit_seconds_count', 'parley_store_batch_size_count']
            .map((name) => storeTotal(families, name));
        const [seconds, sizes] = counts(before);
        const after = await eventually(async () => {
            const { families } = await scrape(port);
            const [nowSeconds, nowSizes] = counts(families);
            return nowSeconds >= seconds + 6 && nowSizes >= sizes + 6 ? families : null;
        }, 20000, 200);
        assert.ok(after, `six appends' commits reach the page: ${counts(before)} -> ${counts((await scrape(port)).families)}`);
        assert.ok(storeTotal(after, 'parley_store_commit_seconds_sum') > storeTotal(before, 'parley_store_commit_seconds_sum'));
        assert.ok(storeTotal(after, 'parley_store_batch_size_sum') >= storeTotal(before, 'parley_store_batch_size_sum') + 6);
        for (const family of ['parley_store_commit_seconds', 'parley_store_batch_size']) {
            const samples = after.get(family).samples.filter((each) => each.labels.store === STORE.name);
            assert.ok(samples.length > 0, `${family} has ${STORE.name}'s series`);
            for (const sample of samples)
                assert.match(sample.labels.instance, instancePattern, `${family} is labelled by its instance`);
        }
    } finally {
        for (const client of clients)
            await client.close();
    }
}

test('the store\'s commit latency and batch sizes reach the page, the store in process', async () => {
    const server = await startRoomsParley();
    try {
        await storeFamiliesMove(server.port, server.url, new RegExp(`^${STORE.plugin}@`));
    } finally {
        await server.stop();
    }
});

test('the store\'s commit latency and batch sizes reach the page, the store in a parley-plugin process', async () => {
    const data = tempDir('parley-metrics-split-');
    const broker = await startBroker({ args: [
        '--plugin', pluginPath('auth'), '--plugin', pluginPath('rooms'), ...FAST_AUTH,
    ] });
    const storeArgs = STORE.name === 'mongo'
        ? ['--option', `store-mongo.uri=${await mongoUriFor(data)}`]
        : ['--option', `store-sqlite.path=${path.join(data, 'parley.db')}`];
    const store = startPluginProcess(broker.endpoint, [pluginPath(STORE.plugin)], { args: storeArgs });
    let gateway;
    try {
        gateway = await startGateway(broker.endpoint);
        await storeFamiliesMove(gateway.port, gateway.url, new RegExp(`^${STORE.plugin}@`));
    } finally {
        const gatewayStatus = await gateway?.stop();
        const storeStatus = await store.stop();
        await broker.stop();
        for (const proc of [gateway?.proc, store, broker.proc].filter(Boolean))
            assert.deepEqual(sanitizerReports(proc.output), [], proc.output);
        assert.equal(storeStatus.code, 0, store.output);
        if (gateway)
            assert.equal(gatewayStatus.code, 0, gateway.proc.output);
    }
});

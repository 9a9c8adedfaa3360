// The standby broker (Binary Star, proto/ENVELOPE.md "Standby broker"): a
// primary and a backup parley-broker watching each other over CURVE, a
// gateway and the plugins as processes (store-sqlite, auth, presence, rooms,
// pm), each given both brokers. Users logged in send into a room under load;
// the active broker is killed with SIGKILL: the clients stay connected to the
// gateway, see a pause (requests in flight answered unavailable), and carry on
// without logging in again; no acknowledged message is lost (room.history).
// The killed broker, started again, comes back passive and takes no peer;
// killing the other fails back to it. Every send carries a nonce and is
// repeated after an error (its outcome unknown) until acknowledged: each is
// stored exactly once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
    Client, Proc, binDir, eventually, freePort, pluginPath, repoRoot, sanitizerReports, sleep, tempDir,
    waitForHealth,
} from '../lib/harness.js';
import { PASSWORD, ok } from '../lib/rooms.js';

// Beats a little slower than the other tests': a loaded machine must not
// take a busy broker for a dead one
const HEARTBEAT = ['--heartbeat', '300'];
const ROOM = 'standby';
const USERS = ['ann', 'bob', 'cyd'];
const WAIT = 60000;

// Keys of our own: the brokers share one pair, allowed in their folder too
// for the link between them (parley-broker says so if it is missing)
function makeKeys(dir, { allowBroker = true } = {}) {
    const keygen = path.join(binDir, 'parley-keygen');
    const allow = path.join(dir, 'allowed');
    const broker = path.join(dir, 'broker.cert');
    const peer = path.join(dir, 'peer.cert');
    execFileSync(keygen, [broker]);
    execFileSync(keygen, ['--allow', allow, peer]);
    if (allowBroker)
        execFileSync(keygen, ['--allow', allow, '--add', broker]);
    return { allow, broker, peer };
}

function startBroker(name, role, ports, keys) {
    const [mine, theirs] = role === 'primary' ? [ports.a, ports.b] : [ports.b, ports.a];
    return new Proc(name, path.join(binDir, 'parley-broker'), [
        '--bind', `tcp://127.0.0.1:${mine.peers}`,
        '--curve-cert', keys.broker, '--curve-allow', keys.allow,
        `--bstar-${role}`,
        '--bstar-bind', `tcp://127.0.0.1:${mine.state}`,
        '--bstar-peer', `tcp://127.0.0.1:${theirs.state}`,
        ...HEARTBEAT]);
}

// A plugin process given both brokers: as a list, or the option twice
function startPlugin(name, endpoints, keys, options, repeated) {
    const brokers = repeated ? endpoints.flatMap((endpoint) => ['--broker', endpoint])
                             : ['--broker', endpoints.join(',')];
    return new Proc(name, path.join(binDir, 'parley-plugin'), [
        ...brokers, '--curve-cert', keys.peer, '--curve-broker', keys.broker, ...HEARTBEAT,
        ...options.flatMap((option) => ['--option', option]), pluginPath(name)]);
}

const welcomed = (proc, plugin) => proc.output.includes(`welcomed plugin '${plugin}'`);
const PLUGINS = ['store-sqlite', 'auth', 'presence', 'rooms', 'pm'];

// One user sending into the room as fast as replies come, each message a
// fresh text and nonce; a send answered with an error (its outcome unknown)
// is repeated with its nonce until acknowledged
class Sender {
    constructor(client) {
        this.client = client;
        this.acked = [];            // texts acknowledged, in order
        this.unknown = [];          // texts given up after 100 tries: maybe stored
        this.repeats = 0;           // sends repeated with their nonce
        this.duplicates = 0;        // ... answered duplicate: true
        this.errors = [];           // error codes seen
        this.running = true;
        this.done = this.run();
    }

    async send(text, nonce) {
        try {
            return await this.client.request({ type: 'msg.send', room: ROOM, text, nonce }, 20000);
        } catch (error) {
            return { type: 'error', code: 'no_reply', message: error.message };
        }
    }

    async run() {
        for (let index = 0; this.running; index++) {
            const text = `${this.client.user}-${index}`;
            const nonce = `n-${text}`;
            let reply = await this.send(text, nonce);
            for (let attempt = 0; reply.type === 'error' && attempt < 100; attempt++) {
                this.errors.push(reply.code);
                await sleep(200);
                this.repeats++;
                reply = await this.send(text, nonce);
                if (reply.type === 'ok' && reply.duplicate)
                    this.duplicates++;
            }
            if (reply.type === 'ok')
                this.acked.push(text);
            else {
                this.errors.push(reply.code);
                this.unknown.push(text);
                await sleep(100);
            }
            await sleep(20);
        }
    }

    async stop() {
        this.running = false;
        await this.done;
    }
}

// Until every sender has count more acknowledgements than it had at marks
async function untilEachAcks(senders, marks, count, what) {
    const moved = await eventually(() => senders.every((sender, index) =>
        sender.acked.length >= marks[index] + count), WAIT, 100);
    assert.ok(moved, `${what}: ${senders.map((sender) =>
        `${sender.client.user} ${sender.acked.length} acked, errors ${sender.errors.slice(-5)}`)}`);
}

// Every message of the room, oldest first, by pages of 200
async function wholeHistory(client) {
    const entries = [];
    let before;
    for (;;) {
        const page = await ok(client, { type: 'room.history', room: ROOM, limit: 200,
                                        ...(before ? { before } : {}) });
        entries.unshift(...page.messages);
        if (!page.more || page.messages.length === 0)
            return entries;
        before = page.messages[0].seq;
    }
}

// msg.send answers a repeated nonce duplicate: true
async function noncesServed(client) {
    const first = await ok(client, { type: 'msg.send', room: ROOM, text: 'nonce probe', nonce: 'probe-1' });
    const again = await ok(client, { type: 'msg.send', room: ROOM, text: 'nonce probe', nonce: 'probe-1' });
    return again.duplicate === true && again.seq === first.seq;
}

test('kill -9 of the active broker: clients pause, carry on, lose nothing acknowledged; the pair fails over and back', { timeout: 420000 }, async (t) => {
    const dir = tempDir('parley-bstar-');
    const keys = makeKeys(dir);
    const ports = {
        a: { peers: await freePort(), state: await freePort() },
        b: { peers: await freePort(), state: await freePort() },
    };
    const endpoints = [`tcp://127.0.0.1:${ports.a.peers}`, `tcp://127.0.0.1:${ports.b.peers}`];
    const procs = {};
    const killed = new Set();
    const clients = [];
    let senders = [];
    try {
        procs.primary = startBroker('primary', 'primary', ports, keys);
        procs.backup = startBroker('backup', 'backup', ports, keys);
        assert.ok(await procs.primary.waitForOutput(/standby pair: primary -> active/, WAIT),
                  `the primary never went active\n${procs.primary.output}`);
        assert.ok(await procs.backup.waitForOutput(/standby pair: backup -> passive/, WAIT),
                  `the backup never went passive\n${procs.backup.output}`);

        const options = {
            'store-sqlite': [`store-sqlite.path=${path.join(dir, 'parley.db')}`],
            auth: ['auth.register_rate=0', 'auth.ops_limit=1', 'auth.mem_limit=65536'],
            rooms: ['rooms.msg_rate=0'],
        };
        PLUGINS.forEach((name, index) => {
            procs[name] = startPlugin(name, endpoints, keys, options[name] ?? [], index % 2 === 1);
        });
        const gwPort = await freePort();
        procs.gateway = new Proc('gateway', path.join(binDir, 'parley-gw'), [
            '--listen', `127.0.0.1:${gwPort}`, '--broker', endpoints.join(','),
            '--curve-cert', keys.peer, '--curve-broker', keys.broker, ...HEARTBEAT]);
        await waitForHealth(gwPort, WAIT);
        assert.ok(await eventually(() => PLUGINS.every((name) => welcomed(procs.primary, name)), WAIT),
                  `not every plugin reached the primary\n${procs.primary.output}`);
        assert.ok(!/welcomed/.test(procs.backup.output), `the passive backup took a peer\n${procs.backup.output}`);

        // Users in a room
        const url = `ws://127.0.0.1:${gwPort}/ws`;
        for (const username of USERS) {
            const client = await Client.connect(url);
            clients.push(client);
            let reply;
            await eventually(async () => {
                reply = await client.request({ type: 'auth.register', username, password: PASSWORD });
                return reply.type === 'ok' || reply.code !== 'unavailable';
            }, WAIT, 200);
            assert.equal(reply.type, 'ok', JSON.stringify(reply));
            client.user = reply.user;
        }
        await ok(clients[0], { type: 'room.create', room: ROOM });
        for (const client of clients.slice(1))
            await ok(client, { type: 'room.join', room: ROOM });
        assert.ok(await noncesServed(clients[0]), 'a send repeated with its nonce answers duplicate');

        // Under load: the active one dies
        senders = clients.map((client) => new Sender(client));
        await untilEachAcks(senders, senders.map(() => 0), 40, 'before the kill');
        let marks = senders.map((sender) => sender.acked.length);
        procs.primary.signal('SIGKILL');
        killed.add('primary');
        await procs.primary.exited;
        assert.ok(await procs.backup.waitForOutput(/standby pair: passive -> active/, WAIT),
                  `the backup never took over\n${procs.backup.output}`);
        await untilEachAcks(senders, marks, 30, 'after the primary was killed');
        assert.ok(await procs.gateway.waitForOutput(/moving to the broker at/, 1000), procs.gateway.output);
        assert.ok(PLUGINS.every((name) => welcomed(procs.backup, name)), procs.backup.output);
        for (const client of clients)
            assert.equal(client.closeCode, undefined, `${client.user}'s connection closed`);

        // The killed one comes back passive, and takes no peer
        procs.primary = startBroker('primary again', 'primary', ports, keys);
        killed.delete('primary');
        assert.ok(await procs.primary.waitForOutput(/standby pair: primary -> passive/, WAIT),
                  `the restarted primary did not come back passive\n${procs.primary.output}`);
        marks = senders.map((sender) => sender.acked.length);
        await untilEachAcks(senders, marks, 20, 'with the primary back, passive');
        assert.ok(!/welcomed/.test(procs.primary.output),
                  `the passive primary took a peer\n${procs.primary.output}`);

        // The other dies: back to the primary
        marks = senders.map((sender) => sender.acked.length);
        procs.backup.signal('SIGKILL');
        killed.add('backup');
        await procs.backup.exited;
        assert.ok(await procs.primary.waitForOutput(/standby pair: passive -> active/, WAIT),
                  `the primary never took over again\n${procs.primary.output}`);
        await untilEachAcks(senders, marks, 30, 'after the backup was killed');
        assert.ok(PLUGINS.every((name) => welcomed(procs.primary, name)), procs.primary.output);
        for (const client of clients)
            assert.equal(client.closeCode, undefined, `${client.user}'s connection closed`);
        await Promise.all(senders.map((sender) => sender.stop()));

        // Nothing acknowledged lost, nothing stored twice
        const history = await wholeHistory(clients[1]);
        const stored = new Map();
        for (const entry of history.filter((each) => each.type === 'message'))
            stored.set(entry.text, (stored.get(entry.text) ?? 0) + 1);
        for (const sender of senders) {
            for (const text of sender.acked)
                assert.equal(stored.get(text), 1, `${text} acknowledged, stored ${stored.get(text) ?? 0} times`);
            for (const text of sender.unknown)
                assert.ok((stored.get(text) ?? 0) <= 1, `${text} stored twice`);
            t.diagnostic(`${sender.client.user}: ${sender.acked.length} acknowledged, `
                         + `${sender.unknown.length} of unknown outcome, ${sender.repeats} repeated `
                         + `(${sender.duplicates} answered duplicate); errors seen: `
                         + `${[...new Set(sender.errors)].join(', ') || 'none'}`);
        }
        // Every send was repeated until acknowledged: all stored, once
        assert.ok(senders.every((sender) => sender.unknown.length === 0),
                  'a send was given up after 100 tries');
        // Sessions stayed bound through both failovers: presence sees everyone
        const online = await eventually(async () => {
            const { users } = await ok(clients[0], { type: 'presence.list' });
            return USERS.every((name) => users.some((entry) => entry.user === name && entry.online));
        }, WAIT, 200);
        assert.ok(online, 'presence does not see every user online after the failovers');
    } finally {
        for (const sender of senders)
            sender.running = false;
        await Promise.all(clients.map((client) => client.close()));
        for (const name of ['gateway', ...PLUGINS, 'primary', 'backup']) {
            const proc = procs[name];
            if (!proc)
                continue;
            const status = await proc.stop();
            assert.deepEqual(sanitizerReports(proc.output), [], `${name}\n${proc.output}`);
            if (!killed.has(name))
                assert.equal(status.code, 0, `${name} exited with ${JSON.stringify(status)}\n${proc.output}`);
        }
        rmSync(dir, { recursive: true, force: true });
    }
});

test('a standby broker refuses what cannot work, with a sentence', async () => {
    const dir = tempDir('parley-bstar-');
    try {
        const keys = makeKeys(dir, { allowBroker: false });
        const broker = path.join(binDir, 'parley-broker');
        const refused = (args, pattern) => {
            const proc = new Proc('parley-broker', broker, args);
            return proc.exited.then((status) => {
                assert.equal(status.code, 2, `${args.join(' ')}\n${proc.output}`);
                assert.match(proc.output, pattern);
            });
        };
        const keyArgs = ['--curve-cert', keys.broker, '--curve-allow', keys.allow];
        const link = ['--bstar-bind', 'tcp://127.0.0.1:1', '--bstar-peer', 'tcp://127.0.0.1:2'];
        await refused(['--bstar-primary', '--bstar-backup', ...link, ...keyArgs], /exclude each other/);
        await refused([...link, ...keyArgs], /need --bstar-primary or --bstar-backup/);
        await refused(['--bstar-backup', '--bstar-bind', 'tcp://127.0.0.1:1', ...keyArgs],
                      /needs --bstar-bind and --bstar-peer/);
        await refused(['--bstar-primary', ...link, ...keyArgs, '--plugin', 'example'], /runs no --plugin/);
        await refused(['--bstar-primary', ...link], /needs the broker's keys/);
        // The brokers' own key is not in the folder yet
        await refused(['--bstar-primary', ...link, ...keyArgs], /allow it in the folder too/);
        // Peers: a broken list of brokers
        const gateway = new Proc('parley-gw', path.join(binDir, 'parley-gw'),
                                 ['--broker', 'tcp://127.0.0.1:1,,tcp://127.0.0.1:2']);
        assert.equal((await gateway.exited).code, 2, gateway.output);
        assert.match(gateway.output, /empty item/);
        const plugin = new Proc('parley-plugin', path.join(binDir, 'parley-plugin'),
                                ['--broker', 'tcp://127.0.0.1:1', '--broker', 'ipc:///tmp/x',
                                 pluginPath('example')]);
        assert.equal((await plugin.exited).code, 1, plugin.output);
        assert.match(plugin.output, /either all are tcp:\/\/ or none/);
        // --print-config shows the pair's keys as the file would hold them
        const printed = execFileSync(broker, ['--bstar-backup', ...link, '--insecure-peers',
                                              '--print-config'], { encoding: 'utf8' });
        assert.match(printed, /^bstar-backup = true$/m);
        assert.match(printed, /^bstar-peer = "tcp:\/\/127\.0\.0\.1:2"$/m);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

// deploy/standby/NAME.cfg with this test's ports, keys and folders
function standbyConfig(dir, name, replacements) {
    let text = readFileSync(path.join(repoRoot, 'deploy', 'standby', `${name}.cfg`), 'utf8');
    for (const [from, to] of replacements) {
        assert.ok(text.includes(from), `deploy/standby/${name}.cfg names ${from}`);
        text = text.split(from).join(to);
    }
    assert.ok(!/\/opt\/parley|\/etc\/parley|\/var\/lib|192\.0\.2/.test(text.replace(/^\s*#.*$/gm, '')),
              `every address and path of ${name}.cfg is one this test replaced`);
    const file = path.join(dir, `${name}.cfg`);
    writeFileSync(file, text);
    return file;
}

// The unit's ExecStart with this build and file, as 61-deploy runs them
function startUnit(unit, file) {
    const text = readFileSync(path.join(repoRoot, 'deploy', 'systemd', unit), 'utf8');
    const words = /^ExecStart=(.*)$/m.exec(text)[1].trim().split(/\s+/)
        .map((word) => word.replace('/opt/parley/bin/', `${binDir}/`)
                           .replace('/etc/parley/parley.cfg', file));
    return new Proc(`${unit} ${path.basename(file)}`, words[0], words.slice(1));
}

test('deploy/standby: both brokers start from their files with parley-broker.service, and the gateway follows the live one', { timeout: 180000 }, async () => {
    const dir = tempDir('parley-bstar-deploy-');
    const keys = makeKeys(dir);
    const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
    const gwPort = await freePort();
    const replacements = [
        ['192.0.2.1:7700', `127.0.0.1:${ports[0]}`], ['192.0.2.2:7700', `127.0.0.1:${ports[1]}`],
        ['192.0.2.1:7701', `127.0.0.1:${ports[2]}`], ['192.0.2.2:7701', `127.0.0.1:${ports[3]}`],
        ['/etc/parley/keys/broker.cert', keys.broker], ['/etc/parley/keys/allowed', keys.allow],
        ['/etc/parley/keys/peer.cert', keys.peer], ['/opt/parley/web', path.join(repoRoot, 'web')],
        ['/var/lib/parley', dir], ['127.0.0.1:8080', `127.0.0.1:${gwPort}`],
    ];
    const files = { primary: standbyConfig(dir, 'primary', replacements),
                    backup: standbyConfig(dir, 'backup', replacements) };
    const procs = {};
    try {
        procs.primary = startUnit('parley-broker.service', files.primary);
        procs.backup = startUnit('parley-broker.service', files.backup);
        assert.ok(await procs.primary.waitForOutput(/standby pair: primary -> active/, WAIT), procs.primary.output);
        assert.ok(await procs.backup.waitForOutput(/standby pair: backup -> passive/, WAIT), procs.backup.output);
        procs.gateway = startUnit('parley-gw.service', files.primary);
        await waitForHealth(gwPort, WAIT);
        assert.ok(await procs.gateway.waitForOutput(new RegExp(`welcomed by the broker at tcp://127.0.0.1:${ports[0]}`), WAIT),
                  procs.gateway.output);
        procs.primary.signal('SIGKILL');
        await procs.primary.exited;
        assert.ok(await procs.gateway.waitForOutput(new RegExp(`welcomed by the broker at tcp://127.0.0.1:${ports[1]}`), WAIT),
                  procs.gateway.output);
        assert.match(procs.backup.output, /standby pair: passive -> active/);
        await waitForHealth(gwPort, WAIT);
    } finally {
        for (const name of ['gateway', 'primary', 'backup']) {
            const proc = procs[name];
            if (!proc)
                continue;
            const status = await proc.stop();
            assert.deepEqual(sanitizerReports(proc.output), [], `${name}\n${proc.output}`);
            if (name !== 'primary')
                assert.equal(status.code, 0, `${name} exited with ${JSON.stringify(status)}\n${proc.output}`);
        }
        rmSync(dir, { recursive: true, force: true });
    }
});

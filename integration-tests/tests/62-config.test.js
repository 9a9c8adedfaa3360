// One configuration file (ZPL) for every program, and json logs (README.md,
// "Configuration file" and "Logs"): a plugin's option from the file takes
// effect as a client sees it, the command line wins over the file, an
// unknown key stops the program with the file and the line, --print-config
// shows the result and reads back, and --log-format json writes one JSON
// object a line. Real processes, real WebSockets.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import {
    binDir, tempDir, freePort, startBroker, startGateway, startPluginProcess, untilRegistered,
    sanitizerReports,
} from '../lib/harness.js';
import { startRoomsParley, connectUser, ok, fails, FAST_AUTH } from '../lib/rooms.js';

const dir = tempDir('parley-config-');
const clients = [];
after(() => {
    for (const client of clients)
        client.ws.terminate();
    rmSync(dir, { recursive: true, force: true });
});

let files = 0;
function configFile(text) {
    const file = path.join(dir, `test-${++files}.cfg`);
    writeFileSync(file, text);
    return file;
}

// Runs a program to its end: status, stdout, stderr
function run(program, args) {
    const result = spawnSync(path.join(binDir, program), args, { encoding: 'utf8', timeout: 60000 });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

// The lines of a --print-config output without its comments
const keyLines = (text) => text.split('\n').filter((line) => line && !line.startsWith('#'));

async function refused(port) {
    try {
        await fetch(`http://127.0.0.1:${port}/healthz`);
        return false;
    } catch {
        return true;
    }
}

test('a plugin option from the file takes effect, and the command line wins over the file', async () => {
    const filePort = await freePort();
    const file = configFile([
        '#   a test configuration',
        'parley',
        `    listen = 127.0.0.1:${filePort}`,
        '    rooms/max_owned = 1',
        '',
    ].join('\n'));

    // startRoomsParley gives --listen on the command line: that port serves
    const fromFile = await startRoomsParley({ args: ['--config', file] });
    try {
        assert.ok(await refused(filePort), 'the file\'s listen lost to the command line\'s');
        const alice = await connectUser(fromFile.url, 'cfg_alice', clients);
        await ok(alice, { type: 'room.create', room: 'cfg-one' });
        await fails(alice, { type: 'room.create', room: 'cfg-two' }, 'quota_exceeded');
    } finally {
        await fromFile.stop();
    }

    // --option rooms.max_owned=2 on the command line over the file's 1
    const overridden = await startRoomsParley({ args: ['--config', file, '--option', 'rooms.max_owned=2'] });
    try {
        const bob = await connectUser(overridden.url, 'cfg_bob', clients);
        await ok(bob, { type: 'room.create', room: 'cfg-three' });
        await ok(bob, { type: 'room.create', room: 'cfg-four' });
        await fails(bob, { type: 'room.create', room: 'cfg-five' }, 'quota_exceeded');
    } finally {
        await overridden.stop();
    }
});

test('--print-config prints the file and the command line merged, as ZPL that --config reads back', () => {
    const file = configFile([
        'heartbeat = 300',
        'verbose = true',
        'rooms/msg_rate = 20',
        'rooms',
        '    max_owned = 3',
        'store-sqlite/path = "/tmp/a file.db"',
        '',
    ].join('\n'));
    const printed = run('parley', ['--config', file, '--heartbeat', '700',
                                   '--option', 'rooms.msg_rate=5', '--print-config']);
    assert.equal(printed.status, 0, printed.stderr);
    assert.equal(printed.stderr, '');
    assert.deepEqual(keyLines(printed.stdout), [
        'log-format = "text"',
        'verbose = true',
        'heartbeat = "700"',
        'rooms',
        '    max_owned = "3"',
        '    msg_rate = "5"',
        'store-sqlite',
        '    path = "/tmp/a file.db"',
    ]);
    const again = run('parley', ['--config', configFile(printed.stdout), '--print-config']);
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(keyLines(again.stdout), keyLines(printed.stdout));
});

test('one file serves every program: top keys for all, a section for each, parley-plugin@NAME for one plugin process', () => {
    const file = configFile([
        'heartbeat = 400',
        'log-format = json',
        'parley-broker',
        '    bind = tcp://127.0.0.1:7790',
        '    insecure-peers = true',
        'parley-gw',
        '    listen = 127.0.0.1:8090',
        '    broker = tcp://127.0.0.1:7790',
        '    max-per-address = 7',
        '    stop-timeout = 3000',
        'parley-plugin',
        '    broker = tcp://127.0.0.1:7790',
        'parley-plugin@rooms',
        '    rooms/msg_rate = 9',
        '',
    ].join('\n'));
    const expected = {
        'parley-broker': ['log-format = "json"', 'heartbeat = "400"', 'bind = "tcp://127.0.0.1:7790"',
                          'insecure-peers = true'],
        'parley-gw': ['log-format = "json"', 'heartbeat = "400"', 'listen = "127.0.0.1:8090"',
                      'broker = "tcp://127.0.0.1:7790"', 'max-per-address = "7"',
                      'stop-timeout = "3000"'],
    };
    for (const [program, lines] of Object.entries(expected)) {
        const printed = run(program, ['--config', file, '--print-config']);
        assert.equal(printed.status, 0, printed.stderr);
        assert.deepEqual(keyLines(printed.stdout), lines, program);
    }
    const rooms = run('parley-plugin', ['--config', file, '--print-config', 'rooms']);
    assert.equal(rooms.status, 0, rooms.stderr);
    assert.deepEqual(keyLines(rooms.stdout), ['log-format = "json"', 'heartbeat = "400"',
        'broker = "tcp://127.0.0.1:7790"', 'rooms', '    msg_rate = "9"']);
    const pm = run('parley-plugin', ['--config', file, '--print-config', 'pm']);
    assert.equal(pm.status, 0, pm.stderr);
    assert.ok(!/msg_rate/.test(pm.stdout), 'parley-plugin@rooms is not read by the pm process');
});

test('an unknown key, a bad value or a file that is not ZPL stops the program with the file and the line', async () => {
    const port = await freePort();
    const data = path.join(dir, 'data');
    const common = ['--listen', `127.0.0.1:${port}`, '--data', data, ...FAST_AUTH];
    const cases = [
        { program: 'parley', text: 'heartbeat = 500\nlisen = 127.0.0.1:1\n', line: 2, says: /unknown key 'lisen'/ },
        { program: 'parley', text: '#   rooms\nrooms\n    msg_rate = 5\n    bogus = 1\n', line: 4,
          says: /rooms.*no option 'bogus'/ },
        { program: 'parley', text: '\nroomz/msg_rate = 5\n', line: 2, says: /no plugin named 'roomz'/ },
        { program: 'parley', text: 'heartbeat = 500\nweb = "/tmp\n', line: 2, says: /missing "/ },
        { program: 'parley', text: 'rooms\n      msg_rate = 5\n', line: 2, says: /indent/ },
        { program: 'parley', text: 'verbose = maybe\n', line: 1, says: /true or false/ },
        { program: 'parley', text: 'listen\n', line: 1, says: /wants a value/ },
        { program: 'parley', text: 'config = /etc/other.cfg\n', line: 1, says: /cannot give the key 'config'/ },
        { program: 'parley', text: 'log-format = xml\n', line: 1, says: /text or json, not 'xml'/ },
        { program: 'parley-gw', text: 'heartbeat = 500\nrooms/msg_rate = 5\n', line: 2,
          says: /unknown key \(this program takes no plugin options\) 'rooms\/msg_rate'/ },
        { program: 'parley-broker', text: 'parley-broker\n    listen = 127.0.0.1:1\n', line: 2,
          says: /unknown key 'listen'/ },
    ];
    for (const { program, text, line, says } of cases) {
        const file = configFile(text);
        const result = run(program, ['--config', file, ...(program === 'parley' ? common : [])]);
        assert.notEqual(result.status, 0, `${program} ${text}`);
        assert.match(result.stderr, new RegExp(`^${program}: ${file}:${line}: `, 'm'), `${text}\n${result.stderr}`);
        assert.match(result.stderr, says, result.stderr);
        assert.ok(!/listening on/.test(result.stdout), `${text}: nothing served`);
        assert.deepEqual(sanitizerReports(result.stderr), []);
    }
    const missing = run('parley', ['--config', path.join(dir, 'nope.cfg')]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /--config .*nope\.cfg: cannot read it/);
    const format = run('parley', ['--log-format', 'xml']);
    assert.equal(format.status, 1);
    assert.match(format.stderr, /--log-format wants text or json, not 'xml'/);
});

// Every line of a process's stdout is a JSON object of the log format
function jsonLines(stdout, program) {
    const lines = stdout.split('\n').filter((line) => line.length);
    assert.ok(lines.length > 0, `${program} logged nothing`);
    return lines.map((line) => {
        const entry = JSON.parse(line);
        assert.match(entry.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, line);
        assert.ok(['error', 'warning', 'notice', 'info', 'debug'].includes(entry.level), line);
        assert.equal(entry.program, program, line);
        assert.equal(typeof entry.message, 'string', line);
        return entry;
    });
}

test('--log-format json: every line parley writes on stdout is a JSON object, with the plugin that spoke', async () => {
    const server = await startRoomsParley({ args: ['--log-format', 'json', '--verbose'] });
    const alice = await connectUser(server.url, 'json_alice', clients);
    await ok(alice, { type: 'room.create', room: 'json-room' });
    alice.ws.terminate();
    await server.stop();
    const entries = jsonLines(server.proc.stdout, 'parley');
    assert.ok(entries.some((entry) => /^parley: listening on http:/.test(entry.message)));
    assert.ok(entries.some((entry) => /^gateway: session/.test(entry.message)), 'czmq\'s lines are JSON too');
    assert.ok(entries.some((entry) => /^rooms@/.test(entry.plugin ?? '')), 'a plugin\'s line names it');
});

test('log-format = json from the file: the broker, a plugin process and a gateway all log JSON', async () => {
    const file = configFile('log-format = json\n');
    const broker = await startBroker({ args: ['--config', file] });
    const plugins = startPluginProcess(broker.endpoint, ['store-sqlite', 'auth'],
        { args: ['--config', file, '--option', `store-sqlite.path=${path.join(dir, 'json.db')}`,
                 ...FAST_AUTH] });
    let gateway;
    try {
        // Registered, not just "hosting": that comes before the broker has
        // welcomed store-sqlite and auth, and a register sent then finds auth unavailable
        await untilRegistered([plugins]);
        gateway = await startGateway(broker.endpoint, { args: ['--config', file] });
        await connectUser(gateway.url, 'json_bob', clients);
    } finally {
        await gateway?.stop();
        await plugins.stop();
        await broker.stop();
    }
    for (const [proc, program] of [[broker.proc, 'parley-broker'], [plugins, 'parley-plugin'],
                                   [gateway.proc, 'parley-gw']]) {
        jsonLines(proc.stdout, program);
        assert.deepEqual(sanitizerReports(proc.output), []);
        assert.equal(proc.exitCode, 0, proc.output);
    }
});

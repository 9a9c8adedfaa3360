// Peer authentication between processes: the broker's tcp:// endpoint takes
// only peers whose CURVE key is in its allowed folder; a peer with another
// key (or none) never registers, so nothing is routed to it or from it. A tcp
// bind without keys refuses to start unless --insecure-peers says so, and an
// ipc:// socket is owner-only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import {
    startParley, startBroker, startGateway, startPluginProcess, pluginPath, testKeys, Client, Proc,
    binDir, eventually, sanitizerReports, tempDir, freePort, sleep, HEARTBEAT_MS,
} from '../lib/harness.js';

const echo = (client, fields = {}) => client.request({ type: 'example.echo', ...fields });

function assertCleanExit(proc, status) {
    assert.deepEqual(sanitizerReports(proc.output), [], proc.output);
    assert.equal(status.code, 0, `${proc.name} exited with ${JSON.stringify(status)}\n${proc.output}`);
}

async function healthStatus(port) {
    try {
        return (await fetch(`http://127.0.0.1:${port}/healthz`)).status;
    } catch {
        return 0;
    }
}

test('a plugin process with a key the broker does not allow never serves; with an allowed key it does', async () => {
    const keys = testKeys();
    const broker = await startBroker();
    const gateway = await startGateway(broker.endpoint);
    const strangers = [
        startPluginProcess(broker.endpoint, [pluginPath('example')],
            { args: ['--curve-cert', keys.stranger, '--curve-broker', keys.broker] }),
        // the broker's own public certificate as its key: no secret, refused at start
        startPluginProcess(broker.endpoint, [pluginPath('example')],
            { args: ['--curve-cert', path.join(keys.allow, 'peer.cert'), '--curve-broker', keys.broker] }),
    ];
    let plugin;
    try {
        const refused = await strangers[1].exited;
        assert.notEqual(refused.code, 0);
        assert.match(strangers[1].output, /has no secret key/);
        assert.ok(await strangers[0].waitForOutput(/connecting to broker/, 10000), strangers[0].output);

        const client = await Client.connect(gateway.url);
        // Well past several heartbeats and hello retries: still nobody serves example.
        // Never served at all, example. is not even a known prefix to the broker.
        await sleep(10 * HEARTBEAT_MS);
        for (let attempt = 0; attempt < 5; attempt++) {
            const reply = await echo(client, { text: 'stranger?' });
            assert.equal(reply.type, 'error', `a stranger's plugin answered: ${JSON.stringify(reply)}`);
            assert.match(reply.code, /^(unknown_type|unavailable)$/);
        }
        assert.doesNotMatch(strangers[0].output, /registered with broker/);
        assert.doesNotMatch(broker.proc.output, /welcomed plugin 'example'/);
        // The operator hears of it, summed up
        assert.ok(await broker.proc.waitForOutput(
            /refused \d+ peer connection\(s\) on tcp:\/\/127\.0\.0\.1:\d+: no CURVE key, or a key not in the allowed folder/,
            10000), broker.proc.output);

        plugin = startPluginProcess(broker.endpoint, [pluginPath('example')]);
        const served = await eventually(async () => {
            const reply = await echo(client, { text: 'allowed' });
            return reply.type === 'ok' ? reply : null;
        }, 15000);
        assert.ok(served, `the allowed plugin never answered\n${plugin.output}\n${broker.proc.output}`);
        assert.deepEqual(served.echo, { text: 'allowed' });
        assert.equal((broker.proc.output.match(/welcomed plugin 'example'/g) ?? []).length, 1,
            'only the allowed instance registered');
        await client.close();
    } finally {
        assertCleanExit(strangers[0], await strangers[0].stop());
        if (plugin)
            assertCleanExit(plugin, await plugin.stop());
        assertCleanExit(gateway.proc, await gateway.stop());
        assertCleanExit(broker.proc, await broker.stop());
    }
});

test('a gateway without an allowed key never becomes healthy; with one it does', async () => {
    const keys = testKeys();
    const broker = await startBroker({ args: ['--plugin', pluginPath('example')] });
    const ports = [await freePort(), await freePort()];
    const strangers = [
        new Proc('parley-gw', path.join(binDir, 'parley-gw'),
            ['--listen', `127.0.0.1:${ports[0]}`, '--broker', broker.endpoint,
                '--heartbeat', String(HEARTBEAT_MS),
                '--curve-cert', keys.stranger, '--curve-broker', keys.broker]),
        // no keys at all: a plain connection to a CURVE endpoint
        new Proc('parley-gw', path.join(binDir, 'parley-gw'),
            ['--listen', `127.0.0.1:${ports[1]}`, '--broker', broker.endpoint,
                '--heartbeat', String(HEARTBEAT_MS)]),
    ];
    try {
        for (const [index, stranger] of strangers.entries()) {
            assert.ok(await stranger.waitForOutput(/listening on/, 10000), stranger.output);
            const statuses = [];
            for (let look = 0; look < 10; look++) {
                statuses.push(await healthStatus(ports[index]));
                await sleep(HEARTBEAT_MS);
            }
            assert.ok(statuses.every((status) => status === 503),
                `gateway ${index} answered /healthz ${statuses.join(',')}\n${stranger.output}`);
            // Its clients get nothing from the broker's plugins
            const client = await Client.connect(`ws://127.0.0.1:${ports[index]}/ws`);
            const reply = await echo(client, { text: 'through a stranger' });
            assert.equal(reply.type, 'error');
            await client.close();
        }
        assert.doesNotMatch(broker.proc.output, /welcomed gateway/);
        assert.match(broker.proc.output, /refused \d+ peer connection\(s\)/);
        assert.ok(broker.proc.output.split('\n').filter((line) => /refused \d+ peer/.test(line)).length < 10,
            'refusals are summed up, not logged one by one');

        const gateway = await startGateway(broker.endpoint);
        const client = await Client.connect(gateway.url);
        assert.equal((await echo(client)).type, 'ok');
        await client.close();
        assertCleanExit(gateway.proc, await gateway.stop());
    } finally {
        for (const stranger of strangers)
            assertCleanExit(stranger, await stranger.stop());
        assertCleanExit(broker.proc, await broker.stop());
    }
});

test('a tcp bind without keys refuses to start; --insecure-peers starts with a warning', async () => {
    const port = await freePort();
    const refused = new Proc('parley-broker', path.join(binDir, 'parley-broker'),
        ['--bind', `tcp://127.0.0.1:${port}`]);
    const status = await refused.exited;
    assert.equal(status.code, 1);
    assert.match(refused.output, /refusing to listen on tcp:\/\/127\.0\.0\.1:\d+ without peer keys/);
    assert.match(refused.output, /--insecure-peers/);
    assert.deepEqual(sanitizerReports(refused.output), []);

    // The all-in-one server too, for its extra --bind
    const data = tempDir();
    const parley = new Proc('parley', path.join(binDir, 'parley'),
        ['--listen', `127.0.0.1:${await freePort()}`, '--data', data,
            '--bind', `tcp://127.0.0.1:${await freePort()}`]);
    assert.notEqual((await parley.exited).code, 0);
    assert.match(parley.output, /refusing to listen on tcp:/);
    rmSync(data, { recursive: true, force: true });

    // Half the keys is a usage error
    const half = new Proc('parley-broker', path.join(binDir, 'parley-broker'),
        ['--bind', `tcp://127.0.0.1:${port}`, '--curve-cert', testKeys().broker]);
    assert.equal((await half.exited).code, 2);
    assert.match(half.output, /--curve-cert and --curve-allow go together/);

    // Insecure on request: any peer gets in, and the log says so
    const broker = await startBroker({ curve: false, args: ['--plugin', pluginPath('example')] });
    const gateway = await startGateway(broker.endpoint);
    try {
        assert.match(broker.proc.output, /INSECURE: tcp:\/\/127\.0\.0\.1:\d+ accepts any peer without a key \(--insecure-peers\)/);
        const client = await Client.connect(gateway.url);
        assert.equal((await echo(client)).type, 'ok');
        await client.close();
    } finally {
        assertCleanExit(gateway.proc, await gateway.stop());
        assertCleanExit(broker.proc, await broker.stop());
    }
});

test('parley-keygen makes a pair, allows it, adds a public certificate, and refuses to overwrite', () => {
    const dir = tempDir('parley-keygen-');
    const keygen = path.join(binDir, 'parley-keygen');
    const allow = path.join(dir, 'allowed');
    const out = execFileSync(keygen, ['--allow', allow, '--name', 'gw-1', path.join(dir, 'gw.cert')]).toString();
    const publicKey = /public key (\S{40})/.exec(out)[1];
    const publicCert = readFileSync(path.join(dir, 'gw.cert'), 'utf8');
    const secretCert = readFileSync(path.join(dir, 'gw.cert_secret'), 'utf8');
    assert.match(publicCert, new RegExp(`public-key = "${publicKey.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"`));
    assert.doesNotMatch(publicCert, /secret-key/);
    assert.match(secretCert, /secret-key = "/);
    assert.match(publicCert, /name = "gw-1"/);
    assert.equal(statSync(path.join(dir, 'gw.cert_secret')).mode & 0o777, 0o600);
    assert.equal(statSync(allow).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(allow), ['gw-1.cert']);
    assert.doesNotMatch(readFileSync(path.join(allow, 'gw-1.cert'), 'utf8'), /secret-key/);

    // An existing public certificate into the folder
    execFileSync(keygen, [path.join(dir, 'plugin.cert')]);
    execFileSync(keygen, ['--allow', allow, '--add', path.join(dir, 'plugin.cert')]);
    assert.deepEqual(readdirSync(allow).sort(), ['gw-1.cert', 'plugin.cert']);

    // A second run on the same file changes nothing
    let failed;
    try {
        execFileSync(keygen, [path.join(dir, 'gw.cert')], { stdio: 'pipe' });
    } catch (error) {
        failed = error;
    }
    assert.ok(failed, 'overwrote an existing key pair');
    assert.match(failed.stderr.toString(), /exists already/);
    assert.equal(readFileSync(path.join(dir, 'gw.cert_secret'), 'utf8'), secretCert);
    rmSync(dir, { recursive: true, force: true });
});

test('a broker on ipc:// makes its socket owner-only, and a plugin process reaches it there', async () => {
    const dir = tempDir('parley-ipc-');
    const socket = path.join(dir, 'run', 'broker.sock');
    const endpoint = `ipc://${socket}`;
    const broker = new Proc('parley-broker', path.join(binDir, 'parley-broker'),
        ['--bind', endpoint, '--heartbeat', String(HEARTBEAT_MS)]);
    assert.ok(await broker.waitForOutput(/listening on ipc:/, 10000), broker.output);
    const gateway = await startGateway(endpoint);
    const plugin = startPluginProcess(endpoint, [pluginPath('example')]);
    try {
        assert.ok(existsSync(socket));
        assert.equal(statSync(socket).mode & 0o777, 0o600);
        assert.equal(statSync(path.dirname(socket)).mode & 0o777, 0o700);
        const client = await Client.connect(gateway.url);
        const reply = await eventually(async () => {
            const answer = await echo(client, { text: 'over ipc' });
            return answer.type === 'ok' ? answer : null;
        }, 15000);
        assert.ok(reply, `no answer over ipc\n${plugin.output}\n${broker.output}`);
        await client.close();
    } finally {
        assertCleanExit(plugin, await plugin.stop());
        assertCleanExit(gateway.proc, await gateway.stop());
        assertCleanExit(broker, await broker.stop());
        rmSync(dir, { recursive: true, force: true });
    }
});

test('parley --bind tcp with keys takes a plugin process with an allowed key', async () => {
    const keys = testKeys();
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    const server = await startParley({
        withExample: false,
        args: ['--bind', endpoint, '--curve-cert', keys.broker, '--curve-allow', keys.allow],
    });
    const plugin = startPluginProcess(endpoint, [pluginPath('example')],
        { args: ['--curve-cert', keys.peer, '--curve-broker', keys.broker] });
    try {
        assert.match(server.proc.output, /listening on tcp:\/\/127\.0\.0\.1:\d+ \(CURVE: allowed peer keys only\)/);
        const client = await Client.connect(server.url);
        const reply = await eventually(async () => {
            const answer = await echo(client, { text: 'into parley' });
            return answer.type === 'ok' ? answer : null;
        }, 15000);
        assert.ok(reply, `${plugin.output}\n${server.proc.output}`);
        await client.close();
    } finally {
        assertCleanExit(plugin, await plugin.stop());
        assertCleanExit(server.proc, await server.stop());
    }
});

// Plugins in their two homes: in the broker's process and in a parley-plugin
// process over tcp://, the same .so. A plugin that dies or goes silent gets its
// callers `unavailable` in bounded time, and serves again once back.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
    startParley, startBroker, startGateway, startPluginProcess, pluginPath, testPluginDir,
    Client, Proc, binDir, eventually, sanitizerReports, tempDir, freePort,
} from '../lib/harness.js';

const echo = (client, fields = {}) => client.request({ type: 'example.echo', ...fields });

function assertCleanExit(proc, status) {
    assert.deepEqual(sanitizerReports(proc.output), [], proc.output);
    assert.equal(status.code, 0, `${proc.name} exited with ${JSON.stringify(status)}\n${proc.output}`);
}

test('example.echo is answered by the in-process plugin with the fields and the stamped user', async () => {
    const server = await startParley();
    try {
        const client = await Client.connect(server.url);
        const reply = await echo(client, { id: 5, text: 'hi', n: 3, list: [1, 'two', null] });
        assert.equal(reply.type, 'ok');
        assert.equal(reply.id, 5);
        assert.deepEqual(reply.echo, { text: 'hi', n: 3, list: [1, 'two', null] });
        assert.equal(reply.user, null, 'nobody is logged in, so no user is stamped');
        // a client cannot claim an identity: the broker stamps it
        const forged = await echo(client, { id: 6, user: 'mallory' });
        assert.equal(forged.user, null);
        assert.equal(forged.echo.user, 'mallory', 'the field is echoed as data, not as identity');
        await client.close();
    } finally {
        assertCleanExit(server.proc, await server.stop());
    }
});

test('example.echo is answered by a parley-plugin process over tcp, unavailable when it is killed, and again once restarted', async () => {
    const broker = await startBroker();
    const gateway = await startGateway(broker.endpoint);
    let plugin = startPluginProcess(broker.endpoint, [pluginPath('example')]);
    try {
        const client = await Client.connect(gateway.url);
        const first = await eventually(async () => {
            const reply = await echo(client, { text: 'out of process' });
            return reply.type === 'ok' ? reply : null;
        }, 15000);
        assert.ok(first, `the plugin never answered\n${plugin.output}\n${broker.proc.output}`);
        assert.deepEqual(first.echo, { text: 'out of process' });

        plugin.signal('SIGKILL');
        await plugin.exited;
        const down = await echo(client, { text: 'anyone?' });
        assert.equal(down.type, 'error');
        assert.equal(down.code, 'unavailable');
        assert.match(down.message, /example/);

        plugin = startPluginProcess(broker.endpoint, [pluginPath('example')]);
        const back = await eventually(async () => {
            const reply = await echo(client, { text: 'back' });
            return reply.type === 'ok' ? reply : null;
        }, 15000);
        assert.ok(back, 'the restarted plugin never answered');
        assert.deepEqual(back.echo, { text: 'back' });
        await client.close();
    } finally {
        assertCleanExit(plugin, await plugin.stop());
        assertCleanExit(gateway.proc, await gateway.stop());
        assertCleanExit(broker.proc, await broker.stop());
    }
});

test('a silent plugin process gets its callers unavailable in bounded time, and serves again when it wakes', async () => {
    const broker = await startBroker();
    const gateway = await startGateway(broker.endpoint);
    const plugin = startPluginProcess(broker.endpoint, [pluginPath('example')]);
    try {
        const client = await Client.connect(gateway.url);
        assert.ok(await eventually(async () => (await echo(client)).type === 'ok', 15000));

        assert.ok(await plugin.pause(), `the plugin process never stopped\n${plugin.output}`);
        const started = Date.now();
        const silent = await echo(client, { text: 'hello?' });
        assert.equal(silent.code, 'unavailable', `a stopped plugin answered ${JSON.stringify(silent)}\n` +
            `plugin:\n${plugin.output}\nbroker:\n${broker.proc.output}`);
        assert.ok(Date.now() - started < 15000, 'answered within the bounded time');

        plugin.signal('SIGCONT');
        const awake = await eventually(async () => {
            const reply = await echo(client, { text: 'awake' });
            return reply.type === 'ok' ? reply : null;
        }, 15000);
        assert.ok(awake, `the plugin never served again\n${plugin.output}`);
        await client.close();
    } finally {
        plugin.signal('SIGCONT');
        assertCleanExit(plugin, await plugin.stop());
        assertCleanExit(gateway.proc, await gateway.stop());
        assertCleanExit(broker.proc, await broker.stop());
    }
});

test('a request for a plugin that never started gets unavailable when its service is a protocol one, unknown_type otherwise', async () => {
    const broker = await startBroker();
    const gateway = await startGateway(broker.endpoint);
    try {
        const client = await Client.connect(gateway.url);
        assert.equal((await echo(client)).code, 'unknown_type');
        await client.close();
    } finally {
        assertCleanExit(gateway.proc, await gateway.stop());
        assertCleanExit(broker.proc, await broker.stop());
    }
});

test('a plugin built for another ABI major is refused at load with the versions supported', async () => {
    const mismatched = path.join(testPluginDir, 'abi-mismatch.so');
    const broker = await startBroker();
    try {
        const plugin = startPluginProcess(broker.endpoint, [mismatched]);
        const status = await plugin.exited;
        assert.notEqual(status.code, 0);
        assert.match(plugin.output, /ABI 2/);
        assert.match(plugin.output, /supports plugin ABI 1/);
    } finally {
        assertCleanExit(broker.proc, await broker.stop());
    }

    const port = await freePort();
    const data = tempDir();
    const parley = new Proc('parley', path.join(binDir, 'parley'),
        ['--listen', `127.0.0.1:${port}`, '--data', data, '--plugin', mismatched]);
    const status = await parley.exited;
    assert.notEqual(status.code, 0, 'parley refuses to start with a plugin it cannot load');
    assert.match(parley.output, /ABI 2/);
    assert.match(parley.output, /supports plugin ABI 1/);
});

test('the same plugin .so serves in-process in parley-broker', async () => {
    const broker = await startBroker({ args: ['--plugin', pluginPath('example')] });
    const gateway = await startGateway(broker.endpoint);
    try {
        const client = await Client.connect(gateway.url);
        const reply = await eventually(async () => {
            const answer = await echo(client, { text: 'in the broker' });
            return answer.type === 'ok' ? answer : null;
        });
        assert.ok(reply);
        assert.deepEqual(reply.echo, { text: 'in the broker' });
        await client.close();
    } finally {
        assertCleanExit(gateway.proc, await gateway.stop());
        assertCleanExit(broker.proc, await broker.stop());
    }
});

test('a gateway survives a broker restart and serves again', async () => {
    const broker = await startBroker({ args: ['--plugin', pluginPath('example')] });
    const gateway = await startGateway(broker.endpoint);
    let restarted;
    try {
        const client = await Client.connect(gateway.url);
        assert.equal((await echo(client)).type, 'ok');
        await broker.stop();
        const down = await echo(client);
        assert.equal(down.code, 'unavailable');
        restarted = new Proc('parley-broker', path.join(binDir, 'parley-broker'),
            [...broker.proc.args]);
        const back = await eventually(async () => {
            const answer = await echo(client, { text: 'again' });
            return answer.type === 'ok' ? answer : null;
        }, 15000);
        assert.ok(back, `no answer after the broker restart\n${gateway.proc.output}`);
        await client.close();
    } finally {
        assertCleanExit(gateway.proc, await gateway.stop());
        if (restarted)
            assertCleanExit(restarted, await restarted.stop());
    }
});

test('an --option key no plugin asks for, or for a plugin not loaded, stops parley, parley-broker and parley-plugin with the known keys', async () => {
    const data = tempDir();
    const run = async (name, args) => {
        const proc = new Proc(name, path.join(binDir, name), args);
        const status = await proc.exited;
        assert.equal(status.code, 1, `${name} ${args.join(' ')} exited ${JSON.stringify(status)}\n${proc.output}`);
        assert.deepEqual(sanitizerReports(proc.output), [], proc.output);
        return proc.output;
    };
    const listen = ['--listen', `127.0.0.1:${await freePort()}`, '--data', data];
    let output = await run('parley', [...listen, '--option', 'auth.worker=2']);
    assert.match(output, /plugin 'auth' .* has no option 'worker'/);
    assert.match(output, /its options are: .*\bops_limit\b.*\bworkers\b/);
    output = await run('parley', [...listen, '--option', 'romos.msg_rate=0']);
    assert.match(output, /--option romos\.msg_rate=0: no plugin named 'romos' is loaded/);
    // A known key with a value it cannot take stops the start too, naming what it wants
    output = await run('parley', [...listen, '--option', 'rooms.msg_rate=fast']);
    assert.match(output, /option rooms\.msg_rate=fast refused: want /);
    output = await run('parley', [...listen, '--option', 'pm.idle_ms=-5']);
    assert.match(output, /option pm\.idle_ms=-5 refused: want /);

    const broker = await startBroker();
    try {
        output = await run('parley-broker', ['--bind', `tcp://127.0.0.1:${await freePort()}`,
            '--insecure-peers', '--plugin', pluginPath('example'), '--option', 'example.greting=Hi']);
        assert.match(output, /has no option 'greting'.*its options are: greeting/);
        const plugin = startPluginProcess(broker.endpoint, [pluginPath('example')],
            { args: ['--option', 'example.greeting=Hi', '--option', 'pm.msg_rate=0'] });
        const status = await plugin.exited;
        assert.equal(status.code, 1);
        assert.match(plugin.output, /no plugin named 'pm' is loaded/);
        assert.doesNotMatch(broker.proc.output, /welcomed plugin/);
    } finally {
        assertCleanExit(broker.proc, await broker.stop());
    }
});

test('a plugin reply over the 1 MiB body limit is answered internal with outcome unknown at once, and logged', async () => {
    const server = await startParley({
        withExample: false,
        // The broker's timeout far away: only the host's answer can come in time
        args: ['--plugin', path.join(testPluginDir, 'probe.so'), '--request-timeout', '120000',
            '--option', 'auth.ops_limit=1', '--option', 'auth.mem_limit=65536'],
    });
    try {
        const client = await Client.connect(server.url);
        const registered = await client.request({ type: 'auth.register', username: 'alice', password: 'correct horse' });
        assert.equal(registered.type, 'ok', JSON.stringify(registered));
        for (const id of [10, 11]) {
            const reply = await client.request({ type: 'probe.huge', id }, 30000);
            assert.deepEqual(reply, {
                type: 'error', id, code: 'internal', outcome: 'unknown', __binary: false,
                message: 'The reply was too large to send; the request may or may not have taken effect.',
            });
        }
        const lines = server.proc.output.split('\n')
            .filter((line) => /plugin 'probe' made a reply to 'probe\.huge' of \d+ bytes, over the 1048576-byte limit/.test(line));
        assert.equal(lines.length, 1, `logged once per type\n${server.proc.output}`);
        await client.close();
    } finally {
        assertCleanExit(server.proc, await server.stop());
    }
});

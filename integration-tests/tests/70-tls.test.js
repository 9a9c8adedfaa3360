// TLS in the gateway (--tls-cert, --tls-key): https and wss on one port with a
// throwaway CA, plain clients refused there, SIGHUP loading a new certificate
// for new connections, and the options' errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
    startParley, startBroker, startGateway, pluginPath, Client, Proc, binDir, httpsGet,
    eventually, sanitizerReports, tempDir, freePort,
} from '../lib/harness.js';
import { stopCleanly } from '../lib/clean-stop.js';
import { TestCa, sameSerial } from '../lib/tls.js';

const ca = new TestCa();
process.once('exit', () => ca.remove());

// What a plain HTTP client gets from the port: the bytes until the server
// closes (or 10 s pass)
function plainExchange(port) {
    return new Promise((resolve) => {
        let data = '';
        const socket = net.connect(port, '127.0.0.1', () =>
            socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
        const done = () => { clearTimeout(timer); socket.destroy(); resolve(data); };
        const timer = setTimeout(done, 10000);
        socket.on('data', (chunk) => { data += chunk.toString('latin1'); });
        socket.on('close', done);
        socket.on('error', done);
    });
}

const peerSerial = (client) => client.ws._socket.getPeerCertificate().serialNumber;

test('parley with --tls-cert and --tls-key serves the UI over https and the protocol over wss to a client that trusts the CA', async () => {
    const tls = ca.issue('parley', '1001');
    const server = await startParley({ tls });
    try {
        assert.match(server.proc.output, /listening on https:\/\/127\.0\.0\.1/);
        const page = await httpsGet(`${server.http}/`, tls.ca);
        assert.equal(page.status, 200);
        assert.match(page.body, /<html/i);
        assert.ok(sameSerial(page.serial, '1001'), page.serial);

        const client = await Client.connect(server.url, { ca: tls.ca });
        const registered = await client.request({ type: 'auth.register', username: 'tessa',
                                                  password: 'correct horse battery' });
        assert.equal(registered.type, 'ok', JSON.stringify(registered));
        const echo = await client.request({ type: 'example.echo', text: 'over TLS' });
        assert.equal(echo.user, 'tessa');
        // A frame of many TLS records, and many frames at once, arrive whole and in order
        const big = 'x'.repeat(60000);
        const large = await client.request({ type: 'example.echo', text: big });
        assert.equal(large.echo.text, big);
        // (at most 256 in flight on a session, CLIENT-PROTOCOL.md: a slow
        // machine could have more than that unanswered at once)
        const replies = await Promise.all(Array.from({ length: 250 }, (_, n) =>
            client.request({ type: 'example.echo', n })));
        assert.deepEqual(replies.map((reply) => reply.echo?.n ?? JSON.stringify(reply)),
                         Array.from({ length: 250 }, (_, n) => n));
        await client.close();
    } finally {
        await stopCleanly(server);
    }
});

test('where TLS is on, a plain client is refused: no HTTP answer, no ws:// session', async () => {
    const tls = ca.issue('refuse', '1002');
    const server = await startParley({ tls });
    try {
        const plain = await plainExchange(server.port);
        assert.doesNotMatch(plain, /^HTTP\//, 'a plain request got an HTTP answer');
        await assert.rejects(fetch(`http://127.0.0.1:${server.port}/healthz`));
        await assert.rejects(Client.connect(`ws://127.0.0.1:${server.port}/ws`));
        // A client that does not trust the CA is refused too
        await assert.rejects(Client.connect(server.url), /certificate/i);
        // ... and the server serves on
        const client = await Client.connect(server.url, { ca: tls.ca });
        assert.equal((await client.request({ type: 'ping' })).type, 'ok');
        await client.close();
    } finally {
        await stopCleanly(server);
    }
});

test('SIGHUP: new connections get the new certificate, open ones keep theirs; a bad pair changes nothing', async () => {
    const live = ca.liveFiles();
    live.install(ca.issue('first', '2001'));
    const server = await startParley({ tls: live });
    try {
        const old = await Client.connect(server.url, { ca: ca.pem });
        assert.ok(sameSerial(peerSerial(old), '2001'));

        live.install(ca.issue('second', '2002'));
        server.proc.signal('SIGHUP');
        const renewed = await eventually(async () =>
            sameSerial((await httpsGet(`${server.http}/healthz`, ca.pem)).serial, '2002'), 10000);
        assert.ok(renewed, `no new connection saw serial 2002\n${server.proc.output}`);
        assert.match(server.proc.output, /SIGHUP: new connections get .*live\.pem \(serial 2002\)/);
        const fresh = await Client.connect(server.url, { ca: ca.pem });
        assert.ok(sameSerial(peerSerial(fresh), '2002'));
        assert.equal((await fresh.request({ type: 'ping' })).type, 'ok');
        // The connection opened before the reload is still served, on its certificate
        assert.equal((await old.request({ type: 'example.echo', text: 'still here' })).echo.text, 'still here');
        assert.ok(sameSerial(peerSerial(old), '2001'));

        // A key that is not the certificate's: refused, the loaded pair stays
        copyFileSync(ca.issue('stray', '2003').key, live.key);
        server.proc.signal('SIGHUP');
        assert.ok(await server.proc.waitForOutput(/SIGHUP: cannot use .*live\.key/, 10000), server.proc.output);
        assert.ok(sameSerial((await httpsGet(`${server.http}/healthz`, ca.pem)).serial, '2002'));
        // A certificate file that is not one: the same
        writeFileSync(live.cert, 'not a certificate\n');
        server.proc.signal('SIGHUP');
        assert.ok(await server.proc.waitForOutput(/SIGHUP: cannot use .*live\.pem/, 10000), server.proc.output);
        const after = await Client.connect(server.url, { ca: ca.pem });
        assert.ok(sameSerial(peerSerial(after), '2002'));
        for (const client of [old, fresh, after])
            await client.close();
    } finally {
        await stopCleanly(server);
    }
});

test('SIGHUP on a plain server changes nothing and it serves on', async () => {
    const server = await startParley();
    try {
        server.proc.signal('SIGHUP');
        assert.ok(await server.proc.waitForOutput(/SIGHUP: no certificate to reload/, 10000), server.proc.output);
        const client = await Client.connect(server.url);
        assert.equal((await client.request({ type: 'ping' })).type, 'ok');
        await client.close();
    } finally {
        await stopCleanly(server);
    }
});

test('parley-gw with --tls-cert and --tls-key serves wss in front of a broker over tcp', async () => {
    const tls = ca.issue('gateway', '3001');
    const broker = await startBroker({ args: ['--plugin', pluginPath('example')] });
    const gateway = await startGateway(broker.endpoint, { tls });
    try {
        assert.match(gateway.proc.output, /listening on https:\/\/127\.0\.0\.1/);
        const client = await Client.connect(gateway.url, { ca: tls.ca });
        assert.ok(sameSerial(peerSerial(client), '3001'));
        const reply = await eventually(async () => {
            const answer = await client.request({ type: 'example.echo', text: 'through parley-gw' });
            return answer.type === 'ok' ? answer : null;
        }, 15000);
        assert.equal(reply?.echo.text, 'through parley-gw');
        assert.doesNotMatch(await plainExchange(gateway.port), /^HTTP\//);
        await client.close();
    } finally {
        for (const proc of [gateway.proc, broker.proc]) {
            const status = await proc.stop();
            assert.deepEqual(sanitizerReports(proc.output), []);
            assert.equal(status.code, 0, proc.output);
        }
    }
});

test('TLS and stop options that cannot work are refused with a clear error, before anything starts', async () => {
    const tls = ca.issue('options', '4001');
    const stray = ca.issue('options-stray', '4002');
    const cases = [
        [['--tls-cert', tls.cert], /--tls-cert and --tls-key go together/],
        [['--tls-key', tls.key], /--tls-cert and --tls-key go together/],
        [['--tls-cert', '/nonexistent/cert.pem', '--tls-key', tls.key], /cannot read \/nonexistent\/cert\.pem/],
        [['--tls-cert', tls.cert, '--tls-key', stray.key], /cannot use .*options-stray\.key/],
        [['--tls-cert', tls.key, '--tls-key', tls.key], /cannot use .*options\.key/],
        [['--tls-cert', '', '--tls-key', tls.key], /--tls-cert wants a value/],
        [['--stop-timeout', '5'], /--stop-timeout wants 100 to 600000 ms, not '5'/],
        [['--stop-timeout', 'soon'], /--stop-timeout wants 100 to 600000 ms, not 'soon'/],
    ];
    const data = tempDir('parley-data-');
    for (const program of ['parley', 'parley-gw']) {
        for (const [args, expected] of cases) {
            const extra = program === 'parley' ? ['--data', data] : [];
            const proc = new Proc(program, path.join(binDir, program),
                ['--listen', `127.0.0.1:${await freePort()}`, ...extra, ...args]);
            const { code } = await proc.exited;
            assert.notEqual(code, 0, `${program} ${args.join(' ')} started`);
            assert.match(proc.output, expected, `${program} ${args.join(' ')}`);
            assert.doesNotMatch(proc.output, /listening/);
        }
    }
    rmSync(data, { recursive: true, force: true });
});

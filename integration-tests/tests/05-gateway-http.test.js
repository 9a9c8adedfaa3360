// What the gateway does with outside input on its own: the web root's
// allow-list, close frames, ids and types it must refuse itself.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import { startParley, Client } from '../lib/harness.js';
import { stopCleanly } from '../lib/clean-stop.js';

let server;

before(async () => {
    server = await startParley();
});

after(() => stopCleanly(server));

test('the web root serves the UI\'s own files and nothing else', async () => {
    for (const file of ['/', '/index.html', '/app.js', '/app.css', '/favicon.svg',
        '/vendor/bootstrap/css/bootstrap.min.css', '/vendor/bootstrap/js/bootstrap.bundle.min.js']) {
        const response = await fetch(`${server.http}${file}`);
        assert.equal(response.status, 200, `${file} is served`);
        await response.arrayBuffer();
    }
    const script = await fetch(`${server.http}/app.js`);
    assert.match(script.headers.get('content-type'), /javascript/);
    await script.arrayBuffer();
    for (const file of ['/package.json', '/package-lock.json', '/README.md',
        '/node_modules/bootstrap/package.json', '/node_modules/.package-lock.json',
        '/vendor/bootstrap/../../package.json', '/%2e%2e/README.md', '/.git/config',
        '/vendor/bootstrap/scss/_variables.scss', '/app.js/', '/nonexistent.js']) {
        const response = await fetch(`${server.http}${file}`);
        assert.equal(response.status, 404, `${file} is not served`);
        await response.arrayBuffer();
    }
});

// A WebSocket by hand, to send what the ws package refuses to
function rawSocket(port) {
    return new Promise((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1');
        const key = crypto.randomBytes(16).toString('base64');
        let buffer = Buffer.alloc(0);
        socket.on('error', reject);
        socket.on('connect', () => socket.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
            `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
            `Sec-WebSocket-Version: 13\r\n\r\n`));
        const onData = (chunk) => {
            buffer = Buffer.concat([buffer, chunk]);
            const end = buffer.indexOf('\r\n\r\n');
            if (end < 0)
                return;
            socket.off('data', onData);
            assert.match(buffer.subarray(0, end).toString(), /^HTTP\/1\.1 101/);
            socket.rest = buffer.subarray(end + 4);
            resolve(socket);
        };
        socket.on('data', onData);
    });
}

// Sends a masked close frame with code and reason; resolves with the code
// of the close frame the server answers with
function closeWith(socket, code, reason = '') {
    return new Promise((resolve, reject) => {
        const payload = Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason)]);
        const mask = crypto.randomBytes(4);
        const masked = Buffer.from(payload.map((byte, index) => byte ^ mask[index % 4]));
        socket.write(Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, masked]));
        let buffer = socket.rest;
        const check = () => {
            if (buffer.length >= 4 && (buffer[0] & 0x0f) === 0x8)
                resolve((buffer[2] << 8) | buffer[3]);
        };
        socket.on('data', (chunk) => { buffer = Buffer.concat([buffer, chunk]); check(); });
        socket.on('close', () => { check(); reject(new Error('closed without a close frame')); });
        check();
    });
}

test('a close with a status outside RFC 6455\'s ranges is answered with 1002, a valid one is echoed', async () => {
    for (const code of [5000, 65535]) {
        const socket = await rawSocket(server.port);
        assert.equal(await closeWith(socket, code, 'bye'), 1002, `close ${code} gets 1002`);
        socket.destroy();
    }
    for (const code of [1000, 4000]) {
        const socket = await rawSocket(server.port);
        assert.equal(await closeWith(socket, code), code, `close ${code} is echoed`);
        socket.destroy();
    }
});

test('an id written 051 is not JSON: bad_json without an id', async () => {
    const client = await Client.connect(server.url);
    const reply = await client.sendAwaiting('{"type": "ping", "id": 051}', undefined);
    assert.equal(reply.type, 'error');
    assert.equal(reply.code, 'bad_json');
    assert.equal('id' in reply, false);
    assert.equal((await client.request({ type: 'ping' })).type, 'ok');
    await client.close();
});

test('a 300-byte type with a known prefix is unknown_type', async () => {
    const client = await Client.connect(server.url);
    for (const prefix of ['room.', 'auth.', 'example.']) {
        const type = prefix + 'x'.repeat(300 - prefix.length);
        const reply = await client.request({ type });
        assert.equal(reply.code, 'unknown_type', `${prefix}... gets unknown_type`);
    }
    // 255 bytes is still routed by its prefix: a room type the service does not know
    const longest = 'example.' + 'x'.repeat(255 - 8);
    assert.notEqual((await client.request({ type: longest })).code, 'unavailable');
    await client.close();
});

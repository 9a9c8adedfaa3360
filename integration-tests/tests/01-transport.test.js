// PROTOCOL.md "Transport" and "Frames", through the real all-in-one server.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import WebSocket from 'ws';
import { startParley, Client } from '../lib/harness.js';
import { stopCleanly } from '../lib/clean-stop.js';
import { TestCa } from '../lib/tls.js';

let server;

before(async () => {
    server = await startParley();
});

after(() => stopCleanly(server));

// A value of `levels` nested arrays and objects; inside the frame's own object
// it makes a frame of levels + 1
function containers(levels) {
    let value = 1;
    for (let level = 0; level < levels; level++)
        value = level % 2 ? { k: value } : [value];
    return value;
}

test('healthz answers 200 once the gateway is connected to the broker', async () => {
    const response = await fetch(`${server.http}/healthz`);
    assert.equal(response.status, 200);
});

test('the web page is served on the same port as the websocket', async () => {
    const response = await fetch(`${server.http}/`);
    assert.equal(response.status, 200);
    const html = await response.text();
    assert.match(html, /Parley/);
    assert.match(html, /app\.js/);
    const bootstrap = await fetch(`${server.http}/vendor/bootstrap/css/bootstrap.min.css`);
    assert.equal(bootstrap.status, 200, 'Bootstrap is served from the project, not a CDN');
});

test('ping is answered with the id carried back unchanged and the protocol version, 1.1', async () => {
    const client = await Client.connect(server.url);
    assert.deepEqual(stripMeta(await client.request({ type: 'ping', id: 7 })),
        { type: 'ok', id: 7, protocol: '1.1' });
    assert.deepEqual(stripMeta(await client.request({ type: 'ping', id: 'a-string-id' })),
        { type: 'ok', id: 'a-string-id', protocol: '1.1' });
    const noId = await client.sendAwaiting(JSON.stringify({ type: 'ping' }), undefined);
    assert.deepEqual(stripMeta(noId), { type: 'ok', protocol: '1.1' });
    await client.close();
});

test('the subprotocol parley.v1 is accepted when offered', async () => {
    const client = await Client.connect(server.url, { protocols: ['parley.v1'] });
    assert.equal(client.ws.protocol, 'parley.v1');
    assert.equal((await client.request({ type: 'ping' })).type, 'ok');
    await client.close();
});

test('bad JSON gets bad_json, with the id only if it was read before the fault, and the connection stays usable', async () => {
    const client = await Client.connect(server.url);
    const early = await client.sendAwaiting('{"id": 3, "type": "ping"', 3);
    assert.equal(early.type, 'error');
    assert.equal(early.code, 'bad_json');
    assert.equal(typeof early.message, 'string');
    const late = await client.sendAwaiting('{"type": ping, "id": 4}', undefined);
    assert.equal(late.code, 'bad_json');
    assert.equal('id' in late, false);
    assert.equal((await client.request({ type: 'ping' })).type, 'ok');
    await client.close();
});

test('invalid UTF-8 gets bad_json', async () => {
    const client = await Client.connect(server.url);
    const bytes = Buffer.concat([Buffer.from('{"type":"ping","x":"'), Buffer.from([0xc3, 0x28]),
        Buffer.from('"}')]);
    const reply = await client.sendAwaiting(bytes, undefined, 15000, { binary: false });
    assert.equal(reply.code, 'bad_json');
    assert.equal((await client.request({ type: 'ping' })).type, 'ok');
    await client.close();
});

test('a frame that is not an object gets bad_request', async () => {
    const client = await Client.connect(server.url);
    for (const text of ['[1,2,3]', '"ping"', '42', 'null']) {
        const reply = await client.sendAwaiting(text, undefined);
        assert.equal(reply.code, 'bad_request', text);
    }
    await client.close();
});

test('a missing or mistyped type gets bad_request with the id', async () => {
    const client = await Client.connect(server.url);
    let reply = await client.request({ id: 11 });
    assert.equal(reply.code, 'bad_request');
    assert.equal(reply.id, 11);
    reply = await client.request({ type: 5, id: 12 });
    assert.equal(reply.code, 'bad_request');
    assert.equal(reply.id, 12);
    await client.close();
});

test('an id that is neither an integer nor a short string gets bad_request without an id', async () => {
    const client = await Client.connect(server.url);
    for (const id of ['x'.repeat(65), { a: 1 }, [1], 1.5, true]) {
        const reply = await client.sendAwaiting(JSON.stringify({ type: 'ping', id }), undefined);
        assert.equal(reply.code, 'bad_request', JSON.stringify(id));
        assert.equal('id' in reply, false);
    }
    const longest = 'y'.repeat(64);
    assert.equal((await client.request({ type: 'ping', id: longest })).type, 'ok');
    await client.close();
});

test('an unknown type gets unknown_type', async () => {
    const client = await Client.connect(server.url);
    const reply = await client.request({ type: 'nosuch.thing', id: 21 });
    assert.equal(reply.type, 'error');
    assert.equal(reply.code, 'unknown_type');
    assert.equal(reply.id, 21);
    await client.close();
});

test('a protocol request before login gets unauthenticated', async () => {
    const client = await Client.connect(server.url);
    const reply = await client.request({ type: 'room.list', id: 22 });
    assert.equal(reply.code, 'unauthenticated');
    assert.equal(reply.id, 22);
    await client.close();
});

test('16 levels of nesting are accepted and 17 get bad_request', async () => {
    const client = await Client.connect(server.url);
    const ok = await client.request({ type: 'example.echo', id: 31, deep: containers(15) });
    assert.equal(ok.type, 'ok', JSON.stringify(ok));
    assert.deepEqual(ok.echo.deep, containers(15));
    const refused = await client.request({ type: 'example.echo', id: 32, deep: containers(16) });
    assert.equal(refused.code, 'bad_request');
    assert.equal((await client.request({ type: 'ping' })).type, 'ok');
    await client.close();
});

test('a binary frame is refused with an error and the connection stays usable', async () => {
    const client = await Client.connect(server.url);
    const reply = await client.sendAwaiting(Buffer.from('{"type":"ping","id":1}'), undefined,
        15000, { binary: true });
    assert.equal(reply.type, 'error');
    assert.equal(reply.code, 'bad_request');
    assert.equal((await client.request({ type: 'ping' })).type, 'ok');
    await client.close();
});

test('a frame over 64 KiB gets too_large and close 1009', async () => {
    const client = await Client.connect(server.url);
    const big = JSON.stringify({ type: 'example.echo', id: 41, text: 'x'.repeat(70 * 1024) });
    const reply = await client.sendAwaiting(big, undefined).catch((error) => error);
    const closed = await client.closed;
    assert.equal(closed.code, 1009);
    const errors = client.replies.filter((frame) => frame.type === 'error');
    assert.equal(errors.length, 1, `expected one error frame, got ${JSON.stringify(client.replies)}`);
    assert.equal(errors[0].code, 'too_large');
    assert.ok(reply);
});

test('a frame just under the limit is served', async () => {
    const client = await Client.connect(server.url);
    const text = 'z'.repeat(60 * 1024);
    const reply = await client.request({ type: 'example.echo', id: 42, text });
    assert.equal(reply.type, 'ok');
    assert.equal(reply.echo.text.length, text.length);
    await client.close();
});

test('every request gets exactly one reply, told apart by id', async () => {
    const client = await Client.connect(server.url);
    const count = 200;
    const replies = await Promise.all(Array.from({ length: count }, (_, i) =>
        client.request({ type: i % 2 ? 'ping' : 'example.echo', id: `r${i}`, n: i })));
    replies.forEach((reply, i) => {
        assert.equal(reply.type, 'ok');
        assert.equal(reply.id, `r${i}`);
        if (i % 2 === 0)
            assert.equal(reply.echo.n, i);
    });
    assert.equal(client.replies.length, count);
    await client.close();
});

test('a websocket upgrade on another path than /ws is refused', async () => {
    const port = server.port;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/elsewhere`);
    const outcome = await new Promise((resolve) => {
        ws.once('open', () => resolve('open'));
        ws.once('error', () => resolve('error'));
        ws.once('unexpected-response', () => resolve('refused'));
    });
    assert.notEqual(outcome, 'open');
    ws.terminate();
});

test('a client that drops the TCP connection mid-frame does not disturb others', async () => {
    const watcher = await Client.connect(server.url);
    const socket = net.connect(server.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    socket.write(Buffer.from([0x81, 0xfe, 0x10]));   // a text frame header cut short
    socket.destroy();
    assert.equal((await watcher.request({ type: 'ping' })).type, 'ok');
    await watcher.close();
});

function stripMeta(frame) {
    const { __binary, ...rest } = frame;
    return rest;
}

// A masked client frame (RFC 6455 5.3)
function clientFrame(opcode, payload) {
    const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
    const length = payload.length;
    const header = length < 126 ? Buffer.from([0x80 | opcode, 0x80 | length])
        : length < 65536 ? Buffer.from([0x80 | opcode, 0x80 | 126, length >> 8, length & 0xff])
            : null;
    assert.ok(header, 'test frames stay under 64 KiB');
    const body = Buffer.from(payload);
    for (let index = 0; index < body.length; index++)
        body[index] ^= mask[index % 4];
    return Buffer.concat([header, mask, body]);
}

// Reads server frames strictly: every one whole, unmasked, unfragmented
function parseServerFrames(bytes) {
    const frames = [];
    let offset = 0;
    while (offset + 2 <= bytes.length) {
        const first = bytes[offset], second = bytes[offset + 1];
        assert.equal(first & 0x80, 0x80, `frame at ${offset} is a fragment`);
        assert.equal(second & 0x80, 0, `frame at ${offset} is masked`);
        let length = second & 0x7f, header = 2;
        if (length === 126) { length = bytes.readUInt16BE(offset + 2); header = 4; }
        else if (length === 127) { length = Number(bytes.readBigUInt64BE(offset + 2)); header = 10; }
        if (offset + header + length > bytes.length)
            break;
        frames.push({ opcode: first & 0x0f, payload: bytes.subarray(offset + header, offset + header + length) });
        offset += header + length;
    }
    return { frames, rest: bytes.length - offset };
}

test('pings sent while big replies back up are answered between whole frames, never inside one', async () => {
    // A small kernel send buffer, so that the gateway's writes of several
    // frames at once are cut short inside a frame
    const small = await startParley({ args: ['--send-buffer', '65536'] });
    try {
        await pingsBetweenFrames(small.port);
    } finally {
        await stopCleanly(small);
    }
});

test('over TLS too: records of many frames written in one wake-up, cut short by a full socket, carry whole frames with the pongs between them', async () => {
    // The gateway writes a TLS session's queue record after record until the
    // socket is full; OpenSSL's partial writes and retries then fall inside
    // frames, as sendmsg's do above
    const ca = new TestCa();
    const small = await startParley({ args: ['--send-buffer', '65536'], tls: ca.issue('parley', '1001') });
    try {
        await pingsBetweenFrames(small.port, ca.pem);
    } finally {
        await stopCleanly(small);
        ca.remove();
    }
});

// Over TLS (trusting caPem) when it is given, else plain TCP
async function pingsBetweenFrames(port, caPem = null) {
    const socket = caPem ? tls.connect({ port, host: '127.0.0.1', ca: caPem, servername: 'localhost' })
        : net.connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once(caPem ? 'secureConnect' : 'connect', resolve));
    socket.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    let received = Buffer.alloc(0);
    const chunks = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no upgrade')), 5000);
        const check = () => {
            const text = Buffer.concat(chunks).toString('latin1');
            const end = text.indexOf('\r\n\r\n');
            if (end < 0)
                return setTimeout(check, 10);
            clearTimeout(timer);
            assert.match(text, /^HTTP\/1\.1 101/);
            received = Buffer.concat(chunks).subarray(end + 4);
            chunks.length = 0;
            resolve();
        };
        check();
    });
    // Stop reading: replies fill the kernel's buffers and the gateway is
    // left with frames half written while the pings keep coming
    socket.pause();
    const requests = 200, text = 'x'.repeat(60 * 1024);
    for (let index = 0; index < requests; index++) {
        socket.write(clientFrame(0x1, JSON.stringify({ type: 'example.echo', id: index, text })));
        socket.write(clientFrame(0x9, `p${index}`));
    }
    await new Promise((resolve) => setTimeout(resolve, 1500));
    socket.resume();
    const replies = new Set();
    const pongs = [];
    const consume = () => {
        received = Buffer.concat([received, ...chunks]);
        chunks.length = 0;
        const { frames, rest } = parseServerFrames(received);
        received = received.subarray(received.length - rest);
        for (const frame of frames) {
            if (frame.opcode === 0xA) {
                pongs.push(frame.payload.toString());
                continue;
            }
            assert.equal(frame.opcode, 0x1, `unexpected opcode ${frame.opcode}`);
            const reply = JSON.parse(frame.payload.toString());
            assert.equal(reply.type, 'ok', JSON.stringify(reply).slice(0, 200));
            assert.equal(reply.echo.text.length, text.length);
            assert.ok(!replies.has(reply.id), `reply ${reply.id} twice`);
            replies.add(reply.id);
        }
    };
    socket.on('data', consume);
    consume();
    const deadline = Date.now() + 30000;
    while (replies.size < requests && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(replies.size, requests);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(received.length, 0, 'a frame was left incomplete');
    // lws answers a ping and drops those that come while its pong is
    // pending (RFC 6455 5.5.3 lets it), so some go unanswered; those
    // answered come in order, once each
    assert.ok(pongs.length > 0);
    const order = pongs.map((payload) => Number(payload.slice(1)));
    assert.deepEqual(order, [...order].sort((left, right) => left - right));
    assert.equal(new Set(order).size, order.length);
    socket.destroy();
}

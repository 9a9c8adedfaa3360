// Files over HTTP (PROTOCOL.md 1.1 "Files", CLIENT-PROTOCOL.md "Files over
// HTTP"): POST /files and GET /files/<id> on the gateway's port, through the
// real gateway, broker, files plugin and store. Every header and status a
// client sees, a 10 MiB file up and down byte for byte, a slow reader and a
// slow uploader, a client that goes away mid-upload (nothing left after the
// sweep), HTTPS on the same port, and 20 concurrent uploads through a gateway
// of its own whose memory stays far below what holding the files would take.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { startParley, startGateway, freePort, Client, eventually, sleep, LOAD_HEARTBEAT }
    from '../lib/harness.js';
import { stopCleanly } from '../lib/clean-stop.js';
import { TestCa } from '../lib/tls.js';

const MiB = 1024 * 1024;
const LIMIT = 10 * MiB;             // files.max_upload's default
const mongo = process.env.PARLEY_TEST_STORE === 'mongo';

let server;
let token;

// A user of server signed in over the protocol; resolves with its token
async function userToken(target, ca) {
    const client = await Client.connect(target.url, ca ? { ca } : {});
    try {
        const name = `u${crypto.randomBytes(5).toString('hex')}`;
        const reply = await client.request({ type: 'auth.register', username: name,
                                             password: 'correct horse' });
        assert.equal(reply.type, 'ok', JSON.stringify(reply));
        return reply.token;
    } finally {
        client.close();
    }
}

// One HTTP request by hand. body: a Buffer sent whole, or pieces: an array of
// Buffers written delayMs apart; abortAfter: pieces after which the socket is
// destroyed (resolves with null). reader(response, chunk) may pause it.
// Resolves { status, headers, body (Buffer) }.
function request(base, { method = 'GET', path: where, headers = {}, body, pieces, delayMs = 0,
                         abortAfter, ca, slowReadMs } = {}) {
    const url = new URL(where, base);
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
        const req = lib.request(url, { method, headers, ca, agent: false }, (response) => {
            const chunks = [];
            response.on('data', (chunk) => {
                chunks.push(chunk);
                if (slowReadMs) {
                    response.pause();
                    setTimeout(() => response.resume(), slowReadMs);
                }
            });
            response.on('end', () => resolve({ status: response.statusCode,
                                               headers: response.headers,
                                               body: Buffer.concat(chunks) }));
            response.on('error', reject);
        });
        req.on('error', (error) => abortAfter !== undefined ? resolve(null) : reject(error));
        (async () => {
            if (body !== undefined)
                req.end(body);
            else if (pieces) {
                for (let index = 0; index < pieces.length; index++) {
                    if (abortAfter === index) {
                        await sleep(200);       // let the gateway pass what it has on
                        req.destroy();
                        resolve(null);
                        return;
                    }
                    req.write(pieces[index]);
                    if (delayMs)
                        await sleep(delayMs);
                }
                req.end();
            }
            else
                req.end();
        })().catch(reject);
    });
}

function upload(base, bearer, name, type, data, more = {}) {
    const headers = { 'Content-Length': String(data.length) };
    if (bearer)
        headers.Authorization = `Bearer ${bearer}`;
    if (name !== undefined)
        headers['X-Filename'] = name;
    if (type)
        headers['Content-Type'] = type;
    return request(base, { method: 'POST', path: '/files', headers: { ...headers, ...more.headers },
                           body: more.pieces ? undefined : data, ...more });
}

const json = (reply) => JSON.parse(reply.body.toString());
const sha = (data) => crypto.createHash('sha256').update(data).digest('hex');

// Raw request text over TCP: what Node's http client will not send (no
// Content-Length at all, a bad one, headers without their body). afterContinue:
// a body sent only when an interim "100 Continue" comes (then in `interim`).
function rawRequest(port, text, { afterContinue } = {}) {
    return new Promise((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1');
        let data = Buffer.alloc(0);
        let interim = null;
        socket.on('connect', () => socket.write(text));
        socket.on('data', (chunk) => {
            data = Buffer.concat([data, chunk]);
            const end = data.indexOf('\r\n\r\n');
            if (end < 0)
                return;
            const head = data.subarray(0, end).toString();
            const status = Number(head.split(' ')[1]);
            if (status === 100 && afterContinue && interim === null) {
                interim = head;
                data = data.subarray(end + 4);
                socket.write(afterContinue);
                return;
            }
            const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
            if (data.length >= end + 4 + length) {
                socket.destroy();
                resolve({ status, head, interim,
                          body: data.subarray(end + 4, end + 4 + length).toString() });
            }
        });
        socket.on('error', reject);
        socket.setTimeout(20000, () => { socket.destroy(); reject(new Error('no answer')); });
    });
}

// Megabytes through a sanitized store on a loaded machine: 1 s heartbeats,
// so that a store busy writing them is not taken for dead (as with 200 ms)
before(async () => {
    server = await startParley({ args: LOAD_HEARTBEAT });
    token = await userToken(server);
});

after(() => stopCleanly(server));

test('a 10 MiB file goes up and comes back byte for byte, with its headers', async () => {
    const data = crypto.randomBytes(LIMIT);
    const reply = await upload(server.http, token, 'big%20file.bin', 'application/x-test', data);
    assert.equal(reply.status, 201, reply.body.toString());
    assert.match(reply.headers['content-type'], /^application\/json/);
    const { file } = json(reply);
    assert.match(file.id, /^[A-Za-z0-9_-]{22}$/);
    assert.deepEqual(file, { id: file.id, name: 'big file.bin', size: LIMIT,
                             type: 'application/x-test' });
    const got = await request(server.http, { path: `/files/${file.id}` });
    assert.equal(got.status, 200);
    assert.equal(got.body.length, LIMIT);
    assert.equal(sha(got.body), sha(data));
    assert.equal(got.headers['content-type'], 'application/x-test');
    assert.equal(got.headers['content-length'], String(LIMIT));
    assert.equal(got.headers['x-content-type-options'], 'nosniff');
    assert.match(got.headers['cache-control'], /^private, max-age=\d+/);
    assert.match(got.headers['content-security-policy'], /sandbox/);
    assert.equal(got.headers['content-disposition'], "attachment; filename*=UTF-8''big%20file.bin");
    // HEAD: the same headers, no body
    const head = await request(server.http, { method: 'HEAD', path: `/files/${file.id}` });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(LIMIT));
    assert.equal(head.headers['content-type'], 'application/x-test');
    assert.equal(head.body.length, 0);
});

test('the four image types are inline, every other type an attachment with its name', async () => {
    const cases = [
        ['image/png', 'inline'], ['image/jpeg', 'inline'], ['image/gif', 'inline'],
        ['image/webp', 'inline'], ['image/svg+xml', 'attachment'], ['text/html', 'attachment'],
        ['application/pdf', 'attachment'],
    ];
    for (const [type, disposition] of cases) {
        const reply = await upload(server.http, token, 'caf%C3%A9%20%22x%22.bin', type,
                                   Buffer.from(`<svg onload=alert(1)> ${type}`));
        assert.equal(reply.status, 201, reply.body.toString());
        const { file } = json(reply);
        assert.equal(file.name, 'café "x".bin');
        const got = await request(server.http, { path: `/files/${file.id}` });
        assert.equal(got.headers['content-type'], type);
        assert.equal(got.headers['content-disposition'],
                     `${disposition}; filename*=UTF-8''caf%C3%A9%20%22x%22.bin`, type);
        assert.equal(got.headers['x-content-type-options'], 'nosniff');
    }
    // Without a Content-Type the file is application/octet-stream; an empty file is a file
    const reply = await upload(server.http, token, 'empty', null, Buffer.alloc(0));
    assert.equal(reply.status, 201, reply.body.toString());
    const { file } = json(reply);
    assert.deepEqual(file, { id: file.id, name: 'empty', size: 0, type: 'application/octet-stream' });
    const got = await request(server.http, { path: `/files/${file.id}` });
    assert.equal(got.status, 200);
    assert.equal(got.headers['content-length'], '0');
    assert.equal(got.headers['content-disposition'], "attachment; filename*=UTF-8''empty");
});

test('a bad name is 400, no token or a wrong one 401, past the limit 413 at once', async () => {
    const small = Buffer.from('hello');
    const bad = ['', 'a%2Fb', 'a/b', 'a%00b', 'a%0Ab', 'a%7F', 'a%C2%85', '%FF', '%C3', '50%',
                 '50%zz', 'a'.repeat(256), '%41'.repeat(256)];
    for (const name of bad) {
        const reply = await upload(server.http, token, name, 'text/plain', small);
        assert.equal(reply.status, 400, `X-Filename '${name}'`);
        assert.equal(json(reply).error, 'bad_request');
        assert.equal(typeof json(reply).message, 'string');
    }
    const missing = await upload(server.http, token, undefined, 'text/plain', small);
    assert.equal(missing.status, 400);
    const longest = await upload(server.http, token, 'a'.repeat(255), 'text/plain', small);
    assert.equal(longest.status, 201, longest.body.toString());
    const badType = await upload(server.http, token, 'a', 'nonsense', small);
    assert.equal(badType.status, 400);

    const none = await upload(server.http, null, 'a.txt', 'text/plain', small);
    assert.equal(none.status, 401);
    assert.equal(json(none).error, 'unauthenticated');
    const basic = await upload(server.http, null, 'a.txt', 'text/plain', small,
                               { headers: { Authorization: 'Basic YTpi' } });
    assert.equal(basic.status, 401);
    const wrong = await upload(server.http, 'A'.repeat(43), 'a.txt', 'text/plain', small);
    assert.equal(wrong.status, 401);
    assert.equal(json(wrong).error, 'unauthenticated');

    // Past the limit: refused from the headers alone, before any body is sent
    const over = await rawRequest(server.port, 'POST /files HTTP/1.1\r\nHost: x\r\n' +
        `Authorization: Bearer ${token}\r\nX-Filename: big\r\n` +
        `Content-Type: application/octet-stream\r\nContent-Length: ${LIMIT + 1}\r\n\r\n`);
    assert.equal(over.status, 413);
    assert.equal(JSON.parse(over.body).error, 'too_large');
    // ... and also when the client sends it anyway: it still reads the answer
    const sent = await upload(server.http, token, 'big', null, Buffer.alloc(LIMIT + 1));
    assert.equal(sent.status, 413);
    assert.equal(json(sent).error, 'too_large');
});

// Expect: 100-continue as curl sends it for a body over 1 MiB: the headers
// alone, the body only after "100 Continue"
const expectContinue = (port, headers, body) =>
    rawRequest(port, `${headers}Expect: 100-continue\r\n\r\n`, { afterContinue: body });

test('Expect: 100-continue: "100 Continue" once the upload is accepted, a refusal before the body', async () => {
    const data = crypto.randomBytes(2 * MiB);
    const head = (bearer, length) => 'POST /files HTTP/1.1\r\nHost: x\r\n' +
        `Authorization: Bearer ${bearer}\r\nX-Filename: expect.bin\r\n` +
        `Content-Type: application/octet-stream\r\nContent-Length: ${length}\r\n`;
    const accepted = await expectContinue(server.port, head(token, data.length), data);
    assert.match(accepted.interim ?? '', /^HTTP\/1\.1 100 Continue$/);
    assert.equal(accepted.status, 201, accepted.body);
    const id = JSON.parse(accepted.body).file.id;
    const back = await request(server.http, { path: `/files/${id}` });
    assert.equal(sha(back.body), sha(data));

    // Refused from the headers: the final answer, never "100 Continue"
    const wrong = await expectContinue(server.port, head('A'.repeat(43), data.length), data);
    assert.equal(wrong.interim, null);
    assert.equal(wrong.status, 401);
    const over = await expectContinue(server.port, head(token, LIMIT + 1), data);
    assert.equal(over.interim, null);
    assert.equal(over.status, 413);
});

test('a body needs a Content-Length: none or chunked is 411, a bad one 400', async () => {
    const head = `POST /files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
                 'X-Filename: a.txt\r\n';
    const none = await rawRequest(server.port, `${head}Connection: close\r\n\r\nhello`);
    assert.equal(none.status, 411);
    assert.equal(JSON.parse(none.body).error, 'bad_request');
    const chunked = await rawRequest(server.port,
                                     `${head}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
    assert.equal(chunked.status, 411);
    for (const length of ['12abc', '-1', '+5', '5, 5']) {
        const reply = await rawRequest(server.port, `${head}Content-Length: ${length}\r\n\r\nhello`);
        assert.equal(reply.status, 400, `Content-Length: ${length}`);
    }
});

test('unknown and malformed ids are 404; other methods 405', async () => {
    for (const where of ['/files/AAAAAAAAAAAAAAAAAAAAAA', '/files/short', '/files/',
                         '/files', `/files/${'A'.repeat(23)}`, '/files/AAAAAAAAAAAAAAAAAAAAA.',
                         '/files/AAAAAAAAAAAAAAAAAAAAAA/x']) {
        const reply = await request(server.http, { path: where });
        assert.equal(reply.status, 404, where);
        assert.equal(json(reply).error, 'not_found', where);
    }
    const head = await request(server.http, { method: 'HEAD', path: '/files/BBBBBBBBBBBBBBBBBBBBBB' });
    assert.equal(head.status, 404);
    const put = await request(server.http, { method: 'PUT', path: '/files', body: 'x' });
    assert.equal(put.status, 405);
    const postId = await request(server.http, { method: 'POST', path: '/files/AAAAAAAAAAAAAAAAAAAAAA',
                                                body: 'x' });
    assert.equal(postId.status, 405);
});

test('a WebSocket client\'s files.* requests are unknown_type', async () => {
    const client = await Client.connect(server.url);
    try {
        for (const type of ['files.upload', 'files.get', 'files.abort', 'files.x']) {
            const reply = await client.request({ type, upload: 'x'.repeat(22), file: 'A'.repeat(22),
                                                 offset: 0, length: 10 });
            assert.equal(reply.type, 'error', type);
            assert.equal(reply.code, 'unknown_type', type);
        }
    } finally {
        client.close();
    }
});

test('a slow uploader and a slow reader get the whole file', async () => {
    const data = crypto.randomBytes(2 * MiB);
    const pieces = [];
    for (let offset = 0; offset < data.length; offset += 32 * 1024)
        pieces.push(data.subarray(offset, offset + 32 * 1024));
    const reply = await upload(server.http, token, 'slow.bin', null, data, { pieces, delayMs: 5 });
    assert.equal(reply.status, 201, reply.body.toString());
    const { file } = json(reply);
    assert.equal(file.size, data.length);
    const got = await request(server.http, { path: `/files/${file.id}`, slowReadMs: 3 });
    assert.equal(got.status, 200);
    assert.equal(sha(got.body), sha(data));
});

test('HTTPS on the same port serves the same', async () => {
    const ca = new TestCa();
    const tls = ca.issue('files', '39');
    const secure = await startParley({ tls, args: LOAD_HEARTBEAT });
    try {
        const bearer = await userToken(secure, tls.ca);
        const data = crypto.randomBytes(3 * MiB + 17);
        const reply = await upload(secure.http, bearer, 'tls.bin', 'image/png', data, { ca: tls.ca });
        assert.equal(reply.status, 201, reply.body.toString());
        const { file } = json(reply);
        const got = await request(secure.http, { path: `/files/${file.id}`, ca: tls.ca });
        assert.equal(got.status, 200);
        assert.equal(got.headers['content-disposition'], "inline; filename*=UTF-8''tls.bin");
        assert.equal(sha(got.body), sha(data));
        const none = await upload(secure.http, null, 'a', null, Buffer.from('x'), { ca: tls.ca });
        assert.equal(none.status, 401);
    } finally {
        await stopCleanly(secure);
        ca.remove();
    }
});

// Rows in every table of store-sqlite's file of chunks, or null when there is none
function filesDbRows(data) {
    const file = path.join(data, 'parley.files.db');
    if (!existsSync(file))
        return null;
    const tables = execFileSync('sqlite3', [file, "SELECT name FROM sqlite_master WHERE type = 'table'"])
        .toString().split('\n').filter(Boolean);
    let rows = 0;
    for (const table of tables)
        rows += Number(execFileSync('sqlite3', [file, `SELECT count(*) FROM "${table}"`]).toString());
    return rows;
}

test('the quota is 413, and an upload whose client went away is gone after the sweep', async () => {
    const swept = await startParley({ args: [...LOAD_HEARTBEAT, '--option', 'files.quota=3145728',
                                             '--option', 'files.sweep_s=1',
                                             '--option', 'files.orphan_s=1'] });
    try {
        const bearer = await userToken(swept);
        const data = crypto.randomBytes(2 * MiB);
        const pieces = [];
        for (let offset = 0; offset < data.length; offset += 256 * 1024)
            pieces.push(data.subarray(offset, offset + 256 * 1024));
        // Half of it, then the client goes away
        assert.equal(await upload(swept.http, bearer, 'gone.bin', null, data,
                                  { pieces, abortAfter: 4 }), null);
        assert.ok(await swept.proc.waitForOutput(/upload \S+ went away after \d+ of 2097152 bytes/),
                  swept.proc.output);
        // The sweep removes the half file: then 2 MiB fit the 3 MiB quota again,
        // and nothing of it is left in the store
        const reply = await eventually(async () => {
            const again = await upload(swept.http, bearer, 'after.bin', null, data);
            return again.status === 201 && again;
        }, 20000, 500);
        assert.ok(reply, 'the half file was never swept');
        const second = await upload(swept.http, bearer, 'more.bin', null, data);
        assert.equal(second.status, 413);
        assert.equal(json(second).error, 'quota_exceeded');
        if (!mongo)
            assert.ok(await eventually(() => filesDbRows(swept.data) === 0, 20000, 500),
                      `${filesDbRows(swept.data)} rows left in parley.files.db`);
    } finally {
        await stopCleanly(swept);
    }
});

test('without the files plugin an upload is 503 unavailable', async () => {
    const bare = await startParley({ args: ['--no-default-plugins'], withExample: false });
    try {
        const reply = await upload(bare.http, 'A'.repeat(43), 'a', null, Buffer.from('x'));
        assert.equal(reply.status, 503);
        assert.equal(json(reply).error, 'unavailable');
        assert.equal(reply.headers['retry-after'], '1');
    } finally {
        await stopCleanly(bare);
    }
});

// VmRSS or VmHWM of a process, in bytes
function memory(pid, field) {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)[1]) * 1024;
}

test('20 concurrent 10 MiB uploads keep the gateway\'s memory far below the files\' size', async () => {
    // A gateway of its own (its memory is its own), on the broker of parley;
    // ASan's quarantine keeps freed memory resident: keep it small here
    // 200 MB through one store in 256 KiB writes: a sanitized store-sqlite
    // takes batches of them long enough to miss the tests' 200 ms heartbeats
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    const hub = await startParley({ args: ['--bind', endpoint, '--insecure-peers', ...LOAD_HEARTBEAT] });
    const gateway = await startGateway(endpoint, {
        args: LOAD_HEARTBEAT,
        env: { ASAN_OPTIONS: 'quarantine_size_mb=4:malloc_context_size=5' } });
    try {
        const bearer = await userToken({ url: `ws://127.0.0.1:${gateway.port}/ws` });
        const pid = gateway.proc.child.pid;
        const before = memory(pid, 'VmRSS');
        const files = Array.from({ length: 20 }, (_, index) => {
            const data = Buffer.alloc(LIMIT, index + 1);
            data.writeUInt32BE(index, 0);
            return data;
        });
        let peak = before;
        const sampler = setInterval(() => { peak = Math.max(peak, memory(pid, 'VmRSS')); }, 20);
        const replies = await Promise.all(files.map((data, index) =>
            upload(`http://127.0.0.1:${gateway.port}`, bearer, `c${index}.bin`, null, data)));
        clearInterval(sampler);
        peak = Math.max(peak, memory(pid, 'VmHWM'));
        for (const reply of replies)
            assert.equal(reply.status, 201, reply.body.toString());
        const grown = peak - before;
        console.log(`gateway RSS before ${(before / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} ` +
                    `MiB (+${(grown / MiB).toFixed(1)} MiB) for 20 x 10 MiB uploads`);
        // Holding the files would take 200 MiB; a piece or two each is a few
        // MiB (about 12 measured under ASan)
        assert.ok(grown < 64 * MiB, `the gateway grew by ${(grown / MiB).toFixed(1)} MiB`);
        // And they are all there, whole
        const ids = replies.map((reply) => json(reply).file.id);
        for (const index of [0, 19]) {
            const got = await request(`http://127.0.0.1:${gateway.port}`, { path: `/files/${ids[index]}` });
            assert.equal(sha(got.body), sha(files[index]));
        }
    } finally {
        await gateway.stop();
        await stopCleanly(hub);
    }
});

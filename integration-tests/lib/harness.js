// Real processes on free loopback ports, and a WebSocket client that speaks
// the client protocol: everything the end-to-end tests share.

import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const buildDir = process.env.PARLEY_BUILD
    ? path.resolve(process.env.PARLEY_BUILD)
    : path.join(repoRoot, 'build');
export const binDir = path.join(buildDir, 'bin');
export const pluginDir = path.join(buildDir, 'plugins');
export const testPluginDir = path.join(buildDir, 'tests');

// Short beats so that dead peers are found in well under a second
export const HEARTBEAT_MS = 200;
// parley's own heartbeat, for a server in a test that is not about finding
// dead peers and that loads the machine: with HEARTBEAT_MS a thread kept
// from the CPU for 600 ms is taken for dead (its peers say hello again and
// the requests in flight are answered unavailable). Later on the command
// line than the harness's own, so it wins.
export const LOAD_HEARTBEAT = ['--heartbeat', '1000'];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export { sleep };

// A port nobody listens on now (the kernel picks it)
export async function freePort() {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.unref();
        server.on('error', reject);
        server.listen(0, '127.0.0.1', () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });
}

export function tempDir(prefix = 'parley-test-') {
    return mkdtempSync(path.join(os.tmpdir(), prefix));
}

// One child process with its output kept for assertions and for failures
export class Proc {
    constructor(name, file, args, options = {}) {
        this.name = name;
        this.file = file;
        this.args = args;
        this.output = '';
        this.stdout = '';           // stdout alone (output holds both streams)
        this.exited = new Promise((resolve) => { this.resolveExit = resolve; });
        this.child = spawn(file, args, {
            stdio: ['ignore', 'pipe', 'pipe'],
            env: { ...process.env, ...options.env },
        });
        const keep = (chunk) => {
            this.output += chunk.toString();
            if (process.env.PARLEY_TEST_VERBOSE)
                process.stderr.write(`[${name}] ${chunk}`);
        };
        this.child.stdout.on('data', (chunk) => {
            this.stdout += chunk.toString();
            keep(chunk);
        });
        this.child.stderr.on('data', keep);
        this.child.on('exit', (code, signal) => {
            this.exitCode = code;
            this.exitSignal = signal;
            this.resolveExit({ code, signal });
        });
    }

    get running() {
        return this.exitCode === undefined && this.exitSignal === undefined;
    }

    signal(sig) {
        if (this.running)
            this.child.kill(sig);
    }

    // Whether every thread of the process is stopped now (state T in /proc)
    stopped() {
        try {
            const tasks = `/proc/${this.child.pid}/task`;
            return readdirSync(tasks).every((task) => {
                const stat = readFileSync(`${tasks}/${task}/stat`, 'utf8');
                return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
            });
        } catch {
            return false;           // gone, or a thread left while we read
        }
    }

    // Stops the process with SIGSTOP and resolves once it is stopped: kill()
    // returns before every thread is (the kernel stops each as it next
    // runs, and on a loaded machine the others may serve a request first).
    // Resolves false if it is not stopped within timeoutMs.
    async pause(timeoutMs = 10000) {
        this.signal('SIGSTOP');
        const deadline = Date.now() + timeoutMs;
        while (!this.stopped()) {
            if (!this.running || Date.now() >= deadline)
                return false;
            await sleep(1);
        }
        return true;
    }

    // Ends the process politely and returns its exit status; SIGKILL after a grace period
    async stop(graceMs = 10000) {
        if (this.running) {
            this.child.kill('SIGTERM');
            const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
            await this.exited;
            clearTimeout(timer);
        }
        return { code: this.exitCode, signal: this.exitSignal };
    }

    // Waits until the output matches pattern, or the process exits, or the time is up
    async waitForOutput(pattern, timeoutMs = 10000) {
        const deadline = Date.now() + timeoutMs;
        while (Date.now() < deadline) {
            if (pattern.test(this.output))
                return true;
            if (!this.running)
                return pattern.test(this.output);
            await sleep(25);
        }
        return false;
    }
}

// Sanitizer reports in a process's output mean a memory or UB bug: a test failure
export function sanitizerReports(output) {
    return output.split('\n').filter((line) =>
        /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/.test(line));
}

// GET over https, trusting the CA certificate ca (PEM): { status, body,
// serial } where serial is the server certificate's, as openssl writes it
export function httpsGet(url, ca) {
    return new Promise((resolve, reject) => {
        const request = https.get(url, { ca, agent: false }, (response) => {
            const serial = response.socket.getPeerCertificate().serialNumber;
            let body = '';
            response.on('data', (chunk) => { body += chunk; });
            response.on('end', () => resolve({ status: response.statusCode, body, serial }));
        });
        request.on('error', reject);
        request.setTimeout(10000, () => request.destroy(new Error('https request timed out')));
    });
}

// Until /healthz answers 200; over https when tls ({ ca }) is given
export async function waitForHealth(port, timeoutMs = 15000, tls = null) {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
        try {
            const response = tls ? await httpsGet(`https://127.0.0.1:${port}/healthz`, tls.ca)
                                 : await fetch(`http://127.0.0.1:${port}/healthz`);
            if (response.status === 200)
                return;
            last = `status ${response.status}`;
        } catch (error) {
            last = error.message;
        }
        await sleep(50);
    }
    throw new Error(`gateway on port ${port} never became healthy (${last})`);
}

function bin(name) {
    const file = path.join(binDir, name);
    if (!existsSync(file))
        throw new Error(`${file} is missing: build first (make build, or PARLEY_BUILD=...)`);
    return file;
}

const commonArgs = ['--heartbeat', String(HEARTBEAT_MS)];

// The tests connect from 127.0.0.1 and many register more users a minute
// than auth.register_rate allows by default (30 per address): wherever the
// auth plugin runs and a test did not choose a rate itself, the limit is
// off. The tests of the limit pass their own auth.register_rate.
function loadsAuth(args, byDefault) {
    return (byDefault && !args.includes('--no-default-plugins'))
        || args.some((arg) => arg === 'auth' || /(^|\/)auth\.so$/.test(arg));
}

// args with auth.register_rate=0 added when auth runs (authRuns) and args
// do not set it
export function withRegisterRate(args, authRuns) {
    if (!authRuns || args.some((arg) => /^auth\.register_rate=/.test(arg)))
        return args;
    return [...args, '--option', 'auth.register_rate=0'];
}

// PARLEY_TEST_STORE=mongo runs every startParley() on store-mongo against one
// wire-compatible test server per test process (plugins/store-mongo/test-server),
// with a database per data folder, so a restart on the same folder finds its data.
let mongoTestServer;

export async function mongoUriFor(data) {
    if (!mongoTestServer) {
        const proc = new Proc('mongo-test-server', process.execPath,
            [path.join(repoRoot, 'plugins', 'store-mongo', 'test-server', 'serve.mjs'), '0']);
        if (!await proc.waitForOutput(/listening on \d+/, 15000))
            throw new Error(`the MongoDB test server did not start\n${proc.output}`);
        // It lives as long as the test process and must not keep it alive
        for (const handle of [proc.child, proc.child.stdout, proc.child.stderr])
            handle.unref();
        process.once('exit', () => proc.signal('SIGTERM'));
        mongoTestServer = { proc, port: Number(/listening on (\d+)/.exec(proc.output)[1]) };
    }
    const database = path.basename(data).replace(/[^A-Za-z0-9_]/g, '_');
    return `mongodb://127.0.0.1:${mongoTestServer.port}/${database}`;
}

// The arguments and addresses of a server with tls ({ cert, key, ca }: PEM
// files and the CA's certificate as text), or of a plain one (tls null)
function served(port, tls) {
    return {
        args: tls ? ['--tls-cert', tls.cert, '--tls-key', tls.key] : [],
        url: `${tls ? 'wss' : 'ws'}://127.0.0.1:${port}/ws`,
        http: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    };
}

// The all-in-one server on a free port, ready when /healthz answers 200. The
// example plugin is loaded too (example.echo), unless withExample is false.
// authDefaults: keep auth's default registration limit (see withRegisterRate)
// tls: serve https and wss (see served)
export async function startParley({ args = [], dataDir, port: wantedPort, withExample = true,
                                    authDefaults = false, tls = null } = {}) {
    if (withExample)
        args = ['--plugin', 'example', ...args];
    const port = wantedPort ?? await freePort();
    const data = dataDir ?? tempDir('parley-data-');
    if (process.env.PARLEY_TEST_STORE === 'mongo' && !args.includes('--store')
    &&  !args.includes('--no-default-plugins'))
        args = ['--store', await mongoUriFor(data), ...args];
    args = withRegisterRate(args, !authDefaults && loadsAuth(args, true));
    const where = served(port, tls);
    const proc = new Proc('parley', bin('parley'),
        ['--listen', `127.0.0.1:${port}`, '--data', data, ...commonArgs, ...where.args, ...args]);
    try {
        await waitForHealth(port, 15000, tls);
    } catch (error) {
        await proc.stop();
        throw new Error(`${error.message}\n--- parley output ---\n${proc.output}`);
    }
    return {
        proc, port, data,
        url: where.url,
        http: where.http,
        async stop() {
            const status = await proc.stop();
            if (!dataDir)
                rmSync(data, { recursive: true, force: true });
            return status;
        },
    };
}

// CURVE keys made once per test process with parley-keygen, as an operator
// would: the broker's pair, a peer's pair whose public half is in the allowed
// folder, and a stranger's pair that is not
let curveKeys;

export function testKeys() {
    if (!curveKeys) {
        const dir = tempDir('parley-keys-');
        const keygen = bin('parley-keygen');
        const allow = path.join(dir, 'allowed');
        const file = (name) => path.join(dir, `${name}.cert`);
        execFileSync(keygen, [file('broker')]);
        execFileSync(keygen, ['--allow', allow, file('peer')]);
        execFileSync(keygen, [file('stranger')]);
        curveKeys = { dir, allow, broker: file('broker'), peer: file('peer'), stranger: file('stranger') };
        process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    }
    return curveKeys;
}

// The arguments a peer (parley-plugin, parley-gw) needs to reach a broker
// started by startBroker: its keys, or nothing for an insecure one
const peerArgsByEndpoint = new Map();

export function peerArgs(brokerEndpoint) {
    return peerArgsByEndpoint.get(brokerEndpoint) ?? [];
}

// The peer's own arguments, unless the test gave keys of its own
function withPeerArgs(brokerEndpoint, args) {
    return args.includes('--curve-cert') ? args : [...peerArgs(brokerEndpoint), ...args];
}

// parley-broker on a free tcp port (plus in-process plugins if asked), with
// CURVE on: peers started by startGateway and startPluginProcess get the keys.
// curve: false starts it with --insecure-peers instead.
export async function startBroker({ args = [], curve = true } = {}) {
    const port = await freePort();
    const endpoint = `tcp://127.0.0.1:${port}`;
    const keys = testKeys();
    const keyArgs = curve
        ? ['--curve-cert', keys.broker, '--curve-allow', keys.allow]
        : ['--insecure-peers'];
    peerArgsByEndpoint.set(endpoint, curve ? ['--curve-cert', keys.peer, '--curve-broker', keys.broker] : []);
    const proc = new Proc('parley-broker', bin('parley-broker'),
        ['--bind', endpoint, ...keyArgs, ...commonArgs,
         ...withRegisterRate(args, loadsAuth(args, false))]);
    // "running with": every plugin given is loaded and welcomed ("listening"
    // comes before them, and a request sent then would find no route)
    if (!await proc.waitForOutput(/running with \d+ plugin/, 20000)) {
        await proc.stop();
        throw new Error(`parley-broker did not start\n${proc.output}`);
    }
    return { proc, endpoint, stop: () => proc.stop() };
}

// env: more environment for the gateway's process (e.g. ASAN_OPTIONS)
export async function startGateway(brokerEndpoint, { args = [], tls = null, env } = {}) {
    const port = await freePort();
    const where = served(port, tls);
    const proc = new Proc('parley-gw', bin('parley-gw'),
        ['--listen', `127.0.0.1:${port}`, '--broker', brokerEndpoint, ...commonArgs,
            ...where.args, ...withPeerArgs(brokerEndpoint, args)], { env });
    try {
        await waitForHealth(port, 15000, tls);
    } catch (error) {
        await proc.stop();
        throw new Error(`${error.message}\n--- parley-gw output ---\n${proc.output}`);
    }
    return {
        proc, port,
        url: where.url,
        http: where.http,
        stop: () => proc.stop(),
    };
}

// server, whose stop() also checks a clean exit and no sanitizer report
export function stoppedCleanly(server) {
    return {
        ...server,
        async stop() {
            const status = await server.stop();
            assert.deepEqual(sanitizerReports(server.proc.output), [], server.proc.output);
            assert.equal(status.code, 0,
                         `parley exited with ${JSON.stringify(status)}\n${server.proc.output}`);
            return status;
        },
    };
}

// Runs body({ server, connect }): connect(localAddress) opens a client of
// server (from that source address, 127.0.0.x, if given). Then every client
// it opened is closed and the server stopped, whatever body did.
export async function withClients(server, body) {
    const clients = [];
    const connect = async (localAddress) => {
        const client = await Client.connect(server.url, localAddress ? { localAddress } : {});
        clients.push(client);
        return client;
    };
    try {
        await body({ server, connect });
    } finally {
        for (const client of clients)
            client.ws.terminate();
        await server.stop();
    }
}

export function startPluginProcess(brokerEndpoint, plugins, { args = [] } = {}) {
    const proc = new Proc('parley-plugin', bin('parley-plugin'),
        ['--broker', brokerEndpoint, ...commonArgs,
         ...withPeerArgs(brokerEndpoint, withRegisterRate(args, loadsAuth(plugins, false))),
         ...plugins]);
    proc.plugins = plugins;         // for untilRegistered: how many instances it hosts
    return proc;
}

// The instances of a plugin process that said "NAME@HOST:PID:N: registered
// with broker" (in text or inside a json line), each once however often it
// says it again after its broker came back
function registeredInstances(output) {
    return new Set([...output.matchAll(/([\w.-]+@[^\s"]+:\d+:\d+): registered with broker/g)]
        .map((match) => match[1]));
}

// Resolves once every one of the plugin processes is registered with its
// broker (welcomed: its routes are in the broker's table from then on), each
// of the plugins it hosts (proc.plugins, from startPluginProcess; one plugin
// for a process started otherwise). Not "hosting": parley-plugin says that
// once it has started its plugins, before the broker has welcomed them.
// Throws, with their output, if one is not within timeoutMs.
export async function untilRegistered(processes, timeoutMs = 30000) {
    for (const proc of processes) {
        const deadline = Date.now() + timeoutMs;
        const wanted = proc.plugins?.length ?? 1;
        const registered = () => registeredInstances(proc.output).size >= wanted;
        while (!registered()) {
            if (!proc.running || Date.now() >= deadline)
                throw new Error(`${proc.name} did not register ${wanted} plugin instance(s) ` +
                                `with its broker\n${proc.output}`);
            await sleep(25);
        }
    }
}

export function pluginPath(name) {
    return path.join(pluginDir, `${name}.so`);
}

// A client of the protocol: request() resolves with the reply carrying its id,
// events are queued for nextEvent().
export class Client {
    // localAddress: the source address to connect from (127.0.0.2, ...),
    // for the limits counted per client address; ca: the certificates a
    // wss:// server's may chain to (PEM), beside the system's
    static async connect(url, { protocols, localAddress, ca } = {}) {
        const client = new Client(url, protocols, localAddress, ca);
        await client.opened;
        return client;
    }

    constructor(url, protocols, localAddress, ca) {
        const options = {};
        if (localAddress)
            options.localAddress = localAddress;
        if (ca)
            options.ca = ca;
        this.ws = new WebSocket(url, protocols, options);
        this.nextId = 1;
        this.pending = new Map();
        this.events = [];
        this.eventWaiters = [];
        this.replies = [];          // every reply and error, in order
        this.closed = new Promise((resolve) => {
            this.ws.on('close', (code, reason) => {
                this.closeCode = code;
                resolve({ code, reason: reason.toString() });
                for (const { reject } of this.pending.values())
                    reject(new Error(`connection closed (${code}) before the reply`));
                this.pending.clear();
            });
        });
        this.opened = new Promise((resolve, reject) => {
            this.ws.once('open', resolve);
            this.ws.once('error', reject);
        });
        this.ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    }

    onMessage(data, isBinary) {
        const frame = JSON.parse(data.toString());
        frame.__binary = isBinary;
        if (frame.type === 'ok' || frame.type === 'error') {
            this.replies.push(frame);
            const key = JSON.stringify(frame.id ?? null);
            const waiter = this.pending.get(key);
            if (waiter) {
                this.pending.delete(key);
                waiter.resolve(frame);
            }
            return;
        }
        const index = this.eventWaiters.findIndex((waiter) => waiter.match(frame));
        if (index >= 0) {
            const [waiter] = this.eventWaiters.splice(index, 1);
            waiter.resolve(frame);
        } else {
            this.events.push(frame);
        }
    }

    // Sends a request and resolves with its reply (ok or error). An explicit id
    // in fields is kept as is.
    request(fields, timeoutMs = 15000) {
        const frame = { ...fields };
        if (!('id' in frame))
            frame.id = this.nextId++;
        return this.sendAwaiting(JSON.stringify(frame), frame.id, timeoutMs);
    }

    // Sends raw text (or a Buffer as a binary frame) and resolves with the reply
    // whose id is `expectedId` (undefined: the reply without id).
    sendAwaiting(data, expectedId, timeoutMs = 15000, options = {}) {
        const key = JSON.stringify(expectedId ?? null);
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.pending.delete(key);
                reject(new Error(`no reply with id ${key} within ${timeoutMs} ms`));
            }, timeoutMs);
            this.pending.set(key, {
                resolve: (frame) => { clearTimeout(timer); resolve(frame); },
                reject: (error) => { clearTimeout(timer); reject(error); },
            });
            this.ws.send(data, options);
        });
    }

    nextEvent(match = () => true, timeoutMs = 10000) {
        const index = this.events.findIndex(match);
        if (index >= 0)
            return Promise.resolve(this.events.splice(index, 1)[0]);
        return new Promise((resolve, reject) => {
            const waiter = { match, resolve };
            const timer = setTimeout(() => {
                const at = this.eventWaiters.indexOf(waiter);
                if (at >= 0)
                    this.eventWaiters.splice(at, 1);
                reject(new Error(`no matching event within ${timeoutMs} ms`));
            }, timeoutMs);
            waiter.resolve = (frame) => { clearTimeout(timer); resolve(frame); };
            this.eventWaiters.push(waiter);
        });
    }

    close() {
        this.ws.close();
        return this.closed;
    }
}

// Polls fn until it returns a truthy value or the time is up
export async function eventually(fn, timeoutMs = 10000, stepMs = 50) {
    const deadline = Date.now() + timeoutMs;
    let last;
    while (Date.now() < deadline) {
        last = await fn();
        if (last)
            return last;
        await sleep(stepMs);
    }
    return last;
}

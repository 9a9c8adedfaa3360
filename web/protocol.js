// A small client of the Parley protocol (PROTOCOL.md) over one WebSocket:
// requests with ids and promised replies, listeners for events and for the
// connection's state, a ping that watches the connection, and reconnection with
// backoff. It knows nothing of the UI.
//
// The socket is opened only when asked (start(): the user signs in or resumes),
// since the server closes a connection that does not authenticate within 30 s;
// stop() closes it for good (log out).

const RETRY_FIRST_MS = 500;
// While an outage is young, retry often: a restarted server is found within
// about 2 s; an outage that lasts is tried less often
const RETRY_STEPS = [[60000, 1500], [300000, 10000], [Infinity, 30000]];
const JITTER = 0.25;                // each delay is scaled by 1 ± this, so clients spread out
const REQUEST_TIMEOUT_MS = 20000;   // the server answers `unavailable` well before this
const CONNECT_TIMEOUT_MS = 8000;    // a handshake that takes longer is given up
const PING_INTERVAL_MS = 15000;
const PING_TIMEOUT_MS = 5000;       // a ping not answered in this time means a dead connection
const WAKE_DELAY_MS = 800;          // up to this long (random) before reconnecting on `online`

// A reply of type `error`, or a request that never got its reply. `code` is the
// protocol's code (`bad_credentials`, ...) or `disconnected` / `timeout` for the
// two failures that happen on this side; `message` is a sentence for people.
export class ProtocolError extends Error {
    constructor(code, message, frame = null) {
        super(message);
        this.name = 'ProtocolError';
        this.code = code;
        this.frame = frame;
    }
}

export function defaultSocketUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/ws`;
}

function jittered(ms) {
    return Math.round(ms * (1 - JITTER + Math.random() * 2 * JITTER));
}

export class ProtocolClient {
    constructor(url = defaultSocketUrl()) {
        this.url = url;
        this.socket = null;
        this.nextId = 1;
        this.pending = new Map();       // request id -> { resolve, reject, timer }
        this.listeners = new Map();     // event type or connection state -> Set of handlers
        this.retryDelay = RETRY_FIRST_MS;
        this.retryTimer = null;
        this.retryAt = null;            // when the next attempt starts (ms since epoch), while waiting
        this.outageSince = null;        // when the connection was last lost, until it is back
        this.connectTimer = null;
        this.pingTimer = null;
        this.latencyMs = null;          // the last ping's round trip
        this.wanted = false;            // start() was called and stop() was not
        this.wireWakeUps();
    }

    get connected() {
        return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
    }

    get connecting() {
        return this.socket !== null && this.socket.readyState === WebSocket.CONNECTING;
    }

    // Opens the connection (if it is not open) and keeps it open: a lost
    // connection is tried again after a growing delay, until stop().
    start() {
        this.wanted = true;
        if (!this.socket && this.retryTimer === null)
            this.open();
    }

    // Resolves when the connection is open; rejects when an attempt fails
    ready() {
        if (this.connected)
            return Promise.resolve();
        this.start();
        return new Promise((resolve, reject) => {
            const offOpen = this.on(':open', () => { offOpen(); offClose(); resolve(); });
            const offClose = this.on(':close', () => {
                offOpen(); offClose();
                reject(new ProtocolError('disconnected', 'Could not reach the server; check your connection and try again.'));
            });
        });
    }

    stop() {
        this.wanted = false;
        this.cancelRetry();
        this.outageSince = null;
        if (this.socket)
            this.drop();
    }

    // Tries at once (or after delayMs), without waiting for the backoff
    reconnectNow(delayMs = 0) {
        if (!this.wanted || this.socket)
            return;
        this.cancelRetry();
        this.retryDelay = RETRY_FIRST_MS;
        if (delayMs <= 0) {
            this.open();
            return;
        }
        this.retryAt = Date.now() + delayMs;
        this.retryTimer = setTimeout(() => { this.retryTimer = null; this.open(); }, delayMs);
        this.emit(':waiting', { retryAt: this.retryAt });
    }

    cancelRetry() {
        clearTimeout(this.retryTimer);
        this.retryTimer = null;
        this.retryAt = null;
    }

    // Listens for events of one type ('presence', 'logged_out', ... or '*' for
    // every event) and for the connection: ':connecting', ':open', ':close' (with
    // { retryAt }, null when not retrying), ':waiting' ({ retryAt }) and
    // ':latency' ({ ms }); no event type starts with a colon.
    // Returns a function that removes the listener.
    on(type, handler) {
        if (!this.listeners.has(type))
            this.listeners.set(type, new Set());
        this.listeners.get(type).add(handler);
        return () => this.listeners.get(type).delete(handler);
    }

    emit(type, payload) {
        for (const handler of [...(this.listeners.get(type) ?? [])]) {
            try {
                handler(payload);
            } catch (error) {
                console.error(`Parley: a '${type}' listener failed`, error);
            }
        }
    }

    // Sends one request; resolves with the `ok` frame, rejects with a ProtocolError.
    request(type, fields = {}, { timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
        return new Promise((resolve, reject) => {
            if (!this.connected) {
                reject(new ProtocolError('disconnected',
                    'Not connected to the server; try again in a moment.'));
                return;
            }
            const id = this.nextId++;
            const timer = setTimeout(() => {
                this.pending.delete(id);
                reject(new ProtocolError('timeout', 'The server did not answer in time.'));
            }, timeoutMs);
            this.pending.set(id, { resolve, reject, timer });
            this.socket.send(JSON.stringify({ ...fields, type, id }));
        });
    }

    open() {
        this.retryAt = null;
        this.emit(':connecting');
        const socket = new WebSocket(this.url, 'parley.v1');
        this.socket = socket;
        this.connectTimer = setTimeout(() => {
            if (this.socket === socket && socket.readyState === WebSocket.CONNECTING)
                this.drop();
        }, CONNECT_TIMEOUT_MS);
        socket.addEventListener('open', () => {
            if (this.socket !== socket)
                return;
            clearTimeout(this.connectTimer);
            this.retryDelay = RETRY_FIRST_MS;
            this.outageSince = null;
            this.emit(':open');
            this.ping();
        });
        socket.addEventListener('message', (message) => {
            if (this.socket === socket)
                this.receive(message.data);
        });
        socket.addEventListener('close', () => {
            if (this.socket === socket)
                this.lost();
        });
    }

    // Gives up the socket at once, without waiting for a closing handshake that
    // a hung server never answers
    drop() {
        const socket = this.socket;
        try {
            socket?.close();
        } catch {
            // already closing
        }
        if (this.socket === socket)
            this.lost();
    }

    lost() {
        clearTimeout(this.connectTimer);
        clearTimeout(this.pingTimer);
        this.pingTimer = null;
        this.socket = null;
        this.latencyMs = null;
        this.failPending();
        if (!this.wanted) {
            this.emit(':close', { retryAt: null });
            return;
        }
        this.outageSince ??= Date.now();
        const outage = Date.now() - this.outageSince;
        const cap = RETRY_STEPS.find(([upTo]) => outage < upTo)[1];
        const delay = jittered(Math.min(cap, this.retryDelay));
        this.retryDelay = Math.min(cap, this.retryDelay * 2);
        this.retryAt = Date.now() + delay;
        this.retryTimer = setTimeout(() => { this.retryTimer = null; this.open(); }, delay);
        this.emit(':close', { retryAt: this.retryAt });
    }

    // A ping now, then every PING_INTERVAL_MS; one not answered in time drops
    // the connection, which then reconnects
    async ping() {
        clearTimeout(this.pingTimer);
        this.pingTimer = null;
        const socket = this.socket;
        if (!this.connected)
            return;
        const started = performance.now();
        try {
            await this.request('ping', {}, { timeoutMs: PING_TIMEOUT_MS });
            this.latencyMs = performance.now() - started;
            this.emit(':latency', { ms: this.latencyMs });
        } catch (error) {
            if (error.code === 'timeout' && this.socket === socket)
                this.drop();
            return;
        }
        if (this.socket === socket)
            this.pingTimer = setTimeout(() => this.ping(), PING_INTERVAL_MS);
    }

    // Back online, or the tab shown again: a lost connection is tried soon (a
    // random moment, so that the clients of one office do not all come back in
    // the same instant); an open one is checked with a ping
    wireWakeUps() {
        const wake = () => {
            if (!this.wanted)
                return;
            if (this.connected)
                this.ping();
            else if (!this.socket)
                this.reconnectNow(Math.round(Math.random() * WAKE_DELAY_MS));
        };
        window.addEventListener('online', wake);
        document.addEventListener('visibilitychange', () => {
            if (document.visibilityState === 'visible')
                wake();
        });
    }

    failPending() {
        for (const waiter of this.pending.values()) {
            clearTimeout(waiter.timer);
            waiter.reject(new ProtocolError('disconnected',
                'The connection to the server was lost before it answered.'));
        }
        this.pending.clear();
    }

    receive(text) {
        let frame;
        try {
            frame = JSON.parse(text);
        } catch {
            console.error('Parley: the server sent a frame that is not JSON');
            return;
        }
        if (frame === null || typeof frame !== 'object' || typeof frame.type !== 'string')
            return;
        if (frame.type === 'ok' || frame.type === 'error') {
            const waiter = this.pending.get(frame.id);
            if (!waiter)
                return;     // a reply that timed out here, or an error about no request of ours
            this.pending.delete(frame.id);
            clearTimeout(waiter.timer);
            if (frame.type === 'ok')
                waiter.resolve(frame);
            else
                waiter.reject(new ProtocolError(frame.code, frame.message, frame));
            return;
        }
        this.emit(frame.type, frame);
        this.emit('*', frame);
    }
}

// A small client of the Parley protocol (PROTOCOL.md) over one WebSocket:
// requests with ids and promised replies, listeners for events and for the
// connection's state, and reconnection with backoff. It knows nothing of the UI.

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 15000;
const REQUEST_TIMEOUT_MS = 20000;   // the server answers `unavailable` well before this

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

export class ProtocolClient {
    constructor(url = defaultSocketUrl()) {
        this.url = url;
        this.socket = null;
        this.nextId = 1;
        this.pending = new Map();       // request id -> { resolve, reject, timer }
        this.listeners = new Map();     // event type or connection state -> Set of handlers
        this.retryDelay = RETRY_FIRST_MS;
        this.retryTimer = null;
        this.stopped = true;
    }

    get connected() {
        return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
    }

    // Opens the connection and keeps it open: a lost connection is tried again
    // after a growing delay, until close().
    start() {
        this.stopped = false;
        this.open();
    }

    close() {
        this.stopped = true;
        clearTimeout(this.retryTimer);
        if (this.socket)
            this.socket.close();
    }

    // Listens for events of one type ('presence', 'logged_out', ... or '*' for
    // every event) and for the connection: ':connecting', ':open', ':close' (with
    // { retryInMs }, null after close()); no event type starts with a colon.
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
        this.emit(':connecting');
        const socket = new WebSocket(this.url, 'parley.v1');
        this.socket = socket;
        socket.addEventListener('open', () => {
            this.retryDelay = RETRY_FIRST_MS;
            this.emit(':open');
        });
        socket.addEventListener('message', (message) => this.receive(message.data));
        socket.addEventListener('close', () => {
            if (this.socket !== socket)
                return;
            this.socket = null;
            this.failPending();
            if (this.stopped) {
                this.emit(':close', { retryInMs: null });
                return;
            }
            const delay = this.retryDelay;
            this.emit(':close', { retryInMs: delay });
            this.retryTimer = setTimeout(() => this.open(), delay);
            // Back off, with jitter so that many clients do not return at once
            this.retryDelay = Math.min(RETRY_MAX_MS, delay * 2) * (0.8 + Math.random() * 0.4);
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

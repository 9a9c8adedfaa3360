// The outbox: every message the user writes, in a room or a conversation, from
// the moment Send is pressed until the server has it (PROTOCOL.md "Outcomes,
// retries and idempotency"). A message shows at once as pending; it is sent
// with a nonce chosen here, and repeated with the same nonce whenever its
// outcome is unknown (the socket dropped while it was on its way, no answer,
// `unavailable` or `internal` with `"outcome": "unknown"`), after a refusal
// that changed nothing and asks to come back (`rate_limited`, `unavailable`,
// honouring `retry_after_ms`), and after a reconnect or a reload; the server
// stores it once whatever happens. It is taken out when its entry (which
// carries the nonce) arrives or its `ok` does, so it never shows twice; only a
// definite error (`not_member`, `invalid_text`, ...) leaves it failed, with
// Retry and Discard.
//
// Kept in sessionStorage, not localStorage: a reload of the tab (or the tab
// reopened) keeps what was pending, while each tab owns its own outbox, so two
// tabs never send the same message side by side, and a message left behind
// in a closed browser is not sent days later (past the server's 24 h memory of
// nonces, where a repeat would store it a second time) to a conversation that
// has moved on.

import { validFile } from './attachments.js';

const STORE_PREFIX = 'parley.outbox.';
const RETRY_FIRST_MS = 1000;        // without retry_after_ms: 1 s, doubling...
const RETRY_MAX_MS = 30000;         // ...up to this
const INTERNAL_TRIES = 3;           // `internal` that changed nothing: tried this often, then failed
const MAX_AGE_MS = 23 * 3600 * 1000; // the server remembers a nonce for 24 h: no repeat later than this
// Refusals that changed nothing and ask the client to come back later
const COME_BACK = new Set(['rate_limited', 'unavailable', 'timeout', 'disconnected']);

// A nonce as PROTOCOL.md asks ([A-Za-z0-9_-], 1 to 64): the time in base 36,
// then 96 random bits from getRandomValues (there in every context, plain
// http on a LAN included). The time first because the server's nonce index is
// kept in nonce order (store-sqlite schema 14: the nonce before the room or
// conversation): nonces that grow with time are written at its end, the same
// few pages a commit for every room, where a UUID's land anywhere.
export function newNonce() {
    const random = crypto.getRandomValues(new Uint8Array(12));
    const hex = [...random].map((byte) => byte.toString(16).padStart(2, '0')).join('');
    return `${Date.now().toString(36).padStart(9, '0')}-${hex}`;
}

// Room and user names are unique without regard to case
const key = (name) => String(name).toLowerCase();

// The file a message carries, as the upload answered it; undefined when none
const fileOf = (file) => (validFile(file) ? { id: file.id, name: file.name, size: file.size, type: file.type } : undefined);

export class Outbox {
    constructor(client) {
        this.client = client;
        this.items = [];                // { nonce, kind: 'room'|'pm', to, key, text, state, error, created, tries, notBefore }
        this.user = null;
        this.ready = false;             // the session is signed in: sending is possible
        this.pumping = false;
        this.timer = null;
        this.kinds = new Map();         // kind -> { changed(key), delivered(item, reply), failed(item, error) }
    }

    // kind 'room' or 'pm': changed(key) when its items change, delivered(item,
    // reply) on `ok`, failed(item, error) on a definite error
    register(kind, handlers) {
        this.kinds.set(kind, handlers);
    }

    // --- the user's outbox, kept across reloads ---------------------------------

    get storageKey() {
        return `${STORE_PREFIX}${this.user}`;
    }

    // Signed in as user: what this tab had pending for them comes back; a
    // message that was on its way when the page went is repeated (same nonce)
    load(user) {
        if (this.user === user)
            return;
        this.user = user;
        this.items = [];
        try {
            const saved = JSON.parse(sessionStorage.getItem(this.storageKey) ?? '[]');
            if (Array.isArray(saved))
                this.items = saved.filter((item) => typeof item?.nonce === 'string' && typeof item.text === 'string'
                    && (item.kind === 'room' || item.kind === 'pm') && typeof item.to === 'string')
                    .map((item) => ({ ...item, key: key(item.to), state: item.state === 'failed' ? 'failed' : 'queued', notBefore: 0,
                        reply_to: Number.isInteger(item.reply_to) ? item.reply_to : undefined, file: fileOf(item.file) }));
        } catch {
            this.items = [];        // storage disabled or spoilt: nothing to restore
        }
        for (const kind of new Set(this.items.map((item) => item.kind)))
            for (const itemKey of new Set(this.items.filter((item) => item.kind === kind).map((item) => item.key)))
                this.kinds.get(kind)?.changed(itemKey);
    }

    // Signed out: nothing of the last user stays; forget: their pending
    // messages are dropped from storage too (log out), not only from the page
    unload({ forget = false } = {}) {
        if (forget && this.user)
            this.save([]);
        this.user = null;
        this.items = [];
        this.setReady(false);
    }

    save(items = this.items) {
        if (!this.user)
            return;
        try {
            if (items.length === 0)
                sessionStorage.removeItem(this.storageKey);
            else
                sessionStorage.setItem(this.storageKey, JSON.stringify(items.map(
                    ({ nonce, kind, to, text, state, error, created, tries, reply_to, file }) =>
                        ({ nonce, kind, to, text, state, error, created, tries, reply_to, file }))));
        } catch {
            // storage full or disabled: the outbox lasts as long as the page
        }
    }

    // --- what the views ask -----------------------------------------------------

    // The pending and failed messages of one room or conversation, oldest first
    pending(kind, itemKey) {
        return this.items.filter((item) => item.kind === kind && item.key === itemKey);
    }

    // A message written: shown pending at once, sent as soon as it can be;
    // reply_to (1.1): the seq of the message it answers; file (1.1): the
    // {id, name, size, type} of an upload of the user's (attachments.js)
    add(kind, to, text, { reply_to: replyTo, file } = {}) {
        const item = {
            nonce: newNonce(), kind, to, key: key(to), text, state: 'queued', error: null,
            created: Date.now(), tries: 0, notBefore: 0, reply_to: Number.isInteger(replyTo) ? replyTo : undefined,
            file: fileOf(file),
        };
        this.items.push(item);
        this.touched(item);
        this.pump();
        return item;
    }

    // Retry after a definite error: the same nonce, since that error changed nothing
    retry(nonce) {
        const item = this.items.find((each) => each.nonce === nonce);
        if (!item || item.state !== 'failed')
            return;
        Object.assign(item, { state: 'queued', error: null, tries: 0, notBefore: 0, created: Date.now() });
        this.touched(item);
        this.pump();
    }

    discard(nonce) {
        const item = this.items.find((each) => each.nonce === nonce);
        if (item && item.state === 'failed')
            this.remove(item);
    }

    // An entry of a room or conversation arrived (live or by catch-up): the
    // pending message it is, if any, leaves the outbox. Matched by nonce; a
    // 1.0 server carries none, so there one's own entry takes the message on
    // its way with the same text.
    arrived(kind, itemKey, entry) {
        let item = null;
        if (typeof entry?.nonce === 'string')
            item = this.items.find((each) => each.nonce === entry.nonce);
        else if (entry?.from && key(entry.from) === key(this.user ?? ''))
            item = this.items.find((each) => each.kind === kind && each.key === itemKey
                && each.state === 'sending' && each.text === entry.text);
        if (item)
            this.remove(item);
        return Boolean(item);
    }

    remove(item) {
        const index = this.items.indexOf(item);
        if (index < 0)
            return;
        this.items.splice(index, 1);
        this.touched(item);
    }

    touched(item) {
        this.save();
        this.kinds.get(item.kind)?.changed(item.key);
    }

    // --- sending ----------------------------------------------------------------

    // The session is signed in (again) and caught up: sending starts
    setReady(ready) {
        this.ready = ready;
        clearTimeout(this.timer);
        this.timer = null;
        if (ready)
            this.pump();
    }

    // The next message to send: in each room or conversation in the order
    // written (a later one never overtakes an earlier one still pending)
    next(now) {
        const held = new Set();
        let wait = null;
        for (const item of this.items) {
            const chat = `${item.kind} ${item.key}`;
            if (item.state === 'failed' || held.has(chat))
                continue;
            held.add(chat);
            if (item.state !== 'queued')
                continue;
            if (item.notBefore <= now)
                return { item };
            wait = Math.min(wait ?? Infinity, item.notBefore - now);
        }
        return { wait };
    }

    // One message at a time, until none can go now; then a timer for the next
    async pump() {
        if (this.pumping || !this.ready)
            return;
        this.pumping = true;
        try {
            for (;;) {
                // A socket that just dropped: the next session's ready starts it again
                if (!this.ready || !this.client.connected)
                    return;
                const { item, wait } = this.next(Date.now());
                if (!item) {
                    clearTimeout(this.timer);
                    this.timer = wait === null || wait === undefined ? null
                        : setTimeout(() => { this.timer = null; this.pump(); }, wait);
                    return;
                }
                await this.send(item);
            }
        } finally {
            this.pumping = false;
        }
    }

    async send(item) {
        if (Date.now() - item.created > MAX_AGE_MS && item.tries > 0) {
            this.fail(item, 'Not confirmed within a day: check whether it arrived before sending it again.');
            return;
        }
        item.state = 'sending';
        item.tries += 1;
        this.touched(item);
        const [type, fields] = item.kind === 'room'
            ? ['msg.send', { room: item.to, text: item.text, nonce: item.nonce }]
            : ['pm.send', { to: item.to, text: item.text, nonce: item.nonce }];
        if (Number.isInteger(item.reply_to))
            fields.reply_to = item.reply_to;
        if (item.file)
            fields.file = item.file.id;
        let reply;
        try {
            reply = await this.client.request(type, fields);
        } catch (error) {
            if (this.items.includes(item))
                this.refused(item, error);
            return;
        }
        if (this.items.includes(item))
            this.remove(item);
        this.kinds.get(item.kind)?.delivered(item, reply);
    }

    // An error: repeated when the outcome is unknown or the server asks to
    // come back later; failed when it is definite
    refused(item, error) {
        const code = error.code;
        const unknown = error.frame?.outcome === 'unknown';
        const again = unknown || COME_BACK.has(code) || (code === 'internal' && item.tries < INTERNAL_TRIES);
        if (!again) {
            this.fail(item, error.message || 'The server refused this message.');
            this.kinds.get(item.kind)?.failed(item, error);
            return;
        }
        const after = error.frame?.retry_after_ms;
        const delay = Number.isInteger(after) && after >= 0 ? after
            : code === 'disconnected' ? 0
            : Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.max(0, item.tries - 1));
        item.state = 'queued';
        item.notBefore = Date.now() + delay;
        this.touched(item);
    }

    fail(item, message) {
        item.state = 'failed';
        item.error = message;
        this.touched(item);
    }
}

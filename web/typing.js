// Typing (PROTOCOL.md 1.1 "Typing"): the composer says `typing` while the
// user writes, at most every 3 s for one room or conversation, and the line
// under each timeline says who else is writing there ("bob is typing…") for
// about 5 s after each of their `typing` events, until their message arrives.

export const TYPING_SEND_MS = 3000;
export const TYPING_SHOW_MS = 5000;

const lower = (name) => String(name).toLowerCase();

// A room's or a conversation's key in the indicator: the room, or the other party
export const roomChat = (room) => `room:${lower(room)}`;
export const pmChat = (user) => `pm:${lower(user)}`;

export function typingText(names) {
    if (names.length === 0)
        return '';
    if (names.length === 1)
        return `${names[0]} is typing…`;
    if (names.length === 2)
        return `${names[0]} and ${names[1]} are typing…`;
    return 'several people are typing…';
}

// The composers' side: target() says where the text in the composer goes,
// as the request's fields ({ room } or { to }), or null when nowhere
export class TypingSender {
    constructor(client) {
        this.client = client;
        this.last = new Map();          // chat key -> when `typing` was last sent there
        this.unsupported = false;       // a 1.0 server does not know the request
        client.on(':open', () => { this.unsupported = false; });
    }

    attach(input, target) {
        input.addEventListener('input', () => {
            if (input.value.trim() !== '')
                this.typed(target());
        });
    }

    typed(fields) {
        if (!fields || this.unsupported || !this.client.connected)
            return;
        const chat = fields.room !== undefined ? roomChat(fields.room) : pmChat(fields.to);
        const now = Date.now();
        if (now - (this.last.get(chat) ?? -Infinity) < TYPING_SEND_MS)
            return;
        this.last.set(chat, now);
        this.client.request('typing', fields).catch((error) => {
            if (error.code === 'unknown_type')
                this.unsupported = true;
            // Any other refusal (rate_limited, not_member, ...) costs only this hint
        });
    }
}

// The line under the timelines. views: [{ line (the element), current()
// (the chat key on screen, or null) }]; self(): the signed-in user
export class TypingIndicator {
    constructor(client, { views, self }) {
        this.views = views;
        this.self = self;
        this.typing = new Map();        // chat key -> Map(lower(user) -> { user, until })
        this.timer = null;
        client.on('typing', (event) => this.received(event));
        // A message from someone ends their "typing"; so does leaving the room
        client.on('message', (entry) => this.stopped(roomChat(entry.room), entry.from));
        client.on('system', (entry) => {
            if (typeof entry.room === 'string' && (entry.event === 'leave' || entry.event === 'kick'))
                this.stopped(roomChat(entry.room), entry.user);
        });
        client.on('pm', (entry) => this.stopped(pmChat(entry.from), entry.from));
        client.on(':close', () => this.clear());
        document.addEventListener('parley:chat', () => this.render());
    }

    received(event) {
        const user = event.user;
        if (typeof user !== 'string' || lower(user) === lower(this.self() ?? ''))
            return;
        // In a conversation the other party is the one typing
        const chat = typeof event.room === 'string' ? roomChat(event.room)
            : typeof event.to === 'string' ? pmChat(user) : null;
        if (!chat)
            return;
        if (!this.typing.has(chat))
            this.typing.set(chat, new Map());
        const users = this.typing.get(chat);
        users.delete(lower(user));      // the newest last
        users.set(lower(user), { user, until: Date.now() + TYPING_SHOW_MS });
        this.changed();
    }

    stopped(chat, user) {
        if (typeof user === 'string' && this.typing.get(chat)?.delete(lower(user)))
            this.changed();
    }

    clear() {
        this.typing.clear();
        this.changed();
    }

    // Who is typing where, the expired forgotten; the next expiry timed
    changed() {
        const now = Date.now();
        let next = Infinity;
        for (const [chat, users] of this.typing) {
            for (const [name, { until }] of users) {
                if (until <= now)
                    users.delete(name);
                else
                    next = Math.min(next, until);
            }
            if (users.size === 0)
                this.typing.delete(chat);
        }
        clearTimeout(this.timer);
        this.timer = next === Infinity ? null : setTimeout(() => this.changed(), next - now + 20);
        this.render();
    }

    names(chat) {
        return [...(this.typing.get(chat)?.values() ?? [])].map((each) => each.user);
    }

    render() {
        for (const { line, current } of this.views) {
            const chat = current();
            const text = chat ? typingText(this.names(chat)) : '';
            if (line.textContent !== text)
                line.textContent = text;
        }
    }
}

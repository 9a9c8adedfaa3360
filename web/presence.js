// The users panel: everyone registered, with who is online now, kept current
// by `presence` events (PROTOCOL.md "Presence").

const REFRESH_RELATIVE_MS = 30000;

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

// "last seen 5 minutes ago" for a time in the past (ISO 8601 or Date)
export function lastSeenText(when, now = Date.now()) {
    if (!when)
        return 'never seen online';
    const seconds = Math.round((new Date(when).getTime() - now) / 1000);
    if (Number.isNaN(seconds))
        return 'offline';
    // Clocks differ a little: a time just ahead of ours is "just now" too
    if (seconds > -45)
        return 'last seen just now';
    const steps = [[60, 'second'], [60, 'minute'], [24, 'hour'], [7, 'day'], [4.35, 'week'],
        [12, 'month'], [Infinity, 'year']];
    let amount = seconds;
    for (const [size, unit] of steps) {
        if (Math.abs(amount) < size)
            return `last seen ${relative.format(Math.round(amount), unit)}`;
        amount /= size;
    }
    return 'offline';
}

function byName(a, b) {
    const left = a.toLowerCase();
    const right = b.toLowerCase();
    return left < right ? -1 : left > right ? 1 : 0;
}

export class PresencePanel {
    // onMessage(user): the "Message" button beside someone else was pressed
    constructor({ list, count, empty, panel, onMessage = null }) {
        this.list = list;
        this.onMessage = onMessage;
        this.count = count;
        this.empty = empty;
        this.panel = panel;
        this.users = new Map();     // name -> { user, online, last_seen }
        this.self = null;
        this.timer = setInterval(() => this.render(), REFRESH_RELATIVE_MS);
    }

    setSelf(name) {
        this.self = name;
    }

    clear() {
        this.users.clear();
        this.self = null;
        this.render();
    }

    // The whole list, from presence.list
    setAll(users) {
        this.users.clear();
        for (const entry of users) {
            this.users.set(entry.user, {
                user: entry.user, online: Boolean(entry.online), last_seen: entry.last_seen ?? null,
            });
        }
        this.render();
    }

    // Changes, from a presence event. An offline change carries no time: it is now.
    update(changes) {
        for (const change of changes) {
            if (typeof change.user !== 'string')
                continue;
            const known = this.users.get(change.user);
            const online = Boolean(change.online);
            let lastSeen = change.last_seen ?? known?.last_seen ?? null;
            if (!online && !change.last_seen && (!known || known.online))
                lastSeen = new Date().toISOString();
            this.users.set(change.user, { user: change.user, online, last_seen: lastSeen });
        }
        this.render();
    }

    // The connection is gone (stale): what the panel shows may be out of date,
    // so nobody is shown online
    markStale(stale = true) {
        this.panel.classList.toggle('stale', stale);
        if (stale)
            this.panel.setAttribute('aria-busy', 'true');
        else
            this.panel.removeAttribute('aria-busy');
    }

    showError(message) {
        this.count.textContent = message;
    }

    render() {
        const names = [...this.users.keys()].sort(byName);
        const online = names.filter((name) => this.users.get(name).online).length;
        this.count.textContent = names.length ? `${online} of ${names.length} online` : '';
        this.empty.hidden = names.length > 0;
        const items = names.map((name) => this.item(this.users.get(name)));
        // A re-render must not take the focus from a Message button
        const focused = this.list.contains(document.activeElement)
            ? document.activeElement.closest('li')?.dataset.user : null;
        this.list.replaceChildren(...items);
        if (focused)
            this.list.querySelector(`li[data-user="${CSS.escape(focused)}"] .pm-start`)?.focus();
    }

    item({ user, online, last_seen: lastSeen }) {
        const item = document.createElement('li');
        item.className = 'list-group-item d-flex align-items-center gap-2 user';
        item.dataset.user = user;
        item.dataset.online = String(online);

        const dot = document.createElement('span');
        dot.className = `presence-dot ${online ? 'online' : 'offline'}`;
        dot.setAttribute('aria-hidden', 'true');

        const who = document.createElement('div');
        who.className = 'flex-grow-1 who';
        const name = document.createElement('div');
        name.className = 'user-name text-truncate';
        name.textContent = user;
        if (user === this.self) {
            const you = document.createElement('span');
            you.className = 'text-body-secondary';
            you.textContent = ' (you)';
            name.append(you);
        }
        who.append(name);
        if (!online) {
            const seen = document.createElement('small');
            seen.className = 'd-block text-body-secondary last-seen';
            seen.textContent = lastSeenText(lastSeen);
            if (lastSeen)
                seen.title = absolute.format(new Date(lastSeen));
            who.append(seen);
        }

        const state = document.createElement('span');
        state.className = `badge presence-state ${online ? 'text-bg-success' : 'text-bg-secondary'}`;
        state.textContent = online ? 'online' : 'offline';
        item.append(dot, who, state);
        if (this.onMessage && this.self && user !== this.self) {
            const button = document.createElement('button');
            button.type = 'button';
            button.className = 'btn btn-sm btn-outline-primary pm-start';
            button.textContent = 'Message';
            button.setAttribute('aria-label', `Message ${user}`);
            button.addEventListener('click', () => this.onMessage(user));
            item.append(button);
        }
        return item;
    }
}

// Desktop notifications (the Notification API): asked for only when the user
// presses the account menu's button, never on page load; shown while the tab
// is hidden for a message that mentions the user and for a private message,
// unless that room or conversation is muted. Whether notifications are on
// (off until turned on here) and which chats are muted is kept on this device
// (localStorage), per user.

import { element } from './chatview.js';

const BODY_MAX = 180;               // characters of the message in the notification
const SVG = 'http://www.w3.org/2000/svg';

const lower = (name) => String(name).toLowerCase();

// A bell, crossed out when muted (decoration: the button's label says it)
function bellIcon(muted) {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 16 16');
    svg.setAttribute('width', '16');
    svg.setAttribute('height', '16');
    svg.setAttribute('aria-hidden', 'true');
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('fill', 'currentColor');
    path.setAttribute('d', 'M8 16a2 2 0 0 0 2-2H6a2 2 0 0 0 2 2zm.1-14.5a1 1 0 1 0-.2 0A5 5 0 0 0 3 6.5c0 1.1-.3 3.6-1.5 5.3a.5.5 0 0 0 .4.7h12.2a.5.5 0 0 0 .4-.7C13.3 10.1 13 7.6 13 6.5a5 5 0 0 0-4.9-5z');
    svg.append(path);
    if (muted) {
        const line = document.createElementNS(SVG, 'path');
        line.setAttribute('d', 'M1.5 1.5l13 13');
        line.setAttribute('stroke', 'currentColor');
        line.setAttribute('stroke-width', '1.6');
        line.setAttribute('stroke-linecap', 'round');
        svg.append(line);
    }
    return svg;
}

function readJson(storageKey, fallback) {
    try {
        return JSON.parse(localStorage.getItem(storageKey) ?? 'null') ?? fallback;
    } catch {
        return fallback;        // storage disabled or spoilt: the defaults
    }
}

function writeJson(storageKey, value) {
    try {
        localStorage.setItem(storageKey, JSON.stringify(value));
    } catch {
        // storage disabled: the choice lasts as long as the page
    }
}

export class Notifier {
    // self(): the signed-in user; open(kind, name): shows a room ('room') or a
    // conversation ('pm') when its notification is clicked; chats: the
    // headers' mute buttons, [{ button, kind, current() (the name on screen) }];
    // toast(text): says what the button did
    constructor(client, { self, open, chats, toast }) {
        this.self = self;
        this.open = open;
        this.toast = toast;
        this.chats = chats;
        this.supported = typeof window.Notification === 'function';
        this.menuItem = document.getElementById('notify-toggle');
        client.on('message', (entry) => this.roomMessage(entry));
        client.on('pm', (entry) => this.privateMessage(entry));
        this.menuItem.addEventListener('click', () => this.toggle());
        for (const chat of chats)
            chat.button.addEventListener('click', () => this.toggleMute(chat.kind, chat.current()));
        document.addEventListener('parley:chat', () => this.renderMute());
        document.getElementById('account-menu').addEventListener('show.bs.dropdown', () => this.renderMenu());
        this.renderMenu();
    }

    // --- on or off, per device and user -------------------------------------------

    get storagePrefix() {
        return `parley.notify.${lower(this.self() ?? '')}`;
    }

    get permission() {
        return this.supported ? window.Notification.permission : 'unsupported';
    }

    // Turned on here (with the menu's button) and granted by the browser
    get enabled() {
        return this.permission === 'granted' && readJson(`${this.storagePrefix}.on`, false) === true;
    }

    // The browser is asked only now, when the user pressed the button
    async toggle() {
        if (!this.supported || this.permission === 'denied')
            return;
        if (this.enabled) {
            writeJson(`${this.storagePrefix}.on`, false);
        } else {
            let answer = this.permission;
            try {
                answer = await window.Notification.requestPermission();
            } catch {
                // refused or unavailable: the menu says what the browser allows
            }
            writeJson(`${this.storagePrefix}.on`, answer === 'granted');
        }
        this.renderMenu();
        this.toast(this.enabled
            ? 'Desktop notifications are on: mentions of you and private messages show while Parley is in the background.'
            : this.permission === 'denied' ? 'The browser blocks notifications from this site: allow them in its site settings.'
                : 'Desktop notifications are off on this device.');
    }

    renderMenu() {
        const item = this.menuItem;
        const states = {
            unsupported: ['This browser has no desktop notifications', true],
            denied: ['Desktop notifications are blocked in the browser\'s site settings', true],
            default: ['Turn on desktop notifications', false],
            granted: [this.enabled ? 'Turn off desktop notifications' : 'Turn on desktop notifications', false],
        };
        const [text, disabled] = states[this.permission] ?? states.unsupported;
        item.textContent = text;
        item.disabled = disabled;
        item.dataset.state = this.permission === 'granted' ? (this.enabled ? 'on' : 'off') : this.permission;
    }

    // --- muted rooms and conversations ----------------------------------------------

    mutedSet() {
        return new Set(readJson(`${this.storagePrefix}.muted`, []));
    }

    isMuted(kind, name) {
        return this.mutedSet().has(`${kind}:${lower(name)}`);
    }

    toggleMute(kind, name) {
        if (!name)
            return;
        const muted = this.mutedSet();
        const chatKey = `${kind}:${lower(name)}`;
        if (!muted.delete(chatKey))
            muted.add(chatKey);
        writeJson(`${this.storagePrefix}.muted`, [...muted]);
        this.renderMute();
    }

    renderMute() {
        for (const { button, kind, current } of this.chats) {
            const name = current();
            if (!name)
                continue;
            const muted = this.isMuted(kind, name);
            const what = kind === 'room' ? 'this room' : 'this conversation';
            button.setAttribute('aria-pressed', String(muted));
            button.title = muted ? `Notifications for ${what} are muted on this device: press to unmute`
                : `Mute notifications for ${what} on this device`;
            button.replaceChildren(bellIcon(muted), element('span', 'visually-hidden', `Mute notifications for ${what}`));
        }
    }

    // --- showing them -----------------------------------------------------------------

    mentionsSelf(entry) {
        const me = lower(this.self() ?? '');
        return Array.isArray(entry.mentions) && entry.mentions.some((name) => lower(name) === me);
    }

    // Only what the user would otherwise miss: the tab is hidden
    wanted(entry, kind, chat) {
        return this.enabled && document.visibilityState === 'hidden' && typeof entry.from === 'string'
            && lower(entry.from) !== lower(this.self() ?? '') && !this.isMuted(kind, chat);
    }

    roomMessage(entry) {
        if (typeof entry.room === 'string' && this.mentionsSelf(entry) && this.wanted(entry, 'room', entry.room))
            this.show(`${entry.from} mentioned you in #${entry.room}`, entry, 'room', entry.room);
    }

    privateMessage(entry) {
        if (this.wanted(entry, 'pm', entry.from ?? ''))
            this.show(`${entry.from} sent you a private message`, entry, 'pm', entry.from);
    }

    show(title, entry, kind, name) {
        const text = String(entry.text ?? '');
        const body = [...text].length > BODY_MAX ? `${[...text].slice(0, BODY_MAX).join('')}…` : text;
        try {
            // One notification per message however many tabs are hidden
            const notification = new window.Notification(title, {
                body, tag: `parley:${kind}:${lower(name)}:${entry.seq}`, icon: '/favicon.svg',
            });
            notification.addEventListener('click', () => {
                window.focus();
                this.open(kind, name);
                notification.close();
            });
        } catch (error) {
            // Some browsers allow notifications only from a service worker
            console.warn('Parley: the notification could not be shown:', error.message);
        }
    }
}

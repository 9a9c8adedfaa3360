// Where the user is: which chat has the main area (a room or a conversation,
// never both), the phone layout's switch between the lists and the chat (with a
// back button), the last chat reopened after a reload, and the quick switcher
// (Ctrl+K) to go to a room or a person by typing part of the name.

import { element } from './chatview.js';

const $ = (id) => document.getElementById(id);
const PHONE = '(max-width: 767.98px)';
const SWITCHER_MAX = 8;             // matches shown at once

export class Navigator {
    constructor() {
        this.rooms = null;          // set by app.js once the controllers exist
        this.pm = null;
        this.people = () => [];     // the names the switcher offers besides the rooms
        this.user = null;
        this.wire();
    }

    attach({ rooms, pm, people }) {
        this.rooms = rooms;
        this.pm = pm;
        this.people = people;
    }

    get storageKey() {
        return `parley.last.${this.user}`;
    }

    remember(value) {
        try {
            if (value)
                localStorage.setItem(this.storageKey, JSON.stringify(value));
            else
                localStorage.removeItem(this.storageKey);
        } catch {
            // storage disabled: nothing reopens after a reload
        }
    }

    remembered() {
        try {
            const value = JSON.parse(localStorage.getItem(this.storageKey) ?? 'null');
            return value && typeof value.name === 'string' && (value.kind === 'room' || value.kind === 'pm')
                ? value : null;
        } catch {
            return null;
        }
    }

    // A chat took the main area: the other gives it up, the phone shows the chat
    opened(kind, name) {
        if (kind === 'room')
            this.pm.close();
        else
            this.rooms.close();
        this.remember({ kind, name });
        document.body.classList.add('chat-mode');
    }

    // A chat was closed on purpose (left, deleted, Close): not reopened on reload
    closed(kind) {
        if (this.remembered()?.kind === kind)
            this.remember(null);
        this.renderPlaceholder();
    }

    showList() {
        document.body.classList.remove('chat-mode');
    }

    renderPlaceholder() {
        const open = Boolean(this.rooms?.isOpen || this.pm?.isOpen);
        $('chat-placeholder').hidden = open;
        if (!open)
            document.body.classList.remove('chat-mode');
    }

    // Signed in: the chat open before the reload comes back
    async restore(user) {
        this.user = user;
        const last = this.remembered();
        if (!last || this.rooms.isOpen || this.pm.isOpen)
            return;
        if (last.kind === 'room' && this.rooms.rooms.get(last.name.toLowerCase())?.joined)
            await this.rooms.open(last.name, { focus: false });
        else if (last.kind === 'pm')
            await this.pm.open(last.name, { focus: false });
    }

    leave() {
        this.user = null;
        this.showList();
    }

    // The phone's back button: the list again, the focus where the user was
    back(kind) {
        this.showList();
        const selector = kind === 'room' ? '#rooms button.active' : '#conversations button.active';
        const target = document.querySelector(selector) ?? $(kind === 'room' ? 'rooms-title' : 'conversations-title');
        target.focus();
    }

    get phone() {
        return window.matchMedia(PHONE).matches;
    }

    // --- the quick switcher -------------------------------------------------------

    openSwitcher() {
        if (!this.user || !window.bootstrap)
            return;
        $('switcher-input').value = '';
        this.renderSwitcher();
        window.bootstrap.Modal.getOrCreateInstance($('switcher-modal')).show();
    }

    matches() {
        const query = $('switcher-input').value.trim().toLowerCase();
        const all = [
            ...this.rooms.names().map((name) => ({ kind: 'room', name })),
            ...this.people().filter((name) => name !== this.user).map((name) => ({ kind: 'pm', name })),
        ];
        const found = all.filter((each) => each.name.toLowerCase().includes(query));
        // Names that start with the query first
        found.sort((a, b) => Number(!a.name.toLowerCase().startsWith(query)) - Number(!b.name.toLowerCase().startsWith(query)));
        return found.slice(0, SWITCHER_MAX);
    }

    renderSwitcher() {
        const found = this.matches();
        $('switcher-empty').hidden = found.length > 0;
        $('switcher-list').replaceChildren(...found.map((each, index) => {
            const item = element('li', 'list-group-item p-0');
            const button = element('button', `btn w-100 text-start rounded-0 switcher-item${index === 0 ? ' active' : ''}`);
            button.type = 'button';
            button.dataset.kind = each.kind;
            button.dataset.name = each.name;
            button.append(element('span', 'text-body-secondary me-2', each.kind === 'room' ? '#' : '@'),
                document.createTextNode(each.name),
                element('span', 'visually-hidden', each.kind === 'room' ? ', room' : ', private conversation'));
            button.addEventListener('click', () => this.go(each));
            item.append(button);
            return item;
        }));
    }

    go({ kind, name }) {
        window.bootstrap.Modal.getOrCreateInstance($('switcher-modal')).hide();
        if (kind === 'room')
            this.rooms.open(name);
        else
            this.pm.open(name);
    }

    wire() {
        document.addEventListener('keydown', (event) => {
            if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === 'k') {
                event.preventDefault();
                this.openSwitcher();
            }
        });
        $('switcher-open').addEventListener('click', () => this.openSwitcher());
        $('switcher-input').addEventListener('input', () => this.renderSwitcher());
        $('switcher-input').addEventListener('keydown', (event) => {
            if (event.key === 'Enter') {
                event.preventDefault();
                const first = this.matches()[0];
                if (first)
                    this.go(first);
            }
        });
        $('switcher-modal').addEventListener('shown.bs.modal', () => $('switcher-input').focus());
        $('chat-back').addEventListener('click', () => this.back('room'));
        $('pm-back').addEventListener('click', () => this.back('pm'));
        $('pm-close').addEventListener('click', () => {
            this.pm.close();
            this.closed('pm');
            this.back('pm');
        });
    }
}

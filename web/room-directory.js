// Browse rooms (PROTOCOL.md 1.1 "Directory and limits"): room.list gives at
// most 200 public rooms (with "more_public" when others exist); this dialog
// pages through all of them with room.directory, sorted by name as the
// server gives them, filtered by the start of the name (typed, checked here
// as the server would, then asked after a 250 ms pause). Each room shows its
// description, how full it is, "joined" or "Banned", and Join (through the
// RoomsController's join, then the room opens and the dialog closes) or
// Open. Load more appends the next page (`next` sent back as `cursor`).

import { element } from './chatview.js';
import { roomPrefixProblem, setFieldError } from './room-dialogs.js';
import { bannedBadge, isBanned, memberCount } from './room-list.js';

const $ = (id) => document.getElementById(id);
const key = (name) => String(name).toLowerCase();

const TYPING_MS = 250;              // a pause in typing this long asks the server
const PAGE = 50;                    // rooms per page (the server's default)

// What is said for an error of room.directory or room.join
export function directoryProblem(error) {
    switch (error.code) {
    case 'rate_limited': {
        const ms = Number(error.frame?.retry_after_ms);
        const seconds = Number.isFinite(ms) && ms > 0 ? Math.max(1, Math.ceil(ms / 1000)) : null;
        return seconds
            ? `Too many requests: try again in ${seconds} second${seconds === 1 ? '' : 's'}.`
            : 'Too many requests: try again in a moment.';
    }
    case 'unknown_type':
        return 'This server cannot list its rooms page by page; join a room by its name instead.';
    case 'disconnected':
        return 'Offline: the rooms can be listed once the connection is back.';
    default:
        return error.message || 'The rooms could not be listed; try again.';
    }
}

export class RoomDirectory {
    // rooms: the RoomsController (requestJoin, open, the rooms it knows)
    constructor(client, { rooms }) {
        this.client = client;
        this.rooms = rooms;
        this.ticket = 0;            // the newest request; older answers are dropped
        this.timer = null;
        this.opener = null;
        this.then = null;           // what runs once the dialog has closed (a room opens)
        this.clear();
        this.wire();
    }

    get modal() {
        return window.bootstrap?.Modal.getOrCreateInstance($('directory-modal'));
    }

    // Signed out: nothing of the last user's rooms stays in the dialog
    clear() {
        clearTimeout(this.timer);
        this.ticket += 1;
        this.query = '';
        this.list = [];
        this.next = null;
        this.busy = false;
        this.retry = null;
        if ($('directory-modal').classList.contains('show'))
            this.modal?.hide();
        $('directory-input').value = '';
        setFieldError($('directory-input'), null);
        this.setError(null);
        this.render();
    }

    open() {
        if (!document.body.classList.contains('signed-in') || !this.modal)
            return;
        this.opener = document.activeElement;
        this.then = null;
        this.modal.show();
        this.search();
    }

    wire() {
        for (const id of ['rooms-browse', 'rooms-more-browse'])
            $(id).addEventListener('click', () => this.open());
        $('directory-input').addEventListener('input', () => {
            clearTimeout(this.timer);
            const problem = roomPrefixProblem($('directory-input').value.trim());
            setFieldError($('directory-input'), problem);
            if (problem) {
                this.ticket += 1;       // an answer on its way is for other words
                this.list = [];
                this.next = null;
                this.busy = false;
                this.setError(null);
                this.render();
                return;
            }
            this.timer = setTimeout(() => this.search(), TYPING_MS);
        });
        $('directory-form').addEventListener('submit', (event) => {
            event.preventDefault();
            clearTimeout(this.timer);
            this.search();
        });
        $('directory-more').addEventListener('click', () => this.more());
        $('directory-modal').addEventListener('shown.bs.modal', () => {
            $('directory-input').focus();
            $('directory-input').select();
        });
        $('directory-modal').addEventListener('hidden.bs.modal', () => {
            clearTimeout(this.timer);
            const then = this.then;
            this.then = null;
            if (then)
                then();
            else if (this.opener?.isConnected)
                this.opener.focus();
            this.opener = null;
        });
    }

    // The first page of rooms whose name starts with what is typed
    async search() {
        clearTimeout(this.timer);
        const query = $('directory-input').value.trim();
        const problem = roomPrefixProblem(query);
        setFieldError($('directory-input'), problem);
        if (problem)
            return;
        const ticket = ++this.ticket;
        this.query = query;
        this.busy = true;
        this.retry = () => this.search();
        this.setError(null);
        this.setStatus('Loading…');
        try {
            const reply = await this.client.request('room.directory', query ? { query, limit: PAGE } : { limit: PAGE });
            if (ticket !== this.ticket)
                return;
            this.list = reply.rooms ?? [];
            this.next = reply.next ?? null;
        } catch (error) {
            if (ticket !== this.ticket)
                return;
            this.list = [];
            this.next = null;
            this.setError(directoryProblem(error));
        } finally {
            if (ticket === this.ticket) {
                this.busy = false;
                this.render();
            }
        }
    }

    // The next page, after what is shown; the focus goes to the first room it brought
    async more() {
        if (!this.next || this.busy)
            return;
        const ticket = ++this.ticket;
        const { query } = this;
        const before = this.list.length;
        this.busy = true;
        this.retry = () => this.more();
        this.setError(null);
        $('directory-more').disabled = true;
        $('directory-more').textContent = 'Loading…';
        try {
            const reply = await this.client.request('room.directory',
                { ...(query ? { query } : {}), limit: PAGE, cursor: this.next });
            if (ticket !== this.ticket)
                return;
            const seen = new Set(this.list.map((room) => key(room.name)));
            this.list.push(...(reply.rooms ?? []).filter((room) => !seen.has(key(room.name))));
            this.next = reply.next ?? null;
        } catch (error) {
            if (ticket !== this.ticket)
                return;
            this.setError(directoryProblem(error));
        } finally {
            if (ticket === this.ticket) {
                this.busy = false;
                this.render();
            }
        }
        if (ticket !== this.ticket)
            return;
        const items = [...$('directory-list').children].slice(before);
        const target = items.map((item) => item.querySelector('button')).find(Boolean);
        if (target)
            target.focus();
        else if (!$('directory-more').hidden)
            $('directory-more').focus();
    }

    setStatus(text) {
        $('directory-status').textContent = text;
        $('directory-status').hidden = !text;
    }

    // An error in the dialog, with Try again when the list or a page failed
    setError(text, { retry = true } = {}) {
        const box = $('directory-error');
        box.replaceChildren();
        box.hidden = !text;
        if (!text)
            return;
        box.append(element('span', 'me-2', text));
        if (retry && this.retry) {
            const again = element('button', 'btn btn-sm btn-outline-danger', 'Try again');
            again.type = 'button';
            again.id = 'directory-retry';
            const action = this.retry;
            again.addEventListener('click', () => action());
            box.append(again);
        }
    }

    // A room is joined when the server said so, or this page has joined it since
    joined(room) {
        return Boolean(room.joined || this.rooms.rooms.get(key(room.name))?.joined);
    }

    render() {
        const list = $('directory-list');
        list.replaceChildren(...this.list.map((room) => this.item(room)));
        list.hidden = this.list.length === 0;
        const more = $('directory-more');
        more.hidden = !this.next;
        more.disabled = false;
        more.textContent = 'Load more';
        if (this.busy)
            return;
        if (this.list.length === 0 && $('directory-error').hidden && !$('directory-input').classList.contains('is-invalid'))
            this.setStatus(this.query ? `No public room starts with “${this.query}”.` : 'There are no public rooms yet.');
        else if (this.list.length > 0)
            this.setStatus(`${this.list.length} room${this.list.length === 1 ? '' : 's'}${this.next ? ', more below' : ''}${this.query ? ` starting with “${this.query}”` : ''}.`);
        else
            this.setStatus('');
    }

    item(room) {
        const joined = this.joined(room);
        const banned = !joined && isBanned(room);
        const item = element('li', 'list-group-item d-flex align-items-center gap-2 directory-item');
        item.dataset.room = room.name;
        item.dataset.joined = String(joined);
        item.dataset.banned = String(banned);
        const hash = element('span', 'room-hash flex-none', '#');
        hash.setAttribute('aria-hidden', 'true');
        const text = element('span', 'flex-grow-1 room-item-text');
        const name = element('span', 'd-block text-truncate fw-semibold directory-name', room.name);
        name.title = room.name;
        text.append(name);
        if (room.description)
            text.append(element('small', 'd-block text-truncate room-item-description', room.description));
        const side = element('span', 'd-flex align-items-center gap-2 flex-none');
        if (Number.isInteger(room.members))
            side.append(memberCount(room));
        if (joined) {
            side.append(element('span', 'badge rounded-pill text-bg-success directory-joined', 'joined'));
            side.append(this.button('Open', room.name, 'btn-outline-secondary directory-open', () => this.openRoom(room.name)));
        } else if (banned) {
            side.append(bannedBadge());
        } else {
            side.append(this.button('Join', room.name, 'btn-success directory-join', (button) => this.join(room, button)));
        }
        item.append(hash, text, side);
        return item;
    }

    button(label, name, classes, action) {
        const button = element('button', `btn btn-sm ${classes}`, label);
        button.type = 'button';
        button.setAttribute('aria-label', `${label} ${name}`);
        button.addEventListener('click', () => action(button));
        return button;
    }

    // The dialog closes, then the room opens (and takes the focus)
    openRoom(name) {
        this.then = () => this.rooms.open(this.rooms.rooms.get(key(name))?.name ?? name);
        this.modal.hide();
    }

    async join(room, button) {
        if (this.rooms.joining)
            return;
        button.disabled = true;
        button.textContent = 'Joining…';
        this.setError(null);
        const error = await this.rooms.requestJoin(room.name);
        if (!error) {
            room.joined = true;
            delete room.banned;
            this.openRoom(room.name);
            return;
        }
        if (error.code === 'forbidden')
            room.banned = true;         // the ban the list had not told yet
        this.retry = null;
        this.render();
        this.setError(`${room.name}: ${directoryProblem(error)}`, { retry: false });
        const again = $('directory-list').querySelector(`li[data-room="${CSS.escape(room.name)}"] button`);
        (again ?? $('directory-input')).focus();
    }
}

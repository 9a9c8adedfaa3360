// The members panel beside a room's chat: who belongs to the room and who of
// them is online, the owner marked, and the invitation form of a private room.
// On a narrow screen it folds away behind the header's Members button.

import { element } from './chatview.js';

const $ = (id) => document.getElementById(id);

export class MembersPanel {
    // knownUsers(): every user the users panel knows, offered for invitations
    constructor({ knownUsers = () => [] } = {}) {
        this.knownUsers = knownUsers;
        this.actions = () => [];        // (name, room, self) -> buttons beside a member (the owner's Remove)
        this.members = new Map();       // user -> online
        this.known = false;             // the list came from the server
        this.online = new Map();        // user -> online, from presence
        $('members-toggle').addEventListener('click', () => this.setOpen($('members-panel').classList.contains('folded')));
        // Beside the chat when there is room for it, folded when the window narrows past that
        const wide = window.matchMedia('(min-width: 1200px)');
        this.setOpen(wide.matches);
        wide.addEventListener('change', () => this.setOpen(wide.matches));
    }

    setOpen(open) {
        $('members-panel').classList.toggle('folded', !open);
        $('members-toggle').setAttribute('aria-expanded', String(open));
    }

    clear() {
        this.members.clear();
        this.known = false;
    }

    // The list from room.members or room.join. A presence event is newer than
    // the rooms service's view when they cross: it wins
    set(list) {
        this.members.clear();
        for (const member of list)
            this.members.set(member.user, this.online.get(member.user) ?? Boolean(member.online));
        this.known = true;
    }

    joined(user) {
        if (this.known)
            this.members.set(user, this.online.get(user) ?? true);
    }

    left(user) {
        this.members.delete(user);
    }

    presence(changes) {
        for (const change of changes) {
            if (typeof change.user !== 'string')
                continue;
            this.online.set(change.user, Boolean(change.online));
            if (this.members.has(change.user))
                this.members.set(change.user, Boolean(change.online));
        }
    }

    markStale(stale) {
        $('members-panel').classList.toggle('stale', stale);
    }

    // room: the room shown (null when none or deleted); self: the signed-in user
    render(room, self, { deleted = false } = {}) {
        const list = $('members');
        const note = $('members-note');
        $('members-panel').hidden = deleted || !room;
        $('members-toggle').hidden = deleted || !room;
        $('invite-form').hidden = !(room?.joined && room.private && !deleted);
        if (!room?.joined || !this.known) {
            list.replaceChildren();
            $('members-count').textContent = room ? `(${room.members})` : '';
            note.textContent = room?.joined ? 'Loading…'
                : room?.banned ? 'Only members see who is here.' : 'Join the room to see who is here.';
            note.hidden = deleted;
            return;
        }
        note.hidden = true;
        const names = [...this.members.keys()].sort((a, b) => a.toLowerCase() < b.toLowerCase() ? -1 : 1);
        const online = names.filter((name) => this.members.get(name)).length;
        $('members-count').textContent = `(${online} of ${names.length} online)`;
        list.replaceChildren(...names.map((name) => this.item(name, room, self)));
        const inRoom = new Set(names);
        $('invite-names').replaceChildren(...this.knownUsers()
            .filter((name) => !inRoom.has(name))
            .map((name) => { const option = document.createElement('option'); option.value = name; return option; }));
    }

    item(name, room, self) {
        const isOnline = this.members.get(name);
        const item = element('li', 'list-group-item d-flex align-items-center gap-2 member');
        item.dataset.user = name;
        item.dataset.online = String(isOnline);
        const dot = element('span', `presence-dot ${isOnline ? 'online' : 'offline'}`);
        dot.setAttribute('aria-hidden', 'true');
        const label = element('span', 'flex-grow-1 text-truncate', name);
        label.title = name;
        if (name === self)
            label.append(element('span', 'text-body-secondary', ' (you)'));
        const state = element('span', 'visually-hidden', isOnline ? ', online' : ', offline');
        item.append(dot, label, state);
        // Outside the truncated name, so a long name never hides it
        if (name === room.owner)
            item.append(element('span', 'badge text-bg-secondary flex-shrink-0', 'owner'));
        item.append(...this.actions(name, room, self));
        return item;
    }
}

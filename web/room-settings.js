// The owner's administration of a room (PROTOCOL.md 1.1 "Room
// administration"): the settings dialog (description, private, most
// participants: `room.update`; and unbanning someone: `room.unban`), removing
// a member, and banning them too, from the members panel (`room.kick`,
// confirmed first); and what everyone
// sees of it: the room's header and list entry follow the lifecycle `update`
// event, and a user removed from a room loses it from the list with a notice.
// The `update` and `kick` entries show in the timeline as system notices.

import { element } from './chatview.js';
import {
    descriptionProblem, participantsProblem, setFieldError, renderDescriptionCount,
} from './room-dialogs.js';

const $ = (id) => document.getElementById(id);
const modal = (id) => window.bootstrap.Modal.getOrCreateInstance($(id));
const key = (name) => String(name).toLowerCase();
const SVG = 'http://www.w3.org/2000/svg';
const UNBAN_HINT = 'Someone banned cannot join or be invited until unbanned.';

// A gear (decoration: the button's label says it)
function gearIcon() {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 16 16');
    svg.setAttribute('width', '16');
    svg.setAttribute('height', '16');
    svg.setAttribute('aria-hidden', 'true');
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('fill', 'currentColor');
    path.setAttribute('fill-rule', 'evenodd');
    path.setAttribute('d', 'M6.9.6a1 1 0 0 1 2.2 0l.2 1.3a6 6 0 0 1 1.5.6l1.1-.8a1 1 0 0 1 1.5 1.5l-.8 1.1a6 6 0 0 1 .6 1.5l1.3.2a1 1 0 0 1 0 2.2l-1.3.2a6 6 0 0 1-.6 1.5l.8 1.1a1 1 0 0 1-1.5 1.5l-1.1-.8a6 6 0 0 1-1.5.6l-.2 1.3a1 1 0 0 1-2.2 0l-.2-1.3a6 6 0 0 1-1.5-.6l-1.1.8a1 1 0 0 1-1.5-1.5l.8-1.1a6 6 0 0 1-.6-1.5L.6 9.1a1 1 0 0 1 0-2.2l1.3-.2a6 6 0 0 1 .6-1.5l-.8-1.1A1 1 0 0 1 3.2 2.6l1.1.8a6 6 0 0 1 1.5-.6zM8 5.5a2.5 2.5 0 1 0 0 5 2.5 2.5 0 0 0 0-5z');
    svg.append(path);
    return svg;
}

export class RoomAdmin {
    // rooms: the RoomsController (its rooms, list, header and members panel);
    // toast(text): a notice when the room is not on screen
    constructor(client, { rooms, toast }) {
        this.client = client;
        this.rooms = rooms;
        this.toast = toast;
        this.editing = null;            // the room whose settings the dialog shows
        this.fields = { description: $('settings-description'), private: $('settings-private'), max: $('settings-max') };
        $('room-settings').prepend(gearIcon());
        rooms.members.actions = (name, room, self) => this.memberActions(name, room, self);
        this.wire();
    }

    wire() {
        const { fields } = this;
        $('room-settings').addEventListener('click', () => this.open());
        $('room-settings-form').addEventListener('submit', (event) => {
            event.preventDefault();
            this.submit();
        });
        $('room-settings-modal').addEventListener('shown.bs.modal', () => fields.description.focus());
        fields.description.addEventListener('input', () => {
            renderDescriptionCount(fields.description, $('settings-description-count'));
            if (fields.description.classList.contains('is-invalid'))
                setFieldError(fields.description, descriptionProblem(fields.description.value));
        });
        $('settings-unban-submit').addEventListener('click', () => this.unban());
        $('settings-unban').addEventListener('keydown', (event) => {
            if (event.key === 'Enter') {
                event.preventDefault();         // not the dialog's Save
                this.unban();
            }
        });
        fields.max.addEventListener('input', () => {
            if (fields.max.classList.contains('is-invalid'))
                setFieldError(fields.max, null);
        });
        this.client.on('system', (event) => {
            if (event.event === 'update' && event.room && typeof event.room === 'object')
                this.updated(event.room);
            else if (event.event === 'kick' && typeof event.room === 'string')
                this.kicked(event);
        });
    }

    // --- the settings dialog ----------------------------------------------------------

    open() {
        const room = this.rooms.room;
        if (!room || room.owner !== this.rooms.self)
            return;
        const { fields } = this;
        this.editing = room;
        $('room-settings-title').textContent = `Settings of ${room.name}`;
        fields.description.value = room.description ?? '';
        fields.private.checked = Boolean(room.private);
        fields.max.value = String(room.max_participants ?? '');
        for (const input of [fields.description, fields.max])
            setFieldError(input, null);
        this.setError(null);
        $('settings-unban').value = '';
        this.setUnbanFeedback(UNBAN_HINT);
        renderDescriptionCount(fields.description, $('settings-description-count'));
        modal('room-settings-modal').show($('room-settings'));
    }

    setError(text) {
        $('room-settings-error').textContent = text ?? '';
        $('room-settings-error').hidden = !text;
    }

    // Only what changed is sent; nothing changed closes the dialog
    changes(room) {
        const { fields } = this;
        const changed = {};
        if (fields.description.value !== (room.description ?? ''))
            changed.description = fields.description.value;
        if (fields.private.checked !== Boolean(room.private))
            changed.private = fields.private.checked;
        if (Number(fields.max.value) !== room.max_participants)
            changed.max_participants = Number(fields.max.value);
        return changed;
    }

    async submit() {
        const room = this.editing;
        const { fields } = this;
        const problems = [[fields.description, descriptionProblem(fields.description.value)],
            [fields.max, participantsProblem(fields.max.value)]];
        for (const [input, problem] of problems)
            setFieldError(input, problem);
        const first = problems.find(([, problem]) => problem);
        if (!room || first) {
            first?.[0].focus();
            return;
        }
        const changed = this.changes(room);
        if (Object.keys(changed).length === 0) {
            modal('room-settings-modal').hide();
            return;
        }
        const submit = $('room-settings-submit');
        submit.disabled = true;
        submit.textContent = 'Saving…';
        this.setError(null);
        try {
            const reply = await this.client.request('room.update', { room: room.name, ...changed });
            this.updated(reply.room ?? { ...room, ...changed });
            modal('room-settings-modal').hide();
        } catch (error) {
            this.setError(error.message || 'The settings could not be saved; try again.');
        } finally {
            submit.disabled = false;
            submit.textContent = 'Save';
        }
    }

    // A room's settings changed (the lifecycle event, or the reply): its list
    // entry and header follow; a room that turned private leaves the list of
    // those who are neither members nor invited
    updated(fresh) {
        if (typeof fresh?.name !== 'string')
            return;
        const rooms = this.rooms;
        const roomKey = key(fresh.name);
        const known = rooms.rooms.get(roomKey);
        if (fresh.private && !known?.joined && !known?.invited) {
            if (known)
                rooms.forget(roomKey);
            if (roomKey === rooms.current)
                rooms.renderChat();
            return;
        }
        rooms.rooms.set(roomKey, { ...known, ...fresh, joined: Boolean(known?.joined) });
        rooms.renderList();
        if (roomKey === rooms.current)
            rooms.renderHeader();
    }

    setUnbanFeedback(text, kind = null) {
        const feedback = $('settings-unban-feedback');
        feedback.textContent = text;
        feedback.classList.toggle('text-danger', kind === 'error');
        feedback.classList.toggle('text-success', kind === 'done');
    }

    // room.unban: the user may join again (a private room needs a new invitation)
    async unban() {
        const room = this.editing;
        const input = $('settings-unban');
        const user = input.value.trim();
        if (!room || user === '') {
            this.setUnbanFeedback('Enter the name of the person to unban.', 'error');
            input.focus();
            return;
        }
        const button = $('settings-unban-submit');
        button.disabled = true;
        try {
            await this.client.request('room.unban', { room: room.name, user });
            input.value = '';
            this.setUnbanFeedback(`${user} is not banned from ${room.name}: they may join again`
                + `${room.private ? ' once invited' : ''}.`, 'done');
        } catch (error) {
            this.setUnbanFeedback(error.message, 'error');
            input.focus();
        } finally {
            button.disabled = false;
        }
    }

    // --- removing members -------------------------------------------------------------

    // Beside each member but the owner, for the owner: Remove
    memberActions(name, room, self) {
        if (!room?.joined || room.owner !== self || key(name) === key(self ?? ''))
            return [];
        const button = element('button', 'btn btn-sm btn-outline-danger member-remove flex-shrink-0', 'Remove');
        button.type = 'button';
        button.setAttribute('aria-label', `Remove ${name} from the room`);
        button.addEventListener('click', () => this.askKick(room, name, button));
        return [button];
    }

    askKick(room, user, opener) {
        return this.rooms.confirm.ask({
            title: `Remove ${user} from ${room.name}?`,
            text: `${user} leaves the room at once and sees no more of it.`,
            ok: 'Remove',
            option: { label: `Also ban ${user}: they cannot join again or be invited until unbanned`, ok: 'Remove and ban' },
            opener,
            action: (ban) => this.client.request('room.kick', { room: room.name, user, ...(ban ? { ban: true } : {}) }),
        });
    }

    // A kick entry (already in the timeline): the member leaves the members
    // panel; when it is this user, the room leaves the list (the server's list
    // brings back a public room as one to join, or "Banned" after a ban) and a
    // notice says so, in the room when it is on screen
    kicked(entry) {
        const rooms = this.rooms;
        if (!rooms.self || typeof entry.user !== 'string')
            return;
        const roomKey = key(entry.room);
        rooms.membershipChanged(roomKey, entry);
        if (key(entry.user) !== key(rooms.self))
            return;
        const by = typeof entry.by === 'string' ? ` by ${entry.by}` : '';
        const notice = `You have been removed from the room ${entry.room}${by}.`;
        rooms.forget(roomKey);
        if (roomKey === rooms.current)
            rooms.showGone(notice, 'You are no longer a member.');
        else
            this.toast(notice);
    }
}

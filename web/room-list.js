// The room list in the sidebar: the pending invitations first (with Join),
// then each room with its description, a padlock when private, "join" when
// the user is not a member ("Banned" instead when the user is banned from
// it), the unread and mention counts and how full it is.
// Rendering only; the data stays in RoomsController.

import { element } from './chatview.js';

const key = (name) => String(name).toLowerCase();
const SVG = 'http://www.w3.org/2000/svg';

export function byName(a, b) {
    const left = a.name.toLowerCase();
    const right = b.name.toLowerCase();
    return left < right ? -1 : left > right ? 1 : 0;
}

// A padlock beside a private room's name (decoration: the name says it too)
function lockIcon() {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 16 16');
    svg.setAttribute('width', '12');
    svg.setAttribute('height', '12');
    svg.setAttribute('class', 'lock-icon');
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', 'M8 1a3 3 0 0 0-3 3v3H4a1 1 0 0 0-1 1v6a1 1 0 0 0 1 1h8a1 1 0 0 0 1-1V8a1 1 0 0 0-1-1h-1V4a3 3 0 0 0-3-3zm-2 6V4a2 2 0 1 1 4 0v3H6z');
    path.setAttribute('fill', 'currentColor');
    svg.append(path);
    return svg;
}

// A public room the user is banned from (room.list's `"banned": true`): it
// cannot be joined until its owner lifts the ban
export const BANNED_TITLE = 'You were banned from this room';
export const isBanned = (room) => Boolean(room?.banned && !room.joined);

// "Banned" in place of "join", the reason in its tooltip and, for a screen
// reader, in words (a title alone is not read everywhere)
export function bannedBadge() {
    const badge = element('span', 'badge text-bg-light border banned-badge', 'Banned');
    badge.title = BANNED_TITLE;
    badge.append(element('span', 'visually-hidden', `: ${BANNED_TITLE.toLowerCase()}`));
    return badge;
}

// How full a room is ("3 / 50", the whole in its title and for a screen
// reader); "3" with no max known
export function memberCount(room) {
    const max = Number.isInteger(room.max_participants) ? ` / ${room.max_participants}` : '';
    const count = element('small', 'member-count', `${room.members}${max}`);
    count.title = max ? `${room.members} of at most ${room.max_participants} members` : `${room.members} members`;
    count.append(element('span', 'visually-hidden', ' members'));
    return count;
}

export class RoomList {
    // pick(name): a room was chosen; join(name): an invitation's Join
    constructor(list, { pick, join }) {
        this.element = list;
        this.pick = pick;
        this.join = join;
        this.current = null;
        this.marks = new Map();
    }

    // rooms: every room listed; current: key of the room open; marks: key ->
    // { unread, mentions }
    render(rooms, current, marks) {
        this.current = current;
        this.marks = marks;
        // A re-render must not take the focus from the room the user is on
        const active = this.element.contains(document.activeElement) ? document.activeElement : null;
        const focused = active?.closest('li')?.dataset.room;
        const joinFocused = Boolean(active?.classList.contains('invite-join'));
        const invited = (room) => Boolean(room.invited && !room.joined);
        const sorted = [...rooms].sort((a, b) => Number(invited(b)) - Number(invited(a)) || byName(a, b));
        this.element.replaceChildren(...sorted.map((room) => this.item(room)));
        if (focused && !(joinFocused && this.focusJoin(focused)))
            this.focus(focused);
    }

    focusJoin(name) {
        const button = this.element.querySelector(`li[data-room="${CSS.escape(name)}"] .invite-join`);
        button?.focus();
        return Boolean(button);
    }

    // The focus on a room's entry; false when it is not listed
    focus(name) {
        const button = this.element.querySelector(`li[data-room="${CSS.escape(name)}"] button.room-item`);
        button?.focus();
        return Boolean(button);
    }

    item(room) {
        const item = element('li', 'list-group-item p-0');
        item.dataset.room = room.name;
        item.dataset.joined = String(Boolean(room.joined));
        const button = element('button', 'room-item btn w-100 text-start d-flex align-items-center gap-2 rounded-0');
        button.type = 'button';
        const selected = key(room.name) === this.current;
        button.classList.toggle('active', selected);
        if (selected)
            button.setAttribute('aria-current', 'true');

        const hash = element('span', 'room-hash flex-none', room.private ? undefined : '#');
        hash.setAttribute('aria-hidden', 'true');
        if (room.private)
            hash.append(lockIcon());
        const text = element('span', 'flex-grow-1 room-item-text');
        const name = element('span', 'd-block text-truncate room-item-name');
        name.title = room.name;
        name.append(element('span', 'visually-hidden', room.private ? 'Private room ' : 'Room '),
            document.createTextNode(room.name));
        text.append(name);
        if (room.description)
            text.append(element('small', 'd-block text-truncate room-item-description', room.description));

        const side = element('span', 'd-flex align-items-center gap-1 flex-none');
        const mark = room.joined ? this.marks.get(key(room.name)) : null;
        if (mark?.mentions > 0 && !selected) {
            const badge = element('span', 'badge rounded-pill text-bg-danger mention-badge', `@${mark.mentions}`);
            badge.title = `${mark.mentions} mention${mark.mentions === 1 ? '' : 's'} of you`;
            badge.append(element('span', 'visually-hidden', mark.mentions === 1 ? ' mention' : ' mentions'));
            side.append(badge);
        }
        if (mark?.unread > 0 && !selected) {
            const badge = element('span', 'badge rounded-pill text-bg-primary unread-badge', String(mark.unread));
            badge.append(element('span', 'visually-hidden', ' new'));
            side.append(badge);
        }
        const invited = Boolean(room.invited && !room.joined);
        item.dataset.invited = String(invited);
        item.dataset.banned = String(isBanned(room));
        if (room.joined)
            side.append(element('span', 'visually-hidden joined-badge', ', joined'));
        else if (invited)
            side.append(element('span', 'badge text-bg-light border invited-badge', 'invited'));
        else if (isBanned(room))
            side.append(bannedBadge());
        else
            side.append(element('span', 'badge text-bg-light border not-joined', 'join'));
        if (Number.isInteger(room.members))
            side.append(memberCount(room));

        button.append(hash, text, side);
        button.addEventListener('click', () => this.pick(room.name));
        item.append(button);
        if (invited) {
            if (room.from)
                text.append(element('small', 'd-block text-truncate room-item-description', `invited by ${room.from}`));
            item.classList.add('d-flex', 'align-items-center');
            const join = element('button', 'btn btn-sm btn-success invite-join flex-none me-2', 'Join');
            join.type = 'button';
            join.setAttribute('aria-label', `Join ${room.name}`);
            join.addEventListener('click', () => this.join(room.name));
            item.append(join);
        }
        return item;
    }
}

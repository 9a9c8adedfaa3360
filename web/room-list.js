// The room list in the sidebar: each room with its description, a padlock when
// private, "join" when the user is not a member, the unread count and how full
// it is. Rendering only; the data stays in RoomsController.

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

export class RoomList {
    // pick(name): a room was chosen
    constructor(list, { pick }) {
        this.element = list;
        this.pick = pick;
        this.current = null;
        this.unread = new Map();
    }

    // rooms: every room listed; current: key of the room open; unread: key -> count
    render(rooms, current, unread) {
        this.current = current;
        this.unread = unread;
        // A re-render must not take the focus from the room the user is on
        const focused = this.element.contains(document.activeElement)
            ? document.activeElement.closest('li')?.dataset.room : null;
        this.element.replaceChildren(...[...rooms].sort(byName).map((room) => this.item(room)));
        if (focused)
            this.focus(focused);
    }

    // The focus on a room's entry; false when it is not listed
    focus(name) {
        const button = this.element.querySelector(`li[data-room="${CSS.escape(name)}"] button`);
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
        const unread = this.unread.get(key(room.name)) ?? 0;
        if (unread > 0 && !selected) {
            const badge = element('span', 'badge rounded-pill text-bg-primary unread-badge', String(unread));
            badge.append(element('span', 'visually-hidden', ' new'));
            side.append(badge);
        }
        if (room.joined)
            side.append(element('span', 'visually-hidden joined-badge', ', joined'));
        else
            side.append(element('span', 'badge text-bg-light border not-joined', 'join'));
        const count = element('small', 'member-count', `${room.members} / ${room.max_participants}`);
        count.title = `${room.members} of at most ${room.max_participants} members`;
        count.append(element('span', 'visually-hidden', ' members'));
        side.append(count);

        button.append(hash, text, side);
        button.addEventListener('click', () => this.pick(room.name));
        item.append(button);
        return item;
    }
}

// Rooms: the room list, the create-room dialog, join / leave / delete, the
// chat view (timeline, composer, scroll-back, gap repair), the members panel and
// invitations (PROTOCOL.md "Rooms"). Speaks through a ProtocolClient.

// The server's rules (PROTOCOL.md "Names, limits, times"), checked here first
export const ROOM_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const DESCRIPTION_MAX = 500;
export const TEXT_MAX = 4000;
export const PARTICIPANTS_MIN = 2;
export const PARTICIPANTS_MAX = 10000;
export const PARTICIPANTS_DEFAULT = 50;

const HISTORY_PAGE = 50;
const LIST_REFRESH_MS = 300;        // membership changes arrive in bursts: one room.list for each
const NEAR_BOTTOM_PX = 80;          // closer than this to the end, new entries scroll into view
const NEAR_TOP_PX = 40;             // closer than this to the top, older entries are fetched
const CATCH_UP_ROUNDS = 20;         // at most this many room.history pages to fill one gap

const $ = (id) => document.getElementById(id);

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

// Room names are unique without regard to case
const key = (name) => String(name).toLowerCase();

// Unicode characters, as the server counts them
const characters = (text) => [...text].length;

function byName(a, b) {
    const left = a.name.toLowerCase();
    const right = b.name.toLowerCase();
    return left < right ? -1 : left > right ? 1 : 0;
}

function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className)
        node.className = className;
    if (text !== undefined)
        node.textContent = text;
    return node;
}

export function roomNameProblem(name) {
    if (name.length === 0)
        return 'Enter a name for the room.';
    if (!ROOM_NAME_PATTERN.test(name))
        return 'A room name has 1 to 64 characters: letters, digits, dashes or underscores.';
    return null;
}

export function descriptionProblem(text) {
    const count = characters(text);
    return count > DESCRIPTION_MAX
        ? `A description has at most ${DESCRIPTION_MAX} characters (this one has ${count}).` : null;
}

export function participantsProblem(text) {
    const value = Number(text);
    if (text.trim() === '' || !Number.isInteger(value) || value < PARTICIPANTS_MIN || value > PARTICIPANTS_MAX)
        return `Enter a whole number from ${PARTICIPANTS_MIN} to ${PARTICIPANTS_MAX}.`;
    return null;
}

// One timeline (a room's, or a private conversation's in pm.js) as far as
// this page knows it: entries by seq, and whether older ones exist on the server
export class Timeline {
    constructor() {
        this.entries = new Map();       // seq -> entry
        this.loaded = false;            // the newest page has arrived
        this.buffered = [];             // entries that arrived while the first page was on its way
        this.more = false;              // older entries exist before oldest
        this.loadingOlder = false;
        this.catchingUp = false;
    }

    get oldest() {
        let low = null;
        for (const seq of this.entries.keys())
            if (low === null || seq < low)
                low = seq;
        return low;
    }

    get newest() {
        let high = null;
        for (const seq of this.entries.keys())
            if (high === null || seq > high)
                high = seq;
        return high;
    }

    // Adds entries; returns how many were new
    add(entries) {
        let added = 0;
        for (const entry of entries) {
            if (!Number.isInteger(entry?.seq) || this.entries.has(entry.seq))
                continue;
            this.entries.set(entry.seq, entry);
            added++;
        }
        return added;
    }

    sorted() {
        return [...this.entries.values()].sort((a, b) => a.seq - b.seq);
    }
}

export class RoomsController {
    // onOpen(): a room takes the main area; otherOpen(): something else has it
    constructor(client, { users = () => [], onOpen = () => {}, otherOpen = () => false } = {}) {
        this.client = client;
        this.knownUsers = users;            // the names the users panel knows, for invitations
        this.onOpen = onOpen;
        this.otherOpen = otherOpen;
        this.self = null;
        this.rooms = new Map();             // key(name) -> room, with `joined`
        this.timelines = new Map();         // key(name) -> Timeline, for rooms this page has opened
        this.unread = new Map();            // key(name) -> count of entries not seen
        this.current = null;                // key(name) of the room in the chat view
        this.members = new Map();           // user -> online, for the current room when it is known
        this.membersKnown = false;
        this.deleted = null;                // the deletion notice when the current room went away
        this.online = new Map();            // user -> online, from presence
        this.listTimer = null;
        this.pendingDelete = null;
        this.focusAfterModal = null;       // where the focus goes when the create dialog closes
        this.joining = false;              // a room.join is on its way
        this.wire();
    }

    // --- lifecycle, called by app.js ------------------------------------------

    // Signed in (again): the list, and the open room caught up
    async enter(user) {
        const changedUser = this.self !== user;
        this.self = user;
        if (changedUser) {
            this.reset();
        }
        await this.refreshList();
        if (this.current) {
            const timeline = this.timelines.get(this.current);
            if (timeline?.loaded && timeline.newest !== null)
                await this.catchUp(this.current);
            else
                await this.open(this.rooms.get(this.current)?.name ?? this.current, { focus: false });
        }
    }

    // Signed out: nothing of the last user stays on the page
    reset() {
        this.rooms.clear();
        this.timelines.clear();
        this.unread.clear();
        this.current = null;
        this.members.clear();
        this.membersKnown = false;
        this.deleted = null;
        this.renderList();
        this.renderChat();
    }

    leaveDashboard() {
        this.self = null;
        this.reset();
    }

    markStale() {
        $('rooms-panel').classList.add('stale');
    }

    updatePresence(changes) {
        for (const change of changes) {
            if (typeof change.user !== 'string')
                continue;
            this.online.set(change.user, Boolean(change.online));
            if (this.members.has(change.user))
                this.members.set(change.user, Boolean(change.online));
        }
        if (this.current)
            this.renderMembers();
    }

    // --- the room list --------------------------------------------------------

    async refreshList() {
        try {
            const reply = await this.client.request('room.list');
            const fresh = new Map();
            for (const room of reply.rooms ?? [])
                fresh.set(key(room.name), room);
            // A private room opened through an invitation is not listed until joined
            this.rooms = fresh;
            $('rooms-error').hidden = true;
            $('rooms-panel').classList.remove('stale');
        } catch (error) {
            if (error.code === 'disconnected')
                return;
            $('rooms-error').textContent = `The rooms could not be listed: ${error.message}`;
            $('rooms-error').hidden = false;
        }
        this.renderList();
        if (this.current)
            this.renderHeader();
    }

    // Membership changed somewhere: counts and `joined` from the server, once per burst
    scheduleListRefresh() {
        clearTimeout(this.listTimer);
        this.listTimer = setTimeout(() => this.refreshList(), LIST_REFRESH_MS);
    }

    renderList() {
        const rooms = [...this.rooms.values()].sort(byName);
        $('rooms-count').textContent = rooms.length ? `(${rooms.length})` : '';
        $('rooms-empty').hidden = rooms.length > 0 || !$('rooms-error').hidden;
        $('rooms').replaceChildren(...rooms.map((room) => this.listItem(room)));
    }

    listItem(room) {
        const item = element('li', 'list-group-item p-0');
        item.dataset.room = room.name;
        item.dataset.joined = String(Boolean(room.joined));
        const button = element('button', 'room-item btn w-100 text-start d-flex align-items-center gap-2 rounded-0');
        button.type = 'button';
        const selected = key(room.name) === this.current;
        button.classList.toggle('active', selected);
        if (selected)
            button.setAttribute('aria-current', 'true');

        const text = element('span', 'flex-grow-1 room-item-text');
        const name = element('span', 'd-block text-truncate room-item-name');
        name.append(element('span', 'visually-hidden', 'Room '), document.createTextNode(room.name));
        text.append(name);
        if (room.description)
            text.append(element('small', 'd-block text-truncate room-item-description', room.description));

        const badges = element('span', 'd-flex flex-column align-items-end gap-1 flex-none');
        const line = element('span', 'd-flex gap-1');
        if (room.private)
            line.append(element('span', 'badge text-bg-warning', 'private'));
        if (room.joined)
            line.append(element('span', 'badge text-bg-success joined-badge', 'joined'));
        const unread = this.unread.get(key(room.name)) ?? 0;
        if (unread > 0 && !selected)
            line.append(element('span', 'badge rounded-pill text-bg-primary', `${unread} new`));
        const count = element('small', 'member-count', `${room.members} / ${room.max_participants}`);
        count.title = `${room.members} of at most ${room.max_participants} members`;
        const countHidden = element('span', 'visually-hidden', ` members`);
        count.append(countHidden);
        badges.append(line, count);

        button.append(text, badges);
        button.addEventListener('click', () => {
            this.open(room.name);
            this.collapseListOnPhone();
        });
        item.append(button);
        return item;
    }

    collapseListOnPhone() {
        if (window.matchMedia('(max-width: 767.98px)').matches)
            this.setListOpen(false);
    }

    setListOpen(open) {
        $('rooms-collapse').hidden = !open;
        $('rooms-toggle').setAttribute('aria-expanded', String(open));
        $('rooms-toggle').textContent = open ? 'Hide' : 'Show';
    }

    // --- the chat view --------------------------------------------------------

    get room() {
        return this.current ? this.rooms.get(this.current) ?? null : null;
    }

    // The main area goes to a private conversation: no room is shown
    close() {
        if (this.current === null)
            return;
        this.current = null;
        this.deleted = null;
        this.members.clear();
        this.membersKnown = false;
        this.renderList();
        this.renderChat();
    }

    async open(name, { focus = true } = {}) {
        const roomKey = key(name);
        this.onOpen();
        this.current = roomKey;
        this.deleted = null;
        this.unread.delete(roomKey);
        this.members.clear();
        this.membersKnown = false;
        this.showChatError(null);
        this.renderList();
        this.renderChat();
        if (focus)
            $('chat-title').focus();
        const room = this.rooms.get(roomKey);
        if (room?.joined) {
            await Promise.all([this.loadNewest(roomKey), this.loadMembers(roomKey)]);
        }
    }

    async loadNewest(roomKey) {
        const timeline = new Timeline();
        this.timelines.set(roomKey, timeline);
        try {
            const reply = await this.client.request('room.history',
                { room: this.rooms.get(roomKey)?.name ?? roomKey, limit: HISTORY_PAGE });
            if (this.timelines.get(roomKey) !== timeline)
                return;
            this.startTimeline(roomKey, timeline, reply.messages ?? [], Boolean(reply.more));
        } catch (error) {
            if (this.timelines.get(roomKey) === timeline)
                this.timelines.delete(roomKey);
            this.failed(roomKey, error);
        }
    }

    // The newest page arrived (from room.history or room.join): what came while it
    // was on its way is merged, and any gap after it is filled
    startTimeline(roomKey, timeline, entries, more) {
        timeline.add(entries);
        timeline.more = more;
        timeline.loaded = true;
        const buffered = timeline.buffered;
        timeline.buffered = [];
        if (roomKey === this.current)
            this.renderTimeline({ toBottom: true });
        for (const entry of buffered)
            this.receiveEntry(entry);
    }

    async loadMembers(roomKey) {
        try {
            const reply = await this.client.request('room.members',
                { room: this.rooms.get(roomKey)?.name ?? roomKey });
            if (roomKey !== this.current)
                return;
            this.setMembers(reply.members ?? []);
        } catch (error) {
            this.failed(roomKey, error);
        }
    }

    setMembers(list) {
        this.members.clear();
        // A presence event is newer than the rooms service's view when they
        // cross (someone leaves just as we join): it wins
        for (const member of list)
            this.members.set(member.user, this.online.get(member.user) ?? Boolean(member.online));
        this.membersKnown = true;
        this.renderMembers();
    }

    // A request about a room failed: a room that is gone leaves the list
    failed(roomKey, error) {
        if (error.code === 'disconnected')
            return;
        if (error.code === 'no_such_room') {
            this.forget(roomKey);
        } else if (error.code === 'not_member') {
            const room = this.rooms.get(roomKey);
            if (room)
                room.joined = false;
            this.scheduleListRefresh();
        }
        if (roomKey === this.current) {
            this.showChatError(error.message);
            this.renderChat();
        }
    }

    forget(roomKey) {
        this.rooms.delete(roomKey);
        this.timelines.delete(roomKey);
        this.unread.delete(roomKey);
        this.renderList();
    }

    showChatError(text) {
        $('chat-error').textContent = text ?? '';
        $('chat-error').hidden = !text;
    }

    renderChat() {
        const open = this.current !== null;
        $('chat-placeholder').hidden = open || this.otherOpen();
        $('chat-view').hidden = !open;
        if (!open)
            return;
        this.renderHeader();
        this.renderTimeline({ toBottom: true });
        this.renderMembers();
    }

    renderHeader() {
        const room = this.room;
        const name = room?.name ?? this.current;
        $('chat-title').textContent = name;
        $('chat-description').textContent = room?.description ?? '';
        $('chat-description').hidden = !room?.description;
        const facts = [];
        if (room) {
            facts.push(room.private ? 'Private room' : 'Public room');
            facts.push(`${room.members} of at most ${room.max_participants} members`);
            facts.push(room.owner === this.self ? 'you own it' : `owner: ${room.owner}`);
        }
        $('chat-facts').textContent = facts.join(' · ');
        const joined = Boolean(room?.joined);
        const gone = Boolean(this.deleted);
        $('room-join').hidden = joined || gone;
        $('room-leave').hidden = !joined || gone;
        $('room-delete').hidden = gone || !room || room.owner !== this.self;
        const composer = $('composer-text');
        const canWrite = joined && !gone;
        composer.disabled = !canWrite;
        $('composer-send').disabled = !canWrite;
        composer.placeholder = canWrite
            ? `Message ${name}`
            : gone ? 'This room no longer exists.' : 'Join the room to write here.';
        this.renderCounter();
        $('composer-hint').hidden = !canWrite;
        $('members-panel').hidden = Boolean(this.deleted);
        $('invite-form').hidden = !(joined && room?.private && !gone);
    }

    renderTimeline({ toBottom = false, keepFromBottom = null } = {}) {
        const box = $('timeline');
        const room = this.room;
        const timeline = this.current ? this.timelines.get(this.current) : null;
        const notice = $('timeline-notice');
        const top = $('timeline-top');
        const entries = timeline?.loaded ? timeline.sorted() : [];
        const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;

        const items = entries.map((entry) => this.entryItem(entry));
        if (this.deleted)
            items.push(this.noticeItem(this.deleted, 'entry-deleted'));
        $('entries').replaceChildren(...items);

        if (this.deleted && !timeline) {
            notice.hidden = true;
        } else if (!room && !this.deleted) {
            notice.textContent = this.joining ? 'Joining the room…'
                : 'You are not a member of this room: join it to read and write here.';
            notice.hidden = false;
        } else if (room && !room.joined && !this.deleted) {
            notice.textContent = room.private
                ? 'This room is private: join it with an invitation to read and write here.'
                : 'Join this room to read its messages and write in it.';
            notice.hidden = false;
        } else if (timeline?.loaded && entries.length === 0 && !this.deleted) {
            notice.textContent = 'No messages yet: say hello.';
            notice.hidden = false;
        } else {
            notice.hidden = true;
        }

        if (timeline?.loaded && entries.length > 0) {
            top.hidden = false;
            top.replaceChildren();
            if (timeline.loadingOlder) {
                top.textContent = 'Loading older messages…';
            } else if (timeline.more) {
                const button = element('button', 'btn btn-link btn-sm', 'Load older messages');
                button.type = 'button';
                button.id = 'load-older';
                button.addEventListener('click', () => this.loadOlder());
                top.append(button);
            } else {
                top.textContent = 'The beginning of the room.';
            }
        } else {
            top.hidden = true;
        }

        if (keepFromBottom !== null)
            box.scrollTop = box.scrollHeight - keepFromBottom;
        else if (toBottom || nearBottom)
            box.scrollTop = box.scrollHeight;
    }

    entryItem(entry) {
        if (entry.type === 'system')
            return this.noticeItem(entry.message ?? '', `entry-${entry.event ?? 'system'}`, entry);
        const own = entry.from === this.self;
        const item = element('li', `entry entry-message${own ? ' own' : ''}`);
        item.dataset.seq = String(entry.seq);
        const bubble = element('div', 'bubble');
        const meta = element('div', 'meta small');
        const from = element('span', 'from fw-semibold', own ? 'You' : entry.from);
        if (own)
            from.title = entry.from;
        meta.append(from, document.createTextNode(' '), this.timeElement(entry.ts));
        const text = element('div', 'text', entry.text);
        bubble.append(meta, text);
        item.append(bubble);
        return item;
    }

    noticeItem(message, className, entry = null) {
        const item = element('li', `entry entry-system ${className}`);
        if (entry?.seq)
            item.dataset.seq = String(entry.seq);
        const text = element('span', 'notice-text', message);
        item.append(text);
        if (entry?.ts) {
            item.append(document.createTextNode(' '));
            item.append(this.timeElement(entry.ts));
        }
        return item;
    }

    timeElement(ts) {
        const time = element('time', 'text-body-secondary');
        const date = new Date(ts);
        if (Number.isNaN(date.getTime()))
            return time;
        time.dateTime = ts;
        time.textContent = timeFormat.format(date);
        time.title = fullFormat.format(date);
        return time;
    }

    renderMembers() {
        const room = this.room;
        const list = $('members');
        const note = $('members-note');
        if (!room?.joined || !this.membersKnown) {
            list.replaceChildren();
            $('members-count').textContent = room ? `(${room.members})` : '';
            note.textContent = room?.joined ? 'Loading…' : 'Join the room to see who is here.';
            note.hidden = Boolean(this.deleted);
            return;
        }
        note.hidden = true;
        const names = [...this.members.keys()].sort((a, b) => a.toLowerCase() < b.toLowerCase() ? -1 : 1);
        const online = names.filter((name) => this.members.get(name)).length;
        $('members-count').textContent = `(${online} of ${names.length} online)`;
        list.replaceChildren(...names.map((name) => {
            const isOnline = this.members.get(name);
            const item = element('li', 'list-group-item d-flex align-items-center gap-2 member');
            item.dataset.user = name;
            item.dataset.online = String(isOnline);
            const dot = element('span', `presence-dot ${isOnline ? 'online' : 'offline'}`);
            dot.setAttribute('aria-hidden', 'true');
            const label = element('span', 'flex-grow-1 text-truncate', name);
            label.title = name;
            if (name === this.self)
                label.append(element('span', 'text-body-secondary', ' (you)'));
            const state = element('span', 'visually-hidden', isOnline ? ', online' : ', offline');
            item.append(dot, label, state);
            // Outside the truncated name, so a long name never hides it
            if (name === room.owner)
                item.append(element('span', 'badge text-bg-light border flex-shrink-0', 'owner'));
            return item;
        }));
        const names_ = new Set(names);
        $('invite-names').replaceChildren(...this.knownUsers()
            .filter((name) => !names_.has(name))
            .map((name) => { const option = document.createElement('option'); option.value = name; return option; }));
    }

    // --- scroll-back and gaps -------------------------------------------------

    async loadOlder() {
        const roomKey = this.current;
        const timeline = roomKey ? this.timelines.get(roomKey) : null;
        if (!timeline?.loaded || !timeline.more || timeline.loadingOlder || timeline.oldest === null)
            return;
        timeline.loadingOlder = true;
        const box = $('timeline');
        this.renderTimeline({ keepFromBottom: box.scrollHeight - box.scrollTop });
        try {
            const reply = await this.client.request('room.history',
                { room: this.room?.name ?? roomKey, before: timeline.oldest, limit: HISTORY_PAGE });
            timeline.add(reply.messages ?? []);
            timeline.more = Boolean(reply.more);
        } catch (error) {
            this.failed(roomKey, error);
        } finally {
            timeline.loadingOlder = false;
        }
        if (roomKey === this.current && this.timelines.get(roomKey) === timeline)
            this.renderTimeline({ keepFromBottom: box.scrollHeight - box.scrollTop });
    }

    // Fetches what came after the newest entry this page has, page by page
    async catchUp(roomKey) {
        const timeline = this.timelines.get(roomKey);
        if (!timeline?.loaded || timeline.catchingUp)
            return;
        timeline.catchingUp = true;
        try {
            for (let round = 0; round < CATCH_UP_ROUNDS; round++) {
                const after = timeline.newest ?? 0;
                const reply = await this.client.request('room.history',
                    { room: this.rooms.get(roomKey)?.name ?? roomKey, after, limit: 200 });
                timeline.add(reply.messages ?? []);
                if (!reply.more)
                    break;
            }
        } catch (error) {
            this.failed(roomKey, error);
        } finally {
            timeline.catchingUp = false;
        }
        if (roomKey === this.current)
            this.renderTimeline();
    }

    // --- events ---------------------------------------------------------------

    wire() {
        this.client.on('message', (event) => this.receiveEntry(event));
        this.client.on('system', (event) => {
            if (event.event === 'create')
                this.roomCreated(event);
            else if (event.event === 'delete')
                this.roomDeleted(event);
            else
                this.receiveEntry(event);
        });
        this.client.on('invite', (event) => this.invited(event));

        $('rooms-toggle').addEventListener('click', () => this.setListOpen($('rooms-collapse').hidden));
        $('room-join').addEventListener('click', () => this.join());
        $('room-leave').addEventListener('click', () => this.leave());
        $('room-delete').addEventListener('click', () => this.askDelete());
        $('delete-room-confirm').addEventListener('click', () => this.confirmDelete());
        $('composer').addEventListener('submit', (event) => { event.preventDefault(); this.send(); });
        $('composer-text').addEventListener('keydown', (event) => {
            if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
                event.preventDefault();
                this.send();
            }
        });
        $('composer-text').addEventListener('input', () => {
            this.renderCounter();
            $('composer-error').textContent = '';
        });
        $('timeline').addEventListener('scroll', () => {
            if ($('timeline').scrollTop < NEAR_TOP_PX)
                this.loadOlder();
        });
        $('join-by-name').addEventListener('submit', (event) => { event.preventDefault(); this.joinByName(); });
        $('join-name').addEventListener('input', () => { $('join-name-error').textContent = ''; });
        $('invite-form').addEventListener('submit', (event) => { event.preventDefault(); this.invite(); });
        this.wireCreateDialog();
    }

    // A timeline entry (message, join, leave) of some room this user belongs to
    receiveEntry(entry) {
        if (typeof entry.room !== 'string' || !this.self)
            return;
        const roomKey = key(entry.room);
        if (entry.type === 'system' && (entry.event === 'join' || entry.event === 'leave'))
            this.membershipChanged(roomKey, entry);

        const timeline = this.timelines.get(roomKey);
        if (!timeline) {
            if (roomKey !== this.current && entry.type === 'message') {
                this.unread.set(roomKey, (this.unread.get(roomKey) ?? 0) + 1);
                this.renderList();
            }
            return;
        }
        if (!timeline.loaded) {
            timeline.buffered.push(entry);
            return;
        }
        const newest = timeline.newest;
        const isNew = timeline.add([entry]) > 0;
        if (!isNew)
            return;
        if (newest !== null && entry.seq > newest + 1)
            this.catchUp(roomKey);      // a gap: something was missed
        if (roomKey === this.current) {
            const own = entry.from === this.self;
            this.renderTimeline({ toBottom: own });
            if (!own || entry.type !== 'message')
                this.announce(entry.type === 'system' ? entry.message : `${entry.from}: ${entry.text}`);
        } else if (entry.type === 'message') {
            this.unread.set(roomKey, (this.unread.get(roomKey) ?? 0) + 1);
            this.renderList();
        }
    }

    membershipChanged(roomKey, entry) {
        if (roomKey === this.current && this.membersKnown) {
            if (entry.event === 'join')
                this.members.set(entry.user, this.online.get(entry.user) ?? true);
            else
                this.members.delete(entry.user);
            this.renderMembers();
        }
        if (entry.user === this.self && entry.event === 'leave') {
            // Left on another tab: this one stops following the room
            const room = this.rooms.get(roomKey);
            if (room)
                room.joined = false;
            if (roomKey !== this.current)
                this.timelines.delete(roomKey);
        }
        this.scheduleListRefresh();
    }

    roomCreated(event) {
        const room = event.room;
        if (!room || typeof room.name !== 'string')
            return;
        const roomKey = key(room.name);
        const known = this.rooms.get(roomKey);
        this.rooms.set(roomKey, { ...room, joined: known?.joined ?? room.owner === this.self });
        this.renderList();
        if (room.owner !== this.self)
            this.announce(event.message ?? `The room ${room.name} was created.`);
    }

    roomDeleted(event) {
        const name = typeof event.room === 'string' ? event.room : event.room?.name;
        if (!name)
            return;
        const roomKey = key(name);
        const message = event.message ?? `The room ${name} has been deleted.`;
        const wasKnown = this.rooms.has(roomKey);
        this.forget(roomKey);
        if (roomKey === this.current) {
            this.deleted = message;
            this.members.clear();
            this.membersKnown = false;
            this.renderChat();
            this.announce(message);
        } else if (wasKnown && event.user !== this.self) {
            this.toast(message);
        }
    }

    invited(event) {
        const name = typeof event.room === 'string' ? event.room : event.room?.name;
        if (!name)
            return;
        const from = event.from ?? 'Someone';
        this.toast(`${from} invited you to the room ${name}.`, {
            action: 'Join', onAction: () => this.join(name),
        });
    }

    announce(text) {
        const live = $('chat-announcer');
        const line = element('p', null, text);
        live.append(line);
        while (live.childElementCount > 5)
            live.firstElementChild.remove();
    }

    toast(text, { action = null, onAction = null } = {}) {
        const box = element('div', 'toast align-items-center');
        box.setAttribute('role', 'status');
        box.setAttribute('aria-atomic', 'true');
        const body = element('div', 'toast-body d-flex align-items-center gap-2');
        body.append(element('span', 'flex-grow-1 toast-text', text));
        if (action) {
            const button = element('button', 'btn btn-sm btn-primary toast-action', action);
            button.type = 'button';
            button.addEventListener('click', () => {
                onAction();
                window.bootstrap?.Toast.getOrCreateInstance(box).hide();
            });
            body.append(button);
        }
        const close = element('button', 'btn-close');
        close.type = 'button';
        close.setAttribute('aria-label', 'Dismiss');
        close.setAttribute('data-bs-dismiss', 'toast');
        body.append(close);
        box.append(body);
        $('toasts').append(box);
        box.addEventListener('hidden.bs.toast', () => box.remove());
        if (window.bootstrap)
            window.bootstrap.Toast.getOrCreateInstance(box, { autohide: !action, delay: 8000 }).show();
        else
            box.classList.add('show');
    }

    // --- actions --------------------------------------------------------------

    async join(name = this.room?.name ?? this.current) {
        if (!name)
            return;
        const roomKey = key(name);
        if (roomKey !== this.current)
            await this.open(name, { focus: false });
        const button = $('room-join');
        button.disabled = true;
        this.showChatError(null);
        const timeline = new Timeline();
        this.timelines.set(roomKey, timeline);
        this.joining = true;
        try {
            const reply = await this.client.request('room.join', { room: name });
            const room = { ...(reply.room ?? this.rooms.get(roomKey) ?? { name }), joined: true };
            this.rooms.set(roomKey, room);
            this.renderList();
            if (roomKey === this.current) {
                this.setMembers(reply.members ?? []);
                this.renderHeader();
            }
            this.startTimeline(roomKey, timeline, reply.history ?? [], (reply.history ?? []).length >= HISTORY_PAGE);
            if (roomKey === this.current) {
                this.renderChat();
                $('composer-text').focus();
            }
        } catch (error) {
            if (this.timelines.get(roomKey) === timeline)
                this.timelines.delete(roomKey);
            if (error.code === 'no_such_room')
                this.forget(roomKey);
            else
                this.scheduleListRefresh();     // a full room: its count here may be old
            this.joining = false;
            if (roomKey === this.current) {
                this.showChatError(error.message);
                this.renderChat();
            } else {
                this.toast(error.message);
            }
        } finally {
            this.joining = false;
            button.disabled = false;
        }
    }

    async joinByName() {
        const input = $('join-name');
        const name = input.value.trim();
        const problem = roomNameProblem(name);
        if (problem) {
            $('join-name-error').textContent = problem;
            input.focus();
            return;
        }
        $('join-name-error').textContent = '';
        input.value = '';
        this.collapseListOnPhone();
        await this.join(name);
    }

    async leave() {
        const room = this.room;
        if (!room)
            return;
        const button = $('room-leave');
        button.disabled = true;
        this.showChatError(null);
        try {
            await this.client.request('room.leave', { room: room.name });
            room.joined = false;
            this.timelines.delete(key(room.name));
            this.members.clear();
            this.membersKnown = false;
            await this.refreshList();
            this.renderChat();
            $('room-join').focus();
        } catch (error) {
            this.failed(key(room.name), error);
        } finally {
            button.disabled = false;
        }
    }

    askDelete() {
        const room = this.room;
        if (!room)
            return;
        this.pendingDelete = room.name;
        $('delete-room-text').textContent =
            `The room ${room.name}, its messages and its memberships will be gone for everyone. This cannot be undone.`;
        $('delete-room-title').textContent = `Delete the room ${room.name}?`;
        $('delete-room-error').hidden = true;
        window.bootstrap.Modal.getOrCreateInstance($('delete-room-modal')).show($('room-delete'));
    }

    async confirmDelete() {
        const name = this.pendingDelete;
        if (!name)
            return;
        const button = $('delete-room-confirm');
        button.disabled = true;
        try {
            await this.client.request('room.delete', { room: name });
            this.pendingDelete = null;
            window.bootstrap.Modal.getOrCreateInstance($('delete-room-modal')).hide();
            // The delete event clears the view too; this covers a lost event
            if (this.rooms.has(key(name))) {
                this.forget(key(name));
                if (key(name) === this.current) {
                    this.deleted = `The room ${name} has been deleted.`;
                    this.renderChat();
                }
            }
        } catch (error) {
            $('delete-room-error').textContent = error.message;
            $('delete-room-error').hidden = false;
        } finally {
            button.disabled = false;
        }
    }

    renderCounter() {
        const count = characters($('composer-text').value);
        const hint = $('composer-hint');
        hint.textContent = count > TEXT_MAX - 500 ? `${count} / ${TEXT_MAX}`
            : 'Enter sends · Shift+Enter: new line';
        hint.classList.toggle('text-danger', count > TEXT_MAX);
    }

    async send() {
        const room = this.room;
        const input = $('composer-text');
        if (!room?.joined || input.disabled)
            return;
        const text = input.value;
        const error = $('composer-error');
        if (text.trim().length === 0) {
            error.textContent = 'Write something first.';
            return;
        }
        if (characters(text) > TEXT_MAX) {
            error.textContent = `A message has at most ${TEXT_MAX} characters.`;
            return;
        }
        error.textContent = '';
        $('composer-send').disabled = true;
        try {
            await this.client.request('msg.send', { room: room.name, text });
            if (input.value === text)
                input.value = '';
            this.renderCounter();
        } catch (failure) {
            error.textContent = failure.message;
            if (failure.code === 'not_member' || failure.code === 'no_such_room')
                this.failed(key(room.name), failure);
        } finally {
            $('composer-send').disabled = input.disabled;
            input.focus();
        }
    }

    async invite() {
        const room = this.room;
        const input = $('invite-user');
        const feedback = $('invite-feedback');
        const user = input.value.trim();
        feedback.className = 'small mt-1';
        if (!room || user.length === 0) {
            feedback.textContent = 'Enter the name of the person to invite.';
            feedback.classList.add('text-danger');
            input.focus();
            return;
        }
        $('invite-submit').disabled = true;
        try {
            await this.client.request('room.invite', { room: room.name, user });
            feedback.textContent = `${user} is invited: they can join ${room.name} now.`;
            feedback.classList.add('text-success');
            input.value = '';
        } catch (error) {
            feedback.textContent = error.message;
            feedback.classList.add('text-danger');
            input.focus();
        } finally {
            $('invite-submit').disabled = false;
        }
    }

    // --- the create-room dialog -----------------------------------------------

    wireCreateDialog() {
        const modal = $('create-room-modal');
        const form = $('create-room-form');
        const fields = { name: $('room-name'), description: $('room-description'), max: $('room-max') };
        modal.addEventListener('show.bs.modal', () => {
            form.reset();
            fields.max.value = String(PARTICIPANTS_DEFAULT);
            for (const input of Object.values(fields))
                this.setFieldError(input, null);
            this.setCreateError(null);
            this.renderDescriptionCount();
        });
        modal.addEventListener('shown.bs.modal', () => fields.name.focus());
        // Bootstrap gives the focus back to the button that opened the dialog; a
        // room just created takes it instead
        modal.addEventListener('hidden.bs.modal', () => {
            const target = this.focusAfterModal;
            this.focusAfterModal = null;
            if (target)
                setTimeout(() => target.focus(), 0);
        });
        fields.description.addEventListener('input', () => {
            this.renderDescriptionCount();
            if (fields.description.classList.contains('is-invalid'))
                this.setFieldError(fields.description, descriptionProblem(fields.description.value));
        });
        for (const input of [fields.name, fields.max]) {
            input.addEventListener('input', () => {
                if (input.classList.contains('is-invalid'))
                    this.setFieldError(input, null);
                this.setCreateError(null);
            });
        }
        form.addEventListener('submit', (event) => {
            event.preventDefault();
            this.create(fields);
        });
    }

    renderDescriptionCount() {
        const count = characters($('room-description').value);
        const counter = $('room-description-count');
        counter.textContent = `${count} / ${DESCRIPTION_MAX}`;
        counter.classList.toggle('text-danger', count > DESCRIPTION_MAX);
    }

    setFieldError(input, text) {
        input.classList.toggle('is-invalid', Boolean(text));
        input.setAttribute('aria-invalid', text ? 'true' : 'false');
        $(`${input.id}-error`).textContent = text ?? '';
    }

    setCreateError(text) {
        $('create-room-error').textContent = text ?? '';
        $('create-room-error').hidden = !text;
    }

    async create(fields) {
        const name = fields.name.value.trim();
        const description = fields.description.value;
        const problems = [
            [fields.name, roomNameProblem(name)],
            [fields.description, descriptionProblem(description)],
            [fields.max, participantsProblem(fields.max.value)],
        ];
        let first = null;
        for (const [input, problem] of problems) {
            this.setFieldError(input, problem);
            if (problem && !first)
                first = input;
        }
        if (first) {
            first.focus();
            return;
        }
        const submit = $('create-room-submit');
        submit.disabled = true;
        submit.textContent = 'Creating…';
        this.setCreateError(null);
        try {
            const reply = await this.client.request('room.create', {
                room: name,
                description,
                private: $('room-private').checked,
                max_participants: Number(fields.max.value),
            });
            const room = { ...reply.room, joined: true };
            this.rooms.set(key(room.name), room);
            this.focusAfterModal = $('composer-text');
            window.bootstrap.Modal.getOrCreateInstance($('create-room-modal')).hide();
            await this.open(room.name, { focus: false });
        } catch (error) {
            const field = error.code === 'invalid_room' || error.code === 'room_exists' ? fields.name
                : null;
            if (field) {
                this.setFieldError(field, error.message);
                field.focus();
                field.select();
            } else {
                this.setCreateError(error.message || 'The room could not be created; try again.');
            }
        } finally {
            submit.disabled = false;
            submit.textContent = 'Create room';
        }
    }
}

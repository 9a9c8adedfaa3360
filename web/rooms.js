// Rooms: the room list, join / leave / delete, joining by name ("Create it?"
// when there is no such room), the room's header and its chat (through the
// shared ChatView), members and invitations (PROTOCOL.md "Rooms"). The dialogs
// are in room-dialogs.js, the members panel in members.js.

import { ChatView, Timeline, element, HISTORY_PAGE } from './chatview.js';
import { MembersPanel } from './members.js';
import { CreateRoomDialog, ConfirmDialog, roomNameProblem } from './room-dialogs.js';
import { RoomList, byName } from './room-list.js';

export { TEXT_MAX } from './chatview.js';

const LIST_REFRESH_MS = 300;        // membership changes arrive in bursts: one room.list for each
const LEAVE_GUARD_MS = 500;         // Leave ignores clicks this soon after Join: a double-click's second half
const LIST_PAGES_MAX = 20;          // room.list pages followed at most (1,200 rooms need ~4)

const $ = (id) => document.getElementById(id);

// Room names are unique without regard to case
const key = (name) => String(name).toLowerCase();

export class RoomsController {
    // nav: the Navigator (which chat is open, the phone layout); toast(text, options)
    constructor(client, { nav, toast, users = () => [] }) {
        this.client = client;
        this.nav = nav;
        this.toast = toast;
        this.self = null;
        this.rooms = new Map();             // key(name) -> room, with `joined`
        this.timelines = new Map();         // key(name) -> Timeline, for rooms this page has opened
        this.unread = new Map();            // key(name) -> count of messages not seen
        this.current = null;                // key(name) of the room in the chat view
        this.deleted = null;                // the deletion notice when the current room went away
        this.listTimer = null;
        this.joining = false;               // a room.join is on its way
        this.joinedAt = 0;
        this.members = new MembersPanel({ knownUsers: users });
        this.list = new RoomList($('rooms'), { pick: (name) => this.open(name) });
        this.view = new ChatView({
            box: 'timeline', entries: 'entries', top: 'timeline-top', notice: 'timeline-notice',
            announcer: 'chat-announcer', form: 'composer', input: 'composer-text', send: 'composer-send',
            error: 'composer-error', hint: 'composer-hint', jump: 'timeline-jump', olderButton: 'load-older',
        }, {
            self: () => this.self,
            send: (text) => this.client.request('msg.send', { room: this.room.name, text }).catch((failure) => {
                if (failure.code === 'not_member' || failure.code === 'no_such_room')
                    this.failed(this.current, failure);
                throw failure;
            }),
            loadOlder: () => this.loadOlder(),
            beginning: 'The beginning of the room.',
        });
        this.dialog = new CreateRoomDialog(client, { created: (room) => this.created(room) });
        this.confirm = new ConfirmDialog();
        this.wire();
    }

    // --- lifecycle, called by app.js ------------------------------------------

    // Signed in (again): the list, and the open room caught up
    async enter(user) {
        if (this.self !== user) {
            this.self = user;
            this.reset();
        }
        await this.refreshList();
        if (this.current) {
            const timeline = this.timelines.get(this.current);
            if (timeline?.loaded && timeline.newest !== null)
                await Promise.all([this.catchUp(this.current), this.loadMembers(this.current)]);
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
        this.deleted = null;
        this.view.hide();
        this.view.forgetDrafts();
        this.renderList();
        this.renderChat();
    }

    leaveDashboard() {
        this.self = null;
        this.reset();
    }

    setOnline(online) {
        $('rooms-panel').classList.toggle('stale', !online);
        this.members.markStale(!online);
        this.view.setOnline(online);
    }

    updatePresence(changes) {
        this.members.presence(changes);
        if (this.current)
            this.renderMembers();
    }

    get isOpen() {
        return this.current !== null;
    }

    names() {
        return [...this.rooms.values()].sort(byName).map((room) => room.name);
    }

    // --- the room list --------------------------------------------------------

    async refreshList() {
        try {
            // 1.1: the list comes in pages when long; follow next to its end
            const fresh = new Map();
            let cursor;
            for (let page = 0; page < LIST_PAGES_MAX; page++) {
                const reply = await this.client.request('room.list', cursor ? { cursor } : {});
                for (const room of reply.rooms ?? [])
                    fresh.set(key(room.name), room);
                cursor = reply.next;
                if (!cursor)
                    break;
            }
            this.rooms = fresh;
            $('rooms-error').hidden = true;
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
        $('rooms-count').textContent = this.rooms.size ? `(${this.rooms.size})` : '';
        $('rooms-empty').hidden = this.rooms.size > 0 || !$('rooms-error').hidden;
        this.list.render([...this.rooms.values()], this.current, this.unread);
    }

    focusListItem(name) {
        return this.list.focus(name);
    }

    // --- the chat view --------------------------------------------------------

    get room() {
        return this.current ? this.rooms.get(this.current) ?? null : null;
    }

    // The main area goes to a conversation, or back to the list: no room is shown
    close() {
        if (this.current === null)
            return;
        this.current = null;
        this.deleted = null;
        this.members.clear();
        this.view.hide();
        this.renderList();
        this.renderChat();
    }

    async open(name, { focus = true } = {}) {
        const roomKey = key(name);
        this.nav.opened('room', this.rooms.get(roomKey)?.name ?? name);
        const unread = this.unread.get(roomKey) ?? 0;
        this.current = roomKey;
        this.deleted = null;
        this.unread.delete(roomKey);
        this.members.clear();
        this.showChatError(null);
        const room = this.rooms.get(roomKey);
        if (room?.joined && !this.timelines.get(roomKey)?.loaded)
            this.timelines.set(roomKey, new Timeline());
        this.view.show(roomKey, this.timelines.get(roomKey) ?? null, { unread });
        this.renderList();
        this.renderChat();
        if (focus)
            (room?.joined ? $('composer-text') : $('chat-title')).focus();
        if (room?.joined) {
            const timeline = this.timelines.get(roomKey);
            await Promise.all([timeline.loaded ? this.catchUp(roomKey) : this.loadNewest(roomKey, timeline),
                this.loadMembers(roomKey)]);
        }
    }

    async loadNewest(roomKey, timeline) {
        try {
            const reply = await this.history(roomKey, { limit: HISTORY_PAGE });
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
        if (roomKey === this.current) {
            this.view.show(roomKey, timeline);
            this.renderTimeline({ toBottom: true });
        }
        for (const entry of buffered)
            this.receiveEntry(entry);
    }

    async loadMembers(roomKey) {
        try {
            const reply = await this.client.request('room.members',
                { room: this.rooms.get(roomKey)?.name ?? roomKey });
            if (roomKey !== this.current)
                return;
            this.members.set(reply.members ?? []);
            this.renderMembers();
        } catch (error) {
            this.failed(roomKey, error);
        }
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
        $('chat-view').hidden = !open;
        this.nav.renderPlaceholder();
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
        $('room-join').hidden = joined || gone || !room;
        $('room-join').disabled = this.joining;
        $('room-join').textContent = this.joining ? 'Joining…' : 'Join';
        $('room-leave').hidden = !joined || gone;
        $('room-delete').hidden = gone || !room || room.owner !== this.self;
        $('room-gone-back').hidden = !gone;
        const canWrite = joined && !gone;
        this.view.setWritable(canWrite, canWrite ? `Message #${name}`
            : gone ? 'This room no longer exists.' : 'Join the room to write here.');
    }

    renderTimeline(options = {}) {
        const room = this.room;
        let notice = null;
        if (this.deleted)
            notice = this.timelines.has(this.current) ? null : '';
        else if (!room)
            notice = this.joining ? 'Joining the room…' : 'This room is not in your list.';
        else if (!room.joined)
            notice = room.private
                ? 'This room is private: join it with an invitation to read and write here.'
                : this.joining ? 'Joining the room…' : 'Join this room to read its messages and write in it.';
        const after = this.deleted ? [this.view.noticeItem(this.deleted, 'entry-deleted')] : [];
        this.view.render({ ...options, notice: notice || null, after });
        if (notice === '')
            $('timeline-notice').hidden = true;
    }

    renderMembers() {
        this.members.render(this.deleted ? null : this.room, this.self, { deleted: Boolean(this.deleted) });
    }

    // --- scroll-back and gaps -------------------------------------------------

    async loadOlder() {
        const roomKey = this.current;
        const timeline = roomKey ? this.timelines.get(roomKey) : null;
        if (!timeline?.canLoadOlder)
            return;
        const box = $('timeline');
        const render = () => this.renderTimeline({ keepFromBottom: box.scrollHeight - box.scrollTop });
        const loading = timeline.loadOlder((page) => this.history(roomKey, page));
        render();       // "Loading older messages…"
        try {
            await loading;
        } catch (error) {
            this.failed(roomKey, error);
        }
        if (roomKey === this.current && this.timelines.get(roomKey) === timeline)
            render();
    }

    // Fetches what came after the newest entry this page has
    async catchUp(roomKey) {
        const timeline = this.timelines.get(roomKey);
        try {
            const added = await timeline?.catchUp((page) => this.history(roomKey, page));
            if (added > 0 && roomKey === this.current)
                this.renderTimeline();
        } catch (error) {
            this.failed(roomKey, error);
        }
    }

    history(roomKey, page) {
        return this.client.request('room.history', { room: this.rooms.get(roomKey)?.name ?? roomKey, ...page });
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

        $('room-join').addEventListener('click', () => this.join());
        $('room-leave').addEventListener('click', (event) => {
            // The second click of a double-click on Join lands here: not a leave
            if (event.detail > 1 || Date.now() - this.joinedAt < LEAVE_GUARD_MS)
                return;
            this.leave();
        });
        $('room-delete').addEventListener('click', () => this.askDelete());
        $('room-gone-back').addEventListener('click', () => this.backToList());
        $('join-by-name').addEventListener('submit', (event) => { event.preventDefault(); this.joinByName(); });
        $('join-name').addEventListener('input', () => this.setJoinError(null));
        $('invite-form').addEventListener('submit', (event) => { event.preventDefault(); this.invite(); });
    }

    // A timeline entry (message, join, leave) of some room this user belongs to
    receiveEntry(entry) {
        if (typeof entry.room !== 'string' || !this.self)
            return;
        const roomKey = key(entry.room);
        if (entry.type === 'system' && (entry.event === 'join' || entry.event === 'leave'))
            this.membershipChanged(roomKey, entry);

        const timeline = this.timelines.get(roomKey);
        if (!timeline?.loaded) {
            if (timeline)
                timeline.buffered.push(entry);
            else if (roomKey !== this.current && entry.type === 'message')
                this.countUnread(roomKey);
            return;
        }
        const newest = timeline.newest;
        if (timeline.add([entry]) === 0)
            return;
        if (newest !== null && entry.seq > newest + 1)
            this.catchUp(roomKey);      // a gap: something was missed
        if (roomKey === this.current) {
            this.view.arrived([entry]);
            const own = entry.from === this.self;
            if (!own || entry.type !== 'message')
                this.view.announce(entry.type === 'system' ? entry.message : `${entry.from}: ${entry.text}`);
        } else if (entry.type === 'message') {
            this.countUnread(roomKey);
        }
    }

    countUnread(roomKey) {
        this.unread.set(roomKey, (this.unread.get(roomKey) ?? 0) + 1);
        this.renderList();
    }

    membershipChanged(roomKey, entry) {
        if (roomKey === this.current) {
            if (entry.event === 'join')
                this.members.joined(entry.user);
            else
                this.members.left(entry.user);
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
            this.view.announce(event.message ?? `The room ${room.name} was created.`);
    }

    roomDeleted(event) {
        const name = typeof event.room === 'string' ? event.room : event.room?.name;
        if (!name)
            return;
        const roomKey = key(name);
        const message = event.message ?? `The room ${name} has been deleted.`;
        const wasKnown = this.rooms.has(roomKey);
        this.forget(roomKey);
        if (roomKey === this.current && event.user === this.self) {
            this.backToList();      // deleted here or in another tab of this user
        } else if (roomKey === this.current) {
            this.deleted = message;
            this.members.clear();
            this.renderChat();
            this.view.announce(message);
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

    // --- actions --------------------------------------------------------------

    // The view goes back to the room list (after a delete or a leave), the
    // focus on the list so that the keyboard is not lost
    backToList(focusRoom = null) {
        this.close();
        this.nav.closed('room');
        this.nav.showList();
        if (!(focusRoom && this.focusListItem(focusRoom)))
            $('rooms-title').focus();
    }

    async join(name = this.room?.name ?? this.current) {
        if (!name || this.joining)
            return;
        const roomKey = key(name);
        if (roomKey !== this.current)
            await this.open(name, { focus: false });
        await this.requestJoin(name);
    }

    // room.join; returns the error when refused
    async requestJoin(name) {
        const roomKey = key(name);
        this.joining = true;
        this.showChatError(null);
        this.renderHeader();
        const timeline = new Timeline();
        this.timelines.set(roomKey, timeline);
        try {
            const reply = await this.client.request('room.join', { room: name });
            const room = { ...(reply.room ?? this.rooms.get(roomKey) ?? { name }), joined: true };
            this.rooms.set(roomKey, room);
            this.joinedAt = Date.now();
            this.joining = false;
            this.renderList();
            if (roomKey === this.current) {
                this.members.set(reply.members ?? []);
                this.view.show(roomKey, timeline);
            }
            this.startTimeline(roomKey, timeline, reply.history ?? [], (reply.history ?? []).length >= HISTORY_PAGE);
            if (roomKey === this.current) {
                this.renderChat();
                $('composer-text').focus();
            }
            return null;
        } catch (error) {
            this.joining = false;
            if (this.timelines.get(roomKey) === timeline)
                this.timelines.delete(roomKey);
            if (error.code === 'no_such_room')
                this.forget(roomKey);
            else
                this.scheduleListRefresh();     // a full room: its count here may be old
            if (roomKey === this.current) {
                this.showChatError(error.message);
                this.renderChat();
            }
            return error;
        }
    }

    setJoinError(text, { createName = null } = {}) {
        const box = $('join-name-error');
        box.replaceChildren();
        if (text)
            box.append(document.createTextNode(text));
        if (createName) {
            const button = element('button', 'btn btn-link btn-sm p-0 align-baseline ms-1', `Create ${createName}?`);
            button.type = 'button';
            button.id = 'join-name-create';
            button.addEventListener('click', () => this.dialog.open(createName));
            box.append(button);
        }
    }

    // Joins a room by its name; a room that does not exist is offered for creation
    async joinByName() {
        const input = $('join-name');
        const name = input.value.trim();
        const problem = roomNameProblem(name);
        if (problem) {
            this.setJoinError(problem);
            input.focus();
            return;
        }
        const known = this.rooms.get(key(name));
        if (known?.joined) {
            input.value = '';
            this.setJoinError(null);
            await this.open(known.name);
            return;
        }
        const submit = $('join-name-submit');
        submit.disabled = true;
        this.setJoinError(null);
        const error = await this.joinOutsideView(name);
        submit.disabled = false;
        if (!error) {
            input.value = '';
            return;
        }
        if (error.code === 'no_such_room')
            this.setJoinError(`There is no room named ${name}.`, { createName: name });
        else
            this.setJoinError(error.message);
        input.focus();
    }

    // room.join without opening the room first: only a room joined opens
    async joinOutsideView(name) {
        if (this.joining)
            return null;
        const error = await this.requestJoin(name);
        if (!error)
            await this.open(this.rooms.get(key(name))?.name ?? name);
        return error;
    }

    async leave() {
        const room = this.room;
        if (!room)
            return;
        if (room.private) {
            const left = await this.confirm.ask({
                title: `Leave the private room ${room.name}?`,
                text: 'You will need a new invitation from a member to come back.',
                ok: 'Leave the room',
                opener: $('room-leave'),
                action: () => this.requestLeave(room),
            });
            if (left)
                await this.afterLeave(room);
            return;
        }
        const button = $('room-leave');
        button.disabled = true;
        try {
            await this.requestLeave(room);
            await this.afterLeave(room);
        } catch (error) {
            this.showChatError(error.message);
        } finally {
            button.disabled = false;
        }
    }

    async requestLeave(room) {
        try {
            await this.client.request('room.leave', { room: room.name });
        } catch (error) {
            this.failed(key(room.name), error);
            throw error;
        }
        room.joined = false;
        this.timelines.delete(key(room.name));
    }

    // Back to the room list, the focus on the room left (a private one is no
    // longer listed)
    async afterLeave(room) {
        this.backToList(room.name);
        await this.refreshList();
        if (!this.focusListItem(room.name))
            $('rooms-title').focus();
    }

    async askDelete() {
        const room = this.room;
        if (!room)
            return;
        const deleted = await this.confirm.ask({
            title: `Delete the room ${room.name}?`,
            text: `The room ${room.name}, its messages and its memberships will be gone for everyone. This cannot be undone.`,
            ok: 'Delete the room',
            opener: $('room-delete'),
            action: async () => {
                await this.client.request('room.delete', { room: room.name });
                this.forget(key(room.name));
            },
        });
        if (deleted)
            this.backToList();
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

    // The create dialog made a room: it opens, ready to write
    async created(room) {
        this.rooms.set(key(room.name), room);
        this.setJoinError(null);
        $('join-name').value = '';
        await this.open(room.name, { focus: false });
    }
}

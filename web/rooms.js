// Rooms: the room list, join / leave / delete, joining by name ("Create it?"
// when there is no such room), the room's header and its chat (through the
// shared ChatView, messages sent through the outbox), members and invitations
// (PROTOCOL.md "Rooms"), unread and mention counts with read markers (1.1
// "Read markers, unread counts and mentions"; a 1.0 server gives none, and
// the counts are then this page's own). The dialogs are in room-dialogs.js,
// the members panel in members.js.

import { ChatView, Timeline, element, HISTORY_PAGE } from './chatview.js';
import { ChatController } from './chat-controller.js';
import { MembersPanel } from './members.js';
import { CreateRoomDialog, ConfirmDialog, roomNameProblem } from './room-dialogs.js';
import { RoomList, byName, isBanned } from './room-list.js';
import { RoomDirectory } from './room-directory.js';
import { MessageActions } from './message-actions.js';
import { describeChange, isChange, messageText } from './message-changes.js';

export { TEXT_MAX } from './chatview.js';

const LIST_REFRESH_MS = 300;        // membership changes arrive in bursts: one room.list for each
const LEAVE_GUARD_MS = 500;         // Leave ignores clicks this soon after Join: a double-click's second half
const LIST_PAGES_MAX = 20;          // room.list pages followed at most (1,200 rooms need ~4)
const COUNT_PAGE = 200;             // history entries per page when counting what was missed (1.0)
const COUNT_ROUNDS = 10;            // at most this many pages

const $ = (id) => document.getElementById(id);

// Room names are unique without regard to case
const key = (name) => String(name).toLowerCase();

// A room's read marker and counts: read (the marker, null when the server
// keeps none), last (the newest seq known here, null when none), unread and
// mentions (messages of others after the marker, and those naming the user)
const blankMark = () => ({ read: null, last: null, unread: 0, mentions: 0 });

export class RoomsController extends ChatController {
    // nav: the Navigator (which chat is open, the phone layout); toast(text,
    // options); outbox: the Outbox messages go through; unreadChanged(): the
    // counts changed (the tab's title follows)
    constructor(client, { nav, toast, outbox, unreadChanged = () => {}, users = () => [] }) {
        super();
        this.client = client;
        this.nav = nav;
        this.toast = toast;
        this.outbox = outbox;
        this.unreadChanged = unreadChanged;
        this.self = null;
        this.rooms = new Map();             // key(name) -> room, with `joined` (and `invited`)
        this.timelines = new Map();         // key(name) -> Timeline, for rooms this page has opened
        this.marks = new Map();             // key(name) -> blankMark(), for the rooms joined
        this.markers = false;               // the server keeps read markers (1.1)
        this.invitations = new Map();       // key(name) -> room, invitations seen as `invite` events
        this.inviteToasts = new Map();      // key(name) -> the invitation's toast ({ hide }), until joined
        this.readSent = new Map();          // key(name) -> the highest seq this page sent room.read for
        this.current = null;                // key(name) of the room in the chat view
        this.deleted = null;                // the deletion notice when the current room went away
        this.goneHint = '';                 // then the composer's placeholder
        this.listTimer = null;
        this.morePublic = false;            // room.list said more public rooms exist (1.1)
        this.joining = false;               // a room.join is on its way
        this.joinedAt = 0;
        this.members = new MembersPanel({ knownUsers: users });
        this.list = new RoomList($('rooms'), {
            pick: (name) => this.open(name), join: (name) => this.joinOutsideView(name),
        });
        this.view = new ChatView({
            box: 'timeline', entries: 'entries', top: 'timeline-top', notice: 'timeline-notice',
            announcer: 'chat-announcer', form: 'composer', input: 'composer-text', send: 'composer-send',
            error: 'composer-error', hint: 'composer-hint', jump: 'timeline-jump', olderButton: 'load-older',
        }, {
            self: () => this.self,
            send: (text, fields) => this.outbox.add('room', this.room?.name ?? this.current, text, fields),
            pending: () => (this.current ? this.outbox.pending('room', this.current) : []),
            retry: (nonce) => this.outbox.retry(nonce),
            discard: (nonce) => this.outbox.discard(nonce),
            seen: () => this.markRead(),
            loadOlder: () => this.loadOlder(),
            loadNewer: () => this.loadNewer(),
            present: () => this.backToPresent(),
            beginning: 'The beginning of the room.',
        });
        this.dialog = new CreateRoomDialog(client, { created: (room) => this.created(room) });
        this.confirm = new ConfirmDialog();
        this.directory = new RoomDirectory(client, { rooms: this });
        this.actions = new MessageActions(client, this.view, 'room', {
            self: () => this.self, name: () => this.room?.name ?? this.current,
            timeline: () => this.timelines.get(this.current), canDeleteAny: () => this.room?.owner === this.self,
            receive: (entry) => this.receiveEntry(entry), render: () => this.renderTimeline(),
            history: (page) => this.history(this.current, page),
        });
        outbox.register('room', {
            changed: (roomKey) => {
                if (roomKey === this.current)
                    this.renderTimeline();
            },
            delivered: (item, reply) => this.delivered(item, reply),
            failed: (item, error) => {
                // Said on screen, or by one toast for a chat elsewhere however many of its messages fail
                if (item.key === this.current)
                    this.view.announce(`Not sent: ${item.error}`);
                else if (outbox.pending('room', item.key).filter((each) => each.state === 'failed').length === 1)
                    this.toast(`Your message in ${item.to} was not sent: ${item.error}`,
                        { action: 'Open', onAction: () => this.open(item.to) });
                if (error.code === 'not_member' || error.code === 'no_such_room')
                    this.failed(item.key, error);
            },
        });
        this.wire();
    }

    // --- lifecycle, called by app.js ------------------------------------------

    // Signed in (again): the list with its counts, and every joined room this
    // page follows caught up from its last seen seq, not only the one on screen
    async enter(user) {
        if (this.self !== user) {
            this.self = user;
            this.reset();
        }
        this.readSent.clear();
        await this.refreshList();
        const work = [];
        for (const [roomKey, room] of this.rooms) {
            if (!room.joined || roomKey === this.current)
                continue;
            if (this.timelines.get(roomKey)?.loaded)
                work.push(this.catchUp(roomKey));
            else if (!this.markers && Number.isInteger(this.marks.get(roomKey)?.last))
                work.push(this.countMissed(roomKey));
        }
        if (this.current) {
            const timeline = this.timelines.get(this.current);
            if (timeline?.loaded && timeline.newest !== null)
                work.push(this.catchUp(this.current), this.loadMembers(this.current));
            else
                work.push(this.open(this.rooms.get(this.current)?.name ?? this.current, { focus: false }));
        }
        await Promise.all(work);
    }

    // Signed out: nothing of the last user stays on the page
    reset() {
        this.rooms.clear();
        this.morePublic = false;
        this.directory?.clear();
        this.timelines.clear();
        this.marks.clear();
        this.markers = false;
        this.invitations.clear();
        this.readSent.clear();
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
            this.applyList(await this.settledList(() => this.fetchList()));
            $('rooms-error').hidden = true;
        } catch (error) {
            if (error.code === 'disconnected')
                return;
            $('rooms-error').textContent = `The rooms could not be listed: ${error.message}`;
            $('rooms-error').hidden = false;
        }
        this.renderList();
        // A room on screen that is not joined shows only what the list says of
        // it (a ban the list brought, say): its notice and members note too
        if (this.current && this.room?.joined)
            this.renderHeader();
        else if (this.current)
            this.renderChat();
        this.markRead();
    }

    // 1.1: the list comes in pages when long; follow next to its end
    async fetchList() {
        const fresh = new Map();
        let morePublic = false;
        let cursor;
        for (let page = 0; page < LIST_PAGES_MAX; page++) {
            const reply = await this.client.request('room.list', cursor ? { cursor } : {});
            for (const room of reply.rooms ?? [])
                fresh.set(key(room.name), room);
            morePublic ||= reply.more_public === true;
            cursor = reply.next;
            if (!cursor)
                break;
        }
        // 1.1: public rooms beyond the 200 listed; the directory has them
        this.morePublic = morePublic;
        return fresh;
    }

    // A fresh room.list: the rooms, and (1.1) each joined room's marker and
    // counts, unless this page has already seen newer entries than the list
    applyList(fresh) {
        const marks = new Map();
        for (const [roomKey, room] of fresh) {
            if (room.invited && !room.joined)
                this.invitations.delete(roomKey);       // the server lists it: no need to keep it here
            if (!room.joined)
                continue;
            const local = this.marks.get(roomKey);
            if (!Number.isInteger(room.read_seq)) {
                marks.set(roomKey, local ?? blankMark());
                continue;
            }
            this.markers = true;
            const last = Number.isInteger(room.last_seq) ? room.last_seq : 0;
            if (local && local.last !== null && local.last > last)
                marks.set(roomKey, { ...local, read: Math.max(local.read ?? 0, room.read_seq) });
            else
                marks.set(roomKey, { read: room.read_seq, last, unread: Number(room.unread) || 0,
                    mentions: Number(room.mentions) || 0 });
        }
        // An invitation the server does not list (1.0 lists no invited room) stays
        for (const [roomKey, room] of this.invitations)
            if (!fresh.has(roomKey))
                fresh.set(roomKey, room);
        this.rooms = fresh;
        this.marks = marks;
    }

    // Membership changed somewhere: counts and `joined` from the server, once per burst
    scheduleListRefresh() {
        clearTimeout(this.listTimer);
        this.listTimer = setTimeout(() => this.refreshList(), LIST_REFRESH_MS);
    }

    renderList() {
        // An invitation joined in another tab: this one learns it from the list
        for (const roomKey of [...this.inviteToasts.keys()])
            if (this.rooms.get(roomKey)?.joined)
                this.settleJoined(roomKey);
        $('rooms-count').textContent = this.rooms.size ? `(${this.rooms.size})` : '';
        $('rooms-empty').hidden = this.rooms.size > 0 || !$('rooms-error').hidden;
        $('rooms-more').hidden = !this.morePublic;
        this.list.render([...this.rooms.values()], this.current, this.marks);
        this.unreadChanged();
    }

    // Unread messages in every joined room, for the tab's title
    get totalUnread() {
        let total = 0;
        for (const mark of this.marks.values())
            total += mark.unread;
        return total;
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

    // Where the "New messages" line goes when a room opens: after the read
    // marker (1.1), or above the messages counted unread here (1.0)
    lineOnOpen(roomKey) {
        const mark = this.marks.get(roomKey);
        if (!mark || mark.unread === 0)
            return {};
        return this.markers && mark.read !== null ? { readSeq: mark.read } : { unread: mark.unread };
    }

    // at: the seq of a message to open the room at (a search result)
    async open(name, { focus = true, at = null } = {}) {
        const roomKey = key(name);
        this.nav.opened('room', this.rooms.get(roomKey)?.name ?? name);
        const room = this.rooms.get(roomKey);
        const around = room?.joined && at !== null && !this.serves(this.timelines.get(roomKey), at);
        // The "New messages" line belongs to the newest entries, not to a window into the past
        const line = around ? {} : this.lineOnOpen(roomKey);
        this.current = roomKey;
        this.deleted = null;
        this.members.clear();
        this.showChatError(null);
        if (room?.joined && !this.serves(this.timelines.get(roomKey), at))
            this.timelines.set(roomKey, new Timeline());
        this.view.show(roomKey, this.timelines.get(roomKey) ?? null, line);
        this.renderList();
        this.renderChat();
        if (focus)
            (room?.joined ? $('composer-text') : $('chat-title')).focus();
        if (room?.joined) {
            const timeline = this.timelines.get(roomKey);
            await Promise.all([timeline.loaded ? this.catchUp(roomKey)
                : around ? this.loadAround(roomKey, timeline, at) : this.loadNewest(roomKey, timeline),
            this.loadMembers(roomKey)]);
            if (at !== null && !around && roomKey === this.current)
                this.view.reveal(at);
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
        this.absorb(roomKey, timeline.addNew(entries), { count: false });
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
        if (roomKey === this.current)
            this.markRead();
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
        this.listChanges++;
        this.rooms.delete(roomKey);
        this.timelines.delete(roomKey);
        this.marks.delete(roomKey);
        this.invitations.delete(roomKey);
        this.readSent.delete(roomKey);
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
            if (Number.isInteger(room.members))
                facts.push(`${room.members} of at most ${room.max_participants} members`);
            if (room.owner)
                facts.push(room.owner === this.self ? 'you own it' : `owner: ${room.owner}`);
            if (room.invited && !room.joined)
                facts.push('you are invited');
            if (isBanned(room))
                facts.push('you were banned from it');
        }
        $('chat-facts').textContent = facts.join(' · ');
        const joined = Boolean(room?.joined);
        const gone = Boolean(this.deleted);
        const banned = isBanned(room) && !gone;
        // Banned: the badge stands where Join would, which would only be refused
        $('room-join').hidden = joined || gone || !room || banned;
        $('room-banned').hidden = !banned;
        $('room-join').disabled = this.joining;
        $('room-join').textContent = this.joining ? 'Joining…' : 'Join';
        $('room-leave').hidden = !joined || gone;
        $('room-delete').hidden = gone || !room || room.owner !== this.self;
        $('room-settings').hidden = !joined || gone || room.owner !== this.self;
        $('room-mute').hidden = gone || !room;
        $('room-gone-back').hidden = !gone;
        const canWrite = joined && !gone;
        this.view.setWritable(canWrite, canWrite ? `Message #${name}`
            : gone ? this.goneHint : banned ? 'You were banned from this room.' : 'Join the room to write here.');
    }

    renderTimeline(options = {}) {
        const room = this.room;
        let notice = null;
        if (this.deleted)
            notice = this.timelines.has(this.current) ? null : '';
        else if (!room)
            notice = this.joining ? 'Joining the room…' : 'This room is not in your list.';
        else if (!room.joined && room.invited)
            notice = this.joining ? 'Joining the room…' : 'You are invited to this private room: join it to read and write here.';
        else if (isBanned(room))
            notice = 'You were banned from this room: you cannot join it unless its owner lifts the ban.';
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

    // A 1.0 server keeps no counts: what came into a room this page does not
    // show while it was away is fetched after the last seq seen, and counted
    async countMissed(roomKey) {
        try {
            for (let round = 0; round < COUNT_ROUNDS; round++) {
                const after = this.marks.get(roomKey)?.last;
                if (!Number.isInteger(after))
                    return;
                const reply = await this.history(roomKey, { after, limit: COUNT_PAGE });
                this.absorb(roomKey, reply.messages ?? [], { count: true });
                if (!reply.more)
                    return;
            }
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
        this.client.on('read', (event) => this.readElsewhere(event));
        document.addEventListener('visibilitychange', () => this.markRead());

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
        if (entry.type === 'delete' && this.markers && !this.seeing(roomKey))
            this.scheduleListRefresh();     // an unread message may be gone: the server's counts

        const timeline = this.timelines.get(roomKey);
        if (!timeline?.loaded) {
            if (timeline)
                timeline.buffered.push(entry);
            else
                this.absorb(roomKey, [entry], { count: true });
            return;
        }
        if (timeline.newer) {
            // A window into the past (chat-controller.js) takes no live entry: it is counted
            // now and shown with the pages below; a change of a message it shows applies
            this.absorb(roomKey, [entry], { count: true });
            const changed = timeline.applyLive(entry);
            if (changed && roomKey === this.current)
                this.renderTimeline();
            else if (roomKey === this.current)
                this.view.renderJump();
            return;
        }
        const newest = timeline.newest;
        if (timeline.add([entry]) === 0)
            return;
        if (newest !== null && entry.seq > newest + 1) {
            this.catchUp(roomKey);      // a gap: something was missed
            if (this.markers)
                this.scheduleListRefresh();     // and the counts of what was missed
        }
        this.absorb(roomKey, [entry], { count: true });
        if (roomKey === this.current) {
            this.view.arrived([entry]);
            const own = entry.from === this.self;
            if (!own || entry.type === 'system')
                this.view.announce(entry.type === 'system' ? entry.message
                    : isChange(entry) ? describeChange(entry) : `${entry.from}: ${messageText(entry)}`);
            this.markRead();
        }
    }

    // Entries of a room came in (live, caught up, or a page of history): the
    // outbox's messages among them leave it, and with count the unread and
    // mention counts follow those newer than the newest seq known here
    absorb(roomKey, entries, { count }) {
        let changed = false;
        for (const entry of [...entries].sort((a, b) => a.seq - b.seq)) {
            if (entry.type === 'message')
                this.outbox.arrived('room', roomKey, entry);
            if (!this.rooms.get(roomKey)?.joined && !this.marks.has(roomKey))
                continue;
            const mark = this.mark(roomKey);
            if (mark.last !== null && entry.seq <= mark.last)
                continue;
            mark.last = entry.seq;
            if (entry.type !== 'message' || !count)
                continue;
            if (key(entry.from ?? '') === key(this.self ?? '')) {
                // One's own message moves one's marker to it (PROTOCOL.md)
                Object.assign(mark, { read: this.markers ? entry.seq : mark.read, unread: 0, mentions: 0 });
            } else if (!this.seeing(roomKey)) {
                mark.unread += 1;
                if (this.mentionsSelf(entry))
                    mark.mentions += 1;
            }
            changed = true;
        }
        if (changed)
            this.renderList();
    }

    mark(roomKey) {
        if (!this.marks.has(roomKey))
            this.marks.set(roomKey, blankMark());
        return this.marks.get(roomKey);
    }

    mentionsSelf(entry) {
        return Array.isArray(entry.mentions) && entry.mentions.some((name) => key(name) === key(this.self ?? ''));
    }

    // --- read markers -----------------------------------------------------------

    // The user sees the newest entries of this room: it is on screen, on a
    // visible tab, scrolled to the bottom
    seeing(roomKey) {
        const timeline = this.timelines.get(roomKey);
        return roomKey === this.current && !this.deleted && document.visibilityState === 'visible'
            && Boolean(timeline?.loaded) && !timeline.newer && this.view.nearBottom;
    }

    // The room on screen is read up to its newest entry: the counts clear, and
    // (1.1) room.read moves the marker, which clears the badge on every tab
    markRead() {
        const roomKey = this.current;
        if (!roomKey || !this.rooms.get(roomKey)?.joined || !this.seeing(roomKey))
            return;
        const newest = this.timelines.get(roomKey).newest;
        const mark = this.mark(roomKey);
        // Newer entries exist than those on screen: read once the catch-up brings them
        if (newest === null || (mark.last !== null && newest < mark.last))
            return;
        if (mark.unread > 0 || mark.mentions > 0) {
            mark.unread = 0;
            mark.mentions = 0;
            this.renderList();
        }
        if (!this.markers || newest <= (mark.read ?? 0) || newest <= (this.readSent.get(roomKey) ?? 0))
            return;
        this.readSent.set(roomKey, newest);
        const name = this.rooms.get(roomKey)?.name ?? roomKey;
        this.client.request('room.read', { room: name, seq: newest }).then((reply) => {
            const now = this.marks.get(roomKey);
            const seq = Number.isInteger(reply.read_seq) ? reply.read_seq : newest;
            if (now)
                now.read = Math.max(now.read ?? 0, seq);
        }, (error) => {
            if (this.readSent.get(roomKey) === newest)
                this.readSent.delete(roomKey);
            if (error.code !== 'disconnected')
                console.warn('Parley: room.read failed:', error.message);
        });
    }

    // A `read` event: this user's marker moved (here, on another tab or device)
    readElsewhere(event) {
        if (typeof event.room !== 'string' || !Number.isInteger(event.seq))
            return;
        const roomKey = key(event.room);
        const mark = this.marks.get(roomKey);
        if (!mark)
            return;
        mark.read = Math.max(mark.read ?? 0, event.seq);
        if (mark.last === null || event.seq >= mark.last) {
            mark.unread = 0;
            mark.mentions = 0;
        } else if (!this.recount(roomKey)) {
            this.scheduleListRefresh();
        }
        this.renderList();
    }

    // The counts from the timeline this page holds, when it reaches back to the
    // marker; false when it does not (the server is asked instead)
    recount(roomKey) {
        const mark = this.marks.get(roomKey);
        const timeline = this.timelines.get(roomKey);
        if (!timeline?.loaded || timeline.newer || (timeline.more && (timeline.oldest ?? Infinity) > mark.read + 1))
            return false;
        const unread = timeline.sorted().filter((entry) => entry.type === 'message' && entry.seq > mark.read
            && !entry.deleted && key(entry.from ?? '') !== key(this.self ?? ''));
        mark.unread = unread.length;
        mark.mentions = unread.filter((entry) => this.mentionsSelf(entry)).length;
        return true;
    }

    // A message of the outbox was stored: it takes its place in the timeline
    // at once (its own event, which may come later, changes nothing then)
    delivered(item, reply) {
        if (!Number.isInteger(reply.seq))
            return;
        this.receiveEntry({
            type: 'message', room: item.to, seq: reply.seq, from: this.self, text: item.text,
            ts: reply.ts, nonce: item.nonce, reply_to: item.reply_to, file: item.file,
        });
    }

    // A join, leave or (room-settings.js) kick entry
    membershipChanged(roomKey, entry) {
        this.listChanges++;
        if (roomKey === this.current) {
            if (entry.event === 'join')
                this.members.joined(entry.user);
            else
                this.members.left(entry.user);
            this.renderMembers();
        }
        if (entry.user === this.self && entry.event !== 'join') {
            // Left on another tab, or removed: this one stops following the room
            const room = this.rooms.get(roomKey);
            if (room)
                room.joined = false;
            if (roomKey !== this.current)
                this.timelines.delete(roomKey);
            this.marks.delete(roomKey);
        }
        this.scheduleListRefresh();
    }

    roomCreated(event) {
        const room = event.room;
        if (!room || typeof room.name !== 'string')
            return;
        const roomKey = key(room.name);
        const known = this.rooms.get(roomKey);
        this.listChanges++;
        this.rooms.set(roomKey, { ...room, joined: known?.joined ?? room.owner === this.self });
        if (this.rooms.get(roomKey).joined)
            this.mark(roomKey);
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
            this.showGone(message);
        } else if (wasKnown && event.user !== this.self) {
            this.toast(message);
        }
    }

    // The room on screen is gone for this user (deleted, or the user was
    // removed from it): what was there stays readable, the notice below it
    showGone(message, hint = 'This room no longer exists.') {
        this.deleted = message;
        this.goneHint = hint;
        this.members.clear();
        this.renderChat();
        this.view.announce(message);
    }

    invited(event) {
        const name = typeof event.room === 'string' ? event.room : event.room?.name;
        if (!name)
            return;
        const from = event.from ?? 'Someone';
        const roomKey = key(name);
        // Listed with its Join until joined (1.1 lists it from the server too)
        if (!this.rooms.get(roomKey)?.joined) {
            const room = { ...(this.rooms.get(roomKey) ?? { name, private: true }), joined: false, invited: true, from };
            this.invitations.set(roomKey, room);
            this.listChanges++;
            this.rooms.set(roomKey, room);
            this.renderList();
            if (roomKey === this.current)
                this.renderChat();
            this.scheduleListRefresh();
        }
        this.inviteToasts.get(roomKey)?.hide();
        const shown = this.toast(`${from} invited you to the room ${name}.`, {
            action: 'Join', onAction: () => this.join(name),
        });
        if (shown)
            this.inviteToasts.set(roomKey, shown);
    }

    // A room joined (here, or in another tab: the list says so): its
    // invitation's toast is moot, and so is a refusal of it by name
    settleJoined(roomKey) {
        this.inviteToasts.get(roomKey)?.hide();
        this.inviteToasts.delete(roomKey);
        if (key($('join-name').value.trim()) === roomKey) {
            $('join-name').value = '';
            this.setJoinError(null);
        }
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
            delete room.invited;
            delete room.banned;
            this.listChanges++;
            this.rooms.set(roomKey, room);
            this.invitations.delete(roomKey);
            this.settleJoined(roomKey);
            // A newcomer starts with nothing unread: its marker is its join entry
            if (Number.isInteger(reply.read_seq))
                this.markers = true;
            this.marks.set(roomKey, { ...blankMark(), read: Number.isInteger(reply.read_seq) ? reply.read_seq : null });
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
                this.scheduleListRefresh();     // a full room: its count here may be old; banned: the list says so
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
        this.listChanges++;
        room.joined = false;
        this.timelines.delete(key(room.name));
        this.marks.delete(key(room.name));
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

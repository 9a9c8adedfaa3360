// Private messages: the conversations list (newest first, last message, unread
// badge), the conversation's chat (through the shared ChatView, messages sent
// through the outbox), read markers while a conversation is on screen and
// scrolled to its end, cleared on every tab by `read` events, and the unread
// count for the tab's title (PROTOCOL.md "Private messages"). Speaks through
// a ProtocolClient.

import { ChatView, Timeline, element, HISTORY_PAGE } from './chatview.js';
import { ChatController } from './chat-controller.js';
import { toast } from './toast.js';
import { MessageActions } from './message-actions.js';
import { changedMessage, describeChange, isChange, messageText } from './message-changes.js';

const PREVIEW_MAX = 80;             // characters of the last message shown in the list

const $ = (id) => document.getElementById(id);

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

// User names are unique without regard to case
const key = (name) => String(name).toLowerCase();

function timeOf(entry) {
    const time = new Date(entry?.ts ?? 0).getTime();
    return Number.isNaN(time) ? 0 : time;
}

function isMessage(entry) {
    return entry !== null && typeof entry === 'object' && Number.isInteger(entry.seq)
        && typeof entry.from === 'string' && typeof entry.to === 'string';
}

export class PmController extends ChatController {
    // nav: the Navigator (which chat is open, the phone layout);
    // presenceOf(name): { online, last_seen } or undefined, for the header;
    // outbox: the Outbox messages go through; unreadChanged(): the counts
    // changed (the tab's title follows)
    constructor(client, { nav, outbox, unreadChanged = () => {}, presenceOf = () => undefined }) {
        super();
        this.client = client;
        this.nav = nav;
        this.outbox = outbox;
        this.unreadChanged = unreadChanged;
        this.presenceOf = presenceOf;
        this.self = null;
        this.conversations = new Map();     // key(with) -> { with, last, unread, read_seq?, last_seq? }
        this.names = new Map();             // key(with) -> the name as the server spells it
        this.timelines = new Map();         // key(with) -> Timeline, for conversations this page opened
        this.current = null;                // key(with) of the conversation on screen
        this.readSent = new Map();          // key(with) -> the highest seq this page sent pm.read for
        this.readRequests = new Map();      // key(with) -> number of the newest pm.read on its way
        this.listTimer = null;
        this.view = new ChatView({
            box: 'pm-timeline', entries: 'pm-entries', top: 'pm-top', notice: 'pm-notice',
            announcer: 'pm-announcer', form: 'pm-composer', input: 'pm-text', send: 'pm-send',
            error: 'pm-composer-error', hint: 'pm-hint', jump: 'pm-jump', olderButton: 'pm-load-older',
        }, {
            self: () => this.self,
            send: (text, fields) => this.outbox.add('pm', this.nameOf(this.current), text, fields),
            pending: () => (this.current ? this.outbox.pending('pm', this.current) : []),
            retry: (nonce) => this.outbox.retry(nonce),
            discard: (nonce) => this.outbox.discard(nonce),
            seen: () => this.markRead(),
            loadOlder: () => this.loadOlder(),
            loadNewer: () => this.loadNewer(),
            present: () => this.backToPresent(),
            beginning: 'The beginning of the conversation.',
        });
        this.actions = new MessageActions(client, this.view, 'pm', {
            self: () => this.self, name: () => this.nameOf(this.current),
            timeline: () => this.timelines.get(this.current), canDeleteAny: () => false,
            receive: (entry) => this.receive(entry), render: () => this.renderTimeline(),
            history: (page) => this.history(this.current, page),
        });
        outbox.register('pm', {
            changed: (conversationKey) => {
                if (conversationKey === this.current)
                    this.renderTimeline();
            },
            delivered: (item, reply) => this.delivered(item, reply),
            failed: (item) => {
                // Said on screen, or by one toast for a chat elsewhere however many of its messages fail
                if (item.key === this.current)
                    this.view.announce(`Not sent: ${item.error}`);
                else if (outbox.pending('pm', item.key).filter((each) => each.state === 'failed').length === 1)
                    toast(`Your message to ${item.to} was not sent: ${item.error}`,
                        { action: 'Open', onAction: () => this.open(item.to) });
            },
        });
        this.wire();
    }

    // --- lifecycle, called by app.js ------------------------------------------

    // Signed in (again): the list with its counts, and every conversation
    // this page holds caught up from its last seen seq, not only the open one
    async enter(user) {
        if (this.self !== user) {
            this.self = user;
            this.reset();
        }
        this.readSent.clear();
        await this.refreshList();
        const work = [];
        for (const [conversationKey, timeline] of [...this.timelines]) {
            if (timeline.loaded) {
                work.push(this.catchUp(conversationKey));
            } else if (conversationKey === this.current) {
                const fresh = new Timeline();
                this.timelines.set(this.current, fresh);
                this.view.show(this.current, fresh);
                work.push(this.loadNewest(this.current, fresh));
            } else {
                this.timelines.delete(conversationKey);     // loads when opened
            }
        }
        await Promise.all(work);
    }

    reset() {
        this.conversations.clear();
        this.names.clear();
        this.timelines.clear();
        this.readSent.clear();
        this.readRequests.clear();
        this.current = null;
        this.view.hide();
        this.view.forgetDrafts();
        this.renderList();
        this.renderView();
    }

    leaveDashboard() {
        this.self = null;
        this.reset();
    }

    setOnline(online) {
        $('conversations-panel').classList.toggle('stale', !online);
        this.view.setOnline(online);
    }

    partners() {
        return [...this.conversations.values()].map((conversation) => conversation.with);
    }

    get isOpen() {
        return this.current !== null;
    }

    nameOf(conversationKey) {
        return this.names.get(conversationKey) ?? this.conversations.get(conversationKey)?.with
            ?? conversationKey;
    }

    // Presence changed: the header of the open conversation says so
    updatePresence() {
        if (this.current)
            this.renderHeader();
    }

    // --- the conversations list -----------------------------------------------

    async refreshList() {
        try {
            const reply = await this.settledList(() => this.client.request('pm.conversations'));
            const fresh = new Map();
            for (const conversation of reply.conversations ?? []) {
                if (typeof conversation?.with !== 'string')
                    continue;
                const conversationKey = key(conversation.with);
                fresh.set(conversationKey, {
                    with: conversation.with,
                    last: isMessage(conversation.last) ? conversation.last : null,
                    unread: Number(conversation.unread) || 0,
                    // 1.1: the marker and the newest seq; absent from a 1.0 server
                    read_seq: Number.isInteger(conversation.read_seq) ? conversation.read_seq : null,
                    last_seq: Number.isInteger(conversation.last_seq) ? conversation.last_seq : null,
                });
                this.names.set(conversationKey, conversation.with);
            }
            this.conversations = fresh;
            $('conversations-error').hidden = true;
        } catch (error) {
            if (error.code === 'disconnected')
                return;
            $('conversations-error').textContent = `The conversations could not be listed: ${error.message}`;
            $('conversations-error').hidden = false;
        }
        this.renderList();
        this.markRead();
    }

    get totalUnread() {
        let total = 0;
        for (const conversation of this.conversations.values())
            total += conversation.unread;
        return total;
    }

    renderList() {
        const conversations = [...this.conversations.values()]
            .sort((a, b) => timeOf(b.last) - timeOf(a.last) || key(a.with).localeCompare(key(b.with)));
        const unread = this.totalUnread;
        $('conversations-count').textContent = unread > 0 ? `${unread} unread` : '';
        $('conversations-empty').hidden = conversations.length > 0 || !$('conversations-error').hidden;
        $('conversations').replaceChildren(...conversations.map((each) => this.listItem(each)));
        this.unreadChanged();
    }

    listItem(conversation) {
        const conversationKey = key(conversation.with);
        const item = element('li', 'list-group-item p-0');
        item.dataset.with = conversation.with;
        item.dataset.unread = String(conversation.unread);
        const button = element('button', 'conversation-item btn w-100 text-start d-flex align-items-start gap-2 rounded-0');
        button.type = 'button';
        const selected = conversationKey === this.current;
        button.classList.toggle('active', selected);
        if (selected)
            button.setAttribute('aria-current', 'true');

        const text = element('span', 'flex-grow-1 conversation-text');
        const name = element('span', 'd-block text-truncate conversation-name');
        name.append(element('span', 'visually-hidden', 'Conversation with '), document.createTextNode(conversation.with));
        text.append(name);
        const last = conversation.last;
        if (last) {
            const preview = element('small', 'd-block text-truncate conversation-preview');
            const said = messageText(last);
            const body = said.length > PREVIEW_MAX ? `${said.slice(0, PREVIEW_MAX)}…` : said;
            if (key(last.from) === key(this.self ?? ''))
                preview.append(element('span', 'text-body-secondary', 'You: '));
            preview.append(last.deleted ? element('em', null, 'message deleted') : document.createTextNode(body));
            text.append(preview);
        }

        const side = element('span', 'd-flex flex-column align-items-end gap-1 flex-none');
        if (last)
            side.append(this.shortTime(last.ts));
        if (conversation.unread > 0) {
            const badge = element('span', 'badge rounded-pill text-bg-primary unread-badge', String(conversation.unread));
            badge.append(element('span', 'visually-hidden', ' unread'));
            side.append(badge);
        }
        button.append(text, side);
        button.addEventListener('click', () => this.open(conversation.with));
        item.append(button);
        return item;
    }

    shortTime(ts) {
        const time = element('time', 'small text-body-secondary conversation-time');
        const date = new Date(ts);
        if (Number.isNaN(date.getTime()))
            return time;
        const today = new Date().toDateString() === date.toDateString();
        time.dateTime = ts;
        time.textContent = (today ? timeFormat : dayFormat).format(date);
        time.title = fullFormat.format(date);
        return time;
    }

    // --- the conversation view ------------------------------------------------

    // at: the seq of a message to open the conversation at (a search result)
    async open(name, { focus = true, at = null } = {}) {
        const conversationKey = key(name);
        if (!this.names.has(conversationKey))
            this.names.set(conversationKey, name);
        this.nav.opened('pm', this.nameOf(conversationKey));
        this.current = conversationKey;
        this.showError(null);
        let timeline = this.timelines.get(conversationKey);
        // A window into the past is not what the conversation opens at otherwise
        const fresh = !timeline || (at !== null ? !this.serves(timeline, at) : timeline.loaded && timeline.newer);
        const around = fresh && at !== null;
        if (fresh) {
            timeline = new Timeline();
            this.timelines.set(conversationKey, timeline);
        }
        this.view.show(conversationKey, timeline, around ? {} : this.lineOnOpen(conversationKey));
        this.renderList();
        this.renderView();
        if (focus)
            $('pm-text').focus();
        if (timeline.loaded) {
            this.markRead();
            await this.catchUp(conversationKey);
            if (at !== null && conversationKey === this.current)
                this.view.reveal(at);
        } else if (around) {
            await this.loadAround(conversationKey, timeline, at);
        } else if (fresh) {
            await this.loadNewest(conversationKey, timeline);
        }
    }

    // Where the "New messages" line goes: after the read marker (1.1), or
    // above the messages counted unread (1.0)
    lineOnOpen(conversationKey) {
        const conversation = this.conversations.get(conversationKey);
        if (!conversation || conversation.unread === 0)
            return {};
        return conversation.read_seq !== null ? { readSeq: conversation.read_seq } : { unread: conversation.unread };
    }

    // The main area goes to a room, or back to the list
    close() {
        if (this.current === null)
            return;
        this.current = null;
        this.view.hide();
        this.renderList();
        this.renderView();
    }

    async loadNewest(conversationKey, timeline) {
        try {
            const reply = await this.history(conversationKey, { limit: HISTORY_PAGE });
            if (this.timelines.get(conversationKey) !== timeline)
                return;
            this.startTimeline(conversationKey, timeline, reply.messages ?? [], Boolean(reply.more));
        } catch (error) {
            if (this.timelines.get(conversationKey) === timeline)
                this.timelines.delete(conversationKey);
            this.failed(conversationKey, error);
        }
    }

    // The first page arrived: what came while it was on its way is merged
    startTimeline(conversationKey, timeline, entries, more) {
        this.absorb(conversationKey, timeline.addNew(entries));
        timeline.more = more;
        timeline.loaded = true;
        const buffered = timeline.buffered;
        timeline.buffered = [];
        if (conversationKey === this.current)
            this.renderTimeline({ toBottom: true });
        for (const entry of buffered)
            this.receive(entry);
        this.markRead();
    }

    failed(conversationKey, error) {
        if (error.code === 'disconnected')
            return;
        if (conversationKey === this.current)
            this.showError(error.message);
    }

    showError(text) {
        $('pm-error').textContent = text ?? '';
        $('pm-error').hidden = !text;
    }

    renderView() {
        const open = this.current !== null;
        $('pm-view').hidden = !open;
        this.nav.renderPlaceholder();
        if (open) {
            this.renderHeader();
            this.renderTimeline({ toBottom: true });
        }
    }

    renderHeader() {
        const name = this.nameOf(this.current);
        $('pm-title').textContent = name;
        const state = this.presenceOf(name);
        $('pm-facts').textContent = state === undefined ? 'Private conversation'
            : `Private conversation · ${state.online ? 'online' : 'offline'}`;
        this.view.setWritable(true, `Message ${name}`);
    }

    renderTimeline(options = {}) {
        const timeline = this.timelines.get(this.current);
        const empty = timeline?.loaded && timeline.entries.size === 0;
        this.view.render({ ...options,
            notice: empty ? `No messages yet: say hello to ${this.nameOf(this.current)}.` : null });
    }

    // --- read markers ---------------------------------------------------------

    // The user sees the newest messages: the conversation is on screen, on a
    // visible tab, scrolled to its end
    get onScreen() {
        return this.current !== null && document.visibilityState === 'visible' && this.view.nearBottom
            && !this.timelines.get(this.current)?.newer;
    }

    // The open conversation, seen, is read up to its newest message
    async markRead() {
        if (!this.onScreen)
            return;
        const conversationKey = this.current;
        const timeline = this.timelines.get(conversationKey);
        const newest = timeline?.loaded ? timeline.newest : null;
        if (newest === null || newest <= (this.readSent.get(conversationKey) ?? 0))
            return;
        const conversation = this.conversations.get(conversationKey);
        // One's own message needs no marker when nothing else is unread
        if (conversation?.unread === 0 && key(timeline.entries.get(newest).from) === key(this.self))
            return;
        this.readSent.set(conversationKey, newest);
        this.listChanges++;
        if (conversation && conversation.unread > 0) {
            conversation.unread = 0;
            this.renderList();
        }
        const number = (this.readRequests.get(conversationKey) ?? 0) + 1;
        this.readRequests.set(conversationKey, number);
        try {
            const reply = await this.client.request('pm.read',
                { with: this.nameOf(conversationKey), seq: newest });
            if (conversation && Number.isInteger(reply.read_seq))       // 1.1
                conversation.read_seq = Math.max(conversation.read_seq ?? 0, reply.read_seq);
            // Only the answer to the newest pm.read is current
            if (this.readRequests.get(conversationKey) === number && conversation
                && Number.isInteger(reply.unread) && this.conversations.get(conversationKey) === conversation) {
                conversation.unread = reply.unread;
                this.renderList();
            }
        } catch (error) {
            if (this.readSent.get(conversationKey) === newest)
                this.readSent.delete(conversationKey);
            if (error.code !== 'disconnected')
                console.warn('Parley: pm.read failed:', error.message);
        }
    }

    // Another tab or device of this user read a conversation: `pm_read` with
    // the count (1.0), or `read` with the marker (1.1)
    readElsewhere(event) {
        if (typeof event.with !== 'string')
            return;
        const conversation = this.conversations.get(key(event.with));
        if (!conversation)
            return;
        this.listChanges++;
        if (Number.isInteger(event.seq))
            conversation.read_seq = Math.max(conversation.read_seq ?? 0, event.seq);
        if (Number.isInteger(event.unread))
            conversation.unread = event.unread;
        else if (Number.isInteger(event.seq) && event.seq >= (conversation.last_seq ?? conversation.last?.seq ?? 0))
            conversation.unread = 0;
        else if (Number.isInteger(event.seq))
            this.scheduleListRefresh();
        else
            return;
        this.renderList();
    }

    // The counts from the server, once for a burst of events
    scheduleListRefresh() {
        clearTimeout(this.listTimer);
        this.listTimer = setTimeout(() => this.refreshList(), 300);
    }

    // --- scroll-back and gaps -------------------------------------------------

    history(conversationKey, page) {
        return this.client.request('pm.history', { with: this.nameOf(conversationKey), ...page });
    }

    // --- events ---------------------------------------------------------------

    // Messages of a conversation came in (live, caught up or a page of
    // history): those of the outbox among them leave it (each message names
    // its conversation)
    absorb(_conversationKey, entries) {
        for (const entry of entries)
            if (isMessage(entry) && !isChange(entry))
                this.outbox.arrived('pm', key(key(entry.from) === key(this.self ?? '') ? entry.to : entry.from), entry);
    }

    // A message of the outbox was stored: it takes its place at once (its own
    // event, which may come later, changes nothing then)
    delivered(item, reply) {
        if (!Number.isInteger(reply.seq) || !this.self)
            return;
        this.receive({ type: 'pm', from: this.self, to: item.to, seq: reply.seq, text: item.text,
            ts: reply.ts, nonce: item.nonce, reply_to: item.reply_to, file: item.file });
    }

    wire() {
        this.client.on('pm', (event) => this.receive(event));
        this.client.on('pm_read', (event) => this.readElsewhere(event));
        this.client.on('read', (event) => this.readElsewhere(event));
        document.addEventListener('visibilitychange', () => this.markRead());
    }

    // A private message to or from this user, from any of their sessions
    receive(event) {
        if (!this.self || !isMessage(event))
            return;
        if (isChange(event)) {
            this.receiveChange(event);
            return;
        }
        const own = key(event.from) === key(this.self);
        const other = own ? event.to : event.from;
        const conversationKey = key(other);
        this.names.set(conversationKey, other);
        this.absorb(conversationKey, [event]);

        let conversation = this.conversations.get(conversationKey);
        const known = conversation?.last?.seq ?? 0;
        this.listChanges++;
        if (!conversation) {
            conversation = { with: other, last: null, unread: 0, read_seq: null, last_seq: null };
            this.conversations.set(conversationKey, conversation);
        }
        if (event.seq > known) {
            conversation.last = event;
            conversation.last_seq = Math.max(conversation.last_seq ?? 0, event.seq);
            if (!own)
                conversation.unread += 1;
        }

        this.intoTimeline(conversationKey, event, own ? null : `${event.from}: ${messageText(event)}`);
        if (!own && conversationKey !== this.current && event.seq > known)
            this.view.announce(`New message from ${event.from}.`);
        this.renderList();
        if (conversationKey === this.current)
            this.markRead();
    }

    // An edit, deletion or reaction (1.1), by either party: the message
    // changes in place (in the timeline, and in the list when it is the last)
    receiveChange(event) {
        const own = key(event.from) === key(this.self);
        const conversationKey = key(own ? event.to : event.from);
        const conversation = this.conversations.get(conversationKey);
        this.listChanges++;
        if (conversation) {
            conversation.last_seq = Math.max(conversation.last_seq ?? 0, event.seq);
            if (conversation.last?.seq === event.target)
                conversation.last = changedMessage(conversation.last, event) ?? conversation.last;
            if (event.type === 'delete' && !own)
                this.scheduleListRefresh();     // an unread message may be gone: the server's count
        }
        this.intoTimeline(conversationKey, event, own ? null : describeChange(event));
        this.renderList();
        if (conversationKey === this.current)
            this.markRead();
    }

    // A live entry into its conversation's timeline, if this page holds one
    // (kept aside while its first page loads); said aloud when on screen
    intoTimeline(conversationKey, event, spoken) {
        const timeline = this.timelines.get(conversationKey);
        if (timeline && !timeline.loaded) {
            timeline.buffered.push(event);
        } else if (timeline?.newer) {
            // A window into the past (chat-controller.js) takes no live entry: it comes with
            // the pages below; a change of a message it shows applies
            const changed = timeline.applyLive(event);
            if (changed && conversationKey === this.current)
                this.renderTimeline();
            else if (conversationKey === this.current)
                this.view.renderJump();
        } else if (timeline) {
            const newest = timeline.newest;
            if (timeline.add([event]) > 0) {
                if (newest !== null && event.seq > newest + 1)
                    this.catchUp(conversationKey);      // a gap: something was missed
                if (conversationKey === this.current) {
                    this.view.arrived([event]);
                    if (spoken)
                        this.view.announce(spoken);
                }
            }
        }
    }
}

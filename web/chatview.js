// The chat view shared by rooms and private conversations: one timeline on
// screen (messages grouped by author, day separators, a "New messages" line at
// the read marker, a "Jump to newest" button when scrolled up, older pages on
// scrolling to the top, the messages of the outbox still on their way below
// the rest) and its composer (grows with the draft, Enter sends, Shift+Enter
// is a new line, Escape leaves it, counts characters as the server does; a
// message written offline waits in the outbox). What is specific to a room or
// a conversation (who may write, what to fetch) stays in rooms.js and pm.js.

import { highlightMentions } from './mentions.js';
import { formatMessage } from './format.js';
import { applyChanges, isChange, isMessage } from './message-changes.js';

export const TEXT_MAX = 4000;
export const HISTORY_PAGE = 50;     // entries per history page
const CATCH_UP_PAGE = 200;
const CATCH_UP_ROUNDS = 20;         // at most this many pages to fill one gap
const NEAR_BOTTOM_PX = 80;          // closer than this to the end, new entries scroll into view
const NEAR_TOP_PX = 40;             // closer than this to the top, older entries are fetched
const GROUP_MS = 5 * 60 * 1000;     // a message this close to the one before by the same author joins its group
const FLASH_MS = 2000;              // how long a message opened at (a search result) stays highlighted
const WARN_FROM = TEXT_MAX - 500;   // the count shows from this many characters

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const yearDayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full' });

// Unicode characters (code points), as the server counts them
export const characters = (text) => [...text].length;

export function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className)
        node.className = className;
    if (text !== undefined)
        node.textContent = text;
    return node;
}

function dateOf(ts) {
    const date = new Date(ts ?? NaN);
    return Number.isNaN(date.getTime()) ? null : date;
}

export function timeElement(ts, className = 'text-body-secondary') {
    const time = element('time', className);
    const date = dateOf(ts);
    if (!date)
        return time;
    time.dateTime = ts;
    time.textContent = timeFormat.format(date);
    time.title = fullFormat.format(date);
    return time;
}

function dayLabel(date, now = new Date()) {
    const day = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
    const days = Math.round((day(now) - day(date)) / 86400000);
    if (days === 0)
        return 'Today';
    if (days === 1)
        return 'Yesterday';
    return (date.getFullYear() === now.getFullYear() ? dayFormat : yearDayFormat).format(date);
}

// A coloured initial beside the first message of a group (decoration only)
function avatar(name) {
    let hash = 0;
    for (const char of String(name))
        hash = (hash * 31 + char.codePointAt(0)) >>> 0;
    const node = element('span', `avatar avatar-${hash % 8}`, [...String(name)][0]?.toUpperCase() ?? '?');
    node.setAttribute('aria-hidden', 'true');
    return node;
}

// One timeline (a room's or a conversation's) as far as this page knows it:
// entries by seq, and whether older ones exist on the server
export class Timeline {
    constructor() {
        this.entries = new Map();       // seq -> entry
        this.loaded = false;            // the newest page has arrived
        this.buffered = [];             // entries that arrived while the first page was on its way
        this.more = false;              // older entries exist before oldest
        this.newer = false;             // a window into the past (opened at a message): newer entries
                                        // exist after newest, fetched by loadNewer, not caught up
        this.loadingOlder = false;
        this.loadingNewer = false;
        this.appliedLive = new Set();   // seqs of the live changes a window applied (not again from a page)
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
        return this.addNew(entries).length;
    }

    // Adds entries; returns those that were new. Edits, deletions and
    // reactions among them change the messages held before them
    addNew(entries) {
        const added = [];
        for (const entry of entries) {
            if (!Number.isInteger(entry?.seq) || this.entries.has(entry.seq))
                continue;
            this.entries.set(entry.seq, entry);
            added.push(entry);
        }
        applyChanges(this.entries, added.filter((entry) => !this.appliedLive.has(entry.seq)),
            new Set(added.map((entry) => entry.seq)));
        return added;
    }

    // A live entry of a window into the past, which holds no entry after its
    // newest: an edit, deletion or reaction of a message it shows changes it
    // now (once, and not again when the page that has it comes); true then
    applyLive(entry) {
        if (!isChange(entry) || this.entries.has(entry.seq) || this.appliedLive.has(entry.seq))
            return false;
        this.appliedLive.add(entry.seq);
        return applyChanges(this.entries, [entry], new Set()).length > 0;
    }

    sorted() {
        return [...this.entries.values()].sort((a, b) => a.seq - b.seq);
    }

    get canLoadOlder() {
        return this.loaded && this.more && !this.loadingOlder && this.oldest !== null;
    }

    // The page before the oldest entry. fetch({ before, limit }) resolves with
    // a history reply ({ messages, more }); its failure is thrown
    async loadOlder(fetch, limit = HISTORY_PAGE) {
        this.loadingOlder = true;
        try {
            const reply = await fetch({ before: this.oldest, limit });
            this.add(reply.messages ?? []);
            this.more = Boolean(reply.more);
        } finally {
            this.loadingOlder = false;
        }
    }

    get canLoadNewer() {
        return this.loaded && this.newer && !this.loadingNewer && this.newest !== null;
    }

    // The page after the newest entry of a window into the past; returns the
    // entries that were new. Once a page says nothing newer exists, the
    // window has met the present and is an ordinary timeline again
    async loadNewer(fetch, limit = HISTORY_PAGE) {
        this.loadingNewer = true;
        try {
            const reply = await fetch({ after: this.newest, limit });
            const added = this.addNew(reply.messages ?? []);
            this.newer = Boolean(reply.more);
            return added;
        } finally {
            this.loadingNewer = false;
        }
    }

    // The seq after which entries are missing: before the first hole in the
    // seqs (a live entry that came past a gap is already in), else the newest
    get caughtUpTo() {
        const seqs = [...this.entries.keys()].sort((a, b) => a - b);
        const hole = seqs.findIndex((seq, index) => index > 0 && seq !== seqs[index - 1] + 1);
        return hole > 0 ? seqs[hole - 1] : seqs.at(-1) ?? 0;
    }

    // What came after the newest entry, page by page while `more` (a gap, or a
    // reconnection); fetch({ after, limit }) as above. Returns the entries that
    // were new, or null when a catch-up is already on its way
    async catchUp(fetch) {
        // A window into the past is not caught up: its newer pages come as the reader scrolls down
        if (!this.loaded || this.catchingUp || this.newer)
            return null;
        this.catchingUp = true;
        const added = [];
        try {
            let after = this.caughtUpTo;
            for (let round = 0; round < CATCH_UP_ROUNDS; round++) {
                const reply = await fetch({ after, limit: CATCH_UP_PAGE });
                const page = reply.messages ?? [];
                added.push(...this.addNew(page));
                const last = page.at(-1)?.seq;
                if (!reply.more || !Number.isInteger(last) || last <= after)
                    break;
                after = last;
            }
        } finally {
            this.catchingUp = false;
        }
        return added;
    }
}

export class ChatView {
    // ids: the elements' ids (box, entries, top, notice, announcer, form, input,
    // send, error, hint, jump, olderButton); self(): the signed-in user;
    // send(text): puts the message in the outbox; pending(): the outbox's
    // messages of the chat shown; retry(nonce) and discard(nonce): the buttons
    // of a failed one; seen(): the newest entries are in sight (scrolled to the
    // bottom); loadOlder(): fetch the page before the oldest; loadNewer() and
    // present(): in a window into the past, the page after the newest, and
    // back to the newest entries; beginning: the sentence at the top of a
    // timeline that has nothing older
    constructor(ids, { self, send, pending = () => [], retry = () => {}, discard = () => {}, seen = () => {},
        loadOlder, loadNewer = () => {}, present = () => {}, beginning }) {
        this.el = Object.fromEntries(Object.entries(ids).map(([name, id]) =>
            [name, name === 'olderButton' ? id : document.getElementById(id)]));
        this.self = self;
        this.onSend = send;
        this.pending = pending;
        this.onRetry = retry;
        this.onDiscard = discard;
        this.onSeen = seen;
        this.onLoadOlder = loadOlder;
        this.onLoadNewer = loadNewer;
        this.onPresent = present;
        this.beginning = beginning;
        this.timeline = null;
        this.key = null;                // which room or conversation is shown
        this.drafts = new Map();        // key -> the draft left there
        this.unreadOnOpen = 0;          // messages unread when it was opened: the line goes above them
        this.readOnOpen = null;         // or (1.1) the read marker when it was opened: the line goes after it
        this.newFrom = null;            // seq of the first message that arrived unseen
        this.unseen = 0;                // messages below the visible part
        this.writable = false;
        this.online = true;
        this.toBottomNext = false;      // the next render scrolls to the end (a message just written)
        this.decorator = null;          // MessageActions: replies, edits, deletions, reactions (message-actions.js)
        this.flashSeq = null;           // the message opened at, highlighted for a moment
        this.flashTimer = null;
        this.attachments = null;        // Attachments: the file of a message, the composer's upload (attachments.js)
        this.wire();
    }

    // --- what is shown ----------------------------------------------------------

    // Another room or conversation takes the view (timeline may still be
    // loading); unread: how many of the newest are unread (1.0), or readSeq:
    // the read marker (1.1), for the "New messages" line
    show(key, timeline, { unread = 0, readSeq = null } = {}) {
        if (key !== this.key) {
            if (this.key !== null)
                this.drafts.set(this.key, this.el.input.value);
            this.el.input.value = this.drafts.get(key) ?? '';
            this.el.error.textContent = '';
            this.newFrom = null;
            this.unseen = 0;
            this.flashSeq = null;
            this.unreadOnOpen = unread;
            this.readOnOpen = readSeq;
            this.grow();
        }
        this.key = key;
        this.timeline = timeline;
        this.shown();
    }

    hide() {
        if (this.key !== null)
            this.drafts.set(this.key, this.el.input.value);
        this.key = null;
        this.timeline = null;
        this.shown();
    }

    // Tells the parts beside the view (typing line, mute button, mention list)
    // which chat it shows now
    shown() {
        this.el.form.dispatchEvent(new CustomEvent('parley:chat', { bubbles: true, detail: { key: this.key } }));
    }

    forgetDrafts() {
        this.drafts.clear();
        this.attachments?.forget();
        this.el.input.value = '';
        this.grow();
    }

    get nearBottom() {
        const box = this.el.box;
        return box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;
    }

    // notice: a sentence instead of the timeline's own ("Join this room…"), or
    // null; after: nodes shown after the entries (a deletion notice)
    render({ toBottom = false, keepFromBottom = null, notice = null, after = [] } = {}) {
        this.decorator?.beforeRender();
        const box = this.el.box;
        const timeline = this.timeline;
        const entries = timeline?.loaded ? timeline.sorted() : [];
        const wasNearBottom = this.nearBottom;
        toBottom ||= this.toBottomNext;
        this.toBottomNext = false;
        if ((this.unreadOnOpen > 0 || this.readOnOpen !== null) && timeline?.loaded && this.markUnreadOnOpen(entries))
            toBottom = false;
        // The outbox's messages go after the newest entries, not after a window into the past
        const pending = this.key === null || timeline?.newer ? [] : this.pending().map((item) => this.pendingItem(item));
        const newer = timeline?.loaded && timeline.newer ? [this.newerItem(timeline)] : [];
        this.el.entries.replaceChildren(...this.items(entries), ...newer, ...pending, ...after);

        const text = notice ?? (!timeline || !timeline.loaded ? (pending.length ? null : 'Loading…')
            : entries.length === 0 && after.length === 0 && pending.length === 0 ? 'No messages yet: say hello.' : null);
        this.el.notice.textContent = text ?? '';
        this.el.notice.hidden = !text;
        this.renderTop(timeline, entries.length > 0 && notice === null);

        const line = this.el.entries.querySelector('.new-line');
        if (keepFromBottom !== null)
            box.scrollTop = box.scrollHeight - keepFromBottom;
        else if (toBottom || (wasNearBottom && !timeline?.newer))
            box.scrollTop = box.scrollHeight;
        else if (line && this.placeLine)
            box.scrollTop = Math.max(0, line.offsetTop - 8);
        this.placeLine = false;
        if (this.nearBottom)
            this.unseen = 0;
        this.renderJump();
        this.decorator?.afterRender();
    }

    // The line goes above the first message of others after the read marker
    // (1.1), or above the last `unreadOnOpen` of them (1.0); true when placed
    markUnreadOnOpen(entries) {
        const others = entries.filter((entry) => isMessage(entry) && entry.from !== this.self());
        const first = this.readOnOpen !== null ? others.find((entry) => entry.seq > this.readOnOpen)
            : others[Math.max(0, others.length - this.unreadOnOpen)];
        this.newFrom = first?.seq ?? null;
        this.unreadOnOpen = 0;
        this.readOnOpen = null;
        this.placeLine = this.newFrom !== null;
        return this.placeLine;
    }

    renderTop(timeline, show) {
        const top = this.el.top;
        top.hidden = !show;
        if (!show)
            return;
        top.replaceChildren();
        if (timeline.loadingOlder) {
            top.textContent = 'Loading older messages…';
        } else if (timeline.more) {
            const button = element('button', 'btn btn-link btn-sm', 'Load older messages');
            button.type = 'button';
            button.id = this.el.olderButton;
            button.addEventListener('click', () => this.onLoadOlder());
            top.append(button);
        } else {
            top.textContent = this.beginning;
        }
    }

    items(entries) {
        const items = [];
        let previous = null;
        for (const entry of entries) {
            if (isChange(entry))
                continue;       // shown in the message it changes
            const date = dateOf(entry.ts);
            const prevDate = dateOf(previous?.ts);
            const newDay = date && (!prevDate || date.toDateString() !== prevDate.toDateString());
            if (newDay)
                items.push(this.dayItem(date));
            const newLine = entry.seq === this.newFrom;
            if (newLine)
                items.push(this.newLineItem());
            const grouped = !newDay && !newLine && previous?.type !== 'system' && entry.type !== 'system'
                && previous?.from === entry.from && date && prevDate && date - prevDate < GROUP_MS;
            items.push(entry.type === 'system' ? this.noticeItem(entry.message ?? '', `entry-${entry.event ?? 'system'}`, entry)
                : this.messageItem(entry, grouped));
            previous = entry;
        }
        return items;
    }

    // The end of a window into the past: newer messages load on scrolling down
    newerItem(timeline) {
        const item = element('li', 'timeline-newer small text-body-secondary text-center my-2');
        if (timeline.loadingNewer) {
            item.textContent = 'Loading newer messages…';
            return item;
        }
        const button = element('button', 'btn btn-link btn-sm', 'Load newer messages');
        button.type = 'button';
        button.addEventListener('click', () => this.onLoadNewer());
        item.append(button);
        return item;
    }

    // The message seq in the middle of the view, highlighted for a moment
    // (a search result opened); false when it is not on screen
    reveal(seq) {
        const node = this.el.entries.querySelector(`li.entry[data-seq="${seq}"]`);
        if (!node)
            return false;
        clearTimeout(this.flashTimer);
        this.flashSeq = seq;
        node.classList.add('flash');
        node.scrollIntoView({ block: 'center' });
        this.flashTimer = setTimeout(() => {
            this.flashSeq = null;
            this.el.entries.querySelector(`li.entry[data-seq="${seq}"]`)?.classList.remove('flash');
        }, FLASH_MS);
        return true;
    }

    dayItem(date) {
        const item = element('li', 'day-separator');
        item.append(element('span', 'day-label', dayLabel(date)));
        return item;
    }

    newLineItem() {
        const item = element('li', 'new-line');
        item.append(element('span', 'new-line-label', 'New messages'));
        return item;
    }

    messageItem(entry, grouped) {
        const own = entry.from === this.self();
        // 1.1: the entry names the members it mentions; one's own name stands out
        const me = String(this.self() ?? '').toLowerCase();
        const mentioned = Array.isArray(entry.mentions) && entry.mentions.some((name) => String(name).toLowerCase() === me);
        const item = element('li', `entry entry-message${own ? ' own' : ''}${grouped ? ' grouped' : ''}${mentioned ? ' mentions-me' : ''}${entry.seq === this.flashSeq ? ' flash' : ''}`);
        item.dataset.seq = String(entry.seq);
        item.dataset.from = entry.from;
        const body = element('div', 'entry-body');
        if (grouped) {
            // The name and time of a grouped message, for screen readers and on hover
            body.append(element('span', 'visually-hidden', `${entry.from}: `));
            item.append(timeElement(entry.ts, 'side-time'));
        } else {
            item.append(avatar(entry.from));
            const meta = element('div', 'meta');
            const from = element('span', 'from', own ? 'You' : entry.from);
            if (own)
                from.title = entry.from;
            meta.append(from, document.createTextNode(' '), timeElement(entry.ts, 'meta-time'));
            body.append(meta);
        }
        const text = element('div', 'text');
        text.append(...formatMessage(entry.text));
        highlightMentions(text, entry.mentions, this.self());
        body.append(text);
        item.append(body);
        this.attachments?.message(item, entry, body, text);
        this.decorator?.message(item, entry, body, text);
        return item;
    }

    // A message of the outbox: sending, waiting for the connection, or failed
    // with Retry and Discard
    pendingItem(item) {
        const failed = item.state === 'failed';
        const node = element('li', `entry entry-message own pending${failed ? ' failed' : ''}`);
        node.dataset.nonce = item.nonce;
        node.dataset.state = item.state;
        node.append(avatar(this.self() ?? '?'));
        const body = element('div', 'entry-body');
        const meta = element('div', 'meta');
        const status = failed ? `Not sent: ${item.error ?? 'refused.'}`
            : this.online ? 'Sending…' : 'Waiting for the connection…';
        meta.append(element('span', 'from', 'You'), document.createTextNode(' '),
            element('span', `pending-status${failed ? ' text-danger' : ''}`, status));
        body.append(meta);
        const text = element('div', 'text');
        text.append(...formatMessage(item.text));
        body.append(text);
        this.attachments?.message(node, item, body, text);
        this.decorator?.pending(item, body, text);
        if (failed) {
            const actions = element('div', 'pending-actions d-flex gap-2 mt-1');
            const retry = element('button', 'btn btn-sm btn-outline-primary pending-retry', 'Retry');
            retry.type = 'button';
            retry.addEventListener('click', () => this.onRetry(item.nonce));
            const discard = element('button', 'btn btn-sm btn-outline-secondary pending-discard', 'Discard');
            discard.type = 'button';
            discard.addEventListener('click', () => this.onDiscard(item.nonce));
            actions.append(retry, discard);
            body.append(actions);
        }
        node.append(body);
        return node;
    }

    noticeItem(message, className, entry = null) {
        const item = element('li', `entry entry-system ${className}`);
        if (entry?.seq)
            item.dataset.seq = String(entry.seq);
        item.append(element('span', 'notice-text', message));
        if (entry?.ts)
            item.append(document.createTextNode(' '), timeElement(entry.ts));
        return item;
    }

    // --- new entries while scrolled up ------------------------------------------

    // Live entries were added to the timeline on screen
    arrived(entries) {
        const fromOthers = entries.filter((entry) => isMessage(entry) && entry.from !== this.self());
        const own = entries.some((entry) => isMessage(entry) && entry.from === this.self());
        const away = !this.nearBottom || document.visibilityState !== 'visible';
        if (own) {
            this.newFrom = null;        // one's own message: everything above is seen
        } else if (fromOthers.length > 0 && away) {
            this.newFrom ??= fromOthers[0].seq;
            if (!this.nearBottom)
                this.unseen += fromOthers.length;
        }
        this.render({ toBottom: own });
    }

    renderJump() {
        const jump = this.el.jump;
        const show = Boolean(this.timeline?.loaded) && (this.timeline.newer || this.el.box.scrollHeight
            - this.el.box.scrollTop - this.el.box.clientHeight > this.el.box.clientHeight / 2);
        jump.hidden = !show;
        jump.textContent = this.unseen > 0
            ? `${this.unseen} new message${this.unseen === 1 ? '' : 's'} below` : 'Jump to newest';
    }

    jumpToNewest() {
        this.el.box.scrollTop = this.el.box.scrollHeight;
        this.unseen = 0;
        this.renderJump();
        this.el.input.focus();
    }

    announce(text) {
        const live = this.el.announcer;
        live.append(element('p', null, text));
        while (live.childElementCount > 5)
            live.firstElementChild.remove();
    }

    // --- the composer -------------------------------------------------------------

    // Whether one may write here; placeholder says why not
    setWritable(writable, placeholder) {
        this.writable = writable;
        this.el.input.disabled = !writable;
        this.el.input.placeholder = placeholder;
        this.renderComposer();
    }

    // The connection: while offline what is written waits in the outbox
    setOnline(online) {
        const changed = this.online !== online;
        this.online = online;
        this.renderComposer();
        if (changed && this.key !== null && this.pending().length > 0)
            this.render();      // "Sending…" or "Waiting for the connection…"
    }

    renderComposer() {
        const count = characters(this.el.input.value);
        const hint = this.el.hint;
        const over = count - TEXT_MAX;
        hint.classList.toggle('text-danger', over > 0);
        hint.classList.toggle('text-body-secondary', over <= 0);
        if (!this.online && this.writable)
            hint.textContent = 'Offline: messages are sent when the connection is back';
        else if (over > 0)
            hint.textContent = `${over} character${over === 1 ? '' : 's'} over the limit of ${TEXT_MAX}`;
        else if (count > WARN_FROM)
            hint.textContent = `${count} / ${TEXT_MAX}`;
        else
            hint.textContent = 'Enter sends · Shift+Enter: new line';
        hint.hidden = !this.writable;
        this.el.input.setAttribute('aria-invalid', over > 0 ? 'true' : 'false');
        this.el.send.disabled = !this.writable || over > 0 || Boolean(this.attachments?.busy);
        this.attachments?.composerRendered();
    }

    // The composer grows with the draft, up to its CSS max-height
    grow() {
        const input = this.el.input;
        input.style.height = 'auto';
        if (input.value)
            input.style.height = `${input.scrollHeight + 2}px`;
    }

    // The message goes to the outbox, which shows it at once and sends it as
    // soon as it can (at once when online); the composer is free again
    submit() {
        const input = this.el.input;
        const text = input.value;
        const error = this.el.error;
        if (!this.writable)
            return;
        // A file may go without words (1.1); one still uploading holds the message
        const problem = this.attachments?.problem();
        if (problem) {
            error.textContent = problem;
            return;
        }
        const withFile = Boolean(this.attachments?.ready);
        if (text.trim().length === 0 && !withFile) {
            error.textContent = 'Write something first.';
            return;
        }
        const over = characters(text) - TEXT_MAX;
        if (over > 0) {
            error.textContent = `This message is ${over} character${over === 1 ? '' : 's'} too long: shorten it or send it in parts.`;
            return;
        }
        error.textContent = '';
        input.value = '';
        this.grow();
        this.newFrom = null;        // one's own message: everything above is seen
        this.toBottomNext = true;
        if (this.timeline?.newer)
            this.onPresent();       // written in a window into the past: back to the newest first
        const fields = { ...this.decorator?.sendFields(), ...this.attachments?.sendFields() };
        this.onSend(text.trim().length === 0 ? '' : text, fields);     // the owner renders it, at the bottom
        this.renderComposer();
        input.focus();
    }

    wire() {
        const { form, input, box, jump } = this.el;
        form.addEventListener('submit', (event) => { event.preventDefault(); this.submit(); });
        input.addEventListener('keydown', (event) => {
            if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
                event.preventDefault();
                this.submit();
            } else if (event.key === 'Escape') {
                event.preventDefault();
                box.focus();
            }
        });
        input.addEventListener('input', () => {
            this.grow();
            this.renderComposer();
            this.el.error.textContent = '';
        });
        box.addEventListener('scroll', () => {
            if (box.scrollTop < NEAR_TOP_PX)
                this.onLoadOlder();
            if (this.nearBottom && this.timeline?.newer) {
                this.onLoadNewer();
            } else if (this.nearBottom) {
                this.unseen = 0;
                this.onSeen();
            }
            this.renderJump();
        });
        jump.addEventListener('click', () => (this.timeline?.newer ? this.onPresent() : this.jumpToNewest()));
    }
}

// What one can do with a message, in a room or a conversation (PROTOCOL.md
// 1.1 "Replies, edits, deletions and reactions"): the actions shown on hover
// (desktop), on focus (keyboard) or by a long press (touch): reply, react,
// edit one's own, delete one's own (or any in a room one owns, after a
// confirm); and what a message shows beside its text: the message it
// answers, "(edited)", "message deleted", its reactions. A ChatView calls
// this as its `decorator`; the entries themselves change in the Timeline
// (message-changes.js), so that history, live events and catch-up agree.

import { element, characters, TEXT_MAX } from './chatview.js';
import { CHANGE_TYPES, excerpt, isMessage, messageText } from './message-changes.js';
import { reactionChips, reactionPicker, reacted } from './reactions.js';
import { ConfirmDialog } from './room-dialogs.js';
import { toast } from './toast.js';

const LONG_PRESS_MS = 500;
const LONG_PRESS_SLOP_PX = 10;      // a finger that moves further is scrolling
const FLASH_MS = 1600;              // how long a message scrolled to stays highlighted

const lower = (name) => String(name ?? '').toLowerCase();
const SVG = 'http://www.w3.org/2000/svg';

// Small stroked icons (16 x 16), drawn here so that no icon font is needed
const ICONS = {
    reply: ['M6 3.5 2 7.5l4 4', 'M2.5 7.5h6.5a4.5 4.5 0 0 1 4.5 4.5v1'],
    react: ['M8 1.75a6.25 6.25 0 1 0 0 12.5 6.25 6.25 0 0 0 0-12.5z', 'M5.2 9.6c.7 1.1 1.7 1.7 2.8 1.7s2.1-.6 2.8-1.7',
        'M6 6.2v.6', 'M10 6.2v.6'],
    edit: ['M10.8 2.7l2.5 2.5-7.8 7.8-3.1.6.6-3.1z', 'M9.3 4.2l2.5 2.5'],
    delete: ['M2.5 4h11', 'M6.2 4V2.5h3.6V4', 'M3.8 4l.8 9.5h6.8l.8-9.5', 'M6.7 6.5v4.5', 'M9.3 6.5v4.5'],
};

function icon(name) {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 16 16');
    svg.setAttribute('width', '16');
    svg.setAttribute('height', '16');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('class', 'action-icon');
    for (const data of ICONS[name]) {
        const path = document.createElementNS(SVG, 'path');
        path.setAttribute('d', data);
        svg.append(path);
    }
    return svg;
}

export class MessageActions {
    // kind: 'room' or 'pm'; spec: self() the signed-in user, name() the room
    // or person on screen, timeline() its Timeline, canDeleteAny() (the room's
    // owner), receive(entry) a change the server stored (its ok synthesised as
    // the entry, which arrives later too), render() the timeline again,
    // history(page) a history request for the chat on screen
    constructor(client, view, kind, spec) {
        this.client = client;
        this.view = view;
        this.kind = kind;
        this.spec = spec;
        this.replying = new Map();      // chat key -> seq of the message answered
        this.editing = null;            // { key, seq, draft, error, busy, focus }
        this.picking = null;            // { key, seq, value, focus }: the reaction picker
        this.opened = null;             // { key, seq }: actions shown by a long press
        this.quotes = new Map();        // `${key} ${seq}` -> a message fetched for a quote, or null
        this.focusMemo = null;
        this.confirm = new ConfirmDialog();
        view.decorator = this;
        this.replyBar = this.makeReplyBar();
        for (const type of CHANGE_TYPES)
            client.on(type, (event) => spec.receive(event));
        this.wire();
    }

    // --- requests ---------------------------------------------------------------

    // The fields naming the chat in a request, and in an entry made from an ok
    get address() {
        const name = this.spec.name();
        return this.kind === 'room' ? { request: { room: name }, entry: { room: name } }
            : { request: { with: name }, entry: { to: name } };
    }

    // msg.edit / pm.edit etc.; an ok with a seq is the entry the server
    // stored: the timeline takes it at once (its event changes nothing later)
    async change(type, fields) {
        const { request, entry } = this.address;
        const reply = await this.client.request(`${this.kind === 'room' ? 'msg' : 'pm'}.${type}`,
            { ...request, ...fields });
        if (Number.isInteger(reply.seq))
            this.spec.receive({ type: type === 'react' ? 'reaction' : type, ...entry, from: this.spec.self(),
                ...fields, target: fields.seq, seq: reply.seq, ts: reply.ts });
        return reply;
    }

    entry(seq) {
        return this.spec.timeline()?.entries.get(seq) ?? null;
    }

    own(entry) {
        return lower(entry.from) === lower(this.spec.self());
    }

    // --- what a message shows -----------------------------------------------------

    // Called by ChatView for each message it draws
    message(item, entry, body, text) {
        if (entry.deleted) {
            item.classList.add('deleted');
            text.replaceChildren(element('em', 'deleted-text', 'message deleted'));
            return;
        }
        if (Number.isInteger(entry.reply_to))
            body.insertBefore(this.quote(entry.reply_to), text);
        const editing = this.isOn(this.editing, entry.seq);
        if (editing)
            text.replaceWith(this.editor(entry));
        else if (entry.edited)
            text.append(this.editedMark(entry.edited));
        if (entry.reactions?.length)
            body.append(reactionChips(entry.reactions, {
                self: this.spec.self(), disabled: !this.view.writable,
                toggle: (emoji, on) => this.react(entry, emoji, on),
            }));
        if (!this.view.writable || editing)
            return;
        // The toolbar is made when the message is pointed at or focused (a
        // timeline re-renders whole with each entry: hundreds of toolbars
        // made for nothing would slow it down); Tab reaches each message
        item.classList.add('has-actions');
        item.tabIndex = 0;
        item.dataset.focusKey = 'message';
        if (this.isOn(this.picking, entry.seq)) {
            body.append(this.picker(entry));
            item.classList.add('actions-open', 'picking');
            this.ensureToolbar(item);
        } else if (this.isOn(this.opened, entry.seq)) {
            item.classList.add('actions-open');
            this.ensureToolbar(item);
        }
    }

    // The message's toolbar, made now if it has none yet
    ensureToolbar(item) {
        if (!item?.classList.contains('has-actions') || item.querySelector(':scope > .msg-actions'))
            return;
        const entry = this.entry(Number(item.dataset.seq));
        if (entry && !entry.deleted)
            item.append(this.toolbar(entry));
    }

    // A reply still in the outbox shows what it answers too
    pending(item, body, text) {
        if (Number.isInteger(item.reply_to))
            body.insertBefore(this.quote(item.reply_to), text);
    }

    isOn(state, seq) {
        return state !== null && state.key === this.view.key && state.seq === seq;
    }

    editedMark(ts) {
        const mark = element('span', 'edited-mark', '(edited)');
        const date = new Date(ts);
        if (!Number.isNaN(date.getTime()))
            mark.title = `Edited ${date.toLocaleString()}`;
        return mark;
    }

    // The message a reply answers: its author and first words, or "message
    // deleted"; a click scrolls to it when it is loaded
    quote(seq) {
        const target = this.entry(seq) ?? this.fetchedQuote(seq);
        const quote = element('button', 'reply-quote');
        quote.type = 'button';
        quote.dataset.replyTo = String(seq);
        const known = target && isMessage(target);
        const words = !known ? 'a message further up' : target.deleted ? 'message deleted' : excerpt(messageText(target));
        quote.append(element('span', 'visually-hidden', 'In reply to '));
        if (known)
            quote.append(element('span', 'reply-from', target.from), element('span', 'visually-hidden', ': '));
        quote.append(element('span', `reply-excerpt${known && !target.deleted ? '' : ' fst-italic'}`, words));
        const loaded = Boolean(this.entry(seq));
        quote.title = loaded ? 'Show the message this answers' : 'Scroll up to load the message this answers';
        quote.addEventListener('click', () => this.scrollTo(seq));
        return quote;
    }

    // A message answered that this page has not loaded: asked for once
    fetchedQuote(seq) {
        const id = `${this.view.key} ${seq}`;
        if (this.quotes.has(id))
            return this.quotes.get(id);
        this.quotes.set(id, null);
        const key = this.view.key;
        this.spec.history({ before: seq + 1, limit: 1 }).then((reply) => {
            const found = (reply.messages ?? []).find((each) => each.seq === seq);
            this.quotes.set(id, found ?? null);
            if (found && key === this.view.key)
                this.spec.render();
        }, () => {});       // the quote stays "a message further up"
        return null;
    }

    scrollTo(seq) {
        const node = this.view.el.entries.querySelector(`li.entry-message[data-seq="${seq}"]`);
        if (!node)
            return;
        node.scrollIntoView({ block: 'center', behavior: 'smooth' });
        node.classList.add('flash');
        setTimeout(() => node.classList.remove('flash'), FLASH_MS);
    }

    toolbar(entry) {
        const bar = element('div', 'msg-actions');
        bar.setAttribute('role', 'toolbar');
        bar.setAttribute('aria-label', `Actions on the message of ${entry.from}`);
        const add = (name, label, run) => {
            const button = element('button', `msg-action msg-${name}`);
            button.type = 'button';
            button.title = label;
            button.setAttribute('aria-label', label);
            button.dataset.focusKey = `action ${name}`;
            button.append(icon(name), element('span', 'msg-action-label', label));
            button.addEventListener('click', (event) => run(event.currentTarget));
            bar.append(button);
        };
        add('reply', 'Reply', () => this.startReply(entry));
        add('react', 'React', () => this.togglePicker(entry));
        if (this.own(entry))
            add('edit', 'Edit', () => this.startEdit(entry.seq));
        if (this.own(entry) || (this.kind === 'room' && this.spec.canDeleteAny()))
            add('delete', 'Delete', (button) => this.askDelete(entry, button));
        return bar;
    }

    // --- reply --------------------------------------------------------------------

    makeReplyBar() {
        const bar = element('div', 'reply-bar');
        bar.hidden = true;
        const form = this.view.el.form;
        form.insertBefore(bar, form.firstChild);
        return bar;
    }

    startReply(entry) {
        this.closeActions();
        this.replying.set(this.view.key, entry.seq);
        this.renderReplyBar();
        this.view.el.input.focus();
    }

    cancelReply() {
        this.replying.delete(this.view.key);
        this.renderReplyBar();
        this.view.el.input.focus();
    }

    renderReplyBar() {
        const seq = this.view.key === null ? undefined : this.replying.get(this.view.key);
        const bar = this.replyBar;
        bar.hidden = seq === undefined;
        if (seq === undefined) {
            bar.replaceChildren();
            return;
        }
        const target = this.entry(seq);
        const text = element('div', 'reply-bar-text');
        text.append(document.createTextNode('Replying to '), element('strong', null, target?.from ?? 'a message'));
        if (target)
            text.append(document.createTextNode(': '), element('span', 'reply-bar-excerpt',
                target.deleted ? 'message deleted' : excerpt(messageText(target), 120)));
        const cancel = element('button', 'btn-close reply-cancel');
        cancel.type = 'button';
        cancel.title = 'Cancel the reply (Escape)';
        cancel.setAttribute('aria-label', 'Cancel the reply');
        cancel.addEventListener('click', () => this.cancelReply());
        bar.replaceChildren(text, cancel);
    }

    // ChatView asks what a message being sent carries beside its text
    sendFields() {
        const seq = this.replying.get(this.view.key);
        if (seq === undefined)
            return {};
        this.replying.delete(this.view.key);
        this.renderReplyBar();
        return { reply_to: seq };
    }

    // --- edit -----------------------------------------------------------------------

    startEdit(seq) {
        const entry = this.entry(seq);
        if (!entry || !this.own(entry) || entry.deleted)
            return;
        this.closeActions();
        this.editing = { key: this.view.key, seq, draft: entry.text, error: null, busy: false, focus: true };
        this.spec.render();
    }

    // The Up arrow in an empty composer: one's last message
    // Up in an empty composer edits one's newest message; in a window into
    // the past (opened at a search result) the newest is not on screen, and
    // an older one of one's own must not be taken for it: Up does nothing there
    editLast() {
        const timeline = this.spec.timeline();
        if (!timeline?.loaded || timeline.newer)
            return false;
        const last = timeline.sorted().reverse().find((entry) => isMessage(entry) && this.own(entry) && !entry.deleted);
        if (!last)
            return false;
        this.startEdit(last.seq);
        return true;
    }

    editor(entry) {
        const state = this.editing;
        const form = element('form', 'message-editor');
        form.noValidate = true;
        const label = element('label', 'visually-hidden', 'Edit your message');
        const input = element('textarea', 'form-control form-control-sm');
        input.id = `${this.view.el.input.id}-edit`;
        label.htmlFor = input.id;
        input.rows = 1;
        input.value = state.draft;
        input.disabled = state.busy;
        input.dataset.focusKey = 'editor';
        const hint = element('div', 'editor-footer small');
        const error = element('span', 'text-danger editor-error', state.error ?? '');
        error.setAttribute('role', 'alert');
        const keys = element('span', 'text-body-secondary editor-keys', 'Enter saves · Escape cancels');
        const cancel = element('button', 'btn btn-sm btn-link editor-cancel', 'Cancel');
        cancel.type = 'button';
        const save = element('button', 'btn btn-sm btn-primary editor-save', state.busy ? 'Saving…' : 'Save');
        save.type = 'submit';
        save.disabled = state.busy;
        hint.append(error, keys, cancel, save);
        form.append(label, input, hint);
        const grow = () => {
            input.style.height = 'auto';
            input.style.height = `${input.scrollHeight + 2}px`;
        };
        input.addEventListener('input', () => {
            state.draft = input.value;
            state.error = null;
            error.textContent = '';
            grow();
        });
        input.addEventListener('keydown', (event) => {
            if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
                event.preventDefault();
                this.saveEdit();
            } else if (event.key === 'Escape') {
                event.preventDefault();
                event.stopPropagation();
                this.cancelEdit();
            }
        });
        form.addEventListener('submit', (event) => { event.preventDefault(); this.saveEdit(); });
        cancel.addEventListener('click', () => this.cancelEdit());
        requestAnimationFrame(grow);
        return form;
    }

    editProblem(text) {
        if (text.trim().length === 0)
            return 'Write something, or delete the message instead.';
        const over = characters(text) - TEXT_MAX;
        return over > 0 ? `${over} character${over === 1 ? '' : 's'} over the limit of ${TEXT_MAX}.` : null;
    }

    async saveEdit() {
        const state = this.editing;
        if (!state || state.busy)
            return;
        const entry = this.entry(state.seq);
        if (!entry || entry.deleted || state.draft === entry.text) {
            this.cancelEdit();
            return;
        }
        state.error = this.editProblem(state.draft);
        if (state.error) {
            this.spec.render();
            return;
        }
        state.busy = true;
        this.spec.render();
        try {
            await this.change('edit', { seq: state.seq, text: state.draft });
            if (this.editing === state)
                this.cancelEdit();
        } catch (error) {
            Object.assign(state, { busy: false, error: error.message, focus: true });
            if (this.editing === state)
                this.spec.render();
        }
    }

    cancelEdit() {
        this.editing = null;
        this.spec.render();
        this.view.el.input.focus();
    }

    // --- delete ---------------------------------------------------------------------

    async askDelete(entry, opener) {
        this.closeActions();
        const own = this.own(entry);
        const words = excerpt(messageText(entry), 60);
        const deleted = await this.confirm.ask({
            title: 'Delete this message?',
            text: `${own ? 'Your message' : `The message of ${entry.from}`} “${words}” will show as “message deleted” for everyone. This cannot be undone.`,
            ok: 'Delete the message',
            opener,
            action: () => this.change('delete', { seq: entry.seq }),
        });
        if (deleted)
            this.view.el.input.focus();
    }

    // --- react ----------------------------------------------------------------------

    togglePicker(entry) {
        this.picking = this.isOn(this.picking, entry.seq) ? null
            : { key: this.view.key, seq: entry.seq, value: '', focus: true };
        this.opened = null;
        this.spec.render();
    }

    picker(entry) {
        return reactionPicker({
            value: this.picking.value,
            typed: (value) => { if (this.picking) this.picking.value = value; },
            pick: (emoji) => {
                this.closePicker({ focus: false });
                const mine = (entry.reactions ?? []).find((each) => each.emoji === emoji);
                if (!mine || !reacted(mine, this.spec.self()))
                    this.react(entry, emoji, true);
                this.view.el.input.focus();
            },
            close: () => this.closePicker(),
        });
    }

    closePicker({ focus = true } = {}) {
        const seq = this.picking?.seq;
        this.picking = null;
        this.spec.render();
        if (focus && seq !== undefined)
            this.view.el.entries.querySelector(`li[data-seq="${seq}"] .msg-react`)?.focus();
    }

    async react(entry, emoji, on) {
        try {
            await this.change('react', { seq: entry.seq, emoji, on });
        } catch (error) {
            if (error.code !== 'disconnected' || !this.view.online)
                toast(`The reaction ${emoji} could not be ${on ? 'added' : 'taken back'}: ${error.message}`);
        }
    }

    // Without a render: a click that closes them may be on its way to a button
    closeActions() {
        this.opened = null;
        this.picking = null;
        for (const node of this.view.el.entries.querySelectorAll('.reaction-picker'))
            node.remove();
        for (const node of this.view.el.entries.querySelectorAll('li.actions-open'))
            node.classList.remove('actions-open', 'picking');
    }

    // --- keeping the focus across renders ---------------------------------------------

    beforeRender() {
        const active = document.activeElement;
        this.focusMemo = null;
        if (!active || !this.view.el.entries.contains(active) || !active.dataset.focusKey)
            return;
        this.focusMemo = {
            seq: active.closest('li[data-seq]')?.dataset.seq, focusKey: active.dataset.focusKey,
            start: active.selectionStart, end: active.selectionEnd,
        };
    }

    afterRender() {
        if (this.editing && this.editing.key !== this.view.key)
            this.editing = null;
        this.renderReplyBar();
        const entries = this.view.el.entries;
        if (this.editing?.focus) {
            this.editing.focus = false;
            const input = entries.querySelector('.message-editor textarea');
            input?.focus();
            input?.setSelectionRange(input.value.length, input.value.length);
            input?.closest('li')?.scrollIntoView({ block: 'nearest' });
            return;
        }
        if (this.picking?.focus) {
            this.picking.focus = false;
            const choice = entries.querySelector('.reaction-picker .reaction-choice');
            choice?.focus({ preventScroll: true });
            choice?.closest('.reaction-picker').scrollIntoView({ block: 'nearest' });
            return;
        }
        const memo = this.focusMemo;
        if (!memo?.seq)
            return;
        this.ensureToolbar(entries.querySelector(`li.has-actions[data-seq="${memo.seq}"]`));
        const item = entries.querySelector(`li[data-seq="${memo.seq}"]`);
        const target = item && [item, ...item.querySelectorAll('[data-focus-key]')]
            .find((node) => node.dataset.focusKey === memo.focusKey);
        if (!target)
            return;
        target.focus({ preventScroll: true });
        if (typeof memo.start === 'number' && typeof target.setSelectionRange === 'function')
            target.setSelectionRange(memo.start, memo.end);
    }

    // --- keys, long press, clicks elsewhere ---------------------------------------------

    wire() {
        const { form, input, entries } = this.view.el;
        // Before ChatView's own keys: Escape first cancels a reply, Up edits
        form.addEventListener('keydown', (event) => {
            if (event.target !== input || event.isComposing || event.altKey || event.ctrlKey || event.metaKey)
                return;
            if (event.key === 'Escape' && this.replying.has(this.view.key)) {
                event.preventDefault();
                event.stopPropagation();
                this.cancelReply();
            } else if (event.key === 'ArrowUp' && !event.shiftKey && input.value === '' && this.view.writable
                && this.editLast()) {
                event.preventDefault();
                event.stopPropagation();
            }
        }, true);
        this.wireLongPress(entries);
        for (const type of ['pointerover', 'focusin'])
            entries.addEventListener(type, (event) => this.ensureToolbar(event.target.closest?.('li.has-actions')));
        document.addEventListener('pointerdown', (event) => {
            if ((this.opened || this.picking) && !event.target.closest?.('li.actions-open'))
                this.closeActions();
        });
    }

    // A finger held on a message shows its actions (phones have no hover).
    // The click that ends that press would land on the toolbar just shown
    // under the finger: it is swallowed
    wireLongPress(entries) {
        let timer = null;
        let start = null;
        let fired = false;          // this press opened the actions
        let swallow = false;        // the click ending it is on its way
        const stop = () => {
            clearTimeout(timer);
            timer = null;
        };
        entries.addEventListener('pointerdown', (event) => {
            fired = false;
            swallow = false;
            if (event.pointerType !== 'touch' || event.target.closest('.msg-actions, .reaction-picker, .message-editor'))
                return;
            const item = event.target.closest('li.entry-message[data-seq]:not(.pending):not(.deleted)');
            if (!item || !this.view.writable)
                return;
            start = { x: event.clientX, y: event.clientY };
            stop();
            timer = setTimeout(() => {
                timer = null;
                fired = true;
                this.closeActions();
                this.opened = { key: this.view.key, seq: Number(item.dataset.seq) };
                this.ensureToolbar(item);
                item.classList.add('actions-open');
                item.querySelector('.msg-actions')?.scrollIntoView({ block: 'nearest' });
                navigator.vibrate?.(10);
            }, LONG_PRESS_MS);
        }, true);
        entries.addEventListener('pointermove', (event) => {
            if (timer && start && Math.hypot(event.clientX - start.x, event.clientY - start.y) > LONG_PRESS_SLOP_PX)
                stop();
        });
        entries.addEventListener('pointerup', () => {
            stop();
            swallow = fired;        // until the next pointerdown: a tap after it is a tap
            fired = false;
        });
        for (const type of ['pointercancel', 'pointerleave'])
            entries.addEventListener(type, stop);
        // The browser's own long-press menu would hide the actions
        entries.addEventListener('contextmenu', (event) => {
            if (fired || timer)
                event.preventDefault();
        });
        entries.addEventListener('click', (event) => {
            if (!swallow)
                return;
            swallow = false;
            event.preventDefault();
            event.stopPropagation();
        }, true);
    }
}

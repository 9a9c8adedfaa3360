// Search (PROTOCOL.md 1.1 "Search"): the search dialog, opened by the
// header's search box or Ctrl+/, sends `search` (everywhere, or only in the
// room or conversation on screen), shows the results grouped by room or
// conversation, newest first, each with its sender, its time and its text
// with the words the server matched highlighted, fetches more with
// `next`/`cursor`, and opens a chat at the message picked (the controllers'
// open(name, { at: seq }): a window into the past, chat-controller.js).
// Keys: ↓/↑ move through the results, Enter opens one, Escape closes.
// Words are split and folded here as the server does (letters and digits;
// case, and Latin accents, ignored), only to highlight: never to decide what
// matches. Nothing anyone wrote is parsed as HTML.

import { element } from './chatview.js';

const $ = (id) => document.getElementById(id);

const PAGE = 20;                    // results per request (the server's default)
const TYPING_MS = 300;              // a pause in typing this long searches
const QUERY_MAX = 200;              // characters of a query (PROTOCOL.md)
const EXCERPT = 220;                // characters of a long message shown around its first hit
const LEAD = 60;                    // of them, before the hit
const WORD_BYTES = 64;              // the server cuts a longer word there (and searches it as a prefix)

const key = (name) => String(name ?? '').toLowerCase();
const when = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

// A word: a run of letters and digits (with the marks that belong to them)
const WORD = /[\p{L}\p{N}\p{M}]+/gu;
const QUERY_WORD = /([\p{L}\p{N}\p{M}]+)(\*?)/gu;

const encoder = new TextEncoder();

// A word as the server compares it: Latin letters without their accents,
// lower case (one character at a time, as the server folds: no final sigma),
// at most WORD_BYTES bytes of UTF-8 (cut: true when it was longer)
function fold(word) {
    let folded = '';
    let bytes = 0;
    for (const char of word.normalize('NFC')) {
        const code = char.codePointAt(0);
        let next = '';
        if ((code >= 0xC0 && code <= 0x24F) || (code >= 0x1E00 && code <= 0x1EFF))
            next = char.normalize('NFD')[0].toLowerCase();
        else if (code < 0x300 || code > 0x36F)      // a combining accent left alone is dropped
            next = char.toLowerCase();
        bytes += encoder.encode(next).length;
        if (bytes > WORD_BYTES)
            return { folded, cut: true };
        folded += next;
    }
    return { folded, cut: false };
}

export const foldWord = (word) => fold(word).folded;

// The query's words, folded, each { word, prefix } (a trailing `*`: prefix)
export function queryWords(query) {
    const words = [];
    for (const [, word, star] of String(query).matchAll(QUERY_WORD)) {
        const { folded, cut } = fold(word);
        // A word cut to its first bytes is searched as a prefix
        if (folded)
            words.push({ word: folded, prefix: star === '*' || cut });
    }
    return words;
}

function hits(word, words) {
    const folded = foldWord(word);
    return words.some((each) => (each.prefix ? folded.startsWith(each.word) : folded === each.word));
}

// Where the words of text are that the query's words match: [start, end) pairs
export function hitRanges(text, words) {
    const ranges = [];
    for (const match of String(text).matchAll(WORD))
        if (hits(match[0], words))
            ranges.push([match.index, match.index + match[0].length]);
    return ranges;
}

// text as DOM nodes, each hit in a <mark>; a long text is cut around its
// first hit
export function highlighted(text, words, { excerpt = EXCERPT } = {}) {
    let shown = String(text).replace(/\s+/g, ' ').trim();
    let ranges = hitRanges(shown, words);
    if ([...shown].length > excerpt) {
        let start = Math.max(0, (ranges[0]?.[0] ?? 0) - LEAD);
        if (start > 0)
            start = shown.indexOf(' ', start) + 1 || start;     // from a word's start
        let end = Math.min(shown.length, start + excerpt);
        if (end < shown.length && /[\uDC00-\uDFFF]/.test(shown[end]))
            end -= 1;       // not inside a surrogate pair
        shown = `${start > 0 ? '…' : ''}${shown.slice(start, end)}${end < shown.length ? '…' : ''}`;
        ranges = hitRanges(shown, words);
    }
    const nodes = [];
    let last = 0;
    for (const [start, end] of ranges) {
        if (start > last)
            nodes.push(document.createTextNode(shown.slice(last, start)));
        nodes.push(element('mark', 'search-hit', shown.slice(start, end)));
        last = end;
    }
    if (last < shown.length)
        nodes.push(document.createTextNode(shown.slice(last)));
    return nodes;
}

// One result as the server gives it (an entry as room.history or pm.history
// gives it) into { kind, name, chat, entry }; null when it is neither
function resultOf(raw, self) {
    const entry = raw && typeof raw.entry === 'object' && raw.entry ? { ...raw, ...raw.entry } : raw;
    if (!entry || typeof entry !== 'object' || !Number.isInteger(entry.seq))
        return null;
    if (typeof entry.room === 'string')
        return { kind: 'room', name: entry.room, chat: `room:${key(entry.room)}`, entry };
    if (typeof entry.from !== 'string' || typeof entry.to !== 'string')
        return null;
    const other = key(entry.from) === key(self) ? entry.to : entry.from;
    return { kind: 'pm', name: other, chat: `pm:${key(other)}`, entry };
}

// What is said for an error of `search`, and whether trying again may help
function problem(error) {
    switch (error.code) {
    case 'unknown_type':
        return { text: 'This server does not offer search.', retry: false };
    case 'disconnected':
        return { text: 'Offline: search works again once the connection is back.', retry: true };
    case 'timeout':
    case 'unavailable':
    case 'rate_limited':
    case 'internal':
        return { text: `Search failed: ${error.message || 'the server did not answer.'}`, retry: true };
    default:
        return { text: error.message || 'Search failed.', retry: false };
    }
}

export class SearchPanel {
    // rooms, pm: the controllers (what is on screen, open(name, { at }));
    // self(): the signed-in user
    constructor(client, { rooms, pm, self }) {
        this.client = client;
        this.rooms = rooms;
        this.pm = pm;
        this.self = self;
        this.ticket = 0;            // the newest search asked; older answers are dropped
        this.timer = null;
        this.clear();
        this.wire();
    }

    // Signed out: nothing of the last user's searches stays on the page
    clear() {
        clearTimeout(this.timer);
        this.ticket += 1;
        this.asked = null;          // { query, scope }: what the results shown answer
        this.words = [];
        this.groups = new Map();    // chat -> { kind, name, results: [] }, in order of first appearance
        this.seen = new Set();
        this.next = null;
        this.busy = false;
        this.opener = null;
        if ($('search-modal').classList.contains('show'))
            this.modal?.hide();
        $('search-input').value = '';
        this.setStatus('');
        this.render();
    }

    get modal() {
        return window.bootstrap?.Modal.getOrCreateInstance($('search-modal'));
    }

    open() {
        if (!document.body.classList.contains('signed-in') || !this.modal)
            return;
        this.opener = document.activeElement;
        this.renderScope();
        this.modal.show();
        if ($('search-input').value.trim())
            this.search();      // the toggle may mean another chat now
    }

    // The room or conversation on screen, which the toggle restricts to:
    // { fields, label } or null
    here() {
        if (this.rooms.current) {
            const name = this.rooms.room?.name ?? this.rooms.current;
            return { fields: { room: name }, label: `Only in #${name}` };
        }
        if (this.pm.current) {
            const name = this.pm.nameOf(this.pm.current);
            return { fields: { with: name }, label: `Only with ${name}` };
        }
        return null;
    }

    renderScope() {
        const here = this.here();
        $('search-scope-box').hidden = !here;
        $('search-scope-label').textContent = here?.label ?? '';
        $('search-scope').disabled = !here;
    }

    scope() {
        const here = this.here();
        return $('search-scope').checked && here ? here.fields : {};
    }

    // A search of what the box holds now, unless its results are shown
    // already (force: even then); false when they were
    async search({ force = false } = {}) {
        clearTimeout(this.timer);
        const query = $('search-input').value.trim();
        const scope = this.scope();
        const asking = JSON.stringify({ query, scope });
        if (!force && asking === JSON.stringify(this.asked) && !this.failed)
            return false;
        this.ticket += 1;
        this.asked = { query, scope };
        this.groups = new Map();
        this.seen = new Set();
        this.next = null;
        this.words = queryWords(query);
        this.failed = false;
        if (query.length === 0) {
            this.setStatus('');
        } else if ([...query].length > QUERY_MAX) {
            this.setStatus(`A search has at most ${QUERY_MAX} characters.`, { error: true });
        } else if (this.words.length === 0) {
            this.setStatus('Type a word to search for: letters or digits.', { error: true });
        } else {
            this.render();
            await this.fetch({ query, ...scope });
            return true;
        }
        this.render();
        return true;
    }

    // The next page of the results shown
    async more() {
        if (!this.next || this.busy || !this.asked)
            return;
        await this.fetch({ query: this.asked.query, ...this.asked.scope, cursor: this.next });
    }

    async fetch(fields) {
        const ticket = this.ticket;
        const first = !fields.cursor;
        this.busy = true;
        if (first)
            this.setStatus('Searching…');
        this.renderMore();
        try {
            const reply = await this.client.request('search', { ...fields, limit: PAGE });
            if (ticket !== this.ticket)
                return;
            for (const raw of Array.isArray(reply.results) ? reply.results : [])
                this.add(resultOf(raw, this.self()));
            this.next = typeof reply.next === 'string' && reply.next ? reply.next : null;
            this.busy = false;
            this.setStatus(this.summary());
            this.render();
        } catch (error) {
            if (ticket !== this.ticket)
                return;
            this.busy = false;
            this.failed = first;
            const { text, retry } = problem(error);
            this.setStatus(text, { error: true, retry });
            this.renderMore();
        }
    }

    add(result) {
        if (!result)
            return;
        const id = `${result.chat}:${result.entry.seq}`;
        if (this.seen.has(id))
            return;
        this.seen.add(id);
        if (!this.groups.has(result.chat))
            this.groups.set(result.chat, { kind: result.kind, name: result.name, results: [] });
        this.groups.get(result.chat).results.push(result);
    }

    get count() {
        let count = 0;
        for (const group of this.groups.values())
            count += group.results.length;
        return count;
    }

    summary() {
        const count = this.count;
        const where = this.asked.scope.room ? ` in #${this.asked.scope.room}`
            : this.asked.scope.with ? ` in your conversation with ${this.asked.scope.with}` : '';
        if (count === 0)
            return `No messages match “${this.asked.query}”${where}.`;
        const chats = this.groups.size;
        return `${count}${this.next ? '+' : ''} message${count === 1 && !this.next ? '' : 's'}${where}`
            + (chats > 1 ? ` in ${chats} rooms and conversations` : '') + '.';
    }

    setStatus(text, { error = false, retry = false } = {}) {
        const status = $('search-status');
        status.replaceChildren();
        status.classList.toggle('text-danger', error);
        status.classList.toggle('text-body-secondary', !error);
        status.hidden = !text;
        if (!text)
            return;
        status.append(document.createTextNode(text));
        if (retry) {
            const button = element('button', 'btn btn-link btn-sm p-0 ms-2 align-baseline', 'Try again');
            button.type = 'button';
            button.id = 'search-retry';
            button.addEventListener('click', () => (this.failed ? this.search({ force: true }) : this.more()));
            status.append(button);
        }
    }

    // --- the results --------------------------------------------------------------

    render() {
        const focused = document.activeElement?.closest?.('.search-result')?.dataset.id;
        const box = $('search-results');
        box.dataset.query = this.asked?.query ?? '';       // what the results answer
        box.replaceChildren(...[...this.groups.values()].map((group, index) => this.groupItem(group, index)));
        if (focused)
            box.querySelector(`.search-result[data-id="${CSS.escape(focused)}"]`)?.focus();
        this.renderMore();
    }

    renderMore() {
        $('search-results').setAttribute('aria-busy', String(this.busy));
        const more = $('search-more');
        more.hidden = !this.next;
        more.disabled = this.busy;
        more.textContent = this.busy && this.next ? 'Loading more results…' : 'More results';
    }

    groupItem(group, index) {
        const section = element('section', 'search-group');
        const title = element('h3', 'search-group-title h6');
        title.id = `search-group-${index}`;
        if (group.kind === 'room') {
            title.append(element('span', 'text-body-secondary', '#'), document.createTextNode(group.name));
        } else {
            title.append(element('span', 'text-body-secondary', 'Conversation with '), document.createTextNode(group.name));
        }
        const list = element('ul', 'list-unstyled mb-0');
        list.setAttribute('aria-labelledby', title.id);
        list.append(...group.results.map((result) => this.resultItem(result)));
        section.append(title, list);
        return section;
    }

    resultItem(result) {
        const { entry } = result;
        const item = element('li');
        const button = element('button', 'search-result btn w-100 text-start rounded-0');
        button.type = 'button';
        button.dataset.id = `${result.chat}:${entry.seq}`;
        button.dataset.kind = result.kind;
        button.dataset.name = result.name;
        button.dataset.seq = String(entry.seq);
        const meta = element('span', 'search-meta d-flex gap-2 align-items-baseline');
        const own = key(entry.from) === key(this.self());
        meta.append(element('span', 'search-from', own ? 'You' : String(entry.from ?? '')));
        const date = new Date(entry.ts ?? NaN);
        if (!Number.isNaN(date.getTime())) {
            const time = element('time', 'search-time small text-body-secondary', when.format(date));
            time.dateTime = entry.ts;
            time.title = full.format(date);
            meta.append(time);
        }
        const text = element('span', 'search-text');
        const body = typeof entry.text === 'string' && entry.text ? entry.text
            : entry.file?.name ? `(file: ${entry.file.name})` : '';
        text.append(...highlighted(body, this.words));
        button.append(meta, text);
        button.addEventListener('click', () => this.go(result));
        item.append(button);
        return item;
    }

    // The chat of the result opens at its message; the dialog closes
    async go(result) {
        this.opener = null;
        this.modal?.hide();
        const controller = result.kind === 'room' ? this.rooms : this.pm;
        await controller.open(result.name, { focus: false, at: result.entry.seq });
        const node = controller.view.el.entries.querySelector(`li.entry[data-seq="${result.entry.seq}"]`);
        (node?.tabIndex >= 0 ? node : controller.view.el.box).focus({ preventScroll: true });
    }

    // --- keys ---------------------------------------------------------------------

    results() {
        return [...$('search-results').querySelectorAll('.search-result')];
    }

    // ↓/↑ (and Home/End) among the results; ↑ from the first back to the box
    move(event) {
        const all = this.results();
        const index = all.indexOf(document.activeElement);
        let target = null;
        if (event.key === 'ArrowDown') {
            target = all[index + 1] ?? null;
            if (!target && index === all.length - 1 && this.next) {
                this.more();        // past the last: the next page
                return true;
            }
        } else if (event.key === 'ArrowUp') {
            target = index <= 0 ? $('search-input') : all[index - 1];
        } else if (event.key === 'Home' && index >= 0) {
            target = all[0];
        } else if (event.key === 'End' && index >= 0) {
            target = all.at(-1);
        } else {
            return false;
        }
        target?.focus();
        target?.scrollIntoView?.({ block: 'nearest' });
        return true;
    }

    wire() {
        document.addEventListener('keydown', (event) => {
            if ((event.ctrlKey || event.metaKey) && !event.altKey && (event.key === '/' || event.code === 'Slash')) {
                event.preventDefault();
                this.open();
            }
        });
        $('search-open').addEventListener('click', () => this.open());
        $('search-form').addEventListener('submit', (event) => {
            event.preventDefault();
            // Enter again on the same words goes to the first result
            this.search().then((searched) => {
                if (!searched)
                    this.results()[0]?.focus();
            });
        });
        $('search-input').addEventListener('input', () => {
            clearTimeout(this.timer);
            this.timer = setTimeout(() => this.search(), TYPING_MS);
        });
        $('search-input').addEventListener('keydown', (event) => {
            if (event.key === 'ArrowDown' && this.results().length > 0) {
                event.preventDefault();
                this.results()[0].focus();
            }
        });
        $('search-scope').addEventListener('change', () => this.search());
        $('search-results').addEventListener('keydown', (event) => {
            if (this.move(event)) {
                event.preventDefault();
            } else if (event.key.length === 1 && !event.ctrlKey && !event.metaKey && !event.altKey) {
                $('search-input').focus();      // typing goes on in the box
            }
        });
        $('search-more').addEventListener('click', () => this.more());
        $('search-modal').addEventListener('shown.bs.modal', () => {
            $('search-input').focus();
            $('search-input').select();
        });
        $('search-modal').addEventListener('hidden.bs.modal', () => {
            if (this.opener?.isConnected)
                this.opener.focus();
            this.opener = null;
        });
    }
}

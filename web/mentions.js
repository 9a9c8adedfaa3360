// Mentions (PROTOCOL.md 1.1 "Read markers, unread counts and mentions"):
// where a message's text names the members its entry's `mentions` lists,
// found by the protocol's rule and highlighted (more strongly when it names
// the reader), and the composer's `@` autocompletion of the room's members
// (arrows move, Enter or Tab picks, Escape closes).

import { element } from './chatview.js';

const SUGGESTIONS_MAX = 8;
// Before an `@`: the text's start or any character but these (so an e-mail
// address mentions nobody); after the name: the end or any character but these
const NAME_BEFORE = /[A-Za-z0-9_.-]/;
const NAME_AFTER = /[A-Za-z0-9_-]/;
const NAME_CHARS = /^[A-Za-z0-9_.-]*$/;

const lower = (name) => String(name).toLowerCase();

// Where text mentions one of names, by the protocol's rule (the longest name
// that fits): [{ start, end, name }], start at the `@`
export function findMentions(text, names) {
    const byLength = [...new Set(names.map(String))].sort((a, b) => b.length - a.length);
    const lowered = text.toLowerCase();
    const found = [];
    for (let at = lowered.indexOf('@'); at !== -1; at = lowered.indexOf('@', at + 1)) {
        if (at > 0 && NAME_BEFORE.test(text[at - 1]))
            continue;
        const name = byLength.find((each) => each.length > 0 && lowered.startsWith(lower(each), at + 1)
            && !NAME_AFTER.test(text[at + 1 + each.length] ?? ''));
        if (name)
            found.push({ start: at, end: at + 1 + name.length, name });
    }
    return found;
}

// Text nodes of a formatted message, outside code and links
function textNodes(root) {
    const nodes = [];
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
        acceptNode: (node) => (node.parentElement?.closest('code, pre, a') ? NodeFilter.FILTER_REJECT
            : NodeFilter.FILTER_ACCEPT),
    });
    for (let node = walker.nextNode(); node; node = walker.nextNode())
        nodes.push(node);
    return nodes;
}

// Wraps each mention in a formatted message's text (root: the element that
// holds formatMessage's nodes) in a span; mentions: the entry's field; self:
// the reader, whose own name stands out more
export function highlightMentions(root, mentions, self) {
    if (!Array.isArray(mentions) || mentions.length === 0)
        return;
    const me = lower(self ?? '');
    for (const node of textNodes(root)) {
        const text = node.nodeValue;
        const found = findMentions(text, mentions);
        if (found.length === 0)
            continue;
        const parts = [];
        let last = 0;
        for (const { start, end, name } of found) {
            parts.push(document.createTextNode(text.slice(last, start)));
            const span = element('span', `mention${lower(name) === me ? ' mention-me' : ''}`, text.slice(start, end));
            span.dataset.user = name;
            parts.push(span);
            last = end;
        }
        parts.push(document.createTextNode(text.slice(last)));
        node.replaceWith(...parts);
    }
}

// The `@` being typed before the caret: { start, query }, or null
export function mentionAt(text, caret) {
    const at = text.lastIndexOf('@', caret - 1);
    if (at === -1 || (at > 0 && NAME_BEFORE.test(text[at - 1])))
        return null;
    const query = text.slice(at + 1, caret);
    return query.length <= 32 && NAME_CHARS.test(query) ? { start: at, query } : null;
}

// The composer's list of members to mention. input: the textarea;
// candidates(): [{ user, online }] of the room on screen, without the reader
export class MentionAutocomplete {
    constructor(input, { candidates }) {
        this.input = input;
        this.candidates = candidates;
        this.matches = [];
        this.active = 0;
        this.token = null;              // the `@` being completed
        this.list = element('ul', 'mention-list list-unstyled mb-0 shadow');
        this.list.id = `${input.id}-mentions`;
        this.list.setAttribute('role', 'listbox');
        this.list.setAttribute('aria-label', 'Members to mention');
        this.list.hidden = true;
        input.form.append(this.list);
        input.setAttribute('aria-autocomplete', 'list');
        input.setAttribute('aria-controls', this.list.id);
        this.wire();
    }

    get open() {
        return !this.list.hidden;
    }

    // The members whose names start with what follows the `@`: online first
    suggest() {
        const input = this.input;
        this.token = input.selectionStart === input.selectionEnd ? mentionAt(input.value, input.selectionStart) : null;
        const query = lower(this.token?.query ?? '');
        this.matches = this.token === null ? [] : this.candidates()
            .filter((each) => lower(each.user).startsWith(query))
            .sort((a, b) => Number(b.online) - Number(a.online) || lower(a.user).localeCompare(lower(b.user)))
            .slice(0, SUGGESTIONS_MAX);
        this.active = 0;
        this.render();
    }

    close() {
        this.matches = [];
        this.token = null;
        this.render();
    }

    render() {
        const show = this.matches.length > 0;
        this.list.hidden = !show;
        this.list.replaceChildren(...this.matches.map((each, index) => {
            const option = element('li', `mention-option${index === this.active ? ' active' : ''}`);
            option.id = `${this.list.id}-${index}`;
            option.setAttribute('role', 'option');
            option.setAttribute('aria-selected', String(index === this.active));
            option.dataset.user = each.user;
            const dot = element('span', `presence-dot ${each.online ? 'online' : 'offline'}`);
            dot.setAttribute('aria-hidden', 'true');
            option.append(dot, element('span', 'text-truncate', each.user),
                element('span', 'visually-hidden', each.online ? ', online' : ', offline'));
            // mousedown, not click: the composer keeps the focus
            option.addEventListener('mousedown', (event) => {
                event.preventDefault();
                this.pick(index);
            });
            return option;
        }));
        if (show)
            this.input.setAttribute('aria-activedescendant', `${this.list.id}-${this.active}`);
        else
            this.input.removeAttribute('aria-activedescendant');
    }

    // The `@` and what was typed after it become the member's name and a space
    pick(index = this.active) {
        const chosen = this.matches[index];
        const token = this.token;
        if (!chosen || !token)
            return;
        const input = this.input;
        const before = `${input.value.slice(0, token.start)}@${chosen.user} `;
        const after = input.value.slice(token.start + 1 + token.query.length).replace(/^ /, '');
        input.value = before + after;
        input.setSelectionRange(before.length, before.length);
        this.close();
        // The composer's own handlers (height, count, draft) see the change
        input.dispatchEvent(new Event('input', { bubbles: true }));
    }

    move(step) {
        this.active = (this.active + step + this.matches.length) % this.matches.length;
        this.render();
        this.list.children[this.active]?.scrollIntoView({ block: 'nearest' });
    }

    // Captured on the form, so that the composer's Enter (send) and Escape
    // (leave) do not run while the list is open
    keydown(event) {
        if (!this.open || event.target !== this.input || event.isComposing)
            return;
        const keys = {
            ArrowDown: () => this.move(1),
            ArrowUp: () => this.move(-1),
            Enter: () => this.pick(),
            Tab: () => this.pick(),
            Escape: () => this.close(),
        };
        const act = keys[event.key];
        if (!act || event.shiftKey || event.altKey || event.ctrlKey || event.metaKey)
            return;
        event.preventDefault();
        event.stopPropagation();
        act();
    }

    wire() {
        const input = this.input;
        input.form.addEventListener('keydown', (event) => this.keydown(event), true);
        input.addEventListener('input', () => this.suggest());
        input.addEventListener('click', () => this.suggest());
        input.addEventListener('keyup', (event) => {
            if (event.key === 'ArrowLeft' || event.key === 'ArrowRight' || event.key === 'Home' || event.key === 'End')
                this.suggest();
        });
        input.addEventListener('blur', () => this.close());
        document.addEventListener('parley:chat', () => this.close());
    }
}

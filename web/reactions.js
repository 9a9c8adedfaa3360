// Reactions (PROTOCOL.md 1.1): the counted chips under a message (pressed
// when the reader is among those who reacted; a click toggles the reader's
// own; the title says who) and the small picker of common emoji with a field
// for any other. Only DOM built here; what a click does is the caller's.

import { element } from './chatview.js';

export const COMMON_EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢', '🙏', '👀'];
export const EMOJI_BYTES_MAX = 32;      // PROTOCOL.md: 1 to 32 bytes, no white space or control character

const lower = (name) => String(name ?? '').toLowerCase();
const encoder = new TextEncoder();

// Why the server would refuse this emoji, or null
export function emojiProblem(text) {
    if (text.length === 0)
        return 'Type or paste an emoji.';
    if (/[\s\p{Cc}]/u.test(text))
        return 'An emoji has no spaces.';
    if (encoder.encode(text).length > EMOJI_BYTES_MAX)
        return 'That is too long for one reaction.';
    return null;
}

export function reacted(reaction, self) {
    return (reaction.users ?? []).some((user) => lower(user) === lower(self));
}

// "bob, carol and 3 more" (the server names at most the first 20)
function whoReacted(reaction, self) {
    const names = (reaction.users ?? []).map((user) => (lower(user) === lower(self) ? 'you' : user));
    const more = Math.max(0, (reaction.count ?? names.length) - names.length);
    if (more > 0)
        names.push(`${more} more`);
    return names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names.at(-1)}` : names[0] ?? '';
}

// The chips of a message's reactions; toggle(emoji, on) when one is clicked
// (disabled: nothing can be changed here, as in a room one has left)
export function reactionChips(reactions, { self, toggle, disabled = false }) {
    const row = element('div', 'reactions');
    row.setAttribute('role', 'group');
    row.setAttribute('aria-label', 'Reactions');
    for (const reaction of reactions) {
        const mine = reacted(reaction, self);
        const chip = element('button', `reaction-chip${mine ? ' mine' : ''}`);
        chip.type = 'button';
        chip.disabled = disabled;
        chip.dataset.emoji = reaction.emoji;
        chip.dataset.focusKey = `reaction ${reaction.emoji}`;
        chip.setAttribute('aria-pressed', mine ? 'true' : 'false');
        const who = `${whoReacted(reaction, self)} reacted with ${reaction.emoji}`;
        chip.title = who;
        chip.setAttribute('aria-label', `${reaction.emoji} ${reaction.count}: ${who}`);
        const emoji = element('span', 'reaction-emoji', reaction.emoji);
        emoji.setAttribute('aria-hidden', 'true');
        const count = element('span', 'reaction-count', String(reaction.count));
        count.setAttribute('aria-hidden', 'true');
        chip.append(emoji, count);
        chip.addEventListener('click', () => toggle(reaction.emoji, !mine));
        row.append(chip);
    }
    return row;
}

// The picker: pick(emoji) for a choice, close() for Escape; value and
// typed(value): what the field holds, kept by the caller across renders
export function reactionPicker({ pick, close, value = '', typed = () => {} }) {
    const box = element('div', 'reaction-picker shadow');
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', 'Add a reaction');
    const common = element('div', 'reaction-common');
    for (const emoji of COMMON_EMOJI) {
        const button = element('button', 'reaction-choice', emoji);
        button.type = 'button';
        button.dataset.focusKey = `choice ${emoji}`;
        button.setAttribute('aria-label', `React with ${emoji}`);
        button.addEventListener('click', () => pick(emoji));
        common.append(button);
    }
    const form = element('form', 'reaction-other');
    form.noValidate = true;
    const label = element('label', 'visually-hidden', 'Any other emoji');
    const input = element('input', 'form-control form-control-sm');
    input.type = 'text';
    input.id = `reaction-other-${Math.random().toString(36).slice(2)}`;
    label.htmlFor = input.id;
    input.placeholder = 'Other emoji';
    input.autocomplete = 'off';
    input.spellcheck = false;
    input.dataset.focusKey = 'picker other';
    input.value = value;
    const add = element('button', 'btn btn-sm btn-outline-primary', 'Add');
    add.type = 'submit';
    const error = element('div', 'reaction-error small text-danger');
    error.setAttribute('role', 'alert');
    form.append(label, input, add);
    form.addEventListener('submit', (event) => {
        event.preventDefault();
        const text = input.value.trim();
        const problem = emojiProblem(text);
        error.textContent = problem ?? '';
        if (problem)
            input.focus();
        else
            pick(text);
    });
    input.addEventListener('input', () => {
        error.textContent = '';
        typed(input.value);
    });
    box.addEventListener('keydown', (event) => {
        if (event.key === 'Escape') {
            event.preventDefault();
            event.stopPropagation();
            close();
        }
    });
    box.append(common, form, error);
    return box;
}

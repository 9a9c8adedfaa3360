// Edits, deletions and reactions as timeline entries (PROTOCOL.md 1.1
// "Replies, edits, deletions and reactions"): each has a seq of its own and
// names the message it changes by `target`. A page of history shows its
// messages as they are now, so a change is applied only to a message this
// page held before the change arrived (live, or by a catch-up `after`), never
// to one that came in the same batch. Pure data: no DOM here.

export const CHANGE_TYPES = ['edit', 'delete', 'reaction'];
export const REACTION_USERS_MAX = 20;   // the server lists at most this many users per emoji

const lower = (name) => String(name ?? '').toLowerCase();

// What an entry is: 'message', 'system', 'edit', 'delete' or 'reaction'.
// Room entries and live events say it in `type`; a conversation's history
// entries carry `kind` (absent from a 1.0 server: a message)
export function entryKind(entry) {
    if (CHANGE_TYPES.includes(entry?.type))
        return entry.type;
    if (CHANGE_TYPES.includes(entry?.kind))
        return entry.kind;
    return entry?.type === 'system' ? 'system' : 'message';
}

export const isChange = (entry) => CHANGE_TYPES.includes(entryKind(entry));
export const isMessage = (entry) => entryKind(entry) === 'message';

function timeOf(ts) {
    const time = new Date(ts ?? NaN).getTime();
    return Number.isNaN(time) ? null : time;
}

// The message with one reaction added or taken away (the server sends an
// entry only for a real change: `on` for someone who had not, off for
// someone who had)
function withReaction(message, change) {
    const reactions = (message.reactions ?? []).map((each) => ({ ...each, users: [...(each.users ?? [])] }));
    const index = reactions.findIndex((each) => each.emoji === change.emoji);
    const who = lower(change.from);
    if (change.on !== false) {
        if (index < 0) {
            reactions.push({ emoji: change.emoji, count: 1, users: [change.from] });
        } else if (!reactions[index].users.some((user) => lower(user) === who)) {
            reactions[index].count += 1;
            if (reactions[index].users.length < REACTION_USERS_MAX)
                reactions[index].users.push(change.from);
        }
    } else if (index >= 0) {
        const reaction = reactions[index];
        reaction.users = reaction.users.filter((user) => lower(user) !== who);
        reaction.count -= 1;
        if (reaction.count <= 0)
            reactions.splice(index, 1);
    }
    const changed = { ...message, reactions };
    if (reactions.length === 0)
        delete changed.reactions;
    return changed;
}

// The message as the change leaves it, or null when it does not apply
export function changedMessage(message, change) {
    if (!message || !isMessage(message) || message.deleted)
        return null;
    switch (entryKind(change)) {
    case 'edit': {
        // An edit older than the one shown changes nothing
        const shown = timeOf(message.edited);
        const made = timeOf(change.ts);
        if (shown !== null && made !== null && made < shown)
            return null;
        return { ...message, text: change.text ?? '', edited: change.ts ?? message.edited ?? true };
    }
    case 'delete': {
        const gone = { ...message, text: '', deleted: true };
        delete gone.reactions;
        delete gone.file;       // the server deletes it with its last message
        return gone;
    }
    case 'reaction':
        return typeof change.emoji === 'string' ? withReaction(message, change) : null;
    default:
        return null;
    }
}

// Applies the changes among entries just added to a timeline (a Map seq ->
// entry) to the messages it held before them; fresh: the seqs of this batch
// (their messages are shown as they are now already). Returns the seqs of
// the messages changed.
export function applyChanges(timelineEntries, added, fresh) {
    const changedSeqs = [];
    for (const change of added.filter(isChange).sort((a, b) => a.seq - b.seq)) {
        if (!Number.isInteger(change.target) || fresh.has(change.target))
            continue;
        const next = changedMessage(timelineEntries.get(change.target), change);
        if (next) {
            timelineEntries.set(change.target, next);
            changedSeqs.push(change.target);
        }
    }
    return changedSeqs;
}

// A sentence for screen readers about a change that arrived
export function describeChange(change) {
    switch (entryKind(change)) {
    case 'edit':
        return `${change.from} edited a message: ${change.text ?? ''}`;
    case 'delete':
        return `${change.from} deleted a message.`;
    case 'reaction':
        return change.on === false ? `${change.from} took back the reaction ${change.emoji}.`
            : `${change.from} reacted ${change.emoji}.`;
    default:
        return '';
    }
}

// What a message says in a line: its text, or the name of the file it
// carries alone (1.1)
export function messageText(entry) {
    if (entry?.text)
        return entry.text;
    return typeof entry?.file?.name === 'string' ? `📎 ${entry.file.name}` : '';
}

// The first characters of a message, on one line
export function excerpt(text, max = 80) {
    const line = String(text ?? '').replace(/\s+/g, ' ').trim();
    const chars = [...line];
    return chars.length > max ? `${chars.slice(0, max).join('')}…` : line;
}

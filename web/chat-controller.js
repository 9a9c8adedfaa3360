// What rooms and private conversations do alike with their timelines: older
// pages on scrolling to the top, catching up by `after` once signed in
// again, and opening a chat at one of its messages (a search result) as a
// window into the past, newer pages on scrolling down. RoomsController and
// PmController extend it; each gives `timelines` (key -> Timeline),
// `current` (the key on screen), `view` (its ChatView), and the methods
// history(key, page) (the request for a page), renderTimeline(options),
// startTimeline(key, timeline, entries, more) (a first page arrived),
// loadNewest(key, timeline), absorb(key, entries, { count }) (entries that
// were new to the page), markRead() and failed(key, error). Each counts
// its local changes to its list in `listChanges` (settledList).

import { Timeline, HISTORY_PAGE } from './chatview.js';

const AROUND = 25;                  // entries before the message opened at, in its first page
const LIST_ATTEMPTS = 3;            // a list overtaken by local changes is asked again, at most so often

export class ChatController {
    constructor() {
        this.listChanges = 0;           // local changes to the list, for settledList
    }

    // The server's list (rooms, conversations) by fetch(), asked again while
    // this page changed its own copy during the request: a list the server
    // made before a change the page has already seen (a room deleted or
    // left, a message received) would undo it
    async settledList(fetch) {
        let list;
        for (let attempt = 0; attempt < LIST_ATTEMPTS; attempt++) {
            const changes = this.listChanges;
            list = await fetch();
            if (this.listChanges === changes)
                break;
        }
        return list;
    }

    // The page before the oldest entry of the chat on screen, keeping what
    // the reader sees in place
    async loadOlder() {
        const chatKey = this.current;
        const timeline = chatKey ? this.timelines.get(chatKey) : null;
        if (!timeline?.canLoadOlder)
            return;
        const box = this.view.el.box;
        const render = () => this.renderTimeline({ keepFromBottom: box.scrollHeight - box.scrollTop });
        const loading = timeline.loadOlder((page) => this.history(chatKey, page));
        render();       // "Loading older messages…"
        try {
            await loading;
        } catch (error) {
            this.failed(chatKey, error);
        }
        if (chatKey === this.current && this.timelines.get(chatKey) === timeline)
            render();
    }

    // Fetches what came after the newest entry this page has, page by page
    async catchUp(chatKey) {
        const timeline = this.timelines.get(chatKey);
        try {
            const added = await timeline?.catchUp((page) => this.history(chatKey, page));
            if (added?.length) {
                this.absorb(chatKey, added, { count: true });
                if (chatKey === this.current)
                    this.renderTimeline();
            }
            if (added && chatKey === this.current)
                this.markRead();
        } catch (error) {
            this.failed(chatKey, error);
        }
    }

    // --- a window into the past (opened at a message) ---------------------------

    // Whether the timeline held for a chat can show it as asked: at the
    // message seq (null: at its newest entries)
    serves(timeline, seq) {
        if (!timeline?.loaded)
            return false;
        return seq === null ? !timeline.newer : timeline.entries.has(seq);
    }

    // The first page of a chat opened at the message seq: the entries around
    // it, the message in the middle of the view. It is a window into the past
    // while newer entries exist: those that arrive live are counted, not
    // shown, and come with the pages below it; the chat is not marked read
    async loadAround(chatKey, timeline, seq) {
        try {
            const reply = await this.history(chatKey, { after: Math.max(0, seq - AROUND - 1), limit: HISTORY_PAGE });
            if (this.timelines.get(chatKey) !== timeline)
                return;
            const entries = reply.messages ?? [];
            timeline.newer = Boolean(reply.more);
            // Older entries may exist before the page: the first scroll-back finds out
            this.startTimeline(chatKey, timeline, entries, (entries[0]?.seq ?? 1) > 1);
            if (chatKey === this.current)
                this.view.reveal(seq);
        } catch (error) {
            if (this.timelines.get(chatKey) === timeline)
                this.timelines.delete(chatKey);
            this.failed(chatKey, error);
        }
    }

    // The page after the newest entry of the window on screen, what the
    // reader sees kept in place; the window that meets the present is caught
    // up at once (an entry that came while the last page was on its way)
    async loadNewer() {
        const chatKey = this.current;
        const timeline = chatKey ? this.timelines.get(chatKey) : null;
        if (!timeline?.canLoadNewer)
            return;
        const loading = timeline.loadNewer((page) => this.history(chatKey, page));
        this.renderTimeline();      // "Loading newer messages…"
        try {
            this.absorb(chatKey, await loading, { count: false });
        } catch (error) {
            this.failed(chatKey, error);
        }
        if (chatKey !== this.current || this.timelines.get(chatKey) !== timeline)
            return;
        this.renderTimeline();
        if (!timeline.newer)
            await this.catchUp(chatKey);
    }

    // From a window into the past back to the newest entries of the chat on
    // screen (Jump to newest, or a message written there)
    async backToPresent() {
        const chatKey = this.current;
        if (!chatKey || !this.timelines.get(chatKey)?.newer)
            return;
        const fresh = new Timeline();
        this.timelines.set(chatKey, fresh);
        this.view.show(chatKey, fresh);
        this.renderTimeline({ toBottom: true });
        await this.loadNewest(chatKey, fresh);
    }
}

// What rooms and private conversations do alike with their timelines: older
// pages on scrolling to the top, and catching up by `after` once signed in
// again. RoomsController and PmController extend it; each gives
// `timelines` (key -> Timeline), `current` (the key on screen), `view` (its
// ChatView), and the methods history(key, page) (the request for a page),
// renderTimeline(options), absorb(key, entries, { count }) (entries that
// were new to the page), markRead() and failed(key, error).

export class ChatController {
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
}

// The connection, told truthfully: the header's badge (the round trip in its
// tooltip), and while the connection is lost a banner with a live countdown
// to the next attempt and "Reconnect now". Nothing shows before sign-in, when
// no socket is open.

const $ = (id) => document.getElementById(id);

export class ConnectionStatus {
    // online(bool): the rest of the page follows (Send, presence greyed)
    constructor(client, { online = () => {} } = {}) {
        this.client = client;
        this.onlineChanged = online;
        this.ticker = null;
        this.active = false;        // signed in or signing in: the socket is wanted
        this.ready = false;         // the connection is signed in and the page caught up
        client.on(':connecting', () => this.render());
        client.on(':open', () => this.render());
        client.on(':close', () => this.render());
        client.on(':waiting', () => this.render());
        client.on(':latency', () => this.render());
        $('reconnect-now').addEventListener('click', () => client.reconnectNow());
    }

    // The session is signed in (true) or not (false): "offline" only means
    // something while the user expects to be connected
    setActive(active) {
        this.active = active;
        this.render();
    }

    // The session on this connection is signed in (again) and caught up
    setReady(ready) {
        this.ready = ready;
        this.render();
    }

    badge(text, tone, title) {
        const badge = $('status');
        badge.hidden = text === null;
        badge.textContent = text ?? '';
        badge.className = `badge text-bg-${tone}`;
        badge.title = title;
    }

    render() {
        const client = this.client;
        clearInterval(this.ticker);
        this.ticker = null;
        if (client.connected && this.active && !this.ready) {
            this.badge('Signing in…', 'secondary', 'Connected; signing in again');
            this.banner(null);
        } else if (client.connected) {
            const ms = client.latencyMs;
            this.badge('Connected', 'success',
                ms === null ? 'Connected to the server' : `Connected · round trip ${ms.toFixed(1)} ms`);
            this.banner(null);
        } else if (!client.wanted) {
            this.badge(null, 'secondary', '');
            this.banner(null);
        } else if (client.connecting) {
            this.badge(this.active ? 'Reconnecting…' : 'Connecting…', 'secondary', 'Connecting to the server');
            if (this.active)
                this.banner('The connection to the server was lost; connecting again…', { busy: true });
        } else {
            this.badge('Disconnected', 'danger', 'Not connected to the server');
            this.countdown();
            this.ticker = setInterval(() => this.countdown(), 1000);
        }
        this.onlineChanged(client.connected);
    }

    countdown() {
        const at = this.client.retryAt;
        const seconds = at === null ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
        this.banner(seconds === null ? 'The connection to the server was lost.'
            : `The connection to the server was lost; trying again in ${seconds} s.`);
    }

    banner(text, { busy = false } = {}) {
        $('status-detail').hidden = !text || !this.active;
        $('status-detail-text').textContent = text ?? '';
        $('reconnect-now').disabled = busy;
    }
}

// A few hosts on one machine: network namespaces with their own addresses,
// joined by a bridge in a namespace of its own, as a cluster would run on
// several machines. The test's own namespace gets an address on the bridge
// too, to reach the gateways as browsers would. Everything is created by
// Network.create() and removed by destroy(); names carry a random suffix so
// that runs never meet.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Proc } from './harness.js';

function ip(...args) {
    return execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

// Why this machine cannot make namespaces (not root, no ip), or null
export function netnsUnavailable() {
    const probe = `plprobe${randomBytes(3).toString('hex')}`;
    try {
        ip('netns', 'add', probe);
        ip('netns', 'del', probe);
        return null;
    } catch (error) {
        return `network namespaces unavailable here: ${error.message.split('\n')[0]}`;
    }
}

export class Network {
    // hosts: names of the hosts to make; each gets 10.<a>.<b>.<n> in order
    static create(hosts) {
        return new Network(hosts);
    }

    constructor(hosts) {
        this.tag = randomBytes(3).toString('hex');
        this.prefix = `10.${200 + (randomBytes(1)[0] % 50)}.${randomBytes(1)[0]}`;
        this.switchNs = `plsw${this.tag}`;
        this.namespaces = [];
        this.hosts = new Map();
        this.links = [];
        try {
            this.addNamespace(this.switchNs);
            ip('-n', this.switchNs, 'link', 'add', 'br0', 'type', 'bridge');
            ip('-n', this.switchNs, 'link', 'set', 'br0', 'up');
            hosts.forEach((name, index) => this.addHost(name, index + 1));
            // The test's side: a port on the bridge from the namespace it runs in
            this.local = `${this.prefix}.254`;
            const outer = `plo${this.tag}`;
            ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', 'up-local', 'netns', this.switchNs);
            this.links.push(outer);
            ip('addr', 'add', `${this.local}/24`, 'dev', outer);
            ip('link', 'set', outer, 'up');
            ip('-n', this.switchNs, 'link', 'set', 'up-local', 'master', 'br0', 'up');
        } catch (error) {
            this.destroy();
            throw error;
        }
    }

    addNamespace(name) {
        ip('netns', 'add', name);
        this.namespaces.push(name);
        ip('-n', name, 'link', 'set', 'lo', 'up');
    }

    addHost(name, number) {
        const ns = `pl${name}${this.tag}`;
        const address = `${this.prefix}.${number}`;
        this.addNamespace(ns);
        ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `up${number}`,
           'netns', this.switchNs);
        ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
        ip('-n', ns, 'link', 'set', 'eth0', 'up');
        ip('-n', this.switchNs, 'link', 'set', `up${number}`, 'master', 'br0', 'up');
        this.hosts.set(name, { ns, address });
    }

    address(host) {
        return this.hosts.get(host).address;
    }

    // A process on host: `ip netns exec` executes it in place, so the Proc's
    // pid and signals are the program's own
    spawn(host, name, file, args) {
        return new Proc(name, 'ip', ['netns', 'exec', this.hosts.get(host).ns, file, ...args]);
    }

    destroy() {
        for (const link of this.links.splice(0)) {
            try { ip('link', 'del', link); } catch { /* gone with its peer */ }
        }
        for (const ns of this.namespaces.splice(0).reverse()) {
            try { ip('netns', 'del', ns); } catch { /* already gone */ }
        }
    }
}

// deploy/ as an operator gets it (deploy/README.md): every unit the README
// lists exists, and each unit's ExecStart line, run without systemd with the
// paths of this build and deploy/parley.cfg (its ports, data folder and keys
// made this test's), starts: parley.service serves /healthz and a user; the
// split units (broker, a plugin process per default plugin, gateway) serve a
// user together; each stops on SIGTERM with status 0.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import {
    Proc, repoRoot, binDir, pluginDir, tempDir, freePort, waitForHealth, testKeys,
    sanitizerReports, untilRegistered,
} from '../lib/harness.js';
import { connectUser, ok } from '../lib/rooms.js';

const deployDir = path.join(repoRoot, 'deploy');
const unitDir = path.join(deployDir, 'systemd');
const dir = tempDir('parley-deploy-');
const clients = [];
after(() => {
    for (const client of clients)
        client.ws.terminate();
    rmSync(dir, { recursive: true, force: true });
});

// The unit's ExecStart, its continuation lines joined, as words
function execStart(unit) {
    const text = readFileSync(path.join(unitDir, unit), 'utf8').replace(/\\\n/g, ' ');
    const line = /^ExecStart=(.*)$/m.exec(text);
    assert.ok(line, `${unit} has an ExecStart`);
    assert.ok(!/["'$]/.test(line[1]), `${unit}: no quoting or variables to expand: ${line[1]}`);
    return line[1].trim().split(/\s+/);
}

// deploy/parley.cfg with this test's ports, data folder, web folder and keys
async function exampleConfig() {
    const port = await freePort();
    const brokerPort = await freePort();
    const data = tempDir('parley-deploy-data-');
    const keys = testKeys();
    const replacements = [
        ['127.0.0.1:8080', `127.0.0.1:${port}`],
        ['tcp://127.0.0.1:7700', `tcp://127.0.0.1:${brokerPort}`],
        ['/var/lib/parley', data],
        ['/opt/parley/web', path.join(repoRoot, 'web')],
        ['/etc/parley/keys/broker.cert', keys.broker],
        ['/etc/parley/keys/allowed', keys.allow],
        ['/etc/parley/keys/peer.cert', keys.peer],
    ];
    let text = readFileSync(path.join(deployDir, 'parley.cfg'), 'utf8');
    for (const [from, to] of replacements) {
        assert.ok(text.includes(from), `deploy/parley.cfg names ${from}`);
        text = text.split(from).join(to);
    }
    assert.ok(!/\/opt\/parley|\/etc\/parley|\/var\/lib/.test(text.replace(/^\s*#.*$/gm, '')),
              'every path of the example is one this test replaced');
    const file = path.join(dir, `parley-${port}.cfg`);
    writeFileSync(file, text);
    return { file, port, data };
}

// Starts a unit's ExecStart with this build and the configuration file
function startUnit(unit, config, instance) {
    const words = execStart(unit).map((word) => word
        .replace('/opt/parley/bin/', `${binDir}/`)
        .replace('/opt/parley/plugins/', `${pluginDir}/`)
        .replace('/etc/parley/parley.cfg', config.file)
        .replace('%i', instance ?? ''));
    for (const word of words)
        assert.ok(!/\/opt\/parley|\/etc\/parley|%/.test(word), `${unit}: ${word} is substituted`);
    return new Proc(instance ? unit.replace('@', `@${instance}`) : unit, words[0], words.slice(1));
}

async function stopUnit(proc) {
    const status = await proc.stop();
    assert.deepEqual(sanitizerReports(proc.output), [], proc.output);
    assert.deepEqual(status, { code: 0, signal: null }, `${proc.name}\n${proc.output}`);
}

test('every unit deploy/README.md lists is in deploy/systemd, and every unit there is listed', () => {
    const readme = readFileSync(path.join(deployDir, 'README.md'), 'utf8');
    const listed = new Set([...readme.matchAll(/`(?:systemd\/)?([\w@-]+\.service)`/g)].map((match) => match[1]));
    const present = new Set(readdirSync(unitDir).filter((file) => file.endsWith('.service')));
    assert.ok(listed.has('parley.service'));
    assert.deepEqual([...listed].sort(), [...present].sort());
});

test('parley.service starts with the example configuration, serves, and stops on SIGTERM', async () => {
    const config = await exampleConfig();
    const parley = startUnit('parley.service', config);
    try {
        await waitForHealth(config.port, 30000);
        const alice = await connectUser(`ws://127.0.0.1:${config.port}/ws`, 'deploy_alice', clients);
        await ok(alice, { type: 'room.create', room: 'deploy-one' });
        alice.ws.terminate();
    } finally {
        await stopUnit(parley);
    }
    assert.match(parley.output, new RegExp(`data in ${config.data}`));
});

test('the split units start with the example configuration, serve together, and stop on SIGTERM', async () => {
    const config = await exampleConfig();
    const broker = startUnit('parley-broker.service', config);
    const plugins = [];
    let gateway;
    try {
        assert.ok(await broker.waitForOutput(/running with/, 15000), broker.output);
        // The store first: the others call it as they start
        for (const name of ['store-sqlite', 'auth', 'presence', 'rooms', 'pm', 'search', 'files']) {
            const plugin = startUnit('parley-plugin@.service', config, name);
            plugins.push(plugin);
            // Registered with the broker, its routes in the broker's table
            // ("hosting" comes before that)
            await untilRegistered([plugin]);
        }
        gateway = startUnit('parley-gw.service', config);
        await waitForHealth(config.port, 30000);
        const bob = await connectUser(`ws://127.0.0.1:${config.port}/ws`, 'deploy_bob', clients);
        await ok(bob, { type: 'room.create', room: 'deploy-two' });
        await ok(bob, { type: 'msg.send', room: 'deploy-two', text: 'Déploiement réussi' });
        const found = await ok(bob, { type: 'search', query: 'deploiement' });
        assert.deepEqual(found.results.map((entry) => entry.text), ['Déploiement réussi']);
        bob.ws.terminate();
    } finally {
        if (gateway)
            await stopUnit(gateway);
        for (const plugin of plugins.reverse())
            await stopUnit(plugin);
        await stopUnit(broker);
    }
});

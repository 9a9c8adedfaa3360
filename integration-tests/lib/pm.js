// What the private message tests share: a server with the pm plugin, and a
// record of the pm events a session receives.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { startParley, binDir, sanitizerReports } from './harness.js';
import { FAST_AUTH, roomsArgs } from './rooms.js';

// parley loads pm by default once the lead adds it there; until then it must
// be asked for (asking twice would fail: an instance name is unique)
let pmDefault;
export function pmLoadedByDefault() {
    if (pmDefault === undefined) {
        const help = spawnSync(path.join(binDir, 'parley'), ['--help'], { encoding: 'utf8' });
        const text = `${help.stdout ?? ''}${help.stderr ?? ''}`;
        const line = text.split('\n').find((each) => /^Default plugins/i.test(each)) ?? '';
        pmDefault = /\bpm\b/.test(line);
    }
    return pmDefault;
}

export function pmArgs() {
    return pmLoadedByDefault() ? [] : ['--plugin', 'pm'];
}

// parley with the pm plugin; stop() checks a clean exit and no sanitizer report
export async function startPmParley({ dataDir, args = [] } = {}) {
    const server = await startParley({
        dataDir, args: [...roomsArgs(), ...pmArgs(), ...FAST_AUTH, ...args],
    });
    return {
        ...server,
        async stop() {
            const status = await server.stop();
            assert.deepEqual(sanitizerReports(server.proc.output), [], server.proc.output);
            assert.equal(status.code, 0,
                         `parley exited with ${JSON.stringify(status)}\n${server.proc.output}`);
            return status;
        },
    };
}

// Every pm (and read) event a client receives, in arrival order, kept
// apart from the harness's queue
export function recordPm(client) {
    const log = [];
    client.ws.on('message', (data) => {
        const frame = JSON.parse(data.toString());
        if (frame.type === 'pm' || frame.type === 'read')
            log.push(frame);
    });
    return log;
}

export function nextPm(client, predicate = () => true, timeoutMs = 10000) {
    return client.nextEvent((frame) => frame.type === 'pm' && predicate(frame), timeoutMs);
}

// A frame without the harness's own bookkeeping (__binary), for deepEqual
export function plain(frame) {
    const { __binary, ...rest } = frame;
    return rest;
}

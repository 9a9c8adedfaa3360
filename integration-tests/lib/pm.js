// What the private message tests share: a server with the pm plugin, and a
// record of the pm events a session receives.

import { startParley, stoppedCleanly } from './harness.js';
import { FAST_AUTH, roomsArgs, pluginArgs } from './rooms.js';

export const pmArgs = () => pluginArgs('pm');

// parley with the pm plugin; stop() checks a clean exit and no sanitizer report
export async function startPmParley({ dataDir, args = [] } = {}) {
    return stoppedCleanly(await startParley({
        dataDir, args: [...roomsArgs(), ...pmArgs(), ...FAST_AUTH, ...args],
    }));
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

// How every test ends a parley: it stops, exits 0, and the sanitizers reported
// nothing on the way.

import assert from 'node:assert/strict';
import { sanitizerReports } from './harness.js';

export async function stopCleanly(server) {
    const status = await server.stop();
    assert.deepEqual(sanitizerReports(server.proc.output), []);
    assert.equal(status.code, 0, `parley exited with ${JSON.stringify(status)}\n${server.proc.output}`);
    return status;
}

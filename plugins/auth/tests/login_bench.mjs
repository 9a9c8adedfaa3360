// Logins per second through the whole server (gateway, broker, auth with
// argon2id on its workers, store-sqlite): CLIENTS connections, each logging
// in and out in a loop for SECONDS. Not a test; run by hand against a
// RelWithDebInfo build:
//
//   PARLEY_BUILD=build node plugins/auth/tests/login_bench.mjs [clients] [seconds] [auth options...]
//   e.g. ... login_bench.mjs 4 10 workers=2 mem_limit=19922944

import { rmSync } from 'node:fs';
import { startParley, Client, tempDir } from '../../../integration-tests/lib/harness.js';

const clients = Number(process.argv[2] ?? 4);
const seconds = Number(process.argv[3] ?? 10);
const options = process.argv.slice(4).flatMap((option) => ['--option', `auth.${option}`]);
const data = tempDir('parley-login-bench-');
const server = await startParley({
    dataDir: data,
    args: ['--no-default-plugins', '--plugin', 'store-sqlite', '--plugin', 'auth',
           '--option', `store-sqlite.path=${data}/parley.db`,
           '--option', 'auth.max_failures_address=0', ...options],
});

const latencies = [];
async function run(index) {
    const client = await Client.connect(server.url);
    const name = `bench${index}`;
    const registered = await client.request({ type: 'auth.register', username: name, password: 'benchmark password' });
    if (registered.type !== 'ok')
        throw new Error(JSON.stringify(registered));
    await client.request({ type: 'auth.logout' });
    const deadline = Date.now() + seconds * 1000;
    let count = 0;
    while (Date.now() < deadline) {
        const started = process.hrtime.bigint();
        const reply = await client.request({ type: 'auth.login', username: name, password: 'benchmark password' });
        latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
        if (reply.type !== 'ok')
            throw new Error(JSON.stringify(reply));
        await client.request({ type: 'auth.logout' });
        count++;
    }
    client.ws.terminate();
    return count;
}

const started = Date.now();
const counts = await Promise.all(Array.from({ length: clients }, (_, index) => run(index)));
const elapsed = (Date.now() - started) / 1000;
const total = counts.reduce((a, b) => a + b, 0);
latencies.sort((a, b) => a - b);
const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(1);
console.log(`${clients} clients, ${elapsed.toFixed(1)} s: ${total} logins, ${(total / elapsed).toFixed(1)} logins/s ` +
            `(each followed by a logout); login latency p50 ${at(0.5)} ms, p99 ${at(0.99)} ms`);
console.log((server.proc.output.match(/auth@.*ready.*/) ?? [''])[0]);
await server.stop();
rmSync(data, { recursive: true, force: true });

// parley-bench is a measuring tool: its figures are worth something only if its
// counts are exact. Run it with small numbers against a real parley and assert
// on its JSON: no loss, deliveries == messages x members, no errors. Never on
// timings (the machine is shared).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { binDir, startParley, tempDir } from '../lib/harness.js';

const bench = process.env.PARLEY_BENCH ?? path.join(binDir, 'parley-bench');

const CHEAP = ['--option', 'auth.ops_limit=1', '--option', 'auth.mem_limit=8192',
    '--option', 'rooms.msg_rate=0'];

function runBench(args, timeoutMs = 120000) {
    return new Promise((resolve, reject) => {
        const child = spawn(bench, ['--quiet', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.on('data', (chunk) => { output += chunk; });
        child.stderr.on('data', (chunk) => { output += chunk; });
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        child.on('error', reject);
        child.on('exit', (code) => {
            clearTimeout(timer);
            resolve({ code, output });
        });
    });
}

async function benchJson(args) {
    const dir = tempDir('parley-bench-');
    const file = path.join(dir, 'result.json');
    try {
        const { code, output } = await runBench([...args, '--json', file]);
        assert.ok(existsSync(file), `no JSON written; output:\n${output}`);
        const result = JSON.parse(readFileSync(file, 'utf8'));
        return { code, output, result };
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

test('fanout: every member gets every message exactly once, counted', async () => {
    const server = await startParley({ args: CHEAP, withExample: false });
    try {
        const members = 25, rate = 40, duration = 2;
        const { code, output, result } = await benchJson(['--url', server.url, '--members', String(members),
            '--senders', '3', '--rate', String(rate), '--duration', String(duration), 'fanout']);
        assert.equal(code, 0, output);
        assert.equal(result.failures, 0);
        const [fanout] = result.scenarios;
        assert.equal(fanout.scenario, 'fanout');
        assert.equal(fanout.messages, rate * duration);
        assert.equal(fanout.acked, fanout.messages);
        assert.equal(fanout.failed_sends, 0);
        assert.equal(fanout.deliveries, fanout.messages * members);
        assert.equal(fanout.expected_deliveries, fanout.deliveries);
        assert.equal(fanout.loss, 0);
        assert.equal(fanout.duplicates, 0);
        assert.equal(fanout.gaps, 0);
        assert.equal(fanout.errors, 0, fanout.first_error);
        assert.ok(fanout.latency_p50_us <= fanout.latency_p99_us);
        assert.ok(fanout.latency_p99_us <= fanout.latency_max_us);
    } finally {
        await server.stop();
    }
});

test('fanout against a server that refuses the sends reports errors and fails, not a result', async () => {
    // With the default rate limit (20 a second per user, bursts of 40) one
    // sender asked for 200 a second is refused: the tool must say so
    const server = await startParley({
        args: ['--option', 'auth.ops_limit=1', '--option', 'auth.mem_limit=8192'], withExample: false,
    });
    try {
        const { code, result } = await benchJson(['--url', server.url, '--members', '5',
            '--senders', '1', '--rate', '200', '--duration', '1', 'fanout']);
        assert.equal(code, 1);
        const [fanout] = result.scenarios;
        assert.ok(fanout.failed_sends > 0);
        assert.equal(fanout.failed_sends + fanout.acked, fanout.messages);
        assert.equal(fanout.error_kinds.rate_limited, fanout.failed_sends);
        assert.equal(fanout.deliveries, fanout.acked * 5);
        assert.equal(fanout.loss, 0);
    } finally {
        await server.stop();
    }
});

test('connect: every connection registers, then resumes, and stays open', async () => {
    const server = await startParley({ args: CHEAP, withExample: false });
    try {
        const { code, output, result } = await benchJson(['--url', server.url, '--members', '60',
            '--window', '16', '--sources', '3', '--server-pid', String(server.proc.child.pid), 'connect']);
        assert.equal(code, 0, output);
        const [connect] = result.scenarios;
        assert.equal(connect.registered_open, 60);
        assert.equal(connect.resumed_open, 60);
        assert.equal(connect.errors, 0, connect.first_error);
        assert.ok(connect.server_rss_after_kib > 0);
    } finally {
        await server.stop();
    }
});

test('baseline: the raw server delivers every frame to every socket', async () => {
    const { code, output, result } = await benchJson(['--members', '30', '--rate', '50',
        '--duration', '1', 'baseline']);
    assert.equal(code, 0, output);
    const [baseline] = result.scenarios;
    assert.equal(baseline.messages, 50);
    assert.equal(baseline.loss, 0);
    assert.ok(baseline.flood_messages > 0);
    assert.equal(baseline.flood_loss, 0);
    assert.equal(baseline.errors, 0, baseline.first_error);
});

test('a bad scenario name or option is refused with a sentence', async () => {
    const { code, output } = await runBench(['fanin']);
    assert.equal(code, 2);
    assert.match(output, /unknown scenario 'fanin'/);
    const help = await runBench(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.output, /fanout/);
    assert.match(help.output, /baseline/);
    assert.match(help.output, /connect/);
});

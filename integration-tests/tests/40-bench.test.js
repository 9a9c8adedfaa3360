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
import { TestCa } from '../lib/tls.js';

const bench = process.env.PARLEY_BENCH ?? path.join(binDir, 'parley-bench');

const CHEAP = ['--option', 'auth.ops_limit=1', '--option', 'auth.mem_limit=8192',
    '--option', 'rooms.msg_rate=0', '--option', 'pm.msg_rate=0'];

// The counts every message scenario must get exactly right
function assertCounted(result, recipients) {
    assert.ok(result.messages > 0);
    assert.equal(result.acked, result.messages);
    assert.equal(result.failed_sends, 0);
    assert.equal(result.expected_deliveries, result.acked * recipients);
    assert.equal(result.deliveries, result.expected_deliveries);
    assert.equal(result.loss, 0);
    assert.equal(result.duplicates, 0);
    assert.equal(result.gaps, 0);
    assert.equal(result.errors, 0, result.first_error);
    assert.ok(result.latency_p50_us <= result.latency_max_us);
    assert.ok(result.ack_latency_p50_us <= result.ack_latency_max_us);
}

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

test('fanout over wss:// (a parley with --tls-cert): every member gets every message exactly once', async () => {
    const ca = new TestCa();
    const server = await startParley({ args: CHEAP, withExample: false, tls: ca.issue('bench', 'b001') });
    try {
        assert.match(server.url, /^wss:/);
        const members = 20;
        const { code, output, result } = await benchJson(['--url', server.url, '--members', String(members),
            '--senders', '2', '--rate', '30', '--duration', '2', 'fanout']);
        assert.equal(code, 0, output);
        assert.equal(result.failures, 0);
        const [fanout] = result.scenarios;
        assert.equal(fanout.messages, 60);
        assertCounted(fanout, members);
    } finally {
        await server.stop();
        ca.remove();
    }
});

test('parley-bench spreads its connections over 127.0.0.x: a gateway that takes 12 from one address serves 60 members', async () => {
    const server = await startParley({ args: [...CHEAP, '--max-per-address', '12',
        '--max-unauthenticated-per-address', '4'], withExample: false });
    try {
        const members = 60;
        const { code, output, result } = await benchJson(['--url', server.url, '--members', String(members),
            '--senders', '2', '--rate', '20', '--duration', '1', '--window', '16', '--sources', '8',
            'fanout']);
        assert.equal(code, 0, output);
        const [fanout] = result.scenarios;
        assert.equal(fanout.errors, 0, fanout.first_error);
        assert.equal(fanout.deliveries, fanout.messages * members);
        assert.doesNotMatch(server.proc.output, /refused one/);
        // From one address, the same run is refused
        const crowded = await benchJson(['--url', server.url, '--members', String(members),
            '--senders', '2', '--rate', '20', '--duration', '1', '--window', '16', '--sources', '1',
            'fanout']);
        assert.equal(crowded.code, 1, 'one address cannot hold them all');
        assert.match(server.proc.output, /refused one more with 429/);
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

test('rooms: closed loop into 3 rooms of 4, every member gets every acked message of its room', async () => {
    const server = await startParley({ args: CHEAP, withExample: false });
    try {
        const { code, output, result } = await benchJson(['--url', server.url, '--rooms', '3',
            '--room-members', '4', '--rate', '0', '--inflight', '2', '--duration', '1', 'rooms']);
        assert.equal(code, 0, output);
        assert.equal(result.failures, 0);
        const [rooms] = result.scenarios;
        assert.equal(rooms.scenario, 'rooms');
        assert.equal(rooms.rooms, 3);
        assert.equal(rooms.room_members, 4);
        assertCounted(rooms, 4);
    } finally {
        await server.stop();
    }
});

test('rooms at a fixed rate sends exactly rate x duration messages', async () => {
    const server = await startParley({ args: CHEAP, withExample: false });
    try {
        const { code, output, result } = await benchJson(['--url', server.url, '--rooms', '2',
            '--room-members', '3', '--senders', '2', '--rate', '30', '--duration', '1', 'rooms']);
        assert.equal(code, 0, output);
        const [rooms] = result.scenarios;
        assert.equal(rooms.messages, 30);
        assert.equal(rooms.senders_per_room, 2);
        assertCounted(rooms, 3);
    } finally {
        await server.stop();
    }
});

test('pm: both users of each pair get every message once, in order', async () => {
    const server = await startParley({ args: CHEAP, withExample: false });
    try {
        const { code, output, result } = await benchJson(['--url', server.url, '--pairs', '3',
            '--rate', '0', '--inflight', '3', '--count', '300', 'pm']);
        assert.equal(code, 0, output);
        const [pm] = result.scenarios;
        assert.equal(pm.scenario, 'pm');
        assert.equal(pm.pairs, 3);
        assert.equal(pm.messages, 300);
        assertCounted(pm, 2);
    } finally {
        await server.stop();
    }
});

test('pm with --nonce: every message once, and the line and the JSON say the nonce', async () => {
    const server = await startParley({ args: CHEAP, withExample: false });
    try {
        const { code, output, result } = await benchJson(['--url', server.url, '--pairs', '2',
            '--rate', '0', '--inflight', '2', '--count', '100', '--nonce=time', 'pm']);
        assert.equal(code, 0, output);
        assert.match(output, /pm P=2 closed loop W=2 nonce=time /);
        const [pm] = result.scenarios;
        assert.equal(pm.nonce, 'time');
        assert.equal(pm.messages, 100);
        assertCounted(pm, 2);
    } finally {
        await server.stop();
    }
});

test('history: every page of a 500-entry room is checked and walks reach seq 1', async () => {
    const server = await startParley({ args: CHEAP, withExample: false });
    try {
        const fillers = 3, readers = 2, entries = 500;
        const { code, output, result } = await benchJson(['--url', server.url, '--entries', String(entries),
            '--senders', String(fillers), '--readers', String(readers), '--duration', '1', 'history']);
        assert.equal(code, 0, output);
        const [history] = result.scenarios;
        assert.equal(history.scenario, 'history');
        assert.equal(history.messages, entries);
        assertCounted(history, fillers);
        // The room's timeline: a join notice per member but the creator, then the entries
        assert.equal(history.last_seq, entries + fillers + readers - 1);
        assert.ok(history.pages > 0);
        assert.equal(history.bad_pages, 0);
        assert.ok(history.walks > 0);
        assert.ok(history.page_entries >= history.walks * history.last_seq);
    } finally {
        await server.stop();
    }
});

test('history --decorate: the oldest messages are edited and reacted to, and every page of them comes as it is now', async () => {
    const server = await startParley({ args: CHEAP, withExample: false });
    try {
        const fillers = 3, readers = 2, entries = 120, decorated = 20;
        const { code, output, result } = await benchJson(['--url', server.url, '--entries', String(entries),
            '--senders', String(fillers), '--readers', String(readers), '--decorate', String(decorated),
            '--duration', '1', 'history']);
        assert.equal(code, 0, output);
        const [history] = result.scenarios;
        assertCounted(history, fillers);
        assert.equal(history.decorated, decorated);
        assert.equal(history.page, decorated);
        // After the fill, each decorated message took an edit and a reaction from every filler
        assert.equal(history.last_seq, entries + fillers + readers - 1 + decorated * (1 + fillers));
        assert.ok(history.pages > 0);
        assert.equal(history.bad_pages, 0);
        assert.equal(history.page_entries, history.pages * decorated);
    } finally {
        await server.stop();
    }
});

test('search: 10 rooms filled with 600 messages, a searcher in 3; every first page holds exactly its matches', async () => {
    const server = await startParley({ args: CHEAP, withExample: false });
    try {
        const { code, output, result } = await benchJson(['--url', server.url, '--rooms', '10',
            '--entries', '600', '--member-of', '3', '--inflight', '2', '--duration', '2', 'search']);
        assert.equal(code, 0, output);
        const [search] = result.scenarios;
        assert.equal(search.scenario, 'search');
        assert.equal(search.acked, 600);
        assert.equal(search.failed_sends, 0);
        assert.equal(search.errors, 0, search.first_error);
        // The common word is in every second message, the rare one in 1 of 10:
        // 3 of the 10 rooms are the searcher's
        assert.ok(search.common_matches > 20, JSON.stringify(search));
        assert.ok(search.rare_matches > 0 && search.rare_matches < search.common_matches);
        assert.ok(search.common_searches > 0 && search.rare_searches > 0);
        assert.equal(search.wrong, 0);
        assert.ok(search.common_p50_us <= search.common_max_us);
        assert.ok(search.rare_p50_us <= search.rare_max_us);
    } finally {
        await server.stop();
    }
});

test('latency: 50 messages one at a time, each delivered to both members', async () => {
    const server = await startParley({ args: CHEAP, withExample: false });
    try {
        const { code, output, result } = await benchJson(['--url', server.url, '--count', '50', 'latency']);
        assert.equal(code, 0, output);
        const [latency] = result.scenarios;
        assert.equal(latency.scenario, 'latency');
        assert.equal(latency.messages, 50);
        assertCounted(latency, 2);
        assert.equal(latency.inflight, 1);
    } finally {
        await server.stop();
    }
});

test('--idle: 30 more users register first and stay online, read, through latency', async () => {
    const server = await startParley({ args: CHEAP, withExample: false });
    try {
        const { code, output, result } = await benchJson(['--url', server.url, '--idle', '30',
            '--window', '8', '--sources', '3', '--count', '20', 'latency']);
        assert.equal(code, 0, output);
        assert.equal(result.failures, 0);
        const [latency] = result.scenarios;
        assert.equal(latency.scenario, 'latency');
        assert.equal(latency.idle, 30);
        assert.equal(latency.idle_open, 30);
        // Every authenticated session hears of the latency users coming online
        assert.ok(latency.idle_frames > 0);
        assert.equal(latency.messages, 20);
        assertCounted(latency, 2);
        assert.match(output, /latency .*, idle 30 \(30 open, \d+ frames\)/);
    } finally {
        await server.stop();
    }
});

test('fanout --max raises the rate up to the cap and counts every step', async () => {
    const server = await startParley({ args: CHEAP, withExample: false });
    try {
        const members = 10;
        const { code, output, result } = await benchJson(['--url', server.url, '--members', String(members),
            '--senders', '2', '--rate', '10', '--max', '--step', '1', '--max-rate', '40',
            '--p99-bound', '5000', 'fanout']);
        assert.equal(code, 0, output);
        const [max] = result.scenarios;
        assert.equal(max.scenario, 'fanout_max');
        // 10, 20, 40 a second for 1 s each, all within a 5 s bound
        assert.equal(max.steps, 3);
        assert.equal(max.max_rate, 40);
        assert.equal(max.failing_rate, 0);
        assert.equal(max.messages, 70);
        assertCounted(max, members);
    } finally {
        await server.stop();
    }
});

test('pm against a server that limits pm.send reports the refusals and fails', async () => {
    // Default pm.msg_rate (20 a second, bursts of 40): one pair sending as fast
    // as the oks come is refused within the second
    const server = await startParley({
        args: ['--option', 'auth.ops_limit=1', '--option', 'auth.mem_limit=8192'], withExample: false,
    });
    try {
        const { code, result } = await benchJson(['--url', server.url, '--pairs', '1', '--rate', '0',
            '--duration', '1', 'pm']);
        assert.equal(code, 1);
        const [pm] = result.scenarios;
        assert.ok(pm.failed_sends > 0);
        assert.equal(pm.failed_sends + pm.acked, pm.messages);
        assert.equal(pm.error_kinds.rate_limited, pm.failed_sends);
        assert.equal(pm.deliveries, pm.acked * 2);
        assert.equal(pm.loss, 0);
        assert.equal(result.failures, 1);
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
    // The idle connections are held through every scenario: both must fit
    const crowded = await runBench(['--idle', '18500', '--members', '501', 'latency', 'fanout']);
    assert.equal(crowded.code, 2);
    assert.match(crowded.output, /fanout needs 501 connections and --idle 18500 more, 19001 at once; at most 19000/);
    const help = await runBench(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.output, /fanout/);
    assert.match(help.output, /baseline/);
    assert.match(help.output, /connect/);
    for (const word of ['rooms', 'pm', 'history', 'latency', '--max', '--inflight', '--rooms',
        '--room-members', '--pairs', '--entries', '--readers', '--p99-bound', '--count', '--idle'])
        assert.ok(help.output.includes(word), `--help says nothing of ${word}`);
});

// A real Prometheus (Debian's `prometheus` package, deploy/install-deps.sh)
// scrapes the gateway's /metrics and answers a query for a parley_ series,
// the store plugin's among them.
// Skipped, saying why, where the prometheus program is not installed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Proc, eventually, freePort, startParley, tempDir } from '../lib/harness.js';
import { stopCleanly } from '../lib/clean-stop.js';

const PROMETHEUS = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((file) => existsSync(file));

// Resolves with the query's result vector, [] while there is none
async function query(port, expression) {
    const response = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expression)}`);
    const answer = await response.json();
    assert.equal(answer.status, 'success', JSON.stringify(answer));
    return answer.data.result;
}

test('Prometheus scrapes /metrics and its API answers a parley_ series', {
    skip: PROMETHEUS ? false : 'the prometheus program is not installed (Debian package prometheus; deploy/install-deps.sh)',
}, async () => {
    const server = await startParley();
    const dir = tempDir('parley-prometheus-');
    let prometheus;
    try {
        const client = await Client.connect(server.url);
        assert.equal((await client.request({ type: 'ping' })).type, 'ok');
        await client.close();
        const config = path.join(dir, 'prometheus.yml');
        // The scrape config deploy/README.md shows, at a test's pace
        writeFileSync(config, [
            'global:',
            '  scrape_interval: 1s',
            'scrape_configs:',
            '  - job_name: parley',
            '    metrics_path: /metrics',
            '    static_configs:',
            `      - targets: ['127.0.0.1:${server.port}']`,
            '',
        ].join('\n'));
        const port = await freePort();
        prometheus = new Proc('prometheus', PROMETHEUS, [
            `--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
            `--web.listen-address=127.0.0.1:${port}`]);
        const ping = await eventually(async () => {
            try {
                const result = await query(port,
                    'parley_gateway_requests_total{job="parley",type="ping",code="ok"}');
                return result.length ? result : null;
            } catch {
                return null;            //  not listening yet
            }
        }, 60000, 250);
        assert.ok(ping, `Prometheus never had the series\n--- prometheus ---\n${prometheus.output}`);
        assert.ok(Number(ping[0].value[1]) >= 1, JSON.stringify(ping));
        // The scrape itself went well: Prometheus' own parser took the whole page
        const up = await query(port, 'up{job="parley"}');
        assert.equal(up[0]?.value[1], '1', JSON.stringify(up));
        const buckets = await query(port, 'parley_gateway_request_duration_seconds_bucket{type="ping",le="+Inf"}');
        assert.ok(Number(buckets[0]?.value[1]) >= 1, JSON.stringify(buckets));
        // The store's figures, from its plugin through the broker (plugin ABI
        // 1.4): Prometheus keeps their instance label as exported_instance
        const store = await eventually(async () => {
            const result = await query(port, 'parley_store_batch_size_count{job="parley"}');
            return result.length ? result : null;
        }, 60000, 250);
        assert.ok(store, 'Prometheus has the store\'s batch sizes');
        assert.match(store[0].metric.exported_instance ?? '', /^store-/, JSON.stringify(store));
        assert.ok(['sqlite', 'mongo'].includes(store[0].metric.store), JSON.stringify(store));
    } finally {
        await prometheus?.stop();
        rmSync(dir, { recursive: true, force: true });
        await stopCleanly(server);
    }
});

// Round-trip latency of example.echo through the gateway, one client, one
// request in flight at a time. Until parley-bench exists (issue 6) this is the
// measurement the foundation's note quotes.
//
//   node bench/echo-latency.js [--requests N] [--mode inprocess|outofprocess|both]
//
// Starts the real processes from PARLEY_BUILD (default ../build) on free ports.

import { parseArgs } from 'node:util';
import {
    startParley, startBroker, startGateway, startPluginProcess, pluginPath, Client, eventually,
} from '../lib/harness.js';

const { values } = parseArgs({
    options: {
        requests: { type: 'string', default: '5000' },
        warmup: { type: 'string', default: '500' },
        mode: { type: 'string', default: 'both' },
    },
});
const requests = Number(values.requests);
const warmup = Number(values.warmup);

function percentile(sorted, p) {
    return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function measure(url, label) {
    const client = await Client.connect(url);
    await eventually(async () => (await client.request({ type: 'example.echo' })).type === 'ok');
    for (let i = 0; i < warmup; i++)
        await client.request({ type: 'example.echo', text: 'warm' });
    const samples = new Float64Array(requests);
    for (let i = 0; i < requests; i++) {
        const started = process.hrtime.bigint();
        const reply = await client.request({ type: 'example.echo', text: 'hello', n: i });
        samples[i] = Number(process.hrtime.bigint() - started) / 1000;
        if (reply.type !== 'ok' || reply.echo.n !== i)
            throw new Error(`bad reply ${JSON.stringify(reply)}`);
    }
    await client.close();
    const sorted = Array.from(samples).sort((a, b) => a - b);
    const mean = sorted.reduce((sum, value) => sum + value, 0) / sorted.length;
    console.log(`${label}: ${requests} requests, p50 ${percentile(sorted, 0.5).toFixed(0)} us, ` +
        `p99 ${percentile(sorted, 0.99).toFixed(0)} us, p99.9 ${percentile(sorted, 0.999).toFixed(0)} us, ` +
        `max ${sorted[sorted.length - 1].toFixed(0)} us, mean ${mean.toFixed(0)} us`);
}

if (values.mode === 'inprocess' || values.mode === 'both') {
    const server = await startParley({ args: ['--no-default-plugins'] });
    try {
        await measure(server.url, 'in-process (parley)');
    } finally {
        await server.stop();
    }
}
if (values.mode === 'outofprocess' || values.mode === 'both') {
    const broker = await startBroker();
    const gateway = await startGateway(broker.endpoint);
    const plugin = startPluginProcess(broker.endpoint, [pluginPath('example')]);
    try {
        await measure(gateway.url, 'out of process (parley-broker + parley-gw + parley-plugin over tcp)');
    } finally {
        await plugin.stop();
        await gateway.stop();
        await broker.stop();
    }
}

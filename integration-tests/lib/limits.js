// Connections as an outsider makes them: from a chosen source address
// (127.0.0.x), WebSockets whose refusal is read as the HTTP answer it is.

import http from 'node:http';
import WebSocket from 'ws';

// Opens a WebSocket from localAddress. Resolves with { ws } once open,
// { status, body } when the upgrade is answered with an HTTP status, or
// { error } when the connection fails without one.
export function attempt(url, localAddress = '127.0.0.1', timeoutMs = 15000) {
    return new Promise((resolve) => {
        const ws = new WebSocket(url, { localAddress });
        let done = false;
        const finish = (result) => {
            if (done)
                return;
            done = true;
            clearTimeout(timer);
            resolve(result);
        };
        const timer = setTimeout(() => { ws.terminate(); finish({ error: 'timeout' }); }, timeoutMs);
        ws.on('error', (error) => finish({ error: error.message }));
        // Listened for from the start, so that no close goes unseen
        ws.closedAt = new Promise((resolveClose) => {
            ws.once('close', (code, reason) => resolveClose({ code, reason: reason.toString() }));
        });
        ws.once('open', () => finish({ ws }));
        ws.once('unexpected-response', (request, response) => {
            let body = '';
            response.on('data', (chunk) => { body += chunk; });
            const answered = () => {
                finish({ status: response.statusCode, body });
                request.destroy();
            };
            response.on('end', answered);
            response.on('close', answered);
            response.on('error', answered);
        });
    });
}

// Resolves with { code, reason } when a socket from attempt() closes, or
// with null after timeoutMs
export function closed(ws, timeoutMs = 30000) {
    return Promise.race([ws.closedAt,
        new Promise((resolve) => setTimeout(() => resolve(null), timeoutMs).unref())]);
}

// GET path from localAddress, without keep-alive. Resolves with { status, body }
// or { error }.
export function get(port, path, localAddress = '127.0.0.1', timeoutMs = 10000) {
    return new Promise((resolve) => {
        const request = http.get({ host: '127.0.0.1', port, path, localAddress, agent: false,
            timeout: timeoutMs }, (response) => {
            let body = '';
            response.on('data', (chunk) => { body += chunk; });
            response.on('end', () => resolve({ status: response.statusCode, body,
                headers: response.headers }));
            response.on('error', (error) => resolve({ error: error.message }));
        });
        request.on('timeout', () => request.destroy(new Error('timeout')));
        request.on('error', (error) => resolve({ error: error.message }));
    });
}

//  The MongoDB stand-in for store-mongo's tests (NOTES.md, "Testing
//  store-mongo without a MongoDB server"): a pure-JavaScript server that
//  speaks the wire protocol, in memory.
//
//      node serve.mjs [PORT]       PORT 0 or none: a free port
//
//  Prints "listening on PORT" once it accepts connections, and stops on
//  SIGTERM or SIGINT. Unlike mongod it does not enforce unique indexes.

import { CongoServer } from '@push.rocks/smartmongo/dist_ts/congodb/index.js';
import { HelloHandler } from '@push.rocks/smartmongo/dist_ts/congodb/server/handlers/HelloHandler.js';
import net from 'node:net';

//  Its hello reply carries a topologyVersion, which tells a driver that the
//  server speaks the streaming (awaitable hello) protocol; the stand-in does
//  not, and libmongoc's background monitors (mongoc_client_pool) then check
//  the server in a tight loop (NOTES.md). store-mongo uses a single client,
//  which does not stream; the field goes all the same, so that a pool or
//  another driver pointed at this server behaves.
const handle = HelloHandler.prototype.handle;
HelloHandler.prototype.handle = async function (context) {
    const response = await handle.call (this, context);
    delete response.topologyVersion;
    return response;
};

//  CongoServer cannot listen on port 0 and report the port it got, so a free
//  port is found first: bound and released on the same address
function freePort () {
    return new Promise ((resolve, reject) => {
        const probe = net.createServer ();
        probe.once ('error', reject);
        probe.listen (0, '127.0.0.1', () => {
            const { port } = probe.address ();
            probe.close (() => resolve (port));
        });
    });
}

const argument = process.argv [2] ?? '0';
if (!/^\d+$/.test (argument) || Number (argument) > 65535) {
    console.error (`usage: node serve.mjs [PORT]: '${argument}' is not a port (0 for any free port)`);
    process.exit (2);
}
const port = Number (argument) || await freePort ();
const server = new CongoServer ({ port, host: '127.0.0.1' });
try {
    await server.start ();
}
catch (error) {
    console.error (`cannot listen on 127.0.0.1:${port}: ${error.message}`);
    process.exit (1);
}
console.log (`listening on ${port}`);

let stopping = false;
async function stop (signal) {
    if (stopping)
        return;
    stopping = true;
    await server.stop ();
    console.error (`stopped on ${signal}`);
    process.exit (0);
}
process.on ('SIGTERM', () => stop ('SIGTERM'));
process.on ('SIGINT', () => stop ('SIGINT'));

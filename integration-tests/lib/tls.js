// A throwaway certificate authority, made with the openssl command line as an
// operator would make their own: its certificate, server certificates it
// signs for 127.0.0.1 and localhost with the serial numbers asked for, and a
// browser profile (an NSS database) that trusts it.

import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from './harness.js';

const openssl = (args) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export class TestCa {
    constructor() {
        this.dir = tempDir('parley-ca-');
        this.cert = path.join(this.dir, 'ca.pem');
        this.key = path.join(this.dir, 'ca.key');
        openssl(['req', '-x509', ...newKey, '-keyout', this.key, '-out', this.cert,
                 '-subj', '/CN=Parley test CA', '-days', '2']);
        this.pem = readFileSync(this.cert, 'utf8');
    }

    // A key and a certificate with serial (hex), in name.key and name.pem:
    // { cert, key, ca } as startParley's and startGateway's tls option wants
    issue(name, serial) {
        const file = (suffix) => path.join(this.dir, `${name}.${suffix}`);
        writeFileSync(file('ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
        openssl(['req', ...newKey, '-keyout', file('key'), '-out', file('csr'), '-subj', '/CN=localhost']);
        openssl(['x509', '-req', '-in', file('csr'), '-CA', this.cert, '-CAkey', this.key,
                 '-set_serial', `0x${serial}`, '-days', '2', '-extfile', file('ext'), '-out', file('pem')]);
        return { cert: file('pem'), key: file('key'), ca: this.pem };
    }

    // The files a server is started with ({ cert, key, ca }), and install(pair),
    // which puts the pair issue() made there as an operator's renewal does:
    // each file replaced whole, by a rename
    liveFiles() {
        const live = { cert: path.join(this.dir, 'live.pem'), key: path.join(this.dir, 'live.key'), ca: this.pem };
        live.install = (pair) => {
            for (const which of ['cert', 'key']) {
                copyFileSync(pair[which], `${live[which]}.new`);
                renameSync(`${live[which]}.new`, live[which]);
            }
        };
        return live;
    }

    // A home folder whose NSS database (where Chromium on Linux looks for the
    // certificates a user trusts) trusts this CA for servers
    browserHome() {
        const home = path.join(this.dir, 'home');
        const db = `sql:${path.join(home, '.pki', 'nssdb')}`;
        mkdirSync(path.join(home, '.pki', 'nssdb'), { recursive: true });
        execFileSync('certutil', ['-N', '-d', db, '--empty-password']);
        execFileSync('certutil', ['-A', '-d', db, '-n', 'Parley test CA', '-t', 'C,,', '-i', this.cert]);
        return home;
    }

    remove() {
        rmSync(this.dir, { recursive: true, force: true });
    }
}

// Serial numbers as openssl and Node write them differ in case and leading zeros
export const sameSerial = (a, b) =>
    String(a).replace(/^0+/, '').toLowerCase() === String(b).replace(/^0+/, '').toLowerCase();

// listen_backlog.test.mjs - [gateway] listen_backlog: the accept queue of
// every listening socket (the browser listener and the admin listener), as
// the kernel reports it: for a socket in LISTEN, `ss -l` shows the backlog
// in its Send-Q column (and the connections waiting in Recv-Q). Above
// net.core.somaxconn the kernel caps it, and pollgate says so once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, copyFileSync } from 'node:fs';
import path from 'node:path';

import { startUpstream, startGateway } from './bridge_lib.mjs';
import { makeCerts, tmpDir, freePort } from './lib.mjs';

const haveSs = spawnSync('ss', ['-V'], { encoding: 'utf8' }).status === 0;
let somaxconn = 0;
try { somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim()); } catch { /* not Linux */ }
const skip = (!haveSs && 'ss (iproute2) is not installed (contrib/dev.sh deps)') ||
  (!somaxconn && 'no /proc/sys/net/core/somaxconn');

/** The backlog of the socket listening on 127.0.0.1:port, from ss. */
function backlogOf(port) {
  const r = spawnSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').filter((l) => l.includes(`127.0.0.1:${port}`));
  assert.equal(rows.length, 1, `one listening socket on ${port}:\n${r.stdout}`);
  const [state, , sendQ] = rows[0].trim().split(/\s+/);
  assert.equal(state, 'LISTEN', rows[0]);
  return Number(sendQ);
}

async function gatewayWith(t, gateway) {
  const up = await startUpstream(t);
  return startGateway(t, { gateway, routes: [{ name: 'chat', path: '/chat', up }] });
}

test('listen_backlog = 77: the listen, tls_listen and admin listeners queue 77 connections', { skip }, async (t) => {
  const dir = tmpDir(t, 'pollgate-backlog-');
  const certs = await makeCerts(dir);
  copyFileSync(certs.server.cert, path.join(dir, 'front.pem'));
  copyFileSync(certs.server.key, path.join(dir, 'front.key'));
  const tlsPort = await freePort();
  const gw = await gatewayWith(t, {
    listen_backlog: 77, tls_listen: `127.0.0.1:${tlsPort}`,
    tls_cert_file: path.join(dir, 'front.pem'), tls_key_file: path.join(dir, 'front.key'),
  });
  assert.equal(backlogOf(gw.port), 77);
  assert.equal(backlogOf(tlsPort), 77);
  assert.equal(backlogOf(gw.adminPort), 77);
  assert.doesNotMatch(gw.stderr(), /somaxconn/);
});

test('default: 4096, or the kernel cap (net.core.somaxconn) when that is lower', { skip }, async (t) => {
  const gw = await gatewayWith(t, {});
  assert.equal(backlogOf(gw.port), Math.min(4096, somaxconn));
  assert.equal(backlogOf(gw.adminPort), Math.min(4096, somaxconn));
});

test('above net.core.somaxconn: capped by the kernel, and one warning says so', { skip: skip || (somaxconn >= 65535 && 'somaxconn is at the maximum') }, async (t) => {
  const gw = await gatewayWith(t, { listen_backlog: somaxconn + 1 });
  assert.equal(backlogOf(gw.port), somaxconn);
  const warnings = gw.stderr().match(/listen_backlog \d+ is above net\.core\.somaxconn \d+[^\n]*/g) || [];
  assert.deepEqual(warnings, [`listen_backlog ${somaxconn + 1} is above net.core.somaxconn ${somaxconn}: ` +
    `the kernel queues at most ${somaxconn} connections per listening socket`], gw.stderr());
});

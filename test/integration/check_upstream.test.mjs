// check_upstream.test.mjs - `pollgate --check-upstream` and `pollgate -t`
// against real peers: npm ws (plain and TLS with certificates made here by
// the openssl CLI), an HTTP server refusing the upgrade, raw TCP servers
// that answer badly or not at all, a closed port and a name that never
// resolves.

import dgram from 'node:dgram';
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, mkdtempSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { WebSocketServer } from 'ws';

import {
  runPollgate, describeRun, listen, freePort, refusedPort, makeCerts, tmpDir, writeFile, withTimeout,
  trackSockets, deferred,
} from './lib.mjs';

let certs;
let certDir;
before(async () => {
  certDir = mkdtempSync(path.join(os.tmpdir(), 'pollgate-certs-'));
  certs = await makeCerts(certDir);
});
after(() => {
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

/** Write a config with these routes ({name, upstream}); returns its path. */
async function writeConfig(t, routes, { connectTimeout = '2s', ca, extraUpstream = '' } = {}) {
  const dir = tmpDir(t);
  const port = await freePort();
  const lines = [
    '[gateway]',
    `listen = 127.0.0.1:${port}`,
    '',
    '[upstream]',
    `connect_timeout = ${connectTimeout}`,
    `tls_ca_file = ${ca ?? certs.ca}`,
    ...(extraUpstream ? [extraUpstream] : []),
  ];
  for (const r of routes) {
    lines.push('', `[route ${r.name}]`, `path = /${r.name}`, `upstream = ${r.upstream}`);
  }
  return writeFile(dir, 'pollgate.ini', lines.join('\n') + '\n');
}

/**
 * A DNS server on 127.0.0.1 that answers every query with NXDOMAIN, and a
 * resolv.conf naming it: { port, resolvConf, queries }.
 */
async function startNxdomainDns(t) {
  const sock = dgram.createSocket('udp4');
  const state = { queries: 0 };
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 12) return;
    state.queries++;
    const reply = Buffer.from(msg);
    reply[2] = 0x80 | (msg[2] & 0x79); // QR, keep opcode and RD
    reply[3] = 0x80 | 0x03;            // RA, RCODE 3 = NXDOMAIN
    reply.writeUInt16BE(0, 6);         // no answers
    reply.writeUInt16BE(0, 8);
    reply.writeUInt16BE(0, 10);
    sock.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise((resolve) => sock.bind(0, '127.0.0.1', resolve));
  t.after(() => sock.close());
  const port = sock.address().port;
  const dir = tmpDir(t);
  state.port = port;
  state.resolvConf = writeFile(dir, 'resolv.conf', `nameserver 127.0.0.1:${port}\n`);
  return state;
}

/** Run --check-upstream; returns the run plus lines keyed by route name. */
async function checkUpstream(t, config) {
  const r = await runPollgate(t, ['--check-upstream', '-c', config], { timeoutMs: 20000 });
  r.routes = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^(\S+) (\S+) (ok|FAILED)\b ?(.*)$/.exec(line);
    if (m) r.routes[m[1]] = { url: m[2], ok: m[3] === 'ok', rest: m[4], line };
  }
  return r;
}

/** A ws server (plain, or TLS with the given {cert, key}) that records closes. */
async function startWs(t, { tls, wsOptions = {} } = {}) {
  const server = trackSockets(
    tls
      ? https.createServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) })
      : http.createServer()
  );
  const wsPath = `/x/${randomBytes(6).toString('hex')}`; // strays get 400
  const wss = new WebSocketServer({ server, path: wsPath, perMessageDeflate: false, ...wsOptions });
  const closes = [];
  const firstClose = deferred();
  const tlsErrors = [];
  server.on('tlsClientError', (e) => tlsErrors.push(e));
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('close', (code, reason) => {
      const c = { code, reason: reason.toString() };
      closes.push(c);
      firstClose.resolve(c);
    });
  });
  const port = await listen(t, server);
  t.after(() => {
    for (const c of wss.clients) c.terminate();
    wss.close();
  });
  return { port, path: wsPath, closes, firstClose: firstClose.promise, tlsErrors, wss };
}

/** A TCP server whose connections get `onSocket(socket)`. */
async function startTcp(t, onSocket) {
  const server = trackSockets(net.createServer((s) => {
    s.on('error', () => {});
    onSocket(s);
  }));
  return listen(t, server);
}

function assertFailed(r, name, re) {
  const info = describeRun(r);
  assert.notEqual(r.code, 0, `exit status must be non-zero\n${info}`);
  assert.ok(r.routes[name], `no line for route ${name}\n${info}`);
  assert.equal(r.routes[name].ok, false, `route ${name} must fail\n${info}`);
  assert.match(r.routes[name].rest, re, `failure reason\n${info}`);
}

describe('reference: the TLS fixtures, checked with the npm ws client', { concurrency: 4 }, () => {
  // Proves each certificate fails (or not) for the intended reason, so the
  // pollgate tests below cannot pass or fail because of a broken fixture.
  const cases = [
    ['trusted CA, localhost', 'server', 'ca', 'localhost', null],
    ['trusted CA, 127.0.0.1', 'server', 'ca', '127.0.0.1', null],
    ['untrusted CA', 'server', 'ca2', 'localhost', /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/i],
    ['other host name', 'other', 'ca', 'localhost', /ERR_TLS_CERT_ALTNAME_INVALID|altnames/i],
    ['expired', 'expired', 'ca', 'localhost', /CERT_HAS_EXPIRED|expired/i],
  ];
  for (const [name, cert, ca, host, err] of cases) {
    test(name, async (t) => {
      const { default: WebSocket } = await import('ws');
      const s = await startWs(t, { tls: certs[cert] });
      const ws = new WebSocket(`wss://${host}:${s.port}${s.path}`, { ca: readFileSync(certs[ca]) });
      t.after(() => ws.terminate());
      const outcome = await withTimeout(new Promise((resolve) => {
        ws.on('open', () => {
          ws.close(1000);
          resolve(null);
        });
        ws.on('error', (e) => resolve(e));
      }), 5000, 'ws TLS client');
      if (err === null) assert.equal(outcome, null, `expected success, got ${outcome}`);
      else assert.match(`${outcome?.code} ${outcome?.message}`, err);
    });
  }
});

describe('pollgate --check-upstream', { concurrency: 4 }, () => {
  test('plain ws:// upstream: ok, and the server sees a clean 1000 close', async (t) => {
    const s = await startWs(t);
    const url = `ws://127.0.0.1:${s.port}${s.path}`;
    const r = await checkUpstream(t, await writeConfig(t, [{ name: 'r1', upstream: url }]));
    assert.equal(r.code, 0, describeRun(r));
    assert.equal(r.routes.r1?.ok, true, describeRun(r));
    assert.equal(r.routes.r1.url, url);
    assert.match(r.routes.r1.line, /^r1 \S+ ok \d+(\.\d+)? ms/);
    const c = await withTimeout(s.firstClose, 5000, 'server close event');
    assert.equal(c.code, 1000, `close seen by the server: ${JSON.stringify(c)}`);
  });

  test('wss:// with a certificate from the configured CA: ok (by name and by IP)', async (t) => {
    const s = await startWs(t, { tls: certs.server });
    const r = await checkUpstream(t, await writeConfig(t, [
      { name: 'byname', upstream: `wss://localhost:${s.port}${s.path}` },
      { name: 'byip', upstream: `wss://127.0.0.1:${s.port}${s.path}` },
    ]));
    assert.equal(r.code, 0, describeRun(r));
    assert.equal(r.routes.byname?.ok, true, describeRun(r));
    assert.equal(r.routes.byip?.ok, true, describeRun(r));
    await withTimeout(s.firstClose, 5000, 'server close event');
    assert.ok(s.closes.every((c) => c.code === 1000), JSON.stringify(s.closes));
  });

  test('wss:// signed by a CA that is not trusted: FAILED tls', async (t) => {
    const s = await startWs(t, { tls: certs.server });
    const r = await checkUpstream(t, await writeConfig(t, [{ name: 'r1', upstream: `wss://localhost:${s.port}${s.path}` }], { ca: certs.ca2 }));
    assertFailed(r, 'r1', /tls/i);
  });

  test('wss:// certificate for another host name: FAILED tls', async (t) => {
    const s = await startWs(t, { tls: certs.other });
    const r = await checkUpstream(t, await writeConfig(t, [{ name: 'r1', upstream: `wss://localhost:${s.port}${s.path}` }]));
    assertFailed(r, 'r1', /tls/i);
  });

  test('wss:// expired certificate: FAILED tls, mentioning expiry', async (t) => {
    const s = await startWs(t, { tls: certs.expired });
    const r = await checkUpstream(t, await writeConfig(t, [{ name: 'r1', upstream: `wss://localhost:${s.port}${s.path}` }]));
    assertFailed(r, 'r1', /tls/i);
    assert.match(r.routes.r1.rest, /expir/i, describeRun(r));
  });

  test('upgrade refused with 403: FAILED ... HTTP 403', async (t) => {
    const s = await startWs(t, { wsOptions: { verifyClient: (info, cb) => cb(false, 403, 'Forbidden') } });
    const r = await checkUpstream(t, await writeConfig(t, [{ name: 'r1', upstream: `ws://127.0.0.1:${s.port}${s.path}` }]));
    assertFailed(r, 'r1', /HTTP 403/);
  });

  test('101 with a wrong Sec-WebSocket-Accept: FAILED, naming Sec-WebSocket-Accept', async (t) => {
    const port = await startTcp(t, (s) => {
      let head = '';
      s.on('data', (d) => {
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
      });
    });
    const r = await checkUpstream(t, await writeConfig(t, [{ name: 'r1', upstream: `ws://127.0.0.1:${port}/x` }]));
    assertFailed(r, 'r1', /Sec-WebSocket-Accept/);
  });

  test('server accepts TCP and never answers: FAILED timeout, within connect_timeout', async (t) => {
    const port = await startTcp(t, () => {});
    const r = await checkUpstream(t, await writeConfig(t, [{ name: 'r1', upstream: `ws://127.0.0.1:${port}/x` }], { connectTimeout: '1s' }));
    assertFailed(r, 'r1', /timeout/i);
    assert.ok(r.ms >= 900, `gave up before connect_timeout: ${r.ms} ms`);
    assert.ok(r.ms < 5000, `took too long: ${r.ms} ms`);
  });

  test('wss:// server that never answers the TLS handshake: FAILED timeout', async (t) => {
    const port = await startTcp(t, () => {});
    const r = await checkUpstream(t, await writeConfig(t, [{ name: 'r1', upstream: `wss://localhost:${port}/x` }], { connectTimeout: '1s' }));
    assertFailed(r, 'r1', /timeout/i);
    assert.ok(r.ms < 5000, `took too long: ${r.ms} ms`);
  });

  test('closed port: FAILED refused', async (t) => {
    const port = await refusedPort();
    const r = await checkUpstream(t, await writeConfig(t, [{ name: 'r1', upstream: `ws://127.0.0.1:${port}/x` }]));
    assertFailed(r, 'r1', /refused/i);
  });

  test('name that does not resolve: FAILED dns, bounded by connect_timeout', async (t) => {
    // The test's own resolver on loopback (resolv_conf) answers NXDOMAIN,
    // so no query leaves the machine.
    const dns = await startNxdomainDns(t);
    const r = await checkUpstream(t, await writeConfig(t, [{ name: 'r1', upstream: 'ws://nonexistent.invalid:1/' }],
      { connectTimeout: '2s', extraUpstream: `resolv_conf = ${dns.resolvConf}` }));
    assert.ok(dns.queries > 0, 'pollgate must have asked the test resolver');
    assertFailed(r, 'r1', /dns/i);
    assert.ok(r.ms < 6000, `took too long: ${r.ms} ms`);
  });

  test('two routes, one bad: exit non-zero and both lines printed', async (t) => {
    const s = await startWs(t);
    const bad = await refusedPort();
    const r = await checkUpstream(t, await writeConfig(t, [
      { name: 'good', upstream: `ws://127.0.0.1:${s.port}${s.path}` },
      { name: 'bad', upstream: `ws://127.0.0.1:${bad}/b` },
    ]));
    assert.notEqual(r.code, 0, describeRun(r));
    assert.equal(r.routes.good?.ok, true, describeRun(r));
    assert.equal(r.routes.bad?.ok, false, describeRun(r));
    assert.match(r.routes.bad.rest, /refused/i);
  });
});

describe('pollgate -t', { concurrency: 2 }, () => {
  test('a good configuration: "configuration OK", exit 0', async (t) => {
    const config = await writeConfig(t, [{ name: 'r1', upstream: 'wss://localhost:9/x' }]);
    const r = await runPollgate(t, ['-t', '-c', config]);
    assert.equal(r.code, 0, describeRun(r));
    assert.match(r.stdout + r.stderr, /configuration OK/, describeRun(r));
  });

  test('an unknown key: non-zero exit, error names FILE:LINE', async (t) => {
    const dir = tmpDir(t);
    const port = await freePort();
    const text = [
      '[gateway]', // 1
      `listen = 127.0.0.1:${port}`, // 2
      '', // 3
      '[upstream]', // 4
      'connect_timeout = 2s', // 5
      'no_such_key = 1', // 6
      '', // 7
      '[route r1]', // 8
      'path = /r1', // 9
      'upstream = ws://127.0.0.1:9/x', // 10
    ].join('\n') + '\n';
    const config = writeFile(dir, 'bad.ini', text);
    const r = await runPollgate(t, ['-t', '-c', config]);
    assert.notEqual(r.code, 0, describeRun(r));
    const out = r.stdout + r.stderr;
    assert.ok(out.includes(`${config}:6:`), `expected "${config}:6:" in the output\n${describeRun(r)}`);
    assert.match(out, /no_such_key/, describeRun(r));
    assert.doesNotMatch(out, /configuration OK/);
  });
});

// tls_listen.test.mjs - [gateway] listen lists and tls_listen (HTTPS toward
// browsers) against the real binary, with a locally generated CA:
//  - several plain addresses and a TLS address served at once;
//  - curl --cacert, TLS 1.2 minimum, the server's cipher preference,
//    session resumption;
//  - a native session (open, poll, send) over HTTPS;
//  - SIGHUP re-reads the certificate: new connections get the new one, an
//    open connection keeps working; a bad file keeps the current one;
//  - `pollgate -t` reports a key that does not match with FILE:LINE.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { spawnSync } from 'node:child_process';

import {
  POLLGATE_BIN, makeCerts, runProcess, tmpDir, writeFile, haveIpv6Loopback,
} from './lib.mjs';
import { startUpstream, startGateway, request, freePort, waitUntil, sleep } from './bridge_lib.mjs';

const haveCurl = spawnSync('curl', ['--version']).status === 0;

/** One HTTPS request on agent; resolves to { status, text, json, socket }. */
function httpsRequest(url, { ca, agent, method = 'GET', body, headers = {}, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== undefined) {
      h['content-type'] = 'application/json';
      h['content-length'] = Buffer.byteLength(body);
    }
    const req = https.request(url, { method, ca, agent, headers: h, servername: 'localhost' }, (res) => {
      const socket = res.socket;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, text, json, socket });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url}: timeout`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** TLS connect to port; resolves to the socket once the handshake is done. */
function tlsConnect(port, opts) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...opts }, () => resolve(s));
    s.once('error', reject);
  });
}

async function tlsGateway(t, up, extra = {}) {
  const dir = tmpDir(t, 'pollgate-tls-');
  const certs = await makeCerts(dir);
  // the gateway reads copies, so that the test can replace them
  fs.copyFileSync(certs.server.cert, path.join(dir, 'front.pem'));
  fs.copyFileSync(certs.server.key, path.join(dir, 'front.key'));
  const tlsPort = await freePort();
  const gw = await startGateway(t, {
    ...extra,
    gateway: {
      tls_listen: `127.0.0.1:${tlsPort}${extra.tlsExtra ? ', ' + extra.tlsExtra : ''}`,
      tls_cert_file: path.join(dir, 'front.pem'),
      tls_key_file: path.join(dir, 'front.key'),
      ...(extra.gateway || {}),
    },
    routes: [{ name: 'chat', path: '/chat', up }],
  });
  return { gw, certs, dir, tlsPort, tlsUrl: (p) => `https://localhost:${tlsPort}${p}` };
}

describe('listen lists and tls_listen', { timeout: 120000 }, () => {
  it('serves several plain addresses and a TLS address at once', async (t) => {
    const up = await startUpstream(t);
    const p2 = await freePort();
    const v6 = await haveIpv6Loopback();
    const p3 = v6 ? await freePort('::1') : null;
    const extraListen = [`127.0.0.1:${p2}`, ...(v6 ? [`[::1]:${p3}`] : [])];
    const { gw, certs, tlsPort } = await tlsGateway(t, up, { extraListen });
    // (the public port serves routes only: an unknown path answers JSON 404)
    for (const url of [gw.url('/nope'), `http://127.0.0.1:${p2}/nope`,
      ...(v6 ? [`http://[::1]:${p3}/nope`] : [])]) {
      const r = await request(url);
      assert.equal(r.status, 404, url);
      assert.equal(r.json.error, 'not_found', url);
    }
    const agent = new https.Agent({ keepAlive: true, ca: fs.readFileSync(certs.ca) });
    t.after(() => agent.destroy());
    const r = await httpsRequest(`https://localhost:${tlsPort}/nope`, { agent });
    assert.equal(r.status, 404);
    assert.equal(r.json.error, 'not_found');
    // plain HTTP on the TLS port is not served as HTTP
    await assert.rejects(request(`http://127.0.0.1:${tlsPort}/nope`, { timeoutMs: 3000 }));
    assert.match(gw.stderr(), new RegExp(`bound 127\\.0\\.0\\.1:${tlsPort} \\(https\\)`));
  });

  it('curl --cacert reaches the TLS listener; TLS 1.1 is refused', { skip: !haveCurl && 'curl not installed' }, async (t) => {
    const up = await startUpstream(t);
    const { certs, tlsPort } = await tlsGateway(t, up);
    const ok = await runProcess(t, 'curl', ['-sS', '--cacert', certs.ca,
      '--resolve', `localhost:${tlsPort}:127.0.0.1`, `https://localhost:${tlsPort}/nope`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).error, 'not_found');
    // the wrong CA: curl refuses the certificate (it really is checked)
    const bad = await runProcess(t, 'curl', ['-sS', '--cacert', certs.ca2,
      '--resolve', `localhost:${tlsPort}:127.0.0.1`, `https://localhost:${tlsPort}/nope`]);
    assert.notEqual(bad.code, 0);
    const old = await runProcess(t, 'curl', ['-sS', '--cacert', certs.ca, '--tlsv1.1', '--tls-max', '1.1',
      '--resolve', `localhost:${tlsPort}:127.0.0.1`, `https://localhost:${tlsPort}/nope`]);
    assert.notEqual(old.code, 0, `TLS 1.1 accepted: ${old.stdout}`);
  });

  it('TLS 1.2 minimum, server cipher preference, session resumption', async (t) => {
    const up = await startUpstream(t);
    const { certs, tlsPort } = await tlsGateway(t, up);
    const ca = fs.readFileSync(certs.ca);
    await assert.rejects(tlsConnect(tlsPort, { ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }));
    // The client prefers a weaker suite; the server's order picks ECDHE
    // with AES-256-GCM (OpenSSL's default order) from what it offers.
    const s1 = await tlsConnect(tlsPort, {
      ca, maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384',
      honorCipherOrder: false,
    });
    assert.equal(s1.getProtocol(), 'TLSv1.2');
    assert.equal(s1.getCipher().name, 'ECDHE-ECDSA-AES256-GCM-SHA384');
    const session = s1.getSession();
    s1.end();
    assert.ok(session, 'a session to resume');
    const s2 = await tlsConnect(tlsPort, { ca, maxVersion: 'TLSv1.2', session });
    assert.ok(s2.isSessionReused(), 'TLS 1.2 session resumed');
    s2.end();
    // TLS 1.3: tickets arrive after the handshake
    const s3 = await tlsConnect(tlsPort, { ca });
    assert.equal(s3.getProtocol(), 'TLSv1.3');
    let ticket = null;
    s3.on('session', (sess) => { ticket = sess; });
    s3.write('GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await waitUntil(() => ticket, 5000, 'TLS 1.3 session ticket');
    s3.destroy();
    const s4 = await tlsConnect(tlsPort, { ca, session: ticket });
    assert.ok(s4.isSessionReused(), 'TLS 1.3 session resumed');
    s4.destroy();
  });

  it('a native session works over HTTPS (open, poll, send)', async (t) => {
    const up = await startUpstream(t);
    const { certs, tlsUrl } = await tlsGateway(t, up);
    up.reset();
    const agent = new https.Agent({ keepAlive: true, ca: fs.readFileSync(certs.ca) });
    t.after(() => agent.destroy());
    const o = await httpsRequest(tlsUrl('/chat/sessions'), { agent, method: 'POST', body: '{}' });
    assert.equal(o.status, 201, o.text);
    const id = o.json.session;
    const conn = await up.conn(0);
    conn.send('hello over tls');
    const p = await httpsRequest(tlsUrl(`/chat/sessions/${id}/poll`), { agent });
    assert.equal(p.status, 200, p.text);
    assert.deepEqual(p.json.messages.map((m) => m.text), ['hello over tls']);
    const s = await httpsRequest(tlsUrl(`/chat/sessions/${id}/send`), {
      agent, method: 'POST', body: JSON.stringify({ messages: ['up'] }),
    });
    assert.ok(s.status === 200 || s.status === 204, s.text);
    await conn.waitMessages(1);
    assert.deepEqual(conn.texts(), ['up']);
  });

  it('SIGHUP re-reads the certificate; open connections keep theirs', async (t) => {
    const up = await startUpstream(t);
    const { gw, certs, dir, tlsPort } = await tlsGateway(t, up);
    const ca = fs.readFileSync(certs.ca);
    const serial = (s) => s.getPeerCertificate().serialNumber.replace(/^0+/, '');
    const agentOld = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
    t.after(() => agentOld.destroy());
    const r1 = await httpsRequest(`https://localhost:${tlsPort}/nope`, { agent: agentOld });
    assert.equal(r1.status, 404);
    const oldSock = r1.socket;
    assert.equal(serial(oldSock), (1001).toString(16).toUpperCase());
    // renewal: another certificate (other.example) at the same paths
    fs.copyFileSync(certs.other.cert, path.join(dir, 'front.pem'));
    fs.copyFileSync(certs.other.key, path.join(dir, 'front.key'));
    gw.proc.child.kill('SIGHUP');
    await waitUntil(() => /TLS certificate .* re-read/.test(gw.stderr()), 5000, 'reload log line');
    const s = await tlsConnect(tlsPort, { ca, servername: 'other.example' });
    assert.equal(serial(s), (1002).toString(16).toUpperCase());
    s.destroy();
    // the connection opened before the reload still works, on its old certificate
    const r2 = await httpsRequest(`https://localhost:${tlsPort}/nope`, { agent: agentOld });
    assert.equal(r2.status, 404);
    assert.equal(r2.socket, oldSock, 'same keep-alive connection');
    // a broken file: logged, the current certificate stays (SIGHUP reloads
    // the whole file, whose check names the certificate with FILE:LINE)
    fs.writeFileSync(path.join(dir, 'front.pem'), 'garbage\n');
    gw.proc.child.kill('SIGHUP');
    await waitUntil(() => /keeping the current certificate|the running configuration stays/.test(gw.stderr()), 5000, 'rejected reload log line');
    assert.match(gw.stderr(), /:\d+: \[gateway\] tls_cert_file/);
    const s2 = await tlsConnect(tlsPort, { ca, servername: 'other.example' });
    assert.equal(serial(s2), (1002).toString(16).toUpperCase());
    s2.destroy();
    await sleep(50);
    const r = await gw.stop();
    assert.equal(r.code, 0);
  });

  it('pollgate -t reports TLS file problems with FILE:LINE', async (t) => {
    const dir = tmpDir(t, 'pollgate-tls-t-');
    const certs = await makeCerts(dir);
    const route = '[route chat]\npath = /chat\nupstream = ws://127.0.0.1:9/chat\n';
    const mismatch = writeFile(dir, 'mismatch.ini', `[gateway]\ntls_listen = 127.0.0.1:8443\n` +
      `tls_cert_file = ${certs.server.cert}\ntls_key_file = ${certs.other.key}\n${route}`);
    let r = await runProcess(t, POLLGATE_BIN, ['-t', '-c', mismatch]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`${mismatch.replace(/[.]/g, '\\.')}:4: \\[gateway\\] tls_key_file: private key does not match`));
    assert.match(r.stderr, /configuration FAILED/);
    const missing = writeFile(dir, 'missing.ini', `[gateway]\ntls_listen = 127.0.0.1:8443\n` +
      `tls_cert_file = ${dir}/nope.pem\ntls_key_file = ${certs.server.key}\n${route}`);
    r = await runProcess(t, POLLGATE_BIN, ['-t', '-c', missing]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /missing\.ini:3: \[gateway\] tls_cert_file: cannot read .*nope\.pem/);
    const good = writeFile(dir, 'good.ini', `[gateway]\nlisten = 127.0.0.1:8080, [::1]:8080\n` +
      `tls_listen = 127.0.0.1:8443\ntls_cert_file = ${certs.server.cert}\ntls_key_file = ${certs.server.key}\n${route}`);
    r = await runProcess(t, POLLGATE_BIN, ['-t', '-c', good]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /configuration OK/);
  });

  // http_limits works on evhttp's own bufferevent, bufferevent_openssl's
  // plaintext input on tls_listen: the same limits as plain connections.
  it('tls_listen connections get the connection limits, header_timeout, strict framing and the lingering close', async (t) => {
    const up = await startUpstream(t);
    const { gw, certs, tlsPort } = await tlsGateway(t, up, {
      gateway: { max_connections_per_client: '3', header_timeout: '1s', max_body: '64KiB' },
    });
    const ca = fs.readFileSync(certs.ca);
    const stats = async () => (await request(gw.adminUrl('/stats'))).json;
    /** Collect what a TLS socket receives until it closes (or ms). */
    const collect = (s, ms) => new Promise((resolve) => {
      let got = '';
      let closed = false;
      const timer = setTimeout(() => resolve({ got, closed }), ms);
      s.on('data', (d) => { got += d.toString('latin1'); });
      s.on('error', () => {});
      s.on('close', () => { closed = true; clearTimeout(timer); resolve({ got, closed }); });
    });
    // strict framing: a duplicate Content-Length is refused with 400 + close
    const s1 = await tlsConnect(tlsPort, { ca });
    const r1 = collect(s1, 10000);
    s1.write('POST /chat/sessions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n');
    const a1 = await r1;
    assert.match(a1.got, /^HTTP\/1\.1 400 /, a1.got);
    assert.ok(a1.closed, 'closed after the framing error');
    // header_timeout: a head that does not complete is cut
    const before = await stats();
    const s2 = await tlsConnect(tlsPort, { ca });
    const r2 = collect(s2, 15000);
    s2.write('GET /nope HTTP/1.1\r\nHost: local');
    const a2 = await r2;
    assert.ok(a2.closed, 'a stalled head is cut by header_timeout');
    assert.equal(a2.got, '', 'cut without an answer');
    assert.ok((await stats()).header_timeouts > before.header_timeouts, 'counted as a header timeout');
    // the per-client limit: three idle TLS connections, the fourth gets 503
    const idle = [];
    for (let i = 0; i < 3; i++) idle.push(await tlsConnect(tlsPort, { ca }));
    await sleep(200);
    const s4 = await tlsConnect(tlsPort, { ca });
    const r4 = collect(s4, 10000);
    const a4 = await r4;
    assert.match(a4.got, /^HTTP\/1\.1 503 /, a4.got);
    assert.ok(a4.closed);
    assert.ok((await stats()).connections_refused_per_client > before.connections_refused_per_client);
    for (const s of idle) s.destroy();
    await sleep(300);
    // an early 413 on TLS: Node's https client posting 8 MiB reads the answer
    const big = Buffer.alloc(8 * 1024 * 1024, 0x61);
    for (let i = 0; i < 3; i++) {
      const r = await new Promise((resolve) => {
        let res = null;
        let text = '';
        let error = null;
        const req = https.request(`https://localhost:${tlsPort}/chat/sessions/AAAAAAAAAAAAAAAAAAAAAA/send`, {
          method: 'POST', ca, agent: false, servername: 'localhost',
          headers: { 'content-type': 'text/plain', 'content-length': big.length },
        }, (rs) => {
          res = rs;
          rs.on('data', (d) => { text += d; });
          rs.on('end', () => setTimeout(() => resolve({ status: rs.statusCode, text, error }), 200));
        });
        req.on('error', (e) => { error = error || e; if (!res) resolve({ error }); });
        req.end(big);
      });
      assert.equal(r.error, null, `attempt ${i + 1}: ${r.error?.code || r.error?.message}`);
      assert.equal(r.status, 413, `attempt ${i + 1}: ${r.text}`);
    }
    assert.match(gw.stderr(), /lingering close after a refusal/, 'the TLS socket lingered');
    // a normal request still works
    const ok = await httpsRequest(`https://localhost:${tlsPort}/nope`, { ca, agent: false });
    assert.equal(ok.status, 404);
  });
});

describe('[gateway] user / group', { timeout: 60000 }, () => {
  const root = process.getuid && process.getuid() === 0;
  it('drops privileges after binding (as root)', { skip: !root && 'needs root' }, async (t) => {
    const up = await startUpstream(t);
    const nobody = spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' });
    const uid = nobody.stdout.trim();
    const gw = await startGateway(t, {
      gateway: { user: 'nobody' },
      routes: [{ name: 'chat', path: '/chat', up }],
      // LeakSanitizer cannot inspect a process that changed its user
      env: { ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=0' },
    });
    const status = fs.readFileSync(`/proc/${gw.proc.child.pid}/status`, 'utf8');
    const uids = status.match(/^Uid:\s+(.*)$/m)[1].split(/\s+/);
    assert.deepEqual(uids, [uid, uid, uid, uid], `real, effective, saved, fs uid: ${uids}`);
    assert.match(gw.stderr(), new RegExp(`running as user nobody \\(uid ${uid}`));
    assert.equal((await request(gw.adminUrl('/health'))).status, 200);
    assert.equal((await request(gw.url('/chat/sessions'), { method: 'POST' })).status, 201);
  });

  it('root without user: a warning', { skip: !root && 'needs root' }, async (t) => {
    const up = await startUpstream(t);
    const gw = await startGateway(t, { routes: [{ name: 'chat', path: '/chat', up }] });
    assert.match(gw.stderr(), /warn running as root: set \[gateway\] user/);
  });

  it('-t reports an unknown user or group with FILE:LINE', async (t) => {
    const dir = tmpDir(t, 'pollgate-user-');
    const f = writeFile(dir, 'u.ini', '[gateway]\nuser = no-such-user-xyz\ngroup = no-such-group-xyz\n' +
      '[route chat]\npath = /chat\nupstream = ws://127.0.0.1:9/chat\n');
    const r = await runProcess(t, POLLGATE_BIN, ['-t', '-c', f]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /u\.ini:2: \[gateway\] user: no such user 'no-such-user-xyz'/);
    assert.match(r.stderr, /u\.ini:3: \[gateway\] group: no such group 'no-such-group-xyz'/);
  });
});

// client.test.mjs - pollgate's upstream client (wsc_probe) against a real,
// independent server: npm `ws`. Echo of text and binary at the length-form
// boundaries, subprotocols, extra headers, keepalive, IPv6, clean close.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { WebSocketServer } from 'ws';

import {
  runProbe, describeRun, listen, withTimeout, patternBytes,
  haveIpv6Loopback, trackSockets, deferred, sleep, makeCerts, tmpDir,
} from './lib.mjs';
import { startRawServer, handshakeResponse, acceptKey, text, frame, OP, closePayload } from './rawws.mjs';

/**
 * A ws server on host:0. opts are WebSocketServer options; onConnection
 * gets (ws, req). Every connection records { ws, req, messages, close }.
 * Resolves to { wss, port, url, conns, nextConn(ms) }.
 */
async function startWsServer(t, opts = {}, onConnection, host = '127.0.0.1') {
  const server = trackSockets(http.createServer((req, res) => res.writeHead(426).end()));
  // A random path: a stray connection from another test that reused the
  // ephemeral port is refused by ws and never counted here.
  const wsPath = `/echo/${randomBytes(6).toString('hex')}`;
  const wss = new WebSocketServer({ server, path: wsPath, perMessageDeflate: false, ...opts });
  const conns = [];
  const waiters = [];
  wss.on('connection', (ws, req) => {
    const c = { ws, req, remoteAddress: req.socket.remoteAddress, messages: [], pings: [], close: null };
    c.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        c.close = { code, reason: reason.toString('utf8') };
        resolve(c.close);
      });
    });
    ws.on('message', (data, isBinary) => c.messages.push({ binary: isBinary, data: Buffer.from(data) }));
    ws.on('ping', (d) => c.pings.push(Buffer.from(d)));
    ws.on('error', () => {});
    conns.push(c);
    for (const w of waiters.splice(0)) w.resolve(c);
    if (onConnection) onConnection(ws, req, c);
  });
  const port = await listen(t, server, host);
  t.after(() => {
    for (const c of wss.clients) c.terminate();
    wss.close();
  });
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    wss,
    port,
    url: `ws://${urlHost}:${port}${wsPath}`,
    conns,
    nextConn(ms = 5000) {
      if (conns.length) return Promise.resolve(conns[0]);
      const d = deferred();
      waiters.push(d);
      return withTimeout(d.promise, ms, 'ws server connection');
    },
  };
}

const echo = (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));

function assertProbeOk(r, label = '') {
  assert.equal(r.code, 0, `probe exit status ${label}\n${describeRun(r)}`);
  assert.ok(r.parsed.open, `no open line\n${describeRun(r)}`);
  assert.ok(r.parsed.close, `no close line\n${describeRun(r)}`);
}

const utf8Lengths = (s) => Buffer.byteLength(s, 'utf8');

test('text messages sent by the probe are echoed intact (lengths 0..65535, unicode)', async (t) => {
  const srv = await startWsServer(t, {}, echo);
  // argv can carry neither NUL nor more than 128 KiB per argument: those
  // payloads are covered by the server -> probe -> server test below.
  const texts = ['', 'a'.repeat(125), 'b'.repeat(126), 'c'.repeat(65535), 'héllo wörld € 😀 𝄞 日本'];
  const r = await runProbe(t, srv.url, { send: texts, expect: texts.length, close: 1000 });
  assertProbeOk(r);
  assert.deepEqual(r.parsed.messages.map((m) => m.binary), texts.map(() => false));
  assert.deepEqual(r.parsed.messages.map((m) => m.len), texts.map(utf8Lengths));
  assert.deepEqual(r.parsed.messages.map((m) => m.data.toString('utf8')), texts);
  const c = await srv.nextConn();
  assert.deepEqual(c.messages.map((m) => m.data.toString('utf8')), texts, 'server received the texts');
});

test('binary messages sent by the probe are echoed intact (0, 125, 126, 1000 bytes incl. NUL)', async (t) => {
  const srv = await startWsServer(t, {}, echo);
  const bins = [Buffer.alloc(0), patternBytes(125, 1), patternBytes(126, 2), Buffer.concat([Buffer.alloc(10), patternBytes(990, 3)])];
  const r = await runProbe(t, srv.url, { sendHex: bins.map((b) => b.toString('hex')), expect: bins.length, close: 1000 });
  assertProbeOk(r);
  assert.deepEqual(
    r.parsed.messages.map((m) => [m.binary, m.len, m.data.toString('hex')]),
    bins.map((b) => [true, b.length, b.toString('hex')])
  );
  const c = await srv.nextConn();
  assert.deepEqual(c.messages.map((m) => [m.binary, m.data.toString('hex')]), bins.map((b) => [true, b.toString('hex')]));
});

test('messages from the server up to 1 MiB reach the probe and come back intact (--echo)', async (t) => {
  const MiB = 1048576;
  const sizes = [0, 125, 126, 65535, 65536, MiB];
  const payloads = [];
  for (const n of sizes) payloads.push({ binary: true, data: patternBytes(n, n + 1) });
  for (const n of [0, 125, 126, 65535, 65536]) payloads.push({ binary: false, data: Buffer.from('x'.repeat(n)) });
  const unicode = 'NUL:\u0000 é € 😀 🏳️‍🌈 𝄞 \u{10FFFF} end';
  payloads.push({ binary: false, data: Buffer.from(unicode, 'utf8') });
  // A 1 MiB text message of 4-byte characters (max-message is 1 MiB).
  payloads.push({ binary: false, data: Buffer.from('😀'.repeat(MiB / 4), 'utf8') });

  const srv = await startWsServer(t, {}, (ws) => {
    for (const p of payloads) ws.send(p.binary ? p.data : p.data.toString('utf8'), { binary: p.binary });
  });
  const r = await runProbe(t, srv.url, { echo: true, expect: payloads.length, close: 1000, quitAfter: 12000 });
  assertProbeOk(r);
  assert.equal(r.parsed.messages.length, payloads.length, 'messages reported by the probe');
  for (let i = 0; i < payloads.length; i++) {
    const m = r.parsed.messages[i];
    const p = payloads[i];
    assert.equal(m.binary, p.binary, `message ${i} type`);
    assert.equal(m.len, p.data.length, `message ${i} length`);
    assert.ok(m.data.equals(p.data), `message ${i} (${p.data.length} bytes) reported intact`);
  }
  const c = await srv.nextConn();
  await withTimeout(c.closed, 5000, 'server sees the close');
  assert.equal(c.messages.length, payloads.length, 'echoes received by the server');
  for (let i = 0; i < payloads.length; i++) {
    assert.equal(c.messages[i].binary, payloads[i].binary, `echo ${i} type`);
    assert.ok(c.messages[i].data.equals(payloads[i].data), `echo ${i} (${payloads[i].data.length} bytes) intact`);
  }
  assert.deepEqual(c.close, { code: 1000, reason: 'bye' });
});

test('subprotocol: offered list reaches the server and the chosen one is reported', async (t) => {
  const srv = await startWsServer(t, {
    handleProtocols: (protocols) => (protocols.has('chat.v2') ? 'chat.v2' : false),
  });
  const r = await runProbe(t, srv.url, { protocol: 'chat.v1, chat.v2', close: 1000 });
  assertProbeOk(r);
  assert.equal(r.parsed.open.protocol, 'chat.v2');
  const c = await srv.nextConn();
  assert.match(c.req.headers['sec-websocket-protocol'], /^chat\.v1, ?chat\.v2$/);
  assert.equal(c.ws.protocol, 'chat.v2');
  assert.equal(r.parsed.close.fail, 'ok');
});

test('subprotocol: none offered, none chosen -> "open protocol=-"', async (t) => {
  const srv = await startWsServer(t);
  const r = await runProbe(t, srv.url, { close: 1000 });
  assertProbeOk(r);
  assert.equal(r.parsed.open.protocol, null);
  const c = await srv.nextConn();
  assert.equal(c.req.headers['sec-websocket-protocol'], undefined);
});

test('subprotocol: server picking a protocol that was not offered fails the handshake', async (t) => {
  const srv = await startWsServer(t, { handleProtocols: () => 'evil.v9' });
  const r = await runProbe(t, srv.url, { protocol: 'chat.v1', close: 1000 });
  assert.equal(r.code, 0, describeRun(r));
  assert.equal(r.parsed.open, null, `must not open\n${describeRun(r)}`);
  assert.ok(r.parsed.close, describeRun(r));
  assert.equal(r.parsed.close.fail, 'handshake', describeRun(r));
  assert.equal(r.parsed.close.opened, false);
});

test('subprotocol: server choosing one when none was offered fails the handshake', async (t) => {
  // ws never answers a protocol that was not asked for, so the raw server.
  const srv = await startRawServer(t, null, { protocol: 'chat.v1' });
  const r = await runProbe(t, srv.url, { close: 1000 });
  assert.equal(r.code, 0, describeRun(r));
  assert.equal(r.parsed.open, null, `must not open\n${describeRun(r)}`);
  assert.equal(r.parsed.close?.fail, 'handshake', describeRun(r));
});

test('extra --header values arrive at the server', async (t) => {
  const srv = await startWsServer(t);
  const r = await runProbe(t, srv.url, {
    headers: ['X-Forwarded-For: 192.0.2.7', 'Authorization: Bearer abc.def', 'Cookie: sid=42; theme=dark'],
    close: 1000,
  });
  assertProbeOk(r);
  const c = await srv.nextConn();
  assert.equal(c.req.headers['x-forwarded-for'], '192.0.2.7');
  assert.equal(c.req.headers.authorization, 'Bearer abc.def');
  assert.equal(c.req.headers.cookie, 'sid=42; theme=dark');
  assert.equal(c.req.headers['sec-websocket-version'], '13');
  assert.match(c.req.headers['sec-websocket-key'], /^[A-Za-z0-9+/]{22}==$/);
});

test('keepalive: pings are sent and answered pongs keep the connection open', async (t) => {
  const srv = await startWsServer(t, {}, (ws, req, c) => {
    // Close ourselves once three keepalive pings arrived.
    ws.on('ping', () => {
      if (c.pings.length >= 3) ws.close(1000, 'enough');
    });
  });
  const started = Date.now();
  const r = await runProbe(t, srv.url, { ping: 300, quitAfter: 8000 });
  assertProbeOk(r);
  assert.equal(r.parsed.close.fail, 'ok', describeRun(r));
  assert.equal(r.parsed.close.code, 1000, describeRun(r));
  const c = await srv.nextConn();
  assert.ok(c.pings.length >= 3, `pings seen by the server: ${c.pings.length}`);
  assert.ok(Date.now() - started >= 800, 'three 300 ms intervals passed');
});

test('keepalive: a server that never answers pings -> ping-timeout', async (t) => {
  const srv = await startWsServer(t, { autoPong: false });
  const started = Date.now();
  const r = await runProbe(t, srv.url, { ping: 300, quitAfter: 6000 });
  const ms = Date.now() - started;
  assert.equal(r.code, 0, describeRun(r));
  assert.ok(r.parsed.open, describeRun(r));
  assert.equal(r.parsed.close?.fail, 'ping-timeout', describeRun(r));
  // one interval to the ping + one pong timeout (+ close handshake, startup)
  assert.ok(ms >= 550, `gave up too early: ${ms} ms`);
  assert.ok(ms < 4000, `gave up too late: ${ms} ms`);
  const c = await srv.nextConn();
  assert.ok(c.pings.length >= 1, 'the server saw the ping');
});

test('IPv6 loopback: ws://[::1]:port/ works', async (t) => {
  if (!(await haveIpv6Loopback())) {
    t.skip('::1 is not available on this machine');
    return;
  }
  const srv = await startWsServer(t, {}, echo, '::1');
  const r = await runProbe(t, srv.url, { send: ['over v6'], expect: 1, close: 1000 });
  assertProbeOk(r);
  assert.equal(r.parsed.messages[0]?.data.toString(), 'over v6');
  const c = await srv.nextConn();
  assert.equal(c.remoteAddress, '::1');
  assert.equal(c.req.headers.host, `[::1]:${srv.port}`);
});

test('application close 1000: the server sees 1000 "bye", the probe reports a clean close', async (t) => {
  const srv = await startWsServer(t);
  const r = await runProbe(t, srv.url, { send: ['hi'], close: 1000 });
  assertProbeOk(r);
  const c = await srv.nextConn();
  const closeInfo = await withTimeout(c.closed, 5000, 'server close event');
  assert.deepEqual(closeInfo, { code: 1000, reason: 'bye' });
  assert.equal(r.parsed.close.code, 1000, describeRun(r));
  assert.equal(r.parsed.close.fail, 'ok', describeRun(r));
  assert.equal(r.parsed.close.opened, true);
  assert.equal(c.messages[0]?.data.toString(), 'hi');
});

test('application close with a 4xxx code reaches the server', async (t) => {
  const srv = await startWsServer(t);
  const r = await runProbe(t, srv.url, { close: 4321 });
  assertProbeOk(r);
  const c = await srv.nextConn();
  assert.deepEqual(await withTimeout(c.closed, 5000, 'server close event'), { code: 4321, reason: 'bye' });
});

test('server close 1001 with a reason is reported with that code and reason', async (t) => {
  const srv = await startWsServer(t, {}, (ws) => ws.close(1001, 'going away ✓'));
  const r = await runProbe(t, srv.url, {});
  assertProbeOk(r);
  assert.equal(r.parsed.close.code, 1001);
  assert.equal(r.parsed.close.fail, 'ok');
  assert.equal(r.parsed.close.reason.toString('utf8'), 'going away ✓');
  const c = await srv.nextConn();
  assert.equal((await withTimeout(c.closed, 5000, 'server close')).code, 1001);
});

test('a message over --max-message from ws is refused with 1009', async (t) => {
  const srv = await startWsServer(t, {}, (ws) => ws.send(patternBytes(5000)));
  const r = await runProbe(t, srv.url, { maxMessage: 4096 });
  assert.equal(r.code, 0, describeRun(r));
  assert.equal(r.parsed.messages.length, 0);
  assert.equal(r.parsed.close?.code, 1009, describeRun(r));
  const c = await srv.nextConn();
  assert.equal((await withTimeout(c.closed, 5000, 'server close')).code, 1009);
});

// Opening-handshake validation (RFC 6455 4.1, the client's duties on the
// server's response): each bad 101 must fail the connection before open.
{
  const ok101 = (req) => handshakeResponse(req).split('\r\n').filter((l) => l !== '');
  const join = (lines) => lines.join('\r\n') + '\r\n\r\n';
  const without = (name) => (req) => join(ok101(req).filter((l) => !l.toLowerCase().startsWith(name)));
  const replace = (name, line) => (req) => join(ok101(req).map((l) => (l.toLowerCase().startsWith(name) ? line : l)));
  const plus = (line) => (req) => join([...ok101(req), line]);
  const badResponses = [
    ['missing Upgrade header', without('upgrade:'), 'handshake'],
    ['Upgrade: h2c instead of websocket', replace('upgrade:', 'Upgrade: h2c'), 'handshake'],
    ['missing Connection header', without('connection:'), 'handshake'],
    ['Connection: keep-alive (no Upgrade token)', replace('connection:', 'Connection: keep-alive'), 'handshake'],
    ['missing Sec-WebSocket-Accept', without('sec-websocket-accept:'), 'handshake'],
    ['Sec-WebSocket-Accept for another key', replace('sec-websocket-accept:', `Sec-WebSocket-Accept: ${acceptKey('dGhlIHNhbXBsZSBub25jZQ==')}`), 'handshake'],
    ['an extension that was not offered', plus('Sec-WebSocket-Extensions: permessage-deflate'), 'handshake'],
    ['200 instead of 101', () => 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', 'http-status', 200],
    ['302 redirect', () => 'HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n', 'http-status', 302],
  ];
  for (const [what, response, fail, status] of badResponses) {
    test(`handshake: ${what} -> fail=${fail}, never opened`, async (t) => {
      const srv = await startRawServer(t, null, { response });
      const r = await runProbe(t, srv.url, { send: ['must not be sent'], close: 1000, timeout: 3000 });
      assert.equal(r.code, 0, describeRun(r));
      assert.equal(r.parsed.open, null, `must not open\n${describeRun(r)}`);
      assert.equal(r.parsed.close?.fail, fail, describeRun(r));
      assert.equal(r.parsed.close.opened, false, describeRun(r));
      if (status) assert.equal(r.parsed.close.status, status, describeRun(r));
      const c = await srv.nextConn();
      assert.equal(c.frames.length, 0, 'no frame may follow a failed handshake');
    });
  }
}

// Messages a, b, c in one write (one read, one TLS record over wss), d and
// e in a write gapMs later, the close frame closeMs after that, to a probe
// run with --read-ends and probeOpts over `scheme`. Checks that all five and
// the close arrived; returns the run for the read-end checks.
async function readsRun(t, scheme, { gapMs, closeMs, probeOpts = {} }) {
  const certs = scheme === 'wss' ? await makeCerts(tmpDir(t)) : null;
  const srv = await startRawServer(t, async (conn) => {
    conn.socket.write(Buffer.concat([text('a'), text('b'), text('c')]));
    await sleep(gapMs);
    conn.socket.write(Buffer.concat([text('d'), text('e')]));
    await sleep(closeMs);
    conn.socket.write(frame({ opcode: OP.CLOSE, payload: closePayload(1000) }));
  }, certs ? { tls: certs.server } : {});
  assert.ok(srv.url.startsWith(`${scheme}://`), srv.url);
  const r = await runProbe(t, srv.url, { readEnds: true, ...probeOpts, ...(certs ? { ca: certs.ca } : {}) });
  assert.equal(r.code, 0, describeRun(r));
  assert.deepEqual(r.parsed.messages.map((m) => m.data.toString()), ['a', 'b', 'c', 'd', 'e'], describeRun(r));
  assert.equal(r.parsed.close?.code, 1000, describeRun(r));
  return r;
}

// Over ws:// the raw path reads the socket itself; over wss:// the
// messages come through bufferevent_openssl's read callback: both report
// the end of each read.
for (const scheme of ['ws', 'wss']) {
  test(`messages of one read are reported together over ${scheme}://: on_read_end after each read, not after each message`, async (t) => {
    const r = await readsRun(t, scheme, { gapMs: 300, closeMs: 300 });
    assert.deepEqual(r.parsed.readEnds, [3, 5], describeRun(r));
  });
}

// A pause in the middle of a read holds the rest of it back (over ws://
// the raw path keeps the unread bytes itself, over wss:// they stay in
// bufferevent_openssl's input); the resume delivers them and must report
// their read's end then, not only with the next read from the socket.
for (const scheme of ['ws', 'wss']) {
  test(`a read paused after its first message over ${scheme}://: the held messages get their own on_read_end at the resume`, async (t) => {
    // d and e well after the 300 ms pause is over, even on a slow machine:
    // the later writes must be reads of their own
    const r = await readsRun(t, scheme, { gapMs: 2000, closeMs: 1000, probeOpts: { pauseAt: 1, pauseMs: 300 } });
    const p = r.parsed;
    assert.deepEqual(p.pauses, [1], describeRun(r));
    assert.deepEqual(p.resumes, [1], `nothing may be delivered while paused\n${describeRun(r)}`);
    assert.deepEqual(p.readEnds, [1, 3, 5], describeRun(r));
  });
}

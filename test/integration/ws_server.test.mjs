// ws_server.test.mjs - the browser-facing WebSocket server (ws_server.c),
// run inside test/tools/wss_echo (evhttp + ws_server_accept, echoing every
// message) until it is wired into pollgate's routes.
//
// Well-behaved browsers are played by the npm `ws` client; misbehaving ones
// by a raw TCP client here that writes hand-built (masked or not) frames
// from rawws.mjs and decodes what the server answers. wss_echo prints one
// line per event (open, message, pause/resume, close code=...), which the
// tests read to see what the server itself concluded.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import crypto from 'node:crypto';
import WebSocket from 'ws';

import { BUILDDIR, requireBin, startProcess, withTimeout, deferred, sleep, patternBytes } from './lib.mjs';
import { frame, close as closeFrame, OP, FrameReader, parseClose, acceptKey } from './rawws.mjs';

const WSS_ECHO_BIN = process.env.WSS_ECHO_BIN || path.join(BUILDDIR, 'test', 'tools', 'wss_echo');
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

async function startEcho(t, args = []) {
  requireBin(WSS_ECHO_BIN, 'WSS_ECHO_BIN');
  const p = startProcess(t, WSS_ECHO_BIN, ['--port', '0', ...args], { timeoutMs: 120000 });
  const line = await p.waitStdout(/^listening \d+/);
  p.port = Number(line.split(' ')[1]);
  p.url = `ws://127.0.0.1:${p.port}/echo`;
  p.closeLine = () => p.waitStdout(/^close /, 10000);
  return p;
}

const mask = () => crypto.randomBytes(4);
const mtext = (payload, o = {}) => frame({ opcode: OP.TEXT, payload, mask: mask(), ...o });
const mbin = (payload, o = {}) => frame({ opcode: OP.BINARY, payload, mask: mask(), ...o });

function upgradeRequest({ method = 'GET', headers } = {}) {
  const h = headers ?? {
    Host: '127.0.0.1',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': KEY,
  };
  let s = `${method} /echo HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(h)) s += `${k}: ${v}\r\n`;
  return Buffer.from(s + '\r\n');
}

/**
 * A raw client: writes the request (plus `after`, in the same write), parses
 * the HTTP answer, then decodes server frames. { head, status, headers, body,
 * frames, waitFrame(pred), closeFrame (promise), ended (promise), sock }.
 */
function rawClient(port, { request = upgradeRequest(), after = Buffer.alloc(0), read = true } = {}) {
  const sock = net.connect(port, '127.0.0.1');
  const c = { sock, frames: [], head: null, body: Buffer.alloc(0) };
  const headDone = deferred();
  const ended = deferred();
  const waiters = [];
  const reader = new FrameReader();
  let buf = Buffer.alloc(0);
  c.closeFrame = new Promise((resolve) => waiters.push({ pred: (f) => f.opcode === OP.CLOSE, resolve }));
  const onFrames = (frames) => {
    for (const f of frames) {
      c.frames.push(f);
      for (const w of waiters.slice()) {
        if (w.pred(f)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(f);
        }
      }
    }
  };
  sock.on('data', (d) => {
    if (c.head === null) {
      buf = Buffer.concat([buf, d]);
      const i = buf.indexOf('\r\n\r\n');
      if (i < 0) return;
      c.head = buf.subarray(0, i).toString('latin1');
      const lines = c.head.split('\r\n');
      c.status = Number(lines[0].split(' ')[1]);
      c.headers = {};
      for (const l of lines.slice(1)) {
        const k = l.indexOf(':');
        c.headers[l.slice(0, k).toLowerCase()] = l.slice(k + 1).trim();
      }
      const rest = buf.subarray(i + 4);
      if (c.status === 101) onFrames(reader.push(rest));
      else c.body = rest;
      headDone.resolve(c);
      return;
    }
    if (c.status === 101) onFrames(reader.push(d));
    else c.body = Buffer.concat([c.body, d]);
  });
  sock.on('error', () => {});
  sock.on('close', () => {
    headDone.resolve(c);
    ended.resolve();
  });
  sock.write(Buffer.concat([request, after]));
  if (!read) sock.pause();
  c.ready = withTimeout(headDone.promise, 5000, 'HTTP answer');
  // a getter: the timeout starts when a test waits, not at connect
  Object.defineProperty(c, 'ended', { get: () => withTimeout(ended.promise, 10000, 'TCP close') });
  c.waitFrame = (pred, ms = 5000) => {
    const f = c.frames.find(pred);
    if (f) return Promise.resolve(f);
    const d = deferred();
    waiters.push({ pred, resolve: d.resolve });
    return withTimeout(d.promise, ms, 'frame');
  };
  return c;
}

function wsOpen(url, protocols) {
  const ws = new WebSocket(url, protocols);
  const opened = new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const messages = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    messages.push({ data, isBinary });
    for (const w of waiters.slice()) if (messages.length >= w.n) w.resolve(messages.slice(0, w.n));
  });
  return {
    ws,
    opened: withTimeout(opened, 5000, 'open'),
    closed: withTimeout(closed, 10000, 'close'),
    messages,
    waitMessages(n, ms = 10000) {
      if (messages.length >= n) return Promise.resolve(messages.slice(0, n));
      const d = deferred();
      waiters.push({ n, resolve: d.resolve });
      return withTimeout(d.promise, ms, `${n} messages`);
    },
  };
}

// ---------------------------------------------------------------- browsers

describe('ws_server with a real client (npm ws)', () => {
  test('text and binary echo, subprotocol chosen from the offer', async (t) => {
    const echo = await startEcho(t, ['--protocols', 'v2, chat']);
    const c = wsOpen(echo.url, ['chat', 'v2']);
    await c.opened;
    assert.equal(c.ws.protocol, 'v2');
    c.ws.send('héllo €');
    c.ws.send(Buffer.from([0, 1, 2, 255]));
    c.ws.send('');
    const m = await c.waitMessages(3);
    assert.equal(m[0].isBinary, false);
    assert.equal(m[0].data.toString(), 'héllo €');
    assert.equal(m[1].isBinary, true);
    assert.deepEqual([...m[1].data], [0, 1, 2, 255]);
    assert.equal(m[2].data.length, 0);
    c.ws.close(1000);
    assert.equal((await c.closed).code, 1000);
    assert.match(await echo.closeLine(), /^close code=1000 clean=1 by_browser=1/);
  });

  test('no subprotocol when none matches; none offered, none chosen', async (t) => {
    const echo = await startEcho(t, ['--protocols', 'x']);
    // (npm ws refuses a 101 without a protocol when it offered some;
    // browsers accept it, so this one is checked on the raw answer)
    const a = rawClient(echo.port, {
      request: upgradeRequest({
        headers: {
          Host: 'x', Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13',
          'Sec-WebSocket-Key': KEY, 'Sec-WebSocket-Protocol': 'chat, X',
        },
      }),
    });
    await a.ready;
    assert.equal(a.status, 101);
    assert.equal(a.headers['sec-websocket-protocol'], undefined);
    a.sock.destroy();
    const b = wsOpen(echo.url);
    await b.opened;
    assert.equal(b.ws.protocol, '');
    b.ws.close();
    await b.closed;
  });

  test('1 MiB messages both kinds, and fragmented messages', async (t) => {
    const echo = await startEcho(t, ['--max-message', String(2 * 1024 * 1024)]);
    const c = wsOpen(echo.url);
    await c.opened;
    const big = patternBytes(1024 * 1024, 7);
    const bigText = 'é'.repeat(512 * 1024); // 1 MiB of UTF-8
    c.ws.send(big);
    c.ws.send(bigText);
    // fragmented: three frames, the middle one splitting a UTF-8 sequence
    c.ws.send(Buffer.from('frag-\xC3', 'latin1'), { fin: false, binary: false });
    c.ws.send(Buffer.from('\xA9-', 'latin1'), { fin: false, binary: false });
    c.ws.send('end', { fin: true, binary: false });
    const m = await c.waitMessages(3, 30000);
    assert.ok(m[0].isBinary);
    assert.ok(Buffer.compare(m[0].data, big) === 0);
    assert.equal(m[1].data.toString(), bigText);
    assert.equal(m[2].data.toString(), 'frag-é-end');
    c.ws.close();
    await c.closed;
  });

  test('ping answered with the same payload; idle connection pinged', async (t) => {
    const echo = await startEcho(t, ['--ping', '300', '--pong', '2000']);
    const c = wsOpen(echo.url);
    await c.opened;
    const pong = new Promise((r) => c.ws.once('pong', (d) => r(d.toString())));
    c.ws.ping('abc');
    assert.equal(await withTimeout(pong, 3000, 'pong'), 'abc');
    const ping = new Promise((r) => c.ws.once('ping', r));
    await withTimeout(ping, 3000, 'server ping');
    // ws answers pings itself, so the connection stays up
    await sleep(1000);
    assert.equal(c.ws.readyState, WebSocket.OPEN);
    c.ws.send('still here');
    assert.equal((await c.waitMessages(1))[0].data.toString(), 'still here');
    c.ws.close();
    await c.closed;
  });

  test('close codes both ways', async (t) => {
    const echo = await startEcho(t);
    const a = wsOpen(echo.url);
    await a.opened;
    a.ws.close(4000, 'bye now');
    assert.deepEqual(await a.closed, { code: 4000, reason: '' });
    assert.match(await echo.closeLine(),
      new RegExp(`^close code=4000 clean=1 by_browser=1 reason=${Buffer.from('bye now').toString('hex')}`));

    const echo2 = await startEcho(t);
    const b = wsOpen(echo2.url);
    await b.opened;
    b.ws.send('close 4001 going');
    assert.deepEqual(await b.closed, { code: 4001, reason: 'going' });
    assert.match(await echo2.closeLine(), /^close code=4001 clean=1 by_browser=0/);

    const echo3 = await startEcho(t);
    const c = wsOpen(echo3.url);
    await c.opened;
    c.ws.close(); // no status
    assert.equal((await c.closed).code, 1005);
    assert.match(await echo3.closeLine(), /^close code=1005 clean=1 by_browser=1/);
  });

  test('a dropped TCP connection is a 1006', async (t) => {
    const echo = await startEcho(t);
    const c = wsOpen(echo.url);
    await c.opened;
    c.ws.terminate();
    assert.match(await echo.closeLine(), /^close code=1006 clean=0/);
  });
});

// -------------------------------------------------------- bad browsers

const T = (s) => Buffer.from(s, 'utf8');
const badCases = [
  { name: 'unmasked frame', bytes: () => frame({ opcode: OP.TEXT, payload: 'hi' }), code: 1002 },
  { name: 'unmasked frame after a good one', bytes: () => Buffer.concat([mtext('ok'), frame({ opcode: OP.BINARY, payload: 'x' })]), code: 1002, echoes: 1 },
  {
    name: 'bad UTF-8 split across frames',
    bytes: () => Buffer.concat([mtext(Buffer.from([0x61, 0xe2, 0x82]), { fin: false }), frame({ opcode: OP.CONT, payload: Buffer.from([0x28]), mask: mask() })]),
    code: 1007,
  },
  { name: 'bad UTF-8 in one frame', bytes: () => mtext(Buffer.from([0xc0, 0xaf])), code: 1007 },
  { name: 'oversized ping', bytes: () => frame({ opcode: OP.PING, payload: Buffer.alloc(126), mask: mask() }), code: 1002 },
  { name: 'fragmented ping', bytes: () => frame({ opcode: OP.PING, fin: false, payload: 'x', mask: mask() }), code: 1002 },
  { name: 'reserved bit RSV1 (no deflate negotiated)', bytes: () => mtext('x', { rsv: 4 }), code: 1002 },
  { name: 'reserved bit RSV3', bytes: () => mtext('x', { rsv: 1 }), code: 1002 },
  { name: 'reserved opcode 3', bytes: () => frame({ opcode: 3, payload: 'x', mask: mask() }), code: 1002 },
  { name: 'reserved opcode 0xB', bytes: () => frame({ opcode: 0xb, payload: '', mask: mask() }), code: 1002 },
  { name: 'continuation without a message', bytes: () => frame({ opcode: OP.CONT, payload: 'x', mask: mask() }), code: 1002 },
  { name: 'close with invalid code 1005', bytes: () => closeFrame(1005, '', { mask: mask() }), code: 1002 },
  { name: 'close with invalid code 999', bytes: () => closeFrame(999, '', { mask: mask() }), code: 1002 },
  { name: 'close with a 1-byte payload', bytes: () => frame({ opcode: OP.CLOSE, payload: Buffer.from([3]), mask: mask() }), code: 1002 },
  { name: 'close reason not UTF-8', bytes: () => closeFrame(1000, Buffer.from([0xff]), { mask: mask() }), code: 1007 },
  { name: 'message over max_message', bytes: () => mbin(Buffer.alloc(70000)), code: 1009 },
  {
    name: 'fragments adding up over max_message',
    bytes: () => Buffer.concat([mbin(Buffer.alloc(40000), { fin: false }), frame({ opcode: OP.CONT, payload: Buffer.alloc(40000), mask: mask() })]),
    code: 1009,
  },
];

describe('ws_server with a misbehaving client (raw TCP)', () => {
  for (const bc of badCases) {
    test(`${bc.name}: close ${bc.code}, then TCP closed`, async (t) => {
      const echo = await startEcho(t, ['--max-message', '65536']);
      const c = rawClient(echo.port, { after: bc.bytes() });
      await c.ready;
      assert.equal(c.status, 101);
      const f = await withTimeout(c.closeFrame, 5000, 'close frame');
      assert.equal(parseClose(f.payload).code, bc.code);
      assert.equal(f.masked, false);
      const echoes = c.frames.filter((x) => x.opcode === OP.TEXT || x.opcode === OP.BINARY);
      assert.equal(echoes.length, bc.echoes ?? 0);
      await c.ended; // the server drops the connection (bounded)
      assert.match(await echo.closeLine(), new RegExp(`^close code=${bc.code} clean=0 by_browser=0`));
    });
  }

  test('a browser that never answers the close frame is dropped after close_timeout', async (t) => {
    const echo = await startEcho(t, ['--close-timeout', '500']);
    const c = rawClient(echo.port, { after: mtext('close 4002 x') });
    await c.ready;
    const f = await c.closeFrame;
    assert.equal(parseClose(f.payload).code, 4002);
    const t0 = Date.now();
    await c.ended;
    assert.ok(Date.now() - t0 < 3000);
    assert.match(await echo.closeLine(), /^close code=4002 clean=0 by_browser=0 .*no close frame from browser within 500 ms/);
  });

  test('a browser that never answers pings is dropped (1006)', async (t) => {
    const echo = await startEcho(t, ['--ping', '200', '--pong', '300']);
    const c = rawClient(echo.port);
    await c.ready;
    const p = await c.waitFrame((f) => f.opcode === OP.PING, 3000);
    assert.equal(p.masked, false);
    await c.ended;
    assert.match(await echo.closeLine(), /^close code=1006 .*no pong within 300 ms/);
  });

  test('ping from the browser is answered, interleaved in a fragmented message', async (t) => {
    const echo = await startEcho(t);
    const after = Buffer.concat([
      mtext('ab', { fin: false }),
      frame({ opcode: OP.PING, payload: 'p!', mask: mask() }),
      frame({ opcode: OP.CONT, payload: 'cd', mask: mask() }),
    ]);
    const c = rawClient(echo.port, { after });
    await c.ready;
    const pong = await c.waitFrame((f) => f.opcode === OP.PONG);
    assert.equal(pong.payload.toString(), 'p!');
    const m = await c.waitFrame((f) => f.opcode === OP.TEXT);
    assert.equal(m.payload.toString(), 'abcd');
    // the pong came before the echo of the message it interrupted
    assert.ok(c.frames.indexOf(pong) < c.frames.indexOf(m));
    c.sock.write(closeFrame(1000, '', { mask: mask() }));
    const f = await c.closeFrame;
    assert.equal(parseClose(f.payload).code, 1000);
    await c.ended;
  });

  test('frames pipelined right behind the upgrade request are not lost', async (t) => {
    const echo = await startEcho(t);
    const frames = [];
    for (let i = 0; i < 50; i++) frames.push(mtext(`m${i}`));
    frames.push(mbin(patternBytes(100000, 3)));
    const c = rawClient(echo.port, { after: Buffer.concat(frames) });
    await c.ready;
    assert.equal(c.status, 101);
    assert.equal(c.headers['sec-websocket-accept'], acceptKey(KEY));
    assert.equal(c.headers['sec-websocket-extensions'], undefined);
    await c.waitFrame((f) => f.opcode === OP.BINARY);
    const got = c.frames.filter((f) => f.opcode === OP.TEXT).map((f) => f.payload.toString());
    assert.deepEqual(got, frames.slice(0, 50).map((_, i) => `m${i}`));
    const bin = c.frames.find((f) => f.opcode === OP.BINARY);
    assert.ok(Buffer.compare(bin.payload, patternBytes(100000, 3)) === 0);
  });

  test('ws_server_free inside on_message drops the connection, no on_close', async (t) => {
    const echo = await startEcho(t);
    const c = rawClient(echo.port, { after: Buffer.concat([mtext('one'), mtext('free'), mtext('never')]) });
    await c.ready;
    await c.ended;
    await echo.waitStdout(/^freed$/);
    await sleep(300);
    const texts = c.frames.filter((f) => f.opcode === OP.TEXT).map((f) => f.payload.toString());
    // (the free is abrupt: output not yet written, the 101 included, is
    // discarded with the socket)
    assert.ok(texts.every((x) => x === 'one') && texts.length <= 1, texts.join());
    assert.ok(!echo.stdoutLines.some((l) => l.startsWith('close ')));
    assert.ok(!echo.stdoutLines.includes('message text 5'), 'a message after the free was delivered');
    // the server goes on serving others
    const d = wsOpen(echo.url);
    await d.opened;
    d.ws.close();
    await d.closed;
  });

  test('permessage-deflate is declined (no extension in the 101)', async (t) => {
    const echo = await startEcho(t);
    const req = upgradeRequest({
      headers: {
        Host: 'x', Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': KEY, 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits',
      },
    });
    const c = rawClient(echo.port, { request: req, after: mtext('plain') });
    await c.ready;
    assert.equal(c.status, 101);
    assert.equal(c.headers['sec-websocket-extensions'], undefined);
    const m = await c.waitFrame((f) => f.opcode === OP.TEXT);
    assert.equal(m.rsv, 0);
    assert.equal(m.payload.toString(), 'plain');
  });

  test('a client that never reads makes the server stop reading (no unbounded buffer)', async (t) => {
    const limit = 256 * 1024;
    const echo = await startEcho(t, ['--output-limit', String(limit)]);
    const c = rawClient(echo.port, { read: true });
    await c.ready;
    c.sock.pause(); // from now on we never read
    const n = 1500;
    const payload = patternBytes(32 * 1024, 5);
    const frames = [];
    for (let i = 0; i < n; i++) frames.push(mbin(payload));
    const total = frames.reduce((s, f) => s + f.length, 0); // ~48 MiB
    for (const f of frames) c.sock.write(f);
    await echo.waitStdout(/^pause$/, 20000);
    await sleep(1500);
    const count = () => echo.stdoutLines.filter((l) => l.startsWith('message ')).length;
    const a = count();
    await sleep(1000);
    const b = count();
    assert.equal(a, b, 'the server kept reading while paused');
    assert.ok(b < n, `all ${n} messages were read although nothing was written out`);
    // what the kernel and the server hold is bounded: most of the data is
    // still waiting in our own socket's user-space queue
    assert.ok(c.sock.writableLength > total / 2, `only ${c.sock.writableLength} of ${total} bytes still queued`);
    // now read: everything comes back, in order, and the server resumes
    const done = c.waitFrame(() => c.frames.filter((f) => f.opcode === OP.BINARY).length === n, 60000);
    c.sock.resume();
    await done;
    const echoes = c.frames.filter((f) => f.opcode === OP.BINARY);
    assert.equal(echoes.length, n);
    assert.ok(echoes.every((f) => Buffer.compare(f.payload, payload) === 0));
    assert.ok(echo.stdoutLines.includes('resume'));
  });
});

// -------------------------------------------------------- handshake errors

describe('ws_server handshake errors (exact HTTP answers)', () => {
  const base = { Host: 'x', Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': KEY };
  const without = (k) => Object.fromEntries(Object.entries(base).filter(([n]) => n !== k));
  const cases = [
    { name: 'GET without Upgrade', headers: without('Upgrade'), status: 400, body: 'Can "Upgrade" only to "WebSocket".' },
    { name: 'Upgrade: h2c', headers: { ...base, Upgrade: 'h2c' }, status: 400, body: 'Can "Upgrade" only to "WebSocket".' },
    { name: 'bad Connection', headers: { ...base, Connection: 'keep-alive' }, status: 400, body: '"Connection" must be "Upgrade".' },
    { name: 'POST', method: 'POST', headers: { ...base, 'Content-Length': '0' }, status: 405, allow: 'GET' },
    { name: 'wrong version', headers: { ...base, 'Sec-WebSocket-Version': '8' }, status: 426, version: '13' },
    { name: 'missing version', headers: without('Sec-WebSocket-Version'), status: 426, version: '13' },
    { name: 'missing key', headers: without('Sec-WebSocket-Key'), status: 400, body: 'Missing or invalid "Sec-WebSocket-Key".' },
    { name: 'invalid key', headers: { ...base, 'Sec-WebSocket-Key': 'short' }, status: 400, body: 'Missing or invalid "Sec-WebSocket-Key".' },
  ];
  for (const hc of cases) {
    test(`${hc.name}: ${hc.status}`, async (t) => {
      const echo = await startEcho(t);
      const c = rawClient(echo.port, { request: upgradeRequest({ method: hc.method, headers: hc.headers }) });
      await c.ready;
      await withTimeout(new Promise((r) => {
        const len = Number(c.headers['content-length'] ?? 0);
        const check = () => (c.body.length >= len ? r() : setTimeout(check, 10));
        check();
      }), 3000, 'body');
      assert.equal(c.status, hc.status);
      if (hc.body !== undefined) assert.equal(c.body.toString(), hc.body);
      if (hc.allow) assert.equal(c.headers.allow, hc.allow);
      if (hc.version) assert.equal(c.headers['sec-websocket-version'], hc.version);
      assert.equal(c.headers.upgrade, undefined);
      await echo.waitStdout(/^reject /);
      assert.ok(!echo.stdoutLines.some((l) => l.startsWith('open')));
    });
  }
});

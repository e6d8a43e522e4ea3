// conformance.test.mjs - RFC 6455 conformance of pollgate's upstream client
// (ws_client, driven by test/tools/wsc_probe) against a misbehaving server.
//
// rawws.mjs is a server on bare `net` that completes the opening handshake
// correctly, then writes hand-built frames (many of them invalid) and records
// the frames the client sends back. Every case runs twice:
//
//  1. against the npm `ws` client, a known-good independent implementation,
//     which proves the raw server and the case are right: `ws` must answer
//     with the expected close code (or with its documented deviation, see
//     WS_DEVIATIONS below);
//  2. against wsc_probe, which must answer with the code RFC 6455 requires.
//
// Where npm ws (8.x) differs from RFC 6455 (recorded, asserted as such):
//  - non-minimal payload length encodings (RFC 6455 5.2: "the minimal number
//    of bytes MUST be used to encode the length") are accepted by ws and the
//    message is delivered; the RFC client answer is 1002.
//  - a 64-bit length with the most significant bit set (5.2: "the most
//    significant bit MUST be 0") is answered by ws with 1009 (it checks the
//    length against 2^53-1 first, "Unsupported WebSocket frame: payload
//    length > 2^53 - 1"); the RFC answer is 1002 (protocol error).
//  Not visible in close codes: ws validates UTF-8 only once a message is
//  complete (RFC 8.1 allows failing fast, does not require it), and it
//  accepts close codes 1012-1014 (registered with IANA after RFC 6455).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

import { runProbe, withTimeout, describeRun, patternBytes, deferred } from './lib.mjs';
import {
  startRawServer, frame, text, binary, cont, ping, pong, close, closePayload, OP,
} from './rawws.mjs';

const B = (...bytes) => Buffer.from(bytes.flat());
const T = (s) => Buffer.from(s, 'utf8');

// --------------------------------------------------------------- the cases
//
// A case: { name, frames: [Buffer] (written in one go) | script(conn),
//           maxMessage, bytewise,
//           expect: { code, messages: [{binary, data}], pongs: [Buffer],
//                     probe: { code, fail } }   (RFC behaviour)
//           ws: same shape, when npm ws deviates }
// expect.code: the close code the client must send; null = a close frame
// without status; 'none' = no close frame at all (TCP drop).
// When expect.messages is given, the server waits for the client to echo
// them and then closes with 1000 itself (so the client answers 1000).

const msg = (data, bin = false) => ({ binary: bin, data: Buffer.isBuffer(data) ? data : T(data) });
const protocolError = (name, frames, extra = {}) => ({ name, frames, expect: { code: 1002 }, ...extra });

const CASES = [];

// Frame header / opcode rules.
CASES.push(protocolError('masked server frame', [text('hi', { mask: B(1, 2, 3, 4) })]));
for (const [bit, rsv] of [['RSV1', 4], ['RSV2', 2], ['RSV3', 1]]) {
  CASES.push(protocolError(`${bit} set without extension`, [text('x', { rsv })]));
}
for (const op of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
  CASES.push(protocolError(`reserved opcode ${op}`, [frame({ opcode: op, payload: 'x' })]));
}
CASES.push(protocolError('CONT without a started message', [cont('x')]));
CASES.push(protocolError('new TEXT while a fragmented message is in progress', [text('a', { fin: false }), text('b')]));
CASES.push(protocolError('new BINARY while a fragmented message is in progress', [binary('a', { fin: false }), binary('b')]));

// Payload length encodings.
CASES.push({
  name: 'non-minimal length: 16-bit form for 5 bytes',
  frames: [text('hello', { lenForm: 16 })],
  expect: { code: 1002 },
  ws: { messages: [msg('hello')] },
});
CASES.push({
  name: 'non-minimal length: 64-bit form for 5 bytes',
  frames: [text('hello', { lenForm: 64 })],
  expect: { code: 1002 },
  ws: { messages: [msg('hello')] },
});
CASES.push({
  name: 'non-minimal length: 64-bit form for 200 bytes',
  frames: [binary(patternBytes(200), { lenForm: 64 })],
  expect: { code: 1002 },
  ws: { messages: [msg(patternBytes(200), true)] },
});
CASES.push({
  name: '64-bit length with the most significant bit set',
  frames: [text('hello', { length: 0x8000000000000005n })],
  expect: { code: 1002 },
  ws: { code: 1009 },
});

// Control frames.
CASES.push({
  name: 'ping with 125-byte payload is answered with the same payload',
  frames: [ping(patternBytes(125, 7)), text('after')],
  expect: { pongs: [patternBytes(125, 7)], messages: [msg('after')] },
});
CASES.push(protocolError('ping with 126-byte payload', [ping(patternBytes(126))]));
CASES.push(protocolError('fragmented ping (FIN clear)', [ping('a', { fin: false })]));
CASES.push(protocolError('close with 126-byte payload', [close(1000, 'x'.repeat(124))]));
CASES.push(protocolError('fragmented close (FIN clear)', [close(1000, '', { fin: false })]));

// Close frames from the server.
for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]) {
  CASES.push(protocolError(`close with invalid code ${code}`, [close(code)]));
}
for (const code of [1000, 1001, 3000, 4999]) {
  CASES.push({
    name: `server close ${code} is echoed with the same code`,
    frames: [close(code, 'server says bye')],
    expect: { code, probe: { code, fail: 'ok' } },
  });
}
CASES.push({
  name: 'server close without status gets a close reply',
  frames: [close(null)],
  expect: { code: [null, 1000], probe: { code: 1005, fail: 'ok' } },
});
CASES.push({
  name: 'close reason with invalid UTF-8',
  frames: [frame({ opcode: OP.CLOSE, payload: Buffer.concat([closePayload(1000), B(0x61, 0xff, 0x62)]) })],
  expect: { code: 1007 },
});
CASES.push(protocolError('close payload of 1 byte', [frame({ opcode: OP.CLOSE, payload: B(0x03) })]));

// UTF-8 in text messages.
const badUtf8 = {
  'byte 0xFF': B(0x61, 0xff),
  'UTF-16 surrogate U+D800': B(0xed, 0xa0, 0x80),
  'overlong "/"': B(0xc0, 0xaf),
  'code point above U+10FFFF': B(0xf4, 0x90, 0x80, 0x80),
  'truncated sequence at message end': B(0x61, 0x62, 0xe2, 0x82),
};
for (const [what, bytes] of Object.entries(badUtf8)) {
  CASES.push({ name: `bad UTF-8 text (${what})`, frames: [text(bytes)], expect: { code: 1007 } });
}
CASES.push({
  name: 'bad UTF-8 split across fragments (valid prefix, bad continuation)',
  frames: [text(B(0x61, 0xe2, 0x82), { fin: false }), cont(B(0x28))],
  expect: { code: 1007 },
});
CASES.push({
  name: 'bad UTF-8 in a middle fragment',
  frames: [text('ok', { fin: false }), cont(B(0xff), { fin: false }), cont('x')],
  expect: { code: 1007 },
});
CASES.push({
  name: 'bad UTF-8: sequence left incomplete in the last fragment',
  frames: [text('ok', { fin: false }), cont(B(0xf0, 0x9f, 0x98))],
  expect: { code: 1007 },
});
{
  const euro = T('€'); // e2 82 ac
  const grin = T('😀'); // f0 9f 98 80
  const splits = [
    ['€ split 1+2', [euro.subarray(0, 1), euro.subarray(1)]],
    ['€ split 1+1+1', [euro.subarray(0, 1), euro.subarray(1, 2), euro.subarray(2)]],
    ['😀 split 1+3', [grin.subarray(0, 1), grin.subarray(1)]],
    ['😀 split 2+2', [grin.subarray(0, 2), grin.subarray(2)]],
    ['😀 split 3+1', [grin.subarray(0, 3), grin.subarray(3)]],
    ['empty fragments around "a€"', [B(), T('a'), B(), euro, B()]],
  ];
  for (const [what, parts] of splits) {
    const frames = parts.map((p, i) =>
      i === 0 ? text(p, { fin: parts.length === 1 }) : cont(p, { fin: i === parts.length - 1 })
    );
    CASES.push({
      name: `valid UTF-8 split across fragments is delivered intact (${what})`,
      frames,
      expect: { messages: [msg(Buffer.concat(parts))] },
    });
  }
}

// Message size limit (--max-message / maxPayload 1000).
CASES.push({
  name: 'message of exactly max-message bytes is delivered',
  maxMessage: 1000,
  frames: [binary(patternBytes(1000, 3))],
  expect: { messages: [msg(patternBytes(1000, 3), true)] },
});
CASES.push({
  name: 'single frame over max-message',
  maxMessage: 1000,
  frames: [binary(patternBytes(1001))],
  expect: { code: 1009 },
});
CASES.push({
  name: 'fragmented binary message over max-message',
  maxMessage: 1000,
  frames: [binary(patternBytes(400), { fin: false }), cont(patternBytes(400), { fin: false }), cont(patternBytes(400))],
  expect: { code: 1009 },
});
CASES.push({
  name: 'fragmented text message over max-message',
  maxMessage: 1000,
  frames: [text('a'.repeat(400), { fin: false }), cont('b'.repeat(400), { fin: false }), cont('c'.repeat(400))],
  expect: { code: 1009 },
});
CASES.push({
  name: 'declared length far over max-message is refused before the payload arrives',
  maxMessage: 1000,
  frames: [frame({ opcode: OP.BINARY, length: 1n << 40n })], // header only
  expect: { code: 1009 },
});

// Interleaved control frames in a fragmented message.
async function interleavedPingScript(conn) {
  await conn.write(text('Hello, ', { fin: false }));
  await conn.write(ping('ping-1'));
  await conn.waitPong('ping-1'); // answered while the message is still open
  if (conn.messages.length !== 0) throw new Error('message echoed before it was complete');
  await conn.write(cont('wor', { fin: false }));
  await conn.write(pong('unsolicited'));
  await conn.write(ping(''));
  await conn.waitPong('');
  await conn.write(cont('ld €'));
}
CASES.push({
  name: 'ping inside a fragmented message: pong before the message completes, message intact',
  script: interleavedPingScript,
  expect: { pongs: [T('ping-1'), B()], messages: [msg('Hello, world €')] },
});

// Byte-at-a-time delivery must not change anything.
const fragmentedWithPings = [
  text('Hel', { fin: false }),
  ping('p1'),
  cont('lo ', { fin: false }),
  pong('x'),
  ping(''),
  cont(T('wörld 😀')),
  binary(patternBytes(300, 9)),
  ping('p3'),
];
const fragmentedWithPingsExpect = {
  pongs: [T('p1'), B(), T('p3')],
  messages: [msg('Hello wörld 😀'), msg(patternBytes(300, 9), true)],
};
CASES.push({ name: 'fragmented messages with pings, one write', frames: fragmentedWithPings, expect: fragmentedWithPingsExpect });
CASES.push({ name: 'fragmented messages with pings, one byte at a time', frames: fragmentedWithPings, bytewise: true, expect: fragmentedWithPingsExpect });
const splitBadUtf8 = [text('ok €', { fin: false }), ping('z'), cont(B(0xe2, 0x82), { fin: false }), cont(B(0x41))];
CASES.push({ name: 'bad UTF-8 split across fragments with a ping, one write', frames: splitBadUtf8, expect: { code: 1007 } });
CASES.push({ name: 'bad UTF-8 split across fragments with a ping, one byte at a time', frames: splitBadUtf8, bytewise: true, expect: { code: 1007 } });
CASES.push({ name: 'invalid close code 1005, one byte at a time', frames: [text('a'), close(1005)], bytewise: true, expect: { code: 1002 } });

// Connection ends.
CASES.push({
  name: 'TCP drop without a close frame is reported as 1006',
  script: async (conn) => {
    await conn.write(text('ping me'));
    await conn.waitMessages(1); // the client is open and echoing
    conn.destroy();
  },
  expect: { code: 'none', probe: { code: 1006, fail: 'closed', opened: true } },
  ws: { code: 'none', wsCloseCode: 1006 },
});

// Client frames are masked with fresh non-zero keys.
CASES.push({
  name: 'every client frame is masked with a non-zero, changing key',
  frames: ['m0', 'm1', 'm2', 'm3', 'm4', 'm5'].map((s) => text(s)).concat([binary(B(0, 0, 0, 0))]),
  expect: {
    messages: ['m0', 'm1', 'm2', 'm3', 'm4', 'm5'].map((s) => msg(s)).concat([msg(B(0, 0, 0, 0), true)]),
    checkMasks: true,
  },
});

// ------------------------------------------------------------- the runner

/** The server side of one case: write, then wait for the client's answer. */
async function serveCase(conn, c, exp) {
  const log = [];
  try {
    if (c.script) await c.script(conn);
    else {
      // A close frame among ours means we started the closing handshake.
      if (c.frames.some((f) => (f[0] & 0x0f) === OP.CLOSE)) conn.sentClose = true;
      await conn.write(Buffer.concat(c.frames), { bytewise: !!c.bytewise });
    }
  } catch (e) {
    // The client may legitimately close while we are still writing.
    if (!conn.closeFrame && !conn.tcpClosed) throw e;
  }
  if (exp.messages) {
    try {
      await conn.waitMessages(exp.messages.length, 6000);
    } catch (e) {
      log.push(e.message);
    }
    if (exp.pongs) {
      await conn.waitUntil(() => (pongsOf(conn).length >= exp.pongs.length || conn.tcpClosed ? true : undefined), 3000, 'pongs').catch((e) => log.push(e.message));
    }
    if (!conn.closeFrame && !conn.tcpClosed) await conn.sendClose(1000, 'done').catch(() => {});
  }
  if (exp.code !== 'none') await conn.waitClose(6000).catch((e) => log.push(e.message));
  else await withTimeout(conn.closed, 6000, 'TCP close').catch((e) => log.push(e.message));
  conn.end();
  await withTimeout(conn.closed, 3000, 'socket closed').catch(() => conn.destroy());
  return log;
}

function pongsOf(conn) {
  return conn.frames.filter((f) => f.opcode === OP.PONG && !f.payload.equals(T('unsolicited'))).map((f) => f.payload);
}

/** A case run against the npm ws client; resolves to its view. */
function runWsClient(t, url, c) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { maxPayload: c.maxMessage ?? 1048576, perMessageDeflate: false });
    const res = { messages: [], errors: [], opened: false };
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('ws client did not close in 10 s'));
    }, 10000);
    t.after(() => {
      clearTimeout(timer);
      ws.terminate();
    });
    ws.on('open', () => (res.opened = true));
    ws.on('message', (data, isBinary) => {
      res.messages.push(msg(Buffer.from(data), isBinary));
      ws.send(data, { binary: isBinary });
    });
    ws.on('error', (e) => res.errors.push(e));
    ws.on('close', (code, reason) => {
      clearTimeout(timer);
      res.code = code;
      res.reason = reason;
      resolve(res);
    });
  });
}

function describeConn(conn) {
  const end = `[tcp: fin=${conn.gotFin} error=${conn.socketError} closed=${conn.tcpClosed}]`;
  return end + ' ' + conn.frames
    .map((f) => `${f.opcode}${f.fin ? '' : '(nofin)'}:${f.payload.length > 40 ? f.payload.length + 'B' : f.payload.toString('hex')}`)
    .join(' ');
}

/** Assertions on what the server saw, shared by both clients. */
function checkServerView(conn, exp, label) {
  const seen = `${label}: client frames: ${describeConn(conn)}`;
  for (const f of conn.frames) {
    assert.ok(f.masked, `${seen}\nclient frame not masked`);
    assert.equal(f.rsv, 0, `${seen}\nclient frame with RSV bits`);
  }
  if (exp.code === 'none') {
    assert.equal(conn.closeFrame, null, `${seen}\nexpected no close frame`);
  } else if (exp.code !== undefined) {
    assert.ok(conn.closeFrame, `${seen}\nexpected a close frame`);
    const codes = Array.isArray(exp.code) ? exp.code : [exp.code];
    assert.ok(codes.includes(conn.closeFrame.code), `${seen}\nclient close code ${conn.closeFrame.code}, expected ${codes.join(' or ')}`);
  } else if (exp.messages) {
    assert.ok(conn.closeFrame, `${seen}\nexpected the client to answer the server's close`);
    assert.equal(conn.closeFrame.code, 1000, `${seen}\nclose reply code`);
  }
  if (exp.messages) {
    assert.deepEqual(
      conn.messages.map((m) => ({ binary: m.binary, hex: m.data.toString('hex') })),
      exp.messages.map((m) => ({ binary: m.binary, hex: m.data.toString('hex') })),
      `${seen}\nechoed messages`
    );
  }
  if (exp.pongs) {
    assert.deepEqual(pongsOf(conn).map((p) => p.toString('hex')), exp.pongs.map((p) => p.toString('hex')), `${seen}\npongs`);
  }
  if (exp.checkMasks) {
    const keys = conn.frames.map((f) => f.maskKey.toString('hex'));
    assert.ok(keys.length >= 8, `${seen}\nexpected 7 messages + close, got ${keys.length} frames`);
    for (const k of keys) assert.notEqual(k, '00000000', `${seen}\nzero mask key`);
    assert.equal(new Set(keys).size, keys.length, `${seen}\nmask keys repeat: ${keys.join(' ')}`);
  }
}

/** Summary used to compare a one-write run with a byte-at-a-time run. */
function summary(conn) {
  return {
    close: conn.closeFrame ? conn.closeFrame.code : 'none',
    pongs: pongsOf(conn).map((p) => p.toString('hex')),
    messages: conn.messages.map((m) => `${m.binary ? 'b' : 't'}:${m.data.toString('hex')}`),
  };
}

async function runCase(t, c, client) {
  const exp = client === 'ws' && c.ws ? c.ws : c.expect; // c.ws: the whole ws expectation
  const srv = await startRawServer(t, (conn) => serveCase(conn, c, exp));
  let clientView;
  if (client === 'ws') {
    clientView = await runWsClient(t, srv.url, c);
  } else {
    clientView = await runProbe(t, srv.url, { echo: true, maxMessage: c.maxMessage, quitAfter: 8000 });
  }
  const conn = await srv.nextConn(1000);
  const log = await withTimeout(conn.handlerDone, 10000, 'server script');
  if (srv.conns.length !== 1) log.push(`${srv.conns.length} connections`);
  if (srv.strangers.length) log.push(`stray requests: ${srv.strangers.map((r) => `${r.method} ${r.path}`).join(', ')}`);
  assert.deepEqual(srv.errors, [], 'raw server errors');
  return { conn, exp, clientView, log };
}

// --------------------------------------------------------------- the tests

describe('reference: npm ws client against the raw server', { concurrency: 4 }, () => {
  for (const c of CASES) {
    test(c.name, async (t) => {
      const { conn, exp, clientView, log } = await runCase(t, c, 'ws');
      const wsView = `code=${clientView.code} errors=${clientView.errors.map((e) => e.message).join('; ')}`;
      checkServerView(conn, exp, `ws client (${wsView}) (server: ${log.join('; ')})`);
      if (exp.wsCloseCode) assert.equal(clientView.code, exp.wsCloseCode);
      if (exp.messages) {
        assert.deepEqual(clientView.messages.map((m) => m.data.toString('hex')), exp.messages.map((m) => m.data.toString('hex')));
      }
    });
  }
});

describe('pollgate ws_client (wsc_probe) against the raw server', { concurrency: 4 }, () => {
  // name -> deferred summary, for the one-write vs byte-at-a-time comparison
  const summaries = new Map(CASES.map((c) => [c.name, deferred()]));
  for (const c of CASES) {
    test(c.name, async (t) => {
      let run;
      try {
        run = await runCase(t, c, 'probe');
      } finally {
        summaries.get(c.name).resolve(run ? summary(run.conn) : null);
      }
      const { conn, exp, clientView: r, log } = run;
      const label = `wsc_probe (${log.join('; ')})\n${describeRun(r)}`;
      checkServerView(conn, exp, label);
      assert.equal(r.code, 0, `probe exit status\n${label}`);
      const p = r.parsed;
      assert.ok(p.open, `probe reported no open\n${label}`);
      assert.ok(p.close, `probe reported no close\n${label}`);
      const want = exp.probe ?? (exp.messages ? { code: 1000, fail: 'ok' } : { code: exp.code, failNot: 'ok' });
      assert.equal(p.close.code, want.code, `probe close code\n${label}`);
      if (want.fail) assert.equal(p.close.fail, want.fail, `probe fail kind\n${label}`);
      if (want.failNot) assert.notEqual(p.close.fail, want.failNot, `probe fail kind\n${label}`);
      assert.equal(p.close.opened, true, `probe opened=\n${label}`);
      if (exp.messages) {
        assert.deepEqual(
          p.messages.map((m) => ({ binary: m.binary, hex: m.data.toString('hex'), len: m.len })),
          exp.messages.map((m) => ({ binary: m.binary, hex: m.data.toString('hex'), len: m.data.length })),
          `probe messages\n${label}`
        );
      }
    });
  }

  test('byte-at-a-time delivery gives the same result as one write', async () => {
    for (const [one, bytewise] of [
      ['fragmented messages with pings, one write', 'fragmented messages with pings, one byte at a time'],
      ['bad UTF-8 split across fragments with a ping, one write', 'bad UTF-8 split across fragments with a ping, one byte at a time'],
    ]) {
      const a = await withTimeout(summaries.get(one).promise, 30000, one);
      const b = await withTimeout(summaries.get(bytewise).promise, 30000, bytewise);
      assert.ok(a && b, 'both runs must have completed');
      assert.deepEqual(b, a, `${bytewise} vs ${one}`);
    }
  });
});

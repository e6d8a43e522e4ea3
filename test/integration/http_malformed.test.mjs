// http_malformed.test.mjs - malformed and hostile HTTP, one raw TCP
// connection per row of a table (input bytes -> expected answer).
//
// Every row is written on a fresh connection to one pollgate (a native
// route /chat, a second native route /other, a SockJS route /sj, a
// static_root with a file beside it that must never be served). The
// responses are parsed off the raw bytes; the row states the statuses it
// must get, in order, and whether the connection must then be closed (for
// framing errors: the stream cannot be trusted any more, so keep-alive must
// end). After every row a normal request on a fresh connection must succeed
// and the two sessions opened at the start must still be usable.
//
// The expected answers are what a demanding user asks for: 400 for
// malformed syntax and for request smuggling (never half-parsed), 404 for
// unknown paths and ids, 405/501 for methods, 413 for oversized bodies,
// 431 for oversized header sections, 505 for unsupported versions. SockJS
// callbacks follow the SockJS protocol (500 "invalid callback", as in
// sockjs_conformance). Rows where pollgate answers otherwise today are
// marked `todo` with the bug named; they run and report but do not fail
// the suite.
//
// MALFORMED_REPORT=<file>: also write every row's actual answer as JSON.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

import { startUpstream, startGateway, sleep } from './bridge_lib.mjs';
import { sockjsRoute } from './sockjs_lib.mjs';
import { tmpDir, writeFile } from './lib.mjs';

const CRLF = '\r\n';

// ------------------------------------------------------------------ raw HTTP

/**
 * Parse as many complete HTTP/1.x responses as `buf` holds.
 * Returns { responses: [{ status, headers, body }], rest: Buffer, bad }.
 * `bad` is set when the bytes are not an HTTP/1.x response at all.
 */
function parseResponses(buf, { toEnd = false } = {}) {
  const responses = [];
  let off = 0;
  for (;;) {
    const headEnd = buf.indexOf('\r\n\r\n', off);
    if (headEnd < 0) break;
    const head = buf.subarray(off, headEnd).toString('latin1');
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) return { responses, rest: buf.subarray(off), bad: lines[0].slice(0, 80) };
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    let p = headEnd + 4;
    let body;
    if (/chunked/i.test(headers['transfer-encoding'] || '')) {
      const parts = [];
      let complete = false;
      for (;;) {
        const le = buf.indexOf('\r\n', p);
        if (le < 0) break;
        const size = parseInt(buf.subarray(p, le).toString('latin1'), 16);
        if (Number.isNaN(size)) return { responses, rest: buf.subarray(off), bad: 'bad chunk size in response' };
        if (buf.length < le + 2 + size + 2) break;
        parts.push(buf.subarray(le + 2, le + 2 + size));
        p = le + 2 + size + 2;
        if (size === 0) { complete = true; break; }
      }
      if (!complete) break;
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (buf.length < p + n) break;
      body = buf.subarray(p, p + n);
      p += n;
    } else if (m[1] === '204' || m[1] === '304' || m[1][0] === '1') {
      body = Buffer.alloc(0);
    } else {
      // delimited by the close
      if (!toEnd) break;
      body = buf.subarray(p);
      p = buf.length;
    }
    responses.push({ status: Number(m[1]), headers, body: body.toString('utf8') });
    off = p;
  }
  return { responses, rest: buf.subarray(off), bad: null };
}

/**
 * Write `bytes` (Buffer, string, or array of chunks written 30 ms apart) on a
 * fresh connection; collect until the server closes, or until `want`
 * responses are complete and `settleMs` more pass without a close, or
 * `maxMs`. Resolves to { statuses, responses, closed, bytes, bad, raw }.
 */
function exchange(port, bytes, { want = 1, settleMs = 400, maxMs = 4000 } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    let closed = false;
    let reset = false;
    let settle = null;
    const finish = () => {
      clearTimeout(timer);
      clearTimeout(settle);
      s.destroy();
      const { responses, rest, bad } = parseResponses(got, { toEnd: closed });
      resolve({
        statuses: responses.map((r) => r.status),
        responses,
        closed,
        reset,
        bytes: got.length,
        bad: bad || (rest.length ? `${rest.length} trailing bytes: ${JSON.stringify(rest.toString('latin1').slice(0, 80))}` : null),
        raw: got.toString('latin1').slice(0, 300),
      });
    };
    const timer = setTimeout(finish, maxMs);
    s.on('connect', async () => {
      const chunks = Array.isArray(bytes) ? bytes : [bytes];
      for (let i = 0; i < chunks.length; i++) {
        if (i) await sleep(30);
        if (s.destroyed) return;
        s.write(chunks[i]);
      }
    });
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (parseResponses(got).responses.length >= want && !settle) settle = setTimeout(finish, settleMs);
    });
    s.on('error', (e) => { if (e.code === 'ECONNRESET') reset = true; });
    s.on('close', () => { closed = true; finish(); });
  });
}

// ------------------------------------------------------------------ the table

// ctx: { port, host, a, b (session ids on /chat), o (session id on /other),
//        sj (a live SockJS session path prefix) }
const req = (line, headers = [], body = '') => (ctx) =>
  `${line}${CRLF}Host: ${ctx.host}${CRLF}${headers.map((h) => h + CRLF).join('')}${CRLF}${body}`;
const get = (p, headers) => (ctx) => req(`GET ${typeof p === 'function' ? p(ctx) : p} HTTP/1.1`, headers)(ctx);
const BAD_ID = 'A'.repeat(20) + '!!';

/**
 * Rows: name, bytes(ctx) -> Buffer|string|array, expect: { statuses, close }
 * (close: true = must close, false = must stay open, null = either), or (an
 * equally acceptable alternative answer),
 * want (responses to wait for), todo (the bug, when pollgate answers
 * otherwise today).
 */
const ROWS = [
  // ---- request line
  { name: 'bad request line (garbage)', bytes: () => `GARBAGE${CRLF}${CRLF}`, expect: { statuses: [400], close: true } },
  { name: 'bad request line (four fields)', bytes: () => `GET /index.html HTTP/1.1 extra${CRLF}${CRLF}`, expect: { statuses: [400], close: true } },
  { name: 'request line of spaces', bytes: () => `   ${CRLF}${CRLF}`, expect: { statuses: [400], close: true } },
  { name: 'unknown method', bytes: req('FOO /index.html HTTP/1.1'), expect: { statuses: [501], close: null } },
  { name: 'lower-case method', bytes: req('get /index.html HTTP/1.1'), expect: { statuses: [501], close: null } },
  { name: 'known method not allowed on the path', bytes: req('PUT /chat/sessions HTTP/1.1', ['Content-Length: 0']), expect: { statuses: [405], close: false } },
  { name: 'HTTP/0.9 simple request', bytes: () => `GET /index.html${CRLF}`, expect: { statuses: [400], close: true } },
  { name: 'unsupported version HTTP/2.0 in a 1.x request line', bytes: req('GET /index.html HTTP/2.0'), expect: { statuses: [505], close: true } },
  { name: 'garbage version', bytes: req('GET /index.html HTTP/x.y'), expect: { statuses: [400], close: true } },
  { name: 'absolute-form URI (own host)', bytes: (ctx) => req(`GET http://${ctx.host}/index.html HTTP/1.1`)(ctx), expect: { statuses: [200], close: null } },
  { name: 'absolute-form URI to a session route', bytes: (ctx) => req(`GET http://${ctx.host}/chat/sessions/${ctx.a}/poll?ack=0 HTTP/1.1`)(ctx), expect: { statuses: [200], close: null } },
  { name: 'asterisk-form on GET', bytes: req('GET * HTTP/1.1'), expect: { statuses: [400], close: false } },
  { name: 'request target without leading slash', bytes: req('GET health HTTP/1.1'), expect: { statuses: [400], close: false } },

  // ---- paths
  { name: '".." escaping static_root', bytes: get('/../secret.txt'), expect: { statuses: [404], close: false } },
  { name: '".." inside the path', bytes: get('/sub/../../secret.txt'), expect: { statuses: [404], close: false } },
  { name: '"%2e%2e" escaping static_root', bytes: get('/%2e%2e/secret.txt'), expect: { statuses: [404], close: false } },
  { name: '"%2E%2E%2F" encoded slash', bytes: get('/%2E%2E%2Fsecret.txt'), expect: { statuses: [404], close: false } },
  { name: '".." in a session route', bytes: get((c) => `/chat/sessions/${c.a}/../${c.b}/poll?ack=0`), expect: { statuses: [404], close: false } },
  { name: '"%2e%2e" in a session route', bytes: get((c) => `/chat/sessions/%2e%2e/sessions/${c.a}/poll?ack=0`), expect: { statuses: [404], close: false } },
  { name: 'invalid percent-encoding "%zz" in a path', bytes: get('/index%zz.html'), expect: { statuses: [400], close: false } },
  { name: 'truncated percent-encoding at the end of a path', bytes: get('/index.html%'), expect: { statuses: [400], close: false } },
  { name: 'invalid percent-encoding in a session id', bytes: get('/chat/sessions/%G1AAAAAAAAAAAAAAAAAAAA/poll?ack=0'), expect: { statuses: [400], close: false } },
  { name: 'encoded NUL "%00" in a path', bytes: get('/index.html%00.txt'), expect: { statuses: [400], close: false } },
  { name: 'existing static file (control row)', bytes: get('/index.html'), expect: { statuses: [200], close: false } },

  // ---- header values and header section size
  { name: 'NUL in a header value', bytes: req('GET /index.html HTTP/1.1', ['X-A: a\0b']), expect: { statuses: [400], close: true } },
  { name: 'bare CR in a header value', bytes: req('GET /index.html HTTP/1.1', ['X-A: a\rb']), expect: { statuses: [400], close: true } },
  { name: 'bare LF line endings (LF only)', bytes: (c) => `GET /index.html HTTP/1.1\nHost: ${c.host}\n\n`, expect: { statuses: [200], close: false } },
  { name: 'header without colon', bytes: req('GET /index.html HTTP/1.1', ['NoColonHere']), expect: { statuses: [400], close: true } },
  { name: 'space before the colon in a header name', bytes: req('GET /index.html HTTP/1.1', ['X-A : b']), expect: { statuses: [400], close: true } },
  // RFC 9112 5.2: reject with 400, or replace each obs-fold with SP
  { name: 'obs-fold continuation line', bytes: req('GET /index.html HTTP/1.1', ['X-A: a', ' b']), expect: { statuses: [400], close: true }, or: { statuses: [200], close: false } },
  { name: 'header line over 8 KiB (9 KiB value)', bytes: req('GET /index.html HTTP/1.1', ['X-Big: ' + 'x'.repeat(9 * 1024)]), expect: { statuses: [431], close: true } },
  { name: 'header section over 16 KiB (one 20 KiB line)', bytes: req('GET /index.html HTTP/1.1', ['X-Big: ' + 'x'.repeat(20 * 1024)]), expect: { statuses: [431], close: true } },
  { name: '1,000 headers', bytes: req('GET /index.html HTTP/1.1', Array.from({ length: 1000 }, (_, i) => `X-H${i}: v`)), expect: { statuses: [431], close: true } },
  { name: 'missing Host on HTTP/1.1', bytes: () => `GET /index.html HTTP/1.1${CRLF}${CRLF}`, expect: { statuses: [400], close: true } },
  { name: 'two Host headers', bytes: req('GET /index.html HTTP/1.1', ['Host: evil.example']), expect: { statuses: [400], close: true } },

  // ---- body framing and smuggling
  {
    name: 'Content-Length with Transfer-Encoding: chunked (smuggling)',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Content-Length: 4', 'Transfer-Encoding: chunked'],
      `1\r\nZ\r\n0\r\n\r\nGET /index.html HTTP/1.1${CRLF}Host: ${c.host}${CRLF}${CRLF}`)(c),
    expect: { statuses: [400], close: true },
    upstreamUntouched: true,
  },
  {
    name: 'Transfer-Encoding: chunked then Content-Length (smuggling, other order)',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Transfer-Encoding: chunked', 'Content-Length: 30'],
      `1\r\nZ\r\n0\r\n\r\nGET /index.html HTTP/1.1${CRLF}${CRLF}`)(c),
    expect: { statuses: [400], close: true },
    upstreamUntouched: true,
  },
  {
    name: 'Transfer-Encoding: gzip, chunked-like value (unknown coding)',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Transfer-Encoding: xchunked'], '1\r\nZ\r\n0\r\n\r\n')(c),
    expect: { statuses: [501], close: true },
    upstreamUntouched: true,
  },
  {
    name: 'duplicate Content-Length, different values',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Content-Length: 1', 'Content-Length: 5'], 'hello')(c),
    expect: { statuses: [400], close: true },
    upstreamUntouched: true,
  },
  {
    name: 'duplicate Content-Length, same value',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Content-Length: 5', 'Content-Length: 5'], 'hello')(c),
    expect: { statuses: [400], close: true },
    upstreamUntouched: true,
  },
  {
    name: 'Content-Length list "5, 5"',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Content-Length: 5, 5'], 'hello')(c),
    expect: { statuses: [400], close: true },
    upstreamUntouched: true,
  },
  {
    name: 'negative Content-Length',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Content-Length: -1'], 'hello')(c),
    expect: { statuses: [400], close: true },
    upstreamUntouched: true,
  },
  {
    name: 'Content-Length "+5"',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Content-Length: +5'], 'hello')(c),
    expect: { statuses: [400], close: true },
    upstreamUntouched: true,
  },
  {
    name: 'overflowing Content-Length (2^64 + 5)',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Content-Length: 18446744073709551621'], 'hello')(c),
    expect: { statuses: [400], close: true },
    upstreamUntouched: true,
  },
  {
    name: 'huge but valid Content-Length (over max_body)',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Content-Length: 1000000000'], 'hello')(c),
    expect: { statuses: [413], close: true },
    upstreamUntouched: true,
  },
  {
    name: 'bad chunk size (not hex)',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Transfer-Encoding: chunked'], 'zz\r\nhello\r\n0\r\n\r\n')(c),
    expect: { statuses: [400], close: true },
    upstreamUntouched: true,
  },
  {
    name: 'bad chunk size (negative)',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Transfer-Encoding: chunked'], '-5\r\nhello\r\n0\r\n\r\n')(c),
    expect: { statuses: [400], close: true },
    upstreamUntouched: true,
  },
  {
    name: 'bad chunk size (overflowing 2^64)',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Transfer-Encoding: chunked'], '10000000000000005\r\nhello\r\n0\r\n\r\n')(c),
    expect: { statuses: [400], close: true },
    upstreamUntouched: true,
  },
  {
    name: 'chunk data longer than its size',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Transfer-Encoding: chunked'], '2\r\nhello\r\n0\r\n\r\n')(c),
    expect: { statuses: [400], close: true },
    upstreamUntouched: true,
  },
  {
    name: 'body longer than declared (the rest is a bad next request)',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Content-Length: 5'], 'helloEXTRA BYTES\r\n\r\n')(c),
    expect: { statuses: [200, 400], close: true },
    want: 2,
    upstreamGets: { a: ['hello'] },
  },

  // ---- pipelining and session ids
  {
    name: 'pipelined sends for two sessions',
    bytes: (c) => req(`POST /chat/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Content-Length: 6'], 'pipe-a')(c) +
      req(`POST /chat/sessions/${c.b}/send HTTP/1.1`, ['Content-Type: text/plain', 'Content-Length: 6'], 'pipe-b')(c),
    expect: { statuses: [200, 200], close: false },
    want: 2,
    upstreamGets: { a: ['pipe-a'], b: ['pipe-b'] },
  },
  {
    name: 'pipelined polls for two sessions (messages queued)',
    prepare: async (c) => { await c.upA.send('queued-a'); await c.upB.send('queued-b'); await sleep(100); },
    bytes: (c) => get(`/chat/sessions/${c.a}/poll`)(c) + get(`/chat/sessions/${c.b}/poll`)(c),
    expect: { statuses: [200, 200], close: false },
    want: 2,
    check: (r, c) => {
      assert.match(r.responses[0].body, /queued-a/, 'first pipelined poll answers session a');
      assert.match(r.responses[1].body, /queued-b/, 'second pipelined poll answers session b');
    },
    after: async (c) => { await c.ackAll(); },
  },
  { name: "another route's session id", bytes: get((c) => `/other/sessions/${c.a}/poll?ack=0`), expect: { statuses: [404], close: false } },
  { name: "another route's session id (send)", bytes: (c) => req(`POST /other/sessions/${c.a}/send HTTP/1.1`, ['Content-Type: text/plain', 'Content-Length: 1'], 'x')(c), expect: { statuses: [404], close: false }, upstreamUntouched: true },
  { name: 'session id with invalid characters', bytes: get(`/chat/sessions/${BAD_ID}/poll?ack=0`), expect: { statuses: [404], close: false } },
  { name: 'session id of 21 characters', bytes: get((c) => `/chat/sessions/${c.a.slice(0, 21)}/poll?ack=0`), expect: { statuses: [404], close: false } },
  { name: 'session id of 23 characters', bytes: get((c) => `/chat/sessions/${c.a}A/poll?ack=0`), expect: { statuses: [404], close: false } },
  { name: 'session id of 4000 characters', bytes: get(`/chat/sessions/${'A'.repeat(4000)}/poll?ack=0`), expect: { statuses: [404], close: false } },
  { name: 'empty session id', bytes: get('/chat/sessions//poll?ack=0'), expect: { statuses: [404], close: false } },
  { name: 'unknown endpoint of a live session', bytes: get((c) => `/chat/sessions/${c.a}/nope`), expect: { statuses: [404], close: false } },

  // ---- query strings
  { name: 'repeated ack', bytes: get((c) => `/chat/sessions/${c.a}/poll?ack=0&ack=99`), expect: { statuses: [400], close: false } },
  { name: 'ack beyond 2^64', bytes: get((c) => `/chat/sessions/${c.a}/poll?ack=184467440737095516150`), expect: { statuses: [400], close: false } },
  { name: 'ack = 2^53 + 1', bytes: get((c) => `/chat/sessions/${c.a}/poll?ack=9007199254740993`), expect: { statuses: [400], close: false } },
  { name: 'negative ack', bytes: get((c) => `/chat/sessions/${c.a}/poll?ack=-1`), expect: { statuses: [400], close: false } },
  { name: 'ack "1e3"', bytes: get((c) => `/chat/sessions/${c.a}/poll?ack=1e3`), expect: { statuses: [400], close: false } },
  { name: 'ack empty', bytes: get((c) => `/chat/sessions/${c.a}/poll?ack=`), expect: { statuses: [400], close: false } },
  { name: 'repeated ack on POST .../ack', bytes: (c) => req(`POST /chat/sessions/${c.a}/ack?ack=0&ack=0 HTTP/1.1`, ['Content-Length: 0'])(c), expect: { statuses: [400], close: false } },
  { name: 'huge last_event_id on events', bytes: get((c) => `/chat/sessions/${c.a}/events?last_event_id=99999999999999999999999`), expect: { statuses: [400], close: false } },
  { name: 'huge Last-Event-ID header on events', bytes: (c) => get(`/chat/sessions/${c.a}/events`, ['Last-Event-ID: 99999999999999999999999'])(c), expect: { statuses: [400], close: false } },

  // ---- SockJS JSONP callbacks (SockJS protocol: 500 "invalid callback")
  { name: 'JSONP callback with "<"', bytes: get((c) => `/sj/sockjs/000/${c.sjId()}/jsonp?c=a%3Cb`), expect: { statuses: [500], close: false } },
  { name: 'JSONP callback with raw "<"', bytes: get((c) => `/sj/sockjs/000/${c.sjId()}/jsonp?c=a<b`), expect: { statuses: [500], close: false } },
  { name: 'JSONP callback with "("', bytes: get((c) => `/sj/sockjs/000/${c.sjId()}/jsonp?c=alert(1)`), expect: { statuses: [500], close: false } },
  { name: 'JSONP callback with unicode', bytes: get((c) => `/sj/sockjs/000/${c.sjId()}/jsonp?c=caf%C3%A9`), expect: { statuses: [500], close: false } },
  { name: 'JSONP callback with raw UTF-8 bytes', bytes: (c) => Buffer.from(get(`/sj/sockjs/000/${c.sjId()}/jsonp?c=café`)(c), 'utf8'), expect: { statuses: [500], close: false } },
  { name: 'JSONP callback of 33 characters', bytes: get((c) => `/sj/sockjs/000/${c.sjId()}/jsonp?c=${'x'.repeat(33)}`), expect: { statuses: [500], close: false } },
  { name: 'JSONP callback of 32 characters (control row)', bytes: get((c) => `/sj/sockjs/000/${c.sjId()}/jsonp?c=${'x'.repeat(32)}`), expect: { statuses: [200], close: false } },
  { name: 'htmlfile callback with "<"', bytes: get((c) => `/sj/sockjs/000/${c.sjId()}/htmlfile?c=%3Cscript%3E`), expect: { statuses: [500], close: false } },
  { name: 'SockJS session id with "."', bytes: req('POST /sj/sockjs/000/a.b/xhr HTTP/1.1', ['Content-Length: 0']), expect: { statuses: [404], close: false } },
  { name: 'SockJS server id of 4000 characters', bytes: req(`POST /sj/sockjs/${'1'.repeat(4000)}/abc/xhr HTTP/1.1`, ['Content-Length: 0']), expect: { statuses: [404], close: false } },

  // ---- slow and split delivery (control rows: split writes are legal)
  { name: 'request split byte-wise across writes', bytes: (c) => [...Buffer.from(get('/index.html')(c))].slice(0, 60).map((b) => Buffer.from([b])).concat([Buffer.from(get('/index.html')(c)).subarray(60)]), expect: { statuses: [200], close: false }, maxMs: 8000 },
];

/** Whether an exchange result matches an expectation { statuses, close }. */
function matches(exp, r) {
  return JSON.stringify(r.statuses) === JSON.stringify(exp.statuses) &&
    (exp.close === null || exp.close === undefined || exp.close === r.closed);
}

// Open findings (pollgate bugs found by this table): row name -> the bug.
// The rows run and report; remove an entry once the bug is fixed and the
// row passes.
const TODO = new Map(Object.entries({
  // malformed-1 .. malformed-17 are fixed (gateway/http_limits.c frames and
  // checks the raw request bytes under evhttp; sockjs_front.c bounds the
  // server id); a new finding goes here with its row name.
}));

// ------------------------------------------------------------------ suite

describe('malformed and hostile HTTP (raw TCP, one connection per row)', () => {
  let gw;
  let up;
  let ctx;
  const report = [];
  const tctx = { after: (fn) => cleanups.push(fn) };
  const cleanups = [];

  before(async () => {
    up = await startUpstream(tctx, {
      onConnection(c) {
        // answers nothing: the rows check what reaches it
        c.ws.on('message', () => {});
      },
    });
    const dir = tmpDir(tctx, 'pollgate-malformed-');
    mkdirSync(path.join(dir, 'www', 'sub'), { recursive: true });
    writeFile(path.join(dir, 'www'), 'index.html', '<!doctype html><title>ok</title>');
    writeFile(dir, 'secret.txt', 'SECRET-NEVER-SERVED');
    gw = await startGateway(tctx, {
      gateway: { static_root: path.join(dir, 'www'), max_body: '64KiB' },
      session: { poll_timeout: '1s', idle_timeout: '120s' },
      routes: [
        { name: 'chat', path: '/chat', up },
        { name: 'other', path: '/other', up, upstreamPath: '/other' },
        sockjsRoute('sj', '/sj', up, { upstreamPath: '/sj' }),
      ],
    });
    up.reset();
    const open = async (route) => {
      const r = await exchange(gw.port, req(`POST ${route}/sessions HTTP/1.1`, ['Content-Length: 0'])({ host: `127.0.0.1:${gw.port}` }));
      assert.deepEqual(r.statuses, [201], `open ${route}: ${r.raw}`);
      return JSON.parse(r.responses[0].body).session;
    };
    const a = await open('/chat');
    const upA = await up.conn(0);
    const b = await open('/chat');
    const upB = await up.conn(1);
    const o = await open('/other');
    await up.conn(2);
    let sjn = 0;
    ctx = {
      port: gw.port,
      host: `127.0.0.1:${gw.port}`,
      a, b, o, upA, upB,
      sjId: () => `mal${process.pid}x${++sjn}`,
      async ackAll() {
        for (const id of [a, b]) {
          const r = await exchange(gw.port, get(`/chat/sessions/${id}/poll?ack=0`)({ host: `127.0.0.1:${gw.port}` }), { maxMs: 3000 });
          const j = JSON.parse(r.responses[0]?.body || '{}');
          const last = j.messages?.length ? j.messages[j.messages.length - 1].seq : null;
          if (last) await exchange(gw.port, req(`POST /chat/sessions/${id}/ack?ack=${last} HTTP/1.1`, ['Content-Length: 0'])({ host: `127.0.0.1:${gw.port}` }));
        }
      },
    };
  });

  after(async () => {
    if (process.env.MALFORMED_REPORT) writeFileSync(process.env.MALFORMED_REPORT, JSON.stringify(report, null, 2));
    if (gw && !gw.stopped) await gw.stop();
    for (const fn of cleanups.reverse()) await fn();
  });

  for (const row of ROWS) {
    const todo = TODO.get(row.name);
    // The row's own checks are a subtest (todo when a known finding); the
    // health checks after it are never todo: a crash or a wedged listener
    // fails the suite whatever the row.
    it(row.name, async (t) => {
      await t.test('expected answer', todo ? { todo } : {}, async (st) => {
      if (row.prepare) await row.prepare(ctx);
      const before = { a: ctx.upA.messages.length, b: ctx.upB.messages.length };
      const bytes = row.bytes(ctx);
      const r = await exchange(gw.port, bytes, { want: row.want || row.expect.statuses.length || 1, maxMs: row.maxMs || 4000 });
      const actual = { statuses: r.statuses, close: r.closed };
      report.push({ name: row.name, expect: row.expect, or: row.or || null, actual,
        ok: !r.bad && (matches(row.expect, r) || (row.or ? matches(row.or, r) : false)), bad: r.bad, todo: todo || null, raw: r.raw.slice(0, 160) });
      st.diagnostic(`expect ${JSON.stringify(row.expect)} actual ${JSON.stringify(actual)}${r.bad ? ' bad: ' + r.bad : ''}`);
      try {
        assert.equal(r.bad, null, `the answer is not well-formed HTTP/1.x: ${r.bad}; raw: ${JSON.stringify(r.raw)}`);
        const exp = row.or && matches(row.or, r) ? row.or : row.expect;
        assert.deepEqual(r.statuses, exp.statuses, `statuses; raw: ${JSON.stringify(r.raw)}`);
        if (exp.close === true) assert.equal(r.closed, true, 'the connection must be closed after this answer');
        else if (exp.close === false) assert.equal(r.closed, false, 'the connection must stay open (keep-alive) after this answer');
        for (const resp of r.responses) {
          assert.doesNotMatch(resp.body, /SECRET-NEVER-SERVED/, 'a file outside static_root was served');
        }
        if (row.check) row.check(r, ctx);
        await sleep(50);
        if (row.upstreamUntouched) {
          assert.deepEqual(ctx.upA.texts().slice(before.a), [], 'nothing of a refused request may reach the upstream');
        }
        if (row.upstreamGets) {
          if (row.upstreamGets.a) assert.deepEqual(ctx.upA.texts().slice(before.a), row.upstreamGets.a, 'upstream of session a');
          if (row.upstreamGets.b) assert.deepEqual(ctx.upB.texts().slice(before.b), row.upstreamGets.b, 'upstream of session b');
        }
      } finally {
        if (row.after) await row.after(ctx);
      }
      });
      {
        // whatever the row did: a normal request on a fresh connection works,
        // and the sessions are still usable
        const h = await exchange(gw.port, get('/index.html')(ctx), { maxMs: 3000, settleMs: 50 });
        assert.deepEqual(h.statuses, [200], `GET /index.html after the row: ${h.raw}`);
        const p = await exchange(gw.port, req(`POST /chat/sessions/${ctx.b}/ack?ack=0 HTTP/1.1`, ['Content-Length: 0'])(ctx), { maxMs: 3000, settleMs: 50 });
        assert.deepEqual(p.statuses, [204], `session b still usable after the row: ${p.raw}`);
      }
    });
  }
});

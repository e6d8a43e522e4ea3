// sockjs_lib.mjs - helpers for the SockJS suites (sockjs_*.test.mjs), on top
// of bridge_lib.mjs (gateway with a generated config, controllable npm `ws`
// upstream) and lib.mjs:
//
//  startEchoUpstream()   bridge_lib's upstream that also echoes every message
//  sockjsRoute()         a route object for startGateway with `sockjs = on`
//  startSockjsGateway()  startGateway + reset of the upstreams' start-up probes
//  SjEndpoint            one SockJS base URL: plain requests, sessions
//  SjSession             one SockJS session id: xhr, xhr_send, jsonp, streams
//  openStream()          a streaming response (xhr_streaming, eventsource,
//                        htmlfile) read incrementally, with frame parsers
//  rawHttp()             one raw request on its own TCP connection, with the
//                        response head parsed and a chunked body decoded
//
// SockJS frames: "o" open, "h" heartbeat, "a[...]" messages, "c[code,reason]"
// close. parseFrame() turns one into { type, messages | code, reason }.
//
// Everything started here is torn down by the test's t.after.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

import { startUpstream, startGateway } from './bridge_lib.mjs';
import { withTimeout, deferred } from './lib.mjs';

export const NO_CACHE = 'no-store, no-cache, no-transform, must-revalidate, max-age=0';
export const PRELUDE_XHR = 'h'.repeat(2048) + '\n';
export const ANOTHER = 'c[2010,"Another connection still open"]';

/** Default SockJS keys of a test route (the suites' response_limit is 4KiB). */
export const SOCKJS_DEFAULTS = {
  sockjs: 'on',
  sockjs_url: '/sockjs.min.js',
  response_limit: '4KiB',
  disconnect_delay: '1s',
  cookie_needed: 'off',
  binary: 'close',
};

// ------------------------------------------------------------------ upstream

/**
 * bridge_lib's startUpstream whose connections echo every message back
 * (text as text, binary as binary). opts as startUpstream, plus
 * echo: false to only record.
 */
export function startEchoUpstream(t, opts = {}) {
  const user = opts.onConnection;
  return startUpstream(t, {
    ...opts,
    onConnection(c) {
      if (opts.echo !== false) {
        c.ws.on('message', (data, isBinary) => {
          if (c.ws.readyState === 1) c.ws.send(data, { binary: isBinary });
        });
      }
      if (user) user(c);
    },
  });
}

// ------------------------------------------------------------------ gateway

/**
 * A route for startGateway. target: a startUpstream() result or a ws:// URL.
 * extra: SockJS (or other) route keys over SOCKJS_DEFAULTS.
 */
export function sockjsRoute(name, path, target, { origins = '*', extra = {}, upstreamPath } = {}) {
  const r = { name, path, origins, extra: { ...SOCKJS_DEFAULTS, ...extra } };
  if (typeof target === 'string') r.upstream = target;
  else { r.up = target; r.upstreamPath = upstreamPath || path; }
  return r;
}

/**
 * Start pollgate with the given routes; the start-up upstream checks are
 * forgotten (up.reset()) for every upstream in `ups`. Returns the gateway of
 * bridge_lib plus sockjs(path, t) -> SjEndpoint for a SockJS base path
 * (streams it opens are destroyed in t.after; default: this t).
 */
export async function startSockjsGateway(t, { routes, ups = [], gateway, session, upstream, env } = {}) {
  const gw = await startGateway(t, {
    gateway: { max_body: '1MiB', ...(gateway || {}) },
    session,
    upstream,
    routes,
    env,
  });
  for (const up of ups) up.reset();
  gateways.set(t, gw);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  t.after(() => agent.destroy());
  gw.sockjs = (base, tt = t) => new SjEndpoint(tt, gw, base, agent);
  return gw;
}

const gateways = new WeakMap();
const preStop = new WeakMap();
const tornDown = new WeakSet();

/**
 * Prepare the orderly teardown of test t (call it before starting anything):
 * first the callbacks given to beforeGatewayStop (closing clients), then a
 * stop of the gateway (SIGTERM; clean exit and no sanitizer report asserted),
 * and only then, through the t.after hooks of bridge_lib, the upstreams - as
 * in a real shutdown. crashAware runs it at the end of the test body, so an
 * unclean exit fails the test; a t.after hook registered here is the
 * fallback and never throws (a throwing hook would skip the later ones and
 * leave servers open).
 */
export function orderlyTeardown(t) {
  preStop.set(t, []);
  t.after(async () => {
    try { await runTeardown(t); } catch { /* reported by crashAware */ }
  });
}

/** Run fn at teardown before the gateway is stopped (see orderlyTeardown). */
export function beforeGatewayStop(t, fn) {
  const l = preStop.get(t);
  if (!l) throw new Error('beforeGatewayStop: call orderlyTeardown(t) first');
  l.push(fn);
}

async function runTeardown(t) {
  if (tornDown.has(t)) return;
  tornDown.add(t);
  for (const f of preStop.get(t) || []) {
    try { await f(); } catch { /* best effort */ }
  }
  const gw = gateways.get(t);
  if (gw && !gw.stopped) await gw.stop();
}

/** The gateway started for test t by startSockjsGateway (or undefined). */
export function gatewayOf(t) { return gateways.get(t); }

/**
 * If gw's process exited while the test was running (not by stop()): a text
 * naming the exit and the sanitizer report (or the stderr tail). Else null.
 */
export async function crashReport(gw, waitMs = 300) {
  if (!gw || gw.stopped) return null;
  const r = await Promise.race([gw.proc.done, new Promise((res) => setTimeout(() => res(null), waitMs))]);
  if (!r || gw.stopped) return null;
  const err = r.stderr || '';
  const i = err.search(/ERROR: AddressSanitizer|runtime error:|LeakSanitizer|AddressSanitizer:DEADLYSIGNAL/);
  let tail = i >= 0 ? err.slice(i, i + 6000) : err.slice(-2000);
  const shadow = tail.indexOf('Shadow bytes around');
  if (shadow > 0) tail = tail.slice(0, shadow);
  return `pollgate exited during the test (exit ${r.code}, signal ${r.signal}):\n${tail}`;
}

/**
 * Wrap a test function: after it, the orderly teardown (orderlyTeardown)
 * runs inside the test, so a gateway that does not exit cleanly fails it;
 * when the test fails and its gateway has died, the failure carries
 * pollgate's sanitizer report.
 */
export function crashAware(fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (e) {
      const rep = await crashReport(gateways.get(t));
      try { await runTeardown(t); } catch { /* the test failed already */ }
      if (!rep) throw e;
      const ne = new Error(`${e && e.message}\n--- ${rep}`);
      ne.cause = e;
      throw ne;
    }
    await runTeardown(t);
  };
}

// ------------------------------------------------------------------ frames

/** "o" | "h" | "a[...]" | "c[code,reason]" -> { type, messages?, code?, reason?, raw }. */
export function parseFrame(raw) {
  const type = raw.slice(0, 1);
  const f = { type, raw };
  if (type === 'o' || type === 'h') {
    if (raw.length !== 1) f.type = '?';
    return f;
  }
  if (type === 'a' || type === 'c') {
    let v;
    try { v = JSON.parse(raw.slice(1)); } catch { f.type = '?'; return f; }
    if (type === 'a') {
      if (!Array.isArray(v) || !v.every((m) => typeof m === 'string')) f.type = '?';
      else f.messages = v;
    } else if (!Array.isArray(v) || v.length !== 2 || !Number.isInteger(v[0]) || typeof v[1] !== 'string') {
      f.type = '?';
    } else {
      f.code = v[0];
      f.reason = v[1];
    }
    return f;
  }
  f.type = '?';
  return f;
}

/** Messages of all a-frames, in order. */
export function messagesOf(frames) {
  return frames.filter((f) => f.type === 'a').flatMap((f) => f.messages);
}

/** The frames of an xhr / xhr_streaming body: "\n"-terminated, prelude skipped. */
export function xhrFrames(text) {
  const parts = text.split('\n');
  parts.pop(); // incomplete (or empty) tail
  return parts.filter((p, i) => !(i === 0 && p === 'h'.repeat(2048))).map(parseFrame);
}

/**
 * The frames of an eventsource body: a "\r\n" prelude then
 * "data: <frame>\r\n\r\n" each. The data is passed through decodeURI as
 * sockjs-client does (the reference server %-escapes '%', CR, LF, NUL).
 * Returns { frames, bad: [unparsable events] }.
 */
export function eventsourceFrames(text) {
  let body = text.startsWith('\r\n') ? text.slice(2) : text;
  const events = body.split('\r\n\r\n');
  events.pop();
  const frames = [];
  const bad = [];
  for (const ev of events) {
    if (!ev.startsWith('data: ') || /[\r\n]/.test(ev)) { bad.push(ev); continue; }
    let d;
    try { d = decodeURI(ev.slice(6)); } catch { bad.push(ev); continue; }
    frames.push(parseFrame(d));
  }
  return { frames, bad };
}

const HTML_FRAME_RE = /<script>\np\(("(?:[^"\\]|\\.)*")\);\n<\/script>\r\n/g;

/** The frames of an htmlfile body after its prelude page. */
export function htmlfileFrames(text) {
  const out = [];
  const i = text.indexOf('<script>\np(');
  if (i < 0) return { prelude: text, frames: out, rawArgs: [] };
  const rest = text.slice(i);
  const rawArgs = [];
  let m;
  HTML_FRAME_RE.lastIndex = 0;
  while ((m = HTML_FRAME_RE.exec(rest)) !== null) {
    rawArgs.push(m[1]);
    let s;
    try { s = JSON.parse(m[1]); } catch { out.push({ type: '?', raw: m[1] }); continue; }
    out.push(parseFrame(s));
  }
  return { prelude: text.slice(0, i), frames: out, rawArgs };
}

/** `/**\/cb("<frame>");\r\n` -> { callback, frame } or null. */
export function parseJsonp(body) {
  const m = /^\/\*\*\/([A-Za-z0-9_.-]+)\(("(?:[^"\\]|\\.)*")\);\r\n$/s.exec(body);
  if (!m) return null;
  return { callback: m[1], arg: m[2], frame: parseFrame(JSON.parse(m[2])) };
}

export const randomId = (n = 12) => crypto.randomBytes(n).toString('base64url').replace(/[-_]/g, 'x');

/** Compare Content-Type ignoring spaces (as the reference suite does). */
export function assertContentType(r, want, what = '') {
  const got = (r.headers['content-type'] || '').replace(/ /g, '');
  assert.equal(got.toLowerCase(), want.replace(/ /g, '').toLowerCase(),
    `${what} Content-Type: want ${want}, got ${r.headers['content-type']}`);
}

/** The no-caching headers of every dynamic SockJS response. */
export function assertNoCache(r, what = '') {
  assert.equal(r.headers['cache-control'], NO_CACHE, `${what} Cache-Control (headers ${JSON.stringify(r.headers)})`);
  assert.equal(r.headers.expires, undefined, `${what} must not carry Expires`);
  assert.equal(r.headers['last-modified'], undefined, `${what} must not carry Last-Modified`);
}

/** CORS as the reference server: echo Origin + credentials, or `*` without. */
export function assertCors(r, origin, what = '') {
  if (origin) {
    assert.equal(r.headers['access-control-allow-origin'], origin, `${what} Access-Control-Allow-Origin (headers ${JSON.stringify(r.headers)})`);
    assert.equal(r.headers['access-control-allow-credentials'], 'true', `${what} Access-Control-Allow-Credentials`);
  } else {
    assert.equal(r.headers['access-control-allow-origin'], '*', `${what} Access-Control-Allow-Origin without Origin (headers ${JSON.stringify(r.headers)})`);
    assert.equal(r.headers['access-control-allow-credentials'], undefined, `${what} no Access-Control-Allow-Credentials with '*'`);
  }
}

/** "METHOD url -> status headers body" for assertion messages. */
export function show(r) {
  const text = r.text ?? '';
  return `${r.method} ${r.url} -> ${r.status} ${JSON.stringify(r.headers)} ${JSON.stringify(text.length > 400 ? text.slice(0, 400) + '...' : text)}`;
}

// ------------------------------------------------------------------ HTTP

/** One SockJS base URL (sockjs_path) of a gateway. */
export class SjEndpoint {
  constructor(t, gw, base, agent) {
    this.t = t;
    this.gw = gw;
    this.base = base;
    this.agent = agent;
  }

  url(p = '') { return this.gw.url(this.base + p); }

  /**
   * A plain request under the base (keep-alive agent, like a browser). The
   * path is sent as given (no URL normalisation of "/./" or "//").
   */
  req(method, p, o = {}) {
    const body = o.body ?? (method === 'POST' ? '' : undefined);
    return httpReq(this.gw.port, method, this.base + p, { agent: this.agent, ...o, body });
  }

  /** A session with a fresh random id (server id default "000"). */
  session(id = randomId(), server = '000') { return new SjSession(this, server, id); }

  /** A streaming response under the base; see openStream. */
  stream(method, p, o = {}) { return openStream(this.t, this.url(p), { method, ...o }); }
}

/** One SockJS session id on an endpoint. */
export class SjSession {
  constructor(ep, server, id) {
    this.ep = ep;
    this.server = server;
    this.id = id;
  }

  path(transport, server = this.server) { return `/${server}/${this.id}/${transport}`; }

  /** POST xhr (one receiving request). */
  xhr(o = {}) { return this.ep.req('POST', this.path('xhr'), { timeoutMs: 8000, ...o }); }

  /** POST xhr, asserting 200 and exactly one "\n"-terminated frame; resolves to the parsed frame. */
  async xhrFrame(o = {}) {
    const r = await this.xhr(o);
    assert.equal(r.status, 200, `xhr: ${show(r)}`);
    assert.ok(r.text.endsWith('\n') && r.text.indexOf('\n') === r.text.length - 1,
      `xhr must answer one frame + "\\n": ${show(r)}`);
    const f = parseFrame(r.text.slice(0, -1));
    assert.notEqual(f.type, '?', `xhr: not a SockJS frame: ${show(r)}`);
    f.response = r;
    return f;
  }

  /** Create the session with POST xhr and assert it answers "o\n". */
  async open(o = {}) {
    const r = await this.xhr(o);
    assert.equal(r.status, 200, `open: ${show(r)}`);
    assert.equal(r.text, 'o\n', `open: want "o\\n": ${show(r)}`);
    return r;
  }

  /**
   * Poll xhr until `n` messages arrived (heartbeats skipped). Fails on a
   * close frame. Resolves to { messages, frames }.
   */
  async pollMessages(n, ms = 8000) {
    const t0 = Date.now();
    const frames = [];
    while (messagesOf(frames).length < n) {
      if (Date.now() - t0 > ms) throw new Error(`pollMessages: ${n} messages not received within ${ms} ms; frames ${JSON.stringify(frames.map((f) => f.raw))}`);
      const f = await this.xhrFrame();
      frames.push(f);
      if (f.type === 'c') throw new Error(`pollMessages: closed (${f.raw}) after ${JSON.stringify(messagesOf(frames))}`);
      if (f.type === 'o') throw new Error(`pollMessages: unexpected open frame (session was re-created?) after ${JSON.stringify(frames.map((x) => x.raw))}`);
    }
    return { messages: messagesOf(frames), frames };
  }

  /** Poll xhr until a frame other than h arrives (the next data or close). */
  async nextFrame(ms = 8000) {
    const t0 = Date.now();
    for (;;) {
      const f = await this.xhrFrame();
      if (f.type !== 'h') return f;
      if (Date.now() - t0 > ms) throw new Error('nextFrame: only heartbeats');
    }
  }

  /** POST xhr_send with a body (default: JSON of an array of strings). */
  send(msgs, o = {}) {
    const body = typeof msgs === 'string' || Buffer.isBuffer(msgs) ? msgs : JSON.stringify(msgs);
    const headers = { 'content-type': 'text/plain;charset=UTF-8', ...(o.headers || {}) };
    if (o.contentType === null) delete headers['content-type'];
    else if (o.contentType !== undefined) headers['content-type'] = o.contentType;
    return this.ep.req('POST', this.path('xhr_send'), { ...o, headers, body });
  }

  /** xhr_send asserting 204 and an empty body. */
  async sendOk(msgs, o = {}) {
    const r = await this.send(msgs, o);
    assert.equal(r.status, 204, `xhr_send: ${show(r)}`);
    assert.equal(r.body.length, 0, `xhr_send: body must be empty: ${show(r)}`);
    return r;
  }

  jsonp(cb = 'cb', o = {}) {
    return this.ep.req('GET', `${this.path('jsonp')}?c=${encodeURIComponent(cb)}`, o);
  }

  jsonpSend(body, contentType = 'application/x-www-form-urlencoded', o = {}) {
    const headers = { ...(o.headers || {}) };
    if (contentType !== null) headers['content-type'] = contentType;
    return this.ep.req('POST', this.path('jsonp_send'), { ...o, headers, body });
  }

  /** Open a receiving stream: xhr_streaming (POST), eventsource / htmlfile (GET). */
  stream(transport, o = {}) {
    const method = transport === 'xhr_streaming' ? 'POST' : 'GET';
    const q = transport === 'htmlfile' ? `?c=${encodeURIComponent(o.callback ?? 'callback')}` : '';
    return this.ep.stream(method, this.path(transport) + q, { kind: transport, ...o });
  }
}

/**
 * Open a streaming response on its own connection. Resolves once the head
 * arrived to { status, headers, text, ended (promise), done, frames(),
 * waitFor(pred, ms, what), waitFrames(pred, ms, what), destroy() }.
 * o.kind selects the frame parser: 'xhr_streaming' | 'eventsource' |
 * 'htmlfile' (frames() returns parsed frames, 'h' included).
 */
export function openStream(t, url, o = {}) {
  const method = o.method || 'GET';
  return new Promise((resolve, reject) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const headers = { ...(o.headers || {}) };
    let body = o.body ?? (method === 'POST' ? '' : undefined);
    if (body !== undefined) headers['content-length'] = Buffer.byteLength(body);
    const req = http.request(url, { method, headers, agent });
    const timer = setTimeout(() => req.destroy(new Error(`${method} ${url}: no response head within ${o.timeoutMs ?? 8000} ms`)), o.timeoutMs ?? 8000);
    req.on('error', (e) => { clearTimeout(timer); agent.destroy(); reject(e); });
    req.on('response', (res) => {
      clearTimeout(timer);
      const endD = deferred();
      const s = {
        url, method, kind: o.kind,
        status: res.statusCode,
        headers: res.headers,
        text: '',
        bytes: 0,
        done: false,
        error: null,
        chunks: [],
        ended: endD.promise,
        _waiters: [],
        frames() {
          if (this.kind === 'eventsource') return eventsourceFrames(this.text).frames;
          if (this.kind === 'htmlfile') return htmlfileFrames(this.text).frames;
          return xhrFrames(this.text);
        },
        /** Frames other than heartbeats. */
        dataFrames() { return this.frames().filter((f) => f.type !== 'h'); },
        waitFor(pred, ms = 5000, what = 'stream condition') {
          const d = deferred();
          const w = { pred, resolve: d.resolve };
          this._waiters.push(w);
          this._wake();
          return withTimeout(d.promise, ms, `${what} on ${method} ${url}; done=${this.done}; text so far: ${JSON.stringify(this.text.length > 2600 ? '...' + this.text.slice(-600) : this.text.replace(PRELUDE_XHR, '<2048 h>\n'))}`)
            .finally(() => { const i = this._waiters.indexOf(w); if (i >= 0) this._waiters.splice(i, 1); });
        },
        /** Wait until n non-heartbeat frames were received. */
        waitFrames(n, ms = 5000) {
          return this.waitFor((st) => st.dataFrames().length >= n, ms, `${n} data frames`).then(() => this.dataFrames());
        },
        waitEnd(ms = 5000) { return withTimeout(this.ended, ms, `end of ${method} ${url}; text so far: ${JSON.stringify(this.text.slice(-300))}`); },
        destroy() { req.destroy(); res.destroy(); agent.destroy(); },
        _wake() {
          for (const w of this._waiters.slice()) {
            let ok = false;
            try { ok = w.pred(this); } catch { ok = false; }
            if (ok) { this._waiters.splice(this._waiters.indexOf(w), 1); w.resolve(this); }
          }
        },
      };
      if (t) t.after(() => s.destroy());
      res.setEncoding('utf8');
      res.on('data', (d) => {
        s.text += d;
        s.bytes += Buffer.byteLength(d);
        s.chunks.push(d);
        s._wake();
      });
      const fin = (err) => {
        if (s.done) return;
        s.done = true;
        s.complete = !err && res.complete;
        s.error = err || null;
        s._wake();
        agent.destroy();
        endD.resolve(s);
      };
      res.on('end', () => fin());
      res.on('error', (e) => fin(e));
      res.on('close', () => fin());
      resolve(s);
    });
    req.end(body);
  });
}

/**
 * One HTTP request to 127.0.0.1:port with the path sent verbatim. Resolves to
 * { status, headers, body: Buffer, text, json, ms, method, url }.
 * o: { headers, body (string|Buffer), agent, timeoutMs, signal }
 */
export function httpReq(port, method, path, o = {}) {
  const t0 = Date.now();
  const url = `http://127.0.0.1:${port}${path}`;
  return new Promise((resolve, reject) => {
    const headers = { ...(o.headers || {}) };
    let body = o.body;
    if (body !== undefined && !Buffer.isBuffer(body)) body = Buffer.from(body, 'utf8');
    if (body !== undefined && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) {
      headers['content-length'] = body.length;
    }
    let gotHead = null;
    let gotBytes = 0;
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: o.agent, signal: o.signal }, (res) => {
      gotHead = res;
      const chunks = [];
      let ended = false;
      res.on('data', (c) => { chunks.push(c); gotBytes += c.length; });
      res.on('error', (e) => { clearTimeout(timer); reject(e); });
      res.on('close', () => {
        if (!ended) {
          clearTimeout(timer);
          reject(new Error(`${method} ${url}: connection closed after status ${res.statusCode} and ${gotBytes} body bytes`));
        }
      });
      res.on('end', () => {
        ended = true;
        clearTimeout(timer);
        const buf = Buffer.concat(chunks);
        const text = buf.toString('utf8');
        let json;
        try { json = buf.length ? JSON.parse(text) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body: buf, text, json, ms: Date.now() - t0, method, url });
      });
    });
    const ms = o.timeoutMs ?? 8000;
    const timer = setTimeout(() => {
      const e = new Error(`${method} ${url}: no complete response within ${ms} ms` +
        (gotHead ? ` (status ${gotHead.statusCode}, ${gotBytes} body bytes)` : ' (no response head)'));
      reject(e);
      req.destroy(e);
    }, ms);
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    req.end(body);
  });
}

// ------------------------------------------------------------------ raw HTTP

/** Decode a chunked body. Returns { chunks: [Buffer], complete, error }. */
export function dechunk(buf) {
  const chunks = [];
  let i = 0;
  for (;;) {
    const nl = buf.indexOf('\r\n', i);
    if (nl < 0) return { chunks, complete: false };
    const size = parseInt(buf.subarray(i, nl).toString('latin1').split(';')[0], 16);
    if (Number.isNaN(size)) return { chunks, complete: false, error: `bad chunk size line at ${i}` };
    if (size === 0) return { chunks, complete: true };
    if (buf.length < nl + 2 + size + 2) return { chunks, complete: false };
    chunks.push(buf.subarray(nl + 2, nl + 2 + size));
    if (buf.subarray(nl + 2 + size, nl + 4 + size).toString('latin1') !== '\r\n') {
      return { chunks, complete: false, error: `chunk of ${size} bytes not followed by CRLF` };
    }
    i = nl + 4 + size;
  }
}

/** Parse "HTTP/x.y NNN ...\r\nheaders\r\n\r\n" at the start of buf; null if incomplete. */
export function parseHead(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/(\d\.\d) (\d{3})/.exec(lines[0]);
  if (!m) return { bad: lines[0] };
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    const k = l.slice(0, i).trim().toLowerCase();
    const v = l.slice(i + 1).trim();
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  return { version: m[1], status: Number(m[2]), headers, headLength: end + 4, statusLine: lines[0] };
}

/**
 * Send `text` on a fresh TCP connection to 127.0.0.1:port. Collects the
 * bytes until the server closes the connection, until(state) is true, or ms
 * pass. Resolves to { raw, head, body, closed, timedOut, socket }. With
 * keepOpen the socket is returned open (the caller destroys it; t.after does
 * too).
 */
export function rawHttp(t, port, text, { ms = 5000, until, keepOpen = false } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    if (t) t.after(() => s.destroy());
    let raw = Buffer.alloc(0);
    let settled = false;
    const state = () => {
      const head = parseHead(raw);
      const body = head && !head.bad ? raw.subarray(head.headLength) : Buffer.alloc(0);
      return { raw, head, body, closed: s.destroyed || closed, socket: s };
    };
    let closed = false;
    const finish = (timedOut) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const st = state();
      st.timedOut = timedOut;
      if (!keepOpen) s.destroy();
      resolve(st);
    };
    const timer = setTimeout(() => finish(true), ms);
    s.on('connect', () => s.write(text));
    s.on('data', (d) => {
      raw = Buffer.concat([raw, d]);
      if (until && until(state())) finish(false);
    });
    s.on('error', () => { closed = true; finish(false); });
    s.on('end', () => { closed = true; });
    s.on('close', () => { closed = true; finish(false); });
  });
}

/** Continue reading an open raw socket until until(buf) or close or ms; resolves to { raw, closed }. */
export function rawReadMore(sock, prev, { ms = 5000, until } = {}) {
  return new Promise((resolve) => {
    let raw = prev;
    let done = false;
    const fin = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.removeListener('data', onData);
      resolve({ raw, closed });
    };
    const onData = (d) => { raw = Buffer.concat([raw, d]); if (until && until(raw)) fin(false); };
    const timer = setTimeout(() => fin(sock.destroyed), ms);
    sock.on('data', onData);
    sock.once('close', () => fin(true));
    if (sock.destroyed) fin(true);
    else if (until && until(raw)) fin(false);
  });
}

// bridge_lib.mjs - helpers for the bridge integration suite (bridge_*.test.mjs):
//
//  startUpstream()  a controllable upstream push server on npm `ws`: records
//                   every connection (request headers, messages, close code),
//                   lets a test push to a connection, close it, pause it;
//                   can refuse upgrades or delay the handshake.
//  startSilent()    a TCP server that accepts and never answers.
//  startGateway()   writes an INI file, starts `pollgate -c FILE`, waits for
//                   GET /health on its admin port; stop() sends SIGTERM and asserts a clean
//                   exit (code 0, no sanitizer report).
//  Api              the pollgate protocol v1 over plain HTTP (open, poll, send,
//                   ack, close), with error-shape checks.
//  openEvents()     a small SSE client that keeps the raw lines of every event.
//  rawPollAbort()   a poll whose response is cut off after its first bytes;
//  rawExchange()    one raw request on its own connection (HTTP/1.0, close).
//
// pollgate checks every upstream once at start-up (asynchronously, logging
// "reachable"/"not reachable" per route): startGateway waits for that line and bridge() calls
// up.reset(), so that connection never counts as a session.
//
// Everything started here is torn down by the test's t.after.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { WebSocketServer } from 'ws';

import {
  POLLGATE_BIN, requireBin, startProcess, withTimeout, deferred, listen,
  trackSockets, freePort, tmpDir, writeFile, sleep,
} from './lib.mjs';

export { sleep, withTimeout, deferred, freePort };

export const ID_RE = /^[A-Za-z0-9_-]{22}$/;
// with [gateway] instance set: "<instance>." before the 22 characters
export const ID_ANY_RE = /^(?:[A-Za-z0-9]{1,16}\.)?[A-Za-z0-9_-]{22}$/;
export const ERR_CODE_RE = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;
const SANITIZER_RE = /ERROR: AddressSanitizer|runtime error:|LeakSanitizer/;

/** Resolves once pred() is true (checked every 10 ms); rejects after ms. */
export function waitUntil(pred, ms, what) {
  let iv;
  return withTimeout(new Promise((resolve) => {
    const check = () => {
      let v;
      try { v = pred(); } catch { v = false; }
      if (v) { clearInterval(iv); resolve(v); }
    };
    iv = setInterval(check, 10);
    check();
  }), ms, what).finally(() => clearInterval(iv));
}

// ------------------------------------------------------------------ upstream

/** One upstream WebSocket connection, as the push server sees it. */
export class UpConn {
  constructor(ws, req, index) {
    this.ws = ws;
    this.req = req;
    this.index = index;
    this.url = req.url;
    this.headers = req.headers;
    this.rawHeaders = req.rawHeaders;
    this.messages = []; // { data: Buffer, binary: bool }
    this.close = null; // { code, reason }
    this._waiters = [];
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.close = { code, reason: reason.toString('utf8') };
        resolve(this.close);
        this._wake();
      });
    });
    ws.on('message', (data, isBinary) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      this.messages.push({ data: buf, binary: isBinary });
      this._wake();
    });
    ws.on('error', () => {});
  }

  _wake() {
    for (const w of this._waiters.slice()) {
      if (w.pred()) {
        this._waiters.splice(this._waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }

  /** Text messages received so far, as strings. */
  texts() {
    return this.messages.map((m) => (m.binary ? `<binary ${m.data.toString('hex')}>` : m.data.toString('utf8')));
  }

  /** Resolves when at least n messages were received (or rejects after ms). */
  waitMessages(n, ms = 5000) {
    if (this.messages.length >= n) return Promise.resolve(this.messages);
    const d = deferred();
    this._waiters.push({ pred: () => this.messages.length >= n || this.close !== null, resolve: d.resolve });
    return withTimeout(d.promise, ms, `upstream connection ${this.index}: ${n} messages (have ${this.messages.length})`)
      .then(() => {
        if (this.messages.length < n) {
          throw new Error(`upstream connection ${this.index} closed (${JSON.stringify(this.close)}) after ${this.messages.length} of ${n} messages`);
        }
        return this.messages;
      });
  }

  /** Resolves to { code, reason } when the connection closes. */
  waitClose(ms = 5000) {
    return withTimeout(this.closed, ms, `upstream connection ${this.index} close`);
  }

  /** Send a text (string) or binary (Buffer with binary=true) message; resolves when written. */
  send(data, binary = false) {
    return withTimeout(new Promise((resolve, reject) => {
      if (this.ws.readyState !== 1) {
        reject(new Error(`upstream connection ${this.index} is not open (readyState ${this.ws.readyState}, close ${JSON.stringify(this.close)}, request headers ${JSON.stringify(this.headers)})`));
        return;
      }
      this.ws.send(data, { binary }, (err) => (err ? reject(err) : resolve()));
    }), 15000, `upstream connection ${this.index}: message written to the socket`);
  }

  /** Send several messages in the same tick; resolves when all are written. */
  sendAll(list) {
    return Promise.all(list.map((m) => (Buffer.isBuffer(m) ? this.send(m, true) : this.send(m))));
  }

  closeWith(code, reason) {
    this.ws.close(code, reason);
    return this.closed;
  }

  /** Stop reading the socket (the gateway's writes back up). */
  pause() { this.ws._socket.pause(); }
  resume() { this.ws._socket.resume(); }
  get bufferedAmount() { return this.ws.bufferedAmount; }
}

/**
 * Start an upstream push server (npm ws) on 127.0.0.1:0.
 * opts:
 *   reject(req) -> HTTP status to refuse the upgrade with, or 0/undefined
 *   handshakeDelayMs  answer the upgrade only after this long
 *   protocol(set, req) -> chosen subprotocol or false (default: first offered)
 *   onConnection(conn)  called for every accepted connection
 * Returns { port, url(path), conns, tcpCount, upgradeCount, rejected,
 *           conn(i, ms), waitConns(n, ms) }.
 */
export async function startUpstream(t, opts = {}) {
  const server = trackSockets(http.createServer((req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('upgrade required');
  }));
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 256 * 1024 * 1024,
    handleProtocols: (set, req) => (opts.protocol ? opts.protocol(set, req) : (set.values().next().value ?? false)),
  });
  const up = {
    port: 0,
    conns: [],
    tcpCount: 0,
    upgradeCount: 0,
    rejected: [],
    _waiters: [],
    probes: [],
    gen: 0,
    url(path = '/chat') { return `ws://127.0.0.1:${this.port}${path}`; },
    /**
     * Forget what happened so far (pollgate checks every upstream once at
     * start-up: that connection is not a session). Moved to `probes`.
     */
    reset() {
      this.probes.push(...this.conns);
      this.conns = [];
      this.gen++; // upgrades still in progress belong to the probe too
      this.tcpCount = 0;
      this.upgradeCount = 0;
      this.rejected = [];
    },
    /** The i-th accepted connection (0-based), waiting for it if needed. */
    conn(i = 0, ms = 5000) {
      return this.waitConns(i + 1, ms).then(() => this.conns[i]);
    },
    waitConns(n, ms = 5000) {
      if (this.conns.length >= n) return Promise.resolve(this.conns);
      const d = deferred();
      this._waiters.push({ n, resolve: d.resolve });
      return withTimeout(d.promise, ms, `${n} upstream connections (have ${this.conns.length})`);
    },
  };
  server.on('connection', () => { up.tcpCount++; });
  server.on('upgrade', (req, socket, head) => {
    up.upgradeCount++;
    socket.on('error', () => {});
    const status = opts.reject ? opts.reject(req) : 0;
    if (status) {
      up.rejected.push({ status, headers: req.headers });
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] || 'Refused'}\r\n` +
        'Content-Type: text/plain\r\nContent-Length: 7\r\nConnection: close\r\n\r\nrefused');
      return;
    }
    const gen = up.gen;
    const go = () => {
      if (socket.destroyed) return;
      wss.handleUpgrade(req, socket, head, (ws) => {
        if (gen !== up.gen) {
          const p = new UpConn(ws, req, -1);
          up.probes.push(p);
          if (opts.onConnection) opts.onConnection(p);
          return;
        }
        const c = new UpConn(ws, req, up.conns.length);
        up.conns.push(c);
        for (const w of up._waiters.slice()) {
          if (up.conns.length >= w.n) {
            up._waiters.splice(up._waiters.indexOf(w), 1);
            w.resolve(up.conns);
          }
        }
        if (opts.onConnection) opts.onConnection(c);
      });
    };
    if (opts.handshakeDelayMs) setTimeout(go, opts.handshakeDelayMs);
    else go();
  });
  up.port = await listen(t, server);
  t.after(() => {
    for (const c of wss.clients) c.terminate();
    wss.close();
  });
  up.server = server;
  up.wss = wss;
  return up;
}

/** A TCP server that accepts connections and never says a word. */
export async function startSilent(t) {
  const sockets = new Set();
  const res = {
    port: 0, sockets, count: 0,
    url: (p = '/chat') => `ws://127.0.0.1:${res.port}${p}`,
    reset() { res.count = 0; },
  };
  const server = trackSockets(net.createServer((s) => {
    res.count++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  }));
  res.port = await listen(t, server);
  return res;
}

// ------------------------------------------------------------------ gateway

const DEFAULTS = {
  // drain_timeout 0: a test's SIGTERM closes at once (the drain has its own tests)
  gateway: { log_level: 'debug', max_body: '64KiB', drain_timeout: '0' },
  session: {
    poll_timeout: '2s',
    heartbeat: '1s',
    idle_timeout: '3s',
    max_lifetime: '0',
    buffer_bytes: '1MiB',
    buffer_messages: '10000',
    overflow: 'pause',
    send_buffer_bytes: '1MiB',
    max_batch: '1000',
    max_sessions: '100000',
    max_sessions_per_client: '1000',
    max_buffered_bytes: '1GiB',
  },
  upstream: { connect_timeout: '2s', ping_interval: '20s', max_message: '1MiB' },
};

/**
 * Build the INI text. o: { gateway, session, upstream } overrides (key -> value),
 * routes: [{ name, path, upstream, origins, forward_headers, forward_origin }].
 */
export function makeConfig(listenPort, o = {}) {
  const lines = [];
  const section = (name, base, over) => {
    lines.push(`[${name}]`);
    for (const [k, v] of Object.entries({ ...base, ...(over || {}) })) {
      if (v !== undefined && v !== null) lines.push(`${k} = ${v}`);
    }
    lines.push('');
  };
  // o.extraListen: more addresses for [gateway] listen after the test's port
  const listenList = [`127.0.0.1:${listenPort}`, ...(o.extraListen || [])].join(', ');
  section('gateway', { listen: listenList, ...DEFAULTS.gateway }, o.gateway);
  section('session', DEFAULTS.session, o.session);
  section('upstream', DEFAULTS.upstream, o.upstream);
  // health_interval 1h: after the start-up check no probe reaches the test
  // upstreams unless a test asks for one
  if (o.adminPort || o.admin) section('admin', o.adminPort ? { listen: `127.0.0.1:${o.adminPort}`, health_interval: '1h' } : {}, o.admin);
  for (const r of o.routes || []) {
    lines.push(`[route ${r.name || 'chat'}]`);
    lines.push(`path = ${r.path || '/chat'}`);
    lines.push(`upstream = ${r.upstream}`);
    lines.push(`origins = ${r.origins ?? ''}`);
    lines.push(`forward_headers = ${r.forward_headers ?? 'Cookie, Authorization, User-Agent, Accept-Language'}`);
    lines.push(`forward_origin = ${r.forward_origin ?? 'off'}`);
    for (const [k, v] of Object.entries(r.extra || {})) lines.push(`${k} = ${v}`);
    lines.push('');
  }
  return lines.join('\n');
}

/**
 * Start pollgate with a generated config; resolves to
 *   { port, origin, url(path), proc, config, stop(), stderr() }
 * once GET /health answers 200. opts as for makeConfig, plus
 *   routes may give upstream: <url> or up: <startUpstream() result>.
 * The gateway is stopped (SIGTERM, clean exit asserted) in t.after unless the
 * test called stop() itself.
 */
export async function startGateway(t, opts = {}) {
  requireBin(POLLGATE_BIN, 'POLLGATE_BIN');
  const dir = tmpDir(t, 'pollgate-bridge-');
  const routes = (opts.routes || []).map((r) => ({ ...r, upstream: r.upstream || r.up.url(r.upstreamPath || r.path || '/chat') }));
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const adminPort = await freePort();
    const config = makeConfig(port, { adminPort, ...opts, routes });
    const file = writeFile(dir, `pollgate-${attempt}.ini`, config);
    // opts.wrapper: a command to run pollgate under, e.g. ['prlimit', '--nofile=160:160']
    const argv = [...(opts.wrapper || []), POLLGATE_BIN, '-c', file];
    const proc = startProcess(null, argv[0], argv.slice(1), {
      // a safety net only (t.after stops it): browser suites share one
      // gateway across subtests and can outlast 3 minutes on a busy machine
      timeoutMs: opts.processTimeoutMs ?? 900000,
      env: { ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', ...(opts.env || {}) },
    });
    let exited = null;
    proc.done.then((r) => { exited = r; });
    let errText = '';
    proc.child.stderr.on('data', (d) => { errText += d; });
    const gw = {
      port,
      adminPort,
      origin: `http://127.0.0.1:${port}`,
      url: (p) => `http://127.0.0.1:${port}${p}`,
      adminUrl: (p) => `http://127.0.0.1:${adminPort}${p}`,
      proc,
      config,
      file, // the INI file (a test may rewrite it and send SIGHUP)
      stderr: () => errText,
      stopped: false,
      async stop() {
        if (this.stopped) return this.result;
        this.stopped = true;
        if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGTERM');
        let r;
        try {
          r = await withTimeout(proc.done, 15000, 'pollgate exit after SIGTERM');
        } catch (e) {
          proc.child.kill('SIGKILL');
          await proc.done;
          throw new Error(`pollgate did not exit within 15 s of SIGTERM`);
        }
        this.result = r;
        const tail = r.stderr.length > 6000 ? '...' + r.stderr.slice(-6000) : r.stderr;
        assert.ok(!SANITIZER_RE.test(r.stderr), `sanitizer report in pollgate's stderr:\n${tail}`);
        assert.equal(r.signal, null, `pollgate killed by ${r.signal}\n${tail}`);
        assert.equal(r.code, 0, `pollgate exit code ${r.code} after SIGTERM (want 0)\n${tail}`);
        return r;
      },
    };
    // wait for the admin listener's /health to answer (200, or 503 while an
    // upstream is down or not yet probed: either means pollgate is up)
    const t0 = Date.now();
    let ready = false;
    const hAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    while (Date.now() - t0 < 15000) {
      if (exited) break;
      try {
        const r = await request(gw.adminUrl('/health'), { timeoutMs: 1000, agent: hAgent });
        if (r.status === 200 || r.status === 503) { ready = true; break; }
      } catch { /* not yet listening */ }
      await sleep(20);
    }
    hAgent.destroy();
    if (ready) {
      t.after(async () => { if (!gw.stopped) await gw.stop(); });
      // The start-up upstream check runs on the same loop, asynchronously;
      // its connection must not count as a session: wait for its log line.
      await waitUntil(() => /reachable/.test(errText) || exited, 5000, 'pollgate start-up check log line')
        .catch(() => {});
      return gw;
    }
    if (!exited) proc.child.kill('SIGKILL');
    const r = await proc.done;
    lastErr = new Error(`pollgate did not become ready (admin GET /health): exit=${r.code} signal=${r.signal}\n` +
      `config:\n${config}\nstderr:\n${r.stderr.slice(-4000)}`);
    if (!/in use|EADDRINUSE|bind|cannot listen/i.test(r.stderr)) break; // a port taken since freePort(): try others
  }
  throw lastErr;
}

// ------------------------------------------------------------------ HTTP

/**
 * One HTTP request. Resolves to { status, headers, body: Buffer, text, json, ms }.
 * o: { method, headers, body (string|Buffer), agent, timeoutMs, localAddress, signal }
 */
export function request(url, o = {}) {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const headers = { ...(o.headers || {}) };
    let body = o.body;
    if (body !== undefined && !Buffer.isBuffer(body)) body = Buffer.from(body, 'utf8');
    if (body !== undefined && headers['content-length'] === undefined) headers['content-length'] = body.length;
    const req = http.request(url, {
      method: o.method || 'GET',
      headers,
      agent: o.agent,
      localAddress: o.localAddress,
      signal: o.signal,
    }, (res) => {
      gotHead = res;
      const chunks = [];
      res.on('data', (c) => { chunks.push(c); gotBytes += c.length; });
      let ended = false;
      res.on('error', (e) => { clearTimeout(timer); reject(e); });
      res.on('close', () => {
        if (!ended) {
          clearTimeout(timer);
          reject(new Error(`HTTP ${o.method || 'GET'} ${url}: connection closed after status ${res.statusCode} and ${gotBytes} body bytes, before the response was complete`));
        }
      });
      res.on('end', () => {
        ended = true;
        clearTimeout(timer);
        const buf = Buffer.concat(chunks);
        const text = buf.toString('utf8');
        let json;
        if (buf.length) {
          try { json = JSON.parse(text); } catch { json = undefined; }
        }
        resolve({ status: res.statusCode, headers: res.headers, body: buf, text, json, ms: Date.now() - t0, url, method: o.method || 'GET' });
      });
    });
    const timer = setTimeout(() => {
      const e = new Error(`HTTP ${o.method || 'GET'} ${url}: no complete response within ${o.timeoutMs ?? 10000} ms` +
        (gotHead ? ` (status ${gotHead.statusCode} and ${gotBytes} body bytes received)` : ' (no response head)'));
      reject(e);
      req.destroy(e);
    }, o.timeoutMs ?? 10000);
    let gotHead = null;
    let gotBytes = 0;
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    req.end(body);
  });
}

/** "METHOD url -> status body" for assertion messages. */
export function show(r) {
  return `${r.method} ${r.url} -> ${r.status} ${JSON.stringify(r.headers)} ${r.text.length > 500 ? r.text.slice(0, 500) + '...' : r.text}`;
}

/** Assert the headers every dynamic response must carry. */
export function assertCommonHeaders(r) {
  assert.equal(r.headers['cache-control'], 'no-store', `Cache-Control: no-store missing: ${show(r)}`);
  assert.equal(r.headers['x-content-type-options'], 'nosniff', `X-Content-Type-Options: nosniff missing: ${show(r)}`);
}

/** Assert status + the error envelope {"error":code,"message":"..."}; returns json. */
export function assertError(r, status, code) {
  assert.equal(r.status, status, `want ${status}: ${show(r)}`);
  assert.ok(r.json && typeof r.json === 'object', `error body is not JSON: ${show(r)}`);
  assert.equal(typeof r.json.error, 'string', `error body without "error": ${show(r)}`);
  assert.match(r.json.error, ERR_CODE_RE, `error code not snake_case: ${show(r)}`);
  if (code) assert.equal(r.json.error, code, `error code: ${show(r)}`);
  assert.equal(typeof r.json.message, 'string', `error body without "message" string: ${show(r)}`);
  assertCommonHeaders(r);
  return r.json;
}

/** The pollgate protocol v1 on one route of one gateway. */
export class Api {
  constructor(gw, path = '/chat', { agent, headers = {}, localAddress } = {}) {
    this.gw = gw;
    this.path = path;
    this.agent = agent ?? new http.Agent({ keepAlive: true, maxSockets: 16 });
    this.ownAgent = !agent;
    this.headers = headers;
    this.localAddress = localAddress;
  }

  destroy() { if (this.ownAgent) this.agent.destroy(); }

  url(p) { return this.gw.url(this.path + p); }

  req(method, p, o = {}) {
    return request(this.url(p), {
      method,
      agent: this.agent,
      localAddress: this.localAddress,
      ...o,
      headers: { ...this.headers, ...(o.headers || {}) },
    });
  }

  /** POST P/sessions. body: object (JSON) or undefined. */
  open(body, o = {}) {
    const headers = { ...(o.headers || {}) };
    let b;
    if (body !== undefined) {
      b = typeof body === 'string' ? body : JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    return this.req('POST', '/sessions', { ...o, headers, body: b });
  }

  /** Open and assert 201; resolves to the session id. */
  async openOk(body, o = {}) {
    const r = await this.open(body, o);
    assert.equal(r.status, 201, `open: ${show(r)}`);
    assert.match(r.json?.session ?? '', ID_ANY_RE, `open: session id: ${show(r)}`);
    return r.json.session;
  }

  poll(id, ack, o = {}) {
    const q = ack === undefined || ack === null ? '' : `?ack=${ack}`;
    return this.req('GET', `/sessions/${id}/poll${q}`, { timeoutMs: 15000, ...o });
  }

  /** Poll and assert 200 + {"messages":[...]}; resolves to the json. */
  async pollOk(id, ack, o) {
    const r = await this.poll(id, ack, o);
    assert.equal(r.status, 200, `poll: ${show(r)}`);
    assert.ok(r.json && Array.isArray(r.json.messages), `poll body: ${show(r)}`);
    r.json._ms = r.ms;
    return r.json;
  }

  /** POST send with a JSON envelope. seq undefined = no seq field. */
  send(id, messages, seq, o = {}) {
    const env = seq === undefined ? { messages } : { seq, messages };
    return this.sendBody(id, JSON.stringify(env), 'application/json', o);
  }

  sendBody(id, body, contentType = 'application/json', o = {}) {
    return this.req('POST', `/sessions/${id}/send`, {
      ...o,
      headers: { 'content-type': contentType, ...(o.headers || {}) },
      body,
    });
  }

  async sendOk(id, messages, seq) {
    const r = await this.send(id, messages, seq);
    assert.equal(r.status, 200, `send: ${show(r)}`);
    assert.deepEqual(r.json, { ack: seq === undefined ? null : seq }, `send: ${show(r)}`);
    return r;
  }

  ack(id, n, o = {}) { return this.req('POST', `/sessions/${id}/ack?ack=${n}`, o); }
  del(id, o = {}) { return this.req('DELETE', `/sessions/${id}`, o); }
  closePost(id, o = {}) { return this.req('POST', `/sessions/${id}/close`, o); }

  eventsUrl(id, query = '') { return this.url(`/sessions/${id}/events${query}`); }

  /**
   * Poll (acking as it goes) until pred(collected messages, last json) is true.
   * Returns { messages, last, polls }.
   */
  async pollUntil(id, pred, { ack = 0, ms = 10000, acking = true } = {}) {
    const t0 = Date.now();
    const collected = [];
    let last;
    let cur = ack;
    let polls = 0;
    while (true) {
      if (Date.now() - t0 > ms) {
        throw new Error(`pollUntil: condition not met within ${ms} ms; got ${collected.length} messages, last=${JSON.stringify(last)?.slice(0, 300)}`);
      }
      last = await this.pollOk(id, cur);
      polls++;
      collected.push(...last.messages);
      if (acking && last.messages.length) cur = last.messages[last.messages.length - 1].seq;
      if (pred(collected, last)) return { messages: collected, last, polls, ack: cur };
      if (last.closed) {
        throw new Error(`pollUntil: session closed ${JSON.stringify(last.closed)} before condition; got ${collected.length} messages`);
      }
    }
  }
}

/** The text (or base64 for binary) of poll messages. */
export function payloads(msgs) {
  return msgs.map((m) => ('text' in m ? m.text : `b64:${m.binary}`));
}

/** Assert messages carry consecutive seqs starting at `from`. */
export function assertSeqs(msgs, from, what = 'seq') {
  const seqs = msgs.map((m) => m.seq);
  const want = msgs.map((_, i) => from + i);
  assert.deepEqual(seqs, want, `${what}: seqs ${JSON.stringify(seqs)}`);
}

// ------------------------------------------------------------------ SSE

/**
 * Open an SSE stream (new connection, no agent). Resolves once the response
 * head arrived to a stream object:
 *   status, headers, items: [{type:'event', id, event, data:[lines], raw:[lines]} |
 *                            {type:'comment', text} | {type:'retry', value}],
 *   events(), comments(), ended (promise), done (bool), body (non-200 text),
 *   waitFor(pred(stream), ms, what), waitEvents(n, ms), destroy()
 */
export function openEvents(t, url, { headers = {}, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    // a keep-alive connection of its own, like EventSource
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const req = http.get(url, { headers: { accept: 'text/event-stream', ...headers }, agent });
    const timer = setTimeout(() => req.destroy(new Error(`SSE ${url}: no response head within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e) => { clearTimeout(timer); agent.destroy(); reject(e); });
    req.on('response', (res) => {
      clearTimeout(timer);
      const s = {
        url,
        status: res.statusCode,
        headers: res.headers,
        items: [],
        rawText: '',
        body: '',
        done: false,
        error: null,
        res,
        _waiters: [],
        events() { return this.items.filter((i) => i.type === 'event'); },
        comments() { return this.items.filter((i) => i.type === 'comment'); },
        messageEvents() { return this.events().filter((e) => e.event === 'message' || e.event === 'binary'); },
        waitFor(pred, ms = 5000, what = 'SSE condition') {
          if (pred(this)) return Promise.resolve(this);
          const d = deferred();
          this._waiters.push({ pred, resolve: d.resolve });
          return withTimeout(d.promise, ms, `${what} on ${url}; items so far: ${JSON.stringify(this.items).slice(-600)}`);
        },
        waitMessages(n, ms = 5000) {
          return this.waitFor((st) => st.messageEvents().length >= n, ms, `${n} SSE message events`);
        },
        destroy() { req.destroy(); res.destroy(); agent.destroy(); },
        _wake() {
          for (const w of this._waiters.slice()) {
            if (w.pred(this)) {
              this._waiters.splice(this._waiters.indexOf(w), 1);
              w.resolve(this);
            }
          }
        },
      };
      const endD = deferred();
      s.ended = endD.promise;
      if (t) t.after(() => s.destroy());
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        res.on('data', (d) => { s.body += d; });
        res.on('end', () => {
          s.done = true;
          try { s.json = JSON.parse(s.body); } catch { s.json = undefined; }
          endD.resolve(s);
          resolve(s);
        });
        res.on('error', () => { s.done = true; endD.resolve(s); resolve(s); });
        return;
      }
      let partial = '';
      let cur = null;
      const flushLine = (line) => {
        if (line === '') {
          if (cur) { s.items.push(cur); cur = null; }
          return;
        }
        if (line.startsWith(':')) {
          s.items.push({ type: 'comment', text: line.slice(1) });
          return;
        }
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        let value = i < 0 ? '' : line.slice(i + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'retry' && !cur) {
          s.items.push({ type: 'retry', value, raw: line });
          return;
        }
        if (!cur) cur = { type: 'event', id: undefined, event: 'message', data: [], raw: [], fields: [] };
        cur.raw.push(line);
        cur.fields.push(field);
        if (field === 'id') cur.id = value;
        else if (field === 'event') cur.event = value;
        else if (field === 'data') cur.data.push(value);
        else if (field === 'retry') cur.retry = value;
      };
      res.on('data', (chunk) => {
        s.rawText += chunk;
        partial += chunk;
        // SSE lines end with CRLF, LF or CR; payloads are JSON strings so they never contain raw CR/LF.
        let m;
        const re = /\r\n|\n|\r/g;
        let last = 0;
        while ((m = re.exec(partial)) !== null) {
          if (m[0] === '\r' && m.index === partial.length - 1) break; // may be the first half of CRLF
          flushLine(partial.slice(last, m.index));
          last = m.index + m[0].length;
        }
        partial = partial.slice(last);
        s._wake();
      });
      const fin = (err) => {
        if (s.done) return;
        s.done = true;
        s.error = err || null;
        s._wake();
        endD.resolve(s);
      };
      res.on('end', () => fin());
      res.on('error', (e) => fin(e));
      res.on('close', () => fin());
      resolve(s);
    });
  });
}

/** Parse an SSE event's single data line as JSON; asserts there is exactly one. */
export function sseData(ev) {
  assert.equal(ev.data.length, 1, `SSE event must have exactly one data: line: ${JSON.stringify(ev.raw)}`);
  return JSON.parse(ev.data[0]);
}

// ------------------------------------------------------------------ raw

/**
 * Send `GET path` on a fresh TCP connection and destroy the socket as soon as
 * the first response bytes arrive (the response is "lost" on its way).
 * Resolves to the bytes seen (possibly a partial response).
 */
export function rawPollAbort(port, path, { timeoutMs = 8000, afterBytes = 1 } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    s.on('connect', () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n\r\n`);
    });
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= afterBytes) {
        s.destroy();
        resolve(got);
      }
    });
    s.on('error', reject);
    s.on('close', () => resolve(got));
  }), timeoutMs, `raw poll ${path}`);
}

/** Send a raw request and destroy the socket after `ms` without reading anything. */
export function rawRequestThenDrop(port, text, dropAfterMs) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.write(text);
      setTimeout(() => { s.destroy(); resolve(); }, dropAfterMs);
    });
    s.on('error', reject);
  });
}

// ------------------------------------------------------------------ setup

/**
 * Upstream + gateway with one route /chat → upstream /chat, and an Api.
 * o: { session, gateway, upstream (gateway [upstream] overrides), route
 *      (extra route keys), up (startUpstream options) }
 */
export async function bridge(t, o = {}) {
  const up = await startUpstream(t, o.up || {});
  const gw = await startGateway(t, {
    gateway: o.gateway,
    session: o.session,
    upstream: o.upstream,
    env: o.env,
    routes: [{ name: 'chat', path: '/chat', up, ...(o.route || {}) }],
  });
  up.reset(); // start-up reachability check of the upstream is not a session
  const api = new Api(gw, '/chat', o.api || {});
  t.after(() => api.destroy());
  return { up, gw, api };
}

/**
 * Write `text` on a fresh TCP connection and collect everything until the
 * server closes it (or ms pass). Resolves to the bytes received.
 */
export function rawExchange(port, text, ms = 5000) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks = [];
    const done = () => { clearTimeout(timer); s.destroy(); resolve(Buffer.concat(chunks)); };
    const timer = setTimeout(done, ms);
    s.on('connect', () => s.write(text));
    s.on('data', (d) => chunks.push(d));
    s.on('error', done);
    s.on('close', done);
  });
}

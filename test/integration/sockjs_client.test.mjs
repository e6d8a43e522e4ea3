// sockjs_client.test.mjs - the real npm sockjs-client (its Node drivers:
// http-based XHR and the `eventsource` package) against pollgate's SockJS
// dialect in front of a real npm `ws` echo upstream. Every transport that
// sockjs-client can drive under Node is tested on its own (the `transports`
// option names exactly one): xhr-streaming, xhr-polling, eventsource.
//
// Each test starts its own upstream and gateway (response_limit 16KiB, so
// streaming responses are renewed during the bigger tests).

import { describe, it as nodeIt } from 'node:test';
import assert from 'node:assert/strict';
import SockJS from 'sockjs-client';

import { withTimeout, deferred, sleep } from './lib.mjs';
import {
  startEchoUpstream, sockjsRoute, startSockjsGateway, crashAware, orderlyTeardown, beforeGatewayStop,
} from './sockjs_lib.mjs';

/** node:test's it, failures annotated with pollgate's crash report. */
const it = (name, fn) => nodeIt(name, crashAware(fn));

const TRANSPORTS = ['xhr-streaming', 'xhr-polling', 'eventsource'];
const clientsOf = new WeakMap();

/**
 * Echo upstream + gateway for test t. Teardown: every client of the test is
 * closed, then (after a moment for the gateway to see the aborted requests)
 * the gateway is stopped with a clean exit asserted, then the upstream.
 */
async function setup(t, { routeExtra = {}, session = {} } = {}) {
  orderlyTeardown(t);
  clientsOf.set(t, []);
  beforeGatewayStop(t, async () => {
    let any = false;
    for (const sock of clientsOf.get(t)) {
      if (sock.readyState < 2) { any = true; try { sock.close(); } catch { /* closing */ } }
    }
    if (any) await sleep(150); // no event tells when the gateway has seen the aborts
  });
  const up = await startEchoUpstream(t);
  const gw = await startSockjsGateway(t, {
    gateway: { max_body: '4MiB' },
    session: { heartbeat: '25s', poll_timeout: '25s', ...session },
    routes: [sockjsRoute('echo', '/echo', up, { extra: { response_limit: '16KiB', disconnect_delay: '2s', ...routeExtra } })],
    ups: [up],
  });
  return { up, gw, url: gw.url('/echo/sockjs') };
}

/**
 * A sockjs-client connection restricted to one transport. Returns
 * { sock, messages, opened, closed, waitMessages(n, ms) }; opened rejects if
 * the connection closes first; closed resolves to { code, reason, wasClean }.
 */
function connect(t, url, transport) {
  const sock = new SockJS(url, null, { transports: [transport], timeout: 10000 });
  const opened = deferred();
  const closed = deferred();
  opened.promise.catch(() => {});
  const c = {
    sock,
    messages: [],
    opened: opened.promise,
    closed: closed.promise,
    closeEvent: null,
    _waiters: [],
    waitMessages(n, ms = 10000) {
      const d = deferred();
      const w = { pred: () => this.messages.length >= n || this.closeEvent, resolve: d.resolve };
      this._waiters.push(w);
      this._wake();
      return withTimeout(d.promise, ms, `${transport}: ${n} messages (have ${this.messages.length})`).then(() => {
        if (this.messages.length < n) {
          throw new Error(`${transport}: closed ${JSON.stringify(this.closeEvent)} after ${this.messages.length} of ${n} messages`);
        }
        return this.messages;
      });
    },
    _wake() {
      for (const w of this._waiters.slice()) {
        if (w.pred()) { this._waiters.splice(this._waiters.indexOf(w), 1); w.resolve(); }
      }
    },
  };
  sock.onopen = () => opened.resolve();
  sock.onmessage = (e) => { c.messages.push(e.data); c._wake(); };
  sock.onclose = (e) => {
    c.closeEvent = { code: e.code, reason: e.reason, wasClean: e.wasClean };
    opened.reject(new Error(`${transport}: closed before open: ${JSON.stringify(c.closeEvent)}`));
    closed.resolve(c.closeEvent);
    c._wake();
  };
  clientsOf.get(t)?.push(sock);
  t.after(() => { try { if (sock.readyState < 2) sock.close(); } catch { /* already closing */ } });
  return c;
}

async function connectOpen(t, url, transport, ms = 10000) {
  const c = connect(t, url, transport);
  await withTimeout(c.opened, ms, `${transport}: open`);
  assert.equal(c.sock.transport, transport, 'the requested transport is in use');
  return c;
}

/** Strings that stress the JSON escaping and the transports' framing. */
const TRICKY = [
  'plain ascii',
  'ü é ß € 中文 ✓',
  'line\u2028separator\u2029paragraph',
  'nul \u0000 inside',
  'controls \u0001\u0002\u0007\b\t\n\u000b\f\r\u001b\u001f\u007f\u0085',
  '4-byte 😀 𝄞 🇩🇪 👩‍👩‍👧',
  'specials \ufff0\ufffd\ufffe\uffff\ufeff\u200b\u200c\u200d\u200e\u200f\u2060\u206f\u00ad\u0600',
  'json "quotes" \\backslash\\ /slash/ \'single\'',
  '</script><script>alert(1)</script><!--',
  'percent %41 %E2%80%A8 % %zz 100%',
  'crlf\r\n\r\ndata: fake\r\n\r\n',
  ' leading and trailing space ',
  '',
  'a'.repeat(5000) + '😀' + 'b'.repeat(5000),
];

describe('sockjs-client against pollgate', { concurrency: 3, timeout: 60000 }, () => {
  for (const tr of TRANSPORTS) {
    it(`${tr}: open, echo in order, upstream sees each message once`, async (t) => {
      const { up, url } = await setup(t);
      const c = await connectOpen(t, url, tr);
      const conn = await up.conn(0);
      const want = Array.from({ length: 30 }, (_, i) => `msg ${i}`);
      for (const m of want) c.sock.send(m);
      await c.waitMessages(want.length);
      assert.deepEqual(c.messages, want);
      await conn.waitMessages(want.length);
      assert.deepEqual(conn.texts(), want, 'the upstream got every message once, in order');
      assert.equal(up.conns.length, 1, 'one upstream connection for the session');
    });

    it(`${tr}: 100 KB messages and a 200-message burst across response_limit`, async (t) => {
      const { up, url } = await setup(t);
      const c = await connectOpen(t, url, tr);
      const big1 = Array.from({ length: 100 * 1024 }, (_, i) => String.fromCharCode(0x41 + (i % 26))).join('');
      const big2 = '😀ü'.repeat(34 * 1024); // ~200 KB of UTF-8
      const burst = Array.from({ length: 200 }, (_, i) => `${i}:` + 'x'.repeat(1000));
      const want = [big1, ...burst, big2];
      for (const m of want) c.sock.send(m);
      await c.waitMessages(want.length, 20000);
      assert.equal(c.messages.length, want.length);
      for (let i = 0; i < want.length; i++) {
        if (c.messages[i] !== want[i]) {
          assert.fail(`message ${i} differs: got ${c.messages[i].length} chars ${JSON.stringify(c.messages[i].slice(0, 40))}, want ${want[i].length} chars ${JSON.stringify(want[i].slice(0, 40))}`);
        }
      }
      const conn = await up.conn(0);
      assert.equal(conn.messages.length, want.length);
      assert.ok(conn.messages[want.length - 1].data.equals(Buffer.from(big2)), 'the upstream got the UTF-8 bytes');
      assert.equal(up.conns.length, 1, 'renewed streaming responses keep one session');
    });

    it(`${tr}: unicode, NUL, U+2028, 4-byte UTF-8 and framing look-alikes round-trip exactly`, async (t) => {
      const { up, url } = await setup(t);
      const c = await connectOpen(t, url, tr);
      const conn = await up.conn(0);
      for (const m of TRICKY) c.sock.send(m);
      await c.waitMessages(TRICKY.length);
      for (let i = 0; i < TRICKY.length; i++) {
        assert.equal(c.messages[i], TRICKY[i], `message ${i} back from the upstream`);
      }
      await conn.waitMessages(TRICKY.length);
      for (let i = 0; i < TRICKY.length; i++) {
        assert.equal(conn.messages[i].binary, false);
        assert.equal(conn.messages[i].data.toString('hex'), Buffer.from(TRICKY[i], 'utf8').toString('hex'),
          `message ${i} (${JSON.stringify(TRICKY[i].slice(0, 30))}) byte-identical at the upstream`);
      }
      // and pushed by the upstream on its own
      for (const m of TRICKY) await conn.send(m);
      await c.waitMessages(2 * TRICKY.length);
      assert.deepEqual(c.messages.slice(TRICKY.length), TRICKY);
    });

    it(`${tr}: the upstream's close code and reason reach onclose`, async (t) => {
      const { up, url } = await setup(t);
      const c = await connectOpen(t, url, tr);
      const conn = await up.conn(0);
      await conn.send('last words');
      await c.waitMessages(1);
      await conn.closeWith(4001, 'bye "ü" \u2028 😀');
      const ev = await withTimeout(c.closed, 10000, `${tr}: onclose`);
      assert.deepEqual(ev, { code: 4001, reason: 'bye "ü" \u2028 😀', wasClean: true });
      assert.deepEqual(c.messages, ['last words']);
    });

    it(`${tr}: close() by the client; the upstream is closed after disconnect_delay`, async (t) => {
      const { up, url } = await setup(t, { routeExtra: { disconnect_delay: '1s' } });
      const c = await connectOpen(t, url, tr);
      const conn = await up.conn(0);
      c.sock.send('x');
      await c.waitMessages(1);
      c.sock.close();
      const ev = await withTimeout(c.closed, 5000, 'onclose');
      assert.equal(ev.code, 1000);
      const uc = await conn.waitClose(6000);
      assert.ok(uc.code === 1000 || uc.code === 1001, `upstream close code ${uc.code}`);
    });
  }

  it('SIGTERM right after the upstream dropped 24 busy eventsource sessions: clean exit, no leak', async (t) => {
    // A race detector: when the stop overtakes the close delivery, a
    // receiving request must still be freed (LeakSanitizer checks at exit).
    const { up, gw, url } = await setup(t);
    const clients = Array.from({ length: 24 }, () => connect(t, url, 'eventsource'));
    await withTimeout(Promise.all(clients.map((c) => c.opened)), 20000, 'sessions open');
    const want = 60;
    for (const c of clients) for (let k = 0; k < want; k++) c.sock.send('x'.repeat(3000) + k);
    await withTimeout(Promise.all(clients.map((c) => c.waitMessages(want, 20000))), 20000, 'all echoes');
    for (const c of up.conns) c.ws.terminate();
    await gw.stop(); // asserts exit 0 and no sanitizer report
  });

  it('100 concurrent sessions over the three transports, each echoing its own messages', async (t) => {
    const { up, url } = await setup(t);
    const N = 100;
    const clients = Array.from({ length: N }, (_, i) => connect(t, url, TRANSPORTS[i % TRANSPORTS.length]));
    await withTimeout(Promise.all(clients.map((c) => c.opened)), 30000, `${N} sessions open`);
    await up.waitConns(N, 10000);
    clients.forEach((c, i) => { for (let k = 0; k < 3; k++) c.sock.send(`s${i} m${k} ✓`); });
    await withTimeout(Promise.all(clients.map((c) => c.waitMessages(3, 30000))), 30000, 'all echoes');
    clients.forEach((c, i) => {
      assert.deepEqual(c.messages, [0, 1, 2].map((k) => `s${i} m${k} ✓`), `session ${i} (${c.sock.transport}) got only its own messages`);
      assert.equal(c.sock.transport, TRANSPORTS[i % TRANSPORTS.length]);
    });
    assert.equal(up.conns.length, N, 'one upstream connection per session');
    const seen = up.conns.map((cn) => cn.texts()[0]?.split(' ')[0]).sort();
    assert.equal(new Set(seen).size, N, 'every upstream connection carries one session\'s messages');
    for (const c of clients) c.sock.close();
  });
});

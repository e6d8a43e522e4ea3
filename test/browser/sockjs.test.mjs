// sockjs.test.mjs - an unmodified sockjs-client (npm sockjs-client, its
// browser build dist/sockjs.min.js) in headless Chromium, with
// window.WebSocket removed, using pollgate as its SockJS server, one
// transport at a time, in front of a plain WebSocket echo upstream.
//
// The page comes from another origin (a small HTTP server on another port
// that serves it and sockjs.min.js), so the XHR transports go through CORS
// and the iframe transports load pollgate's iframe page, which loads
// sockjs.min.js back from the page server (sockjs_url).
//
// For each transport: `sock.transport` after open is that transport; short,
// unicode (escaping-prone: U+2028, NUL, quotes, controls...) and ~20 KB
// messages echo back exactly and reach the upstream exactly; a burst pushed
// by the upstream arrives in order (response_limit is small, so streaming
// responses are renewed on the way); sock.close() ends the upstream socket
// after disconnect_delay; an upstream close reaches the browser after the
// message sent before it, with its code and reason; markup in messages
// (</script>, <!--) does not break any transport.

import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import {
  cleanupGuard, launchBrowser, newPage, withLog, pageErrors, startStatic, SOCKJS_MIN_JS,
} from './browser_lib.mjs';
import { startGateway, startUpstream, request } from '../integration/bridge_lib.mjs';

const TRANSPORTS = [
  'xhr-streaming',
  'xhr-polling',
  'eventsource',
  'iframe-eventsource',
  'iframe-htmlfile',
  'iframe-xhr-polling',
  'jsonp-polling',
];

const SHORT = Array.from({ length: 10 }, (_, i) => `message ${i + 1}`);

const UNICODE = [
  'zażółć gęślą jaźń',
  '日本語のテキスト、中文、한국어',
  'emoji 😀🎉👍🏽 and a flag 🇵🇱',
  'rtl: שלום עולם — مرحبا بالعالم',
  'combining: e\u0301 a\u0308 o\u0328',
  'quotes " \' ` backslash \\ and slash /',
  'line\nbreaks\r\nand\ttabs',
  'separators \u2028 \u2029, bom \ufeff, zero-width \u200b\u200c\u200d, \u00ad soft hyphen',
  'controls \u0001\u0008\u000b\u000c\u001f\u007f\u0085',
  'nul \u0000 inside',
  'private use \ue000 and noncharacter-free astral 𝄞 𠜎',
  '',
  '[]{}:,"\\u0041 looks like an escape',
];

function bigMessage() {
  let s = '';
  for (let i = 0; Buffer.byteLength(s) < 20 * 1024; i++) {
    s += `line ${i}: "quoted" \\back\\slash — żółw 🐢 \u2028 ${'x'.repeat(i % 17)}\n`;
  }
  return s;
}
const BIG = bigMessage();

// Markup that ends or opens a script element or comment: harmless for the
// XHR and EventSource transports, fatal for htmlfile if not escaped (the
// reference server, sockjs-node 0.3.24, breaks on the first one).
const MARKUP = [
  '</script><script>parent.injected = 1</script>',
  '<!-- <script> -->',
  '</SCRIPT >',
  ']]> <![CDATA[',
  `a long one: ${'</script>'.repeat(2000)}`,
];

const PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>sockjs-client test page</title></head>
<body><h1>sockjs-client test page</h1>
<script src="/sockjs.min.js"></script>
</body></html>
`;

/** Assert two lists of strings are equal, describing the first difference briefly. */
function sameTexts(got, want, what) {
  const show = (s) => (s === undefined ? 'undefined' :
    `${JSON.stringify(s.length > 100 ? s.slice(0, 100) + '...' : s)} (${s.length} chars)`);
  if (got.length === want.length && got.every((g, i) => g === want[i])) return;
  const lines = [`${what}: got ${got.length} messages, want ${want.length}`];
  for (let i = 0; i < Math.max(got.length, want.length) && lines.length < 8; i++) {
    if (got[i] === want[i]) continue;
    let at = 0;
    const g = got[i] ?? '';
    const w = want[i] ?? '';
    while (at < g.length && at < w.length && g[at] === w[at]) at++;
    lines.push(`  [${i}] got ${show(got[i])}\n       want ${show(want[i])}\n       first difference at char ${at}: ` +
      `got ${JSON.stringify(g.slice(at, at + 20))}, want ${JSON.stringify(w.slice(at, at + 20))}`);
  }
  assert.fail(lines.join('\n'));
}

/** Open a SockJS connection in the page (state in window.sjs[i]). */
async function openSock(page, sockjsUrl, transport, expect = transport) {
  const i = await page.evaluate(({ url, transport }) => {
    window.sjs = window.sjs || [];
    const st = { open: false, transport: null, messages: [], close: null, events: [] };
    // timeout: sockjs-client otherwise gives a transport only a few /info
    // round trips (~400 ms here) to open, which a loaded machine can exceed
    const opts = transport ? { transports: [transport], timeout: 10000 } : { timeout: 10000 };
    const sock = new window.SockJS(url, null, opts);
    st.sock = sock;
    sock.onopen = () => { st.open = true; st.transport = sock.transport; st.events.push('open'); };
    sock.onmessage = (e) => { st.messages.push(e.data); };
    sock.onclose = (e) => {
      st.close = { code: e.code, reason: e.reason, wasClean: e.wasClean };
      st.events.push(`close ${e.code} ${e.reason}`);
    };
    window.sjs.push(st);
    return window.sjs.length - 1;
  }, { url: sockjsUrl, transport });
  await page.waitForFunction((i) => window.sjs[i].open || window.sjs[i].close, i, { timeout: 15000 });
  const s = await page.evaluate((i) => ({ open: window.sjs[i].open, transport: window.sjs[i].transport, close: window.sjs[i].close }), i);
  assert.ok(s.open, `SockJS(${transport}) did not open: onclose ${JSON.stringify(s.close)}`);
  assert.equal(s.transport, expect, 'sock.transport after open');
  return i;
}

const received = (page, i) => page.evaluate((i) => window.sjs[i].messages, i);
const waitReceived = (page, i, n, ms, what) => page.waitForFunction(({ i, n }) =>
  window.sjs[i].messages.length >= n || window.sjs[i].close, { i, n }, { timeout: ms })
  .catch((e) => { throw new Error(`${what}: ${e.message.split('\n')[0]}`); });

/** Send list from the page; check the upstream got it and the echo came back. */
async function roundTrip(page, i, conn, list, what) {
  const base = (await received(page, i)).length;
  const upBase = conn.messages.length;
  await page.evaluate(({ i, list }) => { for (const m of list) window.sjs[i].sock.send(m); }, { i, list });
  await conn.waitMessages(upBase + list.length, 10000);
  const upGot = conn.messages.slice(upBase);
  assert.ok(upGot.every((m) => !m.binary), `${what}: the upstream got text frames`);
  sameTexts(upGot.map((m) => m.data.toString('utf8')), list, `${what}: what the upstream received`);
  await waitReceived(page, i, base + list.length, 10000, `${what}: echoes in the browser`);
  sameTexts((await received(page, i)).slice(base), list, `${what}: echoes the browser received`);
}

test('sockjs-client in Chromium (no WebSocket) against pollgate, one transport at a time',
  { timeout: 110000 }, async (t) => {
    const g = cleanupGuard(t);
    const sockjsJs = readFileSync(SOCKJS_MIN_JS);
    const site = await startStatic(g, {
      '/': { type: 'text/html; charset=utf-8', body: PAGE },
      '/sockjs.min.js': { type: 'application/javascript; charset=utf-8', body: sockjsJs },
      '/favicon.ico': { type: 'image/x-icon', body: '' },
    });
    const up = await startUpstream(g, {
      onConnection: (c) => c.ws.on('message', (data, isBinary) => {
        if (c.ws.readyState === 1) c.ws.send(data, { binary: isBinary });
      }),
    });
    const browser = await launchBrowser(g);

    // A gateway of its own for each subtest: a crash or a sanitizer report
    // (checked when it stops, at the end of the subtest) is the subtest's.
    async function gateway(st) {
      const gw = await startGateway(cleanupGuard(st), {
        gateway: { max_body: '1MiB' },
        session: { heartbeat: '2s', poll_timeout: '5s', idle_timeout: '10s' },
        routes: [{
          name: 'echo',
          path: '/echo',
          up,
          upstreamPath: '/echo',
          origins: '*',
          extra: {
            sockjs: 'on',
            sockjs_url: site.url('/sockjs.min.js'),
            response_limit: '4KiB',
            disconnect_delay: '1s',
          },
        }],
      });
      up.reset();
      return gw;
    }

    await t.test('GET /echo/sockjs/info answers as SockJS 0.3 does', { timeout: 20000 }, async (st) => {
      const sockjsUrl = (await gateway(st)).url('/echo/sockjs');
      const r = await request(`${sockjsUrl}/info`, { headers: { origin: site.origin }, timeoutMs: 5000 });
      assert.equal(r.status, 200, `GET ${sockjsUrl}/info: ${r.status} ${r.text.slice(0, 300)}`);
      const info = JSON.parse(r.text);
      assert.equal(typeof info.websocket, 'boolean', r.text);
      assert.equal(typeof info.cookie_needed, 'boolean', r.text);
      assert.ok(Array.isArray(info.origins), r.text);
      assert.equal(typeof info.entropy, 'number', r.text);
      assert.equal(r.headers['access-control-allow-origin'], site.origin);
    });

    for (const transport of TRANSPORTS) {
      await t.test(transport, { timeout: 40000 }, async (st) => {
        const page = await newPage(browser, st); // closed before the gateway stops
        const sockjsUrl = (await gateway(st)).url('/echo/sockjs');
        await withLog(page, async () => {
          const res = await page.goto(site.url('/'), { timeout: 10000 });
          assert.equal(res.status(), 200);
          assert.equal(await page.evaluate(() => typeof window.WebSocket), 'undefined');
          assert.equal(await page.evaluate(() => typeof window.SockJS), 'function');

          const first = up.conns.length;
          const i = await openSock(page, sockjsUrl, transport);
          const conn = await up.conn(first, 5000);

          await roundTrip(page, i, conn, SHORT, 'short messages');
          await roundTrip(page, i, conn, UNICODE, 'unicode messages');
          await roundTrip(page, i, conn, [BIG], `one ${Buffer.byteLength(BIG)}-byte message`);

          // a burst pushed by the upstream (more than response_limit in all)
          const burst = Array.from({ length: 60 }, (_, k) => `push ${k + 1} ${'p'.repeat(100)}`);
          const base = (await received(page, i)).length;
          await conn.sendAll(burst);
          await waitReceived(page, i, base + burst.length, 10000, 'burst from the upstream');
          sameTexts((await received(page, i)).slice(base), burst, 'burst from the upstream');

          // the browser closes: the upstream socket ends after disconnect_delay
          const t0 = Date.now();
          await page.evaluate((i) => window.sjs[i].sock.close(), i);
          const c1 = await page.evaluate((i) => window.sjs[i].close, i);
          assert.equal(c1?.code, 1000, `onclose after sock.close(): ${JSON.stringify(c1)}`);

          // meanwhile a second connection: the upstream says something, then closes
          const j = await openSock(page, sockjsUrl, transport);
          const conn2 = await up.conn(first + 1, 5000);
          await conn2.send('last words');
          await conn2.closeWith(4001, 'bye from upstream');
          await page.waitForFunction((j) => window.sjs[j].close, j, { timeout: 10000 });
          const s2 = await page.evaluate((j) => ({ messages: window.sjs[j].messages, close: window.sjs[j].close }), j);
          sameTexts(s2.messages, ['last words'], 'messages before the upstream close');
          assert.deepEqual(s2.close, { code: 4001, reason: 'bye from upstream', wasClean: true },
            'onclose after the upstream closed with 4001');

          const cl = await conn.waitClose(10000);
          st.diagnostic(`upstream of the closed SockJS session ended ${Date.now() - t0} ms after sock.close() with ${JSON.stringify(cl)}`);

          // a third connection: markup in messages
          const k = await openSock(page, sockjsUrl, transport);
          const conn3 = await up.conn(first + 2, 5000);
          await roundTrip(page, k, conn3, MARKUP, 'markup messages');
          for (const f of page.frames()) {
            const injected = await f.evaluate(() => window.injected).catch(() => undefined);
            assert.equal(injected, undefined, `script injected into frame ${f.url()}`);
          }
          await page.evaluate((k) => window.sjs[k].sock.close(), k);
          assert.equal(up.conns.length, first + 3, 'one upstream connection per SockJS session');
          const recv = page.log.filter((l) => /^\S+ +\S+ ms request \S+ .*\/echo\/sockjs\/[^/]+\/[^/]+\/(xhr_streaming|xhr|eventsource|htmlfile|jsonp)\b/.test(l));
          st.diagnostic(`receiving requests: ${recv.length}`);
          // sockjs-client's own artefact, the same with sockjs-node: after
          // close() it deletes the callback of the JSONP poll still held by
          // the server, which calls it when answered (the next heartbeat).
          const errors = pageErrors(page).filter((l) => !/pageerror: _jp\.\w+ is not a function$/.test(l));
          assert.deepEqual(errors, [], 'no uncaught script error in the page or its frames');
        });
      });
    }
  });

/** The page server, an echo upstream and Chromium, as in the test above. */
async function setup(g) {
  const site = await startStatic(g, {
    '/': { type: 'text/html; charset=utf-8', body: PAGE },
    '/sockjs.min.js': { type: 'application/javascript; charset=utf-8', body: readFileSync(SOCKJS_MIN_JS) },
    '/favicon.ico': { type: 'image/x-icon', body: '' },
  });
  const up = await startUpstream(g, {
    onConnection: (c) => c.ws.on('message', (data, isBinary) => {
      if (c.ws.readyState === 1) c.ws.send(data, { binary: isBinary });
    }),
  });
  const browser = await launchBrowser(g);
  return { site, up, browser };
}

function sockjsGateway(t, site, up, origins) {
  return startGateway(t, {
    gateway: { max_body: '1MiB' },
    session: { heartbeat: '2s', poll_timeout: '5s', idle_timeout: '10s' },
    routes: [{
      name: 'echo',
      path: '/echo',
      up,
      upstreamPath: '/echo',
      origins,
      extra: { sockjs: 'on', sockjs_url: site.url('/sockjs.min.js'), response_limit: '4KiB', disconnect_delay: '1s' },
    }],
  });
}

// The usual deployment: the page on one origin, pollgate on another, and
// `origins` listing only the page's. The iframe transports run pollgate's
// iframe page on pollgate's own origin, so their requests carry that origin:
// same-origin, always allowed, list or not.
test('sockjs-client from another origin with an explicit origins list: all seven fallback transports',
  { timeout: 150000 }, async (t) => {
    const g = cleanupGuard(t);
    const { site, up, browser } = await setup(g);
    const gw = await sockjsGateway(g, site, up, site.origin);
    up.reset();
    const sockjsUrl = gw.url('/echo/sockjs');

    // the list is in effect: another origin is refused, the page's and pollgate's own are not
    const info = (origin) => request(`${sockjsUrl}/info`, { headers: { origin }, timeoutMs: 5000 });
    assert.equal((await info('http://elsewhere.example')).status, 403, 'an origin not on the list');
    for (const origin of [site.origin, gw.origin]) {
      const r = await info(origin);
      assert.equal(r.status, 200, `Origin: ${origin}`);
      assert.equal(r.headers['access-control-allow-origin'], origin);
    }

    for (const transport of TRANSPORTS) {
      await t.test(transport, { timeout: 25000 }, async (st) => {
        const page = await newPage(browser, st);
        await withLog(page, async () => {
          assert.equal((await page.goto(site.url('/'), { timeout: 10000 })).status(), 200);
          const first = up.conns.length;
          const i = await openSock(page, sockjsUrl, transport);
          const conn = await up.conn(first, 5000);
          await roundTrip(page, i, conn, SHORT.slice(0, 3), 'short messages');
          await roundTrip(page, i, conn, UNICODE, 'unicode messages');
          const burst = Array.from({ length: 30 }, (_, k) => `push ${k + 1}`);
          const base = (await received(page, i)).length;
          await conn.sendAll(burst);
          await waitReceived(page, i, base + burst.length, 10000, 'burst from the upstream');
          sameTexts((await received(page, i)).slice(base), burst, 'burst from the upstream');
          if (transport.startsWith('iframe-')) {
            assert.ok(page.frames().some((f) => f.url().startsWith(`${gw.origin}/echo/sockjs/iframe`)),
              `pollgate's iframe page runs on pollgate's origin: ${page.frames().map((f) => f.url())}`);
          }
          const refused = page.log.filter((l) => / response 403 /.test(l));
          assert.deepEqual(refused, [], 'no request refused');
          await page.evaluate((i) => window.sjs[i].sock.close(), i);
          assert.equal((await page.evaluate((i) => window.sjs[i].close, i))?.code, 1000);
          await conn.waitClose(10000);
          const errors = pageErrors(page).filter((l) => !/pageerror: _jp\.\w+ is not a function$/.test(l));
          assert.deepEqual(errors, [], 'no uncaught script error in the page or its frames');
        });
      });
    }
  });

// With WebSocket present, sockjs-client's first choice is its `websocket`
// transport (<sockjs_path>/<server>/<session>/websocket), when /info says so.
test('sockjs-client in Chromium with WebSocket: picks websocket through pollgate', { timeout: 90000 }, async (t) => {
  const g = cleanupGuard(t);
  const { site, up, browser } = await setup(g);
  const gw = await sockjsGateway(g, site, up, site.origin);
  up.reset();
  const sockjsUrl = gw.url('/echo/sockjs');
  const info = JSON.parse((await request(`${sockjsUrl}/info`, { headers: { origin: site.origin }, timeoutMs: 5000 })).text);
  if (info.websocket !== true) {
    t.skip(`/info says websocket:${info.websocket}: the SockJS websocket transport is not in this build`);
    return;
  }

  await t.test('50 pushes in order, unicode echo, close codes both ways', { timeout: 40000 }, async (st) => {
    const page = await newPage(browser, st, { webSocket: true });
    await withLog(page, async () => {
      assert.equal((await page.goto(site.url('/'), { timeout: 10000 })).status(), 200);
      assert.equal(await page.evaluate(() => typeof window.WebSocket), 'function');
      const first = up.conns.length;
      const i = await openSock(page, sockjsUrl, null, 'websocket');
      const conn = await up.conn(first, 5000);
      const http = page.log.filter((l) => / request \S+ .*\/echo\/sockjs\/[^/]+\/[^/]+\/(xhr|xhr_streaming|eventsource|htmlfile|jsonp)\b/.test(l));
      assert.deepEqual(http, [], 'no HTTP receiving transport was used');

      const pushes = Array.from({ length: 50 }, (_, k) => `push ${k + 1}`);
      await conn.sendAll(pushes);
      await waitReceived(page, i, 50, 10000, '50 pushes');
      sameTexts(await received(page, i), pushes, '50 pushes from the upstream');
      await roundTrip(page, i, conn, UNICODE, 'unicode messages');
      await roundTrip(page, i, conn, [BIG], `one ${Buffer.byteLength(BIG)}-byte message`);

      // the page closes: the upstream connection ends, onclose has 1000
      await page.evaluate((i) => window.sjs[i].sock.close(), i);
      await page.waitForFunction((i) => window.sjs[i].close, i, { timeout: 10000 });
      assert.equal((await page.evaluate((i) => window.sjs[i].close, i)).code, 1000, 'onclose after sock.close()');
      const cl = await conn.waitClose(10000);
      st.diagnostic(`upstream close after sock.close(): ${JSON.stringify(cl)}`);
      assert.ok(cl.code === 1000 || cl.code === 1001, `upstream close code ${JSON.stringify(cl)}`);

      // the upstream closes with a code: the page gets it after the message sent before
      const j = await openSock(page, sockjsUrl, null, 'websocket');
      const conn2 = await up.conn(first + 1, 5000);
      await conn2.send('last words');
      await conn2.closeWith(4001, 'bye from upstream');
      await page.waitForFunction((j) => window.sjs[j].close, j, { timeout: 10000 });
      const s2 = await page.evaluate((j) => ({ messages: window.sjs[j].messages, close: window.sjs[j].close }), j);
      sameTexts(s2.messages, ['last words'], 'messages before the upstream close');
      assert.deepEqual(s2.close, { code: 4001, reason: 'bye from upstream', wasClean: true });
      assert.deepEqual(pageErrors(page), [], 'no uncaught script error');
    });
  });
});

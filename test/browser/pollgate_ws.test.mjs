// pollgate_ws.test.mjs - pollgate's browser client (contrib/www/pollgate.js)
// and demo page in headless Chromium with WebSocket present: WebSocket first
// (<route>/ws), SSE when it does not get through.
//
//  - native WebSocket: the demo page says `ws`, two pages chat; a PollGate on
//    an echo route gets 50 pushed messages in order, echoes unicode and
//    binary byte-identical, and close codes travel both ways (the page's
//    onclose code is the same over ws and SSE)
//  - a route with websocket = off: the upgrade gets 404, the client falls back
//  - WebSocket deleted: the same client opens over SSE
//  - behind a proxy that breaks upgrades (refuses them with 400, holds them
//    unanswered, or answers 101 and cuts the connection): the client lands
//    on SSE by itself, the demo page keeps working and says `sse`, and a
//    second client in the same page goes straight to SSE (remembered)
//
// The native-WebSocket cases need the gateway's <route>/ws endpoint; while
// the binary under test answers it 404 they are skipped with a message.

import test from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

import {
  cleanupGuard, launchBrowser, newPage, withLog, pageErrors, startDemoUpstream, startNoUpgradeProxy, WWW_DIR,
} from './browser_lib.mjs';
import { startGateway, startUpstream, withTimeout, sleep } from '../integration/bridge_lib.mjs';

const UNICODE = [
  'zażółć gęślą jaźń',
  '日本語のテキスト、中文、한국어',
  'emoji 😀🎉👍🏽 and a flag 🇵🇱',
  'separators \u2028 \u2029, bom \ufeff, zero-width \u200b',
  'controls \u0001\u001f\u007f and nul \u0000 inside',
  'quotes " \' ` backslash \\ {"json":"lookalike"}',
  'astral 𝄞 𠜎',
  '',
];

/** 101, or the HTTP status the gateway answers a WebSocket upgrade of url with. */
function upgradeStatus(url) {
  return withTimeout(new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on('open', () => { ws.terminate(); resolve(101); });
    ws.on('unexpected-response', (req, res) => { res.resume(); req.destroy(); resolve(res.statusCode); });
    ws.on('error', () => resolve(0));
  }), 10000, `upgrade of ${url}`);
}

function chatTexts(page) {
  return page.$$eval('#messages .msg:not(.system):not(.notice) .text', (els) => els.map((e) => e.textContent));
}

async function say(page, text) {
  await page.fill('#input', text);
  await page.click('#send');
  await page.waitForFunction(() => document.getElementById('input').value === '', null, { timeout: 5000 });
}

function waitForText(page, text, ms = 15000) {
  return page.waitForFunction((want) => Array.prototype.some.call(
    document.querySelectorAll('#messages .msg .text'), (e) => e.textContent === want), text, { timeout: ms });
}

/** In the page: a PollGate on url whose events are recorded in window.pg[i]. */
async function openClient(page, url, opts = {}) {
  const i = await page.evaluate(({ url, opts }) => {
    window.pg = window.pg || [];
    const st = { events: [], messages: [], close: null, transports: [] };
    const c = new window.PollGate(url, opts);
    st.c = c;
    c.onopen = () => st.events.push('open');
    c.onmessage = (e) => {
      if (e.binary) st.messages.push({ hex: Array.from(new Uint8Array(e.data), (b) => b.toString(16).padStart(2, '0')).join('') });
      else st.messages.push(e.data);
    };
    c.ontransportchange = (tr) => st.transports.push(tr);
    c.onerror = (e) => st.events.push(`error ${e.status} ${e.retrying}`);
    c.onclose = (e) => {
      st.close = { code: e.code, reason: e.reason, wasClean: e.wasClean };
      st.events.push('close');
    };
    window.pg.push(st);
    return window.pg.length - 1;
  }, { url, opts });
  await page.waitForFunction((i) => window.pg[i].events.includes('open') || window.pg[i].close, i, { timeout: 20000 });
  const s = await page.evaluate((i) => ({ events: window.pg[i].events, close: window.pg[i].close }), i);
  assert.ok(s.events.includes('open'), `PollGate(${url}) did not open: ${JSON.stringify(s)}`);
  return i;
}

const clientState = (page, i) => page.evaluate((i) => {
  const s = window.pg[i];
  return { events: s.events, messages: s.messages, close: s.close, transports: s.transports,
    transport: s.c.transport, state: s.c.state, readyState: s.c.readyState, session: s.c.session };
}, i);

const waitMessages = (page, i, n, ms = 15000) => page.waitForFunction(({ i, n }) =>
  window.pg[i].messages.length >= n || window.pg[i].close, { i, n }, { timeout: ms });

test('pollgate.js in Chromium: WebSocket first, SSE when it does not get through', { timeout: 170000 }, async (t) => {
  const g = cleanupGuard(t);
  const demo = await startDemoUpstream(g);
  const up = await startUpstream(g, {
    onConnection: (c) => c.ws.on('message', (data, isBinary) => {
      if (c.ws.readyState === 1) c.ws.send(data, { binary: isBinary });
    }),
  });
  const gw = await startGateway(g, {
    gateway: { static_root: WWW_DIR, max_body: '1MiB' },
    session: { poll_timeout: '5s', heartbeat: '2s', idle_timeout: '30s' },
    routes: [
      { name: 'chat', path: '/chat', upstream: demo.url('/chat') },
      { name: 'echo', path: '/echo', up, upstreamPath: '/echo' },
      { name: 'plain', path: '/plain', up, upstreamPath: '/plain', extra: { websocket: 'off' } },
    ],
  });
  up.reset();
  const browser = await launchBrowser(g);
  const wsStatus = await upgradeStatus(`ws://127.0.0.1:${gw.port}/echo/ws`);
  up.reset();
  const noWs = wsStatus === 101 ? false :
    `the gateway answers GET /echo/ws with ${wsStatus}, not 101: native WebSocket endpoint not in this build`;

  async function openDemo(st, { base = gw.origin, webSocket = true, transport = null } = {}) {
    const page = await newPage(browser, st, { webSocket });
    await withLog(page, async () => {
      const res = await page.goto(`${base}/`, { timeout: 10000 });
      assert.equal(res.status(), 200, 'GET / (the demo page)');
      // (with transport: once it is in use; 'drop' opens a WebSocket before falling back)
      await page.waitForFunction((tr) => window.chat && window.chat.state === 'open' &&
        (!tr || window.chat.transport === tr) &&
        document.getElementById('status').textContent === 'open', transport, { timeout: 25000 });
    });
    return page;
  }

  await t.test('native WebSocket: the demo page says ws, two pages chat', { timeout: 40000, skip: noWs }, async (st) => {
    const a = await openDemo(st);
    const b = await openDemo(st);
    await withLog([a, b], async () => {
      for (const p of [a, b]) {
        assert.equal(await p.evaluate(() => typeof window.WebSocket), 'function');
        assert.equal(await p.evaluate(() => window.chat.transport), 'ws', 'chat.transport');
        assert.equal((await p.textContent('#transport')).trim(), 'ws', '#transport');
        assert.equal(await p.evaluate(() => window.chat.session), null, 'no HTTP session');
      }
      const ta = 'Hello over WebSocket! zażółć 😀 <b>not bold</b>';
      await say(a, ta);
      await waitForText(b, ta);
      await say(b, 'and back');
      await waitForText(a, 'and back');
      await sleep(200);
      assert.deepEqual(await chatTexts(a), [ta, 'and back']);
      assert.deepEqual(await chatTexts(b), [ta, 'and back']);
      const sessionsCalls = [a, b].flatMap((p) => p.log.filter((l) => / request \S+ .*\/chat\/sessions/.test(l)));
      assert.deepEqual(sessionsCalls, [], 'no HTTP session requests over WebSocket');
      assert.deepEqual([...pageErrors(a), ...pageErrors(b)], [], 'no uncaught script error');
    });
  });

  await t.test('native WebSocket: 50 pushes in order, unicode and binary echo, close codes both ways',
    { timeout: 40000, skip: noWs }, async (st) => {
      const page = await openDemo(st);
      await withLog(page, async () => {
        const first = up.conns.length;
        const i = await openClient(page, '/echo');
        const conn = await up.conn(first, 5000);
        assert.equal((await clientState(page, i)).transport, 'ws');

        const pushes = Array.from({ length: 50 }, (_, k) => `push ${k + 1}`);
        await conn.sendAll(pushes);
        await waitMessages(page, i, 50);
        assert.deepEqual((await clientState(page, i)).messages, pushes, '50 pushes, in order');

        await page.evaluate(({ i, list }) => { for (const m of list) window.pg[i].c.send(m); }, { i, list: UNICODE });
        await conn.waitMessages(UNICODE.length, 10000);
        assert.deepEqual(conn.messages.map((m) => m.binary), UNICODE.map(() => false), 'text frames upstream');
        assert.deepEqual(conn.messages.map((m) => m.data.toString('utf8')), UNICODE, 'what the upstream got');
        await waitMessages(page, i, 50 + UNICODE.length);
        assert.deepEqual((await clientState(page, i)).messages.slice(50), UNICODE, 'echoes, byte-identical');

        const bytes = [0, 1, 2, 127, 128, 254, 255, 0xc0, 0xaf];
        await page.evaluate(({ i, bytes }) => window.pg[i].c.send(new Uint8Array(bytes)), { i, bytes });
        await conn.waitMessages(UNICODE.length + 1, 10000);
        const bin = conn.messages[UNICODE.length];
        assert.equal(bin.binary, true, 'binary frame upstream');
        assert.deepEqual([...bin.data], bytes);
        await waitMessages(page, i, 50 + UNICODE.length + 1);
        assert.deepEqual((await clientState(page, i)).messages.at(-1), { hex: Buffer.from(bytes).toString('hex') });

        // the page closes with a code and reason: the upstream gets them
        await page.evaluate((i) => window.pg[i].c.close(4000, 'bye from the page'), i);
        assert.deepEqual(await conn.waitClose(10000), { code: 4000, reason: 'bye from the page' }, 'upstream close');
        await page.waitForFunction((i) => window.pg[i].close, i, { timeout: 10000 });
        const s1 = await clientState(page, i);
        assert.deepEqual(s1.close, { code: 4000, reason: 'bye from the page', wasClean: true }, 'onclose after close()');
        assert.equal(s1.readyState, 3);

        // the upstream closes with a code and reason: onclose gets them
        const j = await openClient(page, '/echo');
        const conn2 = await up.conn(first + 1, 5000);
        await conn2.send('last words');
        await conn2.closeWith(4001, 'bye from upstream');
        await page.waitForFunction((j) => window.pg[j].close, j, { timeout: 10000 });
        const s2 = await clientState(page, j);
        assert.deepEqual(s2.messages, ['last words']);
        assert.deepEqual(s2.close, { code: 4001, reason: 'bye from upstream', wasClean: true });
        assert.deepEqual(s2.events, ['open', 'close'], 'no error event');

        // the same two closes over SSE give the page the same onclose
        const k = await openClient(page, '/echo', { transport: 'sse' });
        assert.equal((await clientState(page, k)).transport, 'sse');
        const conn3 = await up.conn(first + 2, 5000);
        await page.evaluate((k) => window.pg[k].c.close(4000, 'bye from the page'), k);
        await page.waitForFunction((k) => window.pg[k].close, k, { timeout: 10000 });
        assert.deepEqual((await clientState(page, k)).close, s1.close, 'onclose after close() over SSE');
        await conn3.waitClose(10000);
        const m = await openClient(page, '/echo', { transport: 'sse' });
        const conn4 = await up.conn(first + 3, 5000);
        await conn4.closeWith(4001, 'bye from upstream');
        await page.waitForFunction((m) => window.pg[m].close, m, { timeout: 10000 });
        assert.deepEqual((await clientState(page, m)).close, s2.close, 'onclose after the upstream closed, over SSE');
        assert.deepEqual(pageErrors(page), [], 'no uncaught script error');
      });
    });

  await t.test('a route with websocket = off (404 to the upgrade): falls back to SSE', { timeout: 40000, skip: noWs },
    async (st) => {
      const page = await openDemo(st);
      await withLog(page, async () => {
        const first = up.conns.length;
        const i = await openClient(page, '/plain');
        const conn = await up.conn(first, 5000);
        assert.equal(conn.url, '/plain');
        const s = await clientState(page, i);
        assert.equal(s.transport, 'sse');
        assert.deepEqual(s.transports, ['sse'], 'one transport change, ws -> sse');
        assert.deepEqual(s.events, ['open'], 'one open, no error');
        await conn.sendAll(['a', 'b']);
        await waitMessages(page, i, 2);
        assert.deepEqual((await clientState(page, i)).messages, ['a', 'b']);
        await page.evaluate((i) => window.pg[i].c.close(), i);
        assert.deepEqual(pageErrors(page), [], 'no uncaught script error');
      });
    });

  await t.test('WebSocket deleted: the same client opens over SSE', { timeout: 40000 }, async (st) => {
    const page = await openDemo(st, { webSocket: false });
    await withLog(page, async () => {
      assert.equal(await page.evaluate(() => typeof window.WebSocket), 'undefined');
      assert.equal((await page.textContent('#transport')).trim(), 'sse', '#transport');
      const first = up.conns.length;
      const i = await openClient(page, '/echo');
      const conn = await up.conn(first, 5000);
      const s = await clientState(page, i);
      assert.equal(s.transport, 'sse');
      assert.deepEqual(s.transports, [], 'no transport change');
      await conn.sendAll(['one', 'two', 'three']);
      await waitMessages(page, i, 3);
      assert.deepEqual((await clientState(page, i)).messages, ['one', 'two', 'three']);
      await page.evaluate((i) => window.pg[i].c.close(), i);
      assert.deepEqual(pageErrors(page), [], 'no uncaught script error');
    });
  });

  for (const mode of ['refuse', 'hold', 'drop']) {
    const how = { refuse: 'refuses upgrades (400)', hold: 'holds upgrades unanswered', drop: 'answers 101 then cuts' }[mode];
    await t.test(`behind a proxy that ${how}: lands on SSE by itself and keeps working`,
      { timeout: 60000 }, async (st) => {
        const proxy = await startNoUpgradeProxy(cleanupGuard(st), gw.port, mode);
        const t0 = Date.now();
        const page = await openDemo(st, { base: proxy.origin, transport: 'sse' });
        await withLog(page, async () => {
          st.diagnostic(`demo page open ${Date.now() - t0} ms after loading; upgrades tried: ${JSON.stringify(proxy.upgrades)}`);
          assert.deepEqual(proxy.upgrades, ['/chat/ws'], 'one WebSocket attempt, at <route>/ws');
          assert.equal(await page.evaluate(() => window.chat.transport), 'sse', 'chat.transport');
          assert.equal((await page.textContent('#transport')).trim(), 'sse', '#transport');
          assert.match(await page.evaluate(() => window.chat.session), /^[A-Za-z0-9_-]{22}$/, 'an HTTP session');
          const sys = await page.$$eval('#messages .msg.system .text', (els) => els.map((e) => e.textContent));
          assert.ok(sys.includes('switched to sse'), `the page shows the switch: ${JSON.stringify(sys)}`);

          const text = `still chatting behind the proxy (${mode}) — żółw 🐢`;
          await say(page, text);
          await waitForText(page, text);

          // a second client of the page remembers: straight to SSE, no upgrade tried
          const first = up.conns.length;
          const i = await openClient(page, '/chat');
          const j = await openClient(page, '/echo');
          const conn = await up.conn(first, 5000);
          const s = await clientState(page, j);
          assert.equal(s.transport, 'sse');
          assert.deepEqual(s.transports, [], '/echo: no transport change (started on SSE)');
          assert.deepEqual(proxy.upgrades, ['/chat/ws'], 'no second upgrade attempt through this proxy');
          assert.equal((await clientState(page, i)).transport, 'sse', 'second /chat client');
          await conn.sendAll(['through', 'the', 'proxy']);
          await waitMessages(page, j, 3);
          assert.deepEqual((await clientState(page, j)).messages, ['through', 'the', 'proxy']);
          assert.ok(proxy.forwarded > 0);
          await page.evaluate(() => window.pg.forEach((s) => s.c.close()));
          assert.deepEqual(pageErrors(page), [], 'no uncaught script error');
        });
      });
  }
});

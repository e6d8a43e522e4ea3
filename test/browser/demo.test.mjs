// demo.test.mjs - pollgate's own browser client (contrib/www/pollgate.js) and
// demo page (contrib/www/index.html), served by pollgate (static_root), in
// headless Chromium with window.WebSocket removed, in front of the shipped
// demo chat upstream (contrib/demo/upstream.mjs: broadcasts every text as
// {"from":"userN","text":...}).
//
//  - two pages chat over SSE (each sees the other's message); screenshot
//  - the same with EventSource removed too: the page falls back to long-poll
//  - the network drops for a few seconds (every connection between browser
//    and gateway cut, with or without the browser knowing it is offline)
//    while the upstream keeps pushing numbered messages: every one arrives
//    once, in order, in the same session (SSE and long-poll)

import test from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import WebSocket from 'ws';

import {
  cleanupGuard, launchBrowser, newPage, withLog, pageErrors, startDemoUpstream, startCutProxy,
  WWW_DIR, outputPath,
} from './browser_lib.mjs';
import { startGateway, withTimeout, sleep } from '../integration/bridge_lib.mjs';

/** Chat lines of the page (not system lines or notices): [{from, text}]. */
function chatLines(page) {
  return page.$$eval('#messages .msg:not(.system):not(.notice)', (els) => els.map((e) => ({
    from: e.querySelector('.from') ? e.querySelector('.from').textContent : null,
    text: e.querySelector('.text') ? e.querySelector('.text').textContent : null,
  })));
}

function notices(page) {
  return page.$$eval('#messages .msg.notice', (els) => els.map((e) => e.textContent));
}

function waitForText(page, text, ms = 10000) {
  return page.waitForFunction(
    (want) => Array.prototype.some.call(document.querySelectorAll('#messages .msg .text'),
      (e) => e.textContent === want),
    text, { timeout: ms });
}

/** Type into #input and press #send as a person would. */
async function say(page, text) {
  await page.fill('#input', text);
  await page.click('#send');
  // the page clears the input once chat.send() accepted the message
  await page.waitForFunction(() => document.getElementById('input').value === '', null, { timeout: 5000 });
}

test('demo page and pollgate.js in Chromium without WebSocket', { timeout: 100000 }, async (t) => {
  const g = cleanupGuard(t);
  const demo = await startDemoUpstream(g);
  const gw = await startGateway(g, {
    gateway: { static_root: WWW_DIR, max_body: '1MiB' },
    session: { poll_timeout: '5s', heartbeat: '2s', idle_timeout: '30s' },
    routes: [{ name: 'chat', path: '/chat', upstream: demo.url('/chat') }],
  });
  const browser = await launchBrowser(g);

  /** Open the demo page and wait until its session is open. */
  async function openDemo(st, { noEventSource = false, base = gw.origin } = {}) {
    const page = await newPage(browser, st, { noEventSource });
    await withLog(page, async () => {
      const res = await page.goto(`${base}/`, { timeout: 10000 });
      assert.equal(res.status(), 200, 'GET / (the demo page, static_root)');
      await page.waitForFunction(() => window.chat && window.chat.state === 'open' &&
        document.getElementById('status').textContent === 'open', null, { timeout: 10000 });
      assert.equal(await page.evaluate(() => typeof window.WebSocket), 'undefined', 'WebSocket removed');
      assert.equal(await page.evaluate(() => typeof window.EventSource),
        noEventSource ? 'undefined' : 'function', 'EventSource');
    });
    return page;
  }

  async function twoPagesChat(st, mode) {
    const noEventSource = mode === 'poll';
    const a = await openDemo(st, { noEventSource });
    const b = await openDemo(st, { noEventSource });
    await withLog([a, b], async () => {
      for (const p of [a, b]) {
        assert.equal((await p.textContent('#transport')).trim(), mode, '#transport');
        assert.equal(await p.evaluate(() => window.chat.transport), mode, 'chat.transport');
      }
      const [sa, sb] = await Promise.all([a, b].map((p) => p.evaluate(() => window.chat.session)));
      assert.match(sa, /^[A-Za-z0-9_-]{22}$/);
      assert.notEqual(sa, sb, 'two pages, two sessions');

      const ta = `Hello from page A over ${mode}! zażółć 😀`;
      const tb = `Hi A, page B here (${mode}) — Ελληνικά, кириллица <b>not bold</b>`;
      await say(a, ta);
      await waitForText(b, ta);
      await say(b, tb);
      await waitForText(a, tb);
      await waitForText(b, tb);
      await sleep(200); // a duplicate would show up by now
      const la = await chatLines(a);
      const lb = await chatLines(b);
      assert.deepEqual(la.map((m) => m.text), [ta, tb], 'page A chat lines');
      assert.deepEqual(lb.map((m) => m.text), [ta, tb], 'page B chat lines');
      assert.equal(la[0].from, lb[0].from, 'same sender name for A on both pages');
      assert.equal(la[1].from, lb[1].from, 'same sender name for B on both pages');
      assert.notEqual(la[0].from, la[1].from, 'A and B are different upstream users');
      assert.match(la[0].from, /^user\d+$/);
      // text reached the page as text: no markup was interpreted
      assert.equal(await b.$$eval('#messages b', (els) => els.length), 0, 'no <b> element created');
      assert.deepEqual(await notices(a), [], 'no notices on page A');
      assert.deepEqual(await notices(b), [], 'no notices on page B');
      assert.deepEqual([...pageErrors(a), ...pageErrors(b)], [], 'no uncaught script error');
    });
    return { a, b };
  }

  await t.test('two pages chat over SSE; screenshot', { timeout: 30000 }, async (st) => {
    const { a } = await twoPagesChat(st, 'sse');
    const file = outputPath('demo.png');
    await a.screenshot({ path: file });
    assert.ok(statSync(file).size > 1000, `screenshot ${file}`);
    st.diagnostic(`screenshot: ${file}`);
  });

  await t.test('two pages chat over long-poll (no EventSource either)', { timeout: 30000 }, async (st) => {
    await twoPagesChat(st, 'poll');
  });

  // The page is loaded through a TCP relay that can cut every connection
  // (Chromium's offline emulation alone lets requests already in flight,
  // like the open EventSource stream, go on); with `offline`, the browser is
  // also told it is offline (navigator.onLine, 'offline'/'online' events).
  const proxy = await startCutProxy(g, gw.port);
  for (const [mode, offline] of [['sse', true], ['poll', true], ['sse', false], ['poll', false]]) {
    const how = offline ? 'offline for 3 s' : 'connections cut for 3 s';
    await t.test(`${how} while the upstream pushes (${mode}): nothing lost, same session`,
      { timeout: 40000 }, async (st) => {
        const page = await openDemo(st, { noEventSource: mode === 'poll', base: proxy.url('') });
        await withLog(page, async () => {
          assert.equal(await page.evaluate(() => window.chat.transport), mode);
          const session = await page.evaluate(() => window.chat.session);
          await page.evaluate(() => {
            window.testStates = [];
            window.chat.addEventListener('statechange', (s) => window.testStates.push(s));
          });

          // a second client of the demo upstream pushes numbered messages
          const pusher = new WebSocket(demo.url('/chat'), { perMessageDeflate: false });
          st.after(() => pusher.terminate());
          await withTimeout(new Promise((resolve, reject) => {
            pusher.once('open', resolve);
            pusher.once('error', reject);
          }), 5000, 'pusher connection to the demo upstream');
          pusher.on('message', () => {});
          let n = 0;
          const push = async (count, everyMs) => {
            for (let i = 0; i < count; i++) {
              pusher.send(`n${++n}`);
              await sleep(everyMs);
            }
          };
          const shown = async () => (await chatLines(page)).filter((m) => /^n\d+$/.test(m.text)).map((m) => m.text);

          await push(5, 50);
          await waitForText(page, 'n5');
          const failedBefore = page.log.filter((l) => /requestfailed .*\/chat\/sessions\//.test(l)).length;

          const t0 = Date.now();
          if (offline) await page.context().setOffline(true);
          proxy.cut();
          await page.waitForFunction(() => window.chat.state === 'offline', null, { timeout: 5000 });
          await push(30, 100);                    // ~3 s of pushes while the network is down
          const seenDown = (await shown()).length;
          proxy.restore();
          if (offline) await page.context().setOffline(false);
          st.diagnostic(`network down ${Date.now() - t0} ms; the page showed ${seenDown} of ${n} pushes meanwhile`);
          assert.equal(seenDown, 5, 'nothing reached the page while the network was down');

          await push(5, 50);
          await waitForText(page, `n${n}`, 15000);
          st.diagnostic(`all ${n} shown ${Date.now() - t0} ms after the cut`);
          await page.waitForFunction(() => window.chat.state === 'open', null, { timeout: 5000 });
          await sleep(300); // a duplicate would show up by now

          const want = Array.from({ length: n }, (_, i) => `n${i + 1}`);
          assert.deepEqual(await shown(), want, 'every pushed message once, in order');
          assert.equal(await page.evaluate(() => window.chat.session), session, 'session id unchanged');
          assert.equal(await page.evaluate(() => window.chat.readyState), 1, 'readyState OPEN');
          const states = await page.evaluate(() => window.testStates);
          assert.ok(states.includes('offline'), `state went offline: ${JSON.stringify(states)}`);
          assert.equal(states[states.length - 1], 'open', `back to open: ${JSON.stringify(states)}`);
          assert.ok(!states.includes('closed'), `never closed: ${JSON.stringify(states)}`);
          assert.deepEqual(await notices(page), [], 'no notice (lost messages, errors, disconnect)');
          const failed = page.log.filter((l) => /requestfailed .*\/chat\/sessions\//.test(l)).length - failedBefore;
          assert.ok(failed >= 1, 'the page saw its requests to the gateway fail');
          assert.equal((await page.textContent('#status')).trim(), 'open', '#status');
          assert.deepEqual(pageErrors(page), [], 'no uncaught script error');
        });
      });
  }
});

// tls.test.mjs - browsers over HTTPS ([gateway] tls_listen): headless
// Chromium loads the demo page from static_root over https://localhost
// (certificate from a locally generated CA, pinned in Chromium by its
// public key), with window.WebSocket removed; pollgate.js chats over SSE
// and over long-poll, and sockjs-client (xhr-streaming) round-trips through
// a SockJS route, all on the TLS listener.

import test from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';

import {
  cleanupGuard, launchBrowser, newPage, withLog, pageErrors, startDemoUpstream, WWW_DIR, SOCKJS_MIN_JS,
} from './browser_lib.mjs';
import { startGateway, freePort } from '../integration/bridge_lib.mjs';
import { makeCerts, tmpDir } from '../integration/lib.mjs';

/** base64 SHA-256 of the certificate's public key, as Chromium's
 * --ignore-certificate-errors-spki-list wants it. */
function spkiHash(pemFile) {
  const cert = new crypto.X509Certificate(fs.readFileSync(pemFile));
  const der = cert.publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(der).digest('base64');
}

test('Chromium over HTTPS: pollgate.js (SSE, long-poll) and sockjs-client (xhr-streaming)', { timeout: 120000 }, async (t) => {
  const g = cleanupGuard(t);
  const dir = tmpDir(g, 'pollgate-tls-browser-');
  const certs = await makeCerts(dir);
  const demo = await startDemoUpstream(g);
  const tlsPort = await freePort();
  await startGateway(g, {
    gateway: {
      static_root: WWW_DIR, max_body: '1MiB',
      tls_listen: `127.0.0.1:${tlsPort}`, tls_cert_file: certs.server.cert, tls_key_file: certs.server.key,
    },
    session: { poll_timeout: '5s', heartbeat: '2s', idle_timeout: '30s' },
    routes: [
      { name: 'chat', path: '/chat', upstream: demo.url('/chat') },
      { name: 'sj', path: '/sj', upstream: demo.url('/chat'), extra: { sockjs: 'on', disconnect_delay: '5s' } },
    ],
  });
  const origin = `https://localhost:${tlsPort}`;
  const browser = await launchBrowser(g, [`--ignore-certificate-errors-spki-list=${spkiHash(certs.server.cert)}`]);

  for (const mode of ['sse', 'poll']) {
    await t.test(`pollgate.js over ${mode}`, { timeout: 40000 }, async (st) => {
      const page = await newPage(browser, st, { noEventSource: mode === 'poll' });
      await withLog(page, async () => {
        const res = await page.goto(`${origin}/`, { timeout: 10000 });
        assert.equal(res.status(), 200);
        assert.equal(new URL(page.url()).protocol, 'https:');
        assert.equal(await page.evaluate(() => window.isSecureContext), true);
        await page.waitForFunction(() => window.chat && window.chat.state === 'open', null, { timeout: 10000 });
        assert.equal(await page.evaluate(() => typeof window.WebSocket), 'undefined');
        assert.equal(await page.evaluate(() => window.chat.transport), mode);
        const text = `over TLS via ${mode} ✓`;
        await page.fill('#input', text);
        await page.click('#send');
        await page.waitForFunction((want) => Array.prototype.some.call(
          document.querySelectorAll('#messages .msg .text'), (e) => e.textContent === want), text, { timeout: 10000 });
        assert.deepEqual(pageErrors(page), []);
      });
    });
  }

  await t.test('sockjs-client over xhr-streaming', { timeout: 40000 }, async (st) => {
    const page = await newPage(browser, st);
    await withLog(page, async () => {
      await page.goto(`${origin}/`, { timeout: 10000 });
      await page.addScriptTag({ path: SOCKJS_MIN_JS });
      await page.evaluate((url) => {
        window.sj = { open: false, messages: [], close: null, transport: null };
        const sock = new window.SockJS(url, null, { transports: ['xhr-streaming'] });
        window.sj.sock = sock;
        sock.onopen = () => { window.sj.open = true; window.sj.transport = sock.transport; };
        sock.onmessage = (e) => window.sj.messages.push(e.data);
        sock.onclose = (e) => { window.sj.close = { code: e.code, reason: e.reason }; };
      }, `${origin}/sj/sockjs`);
      await page.waitForFunction(() => window.sj.open || window.sj.close, null, { timeout: 15000 });
      const s = await page.evaluate(() => ({ open: window.sj.open, transport: window.sj.transport, close: window.sj.close }));
      assert.ok(s.open, `SockJS did not open: ${JSON.stringify(s.close)}`);
      assert.equal(s.transport, 'xhr-streaming');
      await page.evaluate(() => window.sj.sock.send('hello through TLS'));
      await page.waitForFunction(() => window.sj.messages.some((m) => m.includes('hello through TLS')), null, { timeout: 10000 });
      const got = await page.evaluate(() => window.sj.messages);
      assert.ok(got.some((m) => JSON.parse(m).text === 'hello through TLS'), JSON.stringify(got));
    });
  });
});

// request_timeout: a browser connection that sends half a request, or idles
// on keep-alive, is closed after request_timeout; a held poll is not.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startUpstream, startGateway, Api } from './bridge_lib.mjs';

/** Connect, write text, resolve with ms until the server closed (or null). */
function closedAfter(port, text, limitMs) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1', () => s.write(text));
    const done = (v) => { clearTimeout(timer); s.destroy(); resolve(v); };
    s.on('data', () => {});
    s.on('close', () => done(Date.now() - t0));
    s.on('error', () => {});
    const timer = setTimeout(() => done(null), limitMs);
  });
}

describe('bridge: request_timeout', () => {
  test('half a request and an idle keep-alive connection are closed; a held poll is not', async (t) => {
    const up = await startUpstream(t);
    const gw = await startGateway(t, {
      gateway: { request_timeout: '1s' },
      session: { poll_timeout: '3s' },
      routes: [{ up }],
    });
    const half = closedAfter(gw.port, 'GET /health HTTP/1.1\r\nHost: x\r\n', 5000);
    const idle = closedAfter(gw.port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n', 5000);
    const [h, i] = await Promise.all([half, idle]);
    assert.ok(h !== null && h >= 900 && h < 4000, `half request closed after ${h} ms`);
    assert.ok(i !== null && i >= 900 && i < 4000, `idle keep-alive closed after ${i} ms`);

    // A poll held for poll_timeout (3 s) outlives request_timeout (1 s).
    const api = new Api(gw);
    const id = await api.openOk();
    const t0 = Date.now();
    const r = await api.poll(id, 0, { timeoutMs: 8000 });
    assert.equal(r.status, 200, `held poll: ${r.status} ${r.text}`);
    assert.deepEqual(r.json.messages, []);
    assert.ok(Date.now() - t0 >= 2500, 'the poll was held for poll_timeout');
  });
});

// bridge_lifecycle.test.mjs - how sessions end and fail to start: browser
// close (DELETE, POST close), idle timeout, upstream close seen over poll,
// 410 then 404, upstream down / refusing / silent / breaking.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import {
  bridge, startGateway, startSilent, Api, show, assertError, freePort,
  sleep, withTimeout, openEvents, sseData,
} from './bridge_lib.mjs';
import { listen, trackSockets } from './lib.mjs';

/** Poll `id` until it answers 404 (bounded); returns the statuses seen. */
async function untilUnknown(api, id, ms) {
  const t0 = Date.now();
  const statuses = [];
  while (Date.now() - t0 < ms) {
    const r = await api.poll(id, 0);
    statuses.push(r.status);
    if (r.status === 404) {
      assertError(r, 404, 'unknown_session');
      return { statuses, ms: Date.now() - t0 };
    }
    assert.equal(r.status, 410, `before 404 only 410 is expected: ${show(r)}`);
    await sleep(250);
  }
  throw new Error(`still not 404 after ${ms} ms: ${statuses.join(',')}`);
}

describe('bridge: session lifecycle', { concurrency: 4, timeout: 150000 }, () => {
  it('DELETE → 204, upstream gets close 1000; then 410 session_closed, later 404', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const tClose = Date.now();
    const r = await api.del(id);
    assert.equal(r.status, 204, show(r));
    assert.equal(r.body.length, 0);
    const cl = await c.waitClose(5000);
    assert.equal(cl.code, 1000, JSON.stringify(cl));
    const g = await api.poll(id, 0);
    const j = assertError(g, 410, 'session_closed');
    assert.equal(typeof j.code, 'number', show(g));
    assert.ok('reason' in j, show(g));
    assertError(await api.send(id, ['late'], 1), 410, 'session_closed');
    await untilUnknown(api, id, 9000);
    const lasted = Date.now() - tClose;
    assert.ok(lasted >= 2500 && lasted <= 8000, `410 lasted ${lasted} ms (should be about idle_timeout = 3 s)`);
    assert.equal(c.messages.length, 0, 'nothing was forwarded after the close');
  });

  it('POST close → 204, upstream gets close 1000', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const r = await api.closePost(id);
    assert.equal(r.status, 204, show(r));
    const cl = await c.waitClose(5000);
    assert.equal(cl.code, 1000, JSON.stringify(cl));
    assertError(await api.poll(id, 0), 410, 'session_closed');
  });

  it('DELETE while a poll is held: the held poll completes and the upstream gets 1000', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const held = api.poll(id, 0);
    await sleep(300);
    const r = await api.del(id);
    assert.equal(r.status, 204, show(r));
    const h = await withTimeout(held, 3000, 'held poll completes on DELETE');
    assert.ok([200, 410].includes(h.status), `held poll after DELETE: ${show(h)}`);
    assert.equal((await c.waitClose(5000)).code, 1000);
  });

  it('idle timeout: no request for idle_timeout → upstream closed with 1001, session 410 then 404', async (t) => {
    const { up, api } = await bridge(t);
    const t0 = Date.now();
    const id = await api.openOk();
    const c = await up.conn(0);
    const cl = await c.waitClose(8000);
    const dt = Date.now() - t0;
    assert.equal(cl.code, 1001, JSON.stringify(cl));
    assert.ok(dt >= 2500 && dt <= 6500, `idle close after ${dt} ms (idle_timeout 3 s)`);
    const g = await api.poll(id, 0);
    const j = assertError(g, 410, 'session_closed');
    assert.equal(j.code, 1001, show(g));
    await untilUnknown(api, id, 9000);
  });

  it('idle timeout is not hit while polls keep coming (held polls count as attached)', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const t0 = Date.now();
    // ~4.5 s of back-to-back held polls (each ~2 s) > idle_timeout 3 s
    while (Date.now() - t0 < 4500) {
      const p = await api.pollOk(id, 0);
      assert.deepEqual(p.messages, []);
    }
    assert.equal(c.close, null, `upstream closed while the browser was polling: ${JSON.stringify(c.close)}`);
    await c.send('still here');
    const p = await api.pollOk(id, 0);
    assert.deepEqual(p.messages, [{ seq: 1, text: 'still here' }]);
    // now stop polling: idle close follows
    const cl = await c.waitClose(8000);
    assert.equal(cl.code, 1001);
  });

  it('max_lifetime ends a busy session: upstream closed, the browser gets close then 410', async (t) => {
    const { up, api } = await bridge(t, { session: { max_lifetime: '2s' } });
    const t0 = Date.now();
    const id = await api.openOk();
    const c = await up.conn(0);
    const s = await openEvents(t, api.eventsUrl(id));
    assert.equal(s.status, 200, s.body);
    const cl = await c.waitClose(8000);
    const dt = Date.now() - t0;
    assert.ok(dt >= 1500 && dt <= 5000, `lifetime close after ${dt} ms (max_lifetime 2 s)`);
    assert.ok(cl.code >= 1000 && cl.code !== 1006, `clean close frame expected: ${JSON.stringify(cl)}`);
    await s.waitFor((st) => st.events().some((e) => e.event === 'close'), 3000, 'close event');
    const data = sseData(s.events().find((e) => e.event === 'close'));
    assert.equal(data.code, cl.code, 'the browser learns the same close code');
    await withTimeout(s.ended, 3000, 'stream ends');
    const g = await api.poll(id, 0);
    const j = assertError(g, 410, 'session_closed');
    assert.equal(j.code, cl.code, show(g));
  });

  it('upstream close code and reason reach the browser over poll ("closed"), after the last message', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    await c.send('last words');
    await c.closeWith(4001, 'bye bye');
    const { messages, last } = await api.pollUntil(id, (_, l) => !!l.closed, { ms: 8000 }).catch((e) => { throw e; });
    assert.deepEqual(messages, [{ seq: 1, text: 'last words' }]);
    assert.deepEqual(last.closed, { code: 4001, reason: 'bye bye' });
    const g = await api.poll(id, 1);
    const j = assertError(g, 410, 'session_closed');
    assert.equal(j.code, 4001, show(g));
    assert.equal(j.reason, 'bye bye', show(g));
    await untilUnknown(api, id, 9000);
  });

  it('upstream close while a poll is held: the held poll gets "closed" at once', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const held = api.pollOk(id, 0);
    await sleep(300);
    const t1 = Date.now();
    c.closeWith(1000, '');
    const r = await held;
    assert.ok(Date.now() - t1 < 1500, 'held poll answered promptly');
    assert.deepEqual(r.messages, []);
    assert.deepEqual(r.closed, { code: 1000, reason: '' }, JSON.stringify(r));
  });

  it('upstream closes right after the handshake: the first poll reports it', async (t) => {
    const { api } = await bridge(t, { up: { onConnection: (c) => c.ws.close(4400, 'not today') } });
    const r = await api.open();
    if (r.status === 201) {
      const { last } = await api.pollUntil(r.json.session, (_, l) => !!l.closed, { ms: 6000 });
      assert.deepEqual(last.closed, { code: 4400, reason: 'not today' });
    } else {
      // closing that early may also be reported as a failed open
      assertError(r, 502);
    }
  });

  it('upstream down (closed port) → 502', async (t) => {
    const port = await freePort();
    const gw = await startGateway(t, { routes: [{ upstream: `ws://127.0.0.1:${port}/chat` }] });
    const api = new Api(gw);
    t.after(() => api.destroy());
    const r = await api.open();
    assertError(r, 502);
    assert.ok(r.ms < 2500, `502 took ${r.ms} ms`);
  });

  it('upstream refuses the upgrade (403) → 502 naming the status; nothing left open', async (t) => {
    const { up, api } = await bridge(t, { up: { reject: () => 403 } });
    const r = await api.open();
    const j = assertError(r, 502);
    assert.match(j.message, /403/, `message should name the upstream status: ${show(r)}`);
    assert.equal(up.rejected.length, 1);
    const r2 = await api.open();
    assertError(r2, 502);
    assert.equal(up.rejected.length, 2);
  });

  it('upstream silent (TCP accepted, no handshake answer) → 504 after connect_timeout', async (t) => {
    const silent = await startSilent(t);
    const gw = await startGateway(t, { routes: [{ upstream: silent.url('/chat') }] });
    silent.reset(); // forget the start-up reachability check
    const api = new Api(gw);
    t.after(() => api.destroy());
    const r = await api.open();
    assertError(r, 504);
    assert.ok(r.ms >= 1700 && r.ms <= 6000, `504 after ${r.ms} ms (connect_timeout 2 s)`);
    assert.equal(silent.count, 1, 'the gateway connected to the silent upstream once');
  });

  it('upstream breaks (accepts, then resets) → 502', async (t) => {
    const server = trackSockets(net.createServer((s) => { s.on('error', () => {}); s.once('data', () => s.destroy()); }));
    const port = await listen(t, server);
    const gw = await startGateway(t, { routes: [{ upstream: `ws://127.0.0.1:${port}/chat` }] });
    const api = new Api(gw);
    t.after(() => api.destroy());
    const r = await api.open();
    assertError(r, 502);
  });

  it('upstream answers garbage instead of 101 → 502', async (t) => {
    const server = trackSockets(net.createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    }));
    const port = await listen(t, server);
    const gw = await startGateway(t, { routes: [{ upstream: `ws://127.0.0.1:${port}/chat` }] });
    const api = new Api(gw);
    t.after(() => api.destroy());
    const r = await api.open();
    const j = assertError(r, 502);
    assert.match(j.message, /200/, `message should name the upstream status: ${show(r)}`);
  });

  it('SIGTERM with live sessions and held polls exits 0 and closes the upstreams with 1001', async (t) => {
    const { up, gw, api } = await bridge(t);
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await api.openOk());
    const held = ids.map((id) => api.poll(id, 0).catch((e) => e));
    await sleep(300);
    await gw.stop();
    await Promise.all(held);
    // an orderly stop closes every upstream with a close frame: 1001 going away
    const codes = [];
    for (const c of up.conns) codes.push((await c.waitClose(3000)).code);
    assert.deepEqual(codes, [1001, 1001, 1001, 1001, 1001], 'upstream close codes on SIGTERM (1006 = no close frame)');
  });
});

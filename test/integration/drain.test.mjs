// drain.test.mjs - SIGTERM drains ([gateway] drain_timeout): the
// listening sockets (public and admin) are closed at once, so new
// connections are refused (or reach a successor on the same addresses:
// upgrade.test.mjs); on a connection already open new sessions are refused
// (native 503 + Retry-After, SockJS a close frame, both with Connection:
// close) and /health answers 503 draining; existing sessions of every kind
// keep working on their connections; at the end each browser gets the messages queued for it and then
// a close it can see (native `closed` / SSE `event: close` 1001 "going
// away", SockJS c[1001,"Server shutting down"] on the request it has open),
// each upstream gets 1001, and pollgate exits 0. A second signal cuts the
// drain short; a drain with no session left ends at once.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import {
  startUpstream, Api, openEvents, sseData, request, waitUntil, sleep, withTimeout,
} from './bridge_lib.mjs';
import { startSockjsGateway, sockjsRoute, httpReq, randomId } from './sockjs_lib.mjs';

async function gateway(t, drain) {
  const up = await startUpstream(t);
  const gw = await startSockjsGateway(t, {
    routes: [{ name: 'chat', path: '/chat', up }, sockjsRoute('sj', '/sj', up, { extra: { disconnect_delay: '30s' } })],
    ups: [up],
    gateway: { drain_timeout: drain },
    session: { idle_timeout: '60s', poll_timeout: '20s' },
  });
  const api = new Api(gw, '/chat');
  t.after(() => api.destroy());
  return { up, gw, api };
}

/** SIGTERM and wait until the drain has begun. */
async function sigterm(gw) {
  gw.proc.child.kill('SIGTERM');
  await waitUntil(() => /stopping: draining/.test(gw.stderr()), 10000, 'drain log line');
}

async function exited(gw, ms) {
  const r = await withTimeout(gw.proc.done, ms, 'pollgate exit');
  await gw.stop(); // asserts code 0, no signal, no sanitizer report
  return r;
}

describe('drain on SIGTERM', { timeout: 120000 }, () => {
  it('refuses new sessions, serves existing ones, then closes them visibly after their last messages', async (t) => {
    const { up, gw, api } = await gateway(t, '8s');
    const idA = await api.openOk();           // native long-poll
    const cA = await up.conn(0);
    const idB = await api.openOk();           // native SSE
    const cB = await up.conn(1);
    const sB = await openEvents(t, api.eventsUrl(idB));
    t.after(() => sB.destroy());
    const sj = gw.sockjs('/sj/sockjs').session();    // SockJS xhr polling
    await sj.open();
    const cC = await up.conn(2);

    // connections a browser already has open (keep-alive), one for each
    // kind of refused request below
    const kept = () => new http.Agent({ keepAlive: true, maxSockets: 1 });
    const [kNative, kOther, kSockjs, kAdmin] = [kept(), kept(), kept(), kept()];
    t.after(() => { kNative.destroy(); kOther.destroy(); kSockjs.destroy(); kAdmin.destroy(); });
    assert.equal((await api.poll('x'.repeat(22), 0, { agent: kNative })).status, 404);
    assert.equal((await api.poll('x'.repeat(22), 0, { agent: kOther })).status, 404);
    assert.equal((await httpReq(gw.port, 'GET', '/sj/sockjs/info', { agent: kSockjs })).status, 200);
    assert.equal((await request(gw.adminUrl('/health'), { agent: kAdmin })).status, 200);

    const t0 = Date.now();
    await sigterm(gw);
    // the listening sockets are closed: new connections are refused
    await waitUntil(() => (gw.stderr().match(/listening sockets closed/g) || []).length === 2, 10000, 'listeners closed');
    for (const url of [gw.url('/chat/sessions'), gw.adminUrl('/health')]) {
      await assert.rejects(request(url, { method: 'POST', agent: false }), (e) => e.code === 'ECONNREFUSED', url);
    }
    // new sessions on a connection already open: refused, with a hint to
    // come back, and the connection ends (the retry reaches a successor)
    const o = await api.open(undefined, { agent: kNative });
    assert.equal(o.status, 503, o.text);
    assert.equal(o.json.error, 'draining');
    assert.ok(o.headers['retry-after'], 'Retry-After on a refused open');
    assert.equal(o.headers.connection, 'close');
    // a session this process does not hold (most likely a successor's,
    // reached over an old connection): 503 draining, not 404, and the
    // connection ends, so the retry reaches the successor
    const u = await api.poll('x'.repeat(22), 0, { agent: kOther });
    assert.equal(u.status, 503, u.text);
    assert.equal(u.json.error, 'draining');
    assert.equal(u.headers.connection, 'close');
    const h = await request(gw.adminUrl('/health'), { agent: kAdmin });
    assert.equal(h.status, 503);
    assert.deepEqual(h.json, { status: 'draining' });
    const r2 = await httpReq(gw.port, 'POST', `/sj/sockjs/000/${randomId()}/xhr`, { agent: kSockjs, body: '' });
    assert.equal(r2.text, 'c[1001,"Server shutting down"]\n');
    assert.equal(r2.headers.connection, 'close');
    assert.equal(up.conns.length, 3, 'no upstream connection for a refused open');

    // existing sessions keep working in both directions
    await cA.send('a1');
    const p = await api.pollOk(idA, 0);
    assert.deepEqual(p.messages, [{ seq: 1, text: 'a1' }]);
    const s = await api.send(idA, ['to-up'], 1);
    assert.ok(s.status === 200 || s.status === 204, `send during the drain: ${s.status} ${s.text}`);
    await cA.waitMessages(1);
    assert.deepEqual(cA.texts(), ['to-up']);
    await cB.send('b1');
    await sB.waitMessages(1);
    await cC.send('c1');
    assert.equal((await sj.xhr()).text, 'a["c1"]\n');

    // sent before the end of the drain, not yet collected: delivered first
    await cA.send('a-last');
    await cB.send('b-last');
    await sleep(100);
    // SockJS: a request held open when the drain ends gets the close
    const heldC = sj.xhr({ timeoutMs: 20000 });
    await waitUntil(() => /drain: closing 3 sessions/.test(gw.stderr()), 20000, 'end of the drain')
      .catch((e) => { throw new Error(`${e.message}\n${gw.stderr().split('\n').filter((l) => /drain|stop|signal|session/.test(l)).join('\n')}`); });
    assert.ok(Date.now() - t0 >= 7000, `the drain lasted drain_timeout (${Date.now() - t0} ms)`);

    // (an xhr poll is also answered by a heartbeat: poll again until the close)
    const framesC = [(await heldC).text];
    while (!framesC[framesC.length - 1].startsWith('c') && framesC.length < 20) framesC.push((await sj.xhr()).text);
    assert.equal(framesC.pop(), 'c[1001,"Server shutting down"]\n');
    assert.ok(framesC.every((f) => f === 'h\n'), `only heartbeats before the close: ${framesC}`);
    const { messages, last } = await api.pollUntil(idA, (_, l) => !!l.closed, { ack: 1, ms: 8000 });
    assert.deepEqual(messages, [{ seq: 2, text: 'a-last' }]);
    assert.deepEqual(last.closed, { code: 1001, reason: 'going away' });
    await sB.waitFor((st) => st.events().some((e) => e.event === 'close'), 8000, 'SSE close event');
    const evs = sB.events();
    assert.deepEqual(sB.messageEvents().map(sseData), ['b1', 'b-last']);
    const close = evs.find((e) => e.event === 'close');
    assert.ok(evs.indexOf(close) > evs.indexOf(sB.messageEvents()[1]), 'close after the last message');
    assert.deepEqual(sseData(close), { code: 1001, reason: 'going away' });
    // a browser acknowledges the close it received (pollgate.js does): until
    // then the messages and the close stay replayable for a resumed stream
    const ackB = await api.ack(idB, 2);
    assert.ok(ackB.status === 200 || ackB.status === 204, `ack of the close: ${ackB.status} ${ackB.text}`);

    for (const c of [cA, cB, cC]) assert.equal((await c.waitClose(8000)).code, 1001);
    const r = await exited(gw, 15000);
    assert.equal(r.code, 0);
    assert.doesNotMatch(r.stderr, /did not collect its close/);
  });

  it('a second signal cuts the drain short', async (t) => {
    const { up, gw, api } = await gateway(t, '60s');
    const id = await api.openOk();
    const c = await up.conn(0);
    await sigterm(gw);
    await c.send('unread');
    await sleep(200);
    gw.proc.child.kill('SIGTERM');
    const r = await exited(gw, 20000);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /cutting the drain short/);
    // the browser never came back: reported, not silently dropped
    assert.match(r.stderr, /1 sessions whose browser did not collect its close: 1 queued messages not acknowledged, possibly lost/);
    assert.equal((await c.waitClose(5000)).code, 1001);
    assert.ok(id);
  });

  it('ends as soon as the last session is gone', async (t) => {
    const { up, gw, api } = await gateway(t, '60s');
    const id = await api.openOk();
    const c = await up.conn(0);
    await sigterm(gw);
    const t0 = Date.now();
    assert.equal((await api.del(id)).status, 204);
    assert.equal((await c.waitClose(5000)).code, 1000);
    await exited(gw, 20000);
    assert.ok(Date.now() - t0 < 20000);
  });
});

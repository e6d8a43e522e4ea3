// bridge_limits.test.mjs - session caps (503 + Retry-After) and the
// per-session buffer overflow policies: pause (upstream socket not drained,
// nothing lost), drop-oldest (lost range reported over poll and SSE), close
// (1008 "buffer overflow").

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import {
  bridge, Api, show, assertError, assertSeqs, openEvents, sseData, sleep, waitUntil, request,
} from './bridge_lib.mjs';

function assert503(r) {
  assertError(r, 503);
  assert.ok(r.headers['retry-after'] !== undefined, `503 without Retry-After: ${show(r)}`);
  assert.match(r.headers['retry-after'], /^\d+$/, show(r));
}

/** Is 127.0.0.2 usable as a source address (Linux loopback is 127/8)? */
async function have127002(port) {
  try {
    const agent = new http.Agent({ keepAlive: true, localAddress: '127.0.0.2' });
    try {
      await request(`http://127.0.0.1:${port}/health`, { localAddress: '127.0.0.2', agent, timeoutMs: 2000 });
    } finally {
      agent.destroy();
    }
    return true;
  } catch {
    return false;
  }
}

describe('bridge: limits and overflow', { concurrency: 3, timeout: 150000 }, () => {
  it('max_sessions = 2: the third open → 503 + Retry-After, no upstream connection; room again after a close', async (t) => {
    const { up, api } = await bridge(t, { session: { max_sessions: '2' } });
    const a = await api.openOk();
    await api.openOk();
    const r = await api.open();
    assert503(r);
    assert.equal(up.upgradeCount, 2, 'a refused session must not open an upstream connection');
    assert.equal((await api.del(a)).status, 204);
    await up.conns[0].waitClose(5000);
    // the slot is free once the session is gone (allow the close to complete)
    let ok = null;
    for (let i = 0; i < 30 && !ok; i++) {
      const r2 = await api.open();
      if (r2.status === 201) ok = r2;
      else { assert503(r2); await sleep(100); }
    }
    assert.ok(ok, 'no room after closing a session');
  });

  it('max_sessions_per_client = 1: a second open from the same address → 503 + Retry-After', async (t) => {
    const { up, gw, api } = await bridge(t, { session: { max_sessions_per_client: '1' } });
    await api.openOk();
    const r = await api.open();
    assert503(r);
    // X-Forwarded-For from the browser is not the client address
    const r2 = await api.open(undefined, { headers: { 'x-forwarded-for': '198.51.100.9' } });
    assert503(r2);
    assert.equal(up.upgradeCount, 1);
    if (await have127002(gw.port)) {
      const other = new Api(gw, '/chat', { localAddress: '127.0.0.2' });
      t.after(() => other.destroy());
      const r3 = await other.open();
      assert.equal(r3.status, 201, `another client address has its own quota: ${show(r3)}`);
    } else {
      t.diagnostic('127.0.0.2 not usable as a source address: second-client check skipped');
    }
  });

  it('overflow = pause: a browser that does not poll stalls the upstream socket; nothing is lost', async (t) => {
    const { up, api } = await bridge(t, {
      session: { buffer_bytes: '1MiB', buffer_messages: '10000', overflow: 'pause' },
    });
    const id = await api.openOk();
    const c = await up.conn(0);
    const SIZE = 16 * 1024;
    const pad = 'p'.repeat(SIZE);
    const HIGH = 2 * 1024 * 1024;
    // push until 2 MB sit unsent in the upstream's own socket buffer (at least 5 MB)
    let n = 0;
    while ((c.bufferedAmount < HIGH || n * SIZE < 5e6) && n * SIZE < 96e6) {
      n++;
      c.ws.send(`${n}:${pad}`);
      if (n % 64 === 0) await new Promise((r) => setImmediate(r));
    }
    t.diagnostic(`pushed ${n} messages (${(n * SIZE / 1e6).toFixed(1)} MB), bufferedAmount ${c.bufferedAmount}`);
    assert.ok(c.bufferedAmount >= HIGH, `the upstream socket keeps draining (${(n * SIZE / 1e6).toFixed(1)} MB pushed, bufferedAmount ${c.bufferedAmount}): the gateway did not stop reading`);
    const b1 = c.bufferedAmount;
    await sleep(1000); // observe that nothing drains while the browser stays away
    const b2 = c.bufferedAmount;
    assert.ok(b2 >= b1 - 256 * 1024, `the upstream socket drained from ${b1} to ${b2} bytes while the browser did not poll`);
    assert.equal(c.close, null, 'pause must not close the session');
    // now the browser polls everything: all n messages, in order, none lost
    let ack = 0;
    let got = 0;
    const t0 = Date.now();
    while (got < n) {
      if (Date.now() - t0 > 60000) assert.fail(`only ${got} of ${n} messages after 60 s`);
      const p = await api.pollOk(id, ack);
      assert.ok(!p.lost, `pause must not lose messages: lost=${JSON.stringify(p.lost)}`);
      assert.ok(!p.closed, `closed: ${JSON.stringify(p.closed)}`);
      for (const m of p.messages) {
        got++;
        if (m.seq !== got) assert.fail(`seq ${m.seq}, want ${got}`);
        const head = m.text.slice(0, m.text.indexOf(':'));
        if (head !== String(got) || m.text.length !== head.length + 1 + SIZE) assert.fail(`message ${got} is ${m.text.slice(0, 20)}... (${m.text.length} chars)`);
      }
      if (p.messages.length) ack = p.messages[p.messages.length - 1].seq;
    }
    assert.equal(got, n);
    await waitUntil(() => c.bufferedAmount === 0, 10000, 'upstream socket drained after the browser caught up');
  });

  it('overflow = drop-oldest: the oldest are dropped and reported as lost (relative to the ack) over poll and SSE', async (t) => {
    const { up, api } = await bridge(t, { session: { buffer_messages: '10', overflow: 'drop-oldest' } });
    const id = await api.openOk();
    const c = await up.conn(0);
    const texts = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => `m${from + i}`);
    // stage 1: 15 messages into a 10-message buffer
    await c.sendAll(texts(1, 15));
    const s1 = await api.pollUntil(id, (_, l) => l.messages.some((m) => m.seq === 15), { acking: false, ms: 8000 });
    assert.deepEqual(s1.last.messages.map((m) => m.text), texts(6, 15));
    assertSeqs(s1.last.messages, 6);
    assert.ok(s1.last.lost, `no lost range: ${JSON.stringify(s1.last)}`);
    assert.equal(c.close, null, 'drop-oldest must not close the session');
    // that response is "lost" on its way: polling again with the same ack
    // must say again that 1..5 are gone
    const again = await api.pollOk(id, 0);
    assert.deepEqual(again.messages.map((m) => m.seq), [6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    assert.deepEqual(again.lost, { from: 1, to: 5 }, `repeated poll with ack=0: ${JSON.stringify(again)}`);

    // stage 2: 5 more evict 6..10; a browser still at ack=0 has lost 1..10
    await c.sendAll(texts(16, 20));
    const s2 = await api.pollUntil(id, (_, l) => l.messages.some((m) => m.seq === 20), { acking: false, ms: 8000 });
    assert.deepEqual(s2.last.messages.map((m) => m.text), texts(11, 20));
    assert.deepEqual(s2.last.lost, { from: 1, to: 10 },
      `a poll with ack=0 answered with seq 11..20 must report lost 1..10: ${JSON.stringify(s2.last)}`);

    // SSE resume from before the oldest kept message: event lost, then the rest
    const s = await openEvents(t, api.eventsUrl(id), { headers: { 'last-event-id': '0' } });
    assert.equal(s.status, 200, s.body);
    await s.waitMessages(10);
    const evs = s.events();
    const lostIdx = evs.findIndex((e) => e.event === 'lost');
    assert.ok(lostIdx >= 0, `no lost event: ${JSON.stringify(evs.map((e) => e.raw))}`);
    assert.deepEqual(sseData(evs[lostIdx]), { from: 1, to: 10 });
    const firstMsg = evs.findIndex((e) => e.event === 'message');
    assert.ok(lostIdx < firstMsg, 'lost is reported before the kept messages');
    assert.deepEqual(s.messageEvents().map((e) => [e.id, sseData(e)]), texts(11, 20).map((x, i) => [String(11 + i), x]));
    s.destroy();

    // a browser that acked past the loss sees no lost range
    const p = await api.pollOk(id, 15);
    assert.deepEqual(p.messages.map((m) => m.seq), [16, 17, 18, 19, 20]);
    assert.ok(!('lost' in p), `no lost after ack=15: ${JSON.stringify(p)}`);
  });

  it('overflow = close: the session ends with 1008 "buffer overflow"', async (t) => {
    const { up, api } = await bridge(t, { session: { buffer_messages: '10', overflow: 'close' } });
    const id = await api.openOk();
    const c = await up.conn(0);
    await Promise.allSettled(Array.from({ length: 30 }, (_, i) => c.send(`m${i + 1}`)));
    const cl = await c.waitClose(5000);
    assert.equal(cl.code, 1008, `upstream close: ${JSON.stringify(cl)}`);
    assert.equal(cl.reason, 'buffer overflow', `upstream close: ${JSON.stringify(cl)}`);
    // the browser learns it: a poll with "closed" 1008, or 410 with code 1008
    let ack = 0;
    for (let i = 0; i < 10; i++) {
      const r = await api.poll(id, ack);
      if (r.status === 410) {
        const j = assertError(r, 410, 'session_closed');
        assert.equal(j.code, 1008, show(r));
        assert.equal(j.reason, 'buffer overflow', show(r));
        return;
      }
      assert.equal(r.status, 200, show(r));
      if (r.json.closed) {
        assert.deepEqual(r.json.closed, { code: 1008, reason: 'buffer overflow' });
        return;
      }
      if (r.json.messages.length) ack = r.json.messages[r.json.messages.length - 1].seq;
    }
    assert.fail('the browser never learned about the overflow close');
  });

  it('overflow by bytes (buffer_bytes) with drop-oldest reports a lost range', async (t) => {
    const { up, api } = await bridge(t, { session: { buffer_bytes: '64KiB', overflow: 'drop-oldest' } });
    const id = await api.openOk();
    const c = await up.conn(0);
    const pad = 'b'.repeat(8 * 1024);
    await c.sendAll(Array.from({ length: 40 }, (_, i) => `${i + 1}:${pad}`));
    await api.pollUntil(id, (_, l) => l.messages.some((m) => m.seq === 40), { acking: false, ms: 8000 });
    const last = await api.pollOk(id, 0); // everything has arrived: one more look
    assert.ok(last.lost, `no lost range after 320 KB into a 64 KiB buffer: ${JSON.stringify(last).slice(0, 300)}`);
    assert.equal(last.lost.from, 1);
    assert.equal(last.lost.to + 1, last.messages[0].seq, 'lost range ends right before the first kept message');
    assertSeqs(last.messages, last.lost.to + 1);
    const kept = last.messages.reduce((a, m) => a + m.text.length, 0);
    assert.ok(kept <= 64 * 1024, `kept ${kept} bytes in a 64 KiB buffer`);
  });
});

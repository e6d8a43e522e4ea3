// bridge_load.test.mjs - many concurrent sessions: 1,000 long-poll sessions
// and 300 SSE sessions, each receiving its own numbered stream from its own
// upstream connection, with no loss, duplication, reordering or cross-talk.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { bridge, show, openEvents, sseData, withTimeout, ID_RE } from './bridge_lib.mjs';

const PER = 20;

/** Upstream behaviour: every connection k sends "k:0".."k:19" (half now, half a bit later). */
function numbered(c) {
  for (let i = 0; i < PER / 2; i++) c.ws.send(`${c.index}:${i}`);
  setTimeout(() => {
    if (c.ws.readyState !== 1) return;
    for (let i = PER / 2; i < PER; i++) c.ws.send(`${c.index}:${i}`);
  }, 150 + (c.index % 7) * 50);
}

/** Check one session's stream; returns its connection index. */
function checkStream(texts, seqs, what) {
  assert.equal(texts.length, PER, `${what}: ${texts.length} messages`);
  const k = texts[0].split(':')[0];
  const want = Array.from({ length: PER }, (_, i) => `${k}:${i}`);
  assert.deepEqual(texts, want, `${what}: stream out of order, duplicated or mixed`);
  assert.deepEqual(seqs, Array.from({ length: PER }, (_, i) => i + 1), `${what}: seqs`);
  return Number(k);
}

async function pool(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }));
  return out;
}

describe('bridge: load', { concurrency: 1, timeout: 170000 }, () => {
  it('1,000 concurrent long-poll sessions, 20 numbered messages each, plus one send each', async (t) => {
    const N = 1000;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 200 });
    t.after(() => agent.destroy());
    const { up, api } = await bridge(t, {
      // sessions wait for their first poll until all are open: no idle close meanwhile
      session: { max_sessions_per_client: '100000', idle_timeout: '60s' },
      // the upstream lives in this busy test process: give its handshakes time
      upstream: { connect_timeout: '10s' },
      up: { onConnection: numbered },
      api: { agent },
    });
    const t0 = Date.now();
    const ids = await pool(Array.from({ length: N }), 100, async () => {
      const r = await api.open(undefined, { timeoutMs: 30000 });
      if (r.status !== 201) assert.fail(`open: ${show(r)}`);
      assert.match(r.json.session, ID_RE);
      return r.json.session;
    });
    assert.equal(new Set(ids).size, N, 'session ids unique');
    assert.equal(up.conns.length, N);
    const tOpen = Date.now() - t0;

    const seen = await pool(ids, 400, async (id) => {
      let ack = 0;
      const texts = [];
      const seqs = [];
      const deadline = Date.now() + 60000;
      while (texts.length < PER) {
        if (Date.now() > deadline) assert.fail(`session ${id}: only ${texts.length} messages after 60 s`);
        const r = await api.poll(id, ack, { timeoutMs: 30000 });
        if (r.status !== 200) assert.fail(`poll: ${show(r)}`);
        for (const m of r.json.messages) { texts.push(m.text); seqs.push(m.seq); }
        if (r.json.messages.length) ack = r.json.messages[r.json.messages.length - 1].seq;
        if (texts.length > PER) break;
      }
      const k = checkStream(texts, seqs, `session ${id}`);
      // talk back: the message must reach this session's own upstream connection only
      const s = await api.send(id, [`from ${k}`], 1, { timeoutMs: 30000 });
      if (s.status !== 200) assert.fail(`send: ${show(s)}`);
      return k;
    });
    assert.equal(new Set(seen).size, N, 'every session got a different upstream stream');
    const tPoll = Date.now() - t0 - tOpen;

    for (const c of up.conns) await c.waitMessages(1, 20000);
    for (const c of up.conns) assert.deepEqual(c.texts(), [`from ${c.index}`], `upstream ${c.index}`);

    await pool(ids, 200, async (id) => {
      const r = await api.del(id, { timeoutMs: 30000 });
      if (r.status !== 204) assert.fail(`delete: ${show(r)}`);
    });
    const codes = await Promise.all(up.conns.map((c) => c.waitClose(20000).then((x) => x.code)));
    assert.deepEqual([...new Set(codes)], [1000]);
    t.diagnostic(`1000 sessions: open ${tOpen} ms, 20 msgs each ${tPoll} ms, total ${Date.now() - t0} ms`);
  });

  it('300 concurrent SSE sessions, 20 numbered messages each; SIGTERM with all streams open exits 0', async (t) => {
    const N = 300;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 100 });
    t.after(() => agent.destroy());
    const { up, gw, api } = await bridge(t, {
      // sessions wait for their first poll until all are open: no idle close meanwhile
      session: { max_sessions_per_client: '100000', idle_timeout: '60s' },
      // 300 streams from one address: over the default connection limit per client
      gateway: { max_connections_per_client: '0' },
      // the upstream lives in this busy test process: give its handshakes time
      upstream: { connect_timeout: '10s' },
      up: { onConnection: numbered },
      api: { agent },
    });
    const t0 = Date.now();
    const ids = await pool(Array.from({ length: N }), 100, () => api.openOk(undefined, { timeoutMs: 30000 }));
    const streams = await pool(ids, 100, (id) => openEvents(t, api.eventsUrl(id), { timeoutMs: 20000 }));
    for (const s of streams) assert.equal(s.status, 200, s.body);
    await Promise.all(streams.map((s) => s.waitMessages(PER, 60000)));
    t.diagnostic(`300 SSE sessions: ${Date.now() - t0} ms`);
    // stop with every stream open; once the streams have ended, nothing more
    // can arrive: then each must hold exactly its own 20 messages
    await gw.stop();
    await withTimeout(Promise.all(streams.map((s) => s.ended)), 10000, 'SSE streams end on SIGTERM');
    const ks = streams.map((s, i) => {
      const evs = s.messageEvents();
      return checkStream(evs.map(sseData), evs.map((e) => Number(e.id)), `SSE session ${ids[i]}`);
    });
    assert.equal(new Set(ks).size, N);
    await Promise.all(up.conns.map((c) => c.waitClose(5000)));
  });
});

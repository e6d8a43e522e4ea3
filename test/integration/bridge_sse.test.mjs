// bridge_sse.test.mjs - pollgate protocol v1, Server-Sent Events: format,
// retry and heartbeat, resume with Last-Event-ID / ?last_event_id with no gap
// and no duplicate, replaced streams, close and binary events.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  bridge, show, assertCommonHeaders, assertError, openEvents, sseData, withTimeout,
} from './bridge_lib.mjs';

const ev = (s, what = 'message') => s.events().filter((e) => e.event === what);

describe('bridge: SSE', { concurrency: 4, timeout: 150000 }, () => {
  it('delivery: retry first, then id/event/data per message (text and binary), one data line', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const s = await openEvents(t, api.eventsUrl(id));
    assert.equal(s.status, 200, s.body);
    assert.match(s.headers['content-type'] || '', /^text\/event-stream/, JSON.stringify(s.headers));
    assertCommonHeaders({ ...s, text: '', method: 'GET' });
    // retry: comes first (a padding comment before it is fine)
    await s.waitFor((st) => st.items.some((i) => i.type !== 'comment'), 3000, 'first SSE field');
    const first = s.items.find((i) => i.type !== 'comment');
    assert.equal(first.type, 'retry', `the stream must start with retry: (got ${JSON.stringify(first)})`);
    assert.match(first.value, /^\d+$/);
    const bin = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x80]);
    await c.send('one');
    await c.send('two');
    await c.send(bin, true);
    await s.waitMessages(3);
    const m = s.messageEvents();
    assert.deepEqual(m.map((e) => e.id), ['1', '2', '3']);
    assert.deepEqual(m.map((e) => e.event), ['message', 'message', 'binary']);
    assert.equal(sseData(m[0]), 'one');
    assert.equal(sseData(m[1]), 'two');
    const b64 = sseData(m[2]);
    assert.equal(typeof b64, 'string');
    assert.deepEqual(Buffer.from(b64, 'base64'), bin);
    for (const e of m) {
      assert.deepEqual([...e.fields].sort(), ['data', 'event', 'id'], `fields of ${JSON.stringify(e.raw)}`);
      assert.equal(typeof sseData(e), 'string', `data must be a JSON string: ${JSON.stringify(e.raw)}`);
    }
    assert.equal(s.items.filter((i) => i.type === 'retry').length, 1, 'retry: only once');
  });

  it('heartbeat: a comment line about every second while idle', async (t) => {
    const { api } = await bridge(t);
    const id = await api.openOk();
    const s = await openEvents(t, api.eventsUrl(id));
    assert.equal(s.status, 200, s.body);
    // comments after the retry: field (a padding comment before it does not count)
    const beats = (st) => {
      const i = st.items.findIndex((x) => x.type === 'retry');
      return i < 0 ? 0 : st.items.slice(i + 1).filter((x) => x.type === 'comment').length;
    };
    const t0 = Date.now();
    await s.waitFor((st) => beats(st) >= 3, 6000, '3 heartbeat comments');
    const dt = Date.now() - t0;
    assert.ok(dt >= 1800, `3 heartbeats within ${dt} ms (heartbeat 1 s)`);
    assert.equal(s.done, false, 'stream must stay open');
  });

  it('resume with Last-Event-ID after a dropped stream: no gap, no duplicate; it acks', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const N = 200;
    const s1 = await openEvents(t, api.eventsUrl(id));
    const first = [];
    for (let i = 1; i <= 60; i++) first.push(c.send(`msg ${i}`));
    await Promise.all(first);
    await s1.waitMessages(20);
    s1.destroy();
    // keep only what the browser 'processed': the rest was written but is lost with the stream
    const got1 = s1.messageEvents().slice(0, 20).map((e) => [Number(e.id), sseData(e)]);
    // the upstream keeps pushing while the browser is away
    const sends = [];
    for (let i = 61; i <= N; i++) sends.push(c.send(`msg ${i}`));
    await Promise.all(sends);
    const lastId = got1[got1.length - 1][0];
    const s2 = await openEvents(t, api.eventsUrl(id), { headers: { 'last-event-id': String(lastId) } });
    assert.equal(s2.status, 200, s2.body);
    await s2.waitFor((st) => st.messageEvents().some((e) => e.id === String(N)), 10000, `event id ${N}`);
    const got2 = s2.messageEvents().map((e) => [Number(e.id), sseData(e)]);
    const all = [...got1, ...got2];
    assert.deepEqual(all.map((x) => x[0]), Array.from({ length: N }, (_, i) => i + 1), 'ids 1..N exactly once, in order');
    assert.deepEqual(all.map((x) => x[1]), Array.from({ length: N }, (_, i) => `msg ${i + 1}`));
    assert.ok(!s2.events().some((e) => e.event === 'lost'), 'nothing may be reported lost');
    s2.destroy();
    // Last-Event-ID acked everything <= lastId: a poll without ack starts after it
    const p = await api.pollOk(id);
    assert.equal(p.messages[0]?.seq, lastId + 1, `poll after resume from ${lastId}: ${JSON.stringify(p.messages.slice(0, 2))}`);
    assert.equal(p.messages[p.messages.length - 1].seq, N);
  });

  it('resume with ?last_event_id= works the same and acks', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    await c.sendAll(['a', 'b', 'c', 'd', 'e']);
    const s1 = await openEvents(t, api.eventsUrl(id));
    await s1.waitMessages(5);
    s1.destroy();
    // the browser only processed up to id 2: resume from there, expect 3..5 again
    const s2 = await openEvents(t, api.eventsUrl(id, '?last_event_id=2'));
    await s2.waitMessages(3);
    assert.deepEqual(s2.messageEvents().map((e) => [e.id, sseData(e)]), [['3', 'c'], ['4', 'd'], ['5', 'e']]);
    s2.destroy();
    const s3 = await openEvents(t, api.eventsUrl(id, '?last_event_id=4'));
    await s3.waitMessages(1);
    assert.deepEqual(s3.messageEvents().map((e) => [e.id, sseData(e)]), [['5', 'e']]);
    await c.send('f');
    await s3.waitMessages(2);
    assert.deepEqual(s3.messageEvents().map((e) => e.id), ['5', '6']);
    s3.destroy();
    // ?last_event_id=4 acked 1..4; 5 and 6 were written but not acked
    const p = await api.pollOk(id);
    assert.deepEqual(p.messages.map((m) => [m.seq, m.text]), [[5, 'e'], [6, 'f']]);
  });

  it('a new events request replaces the attached stream: the old one ends', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const s1 = await openEvents(t, api.eventsUrl(id));
    await s1.waitFor((st) => st.items.some((i) => i.type === 'retry'), 3000, 'retry');
    const s2 = await openEvents(t, api.eventsUrl(id));
    await withTimeout(s1.ended, 3000, 'old SSE stream ends when replaced');
    await c.send('to the new one');
    await s2.waitMessages(1);
    assert.equal(sseData(s2.messageEvents()[0]), 'to the new one');
    assert.equal(s1.messageEvents().length, 0);
  });

  it('a poll replaces an SSE stream (stream ends) and an SSE stream replaces a held poll (empty batch)', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const s1 = await openEvents(t, api.eventsUrl(id));
    await s1.waitFor((st) => st.items.some((i) => i.type === 'retry'), 3000, 'retry');
    const held = api.pollOk(id, 0);
    await withTimeout(s1.ended, 3000, 'SSE stream ends when a poll replaces it');
    const s2 = await openEvents(t, api.eventsUrl(id));
    const r = await withTimeout(held, 3000, 'held poll completes when SSE replaces it');
    assert.deepEqual(r.messages, []);
    await c.send('x');
    await s2.waitMessages(1);
    assert.deepEqual(s2.messageEvents().map((e) => [e.id, sseData(e)]), [['1', 'x']]);
  });

  it('upstream close: event close with code and reason, then the response ends; then 410', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const s = await openEvents(t, api.eventsUrl(id));
    await c.send('before close');
    await s.waitMessages(1);
    c.closeWith(4001, 'going away now');
    await s.waitFor((st) => st.events().some((e) => e.event === 'close'), 5000, 'close event');
    const closeEv = ev(s, 'close');
    assert.equal(closeEv.length, 1);
    assert.deepEqual(sseData(closeEv[0]), { code: 4001, reason: 'going away now' });
    await withTimeout(s.ended, 3000, 'SSE response ends after the close event');
    const r = await api.poll(id, 1);
    const j = assertError(r, 410, 'session_closed');
    assert.equal(j.code, 4001, show(r));
    assert.equal(j.reason, 'going away now', show(r));
  });

  it('events for an unknown session → 404 JSON error', async (t) => {
    const { api } = await bridge(t);
    const s = await openEvents(t, api.eventsUrl('AAAAAAAAAAAAAAAAAAAAAA'));
    await s.ended;
    assertError({ status: s.status, headers: s.headers, json: s.json, text: s.body, method: 'GET', url: s.url }, 404, 'unknown_session');
  });
});

describe('bridge: SSE chunk framing of large events', { timeout: 120000 }, () => {
  it('a browser that pauses reading: large events of many sizes arrive chunk-framed, intact and in order', async (t) => {
    // Events are written straight to the socket with a chunk header built
    // by hand (hex size, no printf) while nothing is pending, through the
    // bufferevent otherwise. Sizes vary so the hex header takes every
    // digit; a wrong header or a lost tail would garble the stream.
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const s = await openEvents(t, api.eventsUrl(id));
    assert.equal(s.status, 200, s.body);
    await s.waitFor((st) => st.items.some((i) => i.type === 'retry'), 5000, 'retry:');
    s.res.pause();
    const N = 48;
    const texts = Array.from({ length: N }, (_, k) => `${k}:` + String.fromCharCode(97 + (k % 26)).repeat(k * k * 13 + (k % 7)));
    for (const m of texts) await c.send(m);
    await new Promise((r) => setTimeout(r, 1500));
    s.res.resume();
    await s.waitMessages(N, 60000);
    const m = s.messageEvents();
    assert.deepEqual(m.map((e) => e.id), texts.map((_, k) => String(k + 1)));
    m.forEach((e, k) => assert.equal(sseData(e), texts[k], `event ${k + 1} intact`));
    assert.equal(s.done, false, 'the stream is still open');
  });
});

// bridge_send.test.mjs - browser → upstream sends and payload fidelity:
// special characters and binary both ways over both transports, idempotent
// retries, order over 1,000 sends, 400 / 413 / 429.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  bridge, show, assertError, assertSeqs, openEvents, sseData, sleep,
} from './bridge_lib.mjs';
import { patternBytes } from './lib.mjs';

const SPECIAL = [
  'cr\rcr',
  'lf\nlf',
  'crlf\r\ncrlf',
  '\r\n\r\n',
  '\n\ndata: injected\nevent: close\nid: 99\n\n',
  'nul\u0000inside',
  '\u0000',
  'ls\u2028ps\u2029end',
  'emoji 😀 clef 𝄞 max \u{10FFFF}',
  'mixed\r\n\u2028\u0000😀\t\b\f\u001f\u007f',
  '"quotes" \\back\\slash </script> <!-- -->',
  '\u0080\u07ff\u0800\uffff é ü',
  ' leading space',
  ':colon first',
  '',
];

const hexOf = (s) => Buffer.from(s, 'utf8').toString('hex');

describe('bridge: send and payload fidelity', { concurrency: 4, timeout: 150000 }, () => {
  it('special payloads (CR, LF, CRLF, NUL, U+2028, 4-byte UTF-8) arrive byte-identical both ways, poll and SSE', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);

    // browser → upstream, JSON envelope (one batch)
    await api.sendOk(id, SPECIAL, 1);
    await c.waitMessages(SPECIAL.length);
    assert.deepEqual(c.messages.map((m) => m.data.toString('hex')), SPECIAL.map(hexOf), 'JSON send → upstream bytes');
    assert.ok(c.messages.every((m) => !m.binary), 'text frames');

    // browser → upstream, raw text/plain bodies (one message each)
    const raw = SPECIAL.filter((s) => s !== '');
    for (const s of raw) {
      const r = await api.sendBody(id, s, 'text/plain; charset=utf-8');
      assert.equal(r.status, 200, `text/plain send of ${JSON.stringify(s)}: ${show(r)}`);
    }
    await c.waitMessages(SPECIAL.length + raw.length);
    assert.deepEqual(c.messages.slice(SPECIAL.length).map((m) => m.data.toString('hex')), raw.map(hexOf), 'text/plain send → upstream bytes');

    // upstream → browser over poll
    await c.sendAll(SPECIAL);
    const { messages } = await api.pollUntil(id, (m) => m.length >= SPECIAL.length, { ms: 8000 });
    assert.deepEqual(messages.map((m) => hexOf(m.text)), SPECIAL.map(hexOf), 'upstream → poll bytes');
    assertSeqs(messages, 1);

    // upstream → browser over SSE
    const s = await openEvents(t, api.eventsUrl(id, `?last_event_id=${SPECIAL.length}`));
    assert.equal(s.status, 200, s.body);
    await c.sendAll(SPECIAL);
    await s.waitMessages(SPECIAL.length);
    const evs = s.messageEvents();
    assert.deepEqual(evs.map((e) => e.event), SPECIAL.map(() => 'message'));
    assert.deepEqual(evs.map((e) => e.id), SPECIAL.map((_, i) => String(SPECIAL.length + 1 + i)));
    assert.deepEqual(evs.map((e) => hexOf(sseData(e))), SPECIAL.map(hexOf), 'upstream → SSE bytes');
    // no payload may leak raw CR/LF/U+2028 into the stream
    assert.ok(!/\u2028|\u2029/.test(s.rawText), 'raw U+2028/2029 in the SSE stream (should be escaped)');
  });

  it('binary frames both ways as base64 (all byte values, empty, 40 KB)', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const blobs = [
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
      Buffer.alloc(0),
      Buffer.from([0]),
      patternBytes(40000, 7), // base64 + envelope stays under max_body = 64 KiB
    ];
    // browser → upstream
    await api.sendOk(id, blobs.map((b) => ({ binary: b.toString('base64') })), 1);
    await c.waitMessages(blobs.length);
    assert.ok(c.messages.every((m) => m.binary), 'binary frames upstream');
    assert.deepEqual(c.messages.map((m) => m.data.toString('hex')), blobs.map((b) => b.toString('hex')));
    // mixed batch: text then binary then text
    await api.sendOk(id, ['t1', { binary: 'AAEC' }, 't2'], 2);
    await c.waitMessages(blobs.length + 3);
    const mixed = c.messages.slice(blobs.length);
    assert.deepEqual(mixed.map((m) => [m.binary, m.data.toString('hex')]),
      [[false, hexOf('t1')], [true, '000102'], [false, hexOf('t2')]]);

    // upstream → poll
    await c.sendAll(blobs);
    await c.send('text after');
    const { messages } = await api.pollUntil(id, (m) => m.length >= blobs.length + 1, { ms: 8000 });
    assert.deepEqual(messages.slice(0, blobs.length).map((m) => Buffer.from(m.binary, 'base64').toString('hex')),
      blobs.map((b) => b.toString('hex')));
    assert.ok(messages.slice(0, blobs.length).every((m) => typeof m.binary === 'string' && !('text' in m)));
    assert.deepEqual(messages[blobs.length], { seq: blobs.length + 1, text: 'text after' });

    // upstream → SSE
    const s = await openEvents(t, api.eventsUrl(id, `?last_event_id=${blobs.length + 1}`));
    await c.sendAll(blobs);
    await s.waitMessages(blobs.length);
    const evs = s.messageEvents();
    assert.deepEqual(evs.map((e) => e.event), blobs.map(() => 'binary'));
    assert.deepEqual(evs.map((e) => Buffer.from(sseData(e), 'base64').toString('hex')), blobs.map((b) => b.toString('hex')));
  });

  it('idempotent send: the same seq twice is acked twice and forwarded once', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    await api.sendOk(id, ['once', 'twice?'], 1);
    await api.sendOk(id, ['once', 'twice?'], 1); // retry of a batch whose response was "lost"
    await api.sendOk(id, ['second batch'], 2);
    await api.sendOk(id, ['stale'], 1); // older than the highest applied: acked, not forwarded
    await api.sendOk(id, ['third batch'], 5); // gaps are fine, only "above highest" counts
    await api.sendOk(id, ['stale again'], 4);
    await api.sendOk(id, ['no seq'], undefined); // forwarded, ack null
    await c.waitMessages(5);
    // sentinel: once it arrived, everything before it has arrived too
    await api.sendOk(id, ['sentinel'], 6);
    await c.waitMessages(6);
    assert.deepEqual(c.texts(), ['once', 'twice?', 'second batch', 'third batch', 'no seq', 'sentinel']);
  });

  it('send order is preserved across 1,000 sequential sends (with and without seq)', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    for (let i = 1; i <= 1000; i++) {
      const r = await api.send(id, [`s${i}`], i);
      if (r.status !== 200 || r.json?.ack !== i) assert.fail(`send #${i}: ${show(r)}`);
    }
    await c.waitMessages(1000, 15000);
    const want = Array.from({ length: 1000 }, (_, i) => `s${i + 1}`);
    assert.deepEqual(c.texts(), want);
    for (let i = 1; i <= 200; i++) {
      const r = await api.send(id, [`n${i}a`, `n${i}b`]);
      if (r.status !== 200 || r.json?.ack !== null) assert.fail(`send without seq #${i}: ${show(r)}`);
    }
    await c.waitMessages(1400, 15000);
    const want2 = Array.from({ length: 200 }, (_, i) => [`n${i + 1}a`, `n${i + 1}b`]).flat();
    assert.deepEqual(c.texts().slice(1000), want2);
  });

  it('400 for bad JSON, wrong types, bad base64, invalid UTF-8; nothing is forwarded', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const J = 'application/json';
    const bad = [
      ['{"messages":[', J],
      ['not json', J],
      ['[]', J],
      ['"just a string"', J],
      ['{"messages":"x"}', J],
      ['{"messages":[1]}', J],
      ['{"messages":[null]}', J],
      ['{"messages":[["nested"]]}', J],
      ['{"seq":"1","messages":["a"]}', J],
      ['{"seq":-1,"messages":["a"]}', J],
      ['{"seq":1.5,"messages":["a"]}', J],
      ['{"messages":[{"binary":"@@@@"}]}', J],
      ['{"messages":[{"binary":"QUJD!"}]}', J],
      ['{"messages":[{"binary":"QU JD"}]}', J],
      ['{"messages":[{"binary":123}]}', J],
      ['{"messages":[{"text":"a"}]}', J],
      ['{"messages":["\\ud800"]}', J], // lone surrogate: not representable in UTF-8
      [Buffer.concat([Buffer.from('{"messages":["'), Buffer.from([0xff, 0xfe]), Buffer.from('"]}')]), J],
      [Buffer.concat([Buffer.from('{"messages":["'), Buffer.from([0xc0, 0x80]), Buffer.from('"]}')]), J],
      [Buffer.from([0x61, 0xff, 0x62]), 'text/plain'],
      [Buffer.from([0xc0, 0x80]), 'text/plain'], // overlong NUL
      [Buffer.from([0xed, 0xa0, 0x80]), 'text/plain'], // UTF-16 surrogate encoded
      [Buffer.from([0xf0, 0x9f, 0x98]), 'text/plain'], // truncated 4-byte sequence
      [Buffer.from([0xf4, 0x90, 0x80, 0x80]), 'text/plain'], // above U+10FFFF
    ];
    const failures = [];
    for (const [body, ct] of bad) {
      const r = await api.sendBody(id, body, ct);
      try {
        assertError(r, 400);
      } catch (e) {
        failures.push(`${ct} ${Buffer.isBuffer(body) ? '0x' + body.toString('hex') : body}: ${r.status} ${r.text}`);
      }
    }
    // sends are forwarded in order: once 'ok' is there, anything before it would be too
    await api.sendOk(id, ['ok'], 1);
    await c.waitMessages(1);
    assert.deepEqual(failures, [], 'bodies not answered with a 400 error envelope');
    assert.deepEqual(c.texts(), ['ok'], 'nothing from the bad requests may reach the upstream');
  });

  it('413 for a body over max_body and for more than max_batch messages', async (t) => {
    const { up, api } = await bridge(t, { session: { max_batch: '100' } });
    const id = await api.openOk();
    const c = await up.conn(0);
    const big = 'x'.repeat(64 * 1024 + 1);
    const failures = [];
    const check = (what, r) => {
      try { assertError(r, 413); } catch (e) { failures.push(`${what}: ${e.message.split('\n')[0]}`); }
    };
    check('text/plain body of max_body + 1 bytes', await api.sendBody(id, big, 'text/plain'));
    check('JSON body over max_body', await api.send(id, [big], 1));
    check('101 messages with max_batch = 100', await api.send(id, Array.from({ length: 101 }, (_, i) => `m${i}`), 2));
    // exactly at the limits is fine
    await api.sendOk(id, Array.from({ length: 100 }, (_, i) => `m${i}`), 3);
    const atMax = 'y'.repeat(64 * 1024);
    const r = await api.sendBody(id, atMax, 'text/plain');
    assert.equal(r.status, 200, show(r));
    await api.sendOk(id, ['sentinel'], 4);
    await c.waitMessages(102);
    assert.equal(c.messages.length, 102, 'the 413 bodies must not be forwarded');
    assert.equal(c.messages[101].data.toString(), 'sentinel');
    assert.equal(c.messages[100].data.length, 64 * 1024);
    assert.deepEqual(failures, [], '413 answers must be JSON error envelopes with the common headers');
  });

  it('429 with Retry-After when the send buffer toward a stalled upstream is full; retry later delivers exactly once', async (t) => {
    const { up, api } = await bridge(t, { session: { send_buffer_bytes: '64KiB' } });
    const id = await api.openOk();
    const c = await up.conn(0);
    c.pause(); // the upstream stops reading: kernel buffers fill, then the gateway's
    const chunk = 'z'.repeat(48 * 1024); // each message fits in the 64 KiB send buffer
    let seq = 0;
    let r;
    const tStart = Date.now();
    for (;;) {
      seq++;
      if (seq > 1500) assert.fail(`no 429 after 1500 sends of 48 KiB (72 MB) to a stalled upstream (${Date.now() - tStart} ms)`);
      r = await api.send(id, [`${seq}:${chunk}`], seq);
      if (r.status === 429) break;
      assert.equal(r.status, 200, `send #${seq}: ${show(r)}`);
    }
    assertError(r, 429);
    assert.ok(r.headers['retry-after'] !== undefined, `429 without Retry-After: ${show(r)}`);
    assert.match(r.headers['retry-after'], /^\d+$/);
    t.diagnostic(`429 after ${seq - 1} accepted sends of 48 KiB (${Date.now() - tStart} ms)`);
    c.resume();
    // retry the refused batch with the same seq until accepted
    const t0 = Date.now();
    for (;;) {
      const rr = await api.send(id, [`${seq}:${chunk}`], seq);
      if (rr.status === 200) { assert.deepEqual(rr.json, { ack: seq }); break; }
      assert.equal(rr.status, 429, show(rr));
      if (Date.now() - t0 > 15000) assert.fail('still 429 15 s after the upstream resumed reading');
      await sleep(100);
    }
    await c.waitMessages(seq, 20000);
    await api.sendOk(id, ['end'], seq + 1);
    await c.waitMessages(seq + 1, 10000);
    const heads = c.messages.map((m) => m.data.toString('utf8', 0, 12).split(':')[0]);
    assert.deepEqual(heads, [...Array.from({ length: seq }, (_, i) => String(i + 1)), 'end'],
      'each batch forwarded exactly once, in order');
    c.messages.slice(0, seq).forEach((m, i) => {
      assert.equal(m.data.length, `${i + 1}:`.length + chunk.length, `message ${i + 1} length`);
    });
  });
});

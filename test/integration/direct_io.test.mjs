// direct_io.test.mjs - how replies reach the socket, end to end, whatever
// the I/O path under evhttp (bufferevent writes, direct writes, the epoll
// changelist): pipelined requests on one keep-alive connection are answered
// in order, a reply bigger than the socket buffers reaches a browser that
// reads late whole, HTTP/1.0 and Connection: close replies are complete
// before the close, and connections closed and reopened at a high rate
// (descriptor numbers reused) never mix up their bytes.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { bridge, withTimeout, sleep, payloads } from './bridge_lib.mjs';

/** Connect, write text, collect until pred(bytes) or the server closes. */
function rawUntil(port, text, pred, { ms = 15000, pauseFirst = 0 } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks = [];
    let len = 0;
    const finish = () => { s.destroy(); resolve(Buffer.concat(chunks)); };
    s.on('connect', async () => {
      if (pauseFirst) s.pause();
      s.write(text);
      if (pauseFirst) { await sleep(pauseFirst); s.resume(); }
    });
    s.on('data', (d) => {
      chunks.push(d);
      len += d.length;
      if (pred && pred(Buffer.concat(chunks, len))) finish();
    });
    s.on('error', reject);
    s.on('close', finish);
  }), ms, 'raw exchange');
}

/** Split HTTP/1.x responses (Content-Length bodies, or one body up to the close). */
function parseResponses(buf) {
  const out = [];
  let off = 0;
  while (off < buf.length) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const head = buf.subarray(off, end).toString('latin1');
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    // no Content-Length (an HTTP/1.0 answer): the body ends with the connection
    const n = m ? Number(m[1]) : buf.length - end - 4;
    if (end + 4 + n > buf.length) break;
    out.push({ status: Number(head.split(' ')[1]), head, body: buf.subarray(end + 4, end + 4 + n).toString('utf8') });
    off = end + 4 + n;
  }
  return out;
}

describe('replies on the socket: pipelining, late readers, close, fd reuse', { concurrency: 2, timeout: 90000 }, () => {
  it('20 pipelined sends on one keep-alive connection: 20 answers in order, upstream gets them once, in order', async (t) => {
    const { up, gw, api } = await bridge(t);
    const id = await api.openOk();
    const conn = await up.conn(0);
    let text = '';
    for (let i = 1; i <= 20; i++) {
      const body = JSON.stringify({ seq: i, messages: [`m${i}`] });
      text += `POST /chat/sessions/${id}/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    }
    const buf = await rawUntil(gw.port, text, (b) => parseResponses(b).length >= 20);
    const rs = parseResponses(buf);
    assert.equal(rs.length, 20, buf.toString('latin1').slice(0, 500));
    rs.forEach((r, i) => {
      assert.equal(r.status, 200, r.head);
      assert.deepEqual(JSON.parse(r.body), { ack: i + 1 });
    });
    await conn.waitMessages(20);
    assert.deepEqual(conn.texts(), Array.from({ length: 20 }, (_, i) => `m${i + 1}`));
  });

  it('a 3 MB poll answer to a browser that starts reading late arrives whole', async (t) => {
    const { up, gw, api } = await bridge(t, { session: { buffer_bytes: '8MiB' } });
    const id = await api.openOk();
    const conn = await up.conn(0);
    const big = Array.from({ length: 30 }, (_, i) => `${i}:` + String.fromCharCode(97 + (i % 26)).repeat(100 * 1024));
    await conn.sendAll(big);
    // wait until all of it is queued: a poll without ack leaves it queued
    await withTimeout((async () => {
      for (;;) {
        const j = await api.pollOk(id, 0, { timeoutMs: 15000 });
        if (j.messages.length >= big.length) return;
        await sleep(20);
      }
    })(), 20000, 'all 30 messages queued');
    const req = `GET /chat/sessions/${id}/poll?ack=0 HTTP/1.1\r\nHost: x\r\n\r\n`;
    const buf = await rawUntil(gw.port, req, (b) => parseResponses(b).length >= 1, { pauseFirst: 300 });
    const [r] = parseResponses(buf);
    assert.ok(r, `a complete response (got ${buf.length} bytes)`);
    assert.equal(r.status, 200);
    const j = JSON.parse(r.body);
    assert.deepEqual(payloads(j.messages), big);
  });

  it('HTTP/1.0 and Connection: close answers are complete before the close', async (t) => {
    const { gw, api } = await bridge(t);
    const id = await api.openOk();
    for (const [ver, extra] of [['1.0', ''], ['1.1', 'Connection: close\r\n']]) {
      const body = JSON.stringify({ seq: 1, messages: ['x'] });
      const req = `POST /chat/sessions/${id}/send HTTP/${ver}\r\nHost: x\r\n${extra}Content-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body}`;
      const buf = await rawUntil(gw.port, req, null); // until the server closes
      const rs = parseResponses(buf);
      assert.equal(rs.length, 1, `HTTP/${ver}: ${buf.toString('latin1')}`);
      assert.equal(rs[0].status, 200);
      assert.deepEqual(JSON.parse(rs[0].body), { ack: 1 });
    }
  });

  it('600 short connections, 30 at a time, each polling its own session: every answer belongs to its session', async (t) => {
    const { up, gw, api } = await bridge(t);
    const N = 30;
    const ids = [];
    for (let i = 0; i < N; i++) ids.push(await api.openOk());
    await up.waitConns(N, 20000);
    // each session gets one message naming it; polls without ack see it every time
    for (let i = 0; i < N; i++) await up.conns[i].send(`conn ${i}`);
    // which session got which upstream connection: from a first poll
    const name = {};
    for (const id of ids) name[id] = payloads((await api.pollUntil(id, (m) => m.length >= 1, { acking: false })).messages)[0];
    assert.equal(new Set(Object.values(name)).size, N, 'each session has its own upstream message');
    const rounds = 20;
    for (let k = 0; k < rounds; k++) {
      await Promise.all(ids.map(async (id) => {
        const req = `GET /chat/sessions/${id}/poll?ack=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
        const buf = await rawUntil(gw.port, req, null);
        const rs = parseResponses(buf);
        assert.equal(rs.length, 1, buf.toString('latin1').slice(0, 300));
        assert.equal(rs[0].status, 200, rs[0].head);
        assert.deepEqual(payloads(JSON.parse(rs[0].body).messages), [name[id]], `session ${id.slice(0, 6)} round ${k}`);
      }));
    }
  });
});

// front_io.test.mjs - the socket I/O under the HTTP front (gateway/front_io.c,
// [gateway] front_io), end to end, with it on (the default) and off
// (libevent's socket bufferevent): the same behaviour either way. A send
// body written in small pieces with pauses (many reads, edge-triggered)
// arrives whole; a browser that resets in the middle of a large answer
// costs nothing but its connection; a browser that half-closes while its
// poll is held is let go at once (the close watch) and the message it
// would have had goes to the next poll; a client pipelining a poll behind
// a send on one connection gets both answers in order.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { bridge, withTimeout, sleep, payloads } from './bridge_lib.mjs';

/** Connect; resolves with the socket once connected. */
function connect(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Everything the server sends until pred(bytes) or it closes. */
function collect(s, pred, ms = 15000) {
  return withTimeout(new Promise((resolve) => {
    const chunks = [];
    let closed = false;
    const done = () => resolve({ buf: Buffer.concat(chunks), closed });
    s.on('data', (d) => {
      chunks.push(d);
      if (pred && pred(Buffer.concat(chunks))) done();
    });
    s.on('error', () => {});
    s.on('close', () => { closed = true; done(); });
  }), ms, 'raw exchange');
}

/** Split Content-Length responses. */
function responses(buf) {
  const out = [];
  let off = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const head = buf.subarray(off, end).toString('latin1');
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!m || end + 4 + Number(m[1]) > buf.length) break;
    out.push({ status: Number(head.split(' ')[1]), body: buf.subarray(end + 4, end + 4 + Number(m[1])).toString('utf8') });
    off = end + 4 + Number(m[1]);
  }
  return out;
}

for (const mode of ['on', 'off']) {
  describe(`front_io = ${mode}`, { concurrency: 1, timeout: 120000 }, () => {
    const opts = (extra = {}) => ({ ...extra, gateway: { front_io: mode, ...(extra.gateway || {}) } });

    it('a 600 KB send body written in 4 KiB pieces with pauses arrives whole, in order', async (t) => {
      const { up, gw, api } = await bridge(t, opts({ gateway: { max_body: '1MiB' } }));
      const id = await api.openOk();
      const conn = await up.conn(0);
      const msgs = Array.from({ length: 60 }, (_, i) => `${i}:` + String.fromCharCode(97 + (i % 26)).repeat(10000));
      const body = Buffer.from(JSON.stringify({ seq: 1, messages: msgs }));
      const head = `POST /chat/sessions/${id}/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\n\r\n`;
      const s = await connect(gw.port);
      const got = collect(s, (b) => responses(b).length >= 1);
      s.write(head);
      for (let off = 0, k = 0; off < body.length; off += 4096, k++) {
        s.write(body.subarray(off, off + 4096));
        if (k % 16 === 15) await sleep(5);
      }
      const { buf } = await got;
      s.destroy();
      const rs = responses(buf);
      assert.equal(rs.length, 1, buf.toString('latin1').slice(0, 300));
      assert.equal(rs[0].status, 200);
      assert.deepEqual(JSON.parse(rs[0].body), { ack: 1 });
      await conn.waitMessages(60, 15000);
      assert.deepEqual(conn.texts(), msgs);
    });

    it('a browser that resets in the middle of a 3 MB answer: the next poll gets everything', async (t) => {
      const { up, gw, api } = await bridge(t, opts({ session: { buffer_bytes: '8MiB' } }));
      const id = await api.openOk();
      const conn = await up.conn(0);
      const big = Array.from({ length: 30 }, (_, i) => `${i}:` + 'x'.repeat(100 * 1024));
      await conn.sendAll(big);
      await api.pollUntil(id, (m) => m.length >= big.length, { acking: false, ms: 20000 });
      const s = await connect(gw.port);
      s.pause();
      s.write(`GET /chat/sessions/${id}/poll?ack=0 HTTP/1.1\r\nHost: x\r\n\r\n`);
      await sleep(300); // the answer fills the socket buffers and waits
      s.resetAndDestroy();
      await sleep(200);
      const j = await api.pollOk(id, 0, { timeoutMs: 15000 });
      assert.deepEqual(payloads(j.messages), big);
    });

    it('a browser that half-closes while its poll is held is let go; the message goes to the next poll', async (t) => {
      const { up, gw, api } = await bridge(t, opts({ session: { poll_timeout: '20s', idle_timeout: '30s' } }));
      const id = await api.openOk();
      const conn = await up.conn(0);
      const s = await connect(gw.port);
      const t0 = Date.now();
      const got = collect(s, null, 10000);
      s.write(`GET /chat/sessions/${id}/poll?ack=0 HTTP/1.1\r\nHost: x\r\n\r\n`);
      await sleep(300); // held: nothing queued
      s.end(); // FIN: the browser is gone
      const { buf, closed } = await got;
      assert.ok(closed, 'the server closed the connection');
      assert.ok(Date.now() - t0 < 9000, 'closed on the FIN, not at poll_timeout');
      assert.equal(buf.length, 0, `no answer into a closed browser: ${buf.toString('latin1').slice(0, 200)}`);
      await conn.send('after');
      const j = await api.pollUntil(id, (m) => m.length >= 1, { acking: false });
      assert.deepEqual(payloads(j.messages), ['after']);
    });

    it('a send and a held poll pipelined on one connection: both answers, in order', async (t) => {
      const { up, gw, api } = await bridge(t, opts());
      const id = await api.openOk();
      const conn = await up.conn(0);
      const body = JSON.stringify({ seq: 1, messages: ['up'] });
      const s = await connect(gw.port);
      const got = collect(s, (b) => responses(b).length >= 2);
      s.write(`POST /chat/sessions/${id}/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body}` +
        `GET /chat/sessions/${id}/poll?ack=0 HTTP/1.1\r\nHost: x\r\n\r\n`);
      await conn.waitMessages(1, 10000);
      await sleep(100);
      await conn.send('down');
      const { buf } = await got;
      s.destroy();
      const rs = responses(buf);
      assert.equal(rs.length, 2, buf.toString('latin1').slice(0, 400));
      assert.deepEqual(JSON.parse(rs[0].body), { ack: 1 });
      assert.deepEqual(payloads(JSON.parse(rs[1].body).messages), ['down']);
    });
  });
}

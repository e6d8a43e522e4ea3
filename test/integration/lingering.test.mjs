// lingering.test.mjs - the lingering close after an early refusal (issue 10
// section 4): a request refused before its body was read (413 for a
// declared Content-Length over max_body, 400 for broken framing) is
// answered at once, pollgate shuts its write side after the answer and
// reads and discards what the client still sends, bounded by
// [gateway] lingering_time, lingering_timeout and lingering_bytes, then
// closes. A client still sending therefore reads the answer instead of a
// reset (EPIPE / ECONNRESET), and nobody can keep a refused connection.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { readdirSync } from 'node:fs';

import { bridge, request, sleep, waitUntil } from './bridge_lib.mjs';

/** Resolves once the async pred() is true (checked every 50 ms). */
async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error(`timeout after ${ms} ms: ${what}`);
    await sleep(50);
  }
}

const conns = async (gw) => (await request(gw.adminUrl('/stats'))).json.connections;

function fdCount(pid) {
  try { return readdirSync(`/proc/${pid}/fd`).length; } catch { return 0; }
}

/** POST `body` with Node's http client (no agent); resolves to
 * { status, json, error } - error is the request's error, if any. */
function postBig(url, body) {
  return new Promise((resolve) => {
    let res = null;
    let text = '';
    let error = null;
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      let json;
      try { json = JSON.parse(text); } catch { json = undefined; }
      resolve({ status: res?.statusCode, json, error });
    };
    const timer = setTimeout(() => { error = error || new Error('timeout'); done(); }, 30000);
    const req = http.request(url, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'text/plain', 'content-length': body.length },
    }, (r) => {
      res = r;
      r.setEncoding('utf8');
      r.on('data', (d) => { text += d; });
      r.on('end', () => setTimeout(done, 200)); // an error right after would still count
      r.on('error', (e) => { error = error || e; });
    });
    req.on('error', (e) => { error = error || e; if (!res) done(); });
    req.end(body);
  });
}

/** A raw connection: resolves to { sock, got(), closed, reset } helpers. */
function rawConn(port) {
  return new Promise((resolve, reject) => {
    const st = { data: Buffer.alloc(0), ended: false, closed: false, reset: false, written: 0 };
    const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => resolve({ sock, st }));
    sock.on('data', (d) => { st.data = Buffer.concat([st.data, d]); });
    sock.on('end', () => { st.ended = true; });
    sock.on('error', (e) => { if (e.code === 'ECONNRESET' || e.code === 'EPIPE') st.reset = true; });
    sock.on('close', () => { st.closed = true; });
    sock.once('error', reject);
    sock.setNoDelay(true);
  });
}

const head = (id, length) =>
  `POST /chat/sessions/${id}/send HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n` +
  `Content-Length: ${length}\r\n\r\n`;

describe('lingering close after an early refusal', { timeout: 180000 }, () => {
  it('Node posting 32 MiB to a send endpoint gets the 413, not EPIPE/ECONNRESET, every time; descriptors return to baseline', async (t) => {
    const { gw, api, up } = await bridge(t, { gateway: { max_body: '64KiB' } });
    const id = await api.openOk();
    const c = await up.conn(0);
    const pid = gw.proc.child.pid;
    await sleep(200);
    const before = fdCount(pid);
    const body = Buffer.alloc(32 * 1024 * 1024, 0x61);
    for (let i = 0; i < 5; i++) {
      const r = await postBig(gw.url(`/chat/sessions/${id}/send`), body);
      assert.equal(r.error, null, `attempt ${i + 1}: the client saw ${r.error?.code || r.error?.message} instead of the answer`);
      assert.equal(r.status, 413, `attempt ${i + 1}`);
      assert.equal(r.json?.error, 'body_too_large', `attempt ${i + 1}`);
    }
    // the session still works, and nothing of the refused bodies went upstream
    await api.sendOk(id, ['after'], 1);
    await c.waitMessages(1);
    assert.deepEqual(c.texts(), ['after']);
    await waitFor(() => fdCount(pid) <= before, 15000, `descriptors back to ${before} (now ${fdCount(pid)})`);
  });

  it('a client declaring 1 GB and stopping gets its 413 at once; the write side is shut; the socket is closed after lingering_timeout', async (t) => {
    const { gw, api } = await bridge(t, {
      gateway: { max_body: '64KiB', request_timeout: '60s', lingering_time: '30s', lingering_timeout: '1s' },
    });
    const id = await api.openOk();
    const base = await conns(gw);
    const { sock, st } = await rawConn(gw.port);
    sock.write(head(id, 1000000000));
    // the answer does not wait for the body (request_timeout is 60 s)
    await waitUntil(() => /\r\n\r\n\{.*\}$/s.test(st.data.toString('latin1')), 10000, 'the 413 answer');
    assert.match(st.data.toString('latin1'), /^HTTP\/1\.1 413 /);
    assert.match(st.data.toString('latin1'), /Connection: close/i);
    // pollgate shut its write side after the answer (FIN) ...
    await waitUntil(() => st.ended, 10000, 'EOF after the answer');
    assert.equal(st.reset, false);
    // ... but still reads: bytes sent now are accepted, not reset
    sock.write('x'.repeat(1000));
    await sleep(100);
    assert.equal(st.reset, false, 'bytes sent while lingering are read, not reset');
    // and closes once the client is quiet for lingering_timeout
    // the client keeps its side open: pollgate closes once it has been
    // quiet for lingering_timeout
    assert.equal(await conns(gw), base + 1, 'the lingering connection is still counted');
    await waitFor(async () => await conns(gw) <= base, 15000, 'closed after lingering_timeout');
    sock.destroy();
  });

  it('a client that keeps sending is cut at lingering_bytes', async (t) => {
    const { gw, api } = await bridge(t, {
      gateway: { max_body: '64KiB', lingering_time: '60s', lingering_timeout: '10s', lingering_bytes: '1MiB' },
    });
    const id = await api.openOk();
    const base = await conns(gw);
    const { sock, st } = await rawConn(gw.port);
    sock.write(head(id, 1000000000));
    const chunk = Buffer.alloc(64 * 1024, 0x62);
    // write until pollgate cuts the connection (bounded: 256 MiB)
    let written = 0;
    while (!st.closed && !st.reset && written < 256 * 1024 * 1024) {
      const ok = sock.write(chunk);
      written += chunk.length;
      if (!ok) await Promise.race([new Promise((r) => sock.once('drain', r)), sleep(500)]);
    }
    await waitUntil(() => st.closed || st.reset, 20000, 'the connection cut');
    // The 413 is written before the lingering starts, but a client that
    // has more than lingering_bytes in flight (the kernel's loopback
    // buffers hold a few MiB) is cut within a millisecond, and Node drops
    // what it had not read yet when its next write meets the reset: the
    // answer is not guaranteed to be read here (the other tests show it is
    // when the client stops sending). Whatever arrived is that answer.
    const got = st.data.toString('latin1');
    assert.ok(got === '' || /^HTTP\/1\.1 413 /.test(got), `only the 413 is sent: ${got.slice(0, 80)}`);
    const m = /client still sending after a refusal; cut after (\d+) bytes/.exec(gw.stderr());
    assert.ok(m, 'the cut is logged with the bytes discarded');
    assert.ok(Number(m[1]) > 1024 * 1024 && Number(m[1]) <= 1024 * 1024 + 16384,
      `cut at lingering_bytes (1 MiB) plus at most one read: ${m[1]}`);
    // far less than the client was willing to send went in: the bound
    // plus what the kernel buffers hold
    assert.ok(written < 200 * 1024 * 1024, `cut after ${written} bytes written`);
    await waitFor(async () => await conns(gw) <= base, 15000, 'connection count back');
  });

  it('a client trickling bytes is cut at lingering_time', async (t) => {
    const { gw, api } = await bridge(t, {
      gateway: { max_body: '64KiB', lingering_time: '2s', lingering_timeout: '5s' },
    });
    const id = await api.openOk();
    const base = await conns(gw);
    const { sock, st } = await rawConn(gw.port);
    sock.write(head(id, 1000000000));
    const t0 = Date.now();
    while (!st.closed && !st.reset && Date.now() - t0 < 30000) {
      sock.write('y');
      await sleep(100);
    }
    assert.ok(st.closed || st.reset, 'cut while trickling (within 30 s)');
    assert.match(st.data.toString('latin1'), /^HTTP\/1\.1 413 /);
    await waitFor(async () => await conns(gw) <= base, 15000, 'connection count back');
  });

  it('a framing error (smuggling) lingers too: the client still sending its body reads the 400', async (t) => {
    const { gw, api } = await bridge(t, { gateway: { max_body: '64KiB' } });
    const id = await api.openOk();
    const base = await conns(gw);
    const { sock, st } = await rawConn(gw.port);
    sock.write(`POST /chat/sessions/${id}/send HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n` +
      'Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n');
    const chunk = Buffer.alloc(16 * 1024, 0x63);
    for (let i = 0; i < 64 && !st.reset; i++) {
      sock.write(chunk);
      await sleep(5);
    }
    await waitUntil(() => st.ended, 10000, 'EOF after the answer');
    assert.equal(st.reset, false, 'no reset while the client was still sending');
    assert.match(st.data.toString('latin1'), /^HTTP\/1\.1 400 /);
    sock.destroy();
  });

  it('lingering_time = 0 closes at once after the answer', async (t) => {
    const { gw, api } = await bridge(t, { gateway: { max_body: '64KiB', lingering_time: '0' } });
    const id = await api.openOk();
    const base = await conns(gw);
    const { sock, st } = await rawConn(gw.port);
    sock.write(head(id, 1000000000));
    await waitUntil(() => st.closed || st.ended, 10000, 'closed after the answer');
    assert.match(st.data.toString('latin1'), /^HTTP\/1\.1 413 /);
    await waitFor(async () => await conns(gw) <= base, 10000, 'connection count back');
    sock.destroy();
  });
});

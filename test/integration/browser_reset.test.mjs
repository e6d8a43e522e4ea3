// browser_reset.test.mjs - a browser whose connection ends with a TCP reset
// (RST) instead of a FIN while pollgate holds its request. A reset sets the
// socket's error, so epoll reports EPOLLERR, which libevent 2.1 turns into
// EV_READ|EV_WRITE and never into EV_CLOSED: the close watch (EV_CLOSED
// alone) missed it. A held long-poll (evhttp does not read a connection
// while a request waits for its answer) then stayed attached until its
// answer at poll_timeout, the session's idle timer started only then, and
// epoll reported the error at every loop turn (pollgate spinning). An SSE
// stream was not affected (evhttp reads a connection once a response has
// begun, and sees the reset itself): its case guards that.
//
// A browser resets its connection when it closes it with bytes unread, or
// when pollgate writes to a connection the browser already closed.
// Heartbeats and poll_timeout are far longer than the test and the
// upstream stays quiet, so nothing but the close watch can notice the
// browser leaving.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';

import { bridge, request, sleep } from './bridge_lib.mjs';

const QUIET = { heartbeat: '60s', poll_timeout: '60s', idle_timeout: '2s' };

/**
 * GET path on a raw connection of its own; resolves to the socket once the
 * request is written and, if `want` is given, once the bytes received
 * include it.
 */
function rawHold(port, path, headers, want) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`no ${want} on ${path} within 5 s: ${JSON.stringify(got)}`)); }, 5000);
    s.on('connect', () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n`);
      if (!want) { clearTimeout(timer); resolve(s); }
    });
    s.on('data', (d) => {
      got += d;
      if (want && got.includes(want)) { clearTimeout(timer); resolve(s); }
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

/** One session's entry in the admin listing. */
async function adminEntry(gw, id) {
  const r = await request(gw.adminUrl('/sessions'));
  assert.equal(r.status, 200, r.text);
  return r.json.sessions.find((x) => x.id === id);
}

/** Close with a reset (SO_LINGER 0): what the kernel does when unread bytes are left. */
function reset(sock) {
  sock.on('error', () => {});
  sock.resetAndDestroy();
}

/** CPU time pollgate used so far, in clock ticks (utime + stime from /proc). */
function cpuTicks(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** Poll the admin listing until pred(entry) holds (or ms pass); returns the last entry. */
async function entryUntil(gw, id, pred, ms) {
  const t0 = Date.now();
  for (;;) {
    const e = await adminEntry(gw, id);
    if (pred(e) || Date.now() - t0 > ms) return e;
    await sleep(50);
  }
}

describe('browser connection reset while its request is held', { concurrency: 2, timeout: 120000 }, () => {
  for (const kind of ['sse', 'poll']) {
    it(`${kind}: the request is let go at once and the session ends after idle_timeout`, async (t) => {
      const { up, gw, api } = await bridge(t, { session: QUIET });
      const id = await api.openOk();
      const c = await up.conn(0);
      await c.send('one');
      let sock;
      if (kind === 'sse') {
        sock = await rawHold(gw.port, `/chat/sessions/${id}/events`, 'Accept: text/event-stream\r\n', '"one"');
      } else {
        // "one" taken by a first poll; the second one is held (it sends nothing until it answers)
        const first = await api.pollOk(id, 0);
        assert.equal(first.messages.length, 1);
        sock = await rawHold(gw.port, `/chat/sessions/${id}/poll?ack=1`, '');
      }
      const e0 = await entryUntil(gw, id, (e) => e?.transport === kind, 5000);
      assert.equal(e0?.transport, kind, `attached before the reset: ${JSON.stringify(e0)}`);
      reset(sock);
      // the request is let go promptly (not at the next write, 60 s away)
      const e = await entryUntil(gw, id, (x) => x?.transport !== kind, 5000);
      assert.notEqual(e?.transport, kind, `still attached 5 s after the reset: ${JSON.stringify(e)}`);
      // ... and nothing else notices: the idle timer runs from the reset
      const close = await c.waitClose(12000);
      assert.equal(close.code, 1001, `upstream close ${JSON.stringify(close)}`);
      const r = await api.poll(id, 1);
      assert.equal(r.status, 410, r.text);
      assert.equal(r.json?.code, 1001, r.text);
    });
  }

  it('a reset held poll does not leave pollgate spinning on its socket', async (t) => {
    const { up, gw, api } = await bridge(t, { session: { ...QUIET, idle_timeout: '30s' } });
    const id = await api.openOk();
    await up.conn(0);
    const sock = await rawHold(gw.port, `/chat/sessions/${id}/poll?ack=0`, '');
    const e0 = await entryUntil(gw, id, (e) => e?.transport === 'poll', 5000);
    assert.equal(e0?.transport, 'poll', JSON.stringify(e0));
    reset(sock);
    await sleep(500);
    // one second with nothing to do: a busy loop on the reset socket
    // (epoll reporting its error at every turn) would burn most of it
    const pid = gw.proc.child.pid;
    const a = cpuTicks(pid);
    await sleep(1000);
    const used = cpuTicks(pid) - a;
    assert.ok(used < 50, `pollgate used ${used} clock ticks of CPU in 1 s with nothing to do`);
    const e = await adminEntry(gw, id);
    assert.equal(e?.transport, 'none', JSON.stringify(e));
  });
});

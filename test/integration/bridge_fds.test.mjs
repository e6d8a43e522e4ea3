// Running out of file descriptors: pollgate sizes its session capacity from
// RLIMIT_NOFILE (two descriptors per session), answers 503 past it, and when
// accept() itself fails it pauses accepting instead of spinning.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { startUpstream, startGateway, Api, request, assertError, sleep } from './bridge_lib.mjs';

const NOFILE = 160; // capacity = (160 - 100) / 2 = 30 sessions

function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks
}

describe('bridge: file descriptors', () => {
  test(`capacity from RLIMIT_NOFILE=${NOFILE}: 503 past it, accept pauses instead of spinning`, async (t) => {
    const up = await startUpstream(t);
    const gw = await startGateway(t, {
      wrapper: ['prlimit', `--nofile=${NOFILE}:${NOFILE}`],
      // max_connections above the descriptors (the derived default would
      // answer the idle connections 503 before descriptors run out): this
      // test is about running out of them
      gateway: { max_connections: '10000', max_connections_per_client: '0' },
      routes: [{ up }],
      // the sessions must outlive the whole test, however loaded the machine
      session: { idle_timeout: '60s' },
    });
    assert.match(gw.stderr(), /room for about 30 sessions/, gw.stderr());
    const api = new Api(gw);
    const ids = [];
    for (let i = 0; i < 30; i++) {
      const r = await api.open();
      assert.equal(r.status, 201, `session ${i + 1}: ${r.status} ${r.text}`);
      ids.push(r.json.session);
    }
    const full = await request(gw.url('/chat/sessions'), { method: 'POST' });
    assertError(full, 503, 'too_many_sessions');
    assert.ok(full.headers['retry-after'], 'Retry-After on 503');

    // Now take every remaining descriptor with idle TCP connections.
    const socks = [];
    t.after(() => socks.forEach((s) => s.destroy()));
    for (let i = 0; i < NOFILE; i++) {
      const s = net.connect(gw.port, '127.0.0.1');
      s.on('error', () => {});
      socks.push(s);
    }
    await sleep(500);
    assert.match(gw.stderr(), /accept failed: .*pausing accepts/, 'the accept error is logged');
    const pid = gw.proc.child.pid;
    const before = cpuSeconds(pid);
    await sleep(1500);
    const used = cpuSeconds(pid) - before;
    assert.ok(used < 0.5, `pollgate must not spin while out of descriptors: ${used.toFixed(2)} CPU-s in 1.5 s`);

    // Give them back: the listener resumes and the sessions are intact.
    socks.forEach((s) => s.destroy());
    let health;
    for (let i = 0; i < 50; i++) {
      // the public listener answers again (an unknown path: 404 JSON)
      health = await request(gw.url('/nope')).catch((e) => ({ status: 0, text: String(e) }));
      if (health.status === 404) break;
      await sleep(100);
    }
    assert.equal(health.status, 404, `public port after descriptors came back: ${health.text}`);
    const closed = await request(gw.url(`/chat/sessions/${ids[0]}`), { method: 'DELETE' });
    assert.equal(closed.status, 204, gw.stderr().slice(-3000));
    const again = await api.open();
    assert.equal(again.status, 201, 'a freed slot can be used again');
  });
});

// fds_measure.mjs - descriptors pollgate holds per session, per transport:
// N sessions of one class at a time, each with its browser connection
// open as a browser would have it (a held long-poll, an SSE stream, a
// SockJS xhr-streaming response, a WebSocket), then the same sessions with
// no browser connection at all (between two requests). Counts
// /proc/PID/fd before and after. Not part of `make check`.
//
//   POLLGATE_BIN=build/asan/gateway/pollgate node test/bench/fds_measure.mjs [N]
import fs from 'node:fs';
import http from 'node:http';
import WebSocket from 'ws';
import { startUpstream, startGateway, Api, openEvents } from '../integration/bridge_lib.mjs';
import { openStream, randomId } from '../integration/sockjs_lib.mjs';

const N = Number(process.argv[2] || 200);
const cleanups = [];
const t = { after: (fn) => cleanups.push(fn) };
const fds = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;
const settle = () => new Promise((r) => setTimeout(r, 1500));

try {
  const up = await startUpstream(t);
  const gw = await startGateway(t, {
    gateway: { log_level: 'warn' },
    session: { max_sessions_per_client: N * 10, poll_timeout: '120s', heartbeat: '60s', idle_timeout: '300s' },
    routes: [{ name: 'chat', path: '/chat', up }, { name: 'sj', path: '/sj', up, extra: { sockjs: 'on', disconnect_delay: '300s' } }],
  });
  const pid = gw.proc.child.pid;
  const rows = [];
  const measure = async (name, open) => {
    await settle();
    const before = fds(pid);
    const held = [];
    for (let i = 0; i < N; i += 20) held.push(...await Promise.all(Array.from({ length: Math.min(20, N - i) }, open)));
    await settle();
    const withConn = fds(pid);
    const dropped = held.every((h) => h.drop);
    for (const h of held) if (h.drop) h.drop();
    await settle();
    const noConn = fds(pid);
    rows.push({ name, perSession: (withConn - before) / N, withoutBrowserConnection: dropped ? (noConn - before) / N : null });
  };
  // each browser has its own connection (agent), as separate browsers do
  const own = () => new http.Agent({ keepAlive: true, maxSockets: 1 });
  await measure('native long-poll (held poll)', async () => {
    const agent = own();
    const api = new Api(gw, '/chat', { agent });
    const id = await api.openOk();
    const p = api.poll(id, 0, { timeoutMs: 200000 }).catch(() => {});
    return { drop: () => { agent.destroy(); void p; } };
  });
  await measure('native SSE', async () => {
    const agent = own();
    const id = await new Api(gw, '/chat', { agent }).openOk();
    agent.destroy();
    const s = await openEvents(null, gw.url(`/chat/sessions/${id}/events`), { timeoutMs: 20000 });
    return { drop: () => s.destroy() };
  });
  await measure('SockJS xhr-streaming', async () => {
    const s = await openStream(null, gw.url(`/sj/sockjs/000/${randomId()}/xhr_streaming`), { method: 'POST', kind: 'xhr', timeoutMs: 20000 });
    await s.waitFor((x) => x.frames().some((f) => f.type === 'o'), 20000, 'o');
    return { drop: () => s.destroy() };
  });
  await measure('WebSocket (/chat/ws)', async () => {
    const ws = new WebSocket(gw.url('/chat/ws').replace('http', 'ws'));
    ws.on('error', () => {});
    await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
    return { drop: null };   // a WebSocket session has no life without its connection
  });
  for (const r of rows) {
    console.log(`${r.name}: ${r.perSession.toFixed(2)} fds per session with its browser connection` +
      (r.withoutBrowserConnection === null ? '' : `, ${r.withoutBrowserConnection.toFixed(2)} without (between requests; SockJS: the session ends)`));
  }
} finally {
  for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
  process.exit(0);
}

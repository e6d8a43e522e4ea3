// drain_measure.mjs - measure the drain with N sessions and the SIGHUP
// reload: N native sessions, each with a held long-poll, then SIGTERM
// (drain_timeout as given); reports how long until pollgate exits and how
// many browsers received their close (1001), and the SIGHUP reload time
// (the signal to the "reloaded" log line, as the client sees it, and the
// time pollgate logs for it). Not part of `make check`.
//
//   POLLGATE_BIN=build/release/gateway/pollgate node test/bench/drain_measure.mjs [N] [drain]
import http from 'node:http';
import { startUpstream, startGateway, Api, waitUntil } from '../integration/bridge_lib.mjs';
import { makeCerts, tmpDir } from '../integration/lib.mjs';

const N = Number(process.argv[2] || 1000);
const drain = process.argv[3] || '0';
const cleanups = [];
const t = { after: (fn) => cleanups.push(fn) };
try {
  const up = await startUpstream(t);
  const dir = tmpDir(t, 'pollgate-drain-measure-');
  const certs = await makeCerts(dir);
  const gw = await startGateway(t, {
    // one client address holds all N browser connections: no per-client cap
    gateway: { drain_timeout: drain, log_level: 'info', max_connections_per_client: '0', tls_listen: '127.0.0.1:0'.replace(':0', `:${40000 + (process.pid % 20000)}`),
      tls_cert_file: certs.server.cert, tls_key_file: certs.server.key },
    session: { max_sessions_per_client: N * 2, poll_timeout: '60s', idle_timeout: '120s' },
    routes: [{ name: 'chat', path: '/chat', up }],
  });
  up.reset();
  const agent = new http.Agent({ keepAlive: true, maxSockets: N + 10 });
  const api = new Api(gw, '/chat', { agent });
  const ids = [];
  for (let i = 0; i < N; i += 50) {
    ids.push(...await Promise.all(Array.from({ length: Math.min(50, N - i) }, () => api.openOk())));
  }
  await up.waitConns(N, 60000);
  // SIGHUP reload time
  const h0 = process.hrtime.bigint();
  gw.proc.child.kill('SIGHUP');
  await waitUntil(() => /reload: configuration .* reloaded in/.test(gw.stderr()), 10000, 'reload');
  const reloadMs = Number(process.hrtime.bigint() - h0) / 1e6;
  const polls = ids.map((id) => api.pollOk(id, 0, { timeoutMs: 120000 }).catch((e) => ({ error: e.message })));
  await new Promise((r) => setTimeout(r, 1000));
  const t0 = process.hrtime.bigint();
  gw.proc.child.kill('SIGTERM');
  const res = await Promise.all(polls);
  const allClosedMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const r = await gw.proc.done;
  const exitMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const closed = res.filter((p) => p.closed && p.closed.code === 1001).length;
  const other = {};
  for (const p of res) if (!(p.closed && p.closed.code === 1001)) { const k = (p.error || JSON.stringify(p)).slice(0, 80); other[k] = (other[k] || 0) + 1; }
  console.log(JSON.stringify(other));
  console.log(gw.stderr().split('\n').filter((l) => /drain|stopping|signal/.test(l)).join('\n'));
  let upClosed = 0;
  for (const c of up.conns) if ((await c.waitClose(10000).catch(() => ({}))).code === 1001) upClosed++;
  console.log(JSON.stringify({ sessions: N, drain_timeout: drain, reload_ms: +reloadMs.toFixed(1),
    reload_logged_ms: Number((gw.stderr().match(/reloaded in (\d+) ms/) || [])[1]),
    all_browsers_closed_ms: +allClosedMs.toFixed(0), exit_ms: +exitMs.toFixed(0), exit_code: r.code,
    browsers_got_1001: closed, upstreams_got_1001: upClosed }));
  gw.stopped = true;
  agent.destroy();
} finally {
  for (const fn of cleanups.reverse()) await fn();
  process.exit(0);
}

// deploy_nginx.test.mjs - contrib/nginx/pollgate.conf with Debian's nginx
// (run on loopback with a generated nginx.conf that includes the contrib
// file, addresses substituted; its own pid, log and temp paths) in front of
// pollgate with trusted_proxies = 127.0.0.1:
//  - SSE events arrive one by one through nginx (nothing buffered);
//  - a held poll survives its full poll_timeout;
//  - two browsers (127.0.0.2 and 127.0.0.3) behind nginx each get their
//    own max_sessions_per_client;
//  - a browser cannot choose its address: its own X-Forwarded-For, through
//    nginx or straight to pollgate, is not believed.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

import { SRCDIR, startProcess, tmpDir, writeFile } from './lib.mjs';
import {
  startUpstream, startGateway, Api, openEvents, sseData, request, freePort, waitUntil, sleep,
} from './bridge_lib.mjs';

const NGINX = ['/usr/sbin/nginx', 'nginx'].find((b) => spawnSync(b, ['-v']).status === 0);

async function startNginx(t, gwPort) {
  const dir = tmpDir(t, 'pollgate-nginx-');
  const port = await freePort();
  const site = fs.readFileSync(path.join(SRCDIR, 'contrib', 'nginx', 'pollgate.conf'), 'utf8')
    .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${gwPort};`)
    .replace(/^(\s*)listen 80;/m, `$1listen 127.0.0.1:${port};`);
  assert.ok(site.includes(`127.0.0.1:${gwPort}`) && site.includes(`listen 127.0.0.1:${port};`),
    'contrib file substituted');
  const siteFile = writeFile(dir, 'pollgate.conf', site);
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(dir, d));
  const conf = writeFile(dir, 'nginx.conf', [
    'daemon off;',
    'worker_processes 1;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log info;`,
    'events { worker_connections 512; }',
    'http {',
    `  access_log ${dir}/access.log;`,
    `  client_body_temp_path ${dir}/body;`,
    `  proxy_temp_path ${dir}/proxy;`,
    `  fastcgi_temp_path ${dir}/fastcgi;`,
    `  uwsgi_temp_path ${dir}/uwsgi;`,
    `  scgi_temp_path ${dir}/scgi;`,
    `  include ${siteFile};`,
    '}',
    '',
  ].join('\n'));
  const check = spawnSync(NGINX, ['-t', '-p', dir, '-e', `${dir}/error.log`, '-c', conf], { encoding: 'utf8' });
  assert.equal(check.status, 0, `nginx -t: ${check.stderr}`);
  const proc = startProcess(t, NGINX, ['-p', dir, '-e', `${dir}/error.log`, '-c', conf], { timeoutMs: 170000 });
  t.after(() => { proc.child.kill('SIGQUIT'); });
  const t0 = Date.now();
  while (Date.now() - t0 < 10000) {
    try {
      // nginx up and proxying: pollgate's JSON 404 for an unknown path
      const r = await request(`http://127.0.0.1:${port}/nope`, { timeoutMs: 1000 });
      if (r.status === 404 && r.json && r.json.error === 'not_found') break;
    } catch { /* not yet */ }
    await sleep(50);
  }
  return { port, url: (p) => `http://127.0.0.1:${port}${p}`, dir };
}

async function setup(t, { session = {} } = {}) {
  const up = await startUpstream(t);
  const gw = await startGateway(t, {
    gateway: { trusted_proxies: '127.0.0.1' },
    session: { max_sessions_per_client: 2, ...session },
    routes: [{ name: 'chat', path: '/chat', up }],
  });
  up.reset();
  const nginx = await startNginx(t, gw.port);
  // Api over nginx: a gateway-like object whose url() points at nginx
  const via = (localAddress) => {
    const api = new Api({ url: nginx.url }, '/chat', { localAddress });
    t.after(() => api.destroy());
    return api;
  };
  return { up, gw, nginx, via };
}

describe('deploy: nginx in front', { skip: !NGINX && 'nginx not installed', timeout: 120000 }, () => {
  it('SSE events arrive one by one (not buffered)', async (t) => {
    const { up, nginx, via } = await setup(t);
    const api = via('127.0.0.2');
    const id = await api.openOk();
    const c = await up.conn(0);
    const s = await openEvents(t, nginx.url(`/chat/sessions/${id}/events`));
    t.after(() => s.destroy());
    assert.equal(s.status, 200);
    // each event must arrive before the next one is sent: a buffering
    // proxy would hold these few bytes back
    for (let i = 1; i <= 5; i++) {
      await c.send(`e${i}`);
      await s.waitMessages(i, 5000);
    }
    assert.deepEqual(s.messageEvents().map(sseData), ['e1', 'e2', 'e3', 'e4', 'e5']);
  });

  it('a held poll survives its full poll_timeout', async (t) => {
    const { up, via } = await setup(t, { session: { poll_timeout: '6s', idle_timeout: '30s' } });
    const api = via('127.0.0.2');
    const id = await api.openOk();
    await up.conn(0);
    const t0 = Date.now();
    const p = await api.pollOk(id, 0, { timeoutMs: 30000 });
    const ms = Date.now() - t0;
    assert.deepEqual(p.messages, []);
    assert.ok(ms >= 5500, `the poll was held for poll_timeout, not cut short (${ms} ms)`);
    // and a message during a held poll still completes it
    const held = api.pollOk(id, 0, { timeoutMs: 30000 });
    await sleep(500);
    await (await up.conn(0)).send('late');
    assert.deepEqual((await held).messages.map((m) => m.text), ['late']);
  });

  it('two browsers behind nginx each get their own per-client cap', async (t) => {
    const { up, via } = await setup(t);
    const b1 = via('127.0.0.2');
    const b2 = via('127.0.0.3');
    await b1.openOk();
    await b1.openOk();
    const third = await b1.open();
    assert.equal(third.status, 503, third.text);
    assert.equal(third.json.error, 'too_many_sessions_for_client');
    // the second browser is not counted with the first
    await b2.openOk();
    await b2.openOk();
    assert.equal((await b2.open()).status, 503);
    // upstream sees the browsers' addresses
    await up.waitConns(4);
    const real = up.conns.map((c) => c.req.headers['x-real-ip']);
    assert.deepEqual(real, ['127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.3']);
    assert.equal(up.conns[0].req.headers['x-forwarded-for'], '127.0.0.2, 127.0.0.1');
  });

  it('a browser cannot choose its address with its own X-Forwarded-For', async (t) => {
    const { up, gw, via } = await setup(t);
    const b1 = via('127.0.0.2');
    await b1.openOk();
    await b1.openOk();
    // through nginx, claiming to be 127.0.0.3: still itself (127.0.0.2), capped
    const forged = await b1.open(undefined, { headers: { 'x-forwarded-for': '127.0.0.3' } });
    assert.equal(forged.status, 503, forged.text);
    // another browser claiming to be 127.0.0.2 is not charged to it
    const b4 = via('127.0.0.4');
    await b4.openOk(undefined, { headers: { 'x-forwarded-for': '127.0.0.2' } });
    const c = await up.conn(2);
    assert.equal(c.req.headers['x-real-ip'], '127.0.0.4');
    assert.equal(c.req.headers['x-forwarded-for'], '127.0.0.2, 127.0.0.4, 127.0.0.1');
    // straight to pollgate from an untrusted peer: the header is ignored
    const direct = new Api(gw, '/chat', { localAddress: '127.0.0.5' });
    t.after(() => direct.destroy());
    await direct.openOk(undefined, { headers: { 'x-forwarded-for': '198.51.100.7' } });
    const d = await up.conn(3);
    assert.equal(d.req.headers['x-real-ip'], '127.0.0.5');
    assert.equal(d.req.headers['x-forwarded-for'], '198.51.100.7, 127.0.0.5');
    assert.match(gw.stderr(), /127\.0\.0\.5: session \S+ opened/);
    assert.doesNotMatch(gw.stderr(), /198\.51\.100\.7: session/);
  });
});

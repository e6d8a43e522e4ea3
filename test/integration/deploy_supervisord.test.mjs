// deploy_supervisord.test.mjs - contrib/supervisord/pollgate.conf under a
// real supervisord (Debian's): it starts pollgate, restarts it after a
// kill -9, and stops it with SIGTERM (a clean exit, not a kill).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync, execFile } from 'node:child_process';

import { SRCDIR, POLLGATE_BIN, startProcess, tmpDir, writeFile, freePort, sleep } from './lib.mjs';
import { startUpstream, request } from './bridge_lib.mjs';

/** Poll an async predicate every 100 ms until it holds (or fail after ms). */
async function waitUntil(pred, ms, what) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return;
    await sleep(100);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

const haveSupervisord = spawnSync('supervisord', ['--version']).status === 0;

async function healthy(port) {
  try {
    return (await request(`http://127.0.0.1:${port}/health`, { timeoutMs: 1000 })).status === 200;
  } catch {
    return false;
  }
}

describe('deploy: supervisord', { timeout: 90000 }, () => {
  it('starts pollgate, restarts it after kill -9, stops it with SIGTERM', { skip: !haveSupervisord && 'supervisord not installed' }, async (t) => {
    const dir = tmpDir(t, 'pollgate-supervisord-');
    const up = await startUpstream(t);
    const port = await freePort();
    const adminPort = await freePort();
    const ini = writeFile(dir, 'pollgate.ini', `[gateway]\nlisten = 127.0.0.1:${port}\n[admin]\nlisten = 127.0.0.1:${adminPort}\n[route chat]\npath = /chat\nupstream = ${up.url('/chat')}\n`);
    const log = path.join(dir, 'pollgate.log');
    const prog = fs.readFileSync(path.join(SRCDIR, 'contrib', 'supervisord', 'pollgate.conf'), 'utf8')
      .replace('/usr/local/bin/pollgate', POLLGATE_BIN)
      .replace('/usr/local/etc/pollgate.ini', ini)
      .replace('/var/log/supervisor/pollgate.log', log);
    assert.ok(prog.includes(POLLGATE_BIN) && prog.includes(ini) && prog.includes(log), 'paths substituted');
    writeFile(dir, 'pollgate.conf', prog);
    const sock = path.join(dir, 'supervisor.sock');
    const conf = writeFile(dir, 'supervisord.conf', [
      '[supervisord]', `logfile=${path.join(dir, 'supervisord.log')}`, `pidfile=${path.join(dir, 'supervisord.pid')}`,
      `childlogdir=${dir}`, 'nodaemon=true', '',
      '[unix_http_server]', `file=${sock}`, '',
      '[rpcinterface:supervisor]', 'supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface', '',
      '[supervisorctl]', `serverurl=unix://${sock}`, '',
      '[include]', `files=${path.join(dir, 'pollgate.conf')}`, '',
    ].join('\n'));
    const sup = startProcess(t, 'supervisord', ['-c', conf], { timeoutMs: 85000 });
    // asynchronous: the upstream lives in this process and must keep running
    const ctl = (...args) => new Promise((resolve) => {
      execFile('supervisorctl', ['-c', conf, ...args], { encoding: 'utf8', timeout: 20000 },
        (err, stdout, stderr) => resolve({ stdout, stderr }));
    });
    const pid = async () => Number.parseInt((await ctl('pid', 'pollgate')).stdout.trim(), 10) || 0;

    // never leave a pollgate behind, whatever fails
    const started = [];
    t.after(() => {
      for (const p of started) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
    });
    await waitUntil(async () => await pid() > 0 && await healthy(adminPort), 15000, 'pollgate started by supervisord');
    const pid1 = await pid();
    started.push(pid1);
    process.kill(pid1, 'SIGKILL');
    await waitUntil(async () => { const p = await pid(); return p > 0 && p !== pid1 && await healthy(adminPort); },
      20000, 'pollgate restarted after kill -9');
    const pid2 = await pid();
    started.push(pid2);
    assert.notEqual(pid2, pid1);
    // RUNNING once it has stayed up for startsecs
    await waitUntil(async () => /RUNNING/.test((await ctl('status', 'pollgate')).stdout), 10000, 'supervisorctl status RUNNING');

    const stop = await ctl('stop', 'pollgate');
    assert.match(stop.stdout, /stopped/, stop.stdout + stop.stderr);
    assert.equal(await healthy(adminPort), false);
    // a SIGTERM stop: pollgate logged its orderly stop (not a SIGKILL)
    await sleep(200);
    const text = fs.readFileSync(log, 'utf8');
    assert.match(text, /signal 15: stopping/);
    assert.match(text, /\bstopped\b/);
    const supLog = fs.readFileSync(path.join(dir, 'supervisord.log'), 'utf8');
    assert.match(supLog, /exited: pollgate \(terminated by SIGKILL/, 'the kill -9 was seen');
    assert.match(supLog, /stopped: pollgate \(exit status 0\)/, 'the stop was a clean exit');
    sup.child.kill('SIGTERM');
    await sup.done;
  });
});

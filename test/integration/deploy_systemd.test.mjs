// deploy_systemd.test.mjs - contrib/systemd/pollgate.service: the unit as
// `make` generates it passes `systemd-analyze verify` (pointing at this
// build's binary and a real configuration), and pollgate speaks the
// Type=notify protocol: READY=1 once it accepts connections, STOPPING=1 when
// SIGTERM starts the stop.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

import { SRCDIR, BUILDDIR, POLLGATE_BIN, startProcess, tmpDir, writeFile, withTimeout } from './lib.mjs';
import { startUpstream, startGateway, request, waitUntil } from './bridge_lib.mjs';

const NOTIFY_SINK = path.join(BUILDDIR, 'test', 'tools', 'notify_sink');
const haveAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
// Without a terminal systemd tools may log to the journal instead.
const analyze = (file) => spawnSync('systemd-analyze', ['verify', '--man=no', file], {
  encoding: 'utf8', timeout: 30000, env: { ...process.env, SYSTEMD_LOG_TARGET: 'console' },
});

describe('deploy: systemd', { timeout: 60000 }, () => {
  it('the unit passes systemd-analyze verify', { skip: !haveAnalyze && 'systemd-analyze not installed' }, async (t) => {
    const dir = tmpDir(t, 'pollgate-systemd-');
    const up = await startUpstream(t);
    writeFile(dir, 'pollgate.ini', `[gateway]\nlisten = 127.0.0.1:1\n[route chat]\npath = /chat\nupstream = ${up.url('/chat')}\n`);
    const unit = fs.readFileSync(path.join(SRCDIR, 'contrib', 'systemd', 'pollgate.service.in'), 'utf8')
      .replaceAll('@bindir@', path.dirname(POLLGATE_BIN))
      .replaceAll('@sysconfdir@', dir);
    assert.ok(!/@[a-z]+@/.test(unit), 'every placeholder substituted');
    for (const k of ['Type=notify', 'ExecReload=/bin/kill -HUP $MAINPID', 'NoNewPrivileges=yes',
      'ProtectSystem=strict', 'PrivateTmp=yes', 'DynamicUser=yes']) {
      assert.ok(unit.includes(`\n${k}\n`), `unit has ${k}`);
    }
    assert.match(unit, /\nLimitNOFILE=\d+\n/);
    const file = writeFile(dir, 'pollgate.service', unit);
    const r = analyze(file);
    // Messages about the host (no running systemd, other units) are not the
    // unit's; anything naming our file is.
    const ours = (r.stderr + r.stdout).split('\n').filter((l) => l.includes('pollgate.service'));
    assert.deepEqual(ours, [], `systemd-analyze verify:\n${r.stderr}${r.stdout}`);
    // and a broken unit is noticed, so the check above can fail
    const bad = writeFile(dir, 'broken.service', unit.replace('\nType=notify\n', '\nType=notify-me\n'));
    const rb = analyze(bad);
    assert.match(rb.stderr + rb.stdout, /broken\.service.*(Failed to parse|Invalid|Unknown)/i);
  });

  it('Type=notify: READY=1 once listening, STOPPING=1 on SIGTERM', async (t) => {
    const dir = tmpDir(t, 'pollgate-notify-');
    const sock = path.join(dir, 'notify.sock');
    const sink = startProcess(t, NOTIFY_SINK, [sock, '40'], { timeoutMs: 45000 });
    await sink.waitStdout(/^ready$/, 5000);
    const up = await startUpstream(t);
    const gw = await startGateway(t, { routes: [{ name: 'chat', path: '/chat', up }], env: { NOTIFY_SOCKET: sock } });
    const ready = await sink.waitStdout(/READY=1/, 5000);
    assert.equal(ready, 'READY=1|STATUS=listening');
    // it was sent once the gateway answers
    assert.equal((await request(gw.url('/chat/sessions'), { method: 'POST' })).status, 201);
    assert.equal(sink.stdoutLines.filter((l) => /STOPPING/.test(l)).length, 0);
    // a reload (SIGHUP) is announced: RELOADING=1, then READY=1 again
    gw.proc.child.kill('SIGHUP');
    assert.equal(await sink.waitStdout(/RELOADING=1/, 5000), 'RELOADING=1|STATUS=reloading');
    await waitUntil(() => sink.stdoutLines.filter((l) => /READY=1/.test(l)).length === 2, 5000, 'READY=1 after the reload');
    assert.deepEqual(sink.stdoutLines.filter((l) => /READY|RELOADING/.test(l)).slice(-2),
      ['RELOADING=1|STATUS=reloading', 'READY=1|STATUS=listening']);
    await gw.stop();
    assert.equal(await sink.waitStdout(/STOPPING=1/, 5000), 'STOPPING=1|STATUS=stopping');
    sink.child.kill('SIGTERM');
  });
});

// access_log.test.mjs - [gateway] access_log: one line per request of every
// kind (answered, held poll answered by its timeout, stream, WebSocket,
// refused by the request limits, dropped by the browser), the exact line
// format, session ids cut, SIGUSR1 reopening the access log and the
// error_log after a rename (logrotate), a sink that does not read (lines
// dropped and counted, the loop not blocked), off writing nothing; and the
// transport column of the admin GET /sessions for every transport.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import WebSocket from 'ws';

import { bridge, request, waitUntil, Api, rawExchange } from './bridge_lib.mjs';
import { startSockjsGateway, sockjsRoute, startEchoUpstream } from './sockjs_lib.mjs';
import { SRCDIR, tmpDir, sleep, withTimeout } from './lib.mjs';

const LINE_RE = /^(\S+) - - \[(\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d \+0000)\] "(\S+) (\S+) HTTP\/(\d\.\d)" (\d{3}) (\d+) "-" "([^"]*)" (\S+) (\S+) (\S+) (\S+) (\d+) (done|gone|cut)$/;
const LOOKS_LIKE_LINE = /^\S+ - - \[/;

/** Poll an async predicate every 50 ms until it holds (or fail after ms). */
async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return;
    await sleep(50);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

function parseLine(l) {
  const m = LINE_RE.exec(l);
  assert.ok(m, `access log line format: ${JSON.stringify(l)}`);
  return {
    line: l, addr: m[1], time: m[2], method: m[3], path: m[4], version: m[5],
    status: Number(m[6]), bytes: Number(m[7]), ua: m[8],
    ms: m[9] === '-' ? null : Number(m[9]), sid: m[10], route: m[11],
    transport: m[12], in: Number(m[13]), end: m[14],
  };
}

function parseText(text) {
  return text.split('\n').filter((l) => LOOKS_LIKE_LINE.test(l)).map(parseLine);
}

function readLines(file) {
  return fs.existsSync(file) ? parseText(fs.readFileSync(file, 'utf8')) : [];
}

async function waitLines(file, pred, what, ms = 8000) {
  let lines = [];
  await waitUntil(() => (lines = readLines(file)).some(pred), ms, `${what}; lines so far:\n${lines.map((l) => l.line).join('\n')}`);
  return lines.filter(pred);
}

async function one(file, pred, what) {
  const l = await waitLines(file, pred, what);
  assert.equal(l.length, 1, `exactly one line for ${what}: ${l.map((x) => x.line).join('\n')}`);
  return l[0];
}

/** A raw request on its own connection, destroyed after ms without an answer read. */
function rawDrop(port, text, ms) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = 0;
    s.on('data', (d) => { got += d.length; });
    s.on('connect', () => { s.write(text); setTimeout(() => { s.destroy(); resolve(got); }, ms); });
    s.on('error', reject);
  });
}

/** A streaming GET; resolves { res, body() , bytes(), ended } once the head is in. */
function openStream(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const req = http.get(url, { agent, headers });
    req.on('error', reject);
    req.on('response', (res) => {
      let bytes = 0;
      let text = '';
      let ended = false;
      const endP = new Promise((r) => res.on('end', () => { ended = true; r(); }));
      res.on('data', (d) => { bytes += d.length; text += d.toString('utf8'); });
      res.on('error', () => {});
      resolve({
        res, endP,
        bytes: () => bytes, text: () => text, ended: () => ended,
        destroy() { req.destroy(); res.destroy(); agent.destroy(); },
      });
    });
  });
}

describe('access log', () => {
  test('one line per request of every kind, in the documented format', async (t) => {
    const dir = tmpDir(t, 'pollgate-al-');
    const file = path.join(dir, 'access.log');
    const { up, gw, api } = await bridge(t, {
      gateway: { access_log: file, header_timeout: '1s', max_body: '1KiB' },
      session: { poll_timeout: '1s', heartbeat: '30s' },
    });
    let requests = 0;
    const ua = 'access-test/1.0 "quoted"';

    // open: 201 (the native open answers once the upstream accepted)
    const o = await api.open(undefined, { headers: { 'user-agent': ua } }); requests++;
    assert.equal(o.status, 201, o.text);
    const id = o.json.session;
    const open = await one(file, (l) => l.transport === 'open', 'the open');
    assert.equal(open.method, 'POST');
    assert.equal(open.path, '/chat/sessions');
    assert.equal(open.status, 201);
    assert.equal(open.bytes, o.body.length, 'bytes = body the client received');
    assert.equal(open.sid, id.slice(0, 8));
    assert.equal(open.route, 'chat');
    assert.equal(open.addr, '127.0.0.1');
    assert.equal(open.ua, 'access-test/1.0 ?quoted?', 'quotes in the User-Agent replaced');
    assert.equal(open.version, '1.1');
    assert.equal(open.end, 'done');
    assert.ok(open.ms > 0 && open.ms < 10000, `duration ${open.ms}`);
    assert.match(open.time, /^\d\d\/\w{3}\/\d{4}:/);

    // a poll answered with a message
    const c = await up.conn(0);
    c.send('hello');
    await sleep(100);
    const p1 = await api.poll(id, 0); requests++;
    assert.equal(p1.status, 200);
    assert.equal(p1.json.messages.length, 1, p1.text);
    // a poll answered by its timeout (poll_timeout 1s)
    const p2 = await api.poll(id, 1); requests++;
    assert.equal(p2.status, 200);
    assert.equal(p2.json.messages.length, 0, p2.text);
    const polls = await waitLines(file, (l) => l.transport === 'poll', 'two polls');
    await waitUntil(() => readLines(file).filter((l) => l.transport === 'poll').length === 2, 5000, 'two poll lines');
    const [l1, l2] = readLines(file).filter((l) => l.transport === 'poll');
    assert.ok(polls.length >= 1);
    assert.equal(l1.status, 200);
    assert.equal(l1.bytes, p1.body.length);
    assert.equal(l2.bytes, p2.body.length);
    assert.ok(l2.ms >= 800, `timed-out poll held ~1 s: ${l2.ms} ms`);
    for (const l of [l1, l2]) {
      assert.equal(l.path, `/chat/sessions/${id.slice(0, 8)}.../poll`, 'id cut, no query');
      assert.equal(l.sid, id.slice(0, 8));
      assert.equal(l.end, 'done');
    }

    // a send: IN is the body
    const sendBody = JSON.stringify({ seq: 1, messages: ['up'] });
    const s = await api.sendBody(id, sendBody); requests++;
    assert.equal(s.status, 200, s.text);
    const sl = await one(file, (l) => l.transport === 'send', 'the send');
    assert.equal(sl.in, Buffer.byteLength(sendBody));
    assert.equal(sl.bytes, s.body.length);

    // a body over max_body: 413
    const big = await api.sendBody(id, 'x'.repeat(1500)); requests++;
    assert.equal(big.status, 413);
    await one(file, (l) => l.status === 413, 'the 413');

    // a held poll dropped by the browser: 499 gone
    await rawDrop(gw.port, `GET /chat/sessions/${id}/poll?ack=1 HTTP/1.1\r\nHost: x\r\n\r\n`, 300); requests++;
    const dropped = await one(file, (l) => l.status === 499, 'the dropped poll');
    assert.equal(dropped.end, 'gone');
    assert.equal(dropped.transport, 'poll');
    assert.equal(dropped.bytes, 0);
    assert.ok(dropped.ms >= 200, `dropped after ~300 ms: ${dropped.ms}`);

    // an SSE stream the browser drops: its answer had begun (200), gone
    await sleep(200); // let the session settle after the drop
    const ev0 = await openStream(api.eventsUrl(id, '?last_event_id=1'), { accept: 'text/event-stream' }); requests++;
    c.send('zero');
    await waitUntil(() => /zero/.test(ev0.text()), 5000, 'SSE event');
    const got0 = ev0.bytes();
    ev0.destroy();
    const sd = await one(file, (l) => l.transport === 'events' && l.end === 'gone', 'the dropped SSE stream');
    assert.equal(sd.status, 200, 'the status that was sent, not one evhttp set after the drop');
    assert.ok(sd.bytes >= got0, `streamed ${sd.bytes} >= received ${got0}`);

    // the same, reset (RST): evhttp sets 400 on the request before its
    // close callback; the line keeps the 200 that was sent
    await sleep(200);
    const raw = net.connect(gw.port, '127.0.0.1');
    let rawText = '';
    raw.on('data', (d) => { rawText += d; });
    raw.on('error', () => {});
    raw.write(`GET /chat/sessions/${id}/events?last_event_id=1 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`); requests++;
    await waitUntil(() => /zero/.test(rawText), 5000, 'SSE event on the raw connection');
    c.send('unread');
    await sleep(100);
    raw.resetAndDestroy();
    const goneSse = () => readLines(file).filter((l) => l.transport === 'events' && l.end === 'gone');
    await waitUntil(() => goneSse().length === 2, 5000, 'the reset SSE stream');
    const sr = goneSse();
    assert.equal(sr[1].status, 200, 'the status that was sent, not the 400 evhttp set after the reset');

    // an SSE stream the upstream ends: bytes streamed = bytes received
    await sleep(200); // let the session settle after the drop
    const ev = await openStream(api.eventsUrl(id, '?last_event_id=1'), { accept: 'text/event-stream' }); requests++;
    assert.equal(ev.res.statusCode, 200);
    c.send('one'); c.send('two');
    await waitUntil(() => /two/.test(ev.text()), 5000, 'SSE events');
    c.ws.close(1000, 'bye');
    await withTimeout(ev.endP, 8000, 'the SSE stream ends after the upstream close');
    const sse = await one(file, (l) => l.transport === 'events' && l.end === 'done', 'the SSE stream');
    assert.equal(sse.status, 200);
    assert.equal(sse.end, 'done');
    assert.equal(sse.bytes, ev.bytes(), 'streamed bytes = what the browser received (chunk framing aside)');
    ev.destroy();

    // a WebSocket: 101, logged when it ends
    const ws = new WebSocket(gw.url('/chat/ws').replace('http:', 'ws:'));
    await withTimeout(new Promise((r, j) => { ws.on('open', r); ws.on('error', j); }), 5000, 'ws open'); requests++;
    const cw = await up.conn(1);
    ws.send('x');
    const got = new Promise((r) => ws.on('message', r));
    cw.send('yo');
    await withTimeout(got, 5000, 'ws message');
    assert.equal((await readLines(file)).filter((l) => l.status === 101).length, 0, 'not before it ends');
    ws.close(1000);
    await withTimeout(new Promise((r) => ws.on('close', r)), 5000, 'ws close');
    const wl = await one(file, (l) => l.status === 101, 'the WebSocket');
    assert.equal(wl.transport, 'ws');
    assert.equal(wl.path, '/chat/ws');
    assert.match(wl.sid, /^[A-Za-z0-9_-]{8}$/);
    assert.ok(wl.bytes >= 4, `frame bytes to the browser: ${wl.bytes}`);
    assert.ok(wl.in >= 7 + 6, `frame bytes from the browser: ${wl.in}`);

    // refused by the request limits: a bad request line, a head too slow
    const bad = await rawExchange(gw.port, 'GARBAGE\r\n\r\n', 6000); requests++;
    assert.match(bad.toString(), /^HTTP\/1\.1 400/);
    const bl = await one(file, (l) => l.status === 400, 'the bad request line');
    assert.equal(bl.method, '-');
    assert.equal(bl.path, '-');
    assert.equal(bl.bytes, Number(/content-length: (\d+)/i.exec(bad.toString())[1]));
    await rawExchange(gw.port, 'GET /chat/sessions HTTP/1.1\r\nHost: x\r\n', 5000); requests++;
    const slow = await one(file, (l) => l.status === 408, 'the header timeout');
    assert.equal(slow.end, 'cut');
    assert.equal(slow.ms, null);

    // no route: 404, route -
    const nf = await request(gw.url('/nothing/here?secret=1')); requests++;
    assert.equal(nf.status, 404);
    const nl = await one(file, (l) => l.status === 404, 'the 404');
    assert.equal(nl.route, '-');
    assert.equal(nl.path, '/nothing/here', 'no query string');

    await sleep(300);
    const all = readLines(file);
    assert.equal(all.length, requests, `one line per request:\n${all.map((l) => l.line).join('\n')}`);
    const text = fs.readFileSync(file, 'utf8');
    assert.ok(!text.includes(id), 'the full session id is never logged');
    assert.ok(!text.includes('pollgate-refused'), 'the refusal token is never logged');
    assert.equal((fs.statSync(file).mode & 0o777), 0o640);
  });

  test('SIGUSR1 reopens the access log and the error log after a rename; nothing lost', async (t) => {
    const dir = tmpDir(t, 'pollgate-al-');
    const file = path.join(dir, 'access.log');
    const err = path.join(dir, 'error.log');
    const { gw } = await bridge(t, { gateway: { access_log: file, error_log: err } });
    for (let i = 0; i < 3; i++) assert.equal((await request(gw.url(`/none/${i}`))).status, 404);
    await waitUntil(() => readLines(file).length === 3, 5000, '3 lines');
    assert.match(fs.readFileSync(err, 'utf8'), /listening/, 'log lines in error_log');
    fs.renameSync(file, `${file}.1`);
    fs.renameSync(err, `${err}.1`);
    // still the old file until the signal
    assert.equal((await request(gw.url('/none/3'))).status, 404);
    await waitUntil(() => readLines(`${file}.1`).length === 4, 5000, 'line 4 in the renamed file');
    gw.proc.child.kill('SIGUSR1');
    await waitUntil(() => fs.existsSync(file) && fs.existsSync(err), 5000, 'new files');
    for (let i = 4; i < 6; i++) assert.equal((await request(gw.url(`/none/${i}`))).status, 404);
    await waitUntil(() => readLines(file).length === 2, 5000, '2 lines in the new file');
    assert.deepEqual(readLines(`${file}.1`).map((l) => l.path), [0, 1, 2, 3].map((i) => `/none/${i}`));
    assert.deepEqual(readLines(file).map((l) => l.path), ['/none/4', '/none/5']);
    await waitUntil(() => /access log .* reopened/.test(fs.readFileSync(err, 'utf8')), 5000, 'reopen logged in the new error log');
    assert.ok(!/reopened/.test(fs.readFileSync(`${err}.1`, 'utf8')));
    // a line still buffered at exit is written: stop right after the answer
    assert.equal((await request(gw.url('/none/last'))).status, 404);
    await gw.stop();
    assert.equal(readLines(file).at(-1).path, '/none/last', 'flushed on exit');
    assert.ok(!/Sanitizer/.test(fs.readFileSync(err, 'utf8') + fs.readFileSync(`${err}.1`, 'utf8')), 'no sanitizer report in error_log');
  });

  test('a sink that does not read: lines past access_log_buffer dropped and counted, requests still served', async (t) => {
    const dir = tmpDir(t, 'pollgate-al-');
    const fifo = path.join(dir, 'access.fifo');
    execFileSync('mkfifo', [fifo]);
    // a reader that never reads, so pollgate can open the write end
    const rfd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    t.after(() => { try { fs.closeSync(rfd); } catch { /* closed */ } });
    const { gw } = await bridge(t, { gateway: { access_log: fifo, access_log_buffer: '4KiB' } });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    t.after(() => agent.destroy());
    const N = 1200; // ~100 bytes a line: far more than a 64 KiB pipe + 4 KiB
    for (let i = 0; i < N; i += 8) {
      await Promise.all(Array.from({ length: 8 }, (_, k) =>
        request(gw.url(`/n/${i + k}`), { agent }).then((r) => assert.equal(r.status, 404))));
    }
    const st = await request(gw.adminUrl('/stats'));
    const dropped = st.json.access_log_dropped;
    assert.ok(dropped > 0, `dropped counted: ${st.text.slice(0, 300)}`);
    const m = await request(gw.adminUrl('/metrics'));
    const mm = /^pollgate_access_log_dropped_total (\d+)/m.exec(m.text);
    assert.ok(mm && Number(mm[1]) >= dropped, 'metric pollgate_access_log_dropped_total');
    // now read: what was kept arrives, whole lines; kept + dropped = N
    let text = '';
    const buf = Buffer.alloc(65536);
    const t0 = Date.now();
    let idle = 0;
    while (Date.now() - t0 < 10000 && idle < 10) {
      let n = 0;
      try { n = fs.readSync(rfd, buf, 0, buf.length, null); } catch (e) { if (e.code !== 'EAGAIN') throw e; }
      if (n > 0) { text += buf.subarray(0, n).toString('utf8'); idle = 0; } else { idle++; await sleep(100); }
    }
    const lines = parseText(text);
    const st2 = await request(gw.adminUrl('/stats'));
    // the two /stats and /metrics requests are on the admin port: not logged
    assert.equal(lines.length + st2.json.access_log_dropped, N,
      `kept ${lines.length} + dropped ${st2.json.access_log_dropped} = ${N}`);
    assert.ok(text.endsWith('\n'));
  });

  test('stderr writes lines there; off (the default) writes none', async (t) => {
    const a = await bridge(t, { gateway: { access_log: 'stderr' } });
    assert.equal((await request(a.gw.url('/x/y'))).status, 404);
    await waitUntil(() => parseText(a.gw.stderr()).some((l) => l.path === '/x/y'), 5000, 'line on stderr');
    const b = await bridge(t, {});
    assert.equal((await request(b.gw.url('/x/z'))).status, 404);
    const id = await b.api.openOk();
    await b.api.poll(id, 0);
    await sleep(500);
    assert.equal(parseText(b.gw.stderr()).length, 0, 'off: no access log lines');
  });
});

describe('GET /sessions transport', () => {
  test('the transport of every session, current and last', async (t) => {
    const up = await startEchoUpstream(t);
    const gw = await startSockjsGateway(t, {
      routes: [sockjsRoute('sj', '/sj', up), { name: 'chat', path: '/chat', up }],
      session: { poll_timeout: '3s', heartbeat: '30s' },
      gateway: { access_log: 'stderr' },
    });
    up.reset();
    const list = async () => (await request(gw.adminUrl('/sessions'))).json.sessions;
    const byId = async (pred) => (await list()).find(pred);
    const api = new Api(gw, '/chat');
    t.after(() => api.destroy());
    const cleanup = [];
    t.after(() => { for (const f of cleanup) f(); });

    // native long-poll: "poll" while held, then "none" (last: poll)
    const id = await api.openOk();
    assert.equal((await byId((s) => s.id === id)).transport, 'none');
    const held = api.poll(id, 0);
    await waitFor(async () => (await byId((s) => s.id === id)).transport === 'poll', 5000, 'poll attached');
    await held;
    const after = await byId((s) => s.id === id);
    assert.equal(after.transport, 'none');
    assert.equal(after.last_transport, 'poll');

    // native SSE
    const ev = await openStream(api.eventsUrl(id), { accept: 'text/event-stream' });
    cleanup.push(() => ev.destroy());
    await waitFor(async () => (await byId((s) => s.id === id)).transport === 'sse', 5000, 'sse attached');

    // native WebSocket
    const ws = new WebSocket(gw.url('/chat/ws').replace('http:', 'ws:'));
    cleanup.push(() => ws.terminate());
    await withTimeout(new Promise((r, j) => { ws.on('open', r); ws.on('error', j); }), 5000, 'ws open');
    await waitFor(async () => (await list()).some((s) => s.transport === 'ws'), 5000, 'ws session');

    // SockJS: each transport on a session of its own
    const sj = (sid, tr, q = '') => gw.url(`/sj/sockjs/000/${sid}/${tr}${q}`);
    const streamOpen = async (sid, tr, q, method = 'GET') => {
      const s = await new Promise((resolve, reject) => {
        const agent = new http.Agent({ keepAlive: false });
        const req = http.request(sj(sid, tr, q), { method, agent });
        req.on('error', reject);
        req.on('response', (res) => { res.on('data', () => {}); res.on('error', () => {}); resolve({ destroy() { req.destroy(); res.destroy(); } }); });
        req.end();
      });
      cleanup.push(() => s.destroy());
    };
    await streamOpen('sxs00001', 'xhr_streaming', '', 'POST');
    await streamOpen('sev00001', 'eventsource', '');
    await streamOpen('shf00001', 'htmlfile', '?c=cb');
    const xo = await request(sj('sxp00001', 'xhr'), { method: 'POST' });
    assert.equal(xo.text, 'o\n');
    const jo = await request(sj('sjp00001', 'jsonp', '?c=cb'));
    assert.equal(jo.status, 200);
    const sws = new WebSocket(sj('sws00001', 'websocket').replace('http:', 'ws:'));
    cleanup.push(() => sws.terminate());
    await withTimeout(new Promise((r, j) => { sws.on('open', r); sws.on('error', j); }), 5000, 'sockjs ws open');

    const want = { sxs00001: 'xhr-streaming', sev00001: 'eventsource', shf00001: 'htmlfile' };
    await waitFor(async () => {
      const l = await list();
      return Object.entries(want).every(([k, v]) => l.some((s) => s.id === k && s.transport === v)) &&
        l.some((s) => s.transport === 'websocket');
    }, 5000, 'SockJS streams attached');
    const l = await list();
    assert.equal(l.find((s) => s.id === 'sxp00001').last_transport, 'xhr-polling');
    assert.equal(l.find((s) => s.id === 'sjp00001').last_transport, 'jsonp');
    for (const s of l) assert.equal(typeof s.transport, 'string');
    // and the access log names the endpoint of each request
    await waitUntil(() => parseText(gw.stderr()).some((x) => x.transport === 'jsonp'), 5000, 'jsonp line');
    const lines = parseText(gw.stderr());
    const xl = lines.find((x) => x.transport === 'xhr');
    assert.equal(xl.sid, 'sxp0', 'a short SockJS id cut to half (GW_LOG_ID)');
    assert.equal(xl.route, 'sj');
    assert.equal(xl.path, '/sj/sockjs/000/sxp0.../xhr');
  });
});

const haveLogrotate = (() => {
  try { execFileSync('logrotate', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
})();

describe('contrib/logrotate/pollgate', () => {
  test('logrotate rotates both files, SIGUSR1 from postrotate, new lines in the new files, none lost',
    { skip: !haveLogrotate && 'logrotate not installed' }, async (t) => {
      const dir = tmpDir(t, 'pollgate-lr-');
      const file = path.join(dir, 'access.log');
      const err = path.join(dir, 'error.log');
      const { gw } = await bridge(t, { gateway: { access_log: file, error_log: err } });
      const pid = gw.proc.child.pid;
      // the shipped file with this test's paths, user and pid
      const shipped = fs.readFileSync(path.join(SRCDIR, 'contrib/logrotate/pollgate'), 'utf8');
      const me = execFileSync('id', ['-un']).toString().trim();
      const grp = execFileSync('id', ['-gn']).toString().trim();
      const conf = shipped
        .replace('/var/log/pollgate/access.log', file)
        .replace('/var/log/pollgate/error.log', err)
        .replace(/create 0640 pollgate pollgate/, `create 0640 ${me} ${grp}`)
        .replace(/^\s*pkill -USR1 -x pollgate.*$/m, `        kill -USR1 ${pid}`)
        .replace(/^\s*(daily|compress|delaycompress)$/mg, '');
      assert.match(conf, new RegExp(`kill -USR1 ${pid}`), 'postrotate line replaced');
      const confFile = path.join(dir, 'logrotate.conf');
      fs.writeFileSync(confFile, conf);
      for (let i = 0; i < 5; i++) assert.equal((await request(gw.url(`/a/${i}`))).status, 404);
      await waitUntil(() => readLines(file).length === 5, 5000, '5 lines');
      execFileSync('logrotate', ['-f', '-s', path.join(dir, 'state'), confFile]);
      assert.ok(fs.existsSync(`${file}.1`) && fs.existsSync(`${err}.1`), 'rotated');
      await waitUntil(() => /access log .* reopened/.test(fs.existsSync(err) ? fs.readFileSync(err, 'utf8') : ''), 5000, 'reopened (in the new error log)');
      for (let i = 5; i < 8; i++) assert.equal((await request(gw.url(`/a/${i}`))).status, 404);
      await waitUntil(() => readLines(file).length === 3, 5000, '3 lines in the new file');
      assert.deepEqual(readLines(`${file}.1`).map((l) => l.path), [0, 1, 2, 3, 4].map((i) => `/a/${i}`));
      assert.deepEqual(readLines(file).map((l) => l.path), [5, 6, 7].map((i) => `/a/${i}`));
      assert.match(fs.readFileSync(`${err}.1`, 'utf8'), /listening/);
      await gw.stop();
      assert.ok(!/Sanitizer/.test(fs.readFileSync(err, 'utf8')), 'no sanitizer report in error_log');
    });
});

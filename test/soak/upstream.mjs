// upstream.mjs - the soak's upstream push server, run as a child process of
// soak.mjs (so the driver can SIGKILL and restart it). npm `ws` on
// 127.0.0.1:<argv[2]>.
//
// Every connection is one pollgate session; the driver names it through the
// forwarded `Authorization: Bearer <key>` header. Per connection:
//   - it sends numbered text messages {"n":1,..},{"n":2,..}: one every
//     1-3 s, or for "heavy" keys (containing "H") a 4 KiB message every
//     20 ms while its socket is writable (these are the ones whose browser
//     stalls, so that overflow = pause engages);
//   - it checks the numbered messages the browser sends ({"n":..}): each
//     must be the previous + 1 (otherwise a duplicate or a gap).
// It reports over IPC: {ev:'listening'}, {ev:'open',key},
// {ev:'anom',key,kind,n,last}, {ev:'close',key,code,recv,sent}.

import { WebSocketServer } from 'ws';

const port = Number(process.argv[2]);
const PAD = 'x'.repeat(4096);
const send = (m) => { if (process.connected) process.send(m); };

const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, maxPayload: 1 << 20 });
wss.on('listening', () => send({ ev: 'listening' }));
wss.on('connection', (ws, req) => {
  const key = (req.headers.authorization || '').replace(/^Bearer /, '') || `anon-${Math.random()}`;
  // pollgate's start-up reachability check carries no key
  if (key.startsWith('anon-')) return;
  const heavy = key.includes('H');
  let sent = 0;
  let recv = 0;
  send({ ev: 'open', key });
  let timer;
  const tick = () => {
    if (ws.readyState !== 1) return;
    if (heavy) {
      // keep at most ~256 KiB in ws's own buffer: the rest is TCP pushing back
      while (ws.bufferedAmount < 256 * 1024 && ws.readyState === 1) {
        ws.send(JSON.stringify({ n: ++sent, p: PAD }));
        if (sent % 8 === 0) break;
      }
      timer = setTimeout(tick, 20);
    } else {
      ws.send(JSON.stringify({ n: ++sent }));
      timer = setTimeout(tick, 1000 + Math.random() * 2000);
    }
  };
  timer = setTimeout(tick, 200 + Math.random() * 800);
  ws.on('message', (data) => {
    let n;
    try { n = JSON.parse(data.toString()).n; } catch { n = undefined; }
    if (!Number.isInteger(n)) { send({ ev: 'anom', key, kind: 'garbage', n: String(data).slice(0, 40), last: recv }); return; }
    if (n === recv + 1) recv = n;
    else if (n <= recv) send({ ev: 'anom', key, kind: 'dup', n, last: recv });
    else { send({ ev: 'anom', key, kind: 'gap', n, last: recv }); recv = n; }
  });
  ws.on('close', (code) => {
    clearTimeout(timer);
    send({ ev: 'close', key, code, recv, sent });
  });
  ws.on('error', () => {});
});
process.on('disconnect', () => process.exit(0));

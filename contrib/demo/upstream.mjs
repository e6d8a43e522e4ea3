// Demo upstream: a tiny WebSocket chat server (npm "ws") for pollgate's
// quick start. It knows nothing about pollgate.
//   /chat  every text message is broadcast to every connected client
//   /echo  every message (text or binary) is sent back to its sender
// Usage: node contrib/demo/upstream.mjs [--port 9000] [--host 127.0.0.1]
import { WebSocketServer } from 'ws';

const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : def;
};
const port = Number(arg('--port', 9000));
const host = arg('--host', '127.0.0.1');

const wss = new WebSocketServer({ host, port, maxPayload: 1 << 20 });
let nextId = 1;

wss.on('connection', (ws, req) => {
  const path = new URL(req.url, 'http://x').pathname;
  const id = nextId++;
  const who = req.headers['x-real-ip'] || req.socket.remoteAddress;
  if (path === '/echo') {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    return;
  }
  if (path !== '/chat') {
    ws.close(1008, 'unknown path');
    return;
  }
  const broadcast = (text) => {
    for (const c of wss.clients) if (c.readyState === 1) c.send(text);
  };
  broadcast(JSON.stringify({ system: true, text: `user${id} joined (${who})` }));
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    broadcast(JSON.stringify({ from: `user${id}`, text: data.toString() }));
  });
  ws.on('close', () =>
    broadcast(JSON.stringify({ system: true, text: `user${id} left` })));
});

wss.on('listening', () =>
  console.error(`demo upstream listening on ws://${host}:${port}/chat and /echo`));
const stop = () => { wss.close(); process.exit(0); };
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

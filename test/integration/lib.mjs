// lib.mjs - helpers shared by the integration tests: locating the binaries
// under test, running them bounded in time, parsing wsc_probe output, temp
// dirs, certificates made with the openssl CLI, ports and small awaitables.
//
// Every process and server started through these helpers is registered with
// the test's `t.after`, so a failing or timed-out test leaves nothing behind.

import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

const here = path.dirname(fileURLToPath(import.meta.url));
export const SRCDIR = process.env.POLLGATE_SRCDIR || path.resolve(here, '..', '..');
export const BUILDDIR = process.env.POLLGATE_BUILDDIR || SRCDIR;
export const POLLGATE_BIN =
  process.env.POLLGATE_BIN || path.join(BUILDDIR, 'gateway', 'pollgate');
export const WSC_PROBE_BIN =
  process.env.WSC_PROBE_BIN || path.join(BUILDDIR, 'test', 'tools', 'wsc_probe');

/** Throws a clear error when a binary under test was not built. */
export function requireBin(bin, envName) {
  if (!existsSync(bin)) {
    throw new Error(`binary not found: ${bin} (build it with make, or set ${envName})`);
  }
  return bin;
}

// ------------------------------------------------------------ small awaits

/** Rejects with a message naming `what` unless `promise` settles within ms. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves with the event's arguments (array) the first time it fires. */
export function onceEvent(emitter, event, ms, what = event) {
  return withTimeout(
    new Promise((resolve) => emitter.once(event, (...args) => resolve(args))),
    ms,
    what
  );
}

/** A promise with its resolve/reject exposed. */
export function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- processes

/**
 * Start `bin args` with stdout/stderr captured. Killed (SIGKILL) after
 * opts.timeoutMs and at the end of test `t` if still running.
 * Returns { child, done, stdoutLines, waitStdout(regex, ms) } where done
 * resolves to { code, signal, stdout, stderr, ms, timedOut }.
 */
export function startProcess(t, bin, args, opts = {}) {
  const timeoutMs = opts.timeoutMs ?? 15000;
  const started = Date.now();
  const child = spawn(bin, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(opts.env || {}) },
  });
  let stdout = '';
  let stderr = '';
  let partial = '';
  const lineWaiters = [];
  const stdoutLines = [];
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    stdout += d;
    partial += d;
    let i;
    while ((i = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, i);
      partial = partial.slice(i + 1);
      stdoutLines.push(line);
      for (const w of lineWaiters.slice()) {
        if (w.re.test(line)) {
          lineWaiters.splice(lineWaiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  let timedOut = false;
  const killer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const done = new Promise((resolve, reject) => {
    child.on('error', (e) => {
      clearTimeout(killer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      for (const w of lineWaiters) w.reject(new Error(`process exited before a line matched ${w.re}\nstdout:\n${stdout}\nstderr:\n${stderr}`));
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started, timedOut });
    });
  });
  done.catch(() => {});
  if (t) {
    t.after(() => {
      clearTimeout(killer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
  }
  return {
    child,
    done,
    stdoutLines,
    /** Resolves with the first stdout line (seen so far or later) matching re. */
    waitStdout(re, ms = 5000) {
      const seen = stdoutLines.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      const d = deferred();
      lineWaiters.push({ re, resolve: d.resolve, reject: d.reject });
      return withTimeout(d.promise, ms, `stdout line matching ${re}`);
    },
  };
}

/** Run to completion; resolves to { code, signal, stdout, stderr, ms, timedOut }. */
export function runProcess(t, bin, args, opts = {}) {
  return startProcess(t, bin, args, opts).done;
}

/** A one-line summary of a finished process for assertion messages. */
export function describeRun(r) {
  return `exit=${r.code} signal=${r.signal} timedOut=${r.timedOut} ms=${r.ms}\n` +
    `--- stdout ---\n${r.stdout.length > 4000 ? r.stdout.slice(0, 4000) + '...' : r.stdout}` +
    `--- stderr ---\n${r.stderr.length > 4000 ? r.stderr.slice(0, 4000) + '...' : r.stderr}`;
}

// ------------------------------------------------------------- wsc_probe

/**
 * Build wsc_probe arguments from an options object:
 *  { ca, noVerify, protocol, headers: [], maxMessage, timeout, ping,
 *    send: [text], sendHex: [hex], echo, close, expect, quitAfter,
 *    readEnds, pauseAt, pauseMs }
 */
export function probeArgs(url, o = {}) {
  const a = [];
  if (o.ca) a.push('--ca', o.ca);
  if (o.noVerify) a.push('--no-verify');
  if (o.protocol) a.push('--protocol', o.protocol);
  for (const h of o.headers || []) a.push('--header', h);
  if (o.maxMessage !== undefined) a.push('--max-message', String(o.maxMessage));
  if (o.timeout !== undefined) a.push('--timeout', String(o.timeout));
  if (o.ping !== undefined) a.push('--ping', String(o.ping));
  for (const s of o.send || []) a.push('--send', s);
  for (const h of o.sendHex || []) a.push('--send-binary-hex', h);
  if (o.echo) a.push('--echo');
  if (o.close !== undefined) a.push('--close', String(o.close));
  if (o.expect !== undefined) a.push('--expect', String(o.expect));
  if (o.readEnds) a.push('--read-ends');
  if (o.pauseAt !== undefined) a.push('--pause-at', String(o.pauseAt));
  if (o.pauseMs !== undefined) a.push('--pause-ms', String(o.pauseMs));
  a.push('--quit-after', String(o.quitAfter ?? 8000));
  a.push(url);
  return a;
}

/**
 * Parse wsc_probe stdout into
 *  { open: {protocol} | null, messages: [{binary, len, data: Buffer}],
 *    close: {code, fail, status, opened, reason: Buffer, detail} | null,
 *    readEnds: [messages received when each read_end came] (--read-ends),
 *    pauses, resumes: [messages received at each pause / resume] (--pause-at),
 *    unparsed: [lines] }
 */
export function parseProbe(stdout) {
  const out = { open: null, messages: [], close: null, readEnds: [], pauses: [], resumes: [], unparsed: [] };
  for (const line of stdout.split('\n')) {
    if (line === '') continue;
    let m;
    if ((m = /^open protocol=(\S+)$/.exec(line))) {
      out.open = { protocol: m[1] === '-' ? null : m[1] };
    } else if ((m = /^message (text|binary) (\d+) ?([0-9a-fA-F]*)$/.exec(line))) {
      const data = Buffer.from(m[3], 'hex');
      out.messages.push({ binary: m[1] === 'binary', len: Number(m[2]), data });
    } else if (line === 'read_end') {
      out.readEnds.push(out.messages.length);
    } else if (line === 'pause') {
      out.pauses.push(out.messages.length);
    } else if (line === 'resume') {
      out.resumes.push(out.messages.length);
    } else if ((m = /^close code=(\d+) fail=(\S+) status=(\d+) opened=([01]) reason=([0-9a-fA-F]*) detail=(.*)$/.exec(line))) {
      out.close = {
        code: Number(m[1]),
        fail: m[2],
        status: Number(m[3]),
        opened: m[4] === '1',
        reason: Buffer.from(m[5], 'hex'),
        detail: m[6],
      };
    } else {
      out.unparsed.push(line);
    }
  }
  return out;
}

/** Start wsc_probe; returns the process handle plus `result` (parsed, on exit). */
export function startProbe(t, url, o = {}) {
  requireBin(WSC_PROBE_BIN, 'WSC_PROBE_BIN');
  const p = startProcess(t, WSC_PROBE_BIN, probeArgs(url, o), {
    timeoutMs: (o.quitAfter ?? 8000) + 4000,
  });
  p.result = p.done.then((r) => ({ ...r, parsed: parseProbe(r.stdout) }));
  p.result.catch(() => {});
  return p;
}

/** Run wsc_probe to completion; resolves to run result + `parsed`. */
export function runProbe(t, url, o = {}) {
  return startProbe(t, url, o).result;
}

// ------------------------------------------------------------- pollgate

export function runPollgate(t, args, opts = {}) {
  requireBin(POLLGATE_BIN, 'POLLGATE_BIN');
  return runProcess(t, POLLGATE_BIN, args, { timeoutMs: 20000, ...opts });
}

// ------------------------------------------------------------- temp files

/** A fresh temporary directory, removed after test `t`. */
export function tmpDir(t, prefix = 'pollgate-it-') {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  if (t) t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function writeFile(dir, name, text) {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

// ------------------------------------------------------------- certificates

const OPENSSL_CNF = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[srv_localhost]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
[srv_other]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:other.example
`;

async function openssl(dir, args) {
  try {
    await execFileP('openssl', args, { cwd: dir, timeout: 20000 });
  } catch (e) {
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function makeCa(dir, name, cn) {
  await openssl(dir, ['req', '-x509', '-config', 'openssl.cnf', '-extensions', 'v3_ca', ...EC,
    '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${cn}`]);
}

async function makeLeaf(dir, name, ca, cn, ext, days, serial) {
  await openssl(dir, ['req', '-new', '-config', 'openssl.cnf', ...EC,
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`,
    '-set_serial', String(serial), '-days', String(days),
    '-extfile', 'openssl.cnf', '-extensions', ext, '-out', `${name}.pem`]);
}

/**
 * Generate into dir (with the openssl CLI):
 *  ca / ca2          two unrelated CAs
 *  server            localhost + 127.0.0.1 + ::1, signed by ca
 *  other             other.example, signed by ca
 *  expired           localhost + 127.0.0.1, signed by ca, notAfter one day
 *                    before notBefore (= now): OpenSSL 3.0's `x509 -req`
 *                    has no -not_after, but accepts a negative -days.
 * Returns { dir, ca, ca2, server: {cert, key}, other: {...}, expired: {...} }
 * with PEM file paths, and `pem(file)` to read one.
 */
export async function makeCerts(dir) {
  writeFileSync(path.join(dir, 'openssl.cnf'), OPENSSL_CNF);
  await makeCa(dir, 'ca', 'pollgate test CA');
  await makeCa(dir, 'ca2', 'pollgate other CA');
  await makeLeaf(dir, 'server', 'ca', 'localhost', 'srv_localhost', 2, 1001);
  await makeLeaf(dir, 'other', 'ca', 'other.example', 'srv_other', 2, 1002);
  await makeLeaf(dir, 'expired', 'ca', 'localhost', 'srv_localhost', -1, 1003);
  const f = (n) => path.join(dir, n);
  return {
    dir,
    ca: f('ca.pem'),
    ca2: f('ca2.pem'),
    server: { cert: f('server.pem'), key: f('server.key') },
    other: { cert: f('other.pem'), key: f('other.key') },
    expired: { cert: f('expired.pem'), key: f('expired.key') },
    pem: (file) => readFileSync(file),
  };
}

// ------------------------------------------------------------- network

/** Listen on an ephemeral port; close it after test t. Resolves to the port. */
export async function listen(t, server, host = '127.0.0.1') {
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  if (t) t.after(() => closeServer(server));
  return server.address().port;
}

/** Close a net/http server and destroy its open connections. */
export function closeServer(server) {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    if (typeof server.closeAllConnections === 'function') server.closeAllConnections();
    for (const s of server._pgSockets || []) s.destroy();
    server.close(() => resolve());
  });
}

/** Keep track of a net.Server's sockets so closeServer can destroy them. */
export function trackSockets(server) {
  server._pgSockets = new Set();
  server.on('connection', (s) => {
    server._pgSockets.add(s);
    s.on('close', () => server._pgSockets.delete(s));
  });
  return server;
}

/** A port on host that nothing listens on (bound then released). */
export async function freePort(host = '127.0.0.1') {
  const s = net.createServer();
  await new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, host, resolve);
  });
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * A port on 127.0.0.1 that refuses connections. Port 1 (tcpmux) is never
 * handed out as an ephemeral port, so unlike a bound-then-released port no
 * concurrently running test can start listening on it; checked first.
 */
export async function refusedPort() {
  const code = await new Promise((resolve) => {
    const s = net.connect(1, '127.0.0.1');
    s.setTimeout(2000, () => {
      s.destroy();
      resolve('timeout');
    });
    s.on('error', (e) => resolve(e.code));
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
  });
  if (code !== 'ECONNREFUSED') throw new Error(`127.0.0.1:1 does not refuse connections here (${code})`);
  return 1;
}

/** Is ::1 usable here? */
export async function haveIpv6Loopback() {
  try {
    await freePort('::1');
    return true;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------- misc

/** Deterministic pseudo-random bytes (no dependency on crypto state). */
export function patternBytes(n, seed = 1) {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

export function hex(buf) {
  return Buffer.from(buf).toString('hex');
}

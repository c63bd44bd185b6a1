// What the tests share: a listening socket handed to child processes the
// way systemd hands it (fd 3 on, LISTEN_PID set to the child's own PID), a
// real NOTIFY_SOCKET receiver, HTTP clients and a load generator. Every
// wait is for an event, bounded only by a generous deadline that catches a
// hang.
'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const pkg = path.join(__dirname, '..');
const appJs = path.join(pkg, 'app.js');
const preloadJs = path.join(pkg, 'preload.js');
const fixture = (name) => path.join(__dirname, 'fixtures', name);

/** How long any single wait may take before the test calls it a hang. */
const hangMs = 30000;

/**
 * A list that grows, and promises for the first item that matches.
 */
class Watch {
  constructor(what) {
    this.what = what;
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    this.items.push(item);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(item)) return true;
      clearTimeout(w.timer);
      w.resolve(item);
      return false;
    });
  }

  /** Resolves with the first item, past or future, for which match is true. */
  waitFor(match, label = String(match), ms = hangMs) {
    const m = typeof match === 'function' ? match
      : match instanceof RegExp ? (x) => match.test(String(x.text ?? x))
        : (x) => String(x.text ?? x) === match;
    const found = this.items.find(m);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { match: m, resolve };
      w.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`no ${label} from ${this.what} within ${ms} ms; got:\n` +
          this.items.map((x) => String(x.text ?? x)).join('\n')));
      }, ms);
      this.waiters.push(w);
    });
  }

  /** Texts of all items so far. */
  texts() {
    return this.items.map((x) => String(x.text ?? x));
  }
}

/** Calls onLine with each line of a stream. */
function lines(stream, onLine) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  stream.on('end', () => { if (buf) onLine(buf); });
}

/**
 * Processes to kill and files to remove when the test ends, pass or fail.
 */
function cleanup(t) {
  const tasks = [];
  t.after(async () => {
    let first;
    for (const task of tasks.reverse()) {
      try {
        await task();
      } catch (err) {
        first = first || err;
      }
    }
    if (first) throw first;
  });
  return (task) => tasks.push(task);
}

/**
 * A TCP socket listening on 127.0.0.1, created here as systemd creates
 * app.socket. It is never served here: close() it once the children that
 * serve it have been started, so that only they accept.
 */
async function listeningSocket({ backlog = 4096 } = {}) {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, backlog }, resolve);
  });
  return {
    server,
    // The descriptor, for a child's stdio (Node has no public accessor).
    fd: server._handle.fd,
    port: server.address().port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * Starts node with script in a clean environment. Values "$$" in env are
 * replaced by the child's own PID (a shell sets them, then execs node, so
 * the PID stays), which is how LISTEN_PID and WATCHDOG_PID get it. The
 * descriptors in fds become fd 3, 4, ... of the child.
 *
 * @returns {{proc: import('node:child_process').ChildProcess, out: Watch,
 *   exited: Promise<{code: number | null, signal: string | null}>}}
 */
function spawnNode(script, { env = {}, fds = [], args = [], stdout = 'pipe', stderr = 'pipe' } = {}) {
  const fixed = { PATH: process.env.PATH || '/usr/bin:/bin' };
  const ownPid = [];
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) continue;
    if (v === '$$') ownPid.push(k);
    else fixed[k] = v;
  }
  const sh = ownPid.map((k) => `${k}=$$; export ${k}; `).join('') + 'exec "$@"';
  const proc = spawn('/bin/sh', ['-c', sh, 'sh', process.execPath, script, ...args], {
    env: fixed,
    stdio: ['pipe', stdout, stderr, ...fds],
  });
  const out = new Watch(`${path.basename(script)} (${env.INSTANCE || env.NODE_APP_INSTANCE || 'child'})`);
  if (proc.stdout) lines(proc.stdout, (text) => out.push({ source: 'stdout', text }));
  if (proc.stderr) lines(proc.stderr, (text) => out.push({ source: 'stderr', text }));
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return { proc, out, exited };
}

/** Waits for a child to exit; fails the test on a hang. */
async function exitOf(child, ms = hangMs) {
  let timer;
  const hang = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${child.out.what} did not exit within ${ms} ms:\n` +
      child.out.texts().join('\n'))), ms);
  });
  try {
    return await Promise.race([child.exited, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** Kills a child still running (for cleanup). */
function killer(child) {
  return async () => {
    if (child.proc.exitCode === null && child.proc.signalCode === null) {
      child.proc.kill('SIGKILL');
      await child.exited;
    }
  };
}

/**
 * A real sd_notify receiver: a unix datagram socket bound by Python (Node
 * cannot bind one), which prints each message with its arrival time and
 * closes the descriptors systemd-notify passes with BARRIER=1, as systemd
 * does, so that systemd-notify returns at once.
 */
async function notifyReceiver(onCleanup) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'unitkit-notify-'));
  const socket = path.join(dir, 'notify');
  const proc = spawn('/usr/bin/python3', [path.join(__dirname, 'notify_receiver.py'), socket], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  onCleanup(async () => {
    proc.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  // Each line is {"bound": true} once, then {"t": seconds, "msg": text}.
  const messages = new Watch('the notify socket');
  let onBound;
  const bound = new Promise((resolve) => { onBound = resolve; });
  lines(proc.stdout, (text) => {
    const m = JSON.parse(text);
    if (m.bound) onBound();
    else messages.push({ text: m.msg, t: m.t });
  });
  const exited = new Promise((_, reject) => proc.once('exit', (code) =>
    reject(new Error(`the notify receiver exited with status ${code}`))));
  exited.catch(() => {});
  await Promise.race([bound, exited]);
  return { socket, messages };
}

/**
 * One HTTP request; resolves with status, headers and body, or rejects.
 */
function get(port, urlPath, { agent = false, timeout = hangMs } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent, timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath}: no answer within ${timeout} ms`)));
    req.on('error', reject);
  });
}

/**
 * A client connection spoken to in raw HTTP/1.1, for requests sent in
 * parts and answers read one by one.
 */
async function rawConnection(port) {
  const sock = net.connect({ host: '127.0.0.1', port });
  await new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  let buf = '';
  let ended = false;
  const waiting = [];
  const check = () => {
    while (waiting.length) {
      const head = buf.indexOf('\r\n\r\n');
      if (head < 0) break;
      const [statusLine, ...headerLines] = buf.slice(0, head).split('\r\n');
      const headers = {};
      for (const l of headerLines) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const len = Number(headers['content-length'] || 0);
      if (buf.length < head + 4 + len) break;
      const body = buf.slice(head + 4, head + 4 + len);
      buf = buf.slice(head + 4 + len);
      waiting.shift().resolve({ status: Number(statusLine.split(' ')[1]), headers, body });
    }
    if (ended) for (const w of waiting.splice(0)) w.reject(new Error('connection closed before a full answer'));
  };
  sock.setEncoding('utf8');
  sock.on('data', (c) => { buf += c; check(); });
  const closed = new Promise((resolve) => sock.once('close', resolve));
  sock.on('end', () => { ended = true; check(); });
  sock.on('error', () => { ended = true; check(); });
  return {
    write: (text) => sock.write(text),
    /** The next full answer on this connection. */
    answer: () => new Promise((resolve, reject) => { waiting.push({ resolve, reject }); check(); }),
    closed,
    destroy: () => sock.destroy(),
  };
}

/**
 * Closed-loop load: clients loops of GET path, over keep-alive
 * connections or a fresh one per request. Counts answers per X-Instance
 * and every failure (an error or a status other than 200). It stops when
 * the test ends, if not before.
 */
function load(onCleanup, port, { clients, path: urlPath = '/', keepAlive }) {
  const agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: clients }) : false;
  const stats = { ok: 0, failed: 0, errors: [], byInstance: new Map() };
  let conditions = [];
  let running = true;
  const loop = async () => {
    while (running) {
      try {
        const r = await get(port, urlPath, { agent, timeout: 10000 });
        if (r.status !== 200) throw new Error(`status ${r.status}: ${r.body.trim()}`);
        stats.ok++;
        const who = r.headers['x-instance'] || '?';
        stats.byInstance.set(who, (stats.byInstance.get(who) || 0) + 1);
      } catch (err) {
        stats.failed++;
        if (stats.errors.length < 10) stats.errors.push(err.message);
        // A failure can come at once, again and again: let timers run.
        await new Promise((resolve) => setImmediate(resolve));
      }
      conditions = conditions.filter((c) => !c.check());
    }
  };
  const loops = Array.from({ length: clients }, loop);
  const stop = async () => {
    running = false;
    await Promise.all(loops);
    if (agent) agent.destroy();
    return stats;
  };
  onCleanup(stop);
  return {
    stats,
    count: (instance) => stats.byInstance.get(instance) || 0,
    /** Resolves once pred(stats) holds; rejects on a hang. */
    until: (pred, label) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        conditions = conditions.filter((c) => c !== cond);
        reject(new Error(`load on ${urlPath}: not ${label} within ${hangMs} ms: ` +
          `${stats.ok} answers ${JSON.stringify([...stats.byInstance])}, ${stats.failed} failed`));
      }, hangMs);
      const cond = {
        check: () => {
          if (!pred(stats)) return false;
          clearTimeout(timer);
          resolve();
          return true;
        },
      };
      if (!cond.check()) conditions.push(cond);
    }),
    stop,
  };
}

/**
 * The mixed load of the drain tests: keep-alive, fresh and long requests
 * at once. served(name, n) resolves once instance name has answered n of
 * them in all; stopAndCheck() stops the load and asserts that none failed.
 */
function mixedLoad(onCleanup, port) {
  const loads = [
    load(onCleanup, port, { clients: 8, keepAlive: true }),
    load(onCleanup, port, { clients: 4, keepAlive: false }),
    load(onCleanup, port, { clients: 2, keepAlive: true, path: '/sleep?ms=200' }),
  ];
  const total = (name) => loads.reduce((n, l) => n + l.count(name), 0);
  return {
    total,
    // Checked after each answer of the first load, which never pauses.
    served: (name, n) => loads[0].until(() => total(name) >= n, `${n} answers from ${name}`),
    async stopAndCheck() {
      const results = await Promise.all(loads.map((l) => l.stop()));
      for (const [i, r] of results.entries()) {
        assert.equal(r.failed, 0, `load ${i}: ${r.failed} of ${r.ok + r.failed} requests failed: ${r.errors.join('; ')}`);
      }
    },
  };
}

/** The accept queue length of the socket listening on port, as ss shows it. */
async function backlogOf(port) {
  const { execFileSync } = require('node:child_process');
  const out = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' });
  const fields = out.trim().split(/\s+/);
  assert.equal(fields[0], 'LISTEN', `ss output: ${out}`);
  return Number(fields[2]);
}

module.exports = {
  appJs, preloadJs, fixture, hangMs, Watch, cleanup, listeningSocket, spawnNode, exitOf, killer,
  notifyReceiver, get, rawConnection, load, mixedLoad, backlogOf,
};

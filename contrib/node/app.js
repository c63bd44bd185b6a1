// A Node.js instance for unitkit: the same contract as the Go activation
// library, in plain Node (no dependencies, Node 18 or later).
//
// Under systemd (app@N.service with node.conf) it serves the socket
// app.socket hands it as fd 3, says READY=1 once listening, sends WATCHDOG=1
// while its event loop turns, and drains on SIGTERM without failing a
// request. Anywhere else it listens on $PORT itself, and under PM2 it says
// "ready" to PM2 (pm2 start app.js -i N --wait-ready), so the same file can
// be compared under both.
//
// It answers, like cmd/app:
//
//   GET /            "hello from instance N"
//   GET /work?ms=N   burns CPU for N milliseconds (0 to 10000)
//   GET /sleep?ms=N  holds the request for N milliseconds (0 to 60000)
//   GET /healthz     200 while the process serves
//   GET /readyz      200 while it takes new requests, 503 once draining
//
// with X-Instance on every response. Environment: $INSTANCE (the unit sets
// it to N), $PORT (default 8080, only outside socket activation),
// $DRAIN_TIMEOUT (a duration such as 30s or 500ms, default 30s).
'use strict';

const http = require('node:http');
const net = require('node:net');
const { execFile } = require('node:child_process');

// idleGraceMs is how long a keep-alive connection idle at the start of a
// drain is left open, in case its client is about to send on it.
const idleGraceMs = 1000;

// parseDuration reads "250ms", "30s" or "2m" into milliseconds.
function parseDuration(name, text) {
  const m = /^(\d+)(ms|s|m)$/.exec(text);
  if (!m) {
    throw new Error(`${name}=${JSON.stringify(text)}: want a duration such as 30s, 500ms or 2m`);
  }
  const ms = Number(m[1]) * { ms: 1, s: 1000, m: 60000 }[m[2]];
  if (ms > 3600000) {
    throw new Error(`${name}=${JSON.stringify(text)}: at most 1h`);
  }
  return ms;
}

// parsePort reads a TCP port number.
function parsePort(text) {
  if (!/^\d+$/.test(text) || Number(text) > 65535) {
    throw new Error(`PORT=${JSON.stringify(text)}: want a port number from 0 to 65535`);
  }
  return Number(text);
}

// config reads and validates the environment.
function config(env) {
  return {
    instance: env.INSTANCE || env.NODE_APP_INSTANCE || String(process.pid),
    drainMs: parseDuration('DRAIN_TIMEOUT', env.DRAIN_TIMEOUT || '30s'),
    // systemd passes the socket as fd 3 with LISTEN_PID set to our PID.
    listen: env.LISTEN_PID === String(process.pid) && Number(env.LISTEN_FDS) >= 1
      ? { fd: 3 }
      : { port: parsePort(env.PORT || '8080') },
    notifySocket: env.NOTIFY_SOCKET || '',
    watchdogMs: env.WATCHDOG_PID && env.WATCHDOG_PID !== String(process.pid)
      ? 0 : Number(env.WATCHDOG_USEC || 0) / 1000,
    journal: Boolean(env.JOURNAL_STREAM),
  };
}

// logger prints one line per record; under systemd a <N> prefix gives
// journald the syslog priority.
function logger(cfg) {
  const line = (prio, msg) => (cfg.journal ? `<${prio}>${msg}` : msg);
  return {
    info: (msg) => console.log(line(6, msg)),
    warn: (msg) => console.error(line(4, msg)),
    error: (msg) => console.error(line(3, msg)),
  };
}

// notifier sends sd_notify messages through systemd-notify, which waits
// until systemd has read the message (so it is never lost when the helper
// exits first). The unit needs NotifyAccess=all: the helper is our child,
// not the main process.
function notifier(cfg, log) {
  return (...vars) => {
    if (!cfg.notifySocket) return;
    execFile('systemd-notify', vars, (err) => {
      if (err) log.warn(`systemd-notify ${vars.join(' ')}: ${err.message}`);
    });
  };
}

// msParam reads ?ms= as an integer from 0 to max, or returns null.
function msParam(url, max) {
  const v = url.searchParams.get('ms') || '0';
  return /^\d+$/.test(v) && Number(v) <= max ? Number(v) : null;
}

// route answers one request.
function route(state, req, res) {
  const url = new URL(req.url, 'http://localhost');
  const reply = (code, body) => {
    res.statusCode = code;
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.end(body + '\n');
  };
  switch (url.pathname) {
    case '/':
      return reply(200, `hello from instance ${state.cfg.instance}`);
    case '/healthz':
      return reply(200, 'ok');
    case '/readyz':
      return state.draining ? reply(503, 'draining') : reply(200, 'ready');
    case '/work': {
      const ms = msParam(url, 10000);
      if (ms === null) return reply(400, 'ms: want an integer from 0 to 10000');
      const end = Date.now() + ms;
      while (Date.now() < end) { /* burn CPU */ }
      return reply(200, `worked ${ms} ms`);
    }
    case '/sleep': {
      const ms = msParam(url, 60000);
      if (ms === null) return reply(400, 'ms: want an integer from 0 to 60000');
      setTimeout(() => reply(200, `slept ${ms} ms`), ms);
      return undefined;
    }
    default:
      return reply(404, 'not found');
  }
}

// handler reads the request body, then routes; once draining, every
// response closes its connection.
function handler(state) {
  return (req, res) => {
    res.setHeader('X-Instance', state.cfg.instance);
    if (state.draining) res.setHeader('Connection', 'close');
    req.resume();
    req.on('end', () => route(state, req, res));
  };
}

// drain stops taking connections and exits once those already accepted
// are done. http.Server.close is not used to stop accepting: it also
// closes idle keep-alive connections at once, and a request already on its
// way over one of them would fail. Instead the listener closes (the socket
// and its queue stay with systemd and the other instances), responses say
// "Connection: close", and only connections still idle after idleGraceMs
// are closed.
function drain(state, signal) {
  if (state.draining) {
    state.log.warn(`${signal} again: exiting with connections open`);
    process.exit(1);
  }
  state.draining = true;
  state.log.info(`${signal}: draining (timeout ${state.cfg.drainMs} ms)`);
  state.notify('STOPPING=1', 'STATUS=draining');
  net.Server.prototype.close.call(state.server, () => {
    state.log.info('drained');
    process.exit(0);
  });
  setTimeout(() => state.server.closeIdleConnections(), idleGraceMs).unref();
  setTimeout(() => {
    state.log.error(`drain timeout reached with connections open: exiting`);
    process.exit(1);
  }, state.cfg.drainMs).unref();
}

// main validates the environment, serves, and wires the signals.
function main() {
  let cfg;
  try {
    cfg = config(process.env);
  } catch (err) {
    console.error(`app: ${err.message}`);
    process.exit(1);
  }
  const log = logger(cfg);
  const state = { cfg, log, draining: false, notify: notifier(cfg, log) };
  state.server = http.createServer(handler(state));
  state.server.on('error', (err) => {
    log.error(`serve: ${err.message}`);
    process.exit(1);
  });
  state.server.listen(cfg.listen, () => {
    log.info(`instance ${cfg.instance} serving ${cfg.listen.fd === 3 ? 'the socket systemd passed' : 'port ' + cfg.listen.port}`);
    state.notify('READY=1', 'STATUS=serving');
    if (process.send) process.send('ready'); // PM2 --wait-ready
  });
  // Each ping proves the event loop turns: a handler that blocks it for
  // longer than WatchdogSec= gets the instance killed and replaced.
  if (cfg.watchdogMs > 0) {
    setInterval(() => state.notify('WATCHDOG=1'), cfg.watchdogMs / 4).unref();
  }
  process.on('SIGTERM', () => drain(state, 'SIGTERM'));
  process.on('SIGINT', () => drain(state, 'SIGINT')); // PM2's stop signal
  process.on('SIGHUP', () => log.info('SIGHUP: nothing to reload')); // systemctl reload
}

main();

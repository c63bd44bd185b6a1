// unitkit's preload module: makes an unmodified app written for PM2
// cluster mode an instance of a unitkit herd, the way PM2 itself
// intercepts listen() in its workers. Load it before the app:
//
//   NODE_OPTIONS="--require /usr/lib/app/node/preload.js" node server.js
//
// (the packages of the service "app" install it there; appctl import
// writes that line).
//
// Under socket activation (LISTEN_FDS/LISTEN_PID for this process) it
//   - serves the app's first TCP listen(), on whatever port, from the
//     socket systemd passed (net.Server.prototype.listen is patched);
//   - sends READY=1 once that server listens, or, with UNITKIT_WAIT_READY=1,
//     when the app says process.send('ready') (PM2's wait_ready); it
//     defines process.send for that when there is no IPC parent;
//   - drains that server without failing a request on SIGTERM or SIGINT;
//     the app's own SIGINT/SIGTERM handler still runs, and its
//     server.close(callback) is that drain: the callback runs once the last
//     connection has ended. Without such a handler the process exits 0 once
//     drained;
//   - answers /healthz and /readyz on that server, and pings the watchdog;
//   - reports on stderr what it cannot map (another listening port, a unix
//     socket path, cluster workers, IPC messages) and lets it go on.
// Anywhere else (no LISTEN_FDS for this process) it changes nothing.
'use strict';

const net = require('node:net');
const { createLogger } = require('./lib/log');
const { parseWaitReady } = require('./lib/env');
const instance = require('./lib/instance');

const log = createLogger({ prefix: 'unitkit: ' });

/** Stops the app before it starts: the environment is wrong. */
function fail(err) {
  log.error(`${err.message} (in the preload, before the app started)`);
  process.exit(1);
}

/** What a listen() call asks for, as Node reads its arguments. */
function requested(args) {
  const a = args[0];
  if (a !== null && typeof a === 'object') {
    if (a._handle || a.handle || typeof a.fd === 'number') return { kind: 'handle' };
    if (a.port !== undefined) return { kind: 'tcp', what: `port ${a.port}` };
    if (typeof a.path === 'string' && a.path !== '') return { kind: 'path', what: a.path };
    return { kind: 'tcp', what: 'any port' };
  }
  // A string that is not a number is a unix socket path (as in Node).
  if (typeof a === 'string' && !(Number(a) >= 0)) return { kind: 'path', what: a };
  return { kind: 'tcp', what: typeof a === 'function' || a === undefined ? 'any port' : `port ${a}` };
}

function activate() {
  let waitReady;
  try {
    waitReady = parseWaitReady(process.env);
    instance.settings();
  } catch (err) {
    fail(err);
  }
  instance.handleSignals('app');
  instance.startWatchdog();

  let served = null;
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function unitkitListen(...args) {
    const r = requested(args);
    if (r.kind === 'handle' || served === this) return Reflect.apply(listen, this, args);
    if (r.kind === 'path') {
      log.warn(`listen(${JSON.stringify(r.what)}): a unix socket path is not mapped to the socket systemd passed; ` +
        'the server listens on that path itself');
      return Reflect.apply(listen, this, args);
    }
    if (served) {
      log.warn(`listen(${r.what}) of a second server is not mapped: only the first TCP server is served ` +
        'from the socket systemd passed; this one binds its port itself, in every instance');
      return Reflect.apply(listen, this, args);
    }
    let sock;
    try {
      sock = instance.take();
    } catch (err) {
      log.warn(`listen(${r.what}) is not mapped: ${err.message}`);
      return Reflect.apply(listen, this, args);
    }
    served = this;
    const cb = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
    // Registered before the app's callback, so READY=1 is on its way first.
    this.once('listening', () => {
      instance.manage(this);
      log.info(`listen(${r.what}) is served from the socket systemd passed (${sock.name})`);
      if (!waitReady) instance.ready();
      else instance.notify("STATUS=listening, waiting for process.send('ready')");
    });
    return instance.rawListen(this, sock, cb);
  };

  // PM2's wait_ready: the app says process.send('ready') when warmed up.
  const send = typeof process.send === 'function' ? process.send : null;
  let dropped = false;
  process.send = function unitkitSend(message, ...rest) {
    if (message === 'ready' && waitReady) instance.ready();
    if (send) return Reflect.apply(send, process, [message, ...rest]);
    if (message !== 'ready' && !dropped) {
      dropped = true;
      log.warn(`process.send(${JSON.stringify(message)}): there is no PM2 or other IPC parent under systemd; ` +
        "messages other than 'ready' are dropped");
    }
    const cb = rest.find((x) => typeof x === 'function');
    if (cb) process.nextTick(cb, null);
    return true;
  };

  // A cluster of workers inside one instance is not what systemd runs.
  const cluster = require('node:cluster');
  const fork = cluster.fork;
  let forked = false;
  cluster.fork = function unitkitFork(...args) {
    if (!forked) {
      forked = true;
      log.warn('cluster.fork(): unitkit runs one process per instance (more instances: appctl scale); ' +
        'cluster workers are not instances, and systemd neither sees nor supervises them');
    }
    return Reflect.apply(fork, this, args);
  };
}

let sockets;
try {
  sockets = instance.activation();
} catch (err) {
  fail(err);
}
if (sockets) activate();

// The process as one instance of a unitkit herd: the sockets systemd
// passed, readiness, the watchdog, the health endpoints and the zero-drop
// drain. index.js (for apps that call it) and preload.js (for apps that do
// not know it) are two ways in; both drive this one object.
//
// There is one instance per process, whichever copy of the package creates
// it first: an app that requires its own copy of unitkit while the preload
// is loaded shares the preload's instance (sockets, signals, watchdog).
'use strict';

const net = require('node:net');
const env = require('./env');
const { createLogger } = require('./log');
const { createNotifier } = require('./notify');

/** How long a keep-alive connection idle when the drain starts stays open,
 * in case its client is about to send on it. */
const idleGraceMs = 1000;

/** DRAIN_TIMEOUT when neither the variable nor the option sets it. */
const defaultDrainMs = 30000;

/** How long an exit waits for notifications still on their way. */
const notifyFlushMs = 2000;

/** listen() on a socket that already listens sets its accept queue length
 * again, for every process sharing it. Node would ask for 511 and cut
 * app.socket's Backlog=4096 for the whole herd; this asks for the most the
 * kernel allows (net.core.somaxconn), what systemd asks for by default. */
const kernelMaxBacklog = 2147483647;

// The originals, taken before preload.js replaces listen.
const netListen = net.Server.prototype.listen;
const netClose = net.Server.prototype.close;

/** @param {string} v */
const q = (v) => JSON.stringify(v);

/**
 * @typedef {object} ServerState
 * @property {{health: string | false, ready: string | false}} paths
 * @property {number} connections  accepted and not yet closed
 * @property {Promise<void> | null} closing  set once the server drains
 */

function createInstance() {
  const log = createLogger();
  /** @type {import('./notify').Notifier} */
  let notify = () => {};
  notify.idle = () => Promise.resolve();

  const st = {
    /** @type {{sockets: import('./env').PassedSocket[] | null, names: string} | Error | null} */
    listenEnv: null,
    /** @type {{instance: string, watchdogMs: number, drainMs: number | null} | null} */
    settings: null,
    taken: new Set(),
    /** @type {Map<import('node:net').Server, ServerState>} */
    servers: new Map(),
    drainMsOption: /** @type {number | null} */ (null),
    /** @type {Array<() => unknown>} */
    onDrained: [],
    /** 'exit': exit 0 once drained; 'app': unless the app handles the signal */
    signalMode: /** @type {'' | 'exit' | 'app'} */ (''),
    watchdog: false,
    readySent: false,
    signalled: '',
    draining: false,
    drained: false,
    exiting: false,
    /** @type {Promise<void> | null} */
    drainPromise: null,
  };

  /**
   * The sockets systemd passed to this process, read once; the LISTEN_*
   * variables are then removed, so that child processes do not take them.
   */
  function activation() {
    if (!st.listenEnv) {
      try {
        const sockets = env.parseListenEnv(process.env, process.pid);
        st.listenEnv = { sockets, names: process.env.LISTEN_FDNAMES || '' };
        if (sockets) {
          delete process.env.LISTEN_FDS;
          delete process.env.LISTEN_PID;
          delete process.env.LISTEN_FDNAMES;
        }
      } catch (err) {
        st.listenEnv = /** @type {Error} */ (err);
      }
    }
    if (st.listenEnv instanceof Error) throw st.listenEnv;
    return st.listenEnv.sockets;
  }

  /** The rest of the environment, read and checked once. */
  function settings() {
    if (!st.settings) {
      const e = process.env;
      st.settings = {
        instance: env.parseInstance(e, process.pid),
        watchdogMs: env.parseWatchdog(e, process.pid),
        drainMs: e.DRAIN_TIMEOUT ? env.parseDuration('DRAIN_TIMEOUT', e.DRAIN_TIMEOUT) : null,
      };
      notify = createNotifier(e.NOTIFY_SOCKET || '', log);
    }
    return st.settings;
  }

  /**
   * Takes one passed socket: the first not yet served with that name
   * (FileDescriptorName=), or the first not yet served. Returns null
   * outside socket activation.
   *
   * @param {string} [name]
   * @returns {import('./env').PassedSocket | null}
   */
  function take(name) {
    const sockets = activation();
    if (!sockets) return null;
    const free = sockets.filter((s) => !st.taken.has(s.fd));
    const pick = name ? free.find((s) => s.name === name) : free[0];
    if (!pick) {
      const names = /** @type {{names: string}} */ (st.listenEnv).names;
      if (name && !sockets.some((s) => s.name === name)) {
        throw new Error(`no socket named ${q(name)} in LISTEN_FDNAMES=${q(names)}: ` +
          `set FileDescriptorName=${name} in the socket unit, or leave the name out to serve the first socket`);
      }
      throw new Error(`every socket systemd passed (LISTEN_FDS=${sockets.length}${names ? `, LISTEN_FDNAMES=${q(names)}` : ''}) ` +
        'is served already: give this server a socket of its own (another ListenStream= or socket unit)');
    }
    st.taken.add(pick.fd);
    return pick;
  }

  /**
   * Where a server listens: a passed socket, or outside systemd $PORT
   * (then the port given in code, then 8080).
   *
   * @param {{name?: string, port?: number | string}} options
   * @returns {{fd: number, name: string} | {port: number}}
   */
  function target(options) {
    settings();
    const sock = take(options.name);
    if (sock) return sock;
    if (process.env.PORT) return { port: env.parsePort('PORT', process.env.PORT) };
    if (options.port !== undefined) return { port: env.parsePort('port', options.port) };
    return { port: 8080 };
  }

  /**
   * Starts server listening on t, with the original listen().
   *
   * @param {import('node:net').Server} server
   * @param {{fd: number} | {port: number}} t
   * @param {() => void} [cb]
   */
  function rawListen(server, t, cb) {
    if ('fd' in t) return netListen.call(server, { fd: t.fd }, kernelMaxBacklog, cb);
    return netListen.call(server, { port: t.port }, cb);
  }

  /**
   * Makes server part of the instance: health endpoints and
   * "Connection: close" while draining (for HTTP servers), its connections
   * counted, its close() the zero-drop drain, the signals handled.
   *
   * @param {import('node:net').Server} server
   * @param {{healthPath?: string | false | null, readyPath?: string | false | null}} [paths]
   */
  function manage(server, paths = {}) {
    if (st.servers.has(server)) return;
    /** @type {ServerState} */
    const s = {
      paths: {
        health: paths.healthPath === undefined ? '/healthz' : (paths.healthPath || false),
        ready: paths.readyPath === undefined ? '/readyz' : (paths.readyPath || false),
      },
      connections: 0,
      closing: null,
    };
    st.servers.set(server, s);
    server.on('connection', (sock) => {
      s.connections++;
      sock.once('close', () => { s.connections--; });
    });
    // Requests are seen before any 'request' listener, however and
    // whenever the app added its own.
    const emit = server.emit;
    server.emit = function emitRequest(event, req, res) {
      if ((event === 'request' || event === 'checkContinue') && res && typeof res.setHeader === 'function') {
        if (st.draining || s.closing) res.setHeader('Connection', 'close');
        if (probe(s, req, res)) return true;
      }
      return Reflect.apply(emit, this, arguments);
    };
    // server.close(cb) drains too: the app's callback runs once the last
    // connection has ended (see drainServer).
    server.close = function close(cb) {
      drainServer(this).then(() => { if (typeof cb === 'function') process.nextTick(cb); });
      return this;
    };
  }

  /**
   * Answers GET/HEAD on the health (200 while serving) and readiness (200
   * when ready, 503 before READY=1 and once draining) paths.
   *
   * @returns {boolean} whether the request was a probe
   */
  function probe(s, req, res) {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const path = String(req.url).split('?', 1)[0];
    let code;
    let body;
    if (s.paths.health && path === s.paths.health) {
      [code, body] = [200, 'ok'];
    } else if (s.paths.ready && path === s.paths.ready) {
      if (st.draining || s.closing) [code, body] = [503, 'draining'];
      else if (!st.readySent) [code, body] = [503, 'starting'];
      else [code, body] = [200, 'ready'];
    } else {
      return false;
    }
    req.resume();
    res.statusCode = code;
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.setHeader('X-Instance', settings().instance);
    res.end(body + '\n');
    return true;
  }

  /** Sends READY=1 (once). */
  function ready() {
    if (st.readySent) return;
    st.readySent = true;
    notify('READY=1', 'STATUS=serving');
  }

  /** Pings WATCHDOG=1 from a timer, which fires only while the event loop
   * turns: a handler that blocks it for WatchdogSec= gets the instance
   * killed and replaced. */
  function startWatchdog() {
    const ms = settings().watchdogMs;
    if (st.watchdog || ms === 0) return;
    st.watchdog = true;
    setInterval(() => notify('WATCHDOG=1'), ms).unref();
  }

  /**
   * The zero-drop close of one server. http.Server.close() is not used:
   * it also closes idle keep-alive connections at once (Node 19 and
   * later), and a request already on its way over one of them fails.
   * Instead only the listener closes (under systemd the socket and its
   * queue stay with systemd and the other instances), every response from
   * now on says "Connection: close", and connections still idle after
   * idleGraceMs are closed. Resolves once the last connection has ended.
   *
   * @param {import('node:net').Server} server
   * @returns {Promise<void>}
   */
  function drainServer(server) {
    const s = /** @type {ServerState} */ (st.servers.get(server));
    if (!s.closing) {
      s.closing = new Promise((resolve) => netClose.call(server, () => resolve()));
      if (typeof server.closeIdleConnections === 'function') {
        setTimeout(() => server.closeIdleConnections(), idleGraceMs).unref();
      }
    }
    return s.closing;
  }

  /** Connections still open on every server of the instance. */
  function openConnections() {
    let n = 0;
    for (const s of st.servers.values()) n += s.connections;
    return n;
  }

  /**
   * Drains the instance: STOPPING=1, then every server as drainServer
   * does, bounded by the drain timeout ($DRAIN_TIMEOUT, else the option,
   * else 30 s), past which the process exits with status 1.
   *
   * @param {string} reason  what started it, for the log
   * @returns {Promise<void>} resolved once drained
   */
  function drain(reason) {
    if (st.drainPromise) return st.drainPromise;
    st.draining = true;
    const ms = settings().drainMs ?? st.drainMsOption ?? defaultDrainMs;
    log.info(`${reason}: draining (timeout ${ms} ms)`);
    notify('STOPPING=1', 'STATUS=draining');
    setTimeout(() => {
      if (!st.drained) {
        log.error(`drain timeout reached with ${openConnections()} connection(s) open: exiting`);
      } else {
        log.error(`drained, but ${st.signalMode === 'app' ? "the app's signal handler" : 'onDrained'} ` +
          'did not finish within the drain timeout: exiting');
      }
      st.exiting = true;
      process.exit(1);
    }, ms).unref();
    st.drainPromise = Promise.all([...st.servers.keys()].map(drainServer)).then(() => {
      st.drained = true;
      log.info('drained');
    });
    return st.drainPromise;
  }

  /** Exits once the notifications given so far are sent (bounded). */
  function exit(code) {
    st.exiting = true;
    const flushed = new Promise((resolve) => setTimeout(resolve, notifyFlushMs).unref());
    Promise.race([notify.idle(), flushed]).then(() => process.exit(code));
  }

  /** Listeners for sig other than the instance's own. */
  const appListeners = (sig) => process.rawListeners(sig).filter((l) => l !== onSignal);

  /** SIGTERM (systemd's stop) or SIGINT (Ctrl-C, PM2's stop): drain. */
  function onSignal(sig) {
    if (st.signalled) {
      log.warn(`${sig} again: exiting with connections open`);
      st.exiting = true;
      process.exit(1);
    }
    st.signalled = sig;
    let appExits = false;
    if (st.signalMode === 'app') {
      // Node runs the app's own listeners for sig after this one. An app
      // written for PM2 listens for SIGINT; under systemd, which stops
      // with SIGTERM, its SIGINT handler runs all the same.
      appExits = appListeners(sig).length > 0;
      if (!appExits && sig === 'SIGTERM' && appListeners('SIGINT').length > 0) {
        appExits = true;
        drain(sig);
        log.info("SIGTERM: running the app's SIGINT handler (PM2 stops with SIGINT, systemd with SIGTERM)");
        for (const l of appListeners('SIGINT')) l.call(process, 'SIGINT');
      }
    }
    drain(sig).then(async () => {
      if (appExits) return; // the app's handler exits, bounded by the drain timeout
      for (const fn of st.onDrained) await fn(sig);
      exit(0);
    });
  }

  /**
   * Handles SIGTERM, SIGINT and SIGHUP from now on.
   *
   * @param {'exit' | 'app'} mode  'exit': exit 0 once drained (index.js);
   *   'app': the same, unless the app has its own handler for the signal,
   *   which then decides when to exit (preload.js)
   */
  function handleSignals(mode) {
    if (st.signalMode) return;
    st.signalMode = mode;
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // systemctl reload sends SIGHUP, whose default action kills the process.
    process.on('SIGHUP', () => {
      if (process.listenerCount('SIGHUP') === 1) log.info('SIGHUP: nothing to reload');
    });
    process.on('exit', (code) => {
      const open = openConnections();
      if (st.draining && !st.drained && !st.exiting && open > 0) {
        log.warn(`exit ${code} during the drain with ${open} connection(s) open: their requests fail ` +
          "(exit from server.close()'s callback instead)");
      }
    });
  }

  /**
   * Settings given in code by index.js's options.
   *
   * @param {{drainTimeout?: number, onDrained?: () => unknown}} options
   */
  function configure(options) {
    if (options.drainTimeout !== undefined) st.drainMsOption = options.drainTimeout;
    if (options.onDrained) st.onDrained.push(options.onDrained);
  }

  return {
    log,
    notify: (...vars) => { settings(); notify(...vars); },
    activation, settings, take, target, rawListen, manage, ready, startWatchdog, handleSignals, configure,
    get draining() { return st.draining; },
  };
}

const key = Symbol.for('unitkit.instance.v1');
module.exports = globalThis[key] || (globalThis[key] = createInstance());

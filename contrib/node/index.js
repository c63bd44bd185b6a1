// unitkit for Node.js: makes a server one instance of a unitkit herd, the
// counterpart of the Go activation library. It serves the socket systemd
// passes (LISTEN_FDS, by name), or $PORT outside systemd; says READY=1 once
// listening; pings the watchdog while the event loop turns; answers
// /healthz and /readyz; and on SIGTERM or SIGINT drains without failing a
// request, then exits 0. No dependencies; Node 18 or later.
//
//   const unitkit = require('unitkit');
//   unitkit.serve(app);                       // an Express app, or any (req, res) handler
//   await unitkit.listen(server, { name: 'app.socket' });  // your own http/https/net server
//
// See README.md for the options and the environment.
'use strict';

const http = require('node:http');
const instance = require('./lib/instance');

/**
 * @typedef {object} Options
 * @property {string} [name]  under systemd, serve the passed socket with this
 *   name (FileDescriptorName=, in $LISTEN_FDNAMES); default: the first one
 *   no other server serves
 * @property {number | string} [port]  outside systemd, the port to listen on
 *   when $PORT is unset (default 8080; 0 picks a free one)
 * @property {string | false | null} [healthPath]  liveness endpoint, 200
 *   while the process serves (default "/healthz"; false: none)
 * @property {string | false | null} [readyPath]  readiness endpoint, 200
 *   while taking new requests, 503 "draining" once draining (default
 *   "/readyz"; false: none)
 * @property {number} [drainTimeout]  milliseconds the drain may take when
 *   $DRAIN_TIMEOUT is unset (default 30000); past it the process exits 1
 * @property {(signal: string) => unknown} [onDrained]  runs once the last
 *   connection has ended, before exit 0 (e.g. to close a database pool);
 *   may return a Promise, which is awaited within the drain timeout
 */

const known = new Set(['name', 'port', 'healthPath', 'readyPath', 'drainTimeout', 'onDrained']);

/**
 * Checks options given in code; mistakes there are the caller's, so they
 * throw at once.
 *
 * @param {Options | undefined} options
 * @returns {Options}
 */
function checkOptions(options) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object') throw new TypeError('unitkit: options must be an object');
  for (const k of Object.keys(options)) {
    if (!known.has(k)) throw new TypeError(`unitkit: unknown option ${JSON.stringify(k)} (known: ${[...known].join(', ')})`);
  }
  const { name, healthPath, readyPath, drainTimeout, onDrained } = options;
  if (name !== undefined && (typeof name !== 'string' || name === '')) {
    throw new TypeError('unitkit: name must be a socket name such as "app.socket"');
  }
  for (const [k, v] of [['healthPath', healthPath], ['readyPath', readyPath]]) {
    if (v !== undefined && v !== null && v !== false && !(typeof v === 'string' && v.startsWith('/'))) {
      throw new TypeError(`unitkit: ${k} must be a path starting with "/", or false for none`);
    }
  }
  if (drainTimeout !== undefined && !(Number.isInteger(drainTimeout) && drainTimeout >= 1 && drainTimeout <= 3600000)) {
    throw new TypeError('unitkit: drainTimeout must be a number of milliseconds from 1 to 3600000');
  }
  if (onDrained !== undefined && typeof onDrained !== 'function') {
    throw new TypeError('unitkit: onDrained must be a function');
  }
  return options;
}

/**
 * Starts server on t and makes it part of the instance once it listens.
 *
 * @param {import('node:net').Server} server
 * @param {{fd: number, name: string} | {port: number}} t
 * @param {Options} opts
 * @returns {Promise<import('node:net').Server>}
 */
function start(server, t, opts) {
  return new Promise((resolve, reject) => {
    const onError = (err) => {
      server.removeListener('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.removeListener('error', onError);
      // Before any connection is accepted: they come in later turns of
      // the event loop.
      instance.manage(server, opts);
      instance.handleSignals('exit');
      instance.startWatchdog();
      const addr = server.address();
      const where = 'fd' in t
        ? `the socket systemd passed (${t.name})`
        : `port ${addr && typeof addr === 'object' ? addr.port : t.port}`;
      instance.log.info(`instance ${instance.settings().instance} serving ${where}`);
      instance.ready();
      resolve(server);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    instance.rawListen(server, t);
  });
}

/**
 * Makes server (an http.Server, https.Server or any net.Server) an
 * instance: it listens on the socket systemd passed, or on $PORT outside
 * systemd, and READY=1 is sent once it does. The promise is rejected when
 * the environment is wrong (the message names the variable) or the server
 * cannot listen; with a callback, it is also called as callback(err) or
 * callback(null, server).
 *
 * Options given in code are defaults: $PORT and $DRAIN_TIMEOUT, which the
 * unit or the operator sets, win over port and drainTimeout.
 *
 * @param {import('node:net').Server} server
 * @param {Options | ((err: Error | null, server?: import('node:net').Server) => void)} [options]
 * @param {(err: Error | null, server?: import('node:net').Server) => void} [callback]
 * @returns {Promise<import('node:net').Server>} the server, once listening
 */
function listen(server, options, callback) {
  if (typeof options === 'function') [options, callback] = [undefined, options];
  if (!server || typeof server.listen !== 'function' || typeof server.address !== 'function') {
    throw new TypeError('unitkit: listen(server): want an http.Server, https.Server or net.Server');
  }
  const opts = checkOptions(options);
  let p;
  try {
    const t = instance.target(opts);
    instance.configure(opts);
    p = start(server, t, opts);
  } catch (err) {
    p = Promise.reject(err);
  }
  if (typeof callback === 'function') {
    p.then((s) => process.nextTick(callback, null, s), (err) => process.nextTick(callback, err));
  }
  return p;
}

/**
 * Creates an http.Server for handler (an Express app, or any request
 * listener), makes it an instance as listen() does, and returns it at
 * once, like Express's app.listen(). A wrong environment throws here. If
 * the server then cannot listen, the error goes to the server's 'error'
 * listeners if it has any; otherwise it is logged and the process exits
 * with status 1, for systemd to start it again.
 *
 * @param {(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void} handler
 * @param {Options} [options]
 * @returns {import('node:http').Server}
 */
function serve(handler, options) {
  if (typeof handler !== 'function') {
    throw new TypeError('unitkit: serve(handler): want an Express app or a (req, res) function');
  }
  const opts = checkOptions(options);
  const t = instance.target(opts);
  instance.configure(opts);
  const server = http.createServer(handler);
  start(server, t, opts).catch((err) => {
    if (server.listenerCount('error') > 0) return; // they were given it
    instance.log.error(`cannot serve: ${err.message}`);
    process.exit(1);
  });
  return server;
}

/**
 * Sends sd_notify variables to systemd, e.g. notify('STATUS=warming up');
 * nothing outside systemd. READY=1, WATCHDOG=1 and STOPPING=1 are sent by
 * unitkit itself.
 *
 * @param {...string} vars  "NAME=value" pairs
 */
function notify(...vars) {
  instance.notify(...vars);
}

module.exports = {
  listen,
  serve,
  notify,
  /** The logger: log.info(msg) … log.error(msg), one line each, with
   * journal priorities under systemd. */
  log: instance.log,
  /** The instance's name: $INSTANCE (app@N.service sets N), else PM2's
   * $NODE_APP_INSTANCE, else the PID. */
  get instance() { return instance.settings().instance; },
  /** Whether the instance has started draining. */
  get draining() { return instance.draining; },
};

// sd_notify(3) for Node: READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 to
// the service manager at $NOTIFY_SOCKET.
//
// Node has no unix datagram sockets, so each message is sent by
// systemd-notify, a child process. It waits until systemd has read the
// message (BARRIER=1), so nothing is lost when the helper exits before
// systemd looks. Because the sender is our child, not the unit's main
// process, the unit needs NotifyAccess=all (see node.conf).
//
// Messages go out one helper at a time, in the order they were given: a
// STATUS= or STOPPING=1 never overtakes the READY=1 before it. A watchdog
// ping is not queued behind another one still waiting.
'use strict';

const { execFile } = require('node:child_process');

/** How long one systemd-notify may take before it is killed. */
const helperTimeoutMs = 10000;

/**
 * @typedef {((...vars: string[]) => void) & {idle: () => Promise<void>}} Notifier
 */

/**
 * Creates a notifier for socket (the value of $NOTIFY_SOCKET); with no
 * socket, messages are dropped, as sd_notify does outside systemd.
 *
 * @param {string} socket
 * @param {{warn: (msg: string) => void}} log  where a failed send is reported
 * @returns {Notifier}
 */
function createNotifier(socket, log) {
  /** @type {string[][]} */
  const queue = [];
  let running = false;
  let lastError = '';
  /** @type {Array<() => void>} */
  let idleWaiters = [];
  const env = { NOTIFY_SOCKET: socket, PATH: process.env.PATH || '/usr/bin:/bin' };

  const next = () => {
    if (running) return;
    const vars = queue.shift();
    if (!vars) {
      for (const w of idleWaiters) w();
      idleWaiters = [];
      return;
    }
    running = true;
    execFile('systemd-notify', vars, { env, timeout: helperTimeoutMs }, (err, _stdout, stderr) => {
      running = false;
      if (err) {
        // Reported once per distinct failure: a missing helper would
        // otherwise repeat with every watchdog ping.
        const msg = `systemd-notify ${vars.join(' ')}: ${(String(stderr).trim() || err.message)}`;
        const key = String(stderr).trim() || err.message;
        if (key !== lastError) log.warn(msg);
        lastError = key;
      } else {
        lastError = '';
      }
      next();
    });
  };

  /** @type {Notifier} */
  const notify = Object.assign((...vars) => {
    if (!socket || vars.length === 0) return;
    const ping = vars.length === 1 && vars[0] === 'WATCHDOG=1';
    if (ping && queue.some((v) => v.length === 1 && v[0] === 'WATCHDOG=1')) return;
    queue.push(vars);
    next();
  }, {
    // Resolves once every message given so far has been sent.
    idle: () => (running || queue.length
      ? new Promise((resolve) => idleWaiters.push(resolve))
      : Promise.resolve()),
  });
  return notify;
}

module.exports = { createNotifier };

// Reading the environment systemd (or the operator) gives an instance:
// pure functions of an environment object and a PID, so that every rule
// and every error message can be tested without a process of its own.
// Each error names the variable at fault and says what it should be.
'use strict';

/** @param {string} v */
const q = (v) => JSON.stringify(v);

/** The longest drain a typo ("30m" for "30s") can ask for. */
const maxDrainMs = 3600000;

/**
 * @typedef {object} PassedSocket
 * @property {number} fd    descriptor number, 3 and up
 * @property {string} name  its name in LISTEN_FDNAMES (FileDescriptorName=)
 */

/**
 * Reads LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES as sd_listen_fds(3)
 * defines them: the descriptors from 3 on, meant for the process whose PID
 * is LISTEN_PID. Variables meant for another process (a parent's, copied
 * into a child) are ignored: the result is null, as when none are set.
 *
 * @param {Record<string, string | undefined>} env
 * @param {number} pid  this process's PID
 * @returns {PassedSocket[] | null}
 */
function parseListenEnv(env, pid) {
  const fds = env.LISTEN_FDS;
  if (fds === undefined || fds === '') return null;
  const owner = env.LISTEN_PID || '';
  if (!/^[1-9]\d{0,9}$/.test(owner)) {
    throw new Error(`LISTEN_PID=${q(owner)} is not a process ID, and LISTEN_FDS is set: ` +
      'systemd sets both for the process it starts; unset LISTEN_FDS to listen on $PORT');
  }
  if (Number(owner) !== pid) return null;
  if (!/^\d{1,4}$/.test(fds) || Number(fds) > 4096) {
    throw new Error(`LISTEN_FDS=${q(fds)} is not a count of file descriptors: ` +
      'systemd sets it; unset it to listen on $PORT');
  }
  const n = Number(fds);
  if (n === 0) return null;
  let names = new Array(n).fill('');
  if (env.LISTEN_FDNAMES) {
    names = env.LISTEN_FDNAMES.split(':');
    if (names.length !== n) {
      throw new Error(`LISTEN_FDNAMES=${q(env.LISTEN_FDNAMES)} names ${names.length} sockets, ` +
        `LISTEN_FDS=${n}: systemd sets them together; set one name per descriptor or unset it`);
    }
  }
  return names.map((name, i) => ({ fd: 3 + i, name: name || `LISTEN_FD_${3 + i}` }));
}

/**
 * Reads a TCP port number: $PORT, or the fallback given in code.
 *
 * @param {string} name  the variable or option it comes from, for errors
 * @param {string | number} value
 * @returns {number}
 */
function parsePort(name, value) {
  const text = String(value);
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new Error(`${name}=${q(text)}: want a port number from 0 (any free port) to 65535, e.g. 8080`);
  }
  return Number(text);
}

/**
 * Reads a duration such as "250ms", "30s" or "2m" into milliseconds,
 * from 1 ms to 1 h.
 *
 * @param {string} name  the variable it comes from, for errors
 * @param {string} text
 * @returns {number}
 */
function parseDuration(name, text) {
  const m = /^(\d{1,7})(ms|s|m)$/.exec(text);
  const ms = m ? Number(m[1]) * { ms: 1, s: 1000, m: 60000 }[m[2]] : NaN;
  if (!(ms >= 1 && ms <= maxDrainMs)) {
    throw new Error(`${name}=${q(text)}: want a duration from 1ms to 60m, such as 30s, 500ms or 2m`);
  }
  return ms;
}

/**
 * Reads WATCHDOG_USEC and WATCHDOG_PID as systemd sets them for a unit
 * with WatchdogSec=: how often to ping, in milliseconds (a quarter of the
 * timeout), or 0 when the watchdog is off or meant for another process.
 *
 * @param {Record<string, string | undefined>} env
 * @param {number} pid  this process's PID
 * @returns {number}
 */
function parseWatchdog(env, pid) {
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || usec === '') return 0;
  const owner = env.WATCHDOG_PID;
  if (owner !== undefined && owner !== '') {
    if (!/^[1-9]\d{0,9}$/.test(owner)) {
      throw new Error(`WATCHDOG_PID=${q(owner)} is not a process ID: systemd sets it with WATCHDOG_USEC; unset both`);
    }
    if (Number(owner) !== pid) return 0;
  }
  if (!/^[1-9]\d{0,12}$/.test(usec)) {
    throw new Error(`WATCHDOG_USEC=${q(usec)} is not a positive number of microseconds: ` +
      'systemd sets it from WatchdogSec=; unset it to turn the watchdog off');
  }
  return Math.max(1, Math.floor(Number(usec) / 4000));
}

/**
 * Reads UNITKIT_WAIT_READY: whether READY=1 waits for the app's
 * process.send('ready') (PM2's wait_ready) instead of its server listening.
 *
 * @param {Record<string, string | undefined>} env
 * @returns {boolean}
 */
function parseWaitReady(env) {
  const v = env.UNITKIT_WAIT_READY;
  if (v === undefined || v === '' || v === '0') return false;
  if (v === '1') return true;
  throw new Error(`UNITKIT_WAIT_READY=${q(v)}: want 1 (READY=1 waits for process.send('ready')) ` +
    'or 0 (READY=1 once the server listens)');
}

/**
 * The instance's name: $INSTANCE (the unit sets it to %i), else PM2's
 * $NODE_APP_INSTANCE, else the PID. It goes into the X-Instance header.
 *
 * @param {Record<string, string | undefined>} env
 * @param {number} pid
 * @returns {string}
 */
function parseInstance(env, pid) {
  for (const key of ['INSTANCE', 'NODE_APP_INSTANCE']) {
    const v = env[key];
    if (v === undefined || v === '') continue;
    if (v.length > 64 || !/^[\x21-\x7e]+$/.test(v)) {
      throw new Error(`${key}=${q(v)}: want at most 64 printable characters without spaces, e.g. 3`);
    }
    return v;
  }
  return String(pid);
}

/**
 * Reads JOURNAL_STREAM ("device:inode" of the journal's stream, set by
 * systemd when stdout or stderr goes to journald). Malformed values are
 * ignored: they only decide whether log lines carry a priority prefix.
 *
 * @param {Record<string, string | undefined>} env
 * @returns {{dev: bigint, ino: bigint} | null}
 */
function parseJournalStream(env) {
  const m = /^(\d{1,20}):(\d{1,20})$/.exec(env.JOURNAL_STREAM || '');
  return m ? { dev: BigInt(m[1]), ino: BigInt(m[2]) } : null;
}

module.exports = {
  parseListenEnv, parsePort, parseDuration, parseWatchdog, parseWaitReady,
  parseInstance, parseJournalStream,
};

// The instance's logger: one line per record on stdout (debug, info) or
// stderr (notice and worse). When that stream is the journal's (its device
// and inode match $JOURNAL_STREAM, as under systemd), every line starts with
// a <N> syslog priority prefix, which journald turns into the record's
// PRIORITY= and strips; anywhere else the lines are plain.
'use strict';

const fs = require('node:fs');
const { parseJournalStream } = require('./env');

/**
 * Whether descriptor fd is the journal stream named by $JOURNAL_STREAM.
 *
 * @param {number} fd
 * @param {{dev: bigint, ino: bigint} | null} journal
 * @returns {boolean}
 */
function isJournal(fd, journal) {
  if (!journal) return false;
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    return st.dev === journal.dev && st.ino === journal.ino;
  } catch {
    return false;
  }
}

/**
 * @typedef {object} Logger
 * @property {(msg: string) => void} debug   priority 7, stdout
 * @property {(msg: string) => void} info    priority 6, stdout
 * @property {(msg: string) => void} notice  priority 5, stderr
 * @property {(msg: string) => void} warn    priority 4, stderr
 * @property {(msg: string) => void} error   priority 3, stderr
 */

/**
 * Creates a logger writing to the given streams (process.stdout and
 * process.stderr by default), with priority prefixes on whichever of them
 * is the journal stream of env.JOURNAL_STREAM. Each line of a multi-line
 * message gets its own prefix, so journald keeps its priority.
 *
 * @param {object} [options]
 * @param {Record<string, string | undefined>} [options.env]  default process.env
 * @param {string} [options.prefix]  put before every message, e.g. "unitkit: "
 * @returns {Logger}
 */
function createLogger({ env = process.env, prefix = '' } = {}) {
  const journal = parseJournalStream(env);
  const out = { stream: process.stdout, journal: isJournal(1, journal) };
  const err = { stream: process.stderr, journal: isJournal(2, journal) };
  const write = (to, prio) => (msg) => {
    const lines = String(msg).split('\n').map((l) => (to.journal ? `<${prio}>` : '') + prefix + l);
    to.stream.write(lines.join('\n') + '\n');
  };
  return {
    debug: write(out, 7),
    info: write(out, 6),
    notice: write(err, 5),
    warn: write(err, 4),
    error: write(err, 3),
  };
}

module.exports = { createLogger };

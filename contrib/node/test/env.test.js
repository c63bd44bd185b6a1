// The environment: how each variable is read (pure functions), what a
// process started with a wrong one says before it exits, and the logger's
// journal priorities.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const test = require('node:test');
const env = require('../lib/env');
const h = require('../testing/helpers');

test('LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES are read as sd_listen_fds does', () => {
  assert.equal(env.parseListenEnv({}, 42), null);
  assert.equal(env.parseListenEnv({ LISTEN_FDS: '1', LISTEN_PID: '41' }, 42), null, 'meant for another process');
  assert.equal(env.parseListenEnv({ LISTEN_FDS: '0', LISTEN_PID: '42' }, 42), null);
  assert.deepEqual(env.parseListenEnv({ LISTEN_FDS: '2', LISTEN_PID: '42', LISTEN_FDNAMES: 'app.socket:metrics' }, 42),
    [{ fd: 3, name: 'app.socket' }, { fd: 4, name: 'metrics' }]);
  assert.deepEqual(env.parseListenEnv({ LISTEN_FDS: '1', LISTEN_PID: '42' }, 42), [{ fd: 3, name: 'LISTEN_FD_3' }]);
  assert.throws(() => env.parseListenEnv({ LISTEN_FDS: '1' }, 42), /LISTEN_PID="" is not a process ID/);
  assert.throws(() => env.parseListenEnv({ LISTEN_FDS: '1', LISTEN_PID: '-1' }, 42), /LISTEN_PID="-1"/);
  assert.throws(() => env.parseListenEnv({ LISTEN_FDS: '1x', LISTEN_PID: '42' }, 42), /LISTEN_FDS="1x"/);
  assert.throws(() => env.parseListenEnv({ LISTEN_FDS: '9999', LISTEN_PID: '42' }, 42), /LISTEN_FDS="9999"/);
  assert.throws(() => env.parseListenEnv({ LISTEN_FDS: '1', LISTEN_PID: '42', LISTEN_FDNAMES: 'a:b' }, 42),
    /LISTEN_FDNAMES="a:b" names 2 sockets, LISTEN_FDS=1/);
});

test('PORT, DRAIN_TIMEOUT, WATCHDOG_*, UNITKIT_WAIT_READY and INSTANCE are checked', () => {
  assert.equal(env.parsePort('PORT', '8080'), 8080);
  assert.equal(env.parsePort('PORT', '0'), 0);
  for (const bad of ['', 'http', '-1', '65536', '80.5', ' 80']) {
    assert.throws(() => env.parsePort('PORT', bad), new RegExp(`PORT=${JSON.stringify(bad)}: want a port number`));
  }
  assert.equal(env.parseDuration('DRAIN_TIMEOUT', '500ms'), 500);
  assert.equal(env.parseDuration('DRAIN_TIMEOUT', '30s'), 30000);
  assert.equal(env.parseDuration('DRAIN_TIMEOUT', '2m'), 120000);
  for (const bad of ['30', '0s', '1.5s', '2h', '61m', 's']) {
    assert.throws(() => env.parseDuration('DRAIN_TIMEOUT', bad), /DRAIN_TIMEOUT=.*want a duration from 1ms to 60m/);
  }
  assert.equal(env.parseWatchdog({}, 42), 0);
  assert.equal(env.parseWatchdog({ WATCHDOG_USEC: '10000000' }, 42), 2500, 'a quarter of WatchdogSec=');
  assert.equal(env.parseWatchdog({ WATCHDOG_USEC: '10000000', WATCHDOG_PID: '42' }, 42), 2500);
  assert.equal(env.parseWatchdog({ WATCHDOG_USEC: '10000000', WATCHDOG_PID: '7' }, 42), 0, 'meant for another process');
  assert.throws(() => env.parseWatchdog({ WATCHDOG_USEC: 'soon' }, 42), /WATCHDOG_USEC="soon"/);
  assert.throws(() => env.parseWatchdog({ WATCHDOG_USEC: '1', WATCHDOG_PID: 'me' }, 42), /WATCHDOG_PID="me"/);
  assert.equal(env.parseWaitReady({}), false);
  assert.equal(env.parseWaitReady({ UNITKIT_WAIT_READY: '0' }), false);
  assert.equal(env.parseWaitReady({ UNITKIT_WAIT_READY: '1' }), true);
  assert.throws(() => env.parseWaitReady({ UNITKIT_WAIT_READY: 'yes' }), /UNITKIT_WAIT_READY="yes": want 1/);
  assert.equal(env.parseInstance({ INSTANCE: '3', NODE_APP_INSTANCE: '0' }, 42), '3');
  assert.equal(env.parseInstance({ NODE_APP_INSTANCE: '0' }, 42), '0');
  assert.equal(env.parseInstance({}, 42), '42');
  assert.throws(() => env.parseInstance({ INSTANCE: 'a b' }, 42), /INSTANCE="a b"/);
});

test('a process started with a wrong environment names the variable and exits 1', { timeout: 120000 }, async () => {
  const activated = { LISTEN_FDS: '1', LISTEN_PID: '$$', LISTEN_FDNAMES: 'app.socket' };
  const cases = [
    [h.appJs, { PORT: 'http' }, /PORT="http": want a port number/],
    [h.appJs, { PORT: '70000' }, /PORT="70000"/],
    [h.appJs, { DRAIN_TIMEOUT: '30' }, /DRAIN_TIMEOUT="30": want a duration/],
    [h.appJs, { DRAIN_TIMEOUT: '2h' }, /DRAIN_TIMEOUT="2h"/],
    [h.appJs, { LISTEN_FDS: '1', LISTEN_PID: 'x' }, /LISTEN_PID="x" is not a process ID/],
    [h.appJs, { LISTEN_FDS: 'one', LISTEN_PID: '$$' }, /LISTEN_FDS="one"/],
    [h.appJs, { ...activated, LISTEN_FDNAMES: 'a:b' }, /LISTEN_FDNAMES="a:b" names 2 sockets/],
    [h.appJs, { WATCHDOG_USEC: 'soon', WATCHDOG_PID: '$$' }, /WATCHDOG_USEC="soon"/],
    [h.appJs, { INSTANCE: 'a b' }, /INSTANCE="a b"/],
    [h.fixture('listen-app.js'), activated, /no socket named "web" in LISTEN_FDNAMES="app.socket"/, ['[{"name":"web"}]']],
    [h.fixture('pm2-app.js'), { ...activated, NODE_OPTIONS: `--require ${h.preloadJs}`, UNITKIT_WAIT_READY: 'yes' },
      /unitkit: UNITKIT_WAIT_READY="yes": want 1 .*before the app started/],
    [h.fixture('pm2-app.js'), { LISTEN_FDS: '1', LISTEN_PID: '0', NODE_OPTIONS: `--require ${h.preloadJs}` },
      /unitkit: LISTEN_PID="0" is not a process ID/],
  ];
  await Promise.all(cases.map(async ([script, vars, want, args]) => {
    const child = h.spawnNode(script, { env: vars, args });
    const { code } = await h.exitOf(child);
    const output = child.out.texts().join('\n');
    assert.equal(code, 1, `${JSON.stringify(vars)}: exit status ${code}, output:\n${output}`);
    assert.match(output, want, JSON.stringify(vars));
  }));
});

test('log lines carry a journal priority only on the journal stream', { timeout: 60000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'unitkit-log-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const run = async (journalStream) => {
    const file = path.join(dir, `log-${String(journalStream)}`);
    const fd = fs.openSync(file, 'w');
    const st = fs.fstatSync(fd, { bigint: true });
    const value = journalStream === 'match' ? `${st.dev}:${st.ino}` : journalStream;
    const child = h.spawnNode(h.fixture('log-app.js'), { env: { JOURNAL_STREAM: value }, stdout: fd, stderr: fd });
    fs.closeSync(fd);
    assert.deepEqual(await h.exitOf(child), { code: 0, signal: null });
    return fs.readFileSync(file, 'utf8');
  };
  assert.equal(await run('match'), '<6>one\n<4>two\n<4>three\n<3>four\n');
  assert.equal(await run('1:2'), 'one\ntwo\nthree\nfour\n', 'JOURNAL_STREAM names another stream');
  assert.equal(await run(undefined), 'one\ntwo\nthree\nfour\n');
});

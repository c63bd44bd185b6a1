// Notifications to a real NOTIFY_SOCKET (a unix datagram socket, as
// systemd's), sent by systemd-notify: READY=1 with STATUS= once serving,
// WATCHDOG=1 only while the event loop turns, STOPPING=1 on SIGTERM.
'use strict';

const assert = require('node:assert/strict');
const test = require('node:test');
const h = require('../testing/helpers');

test('READY=1, STATUS=, WATCHDOG=1 while the event loop turns, STOPPING=1', { timeout: 120000 }, async (t) => {
  const after = h.cleanup(t);
  const { socket, messages } = await h.notifyReceiver(after);
  const sock = await h.listeningSocket();
  const child = h.spawnNode(h.appJs, {
    env: {
      LISTEN_FDS: '1', LISTEN_PID: '$$', LISTEN_FDNAMES: 'app.socket', INSTANCE: 'n',
      NOTIFY_SOCKET: socket,
      // WatchdogSec=200ms: a ping every 50 ms.
      WATCHDOG_USEC: '200000', WATCHDOG_PID: '$$',
    },
    fds: [sock.fd],
  });
  after(h.killer(child));
  await sock.close();

  await messages.waitFor('READY=1\nSTATUS=serving');
  const pings = () => messages.items.filter((m) => m.text === 'WATCHDOG=1');
  const morePings = (n) => {
    const want = pings().length + n;
    return messages.waitFor(() => pings().length >= want, `${n} more WATCHDOG=1`);
  };
  await morePings(3);

  // A handler that blocks the event loop for 3 s stops the pings.
  const before = pings().length;
  assert.equal((await h.get(sock.port, '/work?ms=3000')).body, 'worked 3000 ms\n');
  await morePings(3);
  const times = pings().slice(Math.max(0, before - 1)).map((m) => m.t);
  const longest = Math.max(...times.slice(1).map((x, i) => x - times[i]));
  assert.ok(longest >= 1, `longest pause between pings across the blocked loop: ${longest.toFixed(3)} s, want at least 1 s`);

  child.proc.kill('SIGTERM');
  assert.deepEqual(await h.exitOf(child), { code: 0, signal: null });
  await messages.waitFor('STOPPING=1\nSTATUS=draining');
  const order = messages.texts().filter((m) => m !== 'WATCHDOG=1' && m !== 'BARRIER=1');
  assert.deepEqual(order, ['READY=1\nSTATUS=serving', 'STOPPING=1\nSTATUS=draining']);
});

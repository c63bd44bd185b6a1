// The drain on SIGTERM: requests in flight finish, requests still arriving
// on open connections are answered with "Connection: close" (and /readyz
// says draining), the process exits 0 once the last connection has ended,
// and under load, with other instances on the same socket, no request
// fails.
'use strict';

const assert = require('node:assert/strict');
const test = require('node:test');
const h = require('../testing/helpers');

const activated = { LISTEN_FDS: '1', LISTEN_PID: '$$', LISTEN_FDNAMES: 'app.socket' };

test('a drain answers what is on its way with Connection: close, then exits 0', { timeout: 60000 }, async (t) => {
  const after = h.cleanup(t);
  const sock = await h.listeningSocket();
  const child = h.spawnNode(h.appJs, { env: { ...activated, INSTANCE: 'd' }, fds: [sock.fd] });
  after(h.killer(child));
  await sock.close();
  await child.out.waitFor(/^instance d serving/);

  // Three connections the instance has accepted (each got an answer).
  const conns = await Promise.all([1, 2, 3].map(() => h.rawConnection(sock.port)));
  for (const c of conns) {
    c.write('GET / HTTP/1.1\r\nHost: t\r\n\r\n');
    assert.equal((await c.answer()).headers.connection, 'keep-alive');
  }
  const [probe, late, slow] = conns;
  // Requests begun before the drain: two of them not sent in full yet (a
  // connection in the middle of a request is never idle), one in flight.
  probe.write('GET /readyz HTTP/1.1\r\nHost: t\r\n');
  late.write('GET /sleep?ms=100 HTTP/1.1\r\nHost: t\r\n');
  slow.write('GET /sleep?ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n');
  const slowAnswer = slow.answer();

  child.proc.kill('SIGTERM');
  await child.out.waitFor(/^SIGTERM: draining/);
  probe.write('\r\n');
  late.write('\r\n');
  const ready = await probe.answer();
  assert.deepEqual([ready.status, ready.body, ready.headers.connection], [503, 'draining\n', 'close']);
  const lateAnswer = await late.answer();
  assert.deepEqual([lateAnswer.status, lateAnswer.body, lateAnswer.headers.connection], [200, 'slept 100 ms\n', 'close']);
  assert.equal((await slowAnswer).status, 200);
  await Promise.all(conns.map((c) => c.closed));

  assert.deepEqual(await h.exitOf(child), { code: 0, signal: null });
  await child.out.waitFor('drained');
});

test('onDrained runs after the drain, before exit 0', { timeout: 60000 }, async (t) => {
  const after = h.cleanup(t);
  const child = h.spawnNode(h.fixture('listen-app.js'), { env: { PORT: '0', ON_DRAINED: '1' } });
  after(h.killer(child));
  await child.out.waitFor(/^server 0 listening/);
  child.proc.kill('SIGTERM');
  assert.deepEqual(await h.exitOf(child), { code: 0, signal: null });
  const out = child.out.texts();
  const drained = out.indexOf('drained');
  assert.ok(drained >= 0 && out.indexOf('onDrained SIGTERM') > drained, out.join('\n'));
});

test('three instances on one socket: two drain in turn under load without a failed request', { timeout: 120000 }, async (t) => {
  const after = h.cleanup(t);
  const sock = await h.listeningSocket();
  const start = (name) => {
    const c = h.spawnNode(h.appJs, { env: { ...activated, INSTANCE: name, DRAIN_TIMEOUT: '20s' }, fds: [sock.fd] });
    after(h.killer(c));
    return c;
  };
  const herd = { a: start('a'), b: start('b'), c: start('c') };
  await sock.close();
  await Promise.all(Object.values(herd).map((c) => c.out.waitFor(/ serving the socket systemd passed/)));

  const { total, served, stopAndCheck } = h.mixedLoad(after, sock.port);
  for (const name of ['a', 'b']) await served(name, 20);

  for (const name of ['a', 'b']) {
    herd[name].proc.kill('SIGTERM');
    assert.deepEqual(await h.exitOf(herd[name]), { code: 0, signal: null }, `${name} drained`);
    await herd[name].out.waitFor('drained');
    await served('c', total('c') + 200);
  }

  await stopAndCheck();
  herd.c.proc.kill('SIGTERM');
  assert.deepEqual(await h.exitOf(herd.c), { code: 0, signal: null });
});

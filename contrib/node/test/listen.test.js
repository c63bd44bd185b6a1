// The socket hand-over, as systemd does it: a listening socket created
// here is passed to a child process at fd 3 (and on), with LISTEN_FDS,
// LISTEN_FDNAMES and LISTEN_PID set to the child's own PID.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const test = require('node:test');
const h = require('../testing/helpers');

const activated = (names) => ({ LISTEN_FDS: String(names.split(':').length), LISTEN_FDNAMES: names, LISTEN_PID: '$$' });

test('app.js serves the socket systemd passed, keeps its accept queue, and answers the probes', { timeout: 60000 }, async (t) => {
  const after = h.cleanup(t);
  // A short queue: an instance must not change it (Node would set 511).
  const sock = await h.listeningSocket({ backlog: 64 });
  const child = h.spawnNode(h.appJs, {
    env: { ...activated('app.socket'), INSTANCE: 'a', PORT: '1' },
    fds: [sock.fd],
  });
  after(h.killer(child));
  await sock.close();
  await child.out.waitFor('instance a serving the socket systemd passed (app.socket)');

  const hello = await h.get(sock.port, '/');
  assert.equal(hello.status, 200);
  assert.equal(hello.body, 'hello from instance a\n');
  assert.equal(hello.headers['x-instance'], 'a');
  for (const [p, body] of [['/healthz', 'ok\n'], ['/readyz', 'ready\n']]) {
    const r = await h.get(sock.port, p);
    assert.deepEqual([r.status, r.body, r.headers['x-instance']], [200, body, 'a'], p);
  }
  const somaxconn = Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
  assert.equal(await h.backlogOf(sock.port), somaxconn,
    'the instance asks for the deepest accept queue the kernel allows, as systemd does');

  child.proc.kill('SIGTERM');
  assert.deepEqual(await h.exitOf(child), { code: 0, signal: null });
  await child.out.waitFor('drained');
});

test('listen() picks passed sockets by name, the first free one by default, and clears LISTEN_*', { timeout: 60000 }, async (t) => {
  const after = h.cleanup(t);
  const metrics = await h.listeningSocket();
  const web = await h.listeningSocket();
  const child = h.spawnNode(h.fixture('listen-app.js'), {
    env: activated('metrics:web'),
    fds: [metrics.fd, web.fd],
    args: [JSON.stringify([{ name: 'web' }, {}])],
  });
  after(h.killer(child));
  await metrics.close();
  await web.close();
  await child.out.waitFor(/^server 0 listening/);
  await child.out.waitFor(/^server 1 listening/);

  assert.equal((await h.get(web.port, '/x')).body, 'server 0: /x');
  assert.equal((await h.get(metrics.port, '/y')).body, 'server 1: /y');
  assert.deepEqual(JSON.parse((await h.get(web.port, '/env')).body), {},
    'LISTEN_* are gone from the environment children would inherit');

  child.proc.kill('SIGINT');
  assert.deepEqual(await h.exitOf(child), { code: 0, signal: null });
});

test('LISTEN_* meant for another process are ignored: the instance listens on $PORT', { timeout: 60000 }, async (t) => {
  const after = h.cleanup(t);
  const child = h.spawnNode(h.fixture('listen-app.js'), {
    env: { LISTEN_FDS: '1', LISTEN_PID: '1', LISTEN_FDNAMES: 'app.socket', PORT: '0' },
  });
  after(h.killer(child));
  const line = await child.out.waitFor(/^server 0 listening on /);
  const { port } = JSON.parse(line.text.replace(/^server 0 listening on /, ''));
  assert.notEqual(port, 0);
  assert.equal((await h.get(port, '/z')).body, 'server 0: /z');
  assert.deepEqual(JSON.parse((await h.get(port, '/env')).body),
    { LISTEN_FDS: '1', LISTEN_PID: '1', LISTEN_FDNAMES: 'app.socket' }, 'left as they were');
  assert.equal((await h.get(port, '/healthz')).body, 'ok\n');

  child.proc.kill('SIGTERM');
  assert.deepEqual(await h.exitOf(child), { code: 0, signal: null });
});

test('the probe paths can be moved or turned off', { timeout: 60000 }, async (t) => {
  const after = h.cleanup(t);
  const sock = await h.listeningSocket();
  const child = h.spawnNode(h.fixture('listen-app.js'), {
    env: { ...activated('app.socket'), INSTANCE: 'p' },
    fds: [sock.fd],
    args: [JSON.stringify([{ healthPath: '/live', readyPath: false }])],
  });
  after(h.killer(child));
  await sock.close();
  await child.out.waitFor(/^server 0 listening/);

  const live = await h.get(sock.port, '/live?verbose');
  assert.deepEqual([live.status, live.body, live.headers['x-instance']], [200, 'ok\n', 'p']);
  assert.equal((await h.get(sock.port, '/healthz')).body, 'server 0: /healthz', 'the app answers');
  assert.equal((await h.get(sock.port, '/readyz')).body, 'server 0: /readyz', 'the app answers');

  child.proc.kill('SIGTERM');
  assert.deepEqual(await h.exitOf(child), { code: 0, signal: null });
});

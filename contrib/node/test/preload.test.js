// The preload with an unmodified PM2-style app (fixtures/pm2-app.js): its
// listen(process.env.PORT || 3000) is served from the socket systemd
// passed, process.send('ready') becomes READY=1 when asked to, its SIGINT
// handler and server.close() callback still run, the drain fails no
// request; outside systemd nothing changes; what cannot be mapped is
// reported.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const test = require('node:test');
const h = require('../testing/helpers');

const preload = { NODE_OPTIONS: `--require ${h.preloadJs}` };
const activated = { ...preload, LISTEN_FDS: '1', LISTEN_PID: '$$', LISTEN_FDNAMES: 'app.socket' };
const listeningOn = async (child) => {
  const line = await child.out.waitFor(/^listening on /);
  return JSON.parse(line.text.replace(/^listening on /, ''));
};

test("the app's listen(3000) is served from the passed socket; READY=1 once it listens", { timeout: 60000 }, async (t) => {
  const after = h.cleanup(t);
  const { socket, messages } = await h.notifyReceiver(after);
  const sock = await h.listeningSocket();
  const child = h.spawnNode(h.fixture('pm2-app.js'), {
    env: { ...activated, NODE_APP_INSTANCE: 'a', NOTIFY_SOCKET: socket, WARM_UP_ON_STDIN: '1' },
    fds: [sock.fd],
  });
  after(h.killer(child));
  await sock.close();

  assert.equal((await listeningOn(child)).port, sock.port);
  await child.out.waitFor('unitkit: listen(port 3000) is served from the socket systemd passed (app.socket)');
  await child.out.waitFor('process.send is function');
  // The app is still warming up and has not said 'ready'; without
  // UNITKIT_WAIT_READY that does not matter.
  await messages.waitFor('READY=1\nSTATUS=serving');
  const hello = await h.get(sock.port, '/');
  assert.deepEqual([hello.status, hello.body], [200, 'hello from a: /\n']);
  for (const [p, body] of [['/healthz', 'ok\n'], ['/readyz', 'ready\n']]) {
    assert.equal((await h.get(sock.port, p)).body, body, p);
  }
  child.proc.stdin.write('go\n');
  await child.out.waitFor('warmed up');

  child.proc.kill('SIGTERM');
  await child.out.waitFor('SIGINT: closing the server');
  await child.out.waitFor('closed');
  assert.deepEqual(await h.exitOf(child), { code: 0, signal: null });
  await messages.waitFor('STOPPING=1\nSTATUS=draining');
  assert.equal(messages.texts().filter((m) => m.startsWith('READY=1')).length, 1);
});

test("UNITKIT_WAIT_READY=1: READY=1 waits for the app's process.send('ready')", { timeout: 60000 }, async (t) => {
  const after = h.cleanup(t);
  const { socket, messages } = await h.notifyReceiver(after);
  const sock = await h.listeningSocket();
  const child = h.spawnNode(h.fixture('pm2-app.js'), {
    env: { ...activated, NODE_APP_INSTANCE: 'w', NOTIFY_SOCKET: socket, WARM_UP_ON_STDIN: '1', UNITKIT_WAIT_READY: '1' },
    fds: [sock.fd],
  });
  after(h.killer(child));
  await sock.close();

  await messages.waitFor("STATUS=listening, waiting for process.send('ready')");
  const early = await h.get(sock.port, '/readyz');
  assert.deepEqual([early.status, early.body], [503, 'starting\n']);
  assert.equal((await h.get(sock.port, '/')).body, 'hello from w: /\n', 'it serves meanwhile');
  // Notifications arrive in order, and the app cannot have said 'ready'
  // before it is told to warm up: no READY=1 yet.
  assert.ok(!messages.texts().some((m) => m.startsWith('READY=1')), messages.texts().join(' | '));

  child.proc.stdin.write('go\n');
  await messages.waitFor('READY=1\nSTATUS=serving');
  assert.deepEqual((await h.get(sock.port, '/readyz')).body, 'ready\n');

  child.proc.kill('SIGINT');
  await child.out.waitFor('closed');
  assert.deepEqual(await h.exitOf(child), { code: 0, signal: null });
});

test("SIGTERM and SIGINT drain under load without a failed request; the app's handler and callback run", { timeout: 120000 }, async (t) => {
  const after = h.cleanup(t);
  const sock = await h.listeningSocket();
  const start = (name) => {
    const c = h.spawnNode(h.fixture('pm2-app.js'), {
      env: { ...activated, NODE_APP_INSTANCE: name, DRAIN_TIMEOUT: '20s' },
      fds: [sock.fd],
    });
    after(h.killer(c));
    return c;
  };
  const herd = { a: start('a'), b: start('b'), c: start('c') };
  await sock.close();
  await Promise.all(Object.values(herd).map(listeningOn));

  const { total, served, stopAndCheck } = h.mixedLoad(after, sock.port);
  for (const name of ['a', 'b']) await served(name, 20);

  // systemd stops with SIGTERM, PM2 (and Ctrl-C) with SIGINT.
  for (const [name, signal] of [['a', 'SIGTERM'], ['b', 'SIGINT']]) {
    const inst = herd[name];
    inst.proc.kill(signal);
    assert.deepEqual(await h.exitOf(inst), { code: 0, signal: null }, `${name} after ${signal}`);
    const out = inst.out.texts();
    const closing = out.indexOf('SIGINT: closing the server');
    assert.ok(closing >= 0 && out.indexOf('drained') > closing && out.indexOf('closed') > out.indexOf('drained'),
      `${name}: the app's handler ran, then the drain ended, then its close callback:\n${out.join('\n')}`);
    await served('c', total('c') + 200);
  }
  assert.ok(herd.a.out.texts().includes("SIGTERM: running the app's SIGINT handler (PM2 stops with SIGINT, systemd with SIGTERM)"));

  await stopAndCheck();
  herd.c.proc.kill('SIGTERM');
  assert.deepEqual(await h.exitOf(herd.c), { code: 0, signal: null });
});

test('outside systemd the preload changes nothing', { timeout: 60000 }, async (t) => {
  const after = h.cleanup(t);
  const child = h.spawnNode(h.fixture('pm2-app.js'), { env: { ...preload, PORT: '0', NODE_APP_INSTANCE: 'o' } });
  after(h.killer(child));
  const { port } = await listeningOn(child);
  await child.out.waitFor('process.send is undefined');
  assert.equal((await h.get(port, '/healthz')).body, 'hello from o: /healthz\n', 'the app answers');

  child.proc.kill('SIGINT');
  await child.out.waitFor('closed');
  assert.deepEqual(await h.exitOf(child), { code: 0, signal: null });
  assert.deepEqual(child.out.items.filter((l) => l.source === 'stderr'), []);
});

test('what cannot be mapped is reported with a journal priority, and the app goes on', { timeout: 60000 }, async (t) => {
  const after = h.cleanup(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'unitkit-preload-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  // stderr goes to a file named by JOURNAL_STREAM, as the journal's
  // stream is under systemd.
  const errFile = path.join(dir, 'stderr');
  const fd = fs.openSync(errFile, 'w');
  const st = fs.fstatSync(fd, { bigint: true });
  const sock = await h.listeningSocket();
  const child = h.spawnNode(h.fixture('extras-app.js'), {
    env: { ...activated, SOCKET_PATH: path.join(dir, 'app.sock'), JOURNAL_STREAM: `${st.dev}:${st.ino}` },
    fds: [sock.fd],
    stderr: fd,
  });
  fs.closeSync(fd);
  after(h.killer(child));
  await sock.close();

  await child.out.waitFor('done');
  assert.equal((await h.get(sock.port, '/')).body, 'hello\n');
  const reports = fs.readFileSync(errFile, 'utf8').split('\n').filter(Boolean);
  const want = [
    /^<4>unitkit: listen\(port 0\) of a second server is not mapped: /,
    /^<4>unitkit: listen\(".*app\.sock"\): a unix socket path is not mapped /,
    /^<4>unitkit: process\.send\(\{"type":"process:msg","data":\{"hello":"pm2"\}\}\): there is no PM2 /,
    /^<4>unitkit: cluster\.fork\(\): unitkit runs one process per instance /,
  ];
  assert.equal(reports.length, want.length, reports.join('\n'));
  want.forEach((re, i) => assert.match(reports[i], re));
  assert.ok(child.out.texts().includes('worker exited with status 0'));

  // With no signal handler of its own the app exits 0 once drained, its
  // other servers notwithstanding.
  child.proc.kill('SIGTERM');
  assert.deepEqual(await h.exitOf(child), { code: 0, signal: null });
});

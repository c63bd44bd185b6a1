// The reference Node.js instance for unitkit, like cmd/app for Go: a plain
// HTTP app on top of this package (index.js), which does the instance's
// side of the contract (the socket systemd passes, READY=1, the watchdog,
// /healthz and /readyz, the zero-drop drain on SIGTERM).
//
// It answers, like cmd/app:
//
//   GET /            "hello from instance N"
//   GET /work?ms=N   burns CPU for N milliseconds (0 to 10000)
//   GET /sleep?ms=N  holds the request for N milliseconds (0 to 60000)
//   GET /healthz     200 while the process serves (answered by unitkit)
//   GET /readyz      200 while it takes new requests, 503 once draining
//
// with X-Instance on every response. Under PM2 the same file runs as it is
// (pm2 start app.js -i N --wait-ready): it listens on $PORT, tells PM2
// "ready", and PM2's SIGINT drains it the same way.
'use strict';

const unitkit = require('./index.js');

// msParam reads ?ms= as an integer from 0 to max, or returns null.
function msParam(url, max) {
  const v = url.searchParams.get('ms') || '0';
  return /^\d+$/.test(v) && Number(v) <= max ? Number(v) : null;
}

// route answers one request.
function route(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const reply = (code, body) => {
    res.statusCode = code;
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.end(body + '\n');
  };
  switch (url.pathname) {
    case '/':
      return reply(200, `hello from instance ${unitkit.instance}`);
    case '/work': {
      const ms = msParam(url, 10000);
      if (ms === null) return reply(400, 'ms: want an integer from 0 to 10000');
      const end = Date.now() + ms;
      while (Date.now() < end) { /* burn CPU: blocks the event loop */ }
      return reply(200, `worked ${ms} ms`);
    }
    case '/sleep': {
      const ms = msParam(url, 60000);
      if (ms === null) return reply(400, 'ms: want an integer from 0 to 60000');
      setTimeout(() => reply(200, `slept ${ms} ms`), ms);
      return undefined;
    }
    default:
      return reply(404, 'not found');
  }
}

// handler reads the request body, then routes.
function handler(req, res) {
  res.setHeader('X-Instance', unitkit.instance);
  req.resume();
  req.on('end', () => route(req, res));
}

let server;
try {
  server = unitkit.serve(handler);
} catch (err) {
  console.error(`app: ${err.message}`);
  process.exit(1);
}
server.on('listening', () => {
  if (process.send) process.send('ready'); // PM2 --wait-ready
});

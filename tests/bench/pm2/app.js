// The Node.js reference for the benchmark: the same endpoints as cmd/app
// (/ and /work?ms=N), run by PM2 in cluster mode, shutting down as PM2
// recommends (stop accepting on SIGINT, let requests finish, then exit).
'use strict';
const http = require('http');

const instance = process.env.NODE_APP_INSTANCE || String(process.pid);
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/work') {
    const ms = Math.min(Number(url.searchParams.get('ms')) || 0, 10000);
    const end = Date.now() + ms;
    while (Date.now() < end) { /* burn CPU */ }
  }
  req.resume();
  req.on('end', () => {
    res.setHeader('X-Instance', instance);
    res.end('hello from instance ' + instance + '\n');
  });
});

server.listen(Number(process.env.PORT || 9191), () => {
  if (process.send) process.send('ready');
});

process.on('SIGINT', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});

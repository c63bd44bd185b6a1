// An Express app written for PM2 cluster mode, as such apps usually are:
// it listens on $PORT, tells PM2 it is ready (wait_ready), and closes its
// server on SIGINT, PM2's stop signal. It knows nothing of unitkit and is
// not to be changed: under unitkit the preload module of the unitkit
// package (NODE_OPTIONS=--require …, written by `appctl import`) serves
// it from the socket systemd passes, turns 'ready' into READY=1 and keeps
// the drain zero-drop. See ecosystem.config.js.
'use strict';

const express = require('express');
const routes = require('./routes');

const app = express();
app.use(routes(process.env.NODE_APP_INSTANCE || String(process.pid)));

const port = process.env.PORT || 3000;
const server = app.listen(port, () => {
  console.log(`listening on port ${port}`);
  if (process.send) process.send('ready');
});

process.on('SIGINT', () => {
  console.log('SIGINT: closing the server');
  server.close(() => process.exit(0));
});

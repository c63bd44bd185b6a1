// The example Express app as a unitkit instance through the unitkit
// package: one call, unitkit.serve(app), gives it the socket systemd
// passes (or $PORT outside systemd), READY=1, the watchdog, /healthz and
// /readyz, and the zero-drop drain on SIGTERM. Compare pm2-app.js, the same
// app written for PM2 and run unchanged through the package's preload.
'use strict';

const express = require('express');
const unitkit = require('unitkit');
const routes = require('./routes');

const app = express();
app.use(routes(process.env.INSTANCE || String(process.pid)));
unitkit.serve(app);

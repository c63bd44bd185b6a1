// The routes of the example Express app, shared by its two entry points:
// app.js (an instance through the unitkit package) and pm2-app.js (an app
// written for PM2, run unchanged). Like cmd/app, it answers
//
//   /            "hello from instance N"
//   /work?ms=N   burns CPU for N milliseconds (0 to 60000); a long one
//                blocks the event loop, which the watchdog must catch
//   /sleep?ms=N  holds the request for N milliseconds (0 to 60000)
//
// to any method, with X-Instance on every response.
'use strict';

const express = require('express');

const maxMs = 60000;

// ms reads ?ms= as an integer from 0 to maxMs, or returns null.
function ms(req) {
  const v = req.query.ms === undefined ? '0' : String(req.query.ms);
  return /^\d+$/.test(v) && Number(v) <= maxMs ? Number(v) : null;
}

/**
 * routes returns a router that answers as instance `instance`.
 * @param {string} instance shown in X-Instance and in the greeting
 * @returns {import('express').Router}
 */
function routes(instance) {
  const r = express.Router();
  r.use((req, res, next) => {
    res.set('X-Instance', instance);
    next();
  });
  r.all('/', (req, res) => res.type('text').send(`hello from instance ${instance}\n`));
  r.all('/work', (req, res) => {
    const n = ms(req);
    if (n === null) return res.status(400).type('text').send(`ms: want an integer from 0 to ${maxMs}\n`);
    const end = Date.now() + n;
    while (Date.now() < end) { /* burn CPU, blocking the event loop */ }
    return res.type('text').send(`worked ${n} ms\n`);
  });
  r.all('/sleep', (req, res) => {
    const n = ms(req);
    if (n === null) return res.status(400).type('text').send(`ms: want an integer from 0 to ${maxMs}\n`);
    setTimeout(() => res.type('text').send(`slept ${n} ms\n`), n);
    return undefined;
  });
  return r;
}

module.exports = routes;

// The PM2 ecosystem file of pm2-app.js, as a PM2 user has it: `pm2 start
// ecosystem.config.js` runs it under PM2, `appctl import
// ecosystem.config.js` under unitkit.
module.exports = {
  apps: [{
    name: 'express-app',
    script: './pm2-app.js',
    instances: 2,
    exec_mode: 'cluster',
    wait_ready: true,
    listen_timeout: 5000,
    kill_timeout: 5000,
    max_memory_restart: '300M',
    env: {
      NODE_ENV: 'production',
      PORT: 3000,
    },
  }],
};

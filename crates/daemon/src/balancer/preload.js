// pmdaemon's preload for Node apps in a shared-port cluster (loaded with
// NODE_OPTIONS=--require). It changes two things, and only for servers that
// listen on the shared port:
// - listen(<shared port>) takes the socket pmdaemon passed as fd 3 (socket
//   mode) or the instance's private PORT (proxy mode), so an app written for
//   PM2's cluster mode (app.listen(3000)) runs unchanged;
// - on SIGTERM or SIGINT, unless the app handles the signal itself, those
//   servers stop accepting, answer the requests still coming on open
//   connections with "Connection: close", and the process exits once every
//   connection is closed (idle ones are closed after a second), so a reload
//   drops no request.
'use strict';
const net = require('net');

const shared = Number(process.env.PMDAEMON_SHARED_PORT);
const mode = process.env.PMDAEMON_SHARED_MODE;
const ownsSocket = mode === 'socket' && process.env.LISTEN_PID === String(process.pid);
const privatePort = Number(process.env.PORT);

if (shared > 0 && (ownsSocket || (mode === 'proxy' && privatePort > 0))) {
  const listen = net.Server.prototype.listen;
  const close = net.Server.prototype.close;
  const servers = new Set();
  const open = new Set();
  let stopping = false;

  const portOf = (args) => {
    const first = args[0];
    if (first !== null && typeof first === 'object') return Number(first.port);
    return Number(first);
  };

  const track = (server) => {
    servers.add(server);
    server.on('connection', (socket) => {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
    });
    if (typeof server.prependListener === 'function') {
      server.prependListener('request', (req, res) => {
        if (stopping) res.setHeader('Connection', 'close');
      });
    }
  };

  net.Server.prototype.listen = function pmdaemonListen(...args) {
    const first = args[0];
    const port = portOf(args);
    const mapped = port === shared && !(mode === 'proxy' && port === privatePort);
    // Servers on the shared port, however they ask for it, stop gracefully.
    const serving = mapped || port === privatePort
      || (ownsSocket && first !== null && typeof first === 'object' && first.fd === 3);
    if (serving && !servers.has(this)) track(this);
    if (!mapped) return listen.apply(this, args);
    const callback = args.find((a) => typeof a === 'function');
    const target = ownsSocket ? { fd: 3 } : { port: privatePort, host: '127.0.0.1' };
    return callback ? listen.call(this, target, callback) : listen.call(this, target);
  };

  const stop = (signal) => {
    // An app with its own handler decides how to stop.
    if (process.listenerCount(signal) > 1) return;
    // Nothing to drain: end as the signal would have.
    if (servers.size === 0) process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
    if (stopping) return;
    stopping = true;
    for (const server of servers) close.call(server);
    const started = Date.now();
    const timer = setInterval(() => {
      if (open.size === 0) process.exit(0);
      if (Date.now() - started > 1000) {
        for (const server of servers) {
          if (typeof server.closeIdleConnections === 'function') server.closeIdleConnections();
        }
      }
    }, 20);
    timer.unref();
    if (open.size === 0) process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

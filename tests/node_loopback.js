// Preloaded (`node -r tests/node_loopback.js SERVICE.js`) in front of a service that
// listens on every interface and has no setting for it (kinesis-mock): every server it
// starts binds 127.0.0.1 instead. The tests' C fixture (tests/kinesis_mock.c), the push
// scenarios (tests/integration_push.py) and bench/run use it.
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...a) {
  if (a[0] && typeof a[0] === 'object') a[0] = Object.assign({}, a[0], { host: '127.0.0.1' });
  else if (typeof a[1] === 'string') a[1] = '127.0.0.1';
  else a.splice(1, 0, '127.0.0.1');
  return listen.apply(this, a);
};

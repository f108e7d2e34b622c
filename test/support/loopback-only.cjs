// Preloaded (NODE_OPTIONS=--require) into the Jamsocket CLI when tests run it:
// every outgoing TCP connection must go to the loopback interface. The CLI asks
// registry.npmjs.org for a newer version after any failed command (bin/run's
// checkVersion) and its update-check plugin may spawn a child that does the
// same; both are refused here before any DNS lookup, so a test never leaves the
// machine. The child inherits NODE_OPTIONS, so it is covered too.
//
// A refused attempt fails like an unreachable host (ECONNREFUSED), which both
// callers swallow. When BERTH_TEST_BLOCKED_LOG names a file, each refused
// target is appended to it as one line, so a test can see what was tried.
'use strict';

const fs = require('node:fs');
const net = require('node:net');

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|::1|\[::1\]|::ffff:127(?:\.\d{1,3}){3})$/i;

const originalConnect = net.Socket.prototype.connect;

net.Socket.prototype.connect = function connect(...args) {
  // Node passes already-normalized arguments as an array; users pass (options), (port, host) or (path).
  const first = Array.isArray(args[0]) ? args[0][0] : args[0];
  let target;
  if (first !== null && typeof first === 'object') {
    target = first.path ? undefined : String(first.host ?? 'localhost');
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    target = typeof args[1] === 'string' ? args[1] : 'localhost';
  }
  if (target !== undefined && !LOOPBACK.test(target)) {
    const port = first !== null && typeof first === 'object' ? first.port : first;
    if (process.env.BERTH_TEST_BLOCKED_LOG) {
      try {
        fs.appendFileSync(process.env.BERTH_TEST_BLOCKED_LOG, `${target}:${port}\n`);
      } catch {
        // Reporting is best effort; the refusal below is what matters.
      }
    }
    const error = Object.assign(new Error(`connect ECONNREFUSED ${target}:${port} (tests allow loopback only)`), {
      code: 'ECONNREFUSED',
      syscall: 'connect',
    });
    process.nextTick(() => this.destroy(error));
    return this;
  }
  return originalConnect.apply(this, args);
};

'use strict';
// Shared test utilities: a free UDP port on loopback, waiting for events and node outputs, a
// throwaway PKI.
const { execFileSync } = require('child_process');
const dgram = require('dgram');
const net = require('net');
const fs = require('fs');
const os = require('os');
const path = require('path');

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolves with the args of the next `event` on `emitter` that passes `filter`; rejects after `ms`. */
function nextEvent(emitter, event, ms = 5000, filter = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.removeListener(event, listener);
      reject(new Error(`no "${event}" within ${ms} ms`));
    }, ms);
    function listener(...args) {
      if (!filter(...args)) return;
      clearTimeout(timer);
      emitter.removeListener(event, listener);
      resolve(args.length > 1 ? args : args[0]);
    }
    emitter.on(event, listener);
  });
}

/** Collects the messages a helper node receives; `next(filter)` waits for the next matching one. */
function collector(helperNode) {
  const seen = [];
  const waiters = [];
  helperNode.on('input', (msg) => {
    seen.push(msg);
    for (const w of [...waiters]) {
      if (w.filter(msg)) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(msg);
      }
    }
  });
  return {
    seen,
    next(filter = () => true, ms = 5000) {
      const already = seen.find((m) => filter(m) && !m.__taken);
      if (already) {
        already.__taken = true;
        return Promise.resolve(already);
      }
      return new Promise((resolve, reject) => {
        const w = { filter: (m) => filter(m) && !m.__taken && (m.__taken = true), resolve, timer: null };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`${helperNode.id}: no matching message within ${ms} ms (seen: ${JSON.stringify(seen.map((m) => [m.topic, m.payload]).slice(-5))})`));
        }, ms);
        waiters.push(w);
      });
    },
  };
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A throwaway PKI made by the openssl command in a new temporary directory: a P-256 CA (ca.key,
 * ca.pem, CN `caName`) and for each [name, cn] a key (name.key) and a certificate it signed
 * (name.pem). Returns the directory, or undefined when openssl is missing.
 */
function makePki(caName, entities) {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-pki-'));
  const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  run('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key');
  run('req', '-x509', '-new', '-key', 'ca.key', '-subj', `/CN=${caName}`, '-days', '2', '-out', 'ca.pem');
  for (const [name, cn] of entities) {
    run('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
    run('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${name}.pem`);
  }
  return dir;
}

/** A TCP port free on loopback now (an HTTP server's, Redis's). */
function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Records the AT commands an emulated BC66 receives and the +CME ERROR codes it answers. */
function recordModem(emulator) {
  const record = { received: [], errors: [] };
  const onCommand = emulator.onCommand.bind(emulator);
  emulator.onCommand = (line) => { record.received.push(line.trim()); onCommand(line); };
  const error = emulator.error.bind(emulator);
  emulator.error = (code) => { record.errors.push(code); error(code); };
  return record;
}

module.exports = { freeUdpPort, freeTcpPort, nextEvent, collector, delay, makePki, recordModem };

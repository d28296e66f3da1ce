'use strict';
// A simulated fleet of LwM2M clients for the benchmarks: many endpoints multiplexed over a small
// pool of UDP sockets on loopback (one socket per device would exhaust file descriptors long before
// 100k devices). Raw CoAP via coap-packet, so the load generator costs far less CPU than the
// server it measures. Every loop is bounded in count and in time.
const dgram = require('dgram');
const { generate, parse } = require('coap-packet');

const ACK_TIMEOUT_MS = 2000;
const MAX_RETRANSMIT = 4;

function objectLinks(count) {
  const ids = [1, 3, 4, 5, 3303, 3304, 3311, 3323].slice(0, count);
  return '</>;rt="oma.lwm2m";ct=112,' + ids.map((id) => (id === 1 || id === 3 ? `</${id}/0>` : `</${id}/0>,</${id}/1>`)).join(',');
}

class Fleet {
  /**
   * @param {{ target: {address: string, port: number}, sockets?: number, window?: number, deadlineMs?: number }} opts
   */
  constructor(opts) {
    this.target = opts.target;
    this.socketCount = opts.sockets || 32;
    this.window = opts.window || 512; // requests in flight across the fleet
    this.deadline = Date.now() + (opts.deadlineMs || 120000);
    this.sockets = [];
    // (socket index, message id) → { resolve, buf, socket, tries, timer, sentAt }: message ids count
    // per socket, as RFC 7252 §4.4 wants (one counter for all sockets reused ids on a socket within
    // EXCHANGE_LIFETIME at high rates, and a server that deduplicates rightly dropped them)
    this.pending = new Map();
    this.nextMessageIds = [];
    this.onRequest = null; // (packet, socket, rinfo) → response packet fields, for server → device requests
    // one sweep timer for every retransmission, not a setTimeout per request
    this.sweeper = setInterval(() => this.sweep(), 250);
  }

  sweep() {
    const now = Date.now();
    for (const [key, entry] of this.pending) {
      if (entry.dueAt > now) continue;
      if (now > this.deadline || entry.tries > MAX_RETRANSMIT) {
        this.pending.delete(key);
        entry.resolve(null);
        continue;
      }
      this.transmit(entry);
    }
  }

  transmit(entry) {
    this._tx = (this._tx || 0) + 1;
    entry.tries++;
    entry.dueAt = Date.now() + ACK_TIMEOUT_MS * entry.tries;
    const to = entry.target || this.target;
    entry.socket.send(entry.buf, to.port, to.address);
  }

  async open() {
    for (let i = 0; i < this.socketCount; i++) {
      const socket = dgram.createSocket('udp4');
      socket.on('message', (msg, rinfo) => this.handle(msg, socket, rinfo));
      await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
      try {
        socket.setRecvBufferSize(8 * 1024 * 1024);
        socket.setSendBufferSize(8 * 1024 * 1024);
      } catch { /* best effort */ }
      socket.fleetIndex = this.sockets.length;
      this.nextMessageIds.push(1 + Math.floor(Math.random() * 65535));
      this.sockets.push(socket);
    }
  }

  close() {
    clearInterval(this.sweeper);
    for (const p of this.pending.values()) p.resolve(null);
    this.pending.clear();
    for (const s of this.sockets) s.close();
    this.sockets = [];
  }

  socketFor(index) {
    return this.sockets[index % this.sockets.length];
  }

  handle(msg, socket, rinfo) {
    // fast path: a piggybacked response (ACK with a code) is matched on the header alone
    if (msg.length >= 4 && ((msg[0] >> 4) & 0x03) === 2 && msg[1] !== 0) {
      const key = socket.fleetIndex * 65536 + msg.readUInt16BE(2);
      const pending = this.pending.get(key);
      if (!pending) return;
      this.pending.delete(key);
      pending.resolve({ code: `${msg[1] >> 5}.${String(msg[1] & 0x1f).padStart(2, '0')}`, raw: msg, rttMs: Date.now() - pending.sentAt });
      return;
    }
    let packet;
    try {
      packet = parse(msg);
    } catch {
      return;
    }
    if (packet.code.startsWith('0.') && packet.code !== '0.00') {
      // a request from the server to one of our devices
      if (!this.onRequest) return;
      const answer = this.onRequest(packet, socket, rinfo);
      if (!answer) return;
      const out = generate({
        messageId: packet.messageId,
        token: packet.token,
        ack: packet.confirmable,
        confirmable: false,
        code: answer.code,
        options: answer.options || [],
        payload: answer.payload || Buffer.alloc(0),
      });
      socket.send(out, rinfo.port, rinfo.address);
      return;
    }
    if (packet.confirmable && packet.code !== '0.00') {
      // separate response or notification: ACK it
      socket.send(generate({ messageId: packet.messageId, ack: true, code: '0.00' }), rinfo.port, rinfo.address);
      if (this.onNotification) this.onNotification(packet, socket, rinfo);
      return;
    }
    if (!packet.ack) {
      if (this.onNotification) this.onNotification(packet, socket, rinfo);
      return;
    }
    const key = socket.fleetIndex * 65536 + packet.messageId;
    const pending = this.pending.get(key);
    if (!pending) return;
    this.pending.delete(key);
    pending.resolve({ code: packet.code, packet, raw: msg, rttMs: Date.now() - pending.sentAt });
  }

  /** Sends one CON request from socket `index % sockets`; resolves with the response or null after retries. */
  request(index, fields) {
    const socket = this.socketFor(index);
    const messageId = this.takeMessageId(socket);
    const buf = generate({ ...fields, messageId, confirmable: true, token: fields.token || randomToken() });
    return new Promise((resolve) => {
      const entry = { resolve, buf, socket, tries: 0, dueAt: 0, sentAt: Date.now() };
      this.pending.set(socket.fleetIndex * 65536 + messageId, entry);
      this.transmit(entry);
    });
  }

  takeMessageId(socket) {
    const id = this.nextMessageIds[socket.fleetIndex];
    this.nextMessageIds[socket.fleetIndex] = (id + 1) & 0xffff;
    return id;
  }

  /** Sends a CON message (a notification) from `socket` to `rinfo`; resolves true once ACKed. */
  sendConfirmable(socket, rinfo, fields) {
    const messageId = this.takeMessageId(socket);
    const buf = generate({ ...fields, messageId, confirmable: true });
    return new Promise((resolve) => {
      const entry = { resolve: (r) => resolve(Boolean(r)), buf, socket, tries: 0, dueAt: 0, sentAt: Date.now(), target: rinfo };
      this.pending.set(socket.fleetIndex * 65536 + messageId, entry);
      this.transmit(entry);
    });
  }

  register(index, endpoint, objects = 6) {
    return this.request(index, {
      code: 'POST',
      options: [
        { name: 'Uri-Path', value: Buffer.from('rd') },
        { name: 'Content-Format', value: Buffer.from([40]) },
        { name: 'Uri-Query', value: Buffer.from(`ep=${endpoint}`) },
        { name: 'Uri-Query', value: Buffer.from('lt=86400') },
        { name: 'Uri-Query', value: Buffer.from('lwm2m=1.1') },
        { name: 'Uri-Query', value: Buffer.from('b=U') },
      ],
      payload: Buffer.from(objectLinks(objects)),
    });
  }

  /**
   * Runs `count` operations with at most `window` in flight; `op(i)` returns a promise.
   * Calls `onDone(i, result)` as each finishes. Resolves when all finished or the deadline passed.
   */
  async pump(count, op, onDone) {
    let next = 0;
    let finished = 0;
    return new Promise((resolve) => {
      const launch = () => {
        while (next < count && next - finished < this.window && Date.now() < this.deadline) {
          const i = next++;
          op(i).then((result) => {
            finished++;
            onDone(i, result);
            if (finished === count || (next === finished && Date.now() >= this.deadline)) resolve();
            else launch();
          });
        }
        if (next === finished && (next === count || Date.now() >= this.deadline)) resolve();
      };
      launch();
    });
  }
}

let tokenCounter = 0;
function randomToken() {
  tokenCounter = (tokenCounter + 1) >>> 0;
  const b = Buffer.alloc(4);
  b.writeUInt32BE(tokenCounter);
  return b;
}

module.exports = { Fleet, objectLinks };

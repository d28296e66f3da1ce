/**
 * A lean path for the requests a server gets by the ten thousand (Register, Update, Send): parsed
 * and answered straight on the socket with coap-packet, with a light retransmission cache, instead
 * of through `coap`'s per-message stream objects. Profiles of registration storms put most of the
 * server's time in those objects and their garbage (bench/RESULTS.md). Observe requests, block-wise
 * transfers and everything else still go through `coap`.
 */
import type { Socket } from 'dgram';
import { generate, parse, ParsedPacket } from 'coap-packet';
import type { Exchange, IncomingRequest, ResponseSpec } from './transport';

const METHODS: Record<string, string> = {
  '0.01': 'GET', '0.02': 'POST', '0.03': 'PUT', '0.04': 'DELETE', '0.05': 'FETCH', '0.06': 'PATCH', '0.07': 'iPATCH',
};

/** RFC 7252 EXCHANGE_LIFETIME: how long a retransmission of a CON request can still arrive. */
const EXCHANGE_LIFETIME_MS = 247_000;

function uint(value: Buffer): number {
  let n = 0;
  for (const b of value) n = n * 256 + b;
  return n;
}

function uintBytes(n: number): Buffer {
  if (n === 0) return Buffer.alloc(0);
  if (n < 256) return Buffer.from([n]);
  return Buffer.from([n >> 8, n & 255]);
}

/**
 * Answers to CON requests, kept for one exchange lifetime so a retransmitted request gets the same
 * answer without running its handler again. Two generations swapped on a timer: O(1), no per-entry timer.
 */
export class RetransmissionCache {
  private current = new Map<string, Buffer>();
  private previous = new Map<string, Buffer>();
  private readonly timer: NodeJS.Timeout;

  constructor(lifetimeMs = EXCHANGE_LIFETIME_MS) {
    this.timer = setInterval(() => {
      this.previous = this.current;
      this.current = new Map();
    }, lifetimeMs / 2 + 1);
    this.timer.unref?.();
  }

  get(key: string): Buffer | undefined {
    return this.current.get(key) ?? this.previous.get(key);
  }

  set(key: string, answer: Buffer): void {
    this.current.set(key, answer);
  }

  close(): void {
    clearInterval(this.timer);
    this.current.clear();
    this.previous.clear();
  }
}

class FastExchange implements Exchange {
  private responded = false;
  readonly observing = false;

  constructor(
    readonly request: IncomingRequest,
    private readonly packet: ParsedPacket,
    private readonly send: (answer: Buffer) => void,
  ) {}

  respond(spec: ResponseSpec): void {
    if (this.responded) return;
    this.responded = true;
    const options: Array<{ name: string; value: Buffer }> = [];
    for (const segment of spec.locationPath ?? []) options.push({ name: 'Location-Path', value: Buffer.from(segment) });
    if (spec.contentFormat !== undefined) options.push({ name: 'Content-Format', value: uintBytes(spec.contentFormat) });
    const confirmable = this.packet.confirmable;
    this.send(generate({
      code: spec.code,
      // a CON request gets a piggybacked answer in its ACK; a NON request a NON answer
      messageId: confirmable ? this.packet.messageId : (this.packet.messageId + 1) % 65536,
      token: this.packet.token,
      ack: confirmable,
      confirmable: false,
      options: options as never,
      payload: spec.payload ?? Buffer.alloc(0),
    }));
  }

  notify(): Promise<boolean> {
    return Promise.resolve(false);
  }

  onCancel(): void {
    // never observing
  }
}

/**
 * Tries to serve one datagram on the lean path. Returns false when it is not for us (not a request,
 * an observe, a block-wise transfer, another path, unparsable): the caller hands it to `coap`.
 */
export function serveFast(
  msg: Buffer,
  rinfo: { address: string; port: number },
  socket: Socket,
  prefixes: ReadonlySet<string>,
  cache: RetransmissionCache,
  handler: (exchange: Exchange) => void,
): boolean {
  // header: version 1, type CON (0) or NON (1), request code class 0 (methods 1..7)
  if (msg.length < 4 || msg[0] >> 6 !== 1 || ((msg[0] >> 4) & 3) > 1 || msg[1] < 1 || msg[1] > 7) return false;
  const key = `${rinfo.address}|${rinfo.port}|${msg.readUInt16BE(2)}`;
  const cached = cache.get(key);
  if (cached) {
    socket.send(cached, rinfo.port, rinfo.address);
    return true;
  }
  let packet: ParsedPacket;
  try {
    packet = parse(msg);
  } catch {
    return false;
  }
  const pathSegments: string[] = [];
  const query: string[] = [];
  let contentFormat: number | undefined;
  let accept: number | undefined;
  for (const o of packet.options) {
    switch (o.name) {
      case 'Uri-Path': pathSegments.push(o.value.toString('utf8')); break;
      case 'Uri-Query': query.push(o.value.toString('utf8')); break;
      case 'Content-Format': contentFormat = uint(o.value); break;
      case 'Accept': accept = uint(o.value); break;
      case 'Observe': case 'Block1': case 'Block2': return false;
      default: break;
    }
  }
  if (!prefixes.has(pathSegments[0])) return false;
  const request: IncomingRequest = {
    method: METHODS[packet.code],
    pathSegments,
    query,
    contentFormat,
    accept,
    payload: packet.payload,
    peer: { address: rinfo.address, port: rinfo.port },
    token: packet.token,
  };
  const exchange = new FastExchange(request, packet, (answer) => {
    if (packet.confirmable) cache.set(key, answer);
    socket.send(answer, rinfo.port, rinfo.address);
  });
  handler(exchange);
  return true;
}

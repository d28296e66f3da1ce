/**
 * RFC 7959 on the answering side: bodies of incoming Block1 requests reassembled per peer and
 * request (never per token: §2.5 lets a client use a new token for each block), and bodies of
 * large outgoing answers kept so later Block2 requests are served without asking the handler
 * again. Both are bounded in entries and bytes and expire when a transfer is abandoned.
 */
import { blockSize, BlockOption } from './message';

/** Which answer a Block2 request continues: same peer, method, URI and Accept (and FETCH body). */
export function bodyKeyOf(peerKey: string, code: number, pathSegments: string[], query: string[], accept: number | undefined, payload: Buffer): string {
  const fetched = code === 5 ? `|${payload.toString('hex', 0, 256)}` : '';
  return `${peerKey}|${code}|${pathSegments.join('/')}|${query.join('&')}|${accept ?? ''}${fetched}`;
}

export type Block1Outcome =
  | { kind: 'continue' }
  | { kind: 'complete'; payload: Buffer }
  | { kind: 'error'; code: string; reason: string };

interface Assembly {
  parts: Buffer[];
  received: number;
  lastAt: number;
}

export interface BlockLimits {
  /** Largest body one transfer may carry (4.13 beyond it). */
  maxBodySize: number;
  /** Bytes held for all transfers together. */
  maxBufferedBytes: number;
  /** A transfer with no block for this long is dropped. */
  transferTimeoutMs: number;
}

export class Block1Assembler {
  private readonly assemblies = new Map<string, Assembly>();
  private buffered = 0;
  private lastSweep = Date.now();

  constructor(private readonly limits: BlockLimits) {}

  take(key: string, block: BlockOption, payload: Buffer, size1: number | undefined): Block1Outcome {
    const now = Date.now();
    this.sweep(now);
    const size = blockSize(block.szx);
    if (block.more && payload.length !== size) return { kind: 'error', code: '4.00', reason: 'a block that is not the last must fill its block size' };
    if (payload.length > size) return { kind: 'error', code: '4.00', reason: 'block larger than its block size' };
    let assembly = this.assemblies.get(key);
    if (block.num === 0) {
      if (assembly) this.drop(key, assembly);
      if (size1 !== undefined && size1 > this.limits.maxBodySize) return this.tooLarge();
      if (!block.more) return { kind: 'complete', payload };
      assembly = { parts: [], received: 0, lastAt: now };
      this.assemblies.set(key, assembly);
    } else if (!assembly || assembly.received !== block.num * size) {
      return { kind: 'error', code: '4.08', reason: 'block out of sequence: the transfer must start again at block 0' };
    }
    if (assembly.received + payload.length > this.limits.maxBodySize) {
      this.drop(key, assembly);
      return this.tooLarge();
    }
    if (this.buffered + payload.length > this.limits.maxBufferedBytes) {
      this.drop(key, assembly);
      return { kind: 'error', code: '5.03', reason: 'too many block-wise transfers at once' };
    }
    assembly.parts.push(Buffer.from(payload)); // a copy: the datagram's buffer is not ours to keep
    assembly.received += payload.length;
    assembly.lastAt = now;
    this.buffered += payload.length;
    if (block.more) return { kind: 'continue' };
    this.drop(key, assembly);
    return { kind: 'complete', payload: Buffer.concat(assembly.parts, assembly.received) };
  }

  private tooLarge(): Block1Outcome {
    return { kind: 'error', code: '4.13', reason: `body larger than ${this.limits.maxBodySize} bytes` };
  }

  private drop(key: string, assembly: Assembly): void {
    if (this.assemblies.get(key) === assembly) this.assemblies.delete(key);
    this.buffered -= assembly.received;
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < this.limits.transferTimeoutMs / 4) return;
    this.lastSweep = now;
    for (const [key, a] of this.assemblies) if (now - a.lastAt > this.limits.transferTimeoutMs) this.drop(key, a);
  }

  clear(): void {
    this.assemblies.clear();
    this.buffered = 0;
  }
}

export interface CachedBody {
  body: Buffer;
  contentFormat?: number;
  at: number;
}

/** Large answers by (peer, request): oldest dropped first once `maxBufferedBytes` is reached. */
export class Block2Cache {
  private readonly bodies = new Map<string, CachedBody>();
  private buffered = 0;

  constructor(private readonly limits: BlockLimits) {}

  put(key: string, body: Buffer, contentFormat: number | undefined): void {
    this.remove(key);
    if (body.length > this.limits.maxBufferedBytes) return;
    const now = Date.now();
    for (const [k, v] of this.bodies) {
      if (this.buffered + body.length <= this.limits.maxBufferedBytes && now - v.at <= this.limits.transferTimeoutMs) break;
      this.remove(k);
    }
    this.bodies.set(key, { body, contentFormat, at: now });
    this.buffered += body.length;
  }

  get(key: string): CachedBody | undefined {
    const entry = this.bodies.get(key);
    if (entry && Date.now() - entry.at > this.limits.transferTimeoutMs) {
      this.remove(key);
      return undefined;
    }
    return entry;
  }

  remove(key: string): void {
    const entry = this.bodies.get(key);
    if (!entry) return;
    this.bodies.delete(key);
    this.buffered -= entry.body.length;
  }

  clear(): void {
    this.bodies.clear();
    this.buffered = 0;
  }
}

/**
 * RFC 6347 §4.1 records: 13-byte header (type, version, epoch, 48-bit sequence number, length),
 * several records per datagram, and the 64-record anti-replay window of §4.1.2.6.
 */
import { Reader, WireError } from './wire';

export const enum ContentType { ChangeCipherSpec = 20, Alert = 21, Handshake = 22, ApplicationData = 23, Tls12Cid = 25 }

export const DTLS_1_2 = 0xfefd;
export const DTLS_1_0 = 0xfeff;
export const RECORD_HEADER = 13;

export interface DtlsRecord {
  type: number;
  version: number;
  epoch: number;
  sequence: number;
  /** The connection ID of a tls12_cid record (RFC 9146), else undefined. */
  cid?: Buffer;
  fragment: Buffer;
}

/**
 * The records of one datagram; parsing stops at the first malformed one (the rest is dropped,
 * §4.1.2.7). `cidLength`: the length of the connection IDs this side hands out, which tls12_cid
 * records carry without a length of their own.
 */
export function parseRecords(datagram: Buffer, cidLength = 0): DtlsRecord[] {
  const records: DtlsRecord[] = [];
  const r = new Reader(datagram);
  try {
    while (r.left >= RECORD_HEADER) {
      const type = r.u8();
      const version = r.u16();
      const epoch = r.u16();
      const sequence = r.u48();
      const cid = type === ContentType.Tls12Cid ? r.bytes(cidLength) : undefined;
      const fragment = r.vector(2);
      if (type < 20 || type > 25 || (version >> 8) !== 0xfe) break;
      records.push({ type, version, epoch, sequence, cid, fragment });
    }
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
  }
  return records;
}

/** epoch ‖ sequence as the 8 bytes the MAC and AEAD nonce use. */
export function sequenceBytes(epoch: number, sequence: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeUInt16BE(epoch, 0);
  b.writeUIntBE(sequence, 2, 6);
  return b;
}

export function recordHeader(type: number, version: number, epoch: number, sequence: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(RECORD_HEADER);
  b[0] = type;
  b.writeUInt16BE(version, 1);
  b.writeUInt16BE(epoch, 3);
  b.writeUIntBE(sequence, 5, 6);
  b.writeUInt16BE(length, 11);
  return b;
}

/**
 * §4.1.2.6: a record is accepted once; records older than the 64 newest are refused. The 64-bit
 * bitmap is two 32-bit words (bit n: `highest - n` seen): a BigInt would be a new heap object on
 * every record, and every idle session holds two windows.
 */
export class ReplayWindow {
  private highest = -1;
  private low = 0;
  private high = 0;

  get highestSeen(): number {
    return this.highest;
  }

  /** Whether the sequence number may be processed (it is not marked yet). */
  fresh(sequence: number): boolean {
    if (sequence > this.highest) return true;
    const behind = this.highest - sequence;
    if (behind >= 64) return false;
    return ((behind < 32 ? this.low >>> behind : this.high >>> (behind - 32)) & 1) === 0;
  }

  /** Marks a sequence number seen (after its record authenticated). */
  mark(sequence: number): void {
    if (sequence > this.highest) {
      const shift = sequence - this.highest;
      if (shift >= 64) {
        this.high = 0;
        this.low = 0;
      } else if (shift >= 32) {
        this.high = shift === 32 ? this.low : (this.low << (shift - 32)) >>> 0;
        this.low = 0;
      } else {
        this.high = ((this.high << shift) | (this.low >>> (32 - shift))) >>> 0;
        this.low = (this.low << shift) >>> 0;
      }
      this.low = (this.low | 1) >>> 0;
      this.highest = sequence;
      return;
    }
    const behind = this.highest - sequence;
    if (behind < 32) this.low = (this.low | (1 << behind)) >>> 0;
    else if (behind < 64) this.high = (this.high | (1 << (behind - 32))) >>> 0;
  }
}

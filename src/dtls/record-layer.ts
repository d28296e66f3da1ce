/**
 * The record layer of one connection (RFC 6347 §4.1): write and read states per epoch, sequence
 * numbers, the anti-replay window, record protection, and connection IDs (RFC 9146) — records to
 * a peer that asked for a CID go out as tls12_cid with the real type inside the plaintext.
 */
import type { RecordProtection } from './crypto';
import { ContentType, DTLS_1_2, DtlsRecord, parseRecords, recordHeader, ReplayWindow } from './records';

interface WriteState { protection: RecordProtection | null; sequence: number }
interface ReadState { protection: RecordProtection | null; window: ReplayWindow }

/** A record that authenticated: its real type and plaintext, and whether it is the newest seen. */
export interface OpenedRecord {
  type: number;
  epoch: number;
  plaintext: Buffer;
  newest: boolean;
}

/** Who hears of a datagram's records (the connection: no closures per datagram). */
export interface RecordSink {
  /** A protected record did not authenticate (during a handshake that means wrong keys). */
  badRecord(): void;
  /** A record authenticated and is fresh; false: drop the rest of the datagram. */
  record(record: OpenedRecord): boolean;
}

const CID_PLACEHOLDER = Buffer.alloc(8, 0xff);

export class RecordLayer {
  private readonly writes: WriteState[] = [{ protection: null, sequence: 0 }];
  private readonly reads: ReadState[] = [{ protection: null, window: new ReplayWindow() }];
  writeEpoch = 0;
  readEpoch = 0;
  private pendingRead: RecordProtection | null = null;
  /** The CID the peer asked us to put on records to it (RFC 9146), once epoch 1 protects them. */
  peerCid?: Buffer;
  /** The CID records to us carry. */
  ownCid?: Buffer;

  constructor(firstWriteSequence = 0) {
    this.writes[0].sequence = firstWriteSequence;
  }

  /** The keys of the next epoch: writing starts with our ChangeCipherSpec, reading with the peer's. */
  setPending(read: RecordProtection, write: RecordProtection): void {
    this.pendingRead = read;
    this.writes[1] = { protection: write, sequence: 0 };
  }

  get readPending(): boolean {
    return this.pendingRead !== null;
  }

  /** The peer's ChangeCipherSpec: its records are protected from now on. */
  activateRead(): void {
    this.readEpoch++;
    this.reads[this.readEpoch] = { protection: this.pendingRead, window: new ReplayWindow() };
    this.pendingRead = null;
  }

  /** The connection ended: its keys go (with any AES contexts kept for them). */
  dispose(): void {
    for (const state of [...this.writes, ...this.reads]) state?.protection?.dispose?.();
    this.pendingRead?.dispose?.();
  }

  activateWrite(): void {
    this.writeEpoch = Math.max(this.writeEpoch, 1);
  }

  encode(type: ContentType, epoch: number, plaintext: Buffer): Buffer {
    const state = this.writes[epoch];
    const sequence = state.sequence++;
    const cid = this.peerCid;
    if (!state.protection || !cid || cid.length === 0) {
      let fragment = plaintext;
      if (state.protection) {
        const aad = plainAad(epoch, sequence, type);
        fragment = state.protection.seal(aad.subarray(0, 8), aad, plaintext);
      }
      return Buffer.concat([recordHeader(type, DTLS_1_2, epoch, sequence, fragment.length), fragment]);
    }
    // RFC 9146 §4: DTLSInnerPlaintext = content ‖ real type (no padding), outer type tls12_cid
    const inner = Buffer.concat([plaintext, Buffer.from([type])]);
    const aad = cidAad(epoch, sequence, cid);
    const fragment = state.protection.seal(aad.subarray(CID_SEQUENCE_AT, CID_SEQUENCE_AT + 8), aad, inner);
    const header = recordHeader(ContentType.Tls12Cid, DTLS_1_2, epoch, sequence, fragment.length);
    return Buffer.concat([header.subarray(0, 11), cid, header.subarray(11), fragment]);
  }

  /**
   * Hands each record of a datagram that authenticates and is not a replay to the sink, one at a
   * time: a ChangeCipherSpec must take effect before the Finished behind it in the same datagram
   * is opened.
   */
  decode(datagram: Buffer, sink: RecordSink): void {
    for (const record of parseRecords(datagram, this.ownCid?.length ?? 0)) {
      const opened = this.open(record, sink);
      if (opened && !sink.record(opened)) return;
    }
  }

  private open(record: DtlsRecord, sink: RecordSink): OpenedRecord | undefined {
    const { epoch, sequence } = record;
    const read = this.reads[epoch];
    // the current epoch, or epoch 0 handshake retransmissions from a peer that missed our last flight
    if (!read || (epoch !== this.readEpoch && !(epoch === 0 && record.type === ContentType.Handshake))) return undefined;
    if (!read.window.fresh(sequence)) return undefined;
    let type = record.type;
    let plaintext = record.fragment;
    if (record.type === ContentType.Tls12Cid) {
      if (!read.protection || !this.ownCid || !record.cid?.equals(this.ownCid)) return undefined;
      const aad = cidAad(epoch, sequence, this.ownCid);
      const inner = read.protection.open(aad.subarray(CID_SEQUENCE_AT, CID_SEQUENCE_AT + 8), aad, record.fragment);
      if (!inner) return void sink.badRecord();
      let end = inner.length;
      while (end > 0 && inner[end - 1] === 0) end--; // zero padding
      if (end === 0) return undefined;
      type = inner[end - 1];
      plaintext = inner.subarray(0, end - 1);
    } else if (read.protection) {
      const aad = plainAad(epoch, sequence, type);
      const opened = read.protection.open(aad.subarray(0, 8), aad, record.fragment);
      if (!opened) return void sink.badRecord();
      plaintext = opened;
    }
    const newest = sequence > read.window.highestSeen;
    read.window.mark(sequence);
    return { type, epoch, plaintext, newest };
  }
}

/** RFC 5246 §6.2.3: epoch ‖ sequence ‖ type ‖ version, what a plain record's MAC or AEAD covers before its length. */
function plainAad(epoch: number, sequence: number, type: number): Buffer {
  const aad = Buffer.allocUnsafe(11);
  aad.writeUInt16BE(epoch, 0);
  aad.writeUIntBE(sequence, 2, 6);
  aad[8] = type;
  aad.writeUInt16BE(DTLS_1_2, 9);
  return aad;
}

/** Where epoch ‖ sequence sits in the CID additional data. */
const CID_SEQUENCE_AT = 13;

/** RFC 9146 §5: placeholder ‖ tls12_cid ‖ cid_length ‖ tls12_cid ‖ version ‖ epoch ‖ sequence ‖ cid, in one allocation. */
function cidAad(epoch: number, sequence: number, cid: Buffer): Buffer {
  const aad = Buffer.allocUnsafe(CID_SEQUENCE_AT + 8 + cid.length);
  CID_PLACEHOLDER.copy(aad, 0);
  aad[8] = ContentType.Tls12Cid;
  aad[9] = cid.length;
  aad[10] = ContentType.Tls12Cid;
  aad.writeUInt16BE(DTLS_1_2, 11);
  aad.writeUInt16BE(epoch, CID_SEQUENCE_AT);
  aad.writeUIntBE(sequence, CID_SEQUENCE_AT + 2, 6);
  cid.copy(aad, CID_SEQUENCE_AT + 8);
  return aad;
}

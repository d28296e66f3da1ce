/**
 * RFC 7252 §4.8 transmission parameters and the times derived from them (§4.8.2). NB-IoT links
 * want the defaults or longer: a request's default timeout lets every retransmission happen.
 */
export interface TransmissionParameters {
  ackTimeoutMs: number;
  ackRandomFactor: number;
  maxRetransmit: number;
  /** Outstanding interactions per peer (§4.7); further requests wait in that peer's queue. */
  nstart: number;
}

export const DEFAULT_PARAMETERS: TransmissionParameters = {
  ackTimeoutMs: 2000,
  ackRandomFactor: 1.5,
  maxRetransmit: 4,
  nstart: 1,
};

/** MAX_LATENCY and PROCESSING_DELAY of §4.8.2, in ms. */
const MAX_LATENCY_MS = 100_000;

/** Time from a CON's first transmission until the sender gives up (MAX_TRANSMIT_WAIT, 93 s by default). */
export function maxTransmitWaitMs(p: TransmissionParameters): number {
  return p.ackTimeoutMs * (2 ** (p.maxRetransmit + 1) - 1) * p.ackRandomFactor;
}

/** MAX_TRANSMIT_SPAN: the last retransmission's latest time (45 s by default). */
export function maxTransmitSpanMs(p: TransmissionParameters): number {
  return p.ackTimeoutMs * (2 ** p.maxRetransmit - 1) * p.ackRandomFactor;
}

/** How long a CON's message id stays in use (EXCHANGE_LIFETIME, 247 s by default). */
export function exchangeLifetimeMs(p: TransmissionParameters): number {
  return maxTransmitSpanMs(p) + 2 * MAX_LATENCY_MS + p.ackTimeoutMs;
}

export function checkParameters(p: TransmissionParameters): void {
  if (!(p.ackTimeoutMs >= 1) || !(p.ackRandomFactor >= 1) || !Number.isInteger(p.maxRetransmit) || p.maxRetransmit < 0
    || p.maxRetransmit > 20 || !Number.isInteger(p.nstart) || p.nstart < 1) {
    throw new RangeError('CoAP transmission parameters: ackTimeoutMs ≥ 1, ackRandomFactor ≥ 1, maxRetransmit 0–20, nstart ≥ 1');
  }
}

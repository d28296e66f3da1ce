import { Lwm2mError } from '../types';

/** No answer in time (retransmissions exhausted, or the request's timeout passed). */
export class CoapTimeoutError extends Lwm2mError {}
/** The transport is closed, or a request could not be sent or completed. */
export class CoapTransportError extends Lwm2mError {}
/** The peer rejected the request with RST (RFC 7252 §4.2): it is not waiting for it. */
export class CoapResetError extends CoapTransportError {}

import { Lwm2mError } from '../types';

/** A payload that does not decode: malformed bytes, wrong shape, or a value of the wrong type. */
export class DecodeError extends Lwm2mError {}

/** A value that cannot be encoded in the requested format or for the resource's type. */
export class EncodeError extends Lwm2mError {}

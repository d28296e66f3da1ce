import { Lwm2mError } from '../types';

/** The device answered with a non-success code. */
export class RequestFailedError extends Lwm2mError {
  constructor(readonly code: string, readonly endpoint: string, readonly path: string | undefined, detail?: string) {
    super(`${endpoint}${path ? ` ${path}` : ''}: device answered ${code}${detail ? ` (${detail})` : ''}`);
  }
}

export class DeviceNotFoundError extends Lwm2mError {
  constructor(readonly endpoint: string, detail?: string) {
    super(detail ?? `no registered device with endpoint "${endpoint}"`);
  }
}

export class DeviceTimeoutError extends Lwm2mError {
  constructor(readonly endpoint: string, readonly path: string | undefined, detail: string) {
    super(`${endpoint}${path ? ` ${path}` : ''}: ${detail}`);
  }
}

/** A queue-mode device's queue is full, or the server stopped before a queued request was sent. */
export class QueueError extends Lwm2mError {
  constructor(readonly endpoint: string, detail: string) {
    super(`${endpoint}: ${detail}`);
  }
}

/** The server is not running (not started, or stopped). */
export class ServerStoppedError extends Lwm2mError {}

/** Too many requests to devices pending (the server's maxPendingRequests): the request was not sent. */
export class RequestLimitError extends Lwm2mError {}

export * from './at-line';
export * from './driver';
export * from './lwm2m';
export * from './emulator';
export * from './values';
export { startPtyPair, PtyPair } from './pty-pair';

/**
 * Starts scripts/pty-pair.py (a linked pair of pseudo-terminals, python3 standard library only) and
 * stops it. Tests use it to make a real serial line, and to make it vanish and come back.
 */
import { ChildProcess, spawn } from 'child_process';
import * as path from 'path';

export interface PtyPair {
  readonly a: string;
  readonly b: string;
  stop(): Promise<void>;
}

const SCRIPT = path.join(__dirname, '..', '..', 'scripts', 'pty-pair.py');

export function startPtyPair(a: string, b: string, timeoutMs = 5000): Promise<PtyPair> {
  return new Promise((resolve, reject) => {
    // stdin stays a pipe: the relay exits when its parent goes away and the pipe closes
    const child: ChildProcess = spawn('python3', [SCRIPT, a, b], { stdio: ['pipe', 'pipe', 'inherit'] });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`pty pair did not start within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start python3 for the pty pair: ${err.message}`));
    });
    child.stdout!.once('data', () => {
      clearTimeout(timer);
      resolve({
        a, b,
        stop: () => new Promise<void>((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done();
          child.once('exit', () => done());
          child.kill('SIGTERM');
        }),
      });
    });
  });
}

/**
 * Tokens of the requests this side sends: 8 random bytes each (RFC 7252 §5.3.1: unguessable by
 * an off-path attacker), drawn from a CSPRNG pool so a token costs no system call.
 */
import { randomFillSync } from 'crypto';

const POOL_SIZE = 8 * 512;

export class TokenSource {
  private pool = Buffer.allocUnsafe(POOL_SIZE);
  private offset = POOL_SIZE;

  /** A token that `inUse` does not report as taken. */
  next(inUse: (key: string) => boolean): { token: Buffer; key: string } {
    for (;;) {
      if (this.offset >= POOL_SIZE) {
        this.pool = randomFillSync(Buffer.allocUnsafe(POOL_SIZE));
        this.offset = 0;
      }
      const token = this.pool.subarray(this.offset, this.offset + 8);
      this.offset += 8;
      const key = token.toString('hex');
      if (!inUse(key)) return { token, key };
    }
  }
}

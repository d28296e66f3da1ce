/**
 * Stateless HelloVerifyRequest cookies (RFC 6347 §4.2.1): HMAC of the client's address and its
 * ClientHello parameters under a secret that rotates, so a server keeps no state for a client
 * until it has shown it receives datagrams at the address it claims.
 */
import { randomBytes, timingSafeEqual } from 'crypto';
import { hmacSha256 } from './crypto';

const COOKIE_LENGTH = 16;

export class CookieJar {
  private secret = randomBytes(32);
  private previous = randomBytes(32);
  private rotatedAt = Date.now();

  constructor(private readonly rotateMs = 5 * 60_000) {}

  private rotate(): void {
    if (Date.now() - this.rotatedAt < this.rotateMs) return;
    this.previous = this.secret;
    this.secret = randomBytes(32);
    this.rotatedAt = Date.now();
  }

  /** `hello`: the ClientHello body without its cookie (in pieces), as it hashes the client's parameters. */
  cookie(address: string, port: number, hello: Buffer[]): Buffer {
    this.rotate();
    return this.compute(this.secret, address, port, hello);
  }

  valid(cookie: Buffer, address: string, port: number, hello: Buffer[]): boolean {
    if (cookie.length !== COOKIE_LENGTH) return false;
    this.rotate();
    return timingSafeEqual(cookie, this.compute(this.secret, address, port, hello))
      || timingSafeEqual(cookie, this.compute(this.previous, address, port, hello));
  }

  private compute(secret: Buffer, address: string, port: number, hello: Buffer[]): Buffer {
    return hmacSha256(secret, Buffer.from(`${address}|${port}|`), ...hello).subarray(0, COOKIE_LENGTH);
  }
}

#!/usr/bin/env node
/**
 * Command line for the BC66 emulator, for people without a modem:
 *   node dist/bc66/emulator-cli.js --port /dev/pts/5 [--imei 866425030000001]
 *   node dist/bc66/emulator-cli.js --pty ./modem ./host     (makes a linked pty pair first)
 * Point an lwm2m-bc66 node (or any serial terminal) at the other end of the line.
 */
import { Bc66Emulator } from './emulator';
import { startPtyPair, PtyPair } from './pty-pair';

function usage(): never {
  console.log('usage: emulator-cli --port <serial device> [--imei <15 digits>] [--baud 115200]\n'
    + '       emulator-cli --pty <modem link> <host link> [--imei <15 digits>]');
  process.exit(2);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.length === 0) usage();
  const value = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  let pty: PtyPair | undefined;
  let port = value('--port');
  const ptyAt = args.indexOf('--pty');
  if (ptyAt >= 0) {
    const [modem, host] = args.slice(ptyAt + 1, ptyAt + 3);
    if (!modem || !host) usage();
    pty = await startPtyPair(modem, host);
    port = modem;
    console.log(`pty pair: modem end ${modem}, host end ${host} (open this one in Node-RED)`);
  }
  if (!port) usage();
  const imei = value('--imei');
  if (imei && !/^\d{15}$/.test(imei)) usage();
  const emulator = new Bc66Emulator({ path: port, imei, baudRate: Number(value('--baud')) || 115200, bootBanner: true });
  emulator.on('warning', (err: Error) => console.log(`warning: ${err.message}`));
  await emulator.start();
  console.log(`BC66 emulator (IMEI ${emulator.imei}) on ${port}; Ctrl+C to stop`);
  const stop = async () => {
    await emulator.stop();
    await pty?.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});

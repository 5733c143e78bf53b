/**
 * The client side of an attach: the user's terminal (raw mode, window size
 * followed, restored on the way out) or plain stdin/stdout/stderr, relayed to
 * the container's monitor. Resolves with the container's exit code.
 */
import type { ShimGlobals } from '../cli/context.js';
import type { AttachHandlers, Attachment } from './monitor.js';
import { runtime } from './runtime.js';

export function stdioHandlers(): AttachHandlers {
  return { stdout: (b) => process.stdout.write(b), stderr: (b) => process.stderr.write(b) };
}

export interface RelayOptions {
  tty: boolean;
  stdin: boolean;
  /** forward SIGINT/SIGTERM/... to the container (Docker's --sig-proxy) when there is no tty */
  proxySignals?: { g: ShimGlobals; id: string };
}

export async function relay(a: Attachment, o: RelayOptions): Promise<number | undefined> {
  const stdin = process.stdin;
  const raw = o.tty && stdin.isTTY;
  const cleanups: (() => void)[] = [];
  if (raw) {
    stdin.setRawMode(true);
    cleanups.push(() => stdin.setRawMode(false));
  }
  if (o.tty && process.stdout.isTTY) {
    const resize = () => a.resize(process.stdout.rows, process.stdout.columns);
    resize();
    process.on('SIGWINCH', resize);
    cleanups.push(() => process.off('SIGWINCH', resize));
  }
  if (o.stdin) {
    const onData = (d: Buffer) => a.send(d);
    const onEnd = () => a.closeStdin();
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.resume();
    cleanups.push(() => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.pause();
      stdin.destroy();
    });
  }
  if (o.proxySignals && !raw) {
    const { g, id } = o.proxySignals;
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as NodeJS.Signals[]) {
      const h = () => void runtime(g, ['kill', id, sig]);
      process.on(sig, h);
      cleanups.push(() => process.off(sig, h));
    }
  }
  try {
    return await a.done;
  } finally {
    for (const c of cleanups.reverse()) c();
  }
}

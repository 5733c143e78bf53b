/**
 * The foreground half of `run` and `exec`: forward the signals a person or
 * an engine sends us to the process, wait for it, let the terminal relay
 * drain, and turn its end into an exit code (128+N when killed by signal N).
 */
import { native } from '../native.js';
import type { Relay } from './terminal.js';

// Signals forwarded to the container instead of ending tsrun.
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGCONT'];

export async function waitForeground(pid: number, relay?: Relay): Promise<number> {
  const forward = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      /* already exited */
    }
  };
  for (const s of FORWARDED) process.on(s, forward);
  const status = await native().waitPid(pid);
  for (const s of FORWARDED) process.off(s, forward);
  if (relay) {
    // Let the last output through; a process that kept the pty open is not waited for.
    await Promise.race([relay.drained, new Promise((r) => setTimeout(r, 1000))]);
    relay.restore();
  }
  return status.code ?? 128 + (status.signal ?? 0);
}

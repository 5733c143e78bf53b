/**
 * The foreground half of `run` and `exec`: forward the signals a person or
 * an engine sends us to the process, wait for it, let the terminal relay
 * drain, and turn its end into an exit code (128+N when killed by signal N).
 *
 * The handlers go in before anything is created: a signal that arrives
 * while the container is being set up (or its hooks run) is queued and
 * delivered once the process exists, instead of killing tsrun and orphaning
 * the container.
 */
import { native } from '../native.js';
import type { Relay } from './terminal.js';

// Signals forwarded to the container instead of ending tsrun.
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGCONT'];

export class Foreground {
  private pid = 0;
  private pending: NodeJS.Signals[] = [];
  private readonly handler = (sig: NodeJS.Signals) => {
    if (this.pid) this.send(sig);
    else this.pending.push(sig);
  };

  constructor() {
    for (const s of FORWARDED) process.on(s, this.handler);
  }

  private send(sig: NodeJS.Signals): void {
    try {
      process.kill(this.pid, sig);
    } catch {
      /* already exited */
    }
  }

  /** The process now exists: deliver what was queued and forward from now on. */
  attach(pid: number): void {
    this.pid = pid;
    for (const sig of this.pending.splice(0)) this.send(sig);
  }

  /** Stop intercepting (the caller failed before there was anything to wait for). */
  release(): void {
    for (const s of FORWARDED) process.off(s, this.handler);
  }

  async wait(relay?: Relay): Promise<number> {
    const status = await native().waitPid(this.pid);
    this.release();
    // Let the last output through; a process that kept the pty open is not waited for.
    if (relay) await relay.finish(1000);
    return status.code ?? 128 + (status.signal ?? 0);
  }
}

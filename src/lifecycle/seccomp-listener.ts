/**
 * The runtime's half of seccomp user notification (runtime-spec config.md,
 * "Seccomp" and "Container Process State"): the init (or an exec'd
 * process) loads a filter with SCMP_ACT_NOTIFY rules, gets the listener fd
 * from the kernel and hands it to us on the sync socket; we pass it to the
 * agent at linux.seccomp.listenerPath in one message — the container process
 * state JSON as data, the fd as SCM_RIGHTS — and close our copy. The process
 * waits for our ack, so the agent holds the fd before any notified syscall
 * can block on it.
 */
import { UserError } from '../errors.js';
import { native } from '../native.js';
import type { State } from '../oci/types.js';
import { OCI_VERSION } from '../oci/types.js';

/** The runtime spec's name for the seccomp fd in `fds`. */
export const SECCOMP_FD_NAME = 'seccompFd';

export interface ContainerProcessState {
  ociVersion: string;
  fds: string[];
  pid: number;
  metadata: string;
  state: State;
}

export function containerProcessState(pid: number, metadata: string, state: State): ContainerProcessState {
  return { ociVersion: OCI_VERSION, fds: [SECCOMP_FD_NAME], pid, metadata, state };
}

/** Sends the listener fd to the agent and closes it here, whatever happens. */
export function sendToSeccompAgent(listener: { path: string; metadata: string } | undefined, fd: number, pid: number, state: State): void {
  let sock = -1;
  try {
    if (!listener) throw new UserError('the init sent a seccomp notify fd but the config has no listenerPath');
    const payload = Buffer.from(JSON.stringify(containerProcessState(pid, listener.metadata, state)));
    try {
      sock = native().connectUnix(listener.path);
      native().sendFd(sock, payload, fd);
    } catch (e) {
      throw new UserError(`seccomp listener ${listener.path}: ${(e as Error).message.replace(/^connect [^:]*: /, '')}`);
    }
  } finally {
    if (sock >= 0) native().close(sock);
    native().close(fd);
  }
}

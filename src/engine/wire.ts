/** native/engine.cc, typed: the engine's socket calls (the addon's `engine` export). */
import { native } from '../native.js';

export interface WireMsg {
  type: number;
  a: number;
  b: number;
  c: number;
  d: number;
  payload: Buffer;
  fds: number[];
}

export interface EngineAddon {
  /** a SOCK_SEQPACKET socket bound at path (mode 0600) and listening */
  listen(path: string): number;
  /** a connection to a root-owned listener, or -1 */
  connect(path: string): number;
  /** the next root peer, already sent EM_HELLO with `hello` (and `initFd`); null after timeoutMs (-1: none) idle */
  accept(listenFd: number, timeoutMs: number, hello: string, initFd?: number): Promise<{ fd: number; pid: number } | null>;
  /** shuts the listener down: a pending accept resolves null (process.exit would wait for it otherwise) */
  stopListening(listenFd: number): void;
  /** process pid is in our namespace of each kind in names (/proc/<pid>/ns/<name>) */
  sameNamespaces(pid: number, names: readonly string[]): boolean;
  /** the other end of the connection has closed (checked without reading) */
  peerClosed(fd: number): boolean;
  send(fd: number, type: number, nums: number[], payload?: Buffer, fds?: number[]): void;
  /** one message; null on EOF; throws on timeout */
  recv(fd: number, timeoutMs: number): WireMsg | null;
  dup2(from: number, to: number): void;
  /** closes every fd >= 3 that is not close-on-exec: inherited, not Node's */
  closeInherited(): void;
  protoVersion: number;
}

/** The addon's sealed copy of tsrun-init (made once per process), which every spawned child execs first. */
export function initExeFd(): number {
  return (native() as unknown as { initExeFd(): number }).initExeFd();
}

export function engineAddon(): EngineAddon {
  const eng = (native() as unknown as { engine?: EngineAddon }).engine;
  if (!eng) throw new Error('the addon has no engine support: rebuild (npm run build)');
  return eng;
}

/**
 * The runtime as an engine drives it: the `tsrun` binary with `--root`, one
 * subcommand per lifecycle step. Nothing here imports the runtime's code.
 */
import { spawn, spawnSync, type StdioOptions } from 'node:child_process';
import os from 'node:os';
import type { ShimGlobals } from '../cli/context.js';

export interface RuntimeResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runtimeArgv(g: ShimGlobals, args: string[]): string[] {
  return [g.runtime, '--root', g.runtimeRoot, ...args];
}

/** Runs a short runtime command to completion, capturing its output. */
export function runtime(g: ShimGlobals, args: string[], timeoutMs = 60_000): RuntimeResult {
  const [bin, ...rest] = runtimeArgv(g, args);
  const r = spawnSync(bin, rest, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) return { code: 127, stdout: '', stderr: `${bin}: ${r.error.message}` };
  return { code: r.status ?? 128 + 9, stdout: r.stdout, stderr: r.stderr };
}

/** The runtime's one-line error without its `tsrun: ` prefix. */
export function runtimeMessage(r: RuntimeResult): string {
  const lines = r.stderr.trim().split('\n').filter(Boolean);
  return (lines[lines.length - 1] ?? `exit status ${r.code}`).replace(/^tsrun: /, '');
}

/** Runs a runtime command with the user's terminal (exec): its status is the result. */
export function runtimeInteractive(g: ShimGlobals, args: string[], stdio: StdioOptions): Promise<number> {
  const [bin, ...rest] = runtimeArgv(g, args);
  return new Promise((resolve, reject) => {
    const child = spawn(bin, rest, { stdio });
    // signals a person sends tsctl are the runtime's to forward into the container
    const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
    const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[]).map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      for (const [s, h] of handlers) process.off(s, h);
      resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0));
    });
  });
}

/**
 * Docker's status for a process that could not be started: 127 when the
 * command was not found, 126 when it could not be invoked.
 */
export function startFailureCode(message: string): number {
  if (/executable file not found|no such file or directory/i.test(message)) return 127;
  if (/permission denied|exec format error|is a directory/i.test(message)) return 126;
  return 125;
}

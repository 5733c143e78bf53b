/**
 * The runtime as an engine drives it: the `tsrun` binary with `--root`, one
 * subcommand per lifecycle step. Nothing here imports the runtime's code.
 */
import { spawn, spawnSync } from 'node:child_process';
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

/**
 * Runs `tsrun exec` with the user's stdin/stdout; its status is the result.
 * stderr is relayed, except the runtime's own failure line, which is turned
 * into Docker's status for it (126/127) and a tsctl message.
 */
export function runtimeExec(g: ShimGlobals, args: string[], stdin: 'inherit' | 'ignore'): Promise<number> {
  const [bin, ...rest] = runtimeArgv(g, args);
  return new Promise((resolve, reject) => {
    const child = spawn(bin, rest, { stdio: [stdin, 'inherit', 'pipe'] });
    // signals a person sends tsctl are the runtime's to forward into the process
    const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[]).map((sig) => [sig, () => child.kill(sig)] as const);
    for (const [sig, h] of handlers) process.on(sig, h);
    let held: Buffer | undefined; // output that may be the runtime's own error, kept until exit
    let first = true;
    child.stderr!.on('data', (d: Buffer) => {
      if (first && d.toString('utf8', 0, 6) === 'tsrun:') held = d;
      else if (held) held = Buffer.concat([held, d]);
      else process.stderr.write(d);
      first = false;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      for (const [sig, h] of handlers) process.off(sig, h);
      let status = code ?? 128 + (signal ? os.constants.signals[signal] : 0);
      if (held) {
        const text = held.toString('utf8');
        const m = /^tsrun: exec [^:]+: (.*)$/m.exec(text);
        if (m && status !== 0) {
          process.stderr.write(`tsctl: exec failed: ${m[1]}\n`);
          status = startFailureCode(m[1]) === 125 ? 126 : startFailureCode(m[1]);
        } else {
          process.stderr.write(held);
        }
      }
      resolve(status);
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

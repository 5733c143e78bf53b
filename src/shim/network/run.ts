/**
 * Running ip(8), nft(8) and nsenter(1): every call bounded by a timeout,
 * output captured, failures turned into one line naming the command. The
 * network is configured through these tools (as Docker's early drivers and
 * CNI plugins do) rather than raw netlink: they are in Debian, their
 * batch/transaction modes make each step one process, and their errors are
 * the ones an operator knows.
 */
import { spawn } from 'node:child_process';
import { UserError } from '../../errors.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Runs a command, never throwing for its exit status (127 when it cannot be started). */
export function run(cmd: string, args: string[], input?: string, timeoutMs = 15_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:${PATH}`, LC_ALL: 'C' };
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    let spawnError: Error | undefined;
    child.once('error', (e) => (spawnError = e));
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      let stderr = Buffer.concat(err).toString('utf8');
      if (spawnError) stderr = `${spawnError.message}`;
      else if (signal) stderr += `${stderr ? '; ' : ''}killed by ${signal}${signal === 'SIGKILL' ? ` after ${timeoutMs} ms` : ''}`;
      resolve({ code: spawnError ? 127 : (code ?? 1), stdout: Buffer.concat(out).toString('utf8'), stderr });
    });
    if (input !== undefined) {
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(input);
    }
  });
}

/** The first meaningful line of a tool's error output. */
export function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? ''
  );
}

/** Runs a command and throws a one-line UserError when it fails. */
export async function must(what: string, cmd: string, args: string[], input?: string): Promise<string> {
  const r = await run(cmd, args, input);
  if (r.code !== 0) {
    const why = r.code === 127 && /ENOENT/.test(r.stderr) ? `${cmd} is not installed${cmd === 'nft' ? ' (Debian package nftables)' : ''}` : firstLine(r.stderr) || `exit status ${r.code}`;
    throw new UserError(`network: ${what}: ${why}`);
  }
  return r.stdout;
}

/**
 * What the network specs (and bench/portfwd.sh) share:
 *
 *  - sandbox(t)        a network namespace `tsctl-test-<random>` with lo up,
 *                      standing in for the host: the bridge, NAT table,
 *                      sysctls and veths are all made in it, never in the
 *                      real host namespace. Deleted at teardown (and, as a
 *                      last resort, when the test process exits).
 *  - driver()          spec/shim/network-driver.ts bundled once (esbuild) to
 *                      a temp file, run as `ip netns exec NS node FILE ...`.
 *  - webContainer(t)   a busybox bundle serving /www/index.html with
 *                      `httpd -f -p 80`, created with tsrun (its init waits
 *                      for `start`, its fresh network namespace exists).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { cleanupContainer, exec, makeBundle, REPO_ROOT, type RunResult, type TestLike, tsrun, uniqueId } from '../lib/harness.js';

export interface Sandbox {
  name: string;
  /** `ip netns exec NAME cmd ...args` */
  run(cmd: string, args: string[], timeoutMs?: number): Promise<RunResult>;
  /** the driver in the sandbox: its JSON answer, or a thrown Error with its stderr */
  driver<T = Record<string, unknown>>(args: string[], timeoutMs?: number): Promise<T>;
}

const liveSandboxes = new Set<string>();
process.on('exit', () => {
  for (const n of liveSandboxes) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore', timeout: 5000 });
});

let driverFile: Promise<string> | undefined;

/** The driver as one CommonJS file (plain `node` runs it: no TS loader inside the namespace). */
export function driver(): Promise<string> {
  driverFile ??= (async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-netdriver-'));
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    const out = path.join(dir, 'driver.js');
    await build({
      entryPoints: [path.join(REPO_ROOT, 'spec', 'shim', 'network-driver.ts')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      outfile: out,
      logLevel: 'warning',
    });
    return out;
  })();
  return driverFile;
}

export async function sandbox(t: TestLike): Promise<Sandbox> {
  const name = `tsctl-test-${randomBytes(4).toString('hex')}`;
  const add = await exec('ip', ['netns', 'add', name]);
  if (add.code !== 0) throw new Error(`ip netns add ${name}: ${add.stderr}`);
  liveSandboxes.add(name);
  t.teardown(async () => {
    await exec('ip', ['netns', 'del', name]);
    liveSandboxes.delete(name);
  });
  const run = (cmd: string, args: string[], timeoutMs = 30_000) => exec('ip', ['netns', 'exec', name, cmd, ...args], { timeoutMs });
  const up = await run('ip', ['link', 'set', 'lo', 'up']);
  if (up.code !== 0) throw new Error(`lo up in ${name}: ${up.stderr}`);
  const file = await driver();
  return {
    name,
    run,
    async driver<T>(args: string[], timeoutMs = 60_000): Promise<T> {
      const r = await run(process.execPath, [file, ...args], timeoutMs);
      if (r.code !== 0) throw new Error(r.stderr.trim() || `driver ${args[0]} exited ${r.code}`);
      return JSON.parse(r.stdout.trim().split('\n').pop() ?? 'null') as T;
    },
  };
}

export interface WebContainer {
  id: string;
  pid: number;
  netnsPath: string;
  bundleDir: string;
  start(): Promise<RunResult>;
}

/**
 * A created (not started) container serving `page` at / on port 80 with its
 * own network namespace. Deleted (force) at teardown.
 */
export async function webContainer(t: TestLike, page: string, prefix = 'net'): Promise<WebContainer> {
  const b = await makeBundle(t, (c) => {
    c.process.args = ['httpd', '-f', '-p', '80', '-h', '/www'];
  });
  fs.mkdirSync(path.join(b.rootfs, 'www'));
  fs.writeFileSync(path.join(b.rootfs, 'www', 'index.html'), page);
  const id = uniqueId(prefix);
  cleanupContainer(t, id);
  const c = await tsrun(['create', '--bundle', b.dir, id], { stdout: 'ignore', stderr: 'ignore' });
  if (c.code !== 0) throw new Error(`tsrun create ${id} failed (${c.code})`);
  const st = await tsrun(['state', id]);
  const pid = (JSON.parse(st.stdout) as { pid: number }).pid;
  return { id, pid, netnsPath: `/proc/${pid}/ns/net`, bundleDir: b.dir, start: () => tsrun(['start', id]) };
}

/** What a sandbox holds that the network could have left: links, addresses, nft ruleset. */
export async function sandboxNetwork(sb: Sandbox): Promise<{ links: string[]; addresses: string[]; ruleset: string }> {
  const links = (await sb.run('ip', ['-o', 'link', 'show'])).stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':')[1]!.trim().split('@')[0]!);
  const addresses = (await sb.run('ip', ['-o', '-4', 'addr', 'show'])).stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(/\s+/).slice(1, 4).join(' '));
  const ruleset = (await sb.run('nft', ['list', 'ruleset'])).stdout.trim();
  return { links, addresses, ruleset };
}

/** Files left under a directory (bounded walk), relative paths. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number) => {
    if (depth > 6 || out.length > 1000) return;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p, depth + 1);
      else out.push(path.relative(dir, p));
    }
  };
  walk(dir, 0);
  return out.sort();
}

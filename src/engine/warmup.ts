/**
 * The engine's JIT warm-up, before it serves its first command.
 *
 * A warm engine skips Node's start, but its JavaScript still runs in V8's
 * interpreter until each function has run often enough to be optimized:
 * measured here, the engine's CPU per warm `run` of /bin/true was 6.0 ms over
 * its first 40 commands and 3.8 ms after 350 (wall 11.2 → 8.6 ms). Lowering
 * V8's tier-up thresholds made it worse (13-17 ms: more compiling on the one
 * thread that serves). So the engine runs its own pure policy code, the same
 * functions a `run`, `exec`, `state` or `delete` runs, on a runc-default
 * config before it listens:
 *
 *  - commander's parse of those command lines (actions replaced: nothing runs);
 *  - config.json parsed and validated; the cgroup layout detected from this
 *    host's mountinfo and the paths resolved (nothing is created);
 *  - the create and exec plans compiled and encoded;
 *  - a record claimed, saved, loaded and removed in a scratch store of the
 *    engine's own (under /run/tsrun-engine, removed after), so Node's fs
 *    wrappers are warm too.
 *
 * No container, cgroup, namespace or process is touched. It is bounded in
 * iterations and in time, and any failure only ends it early: a warm-up that
 * cannot run leaves an engine that is merely slower for its first commands.
 */
import fs from 'node:fs';
import path from 'node:path';
import { defaultSpec } from '../oci/default-spec.js';
import { parseConfig } from '../oci/validate.js';
import { detectLayout, parseMountinfo } from '../cgroups/detect.js';
import { openCgroups } from '../cgroups/manager.js';
import { compile } from '../plan/compile.js';
import { compileExec } from '../plan/exec.js';
import { encodePlan } from '../plan/plan.js';
import { type ContainerRecord, Store } from '../lifecycle/store.js';
import { ENGINE_SOCKET_DIR } from './protocol.js';

export interface WarmUpOptions {
  /** main()'s argument parsing without the action (src/cli/main.ts parseOnly) */
  parseOnly: (argv: string[]) => Promise<unknown>;
  iterations?: number;
  budgetMs?: number;
}

export interface WarmUpResult {
  iterations: number;
  ms: number;
  /** why it stopped early, if it did */
  error?: string;
}

const ID = 'tsrun-engine-warmup';

export async function warmUp(o: WarmUpOptions): Promise<WarmUpResult> {
  const iterations = o.iterations ?? 300;
  const budgetMs = o.budgetMs ?? 400;
  const t0 = process.uptime() * 1000;
  const scratch = path.join(ENGINE_SOCKET_DIR, `warmup-${process.pid}`);
  let done = 0;
  try {
    const spec = defaultSpec();
    spec.process!.terminal = false;
    spec.process!.args = ['true'];
    const text = JSON.stringify(spec, null, '\t');
    const mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    const procCgroup = fs.readFileSync('/proc/self/cgroup', 'utf8');
    const bundle = path.join(scratch, 'bundle');
    const store = new Store(path.join(scratch, 'root'));
    const argvs = [
      ['--root', store.root, 'run', '--bundle', bundle, ID],
      ['--root', store.root, 'create', '--bundle', bundle, '--pid-file', path.join(scratch, 'pid'), ID],
      ['--root', store.root, 'start', ID],
      ['--root', store.root, 'exec', ID, 'true'],
      ['--root', store.root, 'delete', '--force', ID],
      ['--root', store.root, 'kill', ID, 'KILL'],
    ];
    for (; done < iterations && process.uptime() * 1000 - t0 < budgetMs; done++) {
      for (const argv of argvs) await o.parseOnly(argv);
      const parsed = parseConfig(text);
      const layout = detectLayout(mountinfo, procCgroup);
      parseMountinfo(mountinfo);
      const cgroups = openCgroups({ id: ID, layout });
      const hierarchies = Object.entries(cgroups.paths).map(([name, hostPath]) => ({ name, hostPath }));
      const joinCgroups = Object.values(cgroups.paths).map((d) => path.join(d, 'tasks'));
      const { plan } = compile(parsed, {
        bundle,
        mode: done % 2 ? 'run' : 'create',
        stateDir: store.dir(ID),
        consoleSocket: false,
        noPivot: false,
        preserveFds: 0,
        cgroups: { mode: layout.mode, hierarchies },
        joinCgroups,
        capLastCap: 40,
        rootfsParentMount: '/',
      });
      encodePlan(plan);
      encodePlan(compileExec(parsed, { ...parsed.process!, args: ['true'] }, { initPid: 1, preserveFds: 0, capLastCap: 40, joinCgroups }));
      store.claim(ID);
      const rec: ContainerRecord = {
        id: ID,
        bundle,
        rootfs: path.join(bundle, 'rootfs'),
        created: new Date().toISOString(),
        pid: 0,
        phase: 'creating',
        creatorPid: process.pid,
        config: parsed,
        cgroups: cgroups.toJSON(),
      };
      store.save(rec);
      rec.pid = 1;
      store.save(rec);
      store.load(ID);
      store.remove(ID);
    }
  } catch (e) {
    return { iterations: done, ms: process.uptime() * 1000 - t0, error: (e as Error).message };
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  return { iterations: done, ms: process.uptime() * 1000 - t0 };
}

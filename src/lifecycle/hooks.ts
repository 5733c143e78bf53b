/**
 * OCI hooks. Each gets the container's state JSON on stdin, its own args
 * and env, and is killed when it outlives its timeout.
 *
 *   prestart, createRuntime  runtime namespace, during create, after the
 *                            container's namespaces exist, before pivot_root
 *   createContainer          the container's namespaces, same moment
 *   startContainer           the container's namespaces, during start, before
 *                            the user process execs (path resolved in the container)
 *   poststart                runtime namespace, after start
 *   poststop                 runtime namespace, after delete
 *
 * A failing prestart/createRuntime/createContainer/startContainer hook fails
 * the operation; a failing poststart or poststop hook is a warning.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Hook, Hooks, Spec, State } from '../oci/types.js';
import { UserError } from '../errors.js';
import { log } from '../log.js';
import { MsgKind, native } from '../native.js';
import { JOIN_ORDER, NAMESPACE_FLAG, PROC_NS_NAME } from '../plan/namespaces.js';
import { encodePlan, Op, type Plan, type PlanOp } from '../plan/plan.js';
import { PR } from '../plan/linux.js';
import { sleepMs } from './proc.js';

export type HookKind = keyof Hooks;

/** Ends a hook's output for an error message: the last line, trimmed. */
function lastLine(out: string): string {
  const lines = out.trim().split('\n');
  return lines[lines.length - 1]?.slice(0, 200) ?? '';
}

function describe(kind: HookKind, i: number, hook: Hook): string {
  return `${kind} hook #${i} (${hook.path})`;
}

function runInRuntimeNamespace(kind: HookKind, i: number, hook: Hook, state: string): void {
  const args = hook.args?.length ? hook.args : [hook.path];
  const env: Record<string, string> = {};
  for (const e of hook.env ?? []) {
    const eq = e.indexOf('=');
    env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  const r = spawnSync(hook.path, args.slice(1), {
    argv0: args[0],
    env,
    input: state,
    timeout: hook.timeout ? hook.timeout * 1000 : undefined,
    killSignal: 'SIGKILL',
    stdio: ['pipe', 'pipe', 'pipe'],
    maxBuffer: 16 * 1024 * 1024,
  });
  const what = describe(kind, i, hook);
  // A hook need not read its stdin: EPIPE on writing the state is not its failure.
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'EPIPE' && (r.status !== null || r.signal)) {
    delete r.error;
  }
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === 'ETIMEDOUT') throw new UserError(`${what}: timed out after ${hook.timeout}s`);
    throw new UserError(`${what}: ${code ?? r.error.message}`);
  }
  if (r.signal) throw new UserError(`${what}: killed by ${r.signal}`);
  if (r.status !== 0) {
    const msg = lastLine(`${r.stderr}`) || lastLine(`${r.stdout}`);
    throw new UserError(`${what}: exit status ${r.status}${msg ? `: ${msg}` : ''}`);
  }
}

/**
 * Runs a hook inside the namespaces of the container's init: an intermediate
 * process joins them (user first, mount last) and clones the hook, whose
 * stdin is the state and whose output goes to a file we read on failure.
 */
function runInContainerNamespaces(kind: HookKind, i: number, hook: Hook, state: string, spec: Spec, initPid: number, dir: string): void {
  const what = describe(kind, i, hook);
  const stateFile = path.join(dir, `hook-${kind}-${i}.state`);
  const outFile = path.join(dir, `hook-${kind}-${i}.out`);
  fs.writeFileSync(stateFile, state);
  const inFd = fs.openSync(stateFile, 'r');
  const outFd = fs.openSync(outFile, 'w');
  const ops: PlanOp[] = [
    { code: Op.DUP2, a: inFd, b: 0, what: 'give the hook its state on stdin' },
    { code: Op.DUP2, a: outFd, b: 1, what: 'redirect hook stdout' },
    { code: Op.DUP2, a: outFd, b: 2, what: 'redirect hook stderr' },
    { code: Op.PRCTL, a: PR.SET_DUMPABLE, b: 0, what: 'make the hook launcher non-dumpable' },
    { code: Op.CLOSE_FDS, a: 3, what: 'close inherited descriptors' },
  ];
  const types = new Set((spec.linux?.namespaces ?? []).map((n) => n.type));
  for (const type of JOIN_ORDER) {
    if (!types.has(type)) continue;
    const file = `/proc/${initPid}/ns/${PROC_NS_NAME[type]}`;
    ops.push({ code: Op.SETNS, a: NAMESPACE_FLAG[type], s: [file], what: `join the container's ${type} namespace` });
  }
  const intermediateOps = ops.length;
  const args = hook.args?.length ? hook.args : [hook.path];
  ops.push({ code: Op.RESOLVE_EXEC, s: [hook.path, ''], what: `find ${hook.path}` });
  ops.push({ code: Op.EXEC, l: [args, hook.env ?? []], what: `exec ${hook.path}` });
  const plan: Plan = { cloneFlags: 0, intermediateOps, ops };
  let pid = 0;
  try {
    const spawned = native().spawn(encodePlan(plan), -1);
    if ('failure' in spawned) throw new UserError(`${what}: ${stepWhat(plan, spawned.failure.step)}: ${native().strerror(spawned.failure.errno)}`);
    pid = spawned.pid;
    const msg = native().next(spawned.sync, false, 30_000);
    native().close(spawned.sync);
    if (msg && msg.kind === MsgKind.Error) {
      throw new UserError(`${what}: ${stepWhat(plan, msg.step)}: ${native().strerror(msg.errno)}`);
    }
    const deadline = hook.timeout ? Date.now() + hook.timeout * 1000 : Infinity;
    for (;;) {
      const st = native().tryWait(pid);
      if (st) {
        pid = 0;
        if (st.signal) throw new UserError(`${what}: killed by signal ${st.signal}`);
        if (st.code !== 0) {
          const msg = lastLine(fs.readFileSync(outFile, 'utf8'));
          throw new UserError(`${what}: exit status ${st.code}${msg ? `: ${msg}` : ''}`);
        }
        return;
      }
      if (Date.now() > deadline) throw new UserError(`${what}: timed out after ${hook.timeout}s`);
      sleepMs(1);
    }
  } finally {
    if (pid > 0) {
      try {
        process.kill(pid, 9);
      } catch {
        /* gone */
      }
      for (let n = 0; n < 2500 && native().tryWait(pid) === null; n++) sleepMs(2);
    }
    fs.closeSync(inFd);
    fs.closeSync(outFd);
    fs.rmSync(stateFile, { force: true });
    fs.rmSync(outFile, { force: true });
  }
}

function stepWhat(plan: Plan, step: number): string {
  return plan.ops[step]?.what ?? `step ${step}`;
}

export interface HookContext {
  spec: Spec;
  state: State;
  /** the init's pid, whose namespaces createContainer/startContainer hooks join */
  initPid: number;
  /** a directory for the hooks' temporary files (the state dir) */
  dir: string;
}

/** Runs the hooks of one kind in order; the first failure throws (callers decide whether it is fatal). */
export function runHooks(kind: HookKind, ctx: HookContext): void {
  const hooks = ctx.spec.hooks?.[kind] ?? [];
  const state = JSON.stringify(ctx.state);
  hooks.forEach((hook, i) => {
    log.debug(`running ${describe(kind, i, hook)}`);
    if (kind === 'createContainer' || kind === 'startContainer') {
      runInContainerNamespaces(kind, i, hook, state, ctx.spec, ctx.initPid, ctx.dir);
    } else {
      runInRuntimeNamespace(kind, i, hook, state);
    }
  });
}

/** poststart and poststop: failures are logged and the lifecycle goes on. */
export function runHooksWarn(kind: HookKind, ctx: HookContext): void {
  try {
    runHooks(kind, ctx);
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    log.warn(e.message);
  }
}

export function hasHooks(spec: Spec, ...kinds: HookKind[]): boolean {
  return kinds.some((k) => (spec.hooks?.[k] ?? []).length > 0);
}

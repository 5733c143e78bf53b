import fs from 'node:fs';
import path from 'node:path';
/**
 * The process half of the plan: rlimits, user and groups, capabilities,
 * cwd, umask, no_new_privs and the exec itself, in runc's order (bounding set
 * first while we still hold CAP_SETPCAP; setgroups before setuid; the final
 * capability sets after the uid change, kept across it with KEEPCAPS).
 */
import type { Process } from '../oci/types.js';
import { CAPABILITIES, RLIMITS } from '../oci/validate.js';
import { PR } from './linux.js';
import { CHDIR_AS_ROOT, Op, type PlanOp } from './plan.js';

export function capMask(names: string[] | undefined): bigint {
  let mask = 0n;
  for (const n of names ?? []) mask |= 1n << BigInt(CAPABILITIES[n as keyof typeof CAPABILITIES]);
  return mask;
}

export function rlimitOps(proc: Process): PlanOp[] {
  return (proc.rlimits ?? []).map((r) => ({
    code: Op.SETRLIMIT,
    a: RLIMITS[r.type as keyof typeof RLIMITS],
    b: BigInt(r.soft),
    c: BigInt(r.hard),
    what: `set ${r.type} to ${r.soft}:${r.hard}`,
  }));
}

/** PATH from the process env (runc looks the binary up with the container's PATH). */
export function envPath(env: string[] | undefined): string {
  const entry = (env ?? []).findLast((e) => e.startsWith('PATH='));
  return entry ? entry.slice(5) : '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
}

export interface IdentityOptions {
  capLastCap: number;
}

/** Identity and privileges; ends just before exec (seccomp and the start wait go between). */
export function identityOps(proc: Process, opts: IdentityOptions): PlanOp[] {
  const ops: PlanOp[] = [];
  const caps = proc.capabilities ?? {};
  ops.push({
    code: Op.CAP_BOUNDING,
    a: capMask(caps.bounding),
    b: opts.capLastCap,
    what: 'drop capabilities from the bounding set',
  });
  // cwd first as root (the user may not be allowed into it, runc enters it
  // anyway); the CHDIR after the user switch only runs if that failed.
  ops.push({ code: Op.CHDIR, flags: CHDIR_AS_ROOT, s: [proc.cwd], what: `chdir to cwd ${JSON.stringify(proc.cwd)}` });
  const gids = proc.user.additionalGids ?? [];
  ops.push({ code: Op.SETGROUPS, l: [gids.map(String)], what: `set additional groups [${gids.join(' ')}]` });
  ops.push({
    code: Op.SETUSER,
    a: proc.user.uid,
    b: proc.user.gid,
    what: `set user ${proc.user.uid}:${proc.user.gid}`,
  });
  ops.push({ code: Op.CHDIR, s: [proc.cwd], what: `chdir to cwd ${JSON.stringify(proc.cwd)}` });
  ops.push({
    code: Op.CAPSET,
    a: capMask(caps.effective),
    b: capMask(caps.permitted),
    c: capMask(caps.inheritable),
    what: 'set capabilities',
  });
  // The kernel raises an ambient capability only if it is both permitted and
  // inheritable; runc drops the others without failing, and so do we.
  const ambient = capMask(caps.ambient) & capMask(caps.permitted) & capMask(caps.inheritable);
  if (ambient) ops.push({ code: Op.CAP_AMBIENT, a: ambient, what: 'raise ambient capabilities' });
  // runc sets 0022 when the config has no umask, rather than inheriting ours.
  const umask = proc.user.umask ?? 0o022;
  ops.push({ code: Op.UMASK, a: umask, what: `set umask ${umask.toString(8).padStart(4, '0')}` });
  if (proc.noNewPrivileges) {
    ops.push({ code: Op.PRCTL, a: PR.SET_NO_NEW_PRIVS, b: 1, what: 'set no_new_privs' });
  }
  return ops;
}

export function resolveExecOp(proc: Process): PlanOp {
  const file = proc.args?.[0] ?? '';
  return {
    code: Op.RESOLVE_EXEC,
    s: [file, envPath(proc.env)],
    what: `exec: ${JSON.stringify(file)}`,
    enoent: `exec: ${JSON.stringify(file)}: executable file not found in $PATH`,
  };
}

export function execOp(proc: Process, rootfs?: string): PlanOp {
  const args = proc.args ?? [];
  return { code: Op.EXEC, l: [args, withHome(proc, rootfs)], what: `exec ${JSON.stringify(args[0] ?? '')}` };
}

/**
 * runc adds HOME when the config's env has none: the user's home directory
 * from the image's /etc/passwd, or "/". The file is read from the host side
 * before clone, so a symlink anywhere on its path (which could point out of
 * the rootfs) means "not found" rather than being followed.
 */
export function withHome(proc: Process, rootfs?: string): string[] {
  const env = proc.env ?? [];
  if (env.some((e) => e.startsWith('HOME='))) return env;
  return [...env, `HOME=${homeOf(proc.user.uid, rootfs)}`];
}

function homeOf(uid: number, rootfs: string | undefined): string {
  if (!rootfs) return '/';
  try {
    for (const p of ['etc', 'etc/passwd']) {
      if (fs.lstatSync(path.join(rootfs, p)).isSymbolicLink()) return '/';
    }
    for (const line of fs.readFileSync(path.join(rootfs, 'etc/passwd'), 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 7 && f[2] === String(uid) && f[5].startsWith('/')) return f[5];
    }
  } catch {
    /* no passwd file: "/" */
  }
  return '/';
}

/**
 * AppArmor and SELinux. A label is applied by writing it to the process's
 * LSM "exec" attribute just before execve, as runc does; on a kernel without
 * that LSM a config that asks for one is an error naming the field, never a
 * silent success (runc ignores an AppArmor profile when AppArmor is off).
 */
import fs from 'node:fs';
import { ConfigError } from '../errors.js';
import { Op, type PlanOp } from './plan.js';

function readFile(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

export function apparmorEnabled(): boolean {
  return readFile('/sys/module/apparmor/parameters/enabled')?.trim() === 'Y';
}

export function selinuxEnabled(): boolean {
  return fs.existsSync('/sys/fs/selinux/enforce');
}

export interface LsmRequest {
  apparmorProfile?: string;
  selinuxLabel?: string;
  /** which file and JSON path the request came from, for errors */
  file: string;
  prefix: string;
}

/** The ops that set the labels; throws when the kernel lacks the LSM. */
export function lsmOps(req: LsmRequest): PlanOp[] {
  const ops: PlanOp[] = [];
  if (req.apparmorProfile) {
    if (!apparmorEnabled()) {
      throw new ConfigError(req.file, `${req.prefix}apparmorProfile`, 'AppArmor is not enabled on this kernel');
    }
    // The stacking-aware attribute first; older kernels only have attr/exec.
    const attr = fs.existsSync('/proc/self/attr/apparmor/exec') ? '/proc/self/attr/apparmor/exec' : '/proc/self/attr/exec';
    ops.push({ code: Op.WRITE_FILE, s: [attr, `exec ${req.apparmorProfile}`], what: `set AppArmor profile ${req.apparmorProfile}` });
  }
  if (req.selinuxLabel) {
    if (!selinuxEnabled()) {
      throw new ConfigError(req.file, `${req.prefix}selinuxLabel`, 'SELinux is not enabled on this kernel');
    }
    ops.push({ code: Op.WRITE_FILE, s: ['/proc/self/attr/exec', req.selinuxLabel], what: `set SELinux label ${req.selinuxLabel}` });
  }
  return ops;
}

/** linux.mountLabel: labels for the container's mounts need SELinux. */
export function checkMountLabel(mountLabel: string | undefined): void {
  if (mountLabel && !selinuxEnabled()) {
    throw new ConfigError('config.json', 'linux.mountLabel', 'SELinux is not enabled on this kernel');
  }
}

/**
 * `cp` between the host and a container's root filesystem. Paths inside the
 * container are resolved as the container would see them — absolute symlinks
 * restart at its root, `..` stops there — so a symlink in the image cannot
 * make tsctl read or write the host's files.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../errors.js';

const MAX_LINKS = 40; // the kernel's MAXSYMLINKS

/** Resolves `p` inside `root`; with followLast false the last component is not followed. */
export function resolveInRoot(root: string, p: string, followLast: boolean): string {
  const todo = p.split('/').filter((c) => c && c !== '.');
  const done: string[] = [];
  let links = 0;
  while (todo.length) {
    const c = todo.shift() as string;
    if (c === '..') {
      done.pop();
      continue;
    }
    const host = path.join(root, ...done, c);
    const st = fs.lstatSync(host, { throwIfNoEntry: false });
    if (st?.isSymbolicLink() && (todo.length > 0 || followLast)) {
      if (++links > MAX_LINKS) throw new UserError(`${p}: too many levels of symbolic links`);
      const target = fs.readlinkSync(host);
      if (target.startsWith('/')) done.length = 0;
      todo.unshift(...target.split('/').filter((x) => x && x !== '.'));
      continue;
    }
    done.push(c);
  }
  return path.join(root, ...done);
}

function copy(src: string, dst: string): void {
  const r = spawnSync('cp', ['-a', '-T', '--remove-destination', src, dst], { encoding: 'utf8' });
  if (r.status !== 0) throw new UserError(`copying: ${(r.stderr || r.error?.message || '').trim().replace(/^cp: /, '')}`);
}

/** Docker's target rule: into an existing directory, else as the named path. */
function target(dst: string, srcName: string): string {
  const st = fs.statSync(dst, { throwIfNoEntry: false });
  if (st?.isDirectory()) return path.join(dst, srcName);
  if (dst.endsWith('/')) throw new UserError(`destination directory ${dst} does not exist`);
  if (!fs.existsSync(path.dirname(dst))) throw new UserError(`destination directory ${path.dirname(dst)} does not exist`);
  return dst;
}

export function copyOut(rootfs: string, ctrPath: string, hostDst: string): void {
  const src = resolveInRoot(rootfs, ctrPath, false);
  if (!fs.lstatSync(src, { throwIfNoEntry: false })) throw new UserError(`Could not find the file ${ctrPath} in container`);
  copy(src, target(hostDst, path.basename(src)));
}

export function copyIn(rootfs: string, hostSrc: string, ctrPath: string): void {
  if (!fs.lstatSync(hostSrc, { throwIfNoEntry: false })) throw new UserError(`no such file or directory: ${hostSrc}`);
  const dst = resolveInRoot(rootfs, ctrPath, true);
  const st = fs.statSync(dst, { throwIfNoEntry: false });
  let file: string;
  if (st?.isDirectory()) {
    file = path.join(dst, path.basename(hostSrc));
  } else {
    // the parent resolved inside the root; the last name is created there, never followed
    const parent = resolveInRoot(rootfs, path.posix.dirname(path.posix.join('/', ctrPath)), true);
    if (!fs.statSync(parent, { throwIfNoEntry: false })?.isDirectory()) throw new UserError(`destination directory ${path.posix.dirname(ctrPath)} does not exist in container`);
    file = path.join(parent, path.posix.basename(ctrPath));
  }
  copy(hostSrc, file);
}

/** `CONTAINER:PATH` → [container, path]; a host path (absolute, ./ or without a colon) → undefined. */
export function splitCpArg(arg: string): [string, string] | undefined {
  if (arg.startsWith('/') || arg.startsWith('.')) return undefined;
  const i = arg.indexOf(':');
  if (i <= 0) return undefined;
  return [arg.slice(0, i), arg.slice(i + 1) || '/'];
}

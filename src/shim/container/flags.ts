/**
 * `docker run`'s flag values turned into data: environment lists and files,
 * volume specs, memory sizes, CPU counts, capability sets. Pure functions,
 * so every rule is unit-tested; the error texts follow Docker's.
 */
import path from 'node:path';
import { UserError } from '../../errors.js';

const bad = (msg: string): UserError => new UserError(msg, 125);

/** `-e K=V` or `-e K` (taken from tsctl's own environment; dropped when unset there). */
export function parseEnvArg(arg: string, lookup: (k: string) => string | undefined): string | undefined {
  const eq = arg.indexOf('=');
  const key = eq < 0 ? arg : arg.slice(0, eq);
  if (!key) throw bad(`invalid environment variable: ${arg}`);
  if (/\s/.test(key)) throw bad(`variable '${key}' contains whitespaces`);
  if (eq >= 0) return arg;
  const v = lookup(key);
  return v === undefined ? undefined : `${key}=${v}`;
}

/** Docker's --env-file: one variable a line, `#` comments and blank lines skipped, no quoting. */
export function parseEnvFile(text: string, file: string, lookup: (k: string) => string | undefined): string[] {
  const out: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '').replace(/^\s+/, '');
    if (!line || line.startsWith('#')) continue;
    if (line.includes('\0')) throw bad(`${file}:${i + 1}: invalid NUL byte`);
    if (line.startsWith('=')) throw bad(`${file}:${i + 1}: no variable name on line '${line}'`);
    const v = parseEnvArg(line, lookup);
    if (v !== undefined) out.push(v);
  }
  return out;
}

export type VolumeSpec =
  | { kind: 'bind'; source: string; destination: string; readOnly: boolean }
  | { kind: 'named'; name: string; destination: string; readOnly: boolean }
  | { kind: 'anonymous'; destination: string; readOnly: boolean };

/** A container path as Docker keeps it: normalized, no trailing slash. */
export const cleanPath = (p: string): string => path.posix.normalize(p).replace(/(.)\/+$/, '$1');

const VOLUME_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** `-v HOST:CTR[:ro|rw]`, `-v NAME:CTR[:ro]`, `-v CTR` (anonymous). */
export function parseVolume(spec: string): VolumeSpec {
  const parts = spec.split(':');
  if (!spec || parts.length > 3 || parts.some((p) => p === '')) throw bad(`invalid volume specification: '${spec}'`);
  let readOnly = false;
  if (parts.length === 3 || (parts.length === 2 && /^(ro|rw|z|Z)(,(ro|rw|z|Z))*$/.test(parts[1]))) {
    const mode = parts.pop() as string;
    const opts = mode.split(',');
    for (const o of opts) {
      if (o === 'ro') readOnly = true;
      else if (o !== 'rw' && o !== 'z' && o !== 'Z') throw bad(`invalid mode: ${mode}`);
    }
  }
  const destination = parts[parts.length - 1];
  if (!path.isAbsolute(destination)) throw bad(`invalid volume specification: '${spec}': invalid mount config: mount path must be absolute`);
  if (cleanPath(destination) === '/') throw bad(`invalid volume specification: '${spec}': invalid mount config: destination can't be '/'`);
  if (parts.length === 1) return { kind: 'anonymous', destination: cleanPath(destination), readOnly };
  const source = parts[0];
  if (source.startsWith('/')) return { kind: 'bind', source: cleanPath(source), destination: cleanPath(destination), readOnly };
  if (!VOLUME_NAME_RE.test(source)) throw bad(`"${source}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`);
  return { kind: 'named', name: source, destination: cleanPath(destination), readOnly };
}

/** Docker's RAMInBytes: a number with an optional b, k, m, g (binary) unit. */
export function parseMemory(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)b?$/i.exec(s.trim());
  if (!m) throw bad(`invalid size: '${s}'`);
  const mult: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  const bytes = Math.floor(Number(m[1]) * mult[m[2].toLowerCase()]);
  if (bytes > 0 && bytes < 6 * 1024 * 1024) throw bad('Minimum memory limit allowed is 6MB');
  return bytes;
}

/** `--cpus 1.5` → NanoCPUs, as Docker stores it. */
export function parseCpus(s: string): number {
  if (!/^\d+(\.\d+)?$|^\.\d+$/.test(s.trim())) throw bad(`invalid argument "${s}" for "--cpus" flag: failed to parse ${s} as a rational number`);
  const n = Math.round(Number(s) * 1e9);
  if (n <= 0) throw bad('Range of CPUs is from 0.01 to the number of CPUs available');
  return n;
}

export function parsePidsLimit(s: string): number {
  if (!/^-?\d+$/.test(s)) throw bad(`invalid argument "${s}" for "--pids-limit" flag: invalid syntax`);
  return Number(s);
}

/** Docker's default capability set for a container. */
export const DEFAULT_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

export const ALL_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW',
  'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD',
  'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG',
  'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

function normCap(c: string): string {
  const u = c.toUpperCase();
  if (u === 'ALL') return u;
  const n = u.startsWith('CAP_') ? u : `CAP_${u}`;
  if (!ALL_CAPS.includes(n)) throw bad(`invalid capability: ${c}`);
  return n;
}

/** The default set, then drops, then adds (Docker: an explicit add wins over a drop of ALL). */
export function computeCaps(add: string[], drop: string[]): string[] {
  const a = add.map(normCap);
  const d = drop.map(normCap);
  let caps = d.includes('ALL') ? [] : DEFAULT_CAPS.filter((c) => !d.includes(c));
  if (a.includes('ALL')) caps = [...ALL_CAPS];
  else for (const c of a) if (!caps.includes(c)) caps.push(c);
  return caps;
}

/** Signal names for stop/kill, as `SIGTERM`, `TERM` or a number; returned as runc takes them. */
export function parseSignal(s: string): string {
  if (/^\d+$/.test(s)) {
    if (Number(s) < 1 || Number(s) > 64) throw bad(`invalid signal: ${s}`);
    return s;
  }
  const u = s.toUpperCase();
  const name = u.startsWith('SIG') ? u : `SIG${u}`;
  const known = ['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGKILL', 'SIGUSR1', 'SIGSEGV', 'SIGUSR2', 'SIGPIPE', 'SIGALRM', 'SIGTERM', 'SIGSTKFLT', 'SIGCHLD', 'SIGCONT', 'SIGSTOP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU', 'SIGURG', 'SIGXCPU', 'SIGXFSZ', 'SIGVTALRM', 'SIGPROF', 'SIGWINCH', 'SIGIO', 'SIGPWR', 'SIGSYS'];
  if (!known.includes(name) && !/^SIGRTMIN(\+\d+)?$|^SIGRTMAX(-\d+)?$/.test(name)) throw bad(`invalid signal: ${s}`);
  return name;
}

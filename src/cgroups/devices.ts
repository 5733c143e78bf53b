/**
 * Device access rules: linux.resources.devices (plus runc's default allow
 * list and an allow rule per linux.devices entry) reduced to a minimal,
 * order-independent rule set, then written as v1 devices.allow/deny lines or
 * compiled to a BPF_PROG_TYPE_CGROUP_DEVICE program for v2.
 *
 * This follows runc 1.1 closely:
 *  - libcontainer/specconv (CreateCgroupConfig, createDevices, AllowedDevices):
 *    the rule list is the spec's rules, then the default allowed devices
 *    (minus those linux.devices redefines), then linux.devices as "rwm" allows;
 *  - libcontainer/cgroups/devices/devices_emulator.go: the rules are replayed
 *    on an emulator of the v1 kernel semantics (an "a" rule resets to
 *    allow-all or deny-all; other rules add or remove exceptions), refusing
 *    to punch a hole in a wildcard exception (v1 would silently ignore it);
 *  - libcontainer/cgroups/ebpf/devicefilter: the emulator's exceptions become
 *    one block per rule, first match wins, the default action at the end.
 */
import type { Device, DeviceCgroupRule } from '../oci/types.js';
import { UserError } from '../errors.js';

export type RuleType = 'a' | 'c' | 'b';

export interface DeviceRule {
  type: RuleType;
  /** -1 = any */
  major: number;
  /** -1 = any */
  minor: number;
  /** a subset of "rwm", in that order */
  access: string;
  allow: boolean;
}

const WILDCARD = -1;

function canonicalAccess(access: string): string {
  return ['r', 'w', 'm'].filter((c) => access.includes(c)).join('');
}

/** A linux.resources.devices entry with runc's defaults (type a, any major/minor); absent access means "rwm". */
export function fromSpecRule(r: DeviceCgroupRule, where: string): DeviceRule {
  const type = (r.type ?? 'a') as RuleType;
  if (type !== 'a' && type !== 'c' && type !== 'b') throw new UserError(`${where}.type: invalid device rule type ${JSON.stringify(r.type)}`);
  const access = r.access === undefined || r.access === '' ? 'rwm' : r.access;
  if (!/^[rwm]+$/.test(access)) throw new UserError(`${where}.access: invalid device access ${JSON.stringify(r.access)}`);
  return {
    type,
    major: r.major ?? WILDCARD,
    minor: r.minor ?? WILDCARD,
    access: canonicalAccess(access),
    allow: !!r.allow,
  };
}

const allowRwm = (type: RuleType, major: number, minor: number): DeviceRule => ({ type, major, minor, access: 'rwm', allow: true });

/** runc's AllowedDevices (libcontainer/specconv/spec_linux.go, 1.1): what every container may use. */
export const DEFAULT_ALLOWED: readonly { path?: string; rule: DeviceRule }[] = [
  { rule: { type: 'c', major: WILDCARD, minor: WILDCARD, access: 'm', allow: true } },
  { rule: { type: 'b', major: WILDCARD, minor: WILDCARD, access: 'm', allow: true } },
  { path: '/dev/null', rule: allowRwm('c', 1, 3) },
  { path: '/dev/random', rule: allowRwm('c', 1, 8) },
  { path: '/dev/full', rule: allowRwm('c', 1, 7) },
  { path: '/dev/tty', rule: allowRwm('c', 5, 0) },
  { path: '/dev/zero', rule: allowRwm('c', 1, 5) },
  { path: '/dev/urandom', rule: allowRwm('c', 1, 9) },
  // /dev/pts/* and /dev/ptmx
  { rule: allowRwm('c', 136, WILDCARD) },
  { rule: allowRwm('c', 5, 2) },
  // tun/tap
  { rule: allowRwm('c', 10, 200) },
];

/**
 * The full ordered rule list for a container, as runc builds it: the spec's
 * rules, the default allowed devices (a linux.devices entry at the same path
 * replaces the default one), then each linux.devices entry as an rwm allow.
 */
export function containerRules(specRules: readonly DeviceCgroupRule[] = [], devices: readonly Device[] = []): DeviceRule[] {
  const rules = specRules.map((r, i) => fromSpecRule(r, `linux.resources.devices[${i}]`));
  const redefined = new Set(devices.map((d) => d.path));
  for (const d of DEFAULT_ALLOWED) if (!d.path || !redefined.has(d.path)) rules.push({ ...d.rule });
  for (const d of devices) {
    if (d.type !== 'c' && d.type !== 'b' && d.type !== 'u') continue; // fifos need no device rule
    rules.push(allowRwm(d.type === 'b' ? 'b' : 'c', d.major ?? WILDCARD, d.minor ?? WILDCARD));
  }
  return rules;
}

// ---------------------------------------------------------------------------
// The emulator

const key = (type: RuleType, major: number, minor: number) => `${type} ${major} ${minor}`;

export class DeviceEmulator {
  /** default action for devices no exception matches */
  defaultAllow = false;
  /** exceptions: "type major minor" -> access */
  private rules = new Map<string, string>();

  apply(rule: DeviceRule): void {
    if (rule.type === 'a') {
      // An "a" rule resets the cgroup, whatever its access says.
      this.defaultAllow = rule.allow;
      this.rules.clear();
      return;
    }
    // An exception to the default: allow in deny-all mode, deny in allow-all mode.
    if (rule.allow !== this.defaultAllow) this.add(rule);
    else this.remove(rule);
  }

  private add(rule: DeviceRule): void {
    const k = key(rule.type, rule.major, rule.minor);
    this.rules.set(k, canonicalAccess((this.rules.get(k) ?? '') + rule.access));
  }

  private remove(rule: DeviceRule): void {
    for (const [major, minor] of [
      [WILDCARD, rule.minor],
      [rule.major, WILDCARD],
      [WILDCARD, WILDCARD],
    ]) {
      if (major === rule.major && minor === rule.minor) continue;
      const partial = this.rules.get(key(rule.type, major, minor)) ?? '';
      if ([...rule.access].some((c) => partial.includes(c))) {
        throw new UserError(
          `device rule ${ruleString(rule)} (${rule.allow ? 'allow' : 'deny'}) cannot punch a hole in the wildcard rule ` +
            `${ruleString({ type: rule.type, major, minor, access: partial, allow: !rule.allow })}`,
        );
      }
    }
    const k = key(rule.type, rule.major, rule.minor);
    const left = [...(this.rules.get(k) ?? '')].filter((c) => !rule.access.includes(c)).join('');
    if (left) this.rules.set(k, left);
    else this.rules.delete(k);
  }

  /**
   * The minimal rules that turn a fresh cgroup into this state: first the
   * disruptive "a" rule (deny-all or allow-all), then the exceptions sorted
   * by type, major, minor. Every exception has the action opposite to the default.
   */
  minimalRules(): DeviceRule[] {
    const out: DeviceRule[] = [{ type: 'a', major: WILDCARD, minor: WILDCARD, access: 'rwm', allow: this.defaultAllow }];
    const entries = [...this.rules.entries()].map(([k, access]) => {
      const [type, major, minor] = k.split(' ');
      return { type: type as RuleType, major: Number(major), minor: Number(minor), access, allow: !this.defaultAllow };
    });
    entries.sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : a.major - b.major || a.minor - b.minor));
    return [...out, ...entries];
  }
}

/** Replays `rules` on a deny-all emulator (runc's buildEmulator) and returns the minimal equivalent list. */
export function normalizeRules(rules: readonly DeviceRule[]): DeviceRule[] {
  const emu = new DeviceEmulator();
  for (const r of rules) emu.apply(r);
  return emu.minimalRules();
}

/** The line written to devices.allow / devices.deny: "c 1:3 rwm", "a *:* rwm". */
export function ruleString(r: DeviceRule): string {
  const n = (v: number) => (v === WILDCARD ? '*' : String(v));
  return `${r.type} ${n(r.major)}:${n(r.minor)} ${r.access}`;
}

/** v1: the (file, line) writes that set a fresh devices cgroup to `rules`, in order. */
export function v1DeviceWrites(rules: readonly DeviceRule[]): { file: 'devices.allow' | 'devices.deny'; value: string }[] {
  return normalizeRules(rules).map((r) => ({
    file: r.allow ? 'devices.allow' : 'devices.deny',
    value: r.type === 'a' ? 'a' : ruleString(r),
  }));
}

// ---------------------------------------------------------------------------
// The v2 BPF program

// <linux/bpf.h>
const BPF_DEVCG_ACC_MKNOD = 1;
const BPF_DEVCG_ACC_READ = 2;
const BPF_DEVCG_ACC_WRITE = 4;
const BPF_DEVCG_DEV_BLOCK = 1;
const BPF_DEVCG_DEV_CHAR = 2;

// Opcodes used (class | op | source).
const LDX_MEM_W = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU_AND_K = 0x54; // BPF_ALU | BPF_AND | BPF_K (32-bit)
const ALU_RSH_K = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU_MOV_K = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const ALU_MOV_X = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const JMP_JNE_K = 0x55; // BPF_JMP | BPF_JNE | BPF_K (64-bit compare)
const JMP_JNE_X = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const JMP_EXIT = 0x95; // BPF_JMP | BPF_EXIT

export interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
  /** jump target: index of a block, resolved into `off` by encode() */
  toBlock?: number;
}

/** The license the program is loaded with (runc uses the same string). */
export const DEVICE_FILTER_LICENSE = 'Apache';

/**
 * runc's devicefilter.DeviceFilter: the program a BPF_CGROUP_DEVICE hook runs
 * for each access, returning 1 (allow) or 0 (deny). The context
 * (struct bpf_cgroup_dev_ctx) is { u32 access_type (type | access << 16), u32 major, u32 minor }.
 */
export function deviceFilterProgram(rules: readonly DeviceRule[]): Insn[] {
  const clean = normalizeRules(rules);
  const defaultAllow = clean[0].allow;
  const insns: Insn[] = [];
  const emit = (code: number, dst: number, src: number, off: number, imm: number, toBlock?: number) =>
    insns.push({ code, dst, src, off, imm, toBlock });
  // R2 = type, R3 = access, R4 = major, R5 = minor
  emit(LDX_MEM_W, 2, 1, 0, 0);
  emit(ALU_AND_K, 2, 0, 0, 0xffff);
  emit(LDX_MEM_W, 3, 1, 0, 0);
  emit(ALU_RSH_K, 3, 0, 0, 16);
  emit(LDX_MEM_W, 4, 1, 4, 0);
  emit(LDX_MEM_W, 5, 1, 8, 0);
  const blockStart: number[] = [];
  let block = 0;
  for (const rule of clean.slice(1)) {
    if (rule.type === 'a') throw new Error('internal error: wildcard device rule after the first');
    if (rule.major > 0xffffffff || rule.minor > 0xffffffff) throw new UserError(`device rule ${ruleString(rule)}: number out of range`);
    blockStart[block] = insns.length;
    const next = block + 1;
    let access = 0;
    if (rule.access.includes('r')) access |= BPF_DEVCG_ACC_READ;
    if (rule.access.includes('w')) access |= BPF_DEVCG_ACC_WRITE;
    if (rule.access.includes('m')) access |= BPF_DEVCG_ACC_MKNOD;
    emit(JMP_JNE_K, 2, 0, 0, rule.type === 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK, next);
    if (access !== (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)) {
      // if ((R3 & access) != R3) goto next  -- the request asks for more than the rule grants
      emit(ALU_MOV_X, 1, 3, 0, 0);
      emit(ALU_AND_K, 1, 0, 0, access);
      emit(JMP_JNE_X, 1, 3, 0, 0, next);
    }
    if (rule.major !== WILDCARD) emit(JMP_JNE_K, 4, 0, 0, rule.major | 0, next);
    if (rule.minor !== WILDCARD) emit(JMP_JNE_K, 5, 0, 0, rule.minor | 0, next);
    emit(ALU_MOV_K, 0, 0, 0, rule.allow ? 1 : 0);
    emit(JMP_EXIT, 0, 0, 0, 0);
    block = next;
  }
  blockStart[block] = insns.length;
  emit(ALU_MOV_K, 0, 0, 0, defaultAllow ? 1 : 0);
  emit(JMP_EXIT, 0, 0, 0, 0);
  insns.forEach((insn, i) => {
    if (insn.toBlock !== undefined) insn.off = blockStart[insn.toBlock] - (i + 1);
  });
  return insns;
}

/** struct bpf_insn[] as the kernel reads it (little-endian: dst_reg in the low nibble). */
export function encodeProgram(insns: readonly Insn[]): Buffer {
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach((insn, i) => {
    buf.writeUInt8(insn.code, i * 8);
    buf.writeUInt8((insn.src << 4) | insn.dst, i * 8 + 1);
    buf.writeInt16LE(insn.off, i * 8 + 2);
    buf.writeInt32LE(insn.imm | 0, i * 8 + 4);
  });
  return buf;
}

/** True when the rules allow every device (no program needed on v2). */
export function allowsAll(rules: readonly DeviceRule[]): boolean {
  const clean = normalizeRules(rules);
  return clean.length === 1 && clean[0].allow;
}

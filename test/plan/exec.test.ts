/**
 * compileExec (src/plan/exec.ts): the plan of `tsrun exec`, checked against
 * the kernel's values written out in ./abi.ts.
 */
import t from 'tap';
import { defaultSpec } from '../../src/oci/default-spec.js';
import type { Process, Spec } from '../../src/oci/types.js';
import { compileExec, type ExecPlanOptions } from '../../src/plan/exec.js';
import { Op, type PlanOp } from '../../src/plan/plan.js';
import {
  CLONE_NEWCGROUP,
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWNS,
  CLONE_NEWPID,
  CLONE_NEWUSER,
  CLONE_NEWUTS,
  SETNS_FROM_SLOT,
  SLOT_CGROUP_NS,
  SYNC_CLONED,
} from './abi.js';


function spec(): Spec {
  const s = defaultSpec();
  s.process!.terminal = false;
  return s;
}

function proc(s: Spec): Process {
  return { ...s.process!, args: ['/bin/true'] };
}

function options(o: Partial<ExecPlanOptions> = {}): ExecPlanOptions {
  return { initPid: 4242, preserveFds: 0, capLastCap: 40, joinCgroups: [], ...o };
}

function bare(op: PlanOp): Omit<PlanOp, 'what' | 'enoent'> {
  const { what: _w, enoent: _e, ...rest } = op;
  return rest;
}

t.test('the spawner joins the v1 cgroups, then every namespace of the init in JOIN_ORDER', async (t) => {
  const s = spec();
  s.linux!.namespaces = ['pid', 'network', 'ipc', 'uts', 'mount', 'user'].map((type) => ({ type }) as never);
  const plan = compileExec(s, proc(s), options({ joinCgroups: ['/sys/fs/cgroup/pids/c/tasks'] }));
  const spawner = plan.ops.slice(0, plan.intermediateOps);
  t.strictSame(bare(spawner[0]), { code: Op.WRITE_FILE, s: ['/sys/fs/cgroup/pids/c/tasks', '0'] }, 'cgroups first, before any setns');
  t.strictSame(
    spawner.filter((o) => o.code === Op.SETNS).map(bare),
    [
      { code: Op.SETNS, a: CLONE_NEWUSER, s: ['/proc/4242/ns/user'] },
      { code: Op.SETNS, a: CLONE_NEWIPC, s: ['/proc/4242/ns/ipc'] },
      { code: Op.SETNS, a: CLONE_NEWUTS, s: ['/proc/4242/ns/uts'] },
      { code: Op.SETNS, a: CLONE_NEWNET, s: ['/proc/4242/ns/net'] },
      { code: Op.SETNS, a: CLONE_NEWPID, s: ['/proc/4242/ns/pid'] },
      { code: Op.SETNS, a: CLONE_NEWNS, s: ['/proc/4242/ns/mnt'] },
    ],
    'user first, mount last',
  );
  t.equal(plan.cloneFlags, 0, 'nothing new is cloned');
  t.strictSame(bare(plan.ops[plan.intermediateOps]), { code: Op.SYNC, a: SYNC_CLONED }, 'the process starts with the placement sync');
  t.equal(plan.ops.at(-1)!.code, Op.EXEC, 'and ends in exec');
});

t.test("the container's cgroup namespace: opened by the spawner, joined by the process after its placement", async (t) => {
  // From the spawner, the namespace would hide the spawner's own cgroup and
  // an nsdelegate cgroup2 refuses the placement with ENOENT (namespaces.ts).
  const s = spec();
  s.linux!.namespaces = ['pid', 'mount', 'cgroup'].map((type) => ({ type }) as never);
  const plan = compileExec(s, proc(s), options());
  const spawner = plan.ops.slice(0, plan.intermediateOps);
  t.notOk(spawner.some((o) => o.code === Op.SETNS && o.a === CLONE_NEWCGROUP), 'the spawner does not join it');
  const open = spawner.findIndex((o) => o.code === Op.OPEN_SLOT && o.a === SLOT_CGROUP_NS);
  t.strictSame(bare(spawner[open]), { code: Op.OPEN_SLOT, a: SLOT_CGROUP_NS, b: 0, s: ['/proc/4242/ns/cgroup'] }, 'it opens it');
  const mnt = spawner.findIndex((o) => o.code === Op.SETNS && o.a === CLONE_NEWNS);
  t.ok(open < mnt, 'while the host /proc is still its /proc, before the mount namespace');
  t.strictSame(
    bare(plan.ops[plan.intermediateOps + 1]),
    { code: Op.SETNS, flags: SETNS_FROM_SLOT, a: CLONE_NEWCGROUP, b: SLOT_CGROUP_NS },
    'the process joins it from the slot right after the placement sync',
  );
  t.equal(plan.ops[plan.intermediateOps + 1].what, "join the container's cgroup namespace");
});

t.test('no cgroup namespace in the config: nothing opened, nothing joined', async (t) => {
  const s = spec();
  s.linux!.namespaces = ['pid', 'mount'].map((type) => ({ type }) as never);
  const plan = compileExec(s, proc(s), options());
  t.notOk(plan.ops.some((o) => o.code === Op.OPEN_SLOT && o.a === SLOT_CGROUP_NS), 'no slot');
  t.notOk(plan.ops.some((o) => o.code === Op.SETNS && o.a === CLONE_NEWCGROUP), 'no join');
});

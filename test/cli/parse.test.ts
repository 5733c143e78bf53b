/**
 * The command line, in-process: main(argv) with stdout/stderr captured. No
 * container is ever started: every case fails (or finishes) before the
 * runtime would touch cgroups or clone anything.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { main } from '../../src/cli/main.js';
import { configureLog } from '../../src/log.js';
import { defaultSpec } from '../../src/oci/default-spec.js';
import { CAPABILITIES, NAMESPACE_TYPES } from '../../src/oci/validate.js';
import { OCI_VERSION } from '../../src/oci/types.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-cli-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const fresh = (name: string) => {
  const d = path.join(tmp, `${name}-${++seq}`);
  fs.mkdirSync(d);
  return d;
};

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs main() with stdout and stderr captured (and nothing else written meanwhile). */
async function cli(...argv: string[]): Promise<Result> {
  const out: string[] = [];
  const err: string[] = [];
  const origOut = process.stdout.write;
  const origErr = process.stderr.write;
  const capture = (sink: string[]) =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      sink.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      cb?.();
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = capture(out);
  process.stderr.write = capture(err);
  let code: number;
  try {
    code = await main(argv);
  } finally {
    process.stdout.write = origOut;
    process.stderr.write = origErr;
    // The log configuration is module state; start every call from the default.
    configureLog({ file: undefined, format: 'text', debug: false });
  }
  return { code, stdout: out.join(''), stderr: err.join('') };
}

/** The shape every failure must have: exit 1, one stderr line "tsrun: ...", nothing on stdout. */
function oneLineError(t: Tap, r: Result, includes: string | RegExp, exitCode = 1): void {
  t.equal(r.code, exitCode, 'exit code');
  t.equal(r.stdout, '', 'nothing on stdout');
  t.match(r.stderr, /^tsrun: [^\n]+\n$/, `exactly one line starting "tsrun: ": ${JSON.stringify(r.stderr)}`);
  if (typeof includes === 'string') t.ok(r.stderr.includes(includes), `stderr mentions ${JSON.stringify(includes)}`);
  else t.match(r.stderr, includes);
}
/** The assertions oneLineError needs, from any (sub)test. */
type Tap = Pick<typeof t, 'equal' | 'match' | 'ok'>;

const root = fresh('root');
const R = ['--root', root];

t.test('--version', async (t) => {
  for (const flag of ['--version', '-v']) {
    const r = await cli(flag);
    t.equal(r.code, 0, `${flag}: exit 0`);
    t.match(r.stdout, /^tsrun version \S+\nspec: 1\.2\.0\nnode: v\d+\.\d+\.\d+\n$/, `${flag}: runc-style version block`);
    t.equal(r.stderr, '');
  }
});

t.test('--help exits 0', async (t) => {
  const r = await cli('--help');
  t.equal(r.code, 0);
  t.match(r.stdout, /Usage: tsrun/);
  for (const c of ['create', 'start', 'run', 'state', 'kill', 'delete', 'list', 'spec', 'features']) {
    t.match(r.stdout, new RegExp(`\\n  ${c}\\b`), `lists ${c}`);
  }
});

t.test('unknown flags', async (t) => {
  const g = await cli(...R, '--frobnicate', 'list');
  oneLineError(t, g, "tsrun: unknown option '--frobnicate'");
  const s = await cli(...R, 'state', '--frobnicate', 'c1');
  oneLineError(t, s, "tsrun: unknown option '--frobnicate'");
  const k = await cli(...R, 'list', '-z');
  oneLineError(t, k, "tsrun: unknown option '-z'");
  t.notMatch(g.stderr, /error:/, 'commander\'s "error: " prefix is stripped');
});

t.test('unknown command', async (t) => {
  const r = await cli(...R, 'frobnicate');
  oneLineError(t, r, "tsrun: unknown command 'frobnicate'");
  // runc has checkpoint/restore; tsrun does not, and says so.
  const p = await cli(...R, 'checkpoint', 'c1');
  oneLineError(t, p, "unknown command 'checkpoint'", 1);
});

t.test('a missing container id', async (t) => {
  for (const cmd of ['state', 'start', 'kill', 'delete', 'create', 'run']) {
    const r = await cli(...R, cmd);
    oneLineError(t, r, "tsrun: missing required argument 'container-id'");
  }
});

t.test('too many arguments', async (t) => {
  const r = await cli(...R, 'state', 'a', 'b');
  t.equal(r.code, 1, 'state a b: exit 1');
  t.match(r.stderr, /^tsrun: too many arguments/);
});

t.test('commands on a container that does not exist', async (t) => {
  const s = await cli(...R, 'state', 'nope');
  oneLineError(t, s, 'tsrun: container "nope" does not exist');
  const k = await cli(...R, 'kill', 'nope');
  oneLineError(t, k, 'tsrun: container "nope" does not exist');
  const k9 = await cli(...R, 'kill', 'nope', 'KILL');
  oneLineError(t, k9, 'container "nope" does not exist');
  const st = await cli(...R, 'start', 'nope');
  oneLineError(t, st, 'tsrun: container "nope" does not exist');
  const d = await cli(...R, 'delete', 'nope');
  oneLineError(t, d, 'tsrun: container "nope" does not exist');
  const df = await cli(...R, 'delete', '--force', 'nope');
  t.equal(df.code, 0, 'delete --force of nothing succeeds quietly, as runc\'s does (engines run it in every cleanup)');
  t.equal(df.stderr, '', 'and says nothing');
  t.strictSame(fs.readdirSync(root), [], 'nothing was created in --root');
});

t.test('invalid signals', async (t) => {
  for (const sig of ['FOO', '0', '65', '-9', 'SIG']) {
    const r = await cli(...R, 'kill', 'nope', sig);
    oneLineError(t, r, `tsrun: invalid signal: ${JSON.stringify(sig)}`);
  }
});

t.test('invalid container ids', async (t) => {
  for (const id of ['a/b', '..', '.', 'a b', 'x\ny']) {
    const r = await cli(...R, 'state', id);
    oneLineError(t, r, `tsrun: invalid container id format: ${JSON.stringify(id)}`);
  }
  const k = await cli(...R, 'kill', '../x');
  oneLineError(t, k, 'invalid container id format: "../x"');
  const e = await cli(...R, 'state', '');
  oneLineError(t, e, 'tsrun: container id cannot be empty');
  // create checks the id even with a valid bundle, before claiming anything.
  const bundle = fresh('bundle');
  fs.mkdirSync(path.join(bundle, 'rootfs'));
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(defaultSpec()));
  const croot = fresh('croot');
  for (const id of ['a/b', '..']) {
    const c = await cli('--root', croot, 'create', '--bundle', bundle, id);
    oneLineError(t, c, `tsrun: create ${id}: invalid container id format: ${JSON.stringify(id)}`);
  }
  t.strictSame(fs.readdirSync(croot), [], 'nothing claimed in --root');
});

t.test('delete --force with a path-like id stays inside --root', async (t) => {
  // "." names --root itself.
  const dotRoot = path.join(fresh('dot'), 'root');
  fs.mkdirSync(path.join(dotRoot, 'other-container'), { recursive: true });
  const d = await cli('--root', dotRoot, 'delete', '--force', '.');
  t.equal(d.code, 1, 'delete --force . fails');
  t.match(d.stderr, /invalid container id format: "\."/, 'with the id error');
  t.ok(fs.existsSync(path.join(dotRoot, 'other-container')), '--root and its other containers are untouched');
  // ".." names the parent of --root: a sentinel there must survive.
  const parent = fresh('parent');
  const droot = path.join(parent, 'root');
  fs.mkdirSync(droot);
  fs.writeFileSync(path.join(parent, 'sentinel'), 'keep me');
  const r = await cli('--root', droot, 'delete', '--force', '..');
  t.equal(r.code, 1, 'delete --force .. fails');
  t.match(r.stderr, /invalid container id format: "\.\."/, 'with the id error');
  t.ok(fs.existsSync(path.join(parent, 'sentinel')), 'the parent of --root is untouched');
  // Without --force the id is checked (store.load → checkId).
  const nf = await cli('--root', fresh('nf'), 'delete', '..');
  oneLineError(t, nf, 'tsrun: invalid container id format: ".."');
});

t.test('list on an empty root', async (t) => {
  const r = await cli(...R, 'list');
  t.equal(r.code, 0);
  t.equal(r.stderr, '');
  t.equal(r.stdout, 'ID          PID         STATUS      BUNDLE      CREATED     OWNER\n', "runc's header row");
  const q = await cli(...R, 'list', '-q');
  t.equal(q.code, 0);
  t.equal(q.stdout, '', 'list -q prints nothing');
  const j = await cli(...R, 'list', '-f', 'json');
  t.equal(j.code, 0);
  t.equal(j.stdout, '[]\n', 'list -f json prints []');
  const jl = await cli(...R, 'list', '--format=json');
  t.equal(jl.stdout, '[]\n', '--format=json too');
  const y = await cli(...R, 'list', '-f', 'yaml');
  oneLineError(t, y, 'tsrun: invalid format option: yaml');
  const missing = await cli('--root', path.join(tmp, 'never-created'), 'list');
  t.equal(missing.code, 0, 'a root that does not exist lists nothing');
  t.equal(missing.stdout, 'ID          PID         STATUS      BUNDLE      CREATED     OWNER\n');
  t.notOk(fs.existsSync(path.join(tmp, 'never-created')), 'list does not create --root');
});

t.test('list shows a claimed-but-unwritten id nowhere, and a record', async (t) => {
  const lroot = fresh('lroot');
  fs.mkdirSync(path.join(lroot, 'half')); // a create that claimed the id and died
  const r = await cli('--root', lroot, 'list', '-q');
  t.equal(r.stdout, '', 'no record: not listed');
  const rec = {
    id: 'a-container-with-a-long-id',
    bundle: '/b',
    rootfs: '/b/rootfs',
    created: '2024-01-02T03:04:05.000Z',
    pid: 0,
    phase: 'created',
    creatorPid: 0,
    config: {},
  };
  fs.mkdirSync(path.join(lroot, rec.id));
  fs.writeFileSync(path.join(lroot, rec.id, 'state.json'), JSON.stringify(rec));
  const q = await cli('--root', lroot, 'list', '-q');
  t.equal(q.stdout, `${rec.id}\n`);
  const table = await cli('--root', lroot, 'list');
  const lines = table.stdout.split('\n');
  t.equal(lines.length, 3, 'header, one row, trailing newline');
  const owner = os.userInfo().username;
  // Column width = max(12, longest cell + 3), as Go's tabwriter(minwidth 12, padding 3).
  const w0 = rec.id.length + 3;
  const w4 = rec.created.length + 3; // 27
  t.equal(lines[0], 'ID'.padEnd(w0) + 'PID         STATUS      BUNDLE      ' + 'CREATED'.padEnd(w4) + 'OWNER');
  t.equal(lines[1], rec.id.padEnd(w0) + '0           stopped     /b          ' + rec.created.padEnd(w4) + owner);
  t.equal(lines[1].indexOf(owner), lines[0].indexOf('OWNER'), 'columns line up');
  const j = await cli('--root', lroot, 'list', '-f', 'json');
  const states = JSON.parse(j.stdout);
  t.equal(states.length, 1);
  t.match(states[0], { id: rec.id, pid: 0, status: 'stopped', bundle: '/b', owner });
});

t.test('spec', async (t) => {
  const b = fresh('spec');
  const r = await cli('spec', '--bundle', b);
  t.equal(r.code, 0);
  t.equal(r.stdout, '');
  t.equal(r.stderr, '');
  const file = path.join(b, 'config.json');
  t.strictSame(JSON.parse(fs.readFileSync(file, 'utf8')), defaultSpec(), 'config.json is defaultSpec()');
  const again = await cli('spec', '-b', b);
  oneLineError(t, again, `tsrun: File ${file} exists. Remove it first`);
  t.match(again.stderr, /exists/);
  t.strictSame(JSON.parse(fs.readFileSync(file, 'utf8')), defaultSpec(), 'the existing file is untouched');
});


t.test('spec --rootless', async (t) => {
  const b = fresh('rootless');
  const r = await cli('spec', '--rootless', '--bundle', b);
  t.equal(r.code, 0, 'exit 0');
  t.equal(r.stderr, '', 'no error');
  const alone = await cli('spec', '--bundle', fresh('rootless-last'), '--rootless');
  t.equal(alone.code, 0, '--rootless as the last argument: exit 0');
  const file = path.join(b, 'config.json');
  t.ok(fs.existsSync(file), 'config.json written');
  if (!fs.existsSync(file)) return;
  const s = JSON.parse(fs.readFileSync(file, 'utf8'));
  checkRootless(t, s);
});

/** What `spec --rootless` must write; checked on defaultSpec({rootless}) directly while the CLI flag is broken. */
function checkRootless(t: Pick<typeof import('tap'), 'ok' | 'notOk' | 'strictSame' | 'equal'>, s: ReturnType<typeof defaultSpec>): void {
  const types = s.linux!.namespaces!.map((n) => n.type);
  t.ok(types.includes('user'), 'a user namespace');
  t.notOk(types.includes('network'), 'no network namespace');
  t.strictSame([...types].sort(), ['ipc', 'mount', 'pid', 'user', 'uts']);
  t.strictSame(s.linux!.uidMappings, [{ containerID: 0, hostID: process.getuid!(), size: 1 }], 'maps the caller uid to 0');
  t.strictSame(s.linux!.gidMappings, [{ containerID: 0, hostID: process.getgid!(), size: 1 }], 'maps the caller gid to 0');
  t.equal(s.linux!.resources, undefined, 'no device cgroup rules');
  const sys = s.mounts!.find((m) => m.destination === '/sys')!;
  t.strictSame(sys.options, ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'], '/sys bound from the host');
  t.notOk(s.mounts!.find((m) => m.destination === '/dev/pts')!.options!.includes('gid=5'), 'no gid=5 on devpts');
}

t.test('the rootless default spec itself', async (t) => {
  checkRootless(t, JSON.parse(JSON.stringify(defaultSpec({ rootless: true }))));
});

t.test('spec into a directory that does not exist', async (t) => {
  const r = await cli('spec', '--bundle', path.join(tmp, 'no', 'such', 'dir'));
  t.equal(r.code, 1, 'exit 1');
  t.match(r.stderr, /^tsrun: /, 'a "tsrun: " error line');
  t.notMatch(r.stderr, /internal error/, 'reported as a user error, not an internal error');
});

t.test('features', async (t) => {
  const r = await cli('features');
  t.equal(r.code, 0);
  t.equal(r.stderr, '');
  const f = JSON.parse(r.stdout);
  t.equal(f.ociVersionMin, '1.0.0');
  t.equal(f.ociVersionMax, OCI_VERSION);
  t.equal(f.ociVersionMax, '1.2.0');
  t.strictSame(f.hooks, ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop']);
  t.strictSame(f.linux.namespaces, ['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time']);
  t.strictSame(f.linux.namespaces, [...NAMESPACE_TYPES]);
  t.equal(f.linux.capabilities.length, 41);
  t.strictSame(f.linux.capabilities, Object.keys(CAPABILITIES));
  t.equal(f.linux.capabilities[0], 'CAP_CHOWN');
  t.equal(f.linux.capabilities[40], 'CAP_CHECKPOINT_RESTORE');
  t.equal(f.linux.cgroup.v1, true);
  t.equal(f.linux.cgroup.v2, true);
  t.equal(f.linux.cgroup.systemd, false);
  t.equal(f.linux.seccomp.enabled, true);
  t.strictSame(f.linux.apparmor, { enabled: false });
  t.strictSame(f.linux.selinux, { enabled: false });
  t.ok(f.mountOptions.includes('rbind') && f.mountOptions.includes('ro'), 'mount options');
  t.match(r.stdout, /^\{\n {4}"ociVersionMin"/, 'indented with 4 spaces like runc');
});

t.test('create with a bundle that has no config.json', async (t) => {
  const croot = fresh('croot');
  const bundle = fresh('empty-bundle');
  const r = await cli('--root', croot, 'create', '--bundle', bundle, 'c1');
  oneLineError(t, r, `tsrun: create c1: bundle ${bundle}: config.json does not exist`);
  t.strictSame(fs.readdirSync(croot), [], 'nothing left in --root');
  const run = await cli('--root', croot, 'run', '-b', bundle, 'c1');
  oneLineError(t, run, `tsrun: run c1: bundle ${bundle}: config.json does not exist`);
  t.strictSame(fs.readdirSync(croot), [], 'nothing left in --root after run either');
  const rel = await cli('--root', croot, 'create', '--bundle', path.relative(process.cwd(), bundle), 'c1');
  t.ok(rel.stderr.includes(`bundle ${bundle}: config.json does not exist`), 'a relative bundle is reported absolute');
});

t.test('create with an invalid config.json', async (t) => {
  const croot = fresh('croot');
  const bundle = fresh('bad-bundle');
  fs.writeFileSync(path.join(bundle, 'config.json'), '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}');
  const r = await cli('--root', croot, 'create', '--bundle', bundle, 'c1');
  oneLineError(t, r, /^tsrun: create c1: config\.json: /);
  t.strictSame(fs.readdirSync(croot), [], 'nothing left in --root');
});

t.test('--preserve-fds must be a non-negative integer', async (t) => {
  const r = await cli(...R, 'create', '--preserve-fds', 'x', 'c1');
  oneLineError(t, r, "option '--preserve-fds <n>' argument 'x' is invalid. must be a non-negative integer");
  t.equal(r.stderr, "tsrun: option '--preserve-fds <n>' argument 'x' is invalid. must be a non-negative integer\n", 'a user error, not an internal one');
  const neg = await cli(...R, 'run', '--preserve-fds', '-1', 'c1');
  t.equal(neg.code, 1, 'negative: exit 1');
  t.strictSame(fs.readdirSync(root), []);
});

t.test('--log FILE --log-format json: the error as a JSON line', async (t) => {
  const logFile = path.join(fresh('log'), 'tsrun.log');
  fs.writeFileSync(logFile, '{"level":"info","msg":"earlier","time":"2000-01-01T00:00:00Z"}\n');
  const r = await cli(...R, '--log', logFile, '--log-format', 'json', 'state', 'nope');
  t.equal(r.code, 1);
  t.equal(r.stderr, 'tsrun: container "nope" does not exist\n', 'stderr still gets the plain line');
  const lines = fs.readFileSync(logFile, 'utf8').split('\n');
  t.equal(lines.at(-1), '', 'the log ends with a newline');
  t.equal(lines.length, 3, 'appended, not truncated');
  const last = JSON.parse(lines.at(-2)!);
  t.equal(last.level, 'error');
  t.match(last.msg, /does not exist/);
  t.equal(last.msg, 'container "nope" does not exist');
  t.type(last.time, 'string');
  t.ok(!Number.isNaN(Date.parse(last.time)), 'time is a timestamp');
  t.strictSame(Object.keys(last).sort(), ['level', 'msg', 'time']);
});

t.test('--log FILE with the default text format', async (t) => {
  const logFile = path.join(fresh('log'), 'tsrun.log');
  const r = await cli(...R, '--log', logFile, 'kill', 'nope');
  t.equal(r.code, 1);
  const text = fs.readFileSync(logFile, 'utf8');
  t.match(text, /^time="[^"]+" level=error msg="container \\"nope\\" does not exist"\n$/, 'logrus text line');
});

t.test('--log-format xml', async (t) => {
  const r = await cli(...R, '--log-format', 'xml', 'list');
  oneLineError(t, r, /^tsrun: option '--log-format <format>' argument 'xml' is invalid\. Allowed choices are text, json\.\n$/);
});

t.test('global flags after the command are not global', async (t) => {
  const r = await cli('list', '--root', path.join(tmp, 'elsewhere'));
  t.equal(r.code, 1, 'runc takes global flags before the command only');
  t.match(r.stderr, /^tsrun: unknown option '--root'/, 'unknown option');
});

t.test('ignored runc flags are accepted', async (t) => {
  const r = await cli(...R, '--rootless', 'true', '--criu', '/usr/sbin/criu', '--systemd-cgroup', 'list', '-q');
  t.equal(r.code, 0);
  t.equal(r.stderr, '');
});

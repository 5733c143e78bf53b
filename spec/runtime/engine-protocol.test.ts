/**
 * tsrun driven the way containerd's runc shim drives a runtime: global flags
 * first (`--root R --log B/log.json --log-format json`), then the command,
 * and on failure the engine reads the last `level:"error"` line of the log
 * file for the message it shows.
 */
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import {
  assertNothingLeaked,
  type BundleConfig,
  cleanupContainer,
  leakCheck,
  makeBundle,
  rootFor,
  type RunResult,
  uniqueId,
} from '../lib/harness.js';
import { alive, cmdlineOf, isRoot, stateOf, tsrunFiles, waitFor, waitStatus } from './core-lib.js';

t.setTimeout(290_000);

const skip = !isRoot ? 'needs root' : false;

/** `tsrun --root R --log B/log.json --log-format json ...args`, exactly that order. */
function shim(bundle: string, args: string[]): Promise<RunResult> {
  return tsrunFiles(['--root', rootFor('tsrun'), '--log', path.join(bundle, 'log.json'), '--log-format', 'json', ...args], {
    raw: true,
  });
}

interface LogLine {
  level?: unknown;
  msg?: unknown;
  time?: unknown;
}

/** Every line of log.json parsed (an unparsable one fails its own assertion). */
function readLog(t: Test, bundle: string): LogLine[] {
  const file = path.join(bundle, 'log.json');
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const out: LogLine[] = [];
  for (const l of text.split('\n').filter(Boolean)) {
    let parsed: LogLine | undefined;
    try {
      parsed = JSON.parse(l) as LogLine;
    } catch {
      parsed = undefined;
    }
    t.ok(parsed && typeof parsed === 'object', `log line parses as JSON: ${l}`);
    if (parsed) out.push(parsed);
  }
  return out;
}

t.test('create, start, kill 9, delete with the shim\'s argument order', { skip }, async (t) => {
  leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sleep', '30'];
  });
  const id = uniqueId('shim');
  cleanupContainer(t, id);
  const pidFile = path.join(b.dir, 'init.pid');

  const create = await shim(b.dir, ['create', '--bundle', b.dir, '--pid-file', pidFile, id]);
  t.equal(create.code, 0, `create exits 0 (${create.stderr.trim()})`);
  t.equal(create.stderr, '', 'nothing on stderr: warnings go to the log file');
  const s1 = (await stateOf(id)).state;
  t.equal(s1?.status, 'created');
  t.equal(fs.readFileSync(pidFile, 'utf8'), String(s1?.pid), 'pid file = state.pid');
  t.ok(alive(s1?.pid ?? 0), 'init alive');

  const start = await shim(b.dir, ['start', id]);
  t.equal(start.code, 0, `start exits 0 (${start.stderr.trim()})`);
  t.equal((await stateOf(id)).state?.status, 'running');
  t.ok(await waitFor(() => cmdlineOf(s1?.pid ?? 0) === 'sleep 30', 5000), 'the user process runs');

  const kill = await shim(b.dir, ['kill', id, '9']);
  t.equal(kill.code, 0, `kill exits 0 (${kill.stderr.trim()})`);
  const s3 = await waitStatus(id, 'stopped');
  t.equal(s3?.status, 'stopped');
  t.equal(s3?.pid, 0);

  const del = await shim(b.dir, ['delete', id]);
  t.equal(del.code, 0, `delete exits 0 (${del.stderr.trim()})`);
  t.match((await stateOf(id)).stderr, /does not exist/, 'gone');

  const log = readLog(t, b.dir);
  for (const l of log) {
    t.ok(typeof l.level === 'string' && typeof l.msg === 'string' && typeof l.time === 'string', `level/msg/time: ${JSON.stringify(l)}`);
  }
  t.notOk(
    log.some((l) => l.level === 'error'),
    'no error line in the log of a clean run',
  );
  await assertNothingLeaked(t, id);
});

t.test('a failing create: the last log.json line is the error', { skip }, async (t) => {
  const bad: { name: string; mutate?: (c: BundleConfig) => void; bundle?: (dir: string) => void; expect: RegExp }[] = [
    {
      name: 'invalid JSON',
      bundle: (dir) => fs.writeFileSync(path.join(dir, 'config.json'), '{ nope'),
      expect: /config\.json: invalid JSON/,
    },
    {
      name: 'unknown namespace',
      mutate: (c) => {
        c.linux.namespaces = [...(c.linux.namespaces ?? []), { type: 'foo' as 'pid' }];
      },
      expect: /unknown namespace "foo"/,
    },
    {
      name: 'executable not found (fails inside the init)',
      mutate: (c) => {
        c.process.args = ['nope'];
      },
      expect: /exec: "nope": executable file not found in \$PATH/,
    },
  ];
  for (const c of bad) {
    await t.test(c.name, async (t) => {
      leakCheck(t);
      const b = await makeBundle(t, c.mutate);
      c.bundle?.(b.dir);
      const id = uniqueId('shimbad');
      cleanupContainer(t, id);
      const r = await shim(b.dir, ['create', '--bundle', b.dir, '--pid-file', path.join(b.dir, 'init.pid'), id]);
      t.not(r.code, 0, 'create fails');
      t.match(r.stderr, c.expect, `stderr says it too: ${r.stderr.trim()}`);
      const log = readLog(t, b.dir);
      t.ok(log.length > 0, 'log.json has lines');
      const last = log[log.length - 1] ?? {};
      t.equal(last.level, 'error', 'the last line is level error');
      t.match(String(last.msg), c.expect, `its msg carries the error: ${String(last.msg)}`);
      t.match(String(last.time), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/, 'and a time');
      t.same(Object.keys(last).sort(), ['level', 'msg', 'time'], 'exactly level, msg, time');
      t.notOk(fs.existsSync(path.join(b.dir, 'init.pid')), 'no pid file');
      t.notOk(fs.existsSync(path.join(rootFor('tsrun'), id)), 'no state dir');
      await assertNothingLeaked(t, id);
    });
  }
});

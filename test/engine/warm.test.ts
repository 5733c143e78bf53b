/**
 * The engine's per-command housekeeping that is plain code: swapping a
 * caller's environment in and out (setEnv), and the JIT warm-up it runs
 * before serving (warmUp), which must run the real parsers and compilers
 * without running any command.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { setEnv } from '../../src/engine/server.js';
import { warmUp } from '../../src/engine/warmup.js';
import { ENGINE_SOCKET_DIR } from '../../src/engine/protocol.js';
import { parseOnly } from '../../src/cli/main.js';

t.test('setEnv makes process.env exactly the target', (t) => {
  const saved = { ...process.env };
  t.teardown(() => setEnv(saved));
  process.env.TSRUN_T_KEEP = 'same';
  process.env.TSRUN_T_CHANGE = 'old';
  process.env.TSRUN_T_DROP = 'x';
  const target: Record<string, string> = { ...saved, TSRUN_T_KEEP: 'same', TSRUN_T_CHANGE: 'new', TSRUN_T_ADD: 'a=b' };
  setEnv(target);
  t.equal(process.env.TSRUN_T_KEEP, 'same');
  t.equal(process.env.TSRUN_T_CHANGE, 'new');
  t.equal(process.env.TSRUN_T_ADD, 'a=b', 'values keep their = signs');
  t.notOk('TSRUN_T_DROP' in process.env, 'a variable the target lacks is removed');
  t.same({ ...process.env }, target);
  // Names that are also Object.prototype's keys are plain variables here.
  setEnv({ ...saved, constructor: 'c', toString: 't' });
  t.equal(process.env.constructor, 'c');
  setEnv(saved);
  t.notOk(Object.hasOwn(process.env, 'constructor'), 'and removed like any other');
  t.notOk(Object.hasOwn(process.env, 'toString'));
  t.same({ ...process.env }, saved);
  t.end();
});

const root = process.getuid?.() === 0;

t.test('warmUp runs the parsers and compilers and leaves nothing behind', { skip: root ? false : 'writes under /run/tsrun-engine: needs root' }, async (t) => {
  const before = fs.existsSync(ENGINE_SOCKET_DIR) ? fs.readdirSync(ENGINE_SOCKET_DIR) : [];
  const parsed: string[][] = [];
  const r = await warmUp({
    parseOnly: async (argv) => {
      parsed.push(argv);
      await parseOnly(argv);
    },
    iterations: 3,
    budgetMs: 10_000,
  });
  t.equal(r.error, undefined, `no error (${r.error})`);
  t.equal(r.iterations, 3, 'the iterations asked for');
  t.ok(parsed.some((a) => a.includes('run')) && parsed.some((a) => a.includes('delete')), 'run and delete command lines parsed');
  const after = fs.readdirSync(ENGINE_SOCKET_DIR);
  t.same(after.filter((n) => !before.includes(n)), [], 'its scratch store is gone');
  // parseOnly ran no action: the run command line names a store that was never made.
  const runArgv = parsed.find((a) => a.includes('run'))!;
  t.notOk(fs.existsSync(runArgv[1]!), 'no state root was created by a parsed command');
});

t.test('warmUp stops at its time budget', { skip: root ? false : 'needs root' }, async (t) => {
  const r = await warmUp({ parseOnly: async () => new Promise((res) => setTimeout(res, 30)), iterations: 1000, budgetMs: 50 });
  t.ok(r.iterations >= 1 && r.iterations < 10, `stopped after ${r.iterations} iterations`);
  t.equal(r.error, undefined);
});

t.test('a failing warm-up reports why and still cleans up', { skip: root ? false : 'needs root' }, async (t) => {
  const r = await warmUp({
    parseOnly: async () => {
      throw new Error('boom');
    },
    iterations: 5,
  });
  t.equal(r.iterations, 0);
  t.match(r.error, /boom/);
  t.notOk(fs.existsSync(path.join(ENGINE_SOCKET_DIR, `warmup-${process.pid}`)));
});

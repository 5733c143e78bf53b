import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { resolveInRoot, splitCpArg } from '../../../src/shim/container/cp.js';
import { formatEntry, parseLogLine, parseTail, readLogFrom } from '../../../src/shim/container/logs.js';
import { binarySize, decimalSize } from '../../../src/shim/container/stats.js';
import type { ContainerRecord } from '../../../src/shim/container/store.js';
import { commandColumn, renderTemplate, table } from '../../../src/shim/container/views.js';

t.test('ps table and COMMAND column', async (t) => {
  const r = { path: 'sh', args: ['-c', 'httpd -f -p 80 -h /www'] } as ContainerRecord;
  t.equal(commandColumn(r), '"sh -c httpd -f -p 8…"');
  t.equal(commandColumn({ path: 'echo', args: ['hi'] } as ContainerRecord), '"echo hi"');
  t.equal(table([['A', 'LONGER'], ['xyz', 'b']]), 'A     LONGER\nxyz   b\n', 'columns padded by three spaces, no trailing blanks');
});

t.test('inspect -f templates', async (t) => {
  const v = { Id: 'abc', State: { Status: 'running', Pid: 4 }, Args: ['a', 'b'], Config: { Labels: { k: 'v' } } };
  t.equal(renderTemplate('{{.State.Status}} {{ .State.Pid }}', v), 'running 4');
  t.equal(renderTemplate('{{json .Args}}', v), '["a","b"]');
  t.equal(renderTemplate('{{.Args}} {{.Config.Labels}}', v), '[a b] map[k:v]');
  t.equal(renderTemplate('{{.Nope}}', v), '<no value>');
  t.throws(() => renderTemplate('{{.Id.X}}', v), { message: "template: can't evaluate field X" });
});

t.test('log lines', async (t) => {
  t.same(parseLogLine('{"log":"hi\\n","stream":"stdout","time":"2026-01-01T00:00:00.123456789Z"}'), { log: 'hi\n', stream: 'stdout', time: '2026-01-01T00:00:00.123456789Z' });
  t.equal(parseLogLine('{"log":"hi\\n","stream":"other","time":"x"}'), undefined);
  t.equal(parseLogLine('{"log":"torn'), undefined);
  t.equal(formatEntry({ log: 'x\n', stream: 'stderr', time: 'T' }, true), 'T x\n');
  t.equal(parseTail('all'), Infinity);
  t.equal(parseTail('3'), 3);
  t.throws(() => parseTail('-1'), { message: 'invalid value for "tail": -1' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-log-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const f = path.join(dir, 'l');
  fs.writeFileSync(f, '{"log":"a\\n","stream":"stdout","time":"t"}\n{"log":"b\\n","stream":"stderr","time":"t"}\n{"log":"partial');
  const first = readLogFrom(f, 0);
  t.same(first.entries.map((e) => e.log), ['a\n', 'b\n'], 'a line being written is left for later');
  fs.appendFileSync(f, '\\n","stream":"stdout","time":"t"}\n');
  t.same(readLogFrom(f, first.offset).entries.map((e) => e.log), ['partial\n'], 'and read once complete');
});

t.test('cp: paths resolved inside the rootfs', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-cp-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.mkdirSync(path.join(root, 'etc'));
  fs.symlinkSync('/../../../etc', path.join(root, 'abs'));
  fs.symlinkSync('../../..', path.join(root, 'etc', 'up'));
  fs.symlinkSync('loop', path.join(root, 'loop'));
  t.equal(resolveInRoot(root, '/abs/passwd', false), path.join(root, 'etc', 'passwd'), 'an absolute symlink restarts at the root');
  t.equal(resolveInRoot(root, '/etc/up/etc', false), path.join(root, 'etc'), '.. stops at the root');
  t.equal(resolveInRoot(root, '/../../x', false), path.join(root, 'x'));
  t.equal(resolveInRoot(root, '/abs', false), path.join(root, 'abs'), 'the last component is kept when not followed');
  t.throws(() => resolveInRoot(root, '/loop', true), { message: '/loop: too many levels of symbolic links' });
  t.same(splitCpArg('web:/etc/hosts'), ['web', '/etc/hosts']);
  t.same(splitCpArg('web:'), ['web', '/']);
  t.equal(splitCpArg('/host/path:x'), undefined);
  t.equal(splitCpArg('./a:b'), undefined);
  t.equal(splitCpArg('file'), undefined);
});

t.test('stats units', async (t) => {
  t.equal(binarySize(512), '512B');
  t.equal(binarySize(1536 * 1024), '1.5MiB');
  t.equal(decimalSize(1234), '1.23kB');
  t.equal(decimalSize(0), '0B');
});

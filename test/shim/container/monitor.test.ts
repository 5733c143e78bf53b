/**
 * The monitor binary on its own, without a runtime: the "create" command is
 * a shell that starts a background process (standing in for the container
 * init), writes its pid and exits, so the process is orphaned to the monitor
 * (the subreaper) exactly as a container init is after `tsrun create`.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { attach } from '../../../src/shim/container/monitor.js';
import { parseLogLine } from '../../../src/shim/container/logs.js';

const BIN = path.resolve(__dirname, '..', '..', '..', 'build', 'Release', 'tsrun-monitor');

interface Run {
  dir: string;
  report: Promise<string>;
  exited: Promise<number | null>;
}

function runMonitor(t: Test, script: string, extra: string[] = [], onExit: string[] = []): Run {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-mon-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // The stand-in init waits until "create" is gone, as a real init waits for
  // `start`: else that shell could reap it first. (An asynchronous list's stdin
  // is /dev/null in sh unless it is passed on another fd.)
  const wait = 'while kill -0 $$ 2>/dev/null; do sleep 0.02; done';
  const create = ['/bin/sh', '-c', `exec 3<&0; ( ${wait}; ${script} ) <&3 3<&- & echo $! > ${dir}/init.pid`];
  const child = spawn(BIN, ['-d', dir, '-i', 'cid', '-S', '3', ...extra, '--', ...create, ...(onExit.length ? ['---', ...onExit] : [])], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const report = new Promise<string>((resolve) => {
    let s = '';
    child.stdio[3]!.on('data', (d: Buffer) => (s += d.toString()));
    child.stdio[3]!.on('end', () => resolve(s));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => {
    clearTimeout(timer);
    resolve(c);
  }));
  return { dir, report, exited };
}

const logOf = (dir: string) => fs.readFileSync(path.join(dir, 'cid-json.log'), 'utf8').trim().split('\n');

t.test('json-file log: one line per output line, per stream, escaped as Go does', async (t) => {
  const r = runMonitor(t, `printf 'a\\tb <&>\\n'; printf 'bad \\377 utf8\\n' >&2; printf 'no newline'; exit 7`);
  t.match(await r.report, /^ok \d+\n$/);
  t.equal(await r.exited, 0);
  const lines = logOf(r.dir);
  const entries = lines.map(parseLogLine);
  t.same(entries.map((e) => e && [e.stream, e.log]).sort(), [
    ['stderr', 'bad \ufffd utf8\n'],
    ['stdout', 'a\tb <&>\n'],
    ['stdout', 'no newline'],
  ].sort());
  const a = lines.find((l) => l.includes('a\\tb'));
  t.match(a, /^\{"log":"a\\tb \\u003c\\u0026\\u003e\\n","stream":"stdout","time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"\}$/);
  const exit = JSON.parse(fs.readFileSync(path.join(r.dir, 'exit.json'), 'utf8'));
  t.equal(exit.exitCode, 7);
  t.match(exit.finishedAt, /Z$/);
  t.notOk(fs.existsSync(path.join(r.dir, 'attach.sock')), 'the attach socket goes with the container');
});

t.test('a failed create is reported with what it printed', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-mon-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const child = spawn(BIN, ['-d', dir, '-i', 'cid', '-S', '3', '--', '/bin/sh', '-c', 'echo "tsrun: create cid: no such image" >&2; exit 3'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  let s = '';
  child.stdio[3]!.on('data', (d: Buffer) => (s += d.toString()));
  const code = await new Promise((res) => child.on('exit', res));
  t.equal(code, 1);
  t.equal(s, 'err 3\ntsrun: create cid: no such image\n');
});

t.test('attach: output relayed, stdin fed and closed, exit code sent; then the on-exit command runs', async (t) => {
  const marker = path.join(os.tmpdir(), `tsctl-mon-exit-${process.pid}`);
  t.teardown(() => fs.rmSync(marker, { force: true }));
  const r = runMonitor(t, `read line; echo "got $line"; cat >&2; exit 4`, ['-s'], ['/bin/sh', '-c', `echo ran > ${marker}`]);
  t.match(await r.report, /^ok/);
  let out = '';
  let err = '';
  const a = await attach(r.dir, { stdout: (b) => (out += b), stderr: (b) => (err += b) });
  a.send(Buffer.from('hello\nrest'));
  a.closeStdin();
  t.equal(await a.done, 4);
  t.equal(out, 'got hello\n');
  t.equal(err, 'rest');
  t.equal(await r.exited, 0);
  t.equal(fs.readFileSync(marker, 'utf8'), 'ran\n');
});

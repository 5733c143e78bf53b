import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { deriveState, humanDuration, monitorAlive, procStartTime, statusText } from '../../../src/shim/container/status.js';
import type { ContainerRecord } from '../../../src/shim/container/store.js';

t.test("humanDuration is Go's units.HumanDuration", async (t) => {
  const s = 1000;
  const cases: [number, string][] = [
    [0, 'Less than a second'], [999, 'Less than a second'], [s, '1 second'], [3 * s, '3 seconds'], [59 * s, '59 seconds'],
    [60 * s, 'About a minute'], [119 * s, 'About a minute'], [120 * s, '2 minutes'], [59 * 60 * s, '59 minutes'],
    [60 * 60 * s, 'About an hour'], [3 * 3600 * s, '3 hours'], [47 * 3600 * s, '47 hours'], [48 * 3600 * s, '2 days'],
    [14 * 24 * 3600 * s, '2 weeks'], [60 * 24 * 3600 * s, '2 months'], [800 * 24 * 3600 * s, '2 years'],
  ];
  for (const [ms, text] of cases) t.equal(humanDuration(ms), text, `${ms} ms`);
});

const rec = (state: ContainerRecord['state']): ContainerRecord => ({ id: 'a'.repeat(64), name: 'x', created: '2026-01-01T00:00:00.000Z', state } as ContainerRecord);

t.test('status text', async (t) => {
  const now = Date.parse('2026-01-01T00:01:00.000Z');
  const r = rec({ restartCount: 0, startedAt: '2026-01-01T00:00:57.000Z' });
  t.equal(statusText({ status: 'created', exitCode: 0, monitorRunning: false, lost: false }, r, now), 'Created');
  t.equal(statusText({ status: 'running', exitCode: 0, monitorRunning: true, lost: false }, r, now), 'Up 3 seconds');
  t.equal(statusText({ status: 'exited', exitCode: 137, finishedAt: '2026-01-01T00:00:55.000Z', monitorRunning: false, lost: false }, r, now), 'Exited (137) 5 seconds ago');
});

t.test('state is derived from the monitor and exit.json', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-status-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const r = rec({ restartCount: 0 });
  const dir = path.join(root, 'containers', r.id);
  fs.mkdirSync(dir, { recursive: true });
  t.equal(deriveState(root, r).status, 'created');
  r.state.startedAt = new Date().toISOString();
  // a live "monitor": this process, with its real start time
  fs.writeFileSync(path.join(dir, 'monitor.pid'), `${process.pid} ${procStartTime(process.pid)}\n`);
  t.equal(deriveState(root, r).status, 'running');
  // the same pid with another start time is a reused pid, not our monitor
  fs.writeFileSync(path.join(dir, 'monitor.pid'), `${process.pid} 1\n`);
  t.notOk(monitorAlive({ pid: process.pid, start: '1' }));
  t.same(deriveState(root, r), { status: 'exited', exitCode: 255, monitorRunning: false, lost: true }, 'started, no monitor, no exit: lost');
  fs.writeFileSync(path.join(dir, 'exit.json'), '{"exitCode":3,"finishedAt":"2026-01-01T00:00:00Z"}');
  t.same(deriveState(root, r), { status: 'exited', exitCode: 3, finishedAt: '2026-01-01T00:00:00Z', monitorRunning: false, lost: false });
});

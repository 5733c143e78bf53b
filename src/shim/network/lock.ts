/**
 * The network lock: one file created O_EXCL under <root>/network, naming its
 * holder by pid and start time. Setup and teardown hold it while they decide
 * whether the bridge and NAT table must be created or removed (the first and
 * the last container), so those never race. A holder that died (a crashed
 * tsctl) is detected by its pid no longer running with that start time, and
 * its lock is broken; every wait is bounded.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../errors.js';
import { isAlive, procStat } from '../../lifecycle/proc.js';

function holderAlive(text: string): boolean {
  const [pidText, start] = text.trim().split(' ');
  return !!start && isAlive(Number(pidText), start);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` holding `<dir>/lock`; waits at most `timeoutMs` for another holder. */
export async function withLock<T>(dir: string, fn: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'lock');
  const me = `${process.pid} ${procStat(process.pid)?.startTime ?? '0'}\n`;
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; ; i++) {
    try {
      fs.writeFileSync(file, me, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = '';
    try {
      holder = fs.readFileSync(file, 'utf8');
    } catch {
      continue; // released between our create and read
    }
    // An empty file is a holder between create and write: give it a moment.
    if (holder !== '' && !holderAlive(holder)) {
      // Break a dead holder's lock by renaming it away (only one breaker wins).
      try {
        const stale = `${file}.stale.${process.pid}`;
        fs.renameSync(file, stale);
        if (fs.readFileSync(stale, 'utf8') !== holder) {
          // a live holder took it between our read and rename: put it back
          // (link fails rather than overwrite a lock taken since)
          try {
            fs.linkSync(stale, file);
          } catch {
            /* taken again: that holder's lock stands */
          }
        }
        fs.rmSync(stale, { force: true });
      } catch {
        /* another breaker won */
      }
      continue;
    }
    if (Date.now() >= deadline || i > 10_000) {
      throw new UserError(`network: timed out waiting for the network lock ${file} (held by pid ${holder.split(' ')[0] || '?'})`);
    }
    await sleep(Math.min(50, 5 + i));
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(file, { force: true });
  }
}

/** TSRUN_TRACE / --debug per-step timing: silent by default, one line per point when on. */
import t from 'tap';
import { enableTrace, execOffsetMs, trace, tracing } from '../../src/bench/trace.js';

t.test('off by default, on with a sink', async (t) => {
  if (process.env.TSRUN_TRACE && process.env.TSRUN_TRACE !== '0') {
    t.pass('skipped: TSRUN_TRACE is set in this environment');
    return;
  }
  t.equal(tracing(), false);
  trace('not printed'); // no sink: nothing to observe, and nothing must throw
  const lines: string[] = [];
  enableTrace((l) => lines.push(l));
  t.equal(tracing(), true);
  trace('step one');
  trace('step two');
  // The header comes first: the process start (when /proc allows) and Node's start.
  t.match(lines.at(-1), /^tsrun-trace:\s+\d+\.\d ms\s+\+\d+\.\d\s+step two$/);
  t.match(lines.at(-2), /^tsrun-trace:\s+\d+\.\d ms\s+\+\d+\.\d\s+step one$/);
  t.ok(lines.some((l) => l.includes('node: started')), 'header');
  // The process-start line is an estimate from /proc/self/stat (10 ms clock
  // ticks), so only the measured points must be in order.
  const measured = lines.filter((l) => !l.includes('process start'));
  const times = measured.map((l) => Number(/tsrun-trace:\s+(-?[\d.]+) ms/.exec(l)![1]));
  t.same([...times].sort((a, b) => a - b), times, 'times never go backwards');
  enableTrace(() => t.fail('a second enableTrace keeps the first sink'));
  trace('three');
  t.match(lines.at(-1), /three$/);
});

t.test('exec offset from /proc/self/stat', async (t) => {
  const off = execOffsetMs();
  t.ok(off === undefined || (off > -50 && off < 60_000), `plausible: ${off}`);
});

/**
 * Per-step timing of a tsrun invocation: with TSRUN_TRACE=1 (or --debug)
 * every trace() point prints one line on stderr with the milliseconds since
 * Node's start (process.uptime(); the `performance` global would load 11
 * modules on first use), the time since the previous point and the step:
 *
 *   tsrun-trace:   -4.0 ms          exec (process start, /proc/self/stat, ±10 ms)
 *   tsrun-trace:    5.9 ms  +9.9    loader: code cache read (cache accepted)
 *   tsrun-trace:   12.3 ms  +1.2    create: config read
 *
 * Off (the default), trace() is a call and one boolean test, and nothing is
 * read or allocated. Lines go straight to fd 2 (no stream is created for
 * them); with --debug and --log FILE they go to the log as debug lines
 * instead, so an engine's stderr never sees them unasked.
 */
import fs from 'node:fs';

/** Timestamps the launcher (dist/tsrun.js, src/bench/launcher.ts) left behind, in ms of process.uptime(). */
interface LoaderMarks {
  start?: number;
  read?: number;
  compiled?: number;
  cache?: string;
}

type Sink = (line: string) => void;

const envOn = (): boolean => {
  const v = process.env.TSRUN_TRACE;
  return v !== undefined && v !== '' && v !== '0';
};

let sink: Sink | undefined = envOn() ? toStderr : undefined;
let last = 0;
let started = false;
/** Milliseconds are counted from here: 0 for a process, each command's start in an engine. */
let origin = 0;
/** When main() began; recorded always (one clock read) so --debug can report it late. */
let mainAt: number | undefined;

const now = (): number => process.uptime() * 1000 - origin;

function toStderr(line: string): void {
  try {
    fs.writeSync(2, line + '\n');
  } catch {
    /* a closed stderr must not break the command being traced */
  }
}

/**
 * The engine, before each command: tracing as that command's environment
 * says, times from now (the process' own start and loader marks are the
 * engine's, long past, so no header).
 */
export function resetTrace(): void {
  sink = envOn() ? toStderr : undefined;
  origin = process.uptime() * 1000;
  last = 0;
  started = sink !== undefined;
  if (sink) sink(`tsrun-trace:     0.0 ms          engine: command received`);
}

/** Whether trace points print (TSRUN_TRACE=1 or --debug). */
export function tracing(): boolean {
  return sink !== undefined;
}

/** Marks the start of main(); cheap enough to call unconditionally. */
export function markMain(): void {
  mainAt = now();
}

/**
 * --debug turns tracing on once the flags are parsed; lines then go to the
 * log (--log FILE) through `debugLog`, or to stderr without --log. TSRUN_TRACE
 * keeps its stderr sink.
 */
export function enableTrace(debugLog?: Sink): void {
  if (sink) return;
  sink = debugLog ?? toStderr;
}

/** Milliseconds between the kernel starting this process and Node's start (10 ms resolution). */
export function execOffsetMs(): number | undefined {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTicks = Number(fields[19]);
    const uptime = Number(fs.readFileSync('/proc/uptime', 'latin1').split(' ')[0]);
    if (!Number.isFinite(startTicks) || !Number.isFinite(uptime)) return undefined;
    // USER_HZ is 100 on every Linux architecture Node supports.
    const originSinceBoot = uptime * 1000 - now();
    return originSinceBoot - startTicks * 10;
  } catch {
    return undefined;
  }
}

function fmt(t: number): string {
  return t.toFixed(1).padStart(7);
}

function emit(t: number, step: string): void {
  const delta = started ? `+${(t - last).toFixed(1)}` : '';
  sink!(`tsrun-trace: ${fmt(t)} ms  ${delta.padEnd(7)} ${step}`);
  last = t;
  started = true;
}

/** The points before the first trace() call: process exec, the launcher's, main(). */
function header(): void {
  const exec = execOffsetMs();
  if (exec !== undefined) emit(-exec, 'exec (process start, from /proc/self/stat, ±10 ms)');
  emit(0, 'node: started (process.uptime() = 0)');
  const marks = (globalThis as { __tsrunLoader?: LoaderMarks }).__tsrunLoader;
  if (marks?.start !== undefined) emit(marks.start, 'loader: dist/tsrun.js running (node bootstrap done)');
  if (marks?.read !== undefined) emit(marks.read, 'loader: bundle and code cache read');
  if (marks?.compiled !== undefined) emit(marks.compiled, `loader: bundle compiled (code cache ${marks.cache ?? 'unknown'})`);
  if (mainAt !== undefined) emit(mainAt, 'main: bundle evaluated, main() entered');
}

/** One trace point. Costs a boolean test when tracing is off. */
export function trace(step: string): void {
  if (sink === undefined) return;
  const t = now();
  if (!started) header();
  emit(t, step);
}

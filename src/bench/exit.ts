/**
 * How a CLI process ends once its command is done. Node's process.exit()
 * emits 'exit', then stops the platform's worker threads, shuts libuv down
 * and runs C++ static destructors before the kernel tears the process down:
 * ~1 ms of a cold command here (README.md, Benchmarks), spent after the
 * command's work is over and before its caller sees it end.
 *
 * Nothing is lost by skipping that: stdout and stderr are written
 * synchronously (src/bench/stdio.ts; Node's own streams are synchronous for
 * files, pipes and terminals on Linux), and state and logs are written with
 * *Sync calls. Node's exit is still taken when something asked for it: an
 * 'exit' listener (the terminal relay restores the terminal's mode in one,
 * src/lifecycle/terminal.ts), V8 coverage collection (NODE_V8_COVERAGE,
 * written at exit), and the build's code-cache training, which replaces
 * process.exit to run several commands in one process (src/bench/launcher.ts).
 */
import { loadedNative } from '../native.js';
import { trace } from './trace.js';

export function exitProcess(code: number): never {
  const { NODE_V8_COVERAGE, TSRUN_BUILD_CODE_CACHE } = process.env;
  if (process.listenerCount('exit') === 0 && NODE_V8_COVERAGE === undefined && TSRUN_BUILD_CODE_CACHE === undefined) {
    // _exit(2) where the addon is loaded anyway (create, run, exec, delete after a
    // create); else Node's reallyExit, what process.exit() calls after 'exit'.
    const addon = loadedNative();
    trace(`exit ${code} (${addon ? '_exit' : 'reallyExit'})`);
    addon?.exitNow(code);
    (process as unknown as { reallyExit(code: number): never }).reallyExit(code);
  }
  trace(`exit ${code} (process.exit)`);
  process.exit(code);
}

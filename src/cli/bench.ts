/**
 * `tsrun bench`: the namespace-setup benchmark (src/bench/ns.ts). Not a runc
 * command. The benchmark's code is loaded only when it runs, so the other
 * commands do not pay for it at start.
 */
import fs from 'node:fs';
import { type Command, InvalidArgumentError } from 'commander';
import { UserError } from '../errors.js';
import { writeStderr, writeStdout } from '../bench/stdio.js';

const int = (min: number) => (v: string): number => {
  if (!/^\d+$/.test(v) || Number(v) < min) throw new InvalidArgumentError(`must be an integer >= ${min}`);
  return Number(v);
};

interface BenchFlags {
  iterations: number;
  warmup: number;
  kinds?: string;
  cpu?: number;
  fork?: boolean;
  rootfs?: string;
  floor?: string;
  output?: string;
  svg?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('bench')
    .description('benchmark namespace setup: clone cycles per namespace kind and the other create steps (root)')
    .option('-n, --iterations <n>', 'measured cycles per case', int(1), 1000)
    .option('-w, --warmup <n>', 'unmeasured cycles before each case', int(0), 50)
    .option('-k, --kinds <list>', 'comma-separated cases (default: all; `tsrun bench --list` names them)')
    .option('--list', 'list the cases and exit')
    .option('--cpu <n>', 'pin the benchmark and its clones to this CPU', int(0))
    .option('--fork', 'clone fork-like, as the executor does (default: CLONE_VM|CLONE_FILES, the namespaces alone)')
    .option('--rootfs <dir>', 'rootfs for the pivot_root case (default: the busybox template, else an empty directory)')
    .option('--floor <binary>', 'bench/ns-floor (the same loops in C): run each namespace case there too and show the overhead')
    .option('-o, --output <file>', 'write the results as JSON')
    .option('--svg <file>', 'write the latency distribution chart as SVG')
    .option('--json', 'print the JSON on stdout instead of the table')
    .action(async (o: BenchFlags & { list?: boolean }) => {
      const ns = await import('../bench/ns.js');
      if (o.list) {
        writeStdout(ns.CASES.map((c) => `${c.name.padEnd(13)} ${c.group.padEnd(10)} ${c.description}\n`).join(''));
        return;
      }
      const tty = process.stderr.isTTY;
      const progress = (line: string, final: boolean) => {
        // On a terminal the line updates in place; elsewhere only the finished ones are printed.
        if (tty) writeStderr(`\r\x1b[K${line}${final ? '\n' : ''}`);
        else if (final) writeStderr(`${line}\n`);
      };
      const kinds = o.kinds?.split(',').map((k) => k.trim()).filter(Boolean);
      const report = ns.runNsBench({
        iterations: o.iterations,
        warmup: o.warmup,
        kinds,
        cpu: o.cpu,
        fork: !!o.fork,
        rootfs: o.rootfs,
        floor: o.floor,
        progress,
      });
      const write = (file: string, text: string) => {
        try {
          fs.writeFileSync(file, text);
        } catch (e) {
          throw new UserError(`bench: cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
      };
      if (o.output) write(o.output, JSON.stringify(report, null, 2) + '\n');
      if (o.svg) write(o.svg, ns.nsSvg(report));
      writeStdout(o.json ? JSON.stringify(report, null, 2) + '\n' : '\n' + ns.formatNsTable(report));
    });
}

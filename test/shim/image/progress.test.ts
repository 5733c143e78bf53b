/** The pull progress display: plain state lines off a terminal, a redrawn block on one. */
import t from 'tap';
import { humanSize, Progress } from '../../../src/shim/image/progress.js';

function sink(): { out: NodeJS.WriteStream; text: () => string } {
  let buf = '';
  const out = { write: (s: string) => ((buf += s), true), isTTY: false } as unknown as NodeJS.WriteStream;
  return { out, text: () => buf };
}

t.test('docker\'s sizes', async (t) => {
  t.equal(humanSize(0), '0B');
  t.equal(humanSize(999), '999B');
  t.equal(humanSize(1000), '1kB');
  t.equal(humanSize(4_260_000), '4.26MB');
  t.equal(humanSize(205_185_861), '205MB');
  t.equal(humanSize(1.5e9), '1.5GB');
});

t.test('off a terminal: one line per state change, none for the in-between states', async (t) => {
  const s = sink();
  const p = new Progress(s.out, false);
  p.line('1: Pulling from x');
  p.add('a'.repeat(64), 100);
  p.add('b'.repeat(64), 50, 'Already exists');
  p.set('a'.repeat(64), 'Downloading');
  p.bytes('a'.repeat(64), 60);
  p.set('a'.repeat(64), 'Download complete');
  p.set('a'.repeat(64), 'Extracting');
  p.set('a'.repeat(64), 'Pull complete');
  p.finish();
  p.line('Digest: sha256:x');
  t.equal(s.text(), ['1: Pulling from x', 'bbbbbbbbbbbb: Already exists', 'aaaaaaaaaaaa: Download complete', 'aaaaaaaaaaaa: Pull complete', 'Digest: sha256:x', ''].join('\n'));
});

t.test('on a terminal: the block is redrawn in place with bytes and rate, then stays', async (t) => {
  const s = sink();
  const p = new Progress(s.out, true);
  p.add('c'.repeat(64), 2_000_000);
  p.set('c'.repeat(64), 'Downloading');
  p.bytes('c'.repeat(64), 1_000_000);
  p.set('c'.repeat(64), 'Verifying Checksum');
  p.set('c'.repeat(64), 'Pull complete');
  p.finish();
  p.line('Status: done');
  const out = s.text();
  t.match(out, /\x1b\[1A\x1b\[J/, 'moves up and clears to redraw');
  t.match(out, /cccccccccccc: Downloading \[=*> *\] 0B\/2MB/, 'a bar with done/total');
  t.match(out, /cccccccccccc: Pull complete\n(?!.*\x1b\[1A)[^]*Status: done\n$/, 'the status line prints below the final block');
  t.notMatch(out.slice(out.lastIndexOf('Pull complete')), /\x1b\[\d+A/, 'no redraw after finish');
});

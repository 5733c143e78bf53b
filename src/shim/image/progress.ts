/**
 * Pull progress, per layer, the way `docker pull` shows it: on a terminal a
 * block of lines redrawn in place (state, bytes done/total, rate); anywhere
 * else one plain line per state change, so logs stay readable.
 */

export type LayerState = 'Waiting' | 'Downloading' | 'Verifying Checksum' | 'Download complete' | 'Already exists' | 'Extracting' | 'Pull complete';

interface Row {
  id: string;
  state: LayerState;
  done: number;
  total: number;
  started: number;
}

/** Docker's human sizes: decimal units, 3 significant digits ("4.26MB", "987kB", "12B"). */
export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : Number(v.toPrecision(3))}${units[i]}`;
}

export class Progress {
  private rows: Row[] = [];
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly tty: boolean;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    tty?: boolean,
    private readonly quiet = false,
  ) {
    this.tty = tty ?? !!out.isTTY;
  }

  /** Prints a line above the layer block (or just a line). */
  line(text: string): void {
    if (this.quiet) return;
    if (this.tty) this.erase();
    this.out.write(`${text}\n`);
    if (this.tty) this.draw();
  }

  add(id: string, total: number, state: LayerState = 'Waiting'): void {
    this.rows.push({ id: id.slice(0, 12), state, done: 0, total, started: Date.now() });
    if (this.tty) this.redraw();
    else this.plain(this.rows[this.rows.length - 1]!);
    if (this.tty && !this.timer && !this.quiet) {
      // bytes arrive constantly: redraw at 10 Hz, not per chunk
      this.timer = setInterval(() => this.redraw(), 100);
      this.timer.unref();
    }
  }

  set(id: string, state: LayerState): void {
    const r = this.row(id);
    if (!r || r.state === state) return;
    if (state === 'Downloading') r.started = Date.now();
    r.state = state;
    if (this.tty) this.redraw();
    else this.plain(r);
  }

  bytes(id: string, n: number): void {
    const r = this.row(id);
    if (r) r.done += n;
  }

  finish(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.tty) this.redraw();
    // the block stays as last drawn; what follows prints below it
    this.drawn = 0;
    this.rows = [];
  }

  private row(id: string): Row | undefined {
    return this.rows.find((r) => r.id === id.slice(0, 12));
  }

  private plain(r: Row): void {
    // Downloading and Extracting are the in-between states: no line for them off a terminal
    if (this.quiet || r.state === 'Downloading' || r.state === 'Waiting' || r.state === 'Extracting') return;
    this.out.write(`${r.id}: ${r.state}\n`);
  }

  private text(r: Row): string {
    if (r.state !== 'Downloading') return `${r.id}: ${r.state}`;
    const secs = Math.max(0.001, (Date.now() - r.started) / 1000);
    const width = 30;
    const frac = r.total > 0 ? Math.min(1, r.done / r.total) : 0;
    const bar = `[${'='.repeat(Math.max(0, Math.round(frac * width) - 1))}>${' '.repeat(width - Math.max(1, Math.round(frac * width)))}]`;
    return `${r.id}: Downloading ${bar} ${humanSize(r.done)}/${humanSize(r.total)} ${humanSize(r.done / secs)}/s`;
  }

  private erase(): void {
    if (this.drawn) this.out.write(`\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }

  private draw(): void {
    for (const r of this.rows) this.out.write(`\x1b[2K${this.text(r)}\n`);
    this.drawn = this.rows.length;
  }

  private redraw(): void {
    if (this.quiet) return;
    this.erase();
    this.draw();
  }
}

/**
 * A small tar writer for the unpacker's tests: it writes exactly what it is
 * told (including the hostile entries no real tool would write), in ustar,
 * GNU long-name or PAX form.
 */
import { createHash } from 'node:crypto';

export interface WEntry {
  path: string;
  /** '0' file, '1' hardlink, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo, or any other flag */
  type?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkpath?: string;
  data?: string | Buffer;
  devmajor?: number;
  devminor?: number;
  /** PAX records (key → value) written in an `x` header before the entry */
  pax?: Record<string, string | Buffer>;
  /** write a long path as a GNU `L` header instead of truncating */
  gnuLong?: boolean;
  uname?: string;
  gname?: string;
}

function octal(n: number, len: number): string {
  return n.toString(8).padStart(len - 1, '0') + '\0';
}

function header(e: WEntry, name: string, link: string, size: number, flag: string, gnu = false): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.mode ?? (flag === '5' ? 0o755 : 0o644), 8), 100, 'latin1');
  h.write(octal(e.uid ?? 0, 8), 108, 'latin1');
  h.write(octal(e.gid ?? 0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(e.mtime ?? 1700000000, 12), 136, 'latin1');
  h.write(flag, 156, 'latin1');
  h.write(link, 157, 100, 'utf8');
  h.write(gnu ? 'ustar  \0' : 'ustar\x0000', 257, 'latin1');
  h.write(e.uname ?? '', 265, 32, 'utf8');
  h.write(e.gname ?? '', 297, 32, 'utf8');
  h.write(octal(e.devmajor ?? 0, 8), 329, 'latin1');
  h.write(octal(e.devminor ?? 0, 8), 337, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of h) sum += c;
  h.write(octal(sum, 7) + ' ', 148, 'latin1');
  return h;
}

function padded(data: Buffer): Buffer[] {
  const pad = (512 - (data.length % 512)) % 512;
  return [data, Buffer.alloc(pad)];
}

function paxData(records: Record<string, string | Buffer>): Buffer {
  const out: Buffer[] = [];
  for (const [k, v] of Object.entries(records)) {
    const val = Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8');
    const body = Buffer.concat([Buffer.from(` ${k}=`), val, Buffer.from('\n')]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    out.push(Buffer.from(String(len)), body);
  }
  return Buffer.concat(out);
}

/** The whole archive, with the end-of-archive blocks. */
export function tar(entries: WEntry[]): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const flag = e.type ?? '0';
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data);
    let name = e.path;
    let link = e.linkpath ?? '';
    if (e.pax) {
      const p = paxData(e.pax);
      out.push(header({ path: '' }, 'PaxHeaders/x', '', p.length, 'x'), ...padded(p));
    }
    if (e.gnuLong && Buffer.byteLength(name) >= 100) {
      const d = Buffer.from(name + '\0');
      out.push(header({ path: '' }, '././@LongLink', '', d.length, 'L', true), ...padded(d));
      name = name.slice(0, 99);
    }
    if (e.gnuLong && Buffer.byteLength(link) >= 100) {
      const d = Buffer.from(link + '\0');
      out.push(header({ path: '' }, '././@LongLink', '', d.length, 'K', true), ...padded(d));
      link = link.slice(0, 99);
    }
    out.push(header(e, name, link, flag === '0' ? data.length : 0, flag, e.gnuLong), ...(flag === '0' ? padded(data) : []));
  }
  out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

export function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

export async function* chunks(b: Buffer, size = 7000): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

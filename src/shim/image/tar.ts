/**
 * A streaming tar reader, by hand: layers are hundreds of MB and must be
 * unpacked while they are decompressed, and no npm tar library gives the
 * exact view an unpacker needs (raw xattr bytes, device numbers, PAX
 * overrides of every numeric field, a hard error on what it cannot read).
 *
 * Formats: ustar (with its 155-byte prefix), GNU (long name `L`, long link
 * `K`, base-256 numbers), PAX extended (`x`) and global (`g`) headers with
 * path, linkpath, size, uid, gid, uname, gname, mtime, atime and
 * SCHILY.xattr.* (LIBARCHIVE.xattr.* too); a global header's path, linkpath
 * and size are not applied to every entry (that would make no sense). Sparse files and other exotic
 * types are refused naming the entry rather than silently unpacked wrong.
 */

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarHeader {
  /** as written in the archive (PAX/GNU long names applied); not normalized */
  path: string;
  type: TarEntryType;
  /** permission bits including setuid/setgid/sticky (0o7777) */
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  size: number;
  /** seconds since the epoch, fractional from PAX */
  mtime: number;
  atime?: number;
  /** symlink target or hardlink target path */
  linkpath: string;
  devmajor: number;
  devminor: number;
  /** extended attributes from PAX records, raw values */
  xattrs: Map<string, Buffer>;
}

export interface TarEntry {
  header: TarHeader;
  /**
   * The entry's content, streamed. Read it before asking for the next entry;
   * whatever is left unread is skipped.
   */
  body: AsyncIterable<Buffer>;
}

/** A malformed or unsupported archive. `entry` names the entry when one is known. */
export class TarError extends Error {
  constructor(message: string, readonly entry?: string) {
    super(entry !== undefined ? `${entry}: ${message}` : message);
    this.name = 'TarError';
  }
}

const BLOCK = 512;

/** Pulls exact byte counts out of an async iterable of chunks, without copying more than it must. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  private readonly it: AsyncIterator<Buffer>;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    if (b.length) {
      this.chunks.push(b);
      this.buffered += b.length;
    }
    return true;
  }

  /** Exactly n bytes, or fewer only at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    while (this.buffered < n && (await this.fill()));
    return this.take(Math.min(n, this.buffered));
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0];
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }

  /** Up to n bytes as the chunks come (at least 1 unless the stream ended). */
  async *stream(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill())) return;
      if (this.buffered === 0) continue;
      const k = Math.min(left, this.chunks[0].length);
      const b = this.take(k);
      left -= k;
      yield b;
    }
  }

  /** Stops the source early (a failed unpack): a file stream under it is closed now, not at GC. */
  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.it.return?.();
  }

  /** Consumes everything left (so a hash of the stream sees all of it). */
  async drain(): Promise<void> {
    this.chunks = [];
    this.buffered = 0;
    while (await this.fill()) {
      this.chunks = [];
      this.buffered = 0;
    }
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A file or link name. Node's fs takes names as UTF-8 strings, so a name
 * that is not valid UTF-8 would be created under another name: refused
 * instead, naming it as well as it can be printed.
 */
function utf8Name(b: Buffer, what: string): string {
  try {
    return UTF8.decode(b);
  } catch {
    throw new TarError(`${what} is not valid UTF-8 (such names are not supported)`, b.toString('utf8'));
  }
}

/** A NUL-terminated field; names (what is given) are checked to be UTF-8. */
function cstring(b: Buffer, start: number, len: number, name?: string): string {
  const end = b.indexOf(0, start);
  const bytes = b.subarray(start, end < 0 || end > start + len ? start + len : end);
  return name ? utf8Name(bytes, name) : bytes.toString('utf8');
}

/** An octal field (space/NUL padded), or GNU base-256 when the high bit of the first byte is set. */
function numeric(b: Buffer, start: number, len: number, field: string, name: string): number {
  if (b[start] & 0x80) {
    if (b[start] === 0xff) throw new TarError(`negative ${field}`, name);
    let v = b[start] & 0x7f;
    for (let i = 1; i < len; i++) {
      v = v * 256 + b[start + i];
      if (v > Number.MAX_SAFE_INTEGER) throw new TarError(`${field} too large`, name);
    }
    return v;
  }
  const s = b.toString('latin1', start, start + len).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarError(`invalid ${field} field ${JSON.stringify(s)}`, name);
  return parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = h.toString('latin1', 148, 156).replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]+$/.test(stored)) return false;
  const want = parseInt(stored, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : h[i];
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  // Old writers summed signed chars; both are accepted, as GNU tar does.
  return want === unsigned || want === signed;
}

interface PaxOverrides {
  path?: string;
  linkpath?: string;
  size?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  mtime?: number;
  atime?: number;
  xattrs: Map<string, Buffer>;
}

function paxNumber(value: Buffer, key: string, name: string): number {
  const s = value.toString('utf8');
  if (!/^-?[0-9]+(\.[0-9]+)?$/.test(s)) throw new TarError(`invalid PAX ${key} ${JSON.stringify(s)}`, name);
  const n = Number(s);
  if (!Number.isFinite(n) || Math.abs(n) > Number.MAX_SAFE_INTEGER) throw new TarError(`PAX ${key} out of range`, name);
  return n;
}

/** Parses PAX records ("<len> <key>=<value>\n"; values are bytes: xattrs are binary) into `into`. */
function parsePax(data: Buffer, into: PaxOverrides, name: string): void {
  let off = 0;
  while (off < data.length) {
    if (data[off] === 0) break; // NUL padding some writers leave
    const sp = data.indexOf(0x20, off);
    if (sp < 0 || sp - off > 20) throw new TarError('malformed PAX record', name);
    const lenStr = data.toString('latin1', off, sp);
    if (!/^[0-9]+$/.test(lenStr)) throw new TarError('malformed PAX record length', name);
    const len = parseInt(lenStr, 10);
    const end = off + len;
    if (len <= sp - off + 1 || end > data.length || data[end - 1] !== 0x0a) throw new TarError('malformed PAX record', name);
    const eq = data.indexOf(0x3d, sp + 1);
    if (eq < 0 || eq >= end) throw new TarError('malformed PAX record (no =)', name);
    const key = data.toString('utf8', sp + 1, eq);
    const value = data.subarray(eq + 1, end - 1);
    off = end;
    switch (key) {
      case 'path':
        into.path = utf8Name(value, 'the PAX path');
        break;
      case 'linkpath':
        into.linkpath = utf8Name(value, 'the PAX linkpath');
        break;
      case 'size':
        into.size = paxNumber(value, key, name);
        if (into.size < 0 || !Number.isInteger(into.size)) throw new TarError('invalid PAX size', name);
        break;
      case 'uid':
      case 'gid': {
        const v = paxNumber(value, key, name);
        if (v < 0 || !Number.isInteger(v)) throw new TarError(`invalid PAX ${key}`, name);
        into[key] = v;
        break;
      }
      case 'uname':
      case 'gname':
        into[key] = value.toString('utf8');
        break;
      case 'mtime':
      case 'atime':
        into[key] = paxNumber(value, key, name);
        break;
      default:
        if (key.startsWith('SCHILY.xattr.')) {
          into.xattrs.set(key.slice('SCHILY.xattr.'.length), Buffer.from(value));
        } else if (key.startsWith('LIBARCHIVE.xattr.')) {
          // libarchive: URL-encoded name, base64 value
          into.xattrs.set(decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length)), Buffer.from(value.toString('latin1'), 'base64'));
        } else if (key.startsWith('GNU.sparse.')) {
          throw new TarError('sparse files are not supported', name);
        }
      // Other keys (ctime, charset, comment, SCHILY.dev, ...) do not change what is unpacked.
    }
  }
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file', // contiguous file: a regular file everywhere that matters
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

/** Bounds on meta entries: a long name or a PAX header is small; a hostile one must not exhaust memory. */
const MAX_META = 1 << 20;

/**
 * Reads the archive entry by entry. The source is consumed to its end
 * (trailing blocks after the end-of-archive marker included), so a digest
 * computed over it covers the whole stream.
 */
export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  const r = new ByteReader(source);
  try {
    yield* entries(r);
  } finally {
    await r.close();
  }
}

async function* entries(r: ByteReader): AsyncGenerator<TarEntry> {
  const global: PaxOverrides = { xattrs: new Map() };
  let pax: PaxOverrides = { xattrs: new Map() };
  let longName: string | undefined;
  let longLink: string | undefined;
  let last = '(start of archive)';

  for (;;) {
    const h = await r.read(BLOCK);
    if (h.length === 0) break; // end of stream at a header boundary: accepted as Go's archive/tar does
    if (h.length < BLOCK) throw new TarError(`truncated archive after ${last}`);
    if (h.every((c) => c === 0)) {
      // End of archive (one or two zero blocks); the rest is padding.
      await r.drain();
      break;
    }
    if (!checksumOk(h)) throw new TarError(`invalid header checksum after ${last}`);

    const magic = h.toString('latin1', 257, 263);
    let name = cstring(h, 0, 100, 'the name');
    // POSIX ustar has a prefix; old GNU ("ustar  \0") uses those bytes for other things.
    if (magic === 'ustar\0') {
      const prefix = cstring(h, 345, 155, 'the name');
      if (prefix) name = `${prefix}/${name}`;
    }
    const flag = String.fromCharCode(h[156]);
    const size = numeric(h, 124, 12, 'size', name);

    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > MAX_META) throw new TarError(`${flag} header of ${size} bytes is too large`, name);
      const data = await r.read(size);
      if (data.length < size) throw new TarError('truncated archive', name);
      await r.read((BLOCK - (size % BLOCK)) % BLOCK);
      if (flag === 'x') parsePax(data, pax, name);
      else if (flag === 'g') parsePax(data, global, name);
      else {
        const s = cstring(data, 0, data.length, flag === 'L' ? 'the long name' : 'the long link target');
        if (flag === 'L') longName = s;
        else longLink = s;
      }
      continue;
    }

    const type = TYPES[flag];
    const finalName = pax.path ?? longName ?? name;
    if (!type) {
      const what = flag === 'S' ? 'sparse files are' : flag === 'V' ? 'volume headers are' : flag === 'M' ? 'multi-volume archives are' : `entry type ${JSON.stringify(flag)} is`;
      throw new TarError(`${what} not supported`, finalName);
    }
    const header: TarHeader = {
      path: finalName,
      type,
      mode: numeric(h, 100, 8, 'mode', finalName) & 0o7777,
      uid: pax.uid ?? global.uid ?? numeric(h, 108, 8, 'uid', finalName),
      gid: pax.gid ?? global.gid ?? numeric(h, 116, 8, 'gid', finalName),
      uname: pax.uname ?? global.uname ?? cstring(h, 265, 32),
      gname: pax.gname ?? global.gname ?? cstring(h, 297, 32),
      size: pax.size ?? size,
      mtime: pax.mtime ?? global.mtime ?? numeric(h, 136, 12, 'mtime', finalName),
      atime: pax.atime ?? global.atime,
      linkpath: pax.linkpath ?? longLink ?? cstring(h, 157, 100, 'the link target'),
      devmajor: type === 'char' || type === 'block' ? numeric(h, 329, 8, 'devmajor', finalName) : 0,
      devminor: type === 'char' || type === 'block' ? numeric(h, 337, 8, 'devminor', finalName) : 0,
      xattrs: new Map([...global.xattrs, ...pax.xattrs]),
    };
    pax = { xattrs: new Map() };
    longName = undefined;
    longLink = undefined;
    last = finalName;

    // Only regular files carry data: the size of a link, directory or device is
    // ignored (POSIX; Go's archive/tar does the same), nothing follows its header.
    const dataSize = type === 'file' ? header.size : 0;
    header.size = dataSize;
    let consumed = 0;
    const body = (async function* () {
      for await (const b of r.stream(dataSize - consumed)) {
        consumed += b.length;
        yield b;
      }
    })();
    yield { header, body };
    // Skip what the consumer left, then the padding to the block boundary.
    while (consumed < dataSize) {
      const b = await r.read(Math.min(dataSize - consumed, 1 << 20));
      if (b.length === 0) break;
      consumed += b.length;
    }
    if (consumed < dataSize) throw new TarError('truncated archive (entry data cut short)', finalName);
    const pad = (BLOCK - (dataSize % BLOCK)) % BLOCK;
    if (pad && (await r.read(pad)).length < pad) throw new TarError('truncated archive (padding cut short)', finalName);
  }
}

/**
 * User-facing errors. Anything thrown as a UserError is printed as one line
 * (`tsrun: <message>`) with a non-zero exit and no stack trace; anything else
 * is a bug and keeps its stack for --debug.
 */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'UserError';
  }
}

/** A config.json / process.json problem located by a JSON path, e.g. `linux.namespaces[2].type`. */
export class ConfigError extends UserError {
  constructor(readonly file: string, readonly path: string, readonly problem: string) {
    super(`${file}: ${path ? path + ': ' : ''}${problem}`);
    this.name = 'ConfigError';
  }
}

/** Formats an errno-style failure the way runc users expect: "<what>: <strerror>". */
export function errnoMessage(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && typeof e.syscall === 'string') {
    const desc = e.message.replace(/^[A-Z]+: /, '').replace(/, .*$/, '');
    return `${desc}${e.path ? ` (${e.path})` : ''}`;
  }
  return e instanceof Error ? e.message : String(err);
}

/** An error as its one line on stderr shows it (commander's own start with "error: "). */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message.replace(/^error: /, '');
  return String(e);
}

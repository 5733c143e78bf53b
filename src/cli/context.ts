import { InvalidArgumentError } from 'commander';
/** What every command gets from the global flags. */
import { UserError } from '../errors.js';
import { Store } from '../lifecycle/store.js';

export interface GlobalOptions {
  root: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug: boolean;
  systemdCgroup: boolean;
}

export interface Context {
  global: GlobalOptions;
  store: Store;
}

/** Process exit code a command asks for (run passes the container's through). */
export class ExitRequest {
  constructor(readonly code: number) {}
}

export function parseNonNegativeInt(flag: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError("must be a non-negative integer");
    return Number(v);
  };
}

/** Runs a container command so its errors name it: "create c1: mount proc on /proc: ...". */
export async function naming<T>(command: string, id: string, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof UserError && !(e instanceof NamedError)) throw new NamedError(`${command} ${id}: ${e.message}`, e.exitCode);
    throw e;
  }
}

class NamedError extends UserError {}

/**
 * Container ids and names, as Docker has them: a 64-hex id shown as its
 * first 12 characters, a unique name (given, or generated adjective_noun),
 * and lookup by full id, name, or a unique id prefix.
 */
import { randomBytes } from 'node:crypto';
import { UserError } from '../../errors.js';

export const newId = (): string => randomBytes(32).toString('hex');
export const shortId = (id: string): string => id.slice(0, 12);

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** A user-given name, without Docker's optional leading "/". */
export function validateName(name: string): string {
  const n = name.startsWith('/') ? name.slice(1) : name;
  if (!NAME_RE.test(n)) throw new UserError(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`, 125);
  return n;
}

export function nameConflict(name: string, holder: string): UserError {
  return new UserError(
    `Conflict. The container name "/${name}" is already in use by container "${holder}". You have to remove (or rename) that container to be able to reuse that name.`,
    125,
  );
}

// A few of Docker's words: generated names only need to be readable and unlikely to clash.
const LEFT = ['admiring', 'agitated', 'bold', 'brave', 'clever', 'cool', 'dazzling', 'eager', 'epic', 'festive', 'focused', 'gallant', 'happy', 'jolly', 'keen', 'loving', 'modest', 'nifty', 'quirky', 'serene', 'sharp', 'stoic', 'trusting', 'vibrant', 'wizardly', 'zealous'];
const RIGHT = ['albattani', 'babbage', 'bohr', 'curie', 'darwin', 'dijkstra', 'einstein', 'euler', 'fermat', 'galileo', 'hopper', 'hypatia', 'kepler', 'knuth', 'lovelace', 'mccarthy', 'newton', 'noether', 'pascal', 'ritchie', 'shannon', 'tesla', 'thompson', 'turing', 'wozniak', 'yonath'];

export function generateName(taken: (n: string) => boolean): string {
  for (let i = 0; ; i++) {
    const r = randomBytes(2);
    const base = `${LEFT[r[0] % LEFT.length]}_${RIGHT[r[1] % RIGHT.length]}`;
    const name = i < 10 ? base : `${base}${i}`;
    if (!taken(name)) return name;
  }
}

export interface Named {
  id: string;
  name: string;
}

/** Docker's order: full id, then exact name, then a unique id prefix. */
export function resolveRef<T extends Named>(all: T[], ref: string): T {
  const want = ref.startsWith('/') ? ref.slice(1) : ref;
  const byId = all.find((c) => c.id === want);
  if (byId) return byId;
  const byName = all.find((c) => c.name === want);
  if (byName) return byName;
  if (/^[0-9a-f]+$/.test(want)) {
    const hits = all.filter((c) => c.id.startsWith(want));
    if (hits.length === 1) return hits[0];
    if (hits.length > 1) throw new UserError(`multiple IDs found with provided prefix: ${ref}`, 1);
  }
  throw new UserError(`No such container: ${ref}`, 1);
}

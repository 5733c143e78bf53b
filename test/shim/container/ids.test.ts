import t from 'tap';
import { generateName, newId, resolveRef, shortId, validateName } from '../../../src/shim/container/ids.js';

t.test('ids are 64 hex, unique, shown as 12', async (t) => {
  const a = newId();
  t.match(a, /^[0-9a-f]{64}$/);
  t.not(a, newId());
  t.equal(shortId(a), a.slice(0, 12));
});

t.test('names: Docker charset, optional leading slash', async (t) => {
  t.equal(validateName('web'), 'web');
  t.equal(validateName('/web-1.a_b'), 'web-1.a_b');
  for (const bad of ['', 'a', '-web', 'we b', 'wé', 'a/b', '.x']) {
    t.throws(() => validateName(bad), { message: `Invalid container name (${bad}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`, exitCode: 125 }, bad);
  }
});

t.test('generated names avoid taken ones', async (t) => {
  const taken = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const n = generateName((x) => taken.has(x));
    t.notOk(taken.has(n));
    t.match(n, /^[a-z]+_[a-z]+\d*$/);
    taken.add(n);
  }
});

t.test('lookup: full id, then name, then unique prefix', async (t) => {
  const a = { id: 'abc' + '0'.repeat(61), name: 'web' };
  const b = { id: 'abd' + '0'.repeat(61), name: 'abc' };
  const all = [a, b];
  t.equal(resolveRef(all, a.id), a);
  t.equal(resolveRef(all, 'web'), a);
  t.equal(resolveRef(all, '/web'), a);
  t.equal(resolveRef(all, 'abc'), b, 'an exact name wins over an id prefix, as in Docker');
  t.equal(resolveRef(all, 'abd'), b);
  t.throws(() => resolveRef(all, 'ab'), { message: 'multiple IDs found with provided prefix: ab' });
  t.throws(() => resolveRef(all, 'nope'), { message: 'No such container: nope' });
  t.throws(() => resolveRef(all, 'f'), { message: 'No such container: f' });
});

import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { defaultSpec } from '../oci/default-spec.js';
import { UserError } from '../errors.js';

export function register(program: Command): void {
  program
    .command('spec')
    .description('write a default config.json (as `runc spec` does)')
    .option('-b, --bundle <path>', 'directory to write config.json in', '.')
    .option('--rootless', 'a config for a container run by an unprivileged user')
    .action((o) => {
      const file = path.join(o.bundle, 'config.json');
      if (fs.existsSync(file)) throw new UserError(`File ${file} exists. Remove it first`);
      try {
        fs.writeFileSync(file, JSON.stringify(defaultSpec({ rootless: !!o.rootless }), null, '\t'));
      } catch (e) {
        throw new UserError(`cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    });
}

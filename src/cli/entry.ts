/** Entry point of the bundled CLI (dist/tsrun.js). */
import { main } from './main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`tsrun: internal error: ${e}\n`);
    process.exitCode = 1;
  },
);

/**
 * Entry point of the bundled shim (dist/tsctl.js). Each command group
 * registers itself with addRegistrar() when imported here.
 */
import { main } from './main.js';
import './images.js';
import './containers.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`tsctl: internal error: ${e}\n`);
    process.exit(1);
  },
);

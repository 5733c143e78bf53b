/** Entry point of the bundled CLI (dist/tsrun.js). */
import { exitProcess } from '../bench/exit.js';
import { main } from './main.js';

// Exit as soon as the command is done: a handle such as the terminal's stdin
// must not keep tsrun alive after the container has gone. stdout and stderr
// writes are synchronous on Linux, so nothing is lost.
main(process.argv.slice(2)).then(
  (code) => exitProcess(code),
  (e) => {
    process.stderr.write(`tsrun: internal error: ${e}\n`);
    process.exit(1);
  },
);

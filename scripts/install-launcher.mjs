// bin/tsrun is the native launcher (native/launcher.cc) node-gyp just built:
// copied, not linked, because it finds dist/ next to itself through
// /proc/self/exe. Replaced atomically: a tsrun starting meanwhile runs the
// old binary or the new one.
import { copyFileSync, renameSync } from 'node:fs';

const tmp = `bin/tsrun.${process.pid}.tmp`;
copyFileSync('build/Release/tsrun-launcher', tmp);
renameSync(tmp, 'bin/tsrun');

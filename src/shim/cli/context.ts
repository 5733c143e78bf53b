/**
 * What every tsctl command gets from the global flags. The shim drives the
 * runtime as an engine does: through the `tsrun` binary (`runtime`), never
 * by importing the runtime's lifecycle internals.
 */
import path from 'node:path';

export interface ShimGlobals {
  /** the shim's store: images, snapshots, containers, volumes */
  root: string;
  /** the tsrun binary the shim runs containers with */
  runtime: string;
  /** tsrun's --root for the shim's containers */
  runtimeRoot: string;
  debug: boolean;
}

export const DEFAULT_SHIM_ROOT = process.env.TSCTL_ROOT || '/var/lib/tsrun';

/** bin/tsrun of this checkout (dist/tsctl.js sits in dist/, next to bin/). */
export const DEFAULT_RUNTIME = process.env.TSCTL_RUNTIME || path.resolve(__dirname, '..', 'bin', 'tsrun');

export type ShimContext = () => ShimGlobals;

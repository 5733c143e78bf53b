/**
 * `create` (and the first half of `run`): flags and the image's config become
 * a container record, with its name reserved, volumes made and the image's
 * snapshots unpacked. Everything is checked before anything is written, and
 * a failure after that removes what was made.
 */
import fs from 'node:fs';
import { UserError } from '../../errors.js';
import { computeCaps, parseCpus, parseEnvArg, parseEnvFile, parseMemory, parsePidsLimit, parseSignal, parseVolume } from './flags.js';
import { generateName, newId, validateName } from './ids.js';
import { containerCommand, containerEnv, resolveImage } from './images.js';
import { parseNetwork, parsePorts } from './network.js';
import { type ContainerRecord, containerDir, nameTaken, releaseName, reserveName, saveRecord } from './store.js';
import { prepareVolumes } from './volumes.js';

/** The flags `create` and `run` share, as commander gives them. */
export interface CreateFlags {
  name?: string;
  interactive?: boolean;
  tty?: boolean;
  env: string[];
  envFile: string[];
  volume: string[];
  publish: string[];
  publishAll?: boolean;
  rm?: boolean;
  workdir?: string;
  user?: string;
  hostname?: string;
  entrypoint?: string;
  memory?: string;
  cpus?: string;
  pidsLimit?: string;
  network?: string;
  readOnly?: boolean;
  capAdd: string[];
  capDrop: string[];
  label?: string[];
}

const lookupEnv = (k: string): string | undefined => process.env[k];

export async function createContainer(root: string, f: CreateFlags, imageRef: string, command: string[]): Promise<ContainerRecord> {
  // every flag is checked before anything is made
  const network = parseNetwork(f.network);
  const envFiles = f.envFile.flatMap((file) => {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new UserError(`open ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`, 125);
    }
    return parseEnvFile(text, file, lookupEnv);
  });
  const envArgs = f.env.map((e) => parseEnvArg(e, lookupEnv)).filter((e): e is string => e !== undefined);
  const volumes = f.volume.map(parseVolume);
  const memory = f.memory ? parseMemory(f.memory) : 0;
  const nanoCpus = f.cpus ? parseCpus(f.cpus) : 0;
  const pidsLimit = f.pidsLimit ? parsePidsLimit(f.pidsLimit) : 0;
  computeCaps(f.capAdd, f.capDrop); // validates the names
  // Docker: -p with --network none is a conflict; with host the ports are discarded (a warning)
  if (network === 'none' && f.publish.length) throw new UserError('conflicting options: port publishing and the container type network mode', 125);
  if (network === 'host' && (f.publish.length || f.publishAll)) process.stderr.write('WARNING: Published ports are discarded when using host network mode\n');
  if (f.workdir !== undefined && !f.workdir.startsWith('/')) throw new UserError(`the working directory '${f.workdir}' is invalid, it needs to be an absolute path`, 125);
  const name = f.name !== undefined ? validateName(f.name) : undefined;
  if (f.hostname !== undefined && !/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$/.test(f.hostname)) throw new UserError(`invalid hostname format: ${f.hostname}`, 125);

  const image = await resolveImage(root, imageRef);
  const ic = image.config.config ?? {};
  const argv = containerCommand(image.config, f.entrypoint, command);
  const exposed = Object.keys(ic.ExposedPorts ?? {});
  const ports = network === 'bridge' ? parsePorts(f.publish, f.publishAll ? exposed : []) : [];
  const stopSignal = ic.StopSignal ? parseSignal(ic.StopSignal) : 'SIGTERM';

  const id = newId();
  const finalName = name ?? generateName((n) => nameTaken(root, n));
  reserveName(root, finalName, id);
  const dir = containerDir(root, id);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const mounts = prepareVolumes(root, volumes, Object.keys(ic.Volumes ?? {}));
    const rec: ContainerRecord = {
      id,
      name: finalName,
      created: new Date().toISOString(),
      image: imageRef,
      imageId: image.id,
      chainIds: image.chainIds,
      path: argv[0],
      args: argv.slice(1),
      config: {
        hostname: f.hostname ?? (network === 'host' ? fs.readFileSync('/proc/sys/kernel/hostname', 'utf8').trim() : id.slice(0, 12)),
        user: f.user ?? ic.User ?? '',
        env: containerEnv(image.config, [...envFiles, ...envArgs]),
        workingDir: f.workdir ?? ic.WorkingDir ?? '',
        entrypoint: f.entrypoint !== undefined ? (f.entrypoint ? [f.entrypoint] : null) : (ic.Entrypoint ?? null),
        cmd: command.length ? command : f.entrypoint !== undefined ? null : (ic.Cmd ?? null),
        tty: !!f.tty,
        openStdin: !!f.interactive,
        stopSignal,
        labels: { ...(ic.Labels ?? {}) },
        exposedPorts: exposed,
      },
      hostConfig: {
        network,
        ports,
        publishAll: !!f.publishAll,
        mounts,
        autoRemove: !!f.rm,
        readOnly: !!f.readOnly,
        memory,
        nanoCpus,
        pidsLimit,
        capAdd: f.capAdd,
        capDrop: f.capDrop,
      },
      state: { restartCount: 0 },
    };
    saveRecord(root, rec);
    return rec;
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    releaseName(root, finalName, id);
    throw e;
  }
}

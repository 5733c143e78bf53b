/**
 * tsctl's image commands, with Docker's flags and output: pull, images,
 * rmi, image inspect (and image ls/rm/pull aliases), load, save, tag.
 */
import type { Command } from 'commander';
import { UserError } from '../../errors.js';
import { loadArchive, loadStdin } from '../image/load.js';
import { humanSize, Progress } from '../image/progress.js';
import { pullImage } from '../image/pull.js';
import { parsePlatform } from '../image/registry.js';
import { familiarName, familiarString, parseReference, repository } from '../image/reference.js';
import { saveImages } from '../image/save.js';
import { ImageStore, repoDigestNames, repoTags, type StoredImage } from '../image/store.js';
import type { ImageConfig } from '../image/types.js';
import { addRegistrar } from './main.js';
import type { ShimContext } from './context.js';

const collect = (v: string, prev: string[]) => [...prev, v];

function insecureRegistries(flags: string[]): string[] {
  return [...flags, ...(process.env.TSCTL_INSECURE_REGISTRIES ?? '').split(',').map((s) => s.trim()).filter(Boolean)];
}

/** Docker's "2 hours ago" (go-units HumanDuration). */
export function humanAgo(iso: string | undefined, now = Date.now()): string {
  const t = iso ? Date.parse(iso) : NaN;
  if (Number.isNaN(t) || t <= 0) return 'N/A';
  const s = Math.max(0, (now - t) / 1000);
  const d = (n: number, unit: string) => `${Math.floor(n)} ${unit}${Math.floor(n) === 1 ? '' : 's'} ago`;
  if (s < 1) return 'Less than a second ago';
  if (s < 60) return d(s, 'second');
  if (s < 120) return 'About a minute ago';
  if (s < 3600) return d(s / 60, 'minute');
  if (s < 7200) return 'About an hour ago';
  if (s < 48 * 3600) return d(s / 3600, 'hour');
  if (s < 14 * 86400) return d(s / 86400, 'day');
  if (s < 60 * 86400) return d(s / 7 / 86400, 'week');
  if (s < 730 * 86400) return d(s / 30 / 86400, 'month');
  return d(s / 365 / 86400, 'year');
}

/** Docker's tabwriter output: columns padded to the widest cell plus 3. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd()).join('\n') + '\n';
}

function configOf(store: ImageStore, r: StoredImage): ImageConfig | undefined {
  try {
    return store.config(r);
  } catch {
    return undefined;
  }
}

/** Rows of `tsctl images`: one per name; one `<none>` row for an image without any. */
function imageRows(store: ImageStore, filter?: string): { repo: string; tag: string; digest: string; image: StoredImage; created?: string }[] {
  let want: { repo: string; tag?: string } | undefined;
  if (filter) {
    const hasTag = /:[^/]*$/.test(filter);
    const r = parseReference(filter);
    want = { repo: repository(r), tag: hasTag ? r.tag : undefined };
  }
  const rows: { repo: string; tag: string; digest: string; image: StoredImage; created?: string }[] = [];
  for (const image of store.list()) {
    const created = configOf(store, image)?.created;
    const digests = new Map(image.repoDigests.map((d) => [repository(parseReference(d)), parseReference(d).digest ?? '']));
    const names = image.names.map((n) => parseReference(n));
    if (names.length === 0) {
      const byDigest = image.repoDigests.map((d) => parseReference(d));
      if (want && !byDigest.some((r) => repository(r) === want!.repo && !want!.tag)) continue;
      rows.push({ repo: byDigest[0] ? familiarName(byDigest[0]) : '<none>', tag: '<none>', digest: byDigest[0]?.digest ?? '<none>', image, created });
      continue;
    }
    for (const r of names) {
      if (want && (repository(r) !== want.repo || (want.tag !== undefined && r.tag !== want.tag))) continue;
      rows.push({ repo: familiarName(r), tag: r.tag ?? '<none>', digest: digests.get(repository(r)) ?? '<none>', image, created });
    }
  }
  return rows.sort((a, b) => (b.created ?? '').localeCompare(a.created ?? '') || a.repo.localeCompare(b.repo) || a.tag.localeCompare(b.tag));
}

/** `docker image inspect`'s object for one image. */
function inspectObject(store: ImageStore, r: StoredImage): Record<string, unknown> {
  const c = store.config(r);
  return {
    Id: r.id,
    RepoTags: repoTags(r),
    RepoDigests: repoDigestNames(r),
    Parent: '',
    Comment: c.history?.[c.history.length - 1]?.comment ?? '',
    Created: c.created ?? '',
    Author: c.author ?? '',
    Config: {
      User: '',
      ExposedPorts: undefined,
      Env: null,
      Cmd: null,
      Volumes: null,
      WorkingDir: '',
      Entrypoint: null,
      Labels: null,
      ...c.config,
    },
    Architecture: c.architecture,
    Variant: c.variant,
    Os: c.os,
    Size: r.unpackedSize ?? r.size,
    RootFS: { Type: 'layers', Layers: c.rootfs.diff_ids },
    Metadata: { LastTagTime: r.added },
    Descriptor: { mediaType: r.manifestMediaType, digest: r.manifestDigest },
  };
}

function registerImages(program: Command, ctx: ShimContext): void {
  const store = () => new ImageStore(ctx().root);

  const pull = (cmd: Command) =>
    cmd
      .description('download an image from a registry (and unpack it)')
      .argument('<name>', 'NAME[:TAG|@DIGEST]')
      .option('-q, --quiet', 'print only the image reference')
      .option('--platform <os/arch[/variant]>', 'the platform to pick from a multi-platform image (default linux/amd64)')
      .option('--insecure-registry <host>', 'allow plain http / unverified TLS to this registry (repeatable; loopback hosts always are)', collect, [])
      .action(async (name: string, o: { quiet?: boolean; platform?: string; insecureRegistry: string[] }) => {
        const progress = new Progress(process.stderr, undefined, !!o.quiet);
        const platform = o.platform ? parsePlatform(o.platform) : undefined;
        const { image } = await pullImage(ctx().root, name, { progress, platform, insecure: insecureRegistries(o.insecureRegistry) });
        const ref = parseReference(name);
        process.stdout.write(`${image.names.find((n) => n.startsWith(`${repository(ref)}:`) && ref.tag !== undefined) ?? `${repository(ref)}@${ref.digest ?? image.manifestDigest}`}\n`);
      });

  const list = (cmd: Command) =>
    cmd
      .description('list images')
      .argument('[reference]', 'only REPOSITORY[:TAG]')
      .option('-q, --quiet', 'only image ids')
      .option('-a, --all', 'all images (there are no intermediate ones: the same list)')
      .option('--digests', 'show digests')
      .option('--no-trunc', 'full image ids')
      .action((filter: string | undefined, o: { quiet?: boolean; digests?: boolean; trunc: boolean }) => {
        const s = store();
        const rows = imageRows(s, filter);
        const id = (r: StoredImage) => (o.trunc ? r.id.slice(7, 19) : r.id);
        if (o.quiet) {
          const seen = new Set<string>();
          for (const r of rows) if (!seen.has(r.image.id) && seen.add(r.image.id)) process.stdout.write(`${id(r.image)}\n`);
          return;
        }
        const head = ['REPOSITORY', 'TAG', ...(o.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE'];
        const body = rows.map((r) => [r.repo, r.tag, ...(o.digests ? [r.digest] : []), id(r.image), humanAgo(r.created), humanSize(r.image.unpackedSize ?? r.image.size)]);
        process.stdout.write(table([head, ...body]));
      });

  const rmi = (cmd: Command) =>
    cmd
      .description('remove images')
      .argument('<image...>')
      .option('-f, --force', 'remove even if tagged in several repositories or used by a container')
      .action(async (refs: string[], o: { force?: boolean }) => {
        const s = store();
        let failed: UserError | undefined;
        for (const ref of refs) {
          try {
            for (const l of await s.remove(ref, !!o.force)) process.stdout.write(`${l}\n`);
          } catch (e) {
            if (!(e instanceof UserError)) throw e;
            // docker goes on with the other images, then fails
            if (failed) process.stderr.write(`tsctl: ${failed.message}\n`);
            failed = e;
          }
        }
        if (failed) throw failed;
      });

  const inspect = (cmd: Command) =>
    cmd
      .description('show images as JSON')
      .argument('<image...>')
      .action((refs: string[]) => {
        const s = store();
        const out: Record<string, unknown>[] = [];
        let missing: string | undefined;
        for (const ref of refs) {
          const r = s.find(ref);
          if (r) out.push(inspectObject(s, r));
          else missing ??= ref;
        }
        process.stdout.write(`${JSON.stringify(out, null, 4)}\n`);
        if (missing) throw new UserError(`No such image: ${missing}`);
      });

  const load = (cmd: Command) =>
    cmd
      .description('load images from a docker-archive or OCI archive / layout (`docker save` output)')
      .option('-i, --input <file>', 'the archive (tar, tar.gz) or OCI layout directory (default: stdin)')
      .option('-q, --quiet', 'print nothing but errors')
      .action(async (o: { input?: string; quiet?: boolean }) => {
        if (!o.input && process.stdin.isTTY) throw new UserError('requested load from stdin, but stdin is empty');
        const images = o.input ? await loadArchive(ctx().root, o.input) : await loadStdin(ctx().root);
        if (o.quiet) return;
        for (const { image, names } of images) {
          if (names.length) for (const n of names) process.stdout.write(`Loaded image: ${familiarString(parseReference(n))}\n`);
          else process.stdout.write(`Loaded image ID: ${image.id}\n`);
        }
      });

  const save = (cmd: Command) =>
    cmd
      .description('write images to a docker-archive tar (what `docker load` and `tsctl load` read)')
      .argument('<image...>')
      .option('-o, --output <file>', 'write to this file (default: stdout, if it is not a terminal)')
      .action(async (refs: string[], o: { output?: string }) => {
        if (!o.output && process.stdout.isTTY) throw new UserError('cowardly refusing to save to a terminal. Use the -o flag or redirect');
        await saveImages(ctx().root, refs, o.output);
      });

  const tag = (cmd: Command) =>
    cmd
      .description('add a name to an image')
      .argument('<source>', 'SOURCE_IMAGE[:TAG]')
      .argument('<target>', 'TARGET_IMAGE[:TAG]')
      .action(async (source: string, target: string) => {
        await store().tag(source, target);
      });

  pull(program.command('pull'));
  list(program.command('images'));
  rmi(program.command('rmi'));
  load(program.command('load'));
  save(program.command('save'));
  tag(program.command('tag'));
  const image = program.command('image').description('manage images');
  image
    .command('prune')
    .description('remove images without a name that no container uses, and what only they used')
    .option('-f, --force', 'do not ask (tsctl never asks)')
    .action(async () => {
      const { deleted, bytes } = await store().prune();
      if (deleted.length) process.stdout.write(`Deleted Images:\n${deleted.map((d) => `deleted: ${d}\n`).join('')}\n`);
      process.stdout.write(`Total reclaimed space: ${humanSize(bytes)}\n`);
    });
  inspect(image.command('inspect'));
  list(image.command('ls').alias('list'));
  rmi(image.command('rm').alias('remove'));
  pull(image.command('pull'));
  load(image.command('load'));
  save(image.command('save'));
  tag(image.command('tag'));
  for (const c of image.commands) c.exitOverride().configureOutput({ outputError: () => undefined });
}

addRegistrar(registerImages);

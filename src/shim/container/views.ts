/**
 * What `ps` and `inspect` show, in Docker's shapes: the ps table (quoted,
 * truncated COMMAND, `X ago`, STATUS, PORTS, NAMES) and inspect's JSON, plus
 * the `{{.Path.To.Field}}` subset of Go templates that `inspect -f` users
 * reach for.
 */
import { UserError } from '../../errors.js';
import { type DerivedState, humanDuration, statusText } from './status.js';
import type { ContainerRecord, PortBinding } from './store.js';

export function formatPorts(ports: PortBinding[]): string {
  return ports.map((p) => `${p.hostIp}:${p.hostPort}->${p.containerPort}/${p.proto}`).join(', ');
}

/** Docker's COMMAND column: the command line in quotes, cut at 20 characters with "…". */
export function commandColumn(rec: ContainerRecord): string {
  const cmd = [rec.path, ...rec.args].join(' ');
  return `"${cmd.length > 20 ? `${cmd.slice(0, 19)}…` : cmd}"`;
}

export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => [...r[i]].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] + 3 - ([...c].length - c.length)))).join('').trimEnd() + '\n').join('');
}

export function psRow(rec: ContainerRecord, st: DerivedState, now = Date.now()): string[] {
  return [
    rec.id.slice(0, 12),
    rec.image,
    commandColumn(rec),
    `${humanDuration(now - Date.parse(rec.created))} ago`,
    statusText(st, rec, now),
    st.status === 'running' ? formatPorts(publishedPorts(rec)) : '',
    rec.name,
  ];
}

export const PS_HEADER = ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'];

/** The ports as set up (host ports picked for 0), else as asked for. */
export function publishedPorts(rec: ContainerRecord): PortBinding[] {
  const n = rec.network as { ports?: PortBinding[] } | undefined;
  return Array.isArray(n?.ports) ? n.ports : rec.hostConfig.ports;
}

export function inspectView(rec: ContainerRecord, st: DerivedState): Record<string, unknown> {
  const running = st.status === 'running';
  const ports: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of publishedPorts(rec)) (ports[`${p.containerPort}/${p.proto}`] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.hostPort) });
  const net = (rec.network ?? {}) as { ip?: string; address?: string; gateway?: string; mac?: string };
  return {
    Id: rec.id,
    Created: rec.created,
    Path: rec.path,
    Args: rec.args,
    State: {
      Status: st.status,
      Running: running,
      Paused: false,
      Restarting: false,
      OOMKilled: false,
      Dead: st.lost,
      Pid: running ? (rec.state.pid ?? 0) : 0,
      ExitCode: st.status === 'exited' ? st.exitCode : 0,
      Error: rec.state.error ?? '',
      StartedAt: rec.state.startedAt ?? '0001-01-01T00:00:00Z',
      FinishedAt: (st.status === 'exited' ? st.finishedAt : undefined) ?? '0001-01-01T00:00:00Z',
    },
    Image: rec.imageId,
    Name: `/${rec.name}`,
    RestartCount: rec.state.restartCount,
    Driver: rec.rootfsKind ?? 'overlay',
    Mounts: rec.hostConfig.mounts.map((m) => ({
      Type: m.volume ? 'volume' : 'bind',
      ...(m.volume ? { Name: m.volume } : {}),
      Source: m.source,
      Destination: m.destination,
      Mode: m.readOnly ? 'ro' : '',
      RW: !m.readOnly,
    })),
    Config: {
      Hostname: rec.config.hostname,
      User: rec.config.user,
      Tty: rec.config.tty,
      OpenStdin: rec.config.openStdin,
      Env: rec.config.env,
      Cmd: rec.config.cmd,
      Entrypoint: rec.config.entrypoint,
      Image: rec.image,
      WorkingDir: rec.config.workingDir,
      Labels: rec.config.labels,
      StopSignal: rec.config.stopSignal,
      ExposedPorts: Object.fromEntries(rec.config.exposedPorts.map((p) => [p, {}])),
    },
    HostConfig: {
      NetworkMode: rec.hostConfig.network,
      PortBindings: Object.fromEntries(rec.hostConfig.ports.map((p) => [`${p.containerPort}/${p.proto}`, [{ HostIp: p.hostIp, HostPort: p.hostPort ? String(p.hostPort) : '' }]])),
      PublishAllPorts: rec.hostConfig.publishAll,
      AutoRemove: rec.hostConfig.autoRemove,
      ReadonlyRootfs: rec.hostConfig.readOnly,
      Memory: rec.hostConfig.memory,
      NanoCpus: rec.hostConfig.nanoCpus,
      PidsLimit: rec.hostConfig.pidsLimit || null,
      CapAdd: rec.hostConfig.capAdd,
      CapDrop: rec.hostConfig.capDrop,
      Binds: rec.hostConfig.mounts.filter((m) => !m.anonymous).map((m) => `${m.volume ?? m.source}:${m.destination}${m.readOnly ? ':ro' : ''}`),
    },
    NetworkSettings: {
      Ports: running ? ports : {},
      IPAddress: running ? (net.ip ?? net.address ?? '') : '',
      Gateway: running ? (net.gateway ?? '') : '',
      MacAddress: running ? (net.mac ?? '') : '',
    },
  };
}

/** `{{.State.Status}}`, `{{.Name}}`, `{{json .Config}}`: field paths, optionally through json. */
export function renderTemplate(tpl: string, obj: unknown): string {
  return tpl.replace(/\{\{\s*(json\s+)?((?:\.[A-Za-z0-9_]+)+|\.)\s*\}\}/g, (_m, json: string | undefined, p: string) => {
    let v: unknown = obj;
    for (const k of p.split('.').filter(Boolean)) {
      if (v === null || typeof v !== 'object') throw new UserError(`template: can't evaluate field ${k}`);
      v = (v as Record<string, unknown>)[k];
    }
    if (json) return JSON.stringify(v ?? null);
    if (v === undefined || v === null) return '<no value>';
    if (Array.isArray(v)) return `[${v.join(' ')}]`;
    return typeof v === 'object' ? `map[${Object.entries(v as object).map(([k, x]) => `${k}:${String(x)}`).join(' ')}]` : String(v);
  });
}

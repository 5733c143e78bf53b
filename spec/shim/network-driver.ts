/**
 * Runs inside a test's sandbox network namespace (`ip netns exec NS node
 * <this, bundled>`): the network API as the shim would call it there, and
 * the clients the network specs and bench/portfwd.sh use. One JSON line on
 * stdout; exit 1 with the error on stderr.
 *
 *   setup '<SetupOptions json>'          → NetworkRecord
 *   teardown ROOT CID                    → {}
 *   files ROOT CID HOSTNAME MODE         → NetworkFiles
 *   http HOST PORT N                     → { ok, failed, bodies: {body: count}, errors }
 *                                          (N parallel HTTP/1.0 GETs of /)
 *   udp HOST PORT MESSAGE                → { reply }
 *   udp-echo PORT                        → serves UDP echo on 0.0.0.0:PORT until killed (for a
 *                                          container's namespace, via nsenter)
 *   cycle ROOT N                         → { setup_ms: [...], teardown_ms: [...] }: N times, a fresh
 *                                          namespace (unshare --net sleep) set up with one published
 *                                          port beside a container that keeps the bridge, then torn down
 */
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import { containerNetworkFiles, setupNetwork, teardownNetwork, type NetworkMode, type SetupOptions } from '../../src/shim/network/index.js';

function httpGet(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => s.destroy(new Error('timed out')), timeoutMs);
    s.on('connect', () => s.write(`GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`));
    s.on('data', (b: Buffer) => chunks.push(b));
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const body = text.split('\r\n\r\n').slice(1).join('\r\n\r\n');
      if (!/^HTTP\/1\.[01] 200/.test(text)) reject(new Error(`not a 200: ${text.slice(0, 80)}`));
      else resolve(body);
    });
  });
}

async function http(host: string, port: number, n: number): Promise<object> {
  // busybox httpd listens with a backlog of 9: of 100 SYNs at once, some are
  // dropped and retransmitted by the kernel (after 1, 2, 4, 8, 16 s), so each
  // connection gets a minute, not a few seconds.
  const results = await Promise.allSettled(Array.from({ length: n }, () => httpGet(host, port, 60_000)));
  const bodies: Record<string, number> = {};
  const errors: string[] = [];
  for (const r of results) {
    if (r.status === 'fulfilled') bodies[r.value] = (bodies[r.value] ?? 0) + 1;
    else if (errors.length < 5) errors.push(String((r.reason as Error).message));
  }
  const ok = results.filter((r) => r.status === 'fulfilled').length;
  return { ok, failed: n - ok, bodies, errors };
}

function udp(host: string, port: number, message: string): Promise<object> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    let tries = 0;
    // UDP may be lost (the first packet also races the server's bind): resend, bounded.
    const send = () => {
      if (tries++ >= 10) {
        clearInterval(timer);
        s.close();
        reject(new Error(`no UDP reply from ${host}:${port} after 10 tries`));
        return;
      }
      s.send(message, port, host);
    };
    const timer = setInterval(send, 300);
    s.on('message', (m) => {
      clearInterval(timer);
      s.close();
      resolve({ reply: m.toString('utf8') });
    });
    s.on('error', (e) => {
      clearInterval(timer);
      reject(e);
    });
    send();
  });
}

function udpEcho(port: number): void {
  const s = dgram.createSocket('udp4');
  s.on('message', (m, from) => s.send(Buffer.concat([Buffer.from('echo:'), m]), from.port, from.address));
  s.bind(port, '0.0.0.0', () => process.stdout.write(`${JSON.stringify({ listening: port })}\n`));
}

/** A process in a new network namespace (a stand-in container), until killed. */
async function netnsHolder(): Promise<{ path: string; kill: () => void }> {
  const c = spawn('unshare', ['--net', 'sleep', '120'], { stdio: 'ignore' });
  const path = `/proc/${c.pid}/ns/net`;
  // bounded wait until unshare has exec'd sleep in the new namespace
  const self = fs.statSync('/proc/self/ns/net').ino;
  for (let i = 0; i < 500; i++) {
    try {
      if (fs.statSync(path).ino !== self) break;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  return { path, kill: () => c.kill('SIGKILL') };
}

async function cycle(root: string, n: number): Promise<object> {
  // one container that stays, so each cycle measures a container's own part
  // (veth, lease, rules), not the bridge's and table's creation
  const keeper = await netnsHolder();
  await setupNetwork({ root, cid: 'keeper', mode: 'bridge', ports: [], hostname: 'k', netnsPath: keeper.path });
  const setupMs: number[] = [];
  const teardownMs: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const h = await netnsHolder();
      const cid = `cycle-${i}`;
      const t0 = performance.now();
      await setupNetwork({ root, cid, mode: 'bridge', ports: [{ hostIp: '0.0.0.0', hostPort: 0, containerPort: 80, proto: 'tcp' }], hostname: 'c', netnsPath: h.path });
      const t1 = performance.now();
      await teardownNetwork(root, cid);
      teardownMs.push(+(performance.now() - t1).toFixed(2));
      setupMs.push(+(t1 - t0).toFixed(2));
      h.kill();
    }
  } finally {
    await teardownNetwork(root, 'keeper');
    keeper.kill();
  }
  return { setup_ms: setupMs, teardown_ms: teardownMs };
}

async function main(argv: string[]): Promise<object | undefined> {
  const [cmd, ...a] = argv;
  switch (cmd) {
    case 'setup':
      return setupNetwork(JSON.parse(a[0]!) as SetupOptions);
    case 'teardown':
      await teardownNetwork(a[0]!, a[1]!);
      return {};
    case 'files':
      return containerNetworkFiles(a[0]!, a[1]!, { hostname: a[2]!, mode: a[3] as NetworkMode });
    case 'http':
      return http(a[0]!, Number(a[1]), Number(a[2] ?? 1));
    case 'udp':
      return udp(a[0]!, Number(a[1]), a[2] ?? 'ping');
    case 'cycle':
      return cycle(a[0]!, Number(a[1] ?? 10));
    case 'udp-echo':
      udpEcho(Number(a[0]));
      return undefined;
    default:
      throw new Error(`unknown command ${cmd}`);
  }
}

main(process.argv.slice(2)).then(
  (r) => {
    if (r !== undefined) process.stdout.write(`${JSON.stringify(r)}\n`);
  },
  (e: Error) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  },
);

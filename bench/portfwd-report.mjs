// Summarizes bench/portfwd.sh's measurements: medians per path, ratios to the
// direct connection, the choice; writes the JSON and prints a markdown table.
// Usage: node bench/portfwd-report.mjs RESULTS.jsonl OUT.json SECONDS ROUNDS CONNS LOAD [CYCLE.json]
import fs from 'node:fs';
import os from 'node:os';

const [file, out, seconds, rounds, conns, load, cycleFile] = process.argv.slice(2);
const rows = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const order = ['direct', 'nat-lo', 'nat-lan', 'splice', 'node', 'socat'];
const paths = [...new Set(rows.map((r) => r.path))].sort((a, b) => order.indexOf(a) - order.indexOf(b));
const summary = {};
for (const p of paths) {
  const rs = rows.filter((r) => r.path === p);
  summary[p] = {
    gbit_median: median(rs.map((r) => r.stream.gbit)),
    gbit_all: rs.map((r) => r.stream.gbit),
    conn_p50_us: median(rs.map((r) => r.rr.p50_us)),
    conn_p90_us: median(rs.map((r) => r.rr.p90_us)),
    conn_p99_us: median(rs.map((r) => r.rr.p99_us)),
  };
}
const direct = summary.direct;
// Paired: each round's ratio to that round's direct run, then the median of
// the ratios (steadier than a ratio of medians while the shared machine's
// load changes between rounds).
const byRound = (p, r) => rows.find((x) => x.path === p && x.round === r);
for (const p of paths) {
  summary[p].throughput_vs_direct = +(summary[p].gbit_median / direct.gbit_median).toFixed(3);
  summary[p].latency_vs_direct = +(summary[p].conn_p50_us / direct.conn_p50_us).toFixed(3);
  const ratios = rows.filter((x) => x.path === p).map((x) => x.stream.gbit / byRound('direct', x.round).stream.gbit);
  summary[p].throughput_vs_direct_paired = +median(ratios).toFixed(3);
}
const nat = summary['nat-lo'];
const result = {
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, kernel: os.release(), loadavg: load },
  method: { stream_seconds: Number(seconds), rounds: Number(rounds), connections_per_path: Number(conns) },
  chosen: 'kernel NAT (nftables DNAT)',
  why:
    `kernel NAT forwards at ${(nat.throughput_vs_direct_paired * 100).toFixed(0)}% of the direct throughput through 127.0.0.1 ` +
    `(${(summary['nat-lan'].throughput_vs_direct_paired * 100).toFixed(0)}% through another host address; medians of per-round ratios) ` +
    `(target >= 90%) with no process per container and nothing in the data path to crash or to count against the monitor's memory; ` +
    `the best userspace proxy (splice) reaches ${(summary.splice.throughput_vs_direct_paired * 100).toFixed(0)}%, ` +
    `costs ${summary.splice.latency_vs_direct.toFixed(1)}x the direct per-connection latency (NAT ${nat.latency_vs_direct.toFixed(1)}x) ` +
    `and adds a process and a second connection per client.`,
  paths: summary,
  raw: rows,
};
if (cycleFile) {
  const c = JSON.parse(fs.readFileSync(cycleFile, 'utf8'));
  result.setup_teardown = { cycles: c.setup_ms.length, setup_ms_median: +median(c.setup_ms).toFixed(1), teardown_ms_median: +median(c.teardown_ms).toFixed(1), ...c };
}
fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
const lines = [
  '| path | throughput (Gbit/s, median) | vs direct (paired) | per connection p50 / p90 (µs) | p50 vs direct |',
  '| --- | --- | --- | --- | --- |',
  ...paths.map((p) => {
    const s = summary[p];
    return `| ${p} | ${s.gbit_median.toFixed(2)} | ${(s.throughput_vs_direct_paired * 100).toFixed(0)}% | ${s.conn_p50_us.toFixed(0)} / ${s.conn_p90_us.toFixed(0)} | ${s.latency_vs_direct.toFixed(2)}× |`;
  }),
];
console.log(lines.join('\n'));
console.log(`\n${result.why}`);
if (result.setup_teardown) {
  const st = result.setup_teardown;
  console.log(`\nA container's network: setup ${st.setup_ms_median} ms, teardown ${st.teardown_ms_median} ms (medians of ${st.cycles}).`);
}
console.log(`(load ${load}; written to ${out})`);

/**
 * What blocked a thread: reads the stall windows a server wrote with PYLATE_STALL_LOG=DIR (stretches
 * during which a thread's event loop did not turn, src/util/stalls.ts) and the V8 CPU profiles of
 * the same run (`node --cpu-prof --cpu-prof-dir DIR`; bench/scale.ts --profile DIR sets both), and
 * lists per thread how long the stalls were and which functions ran during them (self time, then
 * the project's frames on the stack, inclusive).
 *
 *   node --import tsx bench/stalls.ts DIR [--top 15]
 */
import fs from "node:fs";
import path from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const argv = process.argv.slice(2);
const top = argv.includes("--top") ? Number(argv[argv.indexOf("--top") + 1]) : 15;
const dir = argv.find((a, i) => !a.startsWith("--") && (i === 0 || argv[i - 1] !== "--top"));
if (!dir || !fs.existsSync(dir)) {
  console.error("usage: node --import tsx bench/stalls.ts DIR [--top N]");
  process.exit(1);
}
const names = fs.readdirSync(dir);
const label = (n: ProfileNode) => `${n.callFrame.functionName || "(anonymous)"} ${path.basename(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
const project = (n: ProfileNode) => /\/(src|bench)\//.test(n.callFrame.url);
const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(1).padStart(5)}%`;

for (const stallFile of names.filter((f) => /^stalls\.\d+\.\d+\.txt$/.test(f)).sort()) {
  const [, pid, thread] = /^stalls\.(\d+)\.(\d+)\.txt$/.exec(stallFile)!;
  const windows = fs
    .readFileSync(path.join(dir, stallFile), "utf8")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split(" ").map(Number) as [number, number]);
  const ms = windows.map(([a, b]) => (b - a) / 1000).sort((a, b) => a - b);
  const q = (f: number) => ms[Math.min(ms.length - 1, Math.floor(ms.length * f))]!.toFixed(0);
  console.log(`\nthread ${thread} of process ${pid}: ${windows.length} stalls (${(ms.reduce((a, b) => a + b, 0) / 1000).toFixed(1)} s), p50 ${q(0.5)} ms, p90 ${q(0.9)} ms, max ${q(1)} ms`);
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
  const profFile = names.find((f) => f.endsWith(".cpuprofile") && f.split(".")[3] === pid && f.split(".")[4] === thread);
  if (!profFile) {
    console.log("  (no CPU profile of this thread)");
    continue;
  }
  const p = JSON.parse(fs.readFileSync(path.join(dir, profFile), "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const frames = new Map<string, number>();
  const inner = new Map<string, number>();
  const perWindow = windows.map(() => new Map<string, number>());
  let inWindows = 0;
  let t = p.startTime;
  let w = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]!;
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    while (w < windows.length && windows[w]![1] < t) w++;
    if (w >= windows.length) break;
    if (t < windows[w]![0]) continue;
    inWindows += dt;
    const n = byId.get(p.samples[i]!)!;
    self.set(label(n), (self.get(label(n)) ?? 0) + dt);
    const seen = new Set<string>();
    for (let a: number | undefined = n.id; a !== undefined; a = parent.get(a)) {
      const node = byId.get(a)!;
      if (!project(node) || seen.has(label(node))) continue;
      if (seen.size === 0) {
        // The innermost project frame: what our code was doing (in itself or in what it called).
        inner.set(label(node), (inner.get(label(node)) ?? 0) + dt);
        perWindow[w]!.set(label(node), (perWindow[w]!.get(label(node)) ?? 0) + dt);
      }
      seen.add(label(node));
      frames.set(label(node), (frames.get(label(node)) ?? 0) + dt);
    }
  }
  if (inWindows === 0) {
    console.log("  (no samples inside the stalls: clocks differ?)");
    continue;
  }
  console.log(`  ${(inWindows / 1000).toFixed(1)} s of samples inside them; self time:`);
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`    ${pct(v, inWindows)}  ${k}`);
  console.log("  innermost project frame:");
  for (const [k, v] of [...inner].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`    ${pct(v, inWindows)}  ${k}`);
  console.log("  project frames on the stack (inclusive):");
  for (const [k, v] of [...frames].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`    ${pct(v, inWindows)}  ${k}`);
  console.log("  longest:");
  const order = windows.map((_, i) => i).sort((a, b) => windows[b]![1] - windows[b]![0] - (windows[a]![1] - windows[a]![0]));
  for (const i of order.slice(0, 6)) {
    const len = (windows[i]![1] - windows[i]![0]) / 1000;
    const head = [...perWindow[i]!].sort((a, b) => a[1] - b[1]).slice(-4).reverse().map(([k, v]) => `${k} ${((100 * v) / len).toFixed(0)}%`);
    console.log(`    ${len.toFixed(0)} ms at ${((windows[i]![0] - p.startTime) / 1e6).toFixed(1)} s: ${head.join(", ")}`);
  }
}

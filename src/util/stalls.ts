/**
 * A diagnostic for latency work: with PYLATE_STALL_LOG=DIR set, each thread that calls watchStalls()
 * notes in DIR/stalls.<pid>.<thread>.txt every stretch of over PYLATE_STALL_MS (default 30) ms
 * during which its event loop did not turn — what a request arriving then waited on that thread —
 * as "start end" in microseconds of the monotonic clock V8's CPU profiles use, so that
 * bench/stalls.ts can tell what ran then from a `node --cpu-prof` profile. Off by default; costs a
 * 5 ms timer when on.
 */
import fs from "node:fs";
import path from "node:path";
import { threadId } from "node:worker_threads";

const TICK_MS = 5;

export function watchStalls(): void {
  const dir = process.env["PYLATE_STALL_LOG"];
  if (!dir) return;
  const over = Number(process.env["PYLATE_STALL_MS"] ?? 30) * 1000;
  const file = path.join(dir, `stalls.${process.pid}.${threadId}.txt`);
  fs.mkdirSync(dir, { recursive: true });
  const now = () => Number(process.hrtime.bigint() / 1000n);
  let last = now();
  const tick = () => {
    const t = now();
    if (t - last - TICK_MS * 1000 > over) fs.appendFileSync(file, `${last + TICK_MS * 1000} ${t}\n`);
    last = t;
    setTimeout(tick, TICK_MS).unref();
  };
  setTimeout(tick, TICK_MS).unref();
}

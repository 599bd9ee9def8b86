/**
 * Work files that must not outlive an interrupted process: temp files, staging folders, model
 * views. Each carries its owner's pid in its name (`.<name>.<pid>.<…>`), so that:
 * - on SIGINT / SIGTERM, the process removes the ones it registered, then exits (130 / 143);
 * - on start, a job removes the ones whose owner is gone (killed with -9, power loss).
 * The signal handlers are installed only while something is registered, so a server's own
 * graceful-shutdown handlers are not overridden between jobs.
 */
import fs from "node:fs";
import path from "node:path";

const pending = new Set<string>();
const SIGNALS = { SIGINT: 130, SIGTERM: 143 } as const;

function onSignal(signal: keyof typeof SIGNALS): void {
  for (const p of pending) {
    try {
      fs.rmSync(p, { recursive: true, force: true });
    } catch {
      // best effort: the process is going away
    }
  }
  pending.clear();
  process.exit(SIGNALS[signal]);
}

/** Removes `p` (file or folder) if the process is interrupted before the returned release is called. */
export function removeOnInterrupt(p: string): () => void {
  if (pending.size === 0) for (const s of Object.keys(SIGNALS) as (keyof typeof SIGNALS)[]) process.on(s, onSignal);
  pending.add(p);
  return () => {
    if (!pending.delete(p) || pending.size > 0) return;
    for (const s of Object.keys(SIGNALS) as (keyof typeof SIGNALS)[]) process.off(s, onSignal);
  };
}

/** Is `p` registered by removeOnInterrupt and not yet released (a temp file this process is writing)? */
export function inProgress(p: string): boolean {
  return pending.has(p);
}

/** Is process `pid` alive (or not ours to signal)? */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Work files of this tool: `.<name>.<pid>.partial|old|view.onnx|<stamp>.tmp`, and `<x>.<pid>.tmp` in the Hub cache. */
const WORK_FILE = /^\..+\.(\d+)\.(?:partial|old|view\.onnx|[0-9a-z]+\.tmp)$/;

/** Removes work files in `dir` (not recursive) whose owner process is gone; returns their names. */
export function sweepDeadWorkFiles(dir: string, match: RegExp = WORK_FILE): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = match.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid || processAlive(Number(pid))) continue;
    try {
      fs.rmSync(path.join(dir, name), { recursive: true, force: true });
      removed.push(name);
    } catch {
      // not ours to remove (permissions): leave it
    }
  }
  return removed;
}

/**
 * Puts shard outputs of one corpus back together: chunk k came from shard k % n, so the merged
 * output takes chunks from the shards in turn — streamed, in constant memory — and is exactly what
 * one machine encoding the whole input writes (data, index, skipped lines and shapes alike).
 */
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { indexFile, jobFile, npyHeader, NPY_HEADER_BYTES, patchNpyRows, readJob, skippedFile, writeShapes, type JobRecord } from "./corpus.js";
import { writeJsonAtomic } from "../util/fs.js";
import { UserError } from "../errors.js";

/** Lines of a file with one line of look-ahead. */
class Lines {
  private readonly it: AsyncIterator<string>;
  private next?: string | null;
  constructor(file: string) {
    this.it = fs.existsSync(file) ? readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity })[Symbol.asyncIterator]() : (async function* () {})();
  }
  async peek(): Promise<string | null> {
    if (this.next === undefined) {
      const r = await this.it.next();
      this.next = r.done ? null : r.value;
    }
    return this.next;
  }
  async take(): Promise<string> {
    const line = (await this.peek())!;
    this.next = undefined;
    return line;
  }
}

const indexOf = (line: string) => (JSON.parse(line) as { index: number }).index;

export async function mergeShards(parts: string[], output: string, force: boolean): Promise<{ texts: number; shards: number }> {
  if (parts.length === 0) throw new UserError("Nothing to merge: pass the shard outputs");
  const jobs: JobRecord[] = parts.map((p) => {
    const job = readJob(p);
    if (!job) throw new UserError(`${p} has no ${jobFile(p).split("/").pop()}: pass outputs written by colbert-encode --shard`);
    if (!job.complete) throw new UserError(`${p} is unfinished; rerun its colbert-encode command to complete it, then merge`);
    return job;
  });
  const [first] = jobs;
  const n = first!.shard[1];
  const byShard = new Map<number, number>();
  jobs.forEach((j, i) => {
    if (j.format !== first!.format || j.chunk_size !== first!.chunk_size || j.shard[1] !== n) {
      throw new UserError(`${parts[i]} was encoded with another format, chunk size or shard count than ${parts[0]}; merge the shards of one run`);
    }
    if (byShard.has(j.shard[0])) throw new UserError(`${parts[i]} and ${parts[byShard.get(j.shard[0])!]} are both shard ${j.shard[0]}/${n}`);
    byShard.set(j.shard[0], i);
  });
  const missing = Array.from({ length: n }, (_, s) => s).filter((s) => !byShard.has(s));
  if (missing.length > 0) throw new UserError(`Shards ${missing.map((s) => `${s}/${n}`).join(", ")} are missing; pass all ${n} shard outputs`);
  if (fs.existsSync(output) && !force) throw new UserError(`${output} already exists; pass --force to overwrite it`);
  const ext = path.extname(output).toLowerCase();
  const wanted = ext === ".npy" ? "npy" : ext === ".f32" ? "f32" : ext === ".jsonl" ? "jsonl" : undefined;
  if (wanted && wanted !== first!.format) throw new UserError(`The shards hold --format ${first!.format} but ${output} is named as ${wanted}: name the merged output .${first!.format} (merging keeps the shards' format)`);

  const order = Array.from({ length: n }, (_, s) => byShard.get(s)!);
  const f32 = first!.format !== "jsonl"; // raw float32 rows (f32, or npy after its header)
  const npy = first!.format === "npy";
  const dim = jobs.find((j) => j.dim !== null)?.dim ?? null;
  const data = order.map((i) => (f32 ? fs.openSync(parts[i]!, "r") : new Lines(parts[i]!)));
  const index = order.map((i) => new Lines(f32 ? indexFile(parts[i]!) : parts[i]!));
  const skipped = order.map((i) => new Lines(skippedFile(parts[i]!)));
  const dataOffset = order.map(() => (npy ? NPY_HEADER_BYTES : 0));
  const outFd = fs.openSync(output, "w");
  if (npy) fs.writeSync(outFd, npyHeader(0, dim ?? 0));
  const outIndex = f32 ? fs.openSync(indexFile(output), "w") : undefined;
  let outSkipped: number | undefined;
  let texts = 0;
  let rows = 0;
  let skippedCount = 0;
  const C = first!.chunk_size;
  try {
    for (let k = 0; ; k++) {
      const s = k % n;
      const end = (k + 1) * C;
      let any = false;
      // This chunk's records: index lines (and data) below the chunk's end, in order.
      for (let line = await index[s]!.peek(); line !== null && indexOf(line) < end; line = await index[s]!.peek()) {
        any = true;
        await index[s]!.take();
        if (f32) {
          const r = (JSON.parse(line) as { rows: number }).rows;
          const bytes = Buffer.alloc(r * dim! * 4);
          fs.readSync(data[s] as number, bytes, 0, bytes.length, dataOffset[s]!);
          dataOffset[s]! += bytes.length;
          fs.writeSync(outFd, bytes);
          fs.writeSync(outIndex!, line + "\n");
          rows += r;
        } else {
          fs.writeSync(outFd, line + "\n");
          rows += (JSON.parse(line) as { shape: number[] }).shape[0]!;
        }
        texts++;
      }
      for (let line = await skipped[s]!.peek(); line !== null && indexOf(line) < end; line = await skipped[s]!.peek()) {
        any = true;
        outSkipped ??= fs.openSync(skippedFile(output), "w");
        fs.writeSync(outSkipped, (await skipped[s]!.take()) + "\n");
        skippedCount++;
      }
      if (!any && (await Promise.all([...index, ...skipped].map((l) => l.peek()))).every((l) => l === null)) break;
    }
  } finally {
    for (const d of data) if (typeof d === "number") fs.closeSync(d);
    fs.closeSync(outFd);
    if (outIndex !== undefined) fs.closeSync(outIndex);
    if (outSkipped !== undefined) fs.closeSync(outSkipped);
  }
  const total = jobs.reduce((acc, j) => acc + j.texts, 0);
  if (texts !== total) throw new UserError(`Merged ${texts} texts but the shards hold ${total}; a shard output was changed after it was written`);
  const job: JobRecord = { ...first!, key: "merged", complete: true, shard: [0, 1], chunks: Math.max(...jobs.map((j) => j.chunks)), records: Math.max(...jobs.map((j) => j.records)), texts, rows, skipped: skippedCount, dim, bytes: {} };
  writeJsonAtomic(jobFile(output), job);
  if (npy) patchNpyRows(output, rows, dim ?? 0);
  if (f32) await writeShapes(output);
  return { texts, shards: n };
}

/** GET /health and GET /: the server, its indices, its updates and its model (next-plaid-api health). */
import path from "node:path";
import { VERSION } from "../../version.js";
import type { ServerContext } from "../context.js";

export async function health(ctx: ServerContext) {
  const indices = await ctx.indexOverview();
  const encoder = ctx.opts.encoder;
  const cfg = encoder?.config;
  // An index thread restarting, or a request stuck for seconds, is said (other indices still answer).
  const engine = ctx.opts.indexEngine?.status();
  return {
    status: engine && engine.status !== "ready" ? "degraded" : "healthy",
    version: VERSION,
    loaded_indices: indices.filter((i) => i.num_documents > 0 || i.dimension > 0).length,
    index_dir: ctx.opts.indexDir ?? "",
    memory_usage_bytes: process.memoryUsage().rss,
    indices: indices.map(({ metadata_count: _, ...rest }) => rest),
    updates: ctx.tracker.list(),
    index_engine: engine ?? null,
    model:
      encoder && cfg
        ? {
            name: ctx.opts.modelName ?? cfg.model_name,
            path: encoder.dir,
            quantized: ctx.opts.quantized ?? path.basename(encoder.modelFile) === "model_int8.onnx",
            embedding_dim: cfg.embedding_dim,
            batch_size: encoder.batchSize,
            num_sessions: encoder.sessionCount,
            threads_per_session: encoder.threads,
            execution_provider: encoder.executionProvider,
            queued_texts: encoder.queuedTexts,
            running_batches: encoder.runningBatches,
            query_prefix: cfg.query_prefix,
            document_prefix: cfg.document_prefix,
            query_length: cfg.query_length,
            document_length: cfg.document_length,
            do_query_expansion: cfg.do_query_expansion,
            uses_token_type_ids: cfg.uses_token_type_ids,
            mask_token_id: cfg.mask_token_id,
            pad_token_id: cfg.pad_token_id,
          }
        : null,
  };
}

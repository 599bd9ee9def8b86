/**
 * A lean onnxruntime session for one-off probe runs on big models (the export's self-check, the
 * quantizer's FP32 reference).
 *
 * onnxruntime is given the model's graph with every weight as an external-data reference to its
 * bytes inside the model file itself, written as a small view file beside it. onnxruntime then
 * maps the file instead of parsing a protobuf copy of all weights and converting each tensor once
 * more: a ModernBERT-base model.onnx (570 MB) loaded directly peaks at ~800 MB, through the view
 * at the weights the probe touches, and loads 4× faster. Prepacking, the memory arena and graph
 * optimisations are off: they would copy weights again for a few probe rows.
 * What the view does not exercise, onnxruntime parsing the inline weight framing, our reader
 * checks while building it: every field parses to the end of the file and every weight has exactly
 * the bytes its shape needs.
 */
import fs from "node:fs";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { readModel } from "../onnx/reader.js";
import { writeModel } from "../onnx/writer.js";
import { UserError } from "../errors.js";

export interface ProbeSession {
  session: ort.InferenceSession;
  /** Releases the session and removes the view file. */
  close(): Promise<void>;
}

const LEAN: ort.InferenceSession.SessionOptions = {
  graphOptimizationLevel: "disabled",
  enableCpuMemArena: false,
  extra: { session: { disable_prepacking: "1" } },
};

/** Opens `modelFile` for probing; throws onnxruntime's or the reader's error if it cannot. */
export async function openProbeSession(modelFile: string): Promise<ProbeSession> {
  const view = path.join(path.dirname(modelFile), `.${path.basename(modelFile)}.${process.pid}.probe.onnx`);
  const read = readModel(modelFile);
  let viewWritten = false;
  try {
    writeModel(view, read.model, { referenceStored: true });
    viewWritten = true;
  } catch (e) {
    // A folder we may not write to (a read-only mount): load the model itself, at its memory cost.
    if (e instanceof UserError) throw e;
  } finally {
    read.close();
  }
  try {
    const session = await ort.InferenceSession.create(viewWritten ? view : modelFile, LEAN);
    return {
      session,
      close: async () => {
        await session.release();
        if (viewWritten) fs.rmSync(view, { force: true });
      },
    };
  } catch (e) {
    if (viewWritten) fs.rmSync(view, { force: true });
    throw e;
  }
}

/**
 * Frees the weight buffers of a finished model write before onnxruntime loads the model, so the
 * export's peak memory is about one model, not two. The buffers are garbage but V8 would
 * collect them only later; their memory goes back to the OS once they are swept.
 */
import v8 from "node:v8";
import vm from "node:vm";
import { setImmediate as nextTurn } from "node:timers/promises";

let gc: (() => void) | undefined;

export async function releaseGarbage(): Promise<void> {
  if (!gc) {
    v8.setFlagsFromString("--expose-gc");
    gc = vm.runInNewContext("gc") as () => void;
  }
  // Array buffer backing stores are swept after the collection itself: collect, let the sweep
  // finish, collect again.
  gc();
  await nextTurn();
  gc();
}

/** colbert-check: audit an ONNX ColBERT export folder (ours or another tool's). */
import { Command } from "commander";
import { auditExport } from "../../check/audit.js";
import { stderrLogger } from "../../util/log.js";
import { VERSION } from "../../version.js";
import { jsonLine, parseCommand, withHelp } from "../run.js";

interface Flags {
  source?: string;
  revision?: string;
  json?: boolean;
  quiet?: boolean;
}

export async function main(): Promise<void> {
  const cmd = new Command()
    .name("colbert-check")
    .description(
      "Audit an ONNX ColBERT export folder for NextPlaid and PyLate: files, onnx_config.json as NextPlaid parses it, tokenizer, graph inputs/outputs, a probe run, INT8 weights and fidelity. Exit code 1 when something is wrong.",
    )
    .version(VERSION, "--version")
    .argument("<dir>", "export folder (model.onnx, tokenizer.json, onnx_config.json, …)")
    .option("--source <model>", "the checkpoint it was exported from (folder or Hugging Face id): compare the configs with its true PyLate settings")
    .option("--revision <rev>", "revision of --source on the Hub")
    .option("--json", "print the report as one JSON line on stdout")
    .option("--quiet", "print findings only (no list of what passed)")
;
  withHelp(cmd, ["colbert-check ./GTE-ModernColBERT-v1-onnx", "colbert-check ./exported --source lightonai/GTE-ModernColBERT-v1 --json"]);
  if (!parseCommand(cmd)) return;
  const flags = cmd.opts<Flags>();
  const report = await auditExport(cmd.args[0]!, { source: flags.source, revision: flags.revision, logger: stderrLogger(flags.quiet || flags.json) });
  if (flags.json) {
    process.stdout.write(jsonLine(report));
  } else {
    for (const f of report.findings) process.stdout.write(`${f.level}: ${f.subject}: ${f.message}\n`);
    // An item with an error is not also "ok".
    const failed = new Set(report.findings.filter((f) => f.level === "error").map((f) => f.subject));
    if (!flags.quiet) for (const c of report.checked) if (!failed.has(c.split(" ")[0]!)) process.stdout.write(`ok: ${c}\n`);
    const errors = report.findings.filter((f) => f.level === "error").length;
    const warnings = report.findings.length - errors;
    process.stdout.write(`${report.ok ? "OK" : "FAILED"}: ${report.dir}: ${errors} error(s), ${warnings} warning(s)\n`);
  }
  if (!report.ok) process.exitCode = 1;
}



/** Progress and warnings on stderr; `quiet` silences progress but never warnings or errors. */
import cliProgress from "cli-progress";

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  /** A progress bar over `total` units; returns its update / stop functions. */
  bar(label: string, total: number, unit?: string): { update(done: number): void; stop(): void };
}

export function stderrLogger(quiet = false): Logger {
  return {
    info: (m) => {
      if (!quiet) process.stderr.write(m + "\n");
    },
    warn: (m) => process.stderr.write(m + "\n"),
    bar: (label, total, unit = "") => {
      if (quiet) return { update: () => {}, stop: () => {} };
      const bar = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: `${label} [{bar}] {percentage}% {value}/{total}${unit}`,
          // Without a TTY print a plain line now and then instead of redrawing.
          noTTYOutput: true,
          notTTYSchedule: 2000,
          hideCursor: false,
          clearOnComplete: false,
        },
        cliProgress.Presets.legacy,
      );
      bar.start(total, 0);
      return { update: (done) => bar.update(done), stop: () => bar.stop() };
    },
  };
}

export const silentLogger: Logger = { info: () => {}, warn: () => {}, bar: () => ({ update: () => {}, stop: () => {} }) };

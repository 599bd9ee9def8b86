/**
 * An error caused by the user's input or environment. Its message is one line that says what
 * went wrong and what to do; the CLI prints it as `Error: <message>` and exits with code 1.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}

/** A file-system failure on `target`, as a one-line UserError that says what to do. */
/** The parts of a Node.js system error read here (kept structural so the public types need no @types/node). */
interface SystemError {
  code?: string;
  path?: string;
  message: string;
}

export function fsError(e: SystemError, target: string, remedy: string): UserError {
  switch (e.code) {
    case "EACCES":
    case "EPERM":
      return new UserError(`Permission denied writing to ${target}: ${remedy}, or fix its permissions`);
    case "EROFS":
      return new UserError(`${target} is on a read-only file system: ${remedy}`);
    case "ENOSPC":
    case "EDQUOT":
      return new UserError(`No space left on the device of ${target}: free some space or ${remedy}`);
    case "ENOTDIR":
    case "EEXIST":
      return new UserError(`${target} is not a folder: ${remedy}`);
    default:
      return new UserError(`Cannot write to ${target} (${e.code ?? e.message}): ${remedy}`);
  }
}

/**
 * An unexpected error that is really the environment's (an OS error, memory), as a UserError;
 * undefined for genuine bugs.
 */
export function environmentError(e: unknown): UserError | undefined {
  const err = e as SystemError | undefined;
  const where = err?.path ? ` ${err.path}` : "";
  switch (err?.code) {
    case "EACCES":
    case "EPERM":
      return new UserError(`Permission denied:${where || " " + err.message}; choose another location or fix its permissions`);
    case "EROFS":
      return new UserError(`Read-only file system:${where}; choose a writable location`);
    case "ENOSPC":
    case "EDQUOT":
      return new UserError(`No space left on the device${where ? ` of${where}` : ""}; free some space or choose another location`);
    case "EMFILE":
    case "ENFILE":
      return new UserError(`Too many open files; raise the limit (ulimit -n) and run the command again`);
    case "ERR_STRING_TOO_LONG":
      return new UserError(`A file is too large to read as text; check the input`);
    default:
      break;
  }
  const message = String(err?.message ?? e);
  if (/bad_alloc|out of memory|Array buffer allocation failed|Cannot allocate memory/i.test(message)) {
    return new UserError(`Out of memory (${message.split("\n")[0]!.slice(0, 80)}); free memory, close other programs, or use a machine with more RAM`);
  }
  return undefined;
}

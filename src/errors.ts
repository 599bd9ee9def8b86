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

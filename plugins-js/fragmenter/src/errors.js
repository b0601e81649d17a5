// Stage errors. Everything the plugin refuses is thrown as a StageError;
// app.js turns it into the WIT `stage-error` record at the export boundary
// (jco lowers a thrown value of a `result<T, stage-error>` function to `err`).

export class StageError extends Error {
  constructor(code, message, offset) {
    super(message);
    this.code = code;
    this.detail = message;
    this.offset = offset;
  }
}

export function fail(code, message, offset) {
  throw new StageError(code, message, offset);
}

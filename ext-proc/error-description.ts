// What is kept of an unexpected exception on the data path. Its message may quote what it was
// reading (V8's JSON.parse quotes the input it stopped at, a validator its argument), so the
// message is never logged or recorded: the error's class and where it was thrown are.

/** The error's class and its stack frames, without its message. */
export function errorWithoutMessage(error: unknown): string {
  if (!(error instanceof Error)) return typeof error === 'object' && error !== null ? 'non-Error object thrown' : `${typeof error} thrown`;
  const frames = (error.stack ?? '').split('\n').filter((line) => line.trimStart().startsWith('at '));
  return [error.name, ...frames.map((line) => line.trim())].join('\n  ');
}

/** The error's class and the frame it was thrown in: short enough for an audit record. */
export function errorClassAndPlace(error: unknown): string {
  const [name, first] = errorWithoutMessage(error).split('\n  ');
  return first ? `${name} ${first}` : name!;
}

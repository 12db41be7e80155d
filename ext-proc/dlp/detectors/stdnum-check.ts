// Looks up a stdnum validator by "CC.name" once, at module load.
import { stdnum } from 'stdnum';

export function stdnumCheck(path: string): (candidate: string) => boolean {
  const [country, name] = path.split('.') as [string, string];
  const validator = (stdnum as unknown as Record<string, Record<string, { validate(v: string): { isValid: boolean } }> | undefined>)[country]?.[name];
  if (!validator) throw new Error(`stdnum has no validator ${path}`);
  return (candidate) => quietly(() => validator.validate(candidate).isValid);
}

/**
 * stdnum reports an invalid number as an Error object; capturing a stack for
 * each rejected candidate dominated the cost of dense bodies, so none is taken.
 */
export function quietly(check: () => boolean): boolean {
  const limit = Error.stackTraceLimit;
  if (limit === 0) {
    // the scan already turned stacks off for all its candidates
    try {
      return check();
    } catch {
      return false;
    }
  }
  Error.stackTraceLimit = 0;
  try {
    return check();
  } catch {
    return false;
  } finally {
    Error.stackTraceLimit = limit;
  }
}

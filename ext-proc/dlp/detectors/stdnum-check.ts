// Looks up a stdnum validator by "CC.name" once, at module load.
import { stdnum } from 'stdnum';

export function stdnumCheck(path: string): (candidate: string) => boolean {
  const [country, name] = path.split('.') as [string, string];
  const validator = (stdnum as unknown as Record<string, Record<string, { validate(v: string): { isValid: boolean } }> | undefined>)[country]?.[name];
  if (!validator) throw new Error(`stdnum has no validator ${path}`);
  return byStdnum((candidate) => quietly(() => validator.validate(candidate).isValid));
}

/**
 * The validators that call stdnum. Unlike ours, stdnum's code uses JavaScript regular expressions
 * (to strip separators, to check formats): on candidates the RE2 shapes matched, at most a few
 * dozen characters long.
 */
export const stdnumValidators = new WeakSet<(candidate: string) => boolean>();

export function byStdnum(validate: (candidate: string) => boolean): (candidate: string) => boolean {
  stdnumValidators.add(validate);
  return validate;
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

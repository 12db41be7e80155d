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

/**
 * A stdnum validator, behind a test it cannot need: every identifier stdnum validates holds digits
 * (each of the examples in stdnum-examples.json has three or more; stdnum-check.test.ts keeps that
 * true). Context-gated detectors try every word near their context word, and a word such as "ui",
 * "run" or ".org" is a context word of some identifier: without this, prose after one cost a stdnum
 * call (which throws on rejection) for each word and each run of words.
 */
export function byStdnum(validate: (candidate: string) => boolean): (candidate: string) => boolean {
  const checked = (candidate: string) => hasDigit(candidate) && validate(candidate);
  stdnumValidators.add(checked);
  return checked;
}

function hasDigit(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) return true;
  }
  return false;
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

// Bearer tokens an operator gives a Mandate process: VAR, else the file named by
// VAR_FILE (a Kubernetes or compose secret). Replicas behind one address must
// share their admin and internal tokens, so they cannot each invent their own.
// A token given badly stops the process at startup, never a silent fallback.
import { readFileSync } from 'node:fs';

/** Shortest token accepted: 32 characters, e.g. 24 random bytes in base64 (`openssl rand -base64 32` gives 44). */
export const minTokenLength = 32;

/** The text of `variable` or of the file `${variable}_FILE` names, trimmed, with where it came from (for messages); null when neither is set. */
export function configuredSecretText(env: Record<string, string | undefined>, variable: string): { text: string; source: string } | null {
  const direct = env[variable];
  const file = env[`${variable}_FILE`];
  if (direct !== undefined && direct !== '' && file !== undefined && file !== '') throw new Error(`set ${variable} or ${variable}_FILE, not both`);
  if (direct !== undefined && direct !== '') return { text: direct.trim(), source: variable };
  if (file === undefined || file === '') return null;
  try {
    return { text: readFileSync(file, 'utf8').trim(), source: `${variable}_FILE (${file})` };
  } catch (error) {
    throw new Error(`${variable}_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

/** The token from `variable` or `${variable}_FILE`, null when neither is set. Throws, naming the setting, on a bad one. */
export function configuredToken(env: Record<string, string | undefined>, variable: string): string | null {
  const configured = configuredSecretText(env, variable);
  if (configured === null) return null;
  const { text: token, source } = configured;
  if (token.length < minTokenLength) throw new Error(`${source}: the token must be at least ${minTokenLength} characters (openssl rand -base64 32)`);
  if (/\s/.test(token)) throw new Error(`${source}: the token must not contain whitespace`);
  return token;
}

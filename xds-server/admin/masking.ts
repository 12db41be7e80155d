// What /v1/* shows of stored config: everything except upstream secret values.
import type { ConfigDocument } from '../../config/schema.ts';
import { maskedSecretValue } from '../store/bundle-merge.ts';

export function maskSecrets<T extends ConfigDocument>(document: T): T {
  if (document.kind !== 'Upstream') return document;
  const auth = document.auth;
  // Environment variable names are references, not secrets, so they stay visible.
  if (auth.type === 'bearer' && 'value' in auth.token) return { ...document, auth: { ...auth, token: { value: maskedSecretValue } } };
  if (auth.type === 'header' && 'value' in auth.value) return { ...document, auth: { ...auth, value: { value: maskedSecretValue } } };
  return document;
}

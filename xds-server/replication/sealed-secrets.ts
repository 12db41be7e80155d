// Inline upstream secrets ({value: ...}) in a shared revision. The NATS stream keeps
// every revision forever and any client allowed on its subject can read it, so an
// inline secret never travels in the clear: the writer replaces it with the admin
// API's placeholder and adds it sealed with AES-256-GCM under the operator's config
// secrets key; each replica opens it with the same key before committing. The
// additional data binds a sealed value to its version, upstream and field, so it
// cannot be moved to another revision or upstream. {env: NAME} secrets are names,
// not secrets, and travel as they are.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { configuredSecretText } from '../../config/configured-token.ts';
import { resourceNameSchema } from '../../config/schema.ts';
import { maskedSecretValue } from '../store/bundle-merge.ts';
import type { RevisionChange } from '../store/records.ts';

export const secretsKeyVariable = 'MANDATE_CONFIG_SECRETS_KEY';
export const previousSecretsKeysVariable = 'MANDATE_CONFIG_SECRETS_PREVIOUS_KEYS';

export interface SecretsKey {
  /** 16 hex characters naming the key in a message (a hash of it; it reveals nothing of the key). */
  id: string;
  key: Buffer;
}

/** The key secrets are sealed with, and every key they may be opened with (the current one first). */
export interface SecretsKeyring {
  current: SecretsKey | null;
  all: SecretsKey[];
}

export const sealedSecretSchema = z
  .object({
    upstream: resourceNameSchema,
    field: z.enum(['token', 'value']),
    key: z.string().regex(/^[0-9a-f]{16}$/),
    /** base64 of a 12-byte nonce, the ciphertext and the 16-byte tag. */
    sealed: z.string().min(1),
  })
  .strict();

export type SealedSecret = z.infer<typeof sealedSecretSchema>;

function keyOf(text: string, source: string): SecretsKey {
  const trimmed = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(trimmed) ? Buffer.from(trimmed, 'hex') : /^[A-Za-z0-9+/]{43}=?$/.test(trimmed) ? Buffer.from(trimmed, 'base64') : null;
  if (key === null || key.length !== 32) throw new Error(`${source} must be 32 bytes as 64 hex characters or base64 (openssl rand -base64 32)`);
  return { id: createHash('sha256').update('mandate config secrets key\0').update(key).digest('hex').slice(0, 16), key };
}

/** The keyring from the environment (each variable or its _FILE); a malformed key is a startup error, never ignored. */
export function secretsKeyringFromEnv(env: Record<string, string | undefined>): SecretsKeyring {
  const currentText = configuredSecretText(env, secretsKeyVariable);
  const current = currentText ? keyOf(currentText.text, currentText.source) : null;
  const previousText = configuredSecretText(env, previousSecretsKeysVariable);
  const previous = (previousText?.text ?? '')
    .split(/[,\s]+/)
    .filter((text) => text !== '')
    .map((text) => keyOf(text, previousText!.source));
  return { current, all: current ? [current, ...previous] : previous };
}

function additionalData(version: number, upstream: string, field: string): Buffer {
  return Buffer.from(`mandate.config.v1\0${version}\0${upstream}\0${field}`);
}

interface BundleWithSecrets {
  upstreams: { name: string; auth: { type: string; token?: { value?: string }; value?: { value?: string } } }[];
}

/**
 * The change as it may travel: inline secrets replaced by the placeholder and returned sealed.
 * Without a key, a change that carries an inline secret cannot be shared: the reason is returned.
 */
export function sealSecrets(change: RevisionChange, keyring: SecretsKeyring): { change: RevisionChange; sealedSecrets: SealedSecret[] } | { refused: string } {
  const bundle = JSON.parse(change.bundleJson) as BundleWithSecrets;
  const sealedSecrets: SealedSecret[] = [];
  for (const upstream of bundle.upstreams) {
    const field = upstream.auth.type === 'bearer' ? 'token' : upstream.auth.type === 'header' ? 'value' : null;
    const secret = field ? upstream.auth[field] : undefined;
    if (!field || !secret || typeof secret.value !== 'string') continue;
    const key = keyring.current;
    if (key === null) {
      return {
        refused: `Upstream ${upstream.name} has an inline secret (auth.${field}.value); scaled out, an inline secret is shared with the other replicas only sealed with ${secretsKeyVariable}, which is not set on this replica. Set the same key on every control-plane replica, or give the secret as {env: NAME}`,
      };
    }
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key.key, nonce);
    cipher.setAAD(additionalData(change.version, upstream.name, field));
    const ciphertext = Buffer.concat([cipher.update(secret.value, 'utf8'), cipher.final()]);
    sealedSecrets.push({ upstream: upstream.name, field, key: key.id, sealed: Buffer.concat([nonce, ciphertext, cipher.getAuthTag()]).toString('base64') });
    secret.value = maskedSecretValue;
  }
  if (sealedSecrets.length === 0) return { change, sealedSecrets };
  return { change: { ...change, bundleJson: JSON.stringify(bundle) }, sealedSecrets };
}

/** The change with its sealed secrets put back, or why they cannot be opened here. */
export function openSecrets(change: RevisionChange, sealedSecrets: SealedSecret[], keyring: SecretsKeyring): { change: RevisionChange } | { refused: string } {
  if (sealedSecrets.length === 0) return { change };
  const bundle = JSON.parse(change.bundleJson) as BundleWithSecrets;
  for (const entry of sealedSecrets) {
    const key = keyring.all.find((k) => k.id === entry.key);
    if (!key) return { refused: `its secret for Upstream ${entry.upstream} is sealed with config secrets key ${entry.key}, which this replica does not have (${secretsKeyVariable} or ${previousSecretsKeysVariable})` };
    const upstream = bundle.upstreams.find((u) => u.name === entry.upstream);
    const secret = upstream?.auth[entry.field];
    if (!secret || secret.value !== maskedSecretValue) return { refused: `its sealed secret names Upstream ${entry.upstream} auth.${entry.field}, which has no inline secret in the revision` };
    const raw = Buffer.from(entry.sealed, 'base64');
    if (raw.length < 12 + 16) return { refused: `its sealed secret for Upstream ${entry.upstream} is too short` };
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.key, raw.subarray(0, 12));
      decipher.setAAD(additionalData(change.version, entry.upstream, entry.field));
      decipher.setAuthTag(raw.subarray(raw.length - 16));
      secret.value = Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8');
    } catch {
      return { refused: `its sealed secret for Upstream ${entry.upstream} does not authenticate (altered, or sealed for another version, upstream or field)` };
    }
  }
  return { change: { ...change, bundleJson: JSON.stringify(bundle) } };
}

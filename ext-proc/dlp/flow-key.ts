// The data-flow key: what keys the fingerprints of sensitive values (fingerprint.ts)
// and, scaled out, signs the replicas' data-flow messages (flow-replication.ts).
// Replicas must hash alike, so scaled out the operator provisions one secret to
// every replica, as for the admin and internal tokens: MANDATE_FLOW_KEY, or the
// file MANDATE_FLOW_KEY_FILE names (a Kubernetes or compose secret). It is never
// kept on NATS: whoever holds it can test guesses of low-entropy values (a card
// number is one of about 10^9) against the fingerprints the replicas exchange.
//
// The setting is text: hex when it is an even run of hex digits, else base64 (standard or
// URL-safe), whitespace ignored; at least 32 bytes once decoded. The process
// hashes with a 32-byte key derived from it (HKDF-SHA256 with a fixed label), so
// the secret itself is used for nothing else and its length does not change the
// cost of a fingerprint. A bad setting is a value with a stable code, never a
// silent fallback.
import { closeSync, openSync, readSync } from 'node:fs';
import { hkdfSync } from 'node:crypto';

export const flowKeyVariable = 'MANDATE_FLOW_KEY';
/** 256 bits: as strong as the SHA3-256 fingerprints it keys. */
export const minFlowKeyBytes = 32;
/** More is no stronger; a longer setting is most likely the wrong file. */
export const maxFlowKeyBytes = 1024;
/** The longest key file read (base64 of maxFlowKeyBytes is 1,368 characters: room for line breaks and hex). */
const maxFlowKeyFileBytes = 4096;
/** Domain separation: the fingerprint key is derived from the provisioned secret, never the secret itself. */
const fingerprintKeyLabel = 'mandate flow fingerprint key v1';

export type FlowKeyErrorCode = 'flow_key_required' | 'flow_key_unreadable' | 'flow_key_invalid' | 'flow_key_too_short';

export type FlowKeyProblem = { ok: false; code: FlowKeyErrorCode; message: string };

/** The fingerprint key to use (null: none provisioned, and none required), or why the setting is refused. */
export type FlowKeySetting = { ok: true; key: Buffer | null } | FlowKeyProblem;

/** The 32-byte fingerprint key derived from the provisioned secret's text; `source` names the setting in a refusal. */
export function fingerprintKeyOfText(text: string, source: string): { ok: true; key: Buffer } | FlowKeyProblem {
  const compact = text.replace(/\s+/g, '');
  const recipe = `give ${minFlowKeyBytes} random bytes or more as base64 or hex (openssl rand -base64 32)`;
  if (compact === '') return { ok: false, code: 'flow_key_invalid', message: `${source} is empty: ${recipe}` };
  const secret = decodeKeyText(compact);
  if (secret === null) return { ok: false, code: 'flow_key_invalid', message: `${source} is neither hex nor base64: ${recipe}` };
  if (secret.length < minFlowKeyBytes) return { ok: false, code: 'flow_key_too_short', message: `${source} holds ${secret.length} bytes, fewer than ${minFlowKeyBytes}: ${recipe}` };
  if (secret.length > maxFlowKeyBytes) return { ok: false, code: 'flow_key_invalid', message: `${source} holds more than ${maxFlowKeyBytes} bytes; is it the right file? ${recipe}` };
  return { ok: true, key: Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), fingerprintKeyLabel, 32)) };
}

/** Hex when an even run of hex digits, else base64 (standard or URL-safe, padded or not); null when it is neither, or base64 no encoder writes. */
function decodeKeyText(compact: string): Buffer | null {
  if (/^(?:[0-9a-fA-F]{2})+$/.test(compact)) return Buffer.from(compact, 'hex');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(compact) && !/^[A-Za-z0-9_-]+={0,2}$/.test(compact)) return null;
  // Node decodes any text as base64, skipping what does not fit: only text that encodes back the same is a key.
  const unpadded = compact.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
  const decoded = Buffer.from(unpadded, 'base64');
  return decoded.toString('base64').replace(/=+$/, '') === unpadded ? decoded : null;
}

/** What reading a key file gave: its text, or the reason it could not be read (an errno code). */
export type KeyFileRead = { text: string } | { error: string };

/**
 * MANDATE_FLOW_KEY or MANDATE_FLOW_KEY_FILE (not both). `required`: scaled out, where replicas must
 * share the key; without it the caller makes a key of its own. The file is read through `readFile`.
 */
export function flowKeySetting(env: Record<string, string | undefined>, options: { required: boolean; readFile?: (path: string) => KeyFileRead }): FlowKeySetting {
  const direct = env[flowKeyVariable];
  const file = env[`${flowKeyVariable}_FILE`];
  const given = (value: string | undefined): value is string => value !== undefined && value !== '';
  if (given(direct) && given(file)) return { ok: false, code: 'flow_key_invalid', message: `set ${flowKeyVariable} or ${flowKeyVariable}_FILE, not both` };
  if (given(direct)) return fingerprintKeyOfText(direct, flowKeyVariable);
  if (given(file)) {
    const source = `${flowKeyVariable}_FILE (${file})`;
    const read = (options.readFile ?? readKeyFile)(file);
    if ('error' in read) return { ok: false, code: 'flow_key_unreadable', message: `${source}: cannot read the file (${read.error})` };
    if (read.text.length > maxFlowKeyFileBytes) return { ok: false, code: 'flow_key_invalid', message: `${source} is longer than ${maxFlowKeyFileBytes} bytes; is it the right file?` };
    return fingerprintKeyOfText(read.text, source);
  }
  if (options.required) return flowKeyRequired();
  return { ok: true, key: null };
}

/** Scaled out with no key provisioned: the replica does not start (never a key of its own, nor one kept on NATS). */
export function flowKeyRequired(): FlowKeyProblem {
  return {
    ok: false,
    code: 'flow_key_required',
    message:
      `scaled out (MANDATE_NATS_URL), every ext_proc replica needs the same data-flow key: set ${flowKeyVariable}_FILE ` +
      `(or ${flowKeyVariable}) to a secret of at least ${minFlowKeyBytes} random bytes as base64 or hex (openssl rand -base64 32)`,
  };
}

/**
 * A key file's text, at most one byte more than a key file holds: a path to a device or a large file
 * must not hang or fill memory, and the extra byte makes such a file a setting refused as too long.
 */
export function readKeyFile(path: string): KeyFileRead {
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    const buffer = Buffer.alloc(maxFlowKeyFileBytes + 1);
    let length = 0;
    for (let n = -1; n !== 0 && length < buffer.length; length += n) n = readSync(fd, buffer, length, buffer.length - length, null);
    return { text: buffer.subarray(0, length).toString('utf8') };
  } catch (error) {
    return { error: (error as NodeJS.ErrnoException).code ?? (error as Error).message };
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

// Who may add to the shared config history. Any client allowed to publish on the
// revision subject could otherwise append a revision (a Persona granting every
// tool) that every control-plane replica would apply. So each revision carries a
// MAC under a key only the control-plane replicas hold: HMAC-SHA256 over the
// stream sequence the revision must take and the message's bytes, under a key
// derived (HKDF, its own label) from the config secrets key the replicas already
// share. A message without a valid MAC is skipped by every replica alike, so the
// history stays one. Binding the sequence means a recorded revision published
// again lands at another sequence and does not verify.
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import type { SecretsKeyring } from './sealed-secrets.ts';

/** The NATS header that carries `<key id>:<base64 MAC>`; JetStream stores it with the message. */
export const revisionMacHeader = 'Mandate-Revision-Mac';

const macLabel = 'mandate config revision mac v1';
const macBytes = 32;

const macKeys = new WeakMap<Buffer, Buffer>();

function macKeyOf(key: Buffer): Buffer {
  let macKey = macKeys.get(key);
  if (macKey === undefined) macKeys.set(key, (macKey = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), macLabel, macBytes))));
  return macKey;
}

function macOf(macKey: Buffer, sequence: number, data: Uint8Array): Buffer {
  return createHmac('sha256', macKey).update(`${sequence}\0`).update(data).digest();
}

/** The header value for a message that is to take stream sequence `sequence`, under the keyring's current key. */
export function signRevision(keyring: SecretsKeyring, sequence: number, data: Uint8Array): string {
  const key = keyring.current;
  if (key === null) throw new Error('no config secrets key to sign the revision with');
  return `${key.id}:${macOf(macKeyOf(key.key), sequence, data).toString('base64')}`;
}

/**
 * Whether the message at `sequence` may be applied: null when it carries a valid MAC under one of the
 * keyring's keys. `forged` (no MAC, or one that does not verify under a key this replica holds): every
 * replica skips it alike. `unknown-key`: written under a key this replica lacks, so it cannot tell; it
 * stops rather than skip what may be the shared history (a replica given the wrong key must not drift
 * away from the others in silence).
 */
export function revisionMacProblem(keyring: SecretsKeyring, sequence: number, data: Uint8Array, header: string | undefined): { kind: 'forged' | 'unknown-key'; reason: string } | null {
  if (!header) return { kind: 'forged', reason: 'it carries no MAC (not written by a control-plane replica)' };
  const colon = header.indexOf(':');
  const id = colon < 0 ? '' : header.slice(0, colon);
  if (!/^[0-9a-f]{16}$/.test(id)) return { kind: 'forged', reason: 'its MAC header is malformed' };
  const key = keyring.all.find((k) => k.id === id);
  if (key === undefined) return { kind: 'unknown-key', reason: `its MAC is under config secrets key ${id}, which this replica does not have` };
  const given = Buffer.from(header.slice(colon + 1), 'base64');
  if (given.length !== macBytes || !timingSafeEqual(given, macOf(macKeyOf(key.key), sequence, data))) {
    return { kind: 'forged', reason: 'its MAC does not verify (altered, published by something without the key, or moved to another sequence)' };
  }
  return null;
}

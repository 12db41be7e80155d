// Signed checkpoints: an Ed25519 signature over "the chain up to seq ends in
// hash". Whoever can rewrite the database can recompute hashes, but cannot
// forge a signature without the private key.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Checkpoint {
  seq: number;
  hash: string;
  createdAtMs: number;
  keyId: string;
  signature: string;
}

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
}

export const privateKeyFile = 'audit-signing-key.pem';
export const publicKeyFile = 'audit-signing-key.pub.pem';

export function checkpointMessage(seq: number, hash: string, createdAtMs: number): Buffer {
  return Buffer.from(`mandate-audit-checkpoint/v1\n${seq}\n${hash}\n${createdAtMs}`);
}

/** First 16 hex digits of the SHA-256 of the public key (SPKI DER). */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

export function signCheckpoint(key: SigningKey, seq: number, hash: string, createdAtMs: number): Checkpoint {
  const signature = sign(null, checkpointMessage(seq, hash, createdAtMs), key.privateKey).toString('base64');
  return { seq, hash, createdAtMs, keyId: key.keyId, signature };
}

export function checkpointSignatureValid(checkpoint: Checkpoint, publicKey: KeyObject): boolean {
  try {
    return verify(null, checkpointMessage(checkpoint.seq, checkpoint.hash, checkpoint.createdAtMs), publicKey, Buffer.from(checkpoint.signature, 'base64'));
  } catch {
    return false;
  }
}

/**
 * The signing key: the one given (a KeyObject or a PEM file path), else the
 * key in `<directory>/keys`, created there (mode 0600) on first use.
 */
export function loadSigningKey(directory: string, given?: KeyObject | string): SigningKey {
  let privateKey: KeyObject;
  if (given !== undefined) {
    privateKey = typeof given === 'string' ? createPrivateKey(readFileSync(given)) : given;
  } else {
    const keyDirectory = join(directory, 'keys');
    const privatePath = join(keyDirectory, privateKeyFile);
    if (existsSync(privatePath)) {
      privateKey = createPrivateKey(readFileSync(privatePath));
    } else {
      mkdirSync(keyDirectory, { recursive: true, mode: 0o700 });
      const pair = generateKeyPairSync('ed25519');
      privateKey = pair.privateKey;
      writeFileSync(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      chmodSync(privatePath, 0o600);
      writeFileSync(join(keyDirectory, publicKeyFile), pair.publicKey.export({ type: 'spki', format: 'pem' }));
    }
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`the audit signing key must be Ed25519, not ${privateKey.asymmetricKeyType}`);
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

/** The public key to verify with: the file given, else the one beside the local private key, else none. */
export function loadVerifyKey(directory: string, publicKeyPath?: string): { key: KeyObject; source: 'given' | 'local' } | null {
  if (publicKeyPath) return { key: createPublicKey(readFileSync(publicKeyPath)), source: 'given' };
  const local = join(directory, 'keys', publicKeyFile);
  if (existsSync(local)) return { key: createPublicKey(readFileSync(local)), source: 'local' };
  return null;
}

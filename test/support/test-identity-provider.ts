// A stand-in identity provider for JWT tests: signing keys of the usual kinds, a JWKS
// document, JWTs signed with node:crypto, and an HTTP server that publishes the JWKS
// (its keys can be rotated while it runs).
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SigningKey {
  kid: string;
  alg: 'RS256' | 'PS256' | 'ES256' | 'EdDSA';
  privateKey: KeyObject;
  publicJwk: Record<string, unknown>;
}

export function newSigningKey(kid: string, alg: SigningKey['alg']): SigningKey {
  const pair =
    alg === 'RS256' || alg === 'PS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
        : generateKeyPairSync('ed25519');
  return { kid, alg, privateKey: pair.privateKey, publicJwk: { ...pair.publicKey.export({ format: 'jwk' }), kid, use: 'sig' } };
}

export function signJwt(key: SigningKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${encode({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header })}.${encode(claims)}`;
  const data = Buffer.from(signingInput);
  const signature =
    key.alg === 'RS256'
      ? sign('sha256', data, key.privateKey)
      : key.alg === 'PS256'
        ? sign('sha256', data, { key: key.privateKey, padding: 6, saltLength: 32 })
        : key.alg === 'ES256'
          ? sign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
          : sign(null, data, key.privateKey);
  return `${signingInput}.${signature.toString('base64url')}`;
}

export interface TestIdentityProvider {
  issuer: string;
  jwksUri: string;
  /** JWKS fetches so far. */
  fetches: number;
  publish(keys: SigningKey[]): void;
  close(): Promise<void>;
}

export async function startTestIdentityProvider(keys: SigningKey[]): Promise<TestIdentityProvider> {
  let published = keys;
  const provider = { fetches: 0 } as TestIdentityProvider;
  const server: Server = createServer((request, response) => {
    if (request.url !== '/jwks.json') {
      response.writeHead(404).end();
      return;
    }
    provider.fetches += 1;
    const body = JSON.stringify({ keys: published.map((k) => k.publicJwk) });
    response.writeHead(200, { 'content-type': 'application/jwk-set+json', etag: createHash('sha256').update(body).digest('hex') }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  provider.issuer = `${base}/`;
  provider.jwksUri = `${base}/jwks.json`;
  provider.publish = (next) => (published = next);
  provider.close = () => new Promise((resolve) => server.close(() => resolve()));
  return provider;
}

// The signing keys of the identity providers Personas trust, fetched from their
// JWKS URIs and kept fresh off the request path. A request reads what is cached
// (synchronously); a token naming a key the cache lacks asks for an early refresh,
// at most once per interval, so a key rotation at the issuer is picked up within
// seconds while a flood of forged kids cannot hammer the issuer.
import { createPublicKey } from 'node:crypto';
import type { IssuerKeys, VerificationKey } from './jwt.ts';

export interface JwksCacheOptions {
  log: (event: string, fields: Record<string, unknown>) => void;
  /** How often tracked key sets are refetched. Default 5 minutes. */
  refreshMs?: number;
  /** The soonest a key set is refetched after the previous fetch (early refreshes, failures). Default 30 s. */
  minRefreshMs?: number;
  /** A fetch that takes longer fails. Default 5 s. */
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

export interface JwksCache {
  /** The key set of `uri` as last fetched; null before the first successful fetch. */
  keys(uri: string): IssuerKeys | null;
  /** Keeps exactly these key sets fresh (each policy version calls it with the URIs its Personas name). */
  track(uris: Iterable<string>): void;
  /** A token named a key `uri` does not have, or none is loaded: refetch soon. */
  refreshSoon(uri: string): void;
  /** Resolves once every tracked key set has been fetched once (or failed), for startup and tests. */
  settled(): Promise<void>;
  /** Each tracked key set: how many keys it holds (null before the first successful fetch), and when it was last fetched. */
  status(): { uri: string; keys: number | null; lastSuccessMs: number | null }[];
  stop(): void;
}

const maxKeys = 100;
const maxBodyBytes = 1024 * 1024;

/** The verification keys of a JWKS document: public signing keys only (RSA of 2048 bits or more); anything else is skipped. */
export function parseJwks(document: unknown): { keys: IssuerKeys; skipped: number } {
  const byKid = new Map<string, VerificationKey>();
  const unnamed: VerificationKey[] = [];
  let skipped = 0;
  const entries = document !== null && typeof document === 'object' && Array.isArray((document as { keys?: unknown }).keys) ? ((document as { keys: unknown[] }).keys) : null;
  if (entries === null) throw new Error('not a JWKS document (no "keys" array)');
  for (const jwk of entries.slice(0, maxKeys)) {
    if (jwk === null || typeof jwk !== 'object') {
      skipped += 1;
      continue;
    }
    const { kty, use, kid, alg, d } = jwk as Record<string, unknown>;
    if ((use !== undefined && use !== 'sig') || !['RSA', 'EC', 'OKP'].includes(String(kty)) || d !== undefined) {
      skipped += 1;
      continue;
    }
    try {
      const key = createPublicKey({ key: jwk as never, format: 'jwk' });
      // RSA keys under 2048 bits are breakable: a JWKS that offers one is not trusted with it.
      if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
        skipped += 1;
        continue;
      }
      const entry: VerificationKey = { key, alg: typeof alg === 'string' ? alg : null };
      if (typeof kid === 'string') byKid.set(kid, entry);
      else unnamed.push(entry);
    } catch {
      skipped += 1;
    }
  }
  skipped += Math.max(0, entries.length - maxKeys);
  return { keys: { byKid, unnamed }, skipped };
}

interface Tracked {
  keys: IssuerKeys | null;
  lastSuccess: number | null;
  lastAttempt: number;
  inFlight: Promise<void> | null;
  timer: NodeJS.Timeout | null;
}

export function createJwksCache(options: JwksCacheOptions): JwksCache {
  const refreshMs = options.refreshMs ?? 5 * 60_000;
  const minRefreshMs = options.minRefreshMs ?? 30_000;
  const timeoutMs = options.timeoutMs ?? 5000;
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const tracked = new Map<string, Tracked>();
  let stopped = false;

  async function load(uri: string, entry: Tracked): Promise<void> {
    entry.lastAttempt = now();
    try {
      const response = await doFetch(uri, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json, application/jwk-set+json' }, redirect: 'error' });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.arrayBuffer();
      if (body.byteLength > maxBodyBytes) throw new Error(`larger than ${maxBodyBytes} bytes`);
      const { keys, skipped } = parseJwks(JSON.parse(Buffer.from(body).toString('utf8')));
      entry.keys = keys;
      entry.lastSuccess = now();
      options.log('jwks_loaded', { uri, keys: keys.byKid.size + keys.unnamed.length, skipped });
    } catch (error) {
      // The previous keys stay in force: an issuer's outage must not lock every agent out at once.
      options.log('jwks_fetch_failed', { uri, error: (error as Error).message, keptKeys: entry.keys !== null });
    }
  }

  function fetchNow(uri: string, entry: Tracked): Promise<void> {
    if (entry.inFlight) return entry.inFlight;
    entry.inFlight = load(uri, entry).finally(() => {
      entry.inFlight = null;
      schedule(uri, entry, entry.keys === null ? minRefreshMs : refreshMs);
    });
    return entry.inFlight;
  }

  function schedule(uri: string, entry: Tracked, delayMs: number): void {
    if (stopped || tracked.get(uri) !== entry) return;
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = setTimeout(() => void fetchNow(uri, entry), delayMs);
    entry.timer.unref();
  }

  return {
    keys: (uri) => tracked.get(uri)?.keys ?? null,
    track(uris) {
      const wanted = new Set(uris);
      for (const [uri, entry] of tracked) {
        if (wanted.has(uri)) continue;
        if (entry.timer) clearTimeout(entry.timer);
        tracked.delete(uri);
      }
      for (const uri of wanted) {
        if (tracked.has(uri) || stopped) continue;
        const entry: Tracked = { keys: null, lastSuccess: null, lastAttempt: 0, inFlight: null, timer: null };
        tracked.set(uri, entry);
        void fetchNow(uri, entry);
      }
    },
    refreshSoon(uri) {
      const entry = tracked.get(uri);
      if (!entry || entry.inFlight || stopped) return;
      const wait = entry.lastAttempt + minRefreshMs - now();
      if (wait <= 0) void fetchNow(uri, entry);
      else schedule(uri, entry, wait);
    },
    status() {
      return [...tracked].map(([uri, e]) => ({ uri, keys: e.keys === null ? null : e.keys.byKid.size + e.keys.unnamed.length, lastSuccessMs: e.lastSuccess }));
    },
    async settled() {
      await Promise.all([...tracked.values()].map((e) => e.inFlight));
    },
    stop() {
      stopped = true;
      for (const entry of tracked.values()) if (entry.timer) clearTimeout(entry.timer);
    },
  };
}

// Follows the control plane's policy stream (newline-delimited JSON snapshots)
// and keeps the last good compiled policy. A snapshot that fails to compile is
// logged and ignored; the previous one stays in force. On disconnect it keeps
// serving the last policy and reconnects with backoff.
import type { PolicySnapshot } from '../config/bundle.ts';
import { compilePolicy, type CompiledPersona, type CompiledPolicy, type CompilePolicyOptions } from './policy/compile-policy.ts';

export interface PolicySource {
  current(): CompiledPolicy | null;
  /** Resolves once a policy at or above this version is in force. */
  waitForVersion(version: number, timeoutMs: number): Promise<boolean>;
  close(): void;
}

export function followPolicyStream(options: {
  url: string;
  token: string;
  log: (event: string, fields: Record<string, unknown>) => void;
  onPolicy?: (policy: CompiledPolicy) => void;
  compile?: CompilePolicyOptions;
}): PolicySource {
  let current: CompiledPolicy | null = null;
  // Personas unchanged since the previous version are not compiled again.
  const personaCache = new Map<string, CompiledPersona>();
  let closed = false;
  let controller: AbortController | null = null;
  const waiters = new Set<{ version: number; resolve: (ok: boolean) => void }>();

  const install = (snapshot: PolicySnapshot) => {
    if (current && snapshot.version <= current.version) return;
    const started = performance.now();
    const compiled = compilePolicy(snapshot, { ...options.compile, personaCache });
    if (!compiled.ok) {
      options.log('policy_rejected', { version: snapshot.version, issues: compiled.issues });
      return;
    }
    current = compiled.policy;
    options.log('policy_installed', { version: current.version, personas: current.personas.size, compileMs: Math.round(performance.now() - started) });
    options.onPolicy?.(current);
    for (const waiter of waiters) {
      if (current.version >= waiter.version) {
        waiters.delete(waiter);
        waiter.resolve(true);
      }
    }
  };

  const run = async () => {
    let backoffMs = 200;
    while (!closed) {
      controller = new AbortController();
      try {
        const response = await fetch(options.url, { headers: { authorization: `Bearer ${options.token}` }, signal: controller.signal });
        if (!response.ok || !response.body) throw new Error(`policy stream answered HTTP ${response.status}`);
        backoffMs = 200;
        const decoder = new TextDecoder();
        let buffered = '';
        for await (const chunk of response.body) {
          buffered += decoder.decode(chunk as Uint8Array, { stream: true });
          let newline: number;
          while ((newline = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, newline).trim();
            buffered = buffered.slice(newline + 1);
            if (line === '') continue;
            const message = JSON.parse(line) as PolicySnapshot | { heartbeat: true };
            if ('heartbeat' in message) continue;
            install(message);
          }
        }
        throw new Error('policy stream ended');
      } catch (error) {
        if (closed) return;
        options.log('policy_stream_disconnected', { error: (error as Error).message, retryInMs: backoffMs });
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
        backoffMs = Math.min(backoffMs * 2, 5000);
      }
    }
  };
  void run();

  return {
    current: () => current,
    waitForVersion(version, timeoutMs) {
      if (current && current.version >= version) return Promise.resolve(true);
      return new Promise((resolve) => {
        const waiter = { version, resolve };
        waiters.add(waiter);
        setTimeout(() => {
          if (waiters.delete(waiter)) resolve(false);
        }, timeoutMs).unref();
      });
    },
    close() {
      closed = true;
      controller?.abort();
    },
  };
}

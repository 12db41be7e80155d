// Resolves Upstream.auth secrets into the header the data path injects.
// Runs at apply time (a missing env var is a config issue) and at snapshot build.
import type { ConfigBundle, ConfigIssue, UpstreamCredentialHeader } from '../../config/bundle.ts';
import type { SecretValue, Upstream } from '../../config/schema.ts';

export type SecretEnvironment = Record<string, string | undefined>;

export interface ResolvedUpstreamCredentials {
  headers: Record<string, UpstreamCredentialHeader>;
  /** Paths are relative to the bundle: ['upstreams', index, 'auth', ...]. */
  issues: ConfigIssue[];
}

export function resolveUpstreamCredentials(bundle: ConfigBundle, env: SecretEnvironment): ResolvedUpstreamCredentials {
  const headers: Record<string, UpstreamCredentialHeader> = {};
  const issues: ConfigIssue[] = [];
  bundle.upstreams.forEach((upstream, index) => {
    const resolved = resolveUpstreamAuth(upstream, env);
    if ('issue' in resolved) {
      issues.push({ ...resolved.issue, path: ['upstreams', index, ...resolved.issue.path] });
    } else if (resolved.header) {
      headers[upstream.name] = resolved.header;
    }
  });
  return { headers, issues };
}

function resolveUpstreamAuth(upstream: Upstream, env: SecretEnvironment): { header: UpstreamCredentialHeader | null } | { issue: ConfigIssue } {
  const auth = upstream.auth;
  if (auth.type === 'none') return { header: null };
  const [field, secret] = auth.type === 'bearer' ? (['token', auth.token] as const) : (['value', auth.value] as const);
  if ('env' in secret) {
    const value = env[secret.env];
    if (value === undefined || value === '') {
      return { issue: { path: ['auth', field, 'env'], code: 'missing_secret_env', message: `environment variable ${secret.env} is not set on the control plane` } };
    }
  }
  const resolved = resolveSecret(secret, env);
  if (auth.type === 'bearer') return { header: { header: 'authorization', value: `Bearer ${resolved}` } };
  return { header: { header: auth.header, value: resolved } };
}

function resolveSecret(secret: SecretValue, env: SecretEnvironment): string {
  return 'value' in secret ? secret.value : (env[secret.env] ?? '');
}

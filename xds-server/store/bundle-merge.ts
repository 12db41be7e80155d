// Pure config changes: submitted documents (or a removal) applied to the
// current bundle give the next bundle, or the issues that refuse it. The store
// commits what this returns; nothing here touches the database or the clock.
import { configDocumentSchema, type ConfigDocument, type ConfigKind, type SecretValue } from '../../config/schema.ts';
import { schemaIssueCode, validateBundleReferences, type ConfigBundle, type ConfigIssue } from '../../config/bundle.ts';
import { resolveUpstreamCredentials, type SecretEnvironment } from './upstream-secrets.ts';

/** What the admin API shows instead of a secret; applying it back keeps the stored secret. */
export const maskedSecretValue = '***';

export type BundleField = 'personas' | 'skills' | 'upstreams';

export const bundleFieldOfKind: Record<ConfigKind, BundleField> = { Persona: 'personas', Skill: 'skills', Upstream: 'upstreams' };

export interface ConfigChange {
  kind: ConfigKind;
  name: string;
  action: 'created' | 'updated' | 'deleted';
}

export type BundleChangeResult = { ok: true; bundle: ConfigBundle; changes: ConfigChange[] } | { ok: false; issues: ConfigIssue[] };

/** Where an object of the next bundle came from, so issues point at what the admin wrote. */
type Origin = { documentIndex: number } | { storedName: string };

const bundleFields: readonly BundleField[] = ['upstreams', 'skills', 'personas'];

export function emptyBundle(): ConfigBundle {
  return { upstreams: [], skills: [], personas: [] };
}

/** Validates each raw document; issue paths start with ['documents', index]. */
export function parseConfigDocuments(documents: readonly unknown[]): { ok: true; documents: ConfigDocument[] } | { ok: false; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const parsed: ConfigDocument[] = [];
  const seen = new Map<string, number>();
  documents.forEach((raw, index) => {
    const result = configDocumentSchema.safeParse(raw);
    if (!result.success) {
      for (const issue of result.error.issues) {
        issues.push({ path: ['documents', index, ...issue.path.filter(isPathSegment)], code: schemaIssueCode(issue), message: issue.message });
      }
      return;
    }
    const key = `${result.data.kind}/${result.data.name}`;
    const first = seen.get(key);
    if (first !== undefined) {
      issues.push({ path: ['documents', index, 'name'], code: 'duplicate_document', message: `${key} is also defined by document ${first}` });
      return;
    }
    seen.set(key, index);
    parsed.push(result.data);
  });
  return issues.length > 0 ? { ok: false, issues } : { ok: true, documents: parsed };
}

/**
 * Upserts documents into the bundle by kind and name; with `prune`, objects the
 * documents do not mention are removed. References and secrets are checked on
 * the result as a whole.
 */
export function applyDocuments(current: ConfigBundle, rawDocuments: readonly unknown[], options: { prune: boolean; env: SecretEnvironment }): BundleChangeResult {
  const parsed = parseConfigDocuments(rawDocuments);
  if (!parsed.ok) return parsed;

  const issues: ConfigIssue[] = [];
  const next = emptyBundle();
  const origins: Record<BundleField, Map<string, Origin>> = { upstreams: new Map(), skills: new Map(), personas: new Map() };
  const changes: ConfigChange[] = [];
  const submitted = new Map<string, { document: ConfigDocument; index: number }>();
  // parseConfigDocuments only succeeds when every document parsed, in order, so indexes line up.
  parsed.documents.forEach((document, index) => submitted.set(`${document.kind}/${document.name}`, { document, index }));

  for (const field of bundleFields) {
    for (const stored of current[field]) {
      const key = `${kindOfField(field)}/${stored.name}`;
      if (submitted.has(key)) continue;
      if (options.prune) {
        changes.push({ kind: kindOfField(field), name: stored.name, action: 'deleted' });
        continue;
      }
      pushObject(next, field, stored);
      origins[field].set(stored.name, { storedName: stored.name });
    }
  }
  for (const { document, index } of submitted.values()) {
    const field = bundleFieldOfKind[document.kind];
    const stored = (current[field] as ConfigDocument[]).find((o) => o.name === document.name);
    const restored = document.kind === 'Upstream' ? restoreMaskedSecrets(document, stored?.kind === 'Upstream' ? stored : undefined, index, issues) : document;
    pushObject(next, field, restored);
    origins[field].set(document.name, { documentIndex: index });
    if (!stored) changes.push({ kind: document.kind, name: document.name, action: 'created' });
    else if (canonicalJson(stored) !== canonicalJson(restored)) changes.push({ kind: document.kind, name: document.name, action: 'updated' });
  }
  if (issues.length > 0) return { ok: false, issues };
  sortBundle(next);

  const bundleIssues = [...validateBundleReferences(next), ...resolveUpstreamCredentials(next, options.env).issues];
  if (bundleIssues.length > 0) return { ok: false, issues: bundleIssues.map((issue) => locateIssue(issue, next, origins)) };
  return { ok: true, bundle: next, changes: sortChanges(changes) };
}

/** Removes one object; refused with the referencing paths if anything still uses it. */
export function removeObject(current: ConfigBundle, kind: ConfigKind, name: string): BundleChangeResult {
  const field = bundleFieldOfKind[kind];
  if (!current[field].some((o) => o.name === name)) {
    return { ok: false, issues: [{ path: [field, name], code: 'not_found', message: `no ${kind} named "${name}"` }] };
  }
  const next: ConfigBundle = { ...current, [field]: current[field].filter((o) => o.name !== name) };
  const issues = validateBundleReferences(next).map((issue) => locateIssue(issue, next, storedOrigins(next)));
  if (issues.length > 0) {
    return {
      ok: false,
      issues: issues.map((issue) =>
        issue.code === 'unknown_upstream' || issue.code === 'unknown_skill'
          ? { path: issue.path, code: 'still_referenced', message: `${kind} "${name}" is still referenced here; change or remove this reference first` }
          : issue,
      ),
    };
  }
  return { ok: true, bundle: next, changes: [{ kind, name, action: 'deleted' }] };
}

/** Key-order-independent JSON, so "unchanged" means equal content. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) =>
    inner && typeof inner === 'object' && !Array.isArray(inner)
      ? Object.fromEntries(Object.entries(inner as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : inner,
  );
}

export function describeChanges(changes: readonly ConfigChange[]): string {
  if (changes.length === 0) return 'no changes';
  return changes.map((c) => `${c.action} ${c.kind}/${c.name}`).join(', ');
}

function restoreMaskedSecrets(
  document: Extract<ConfigDocument, { kind: 'Upstream' }>,
  stored: Extract<ConfigDocument, { kind: 'Upstream' }> | undefined,
  index: number,
  issues: ConfigIssue[],
): Extract<ConfigDocument, { kind: 'Upstream' }> {
  const auth = document.auth;
  if (auth.type === 'none') return document;
  const field = auth.type === 'bearer' ? 'token' : 'value';
  const secret: SecretValue = auth.type === 'bearer' ? auth.token : auth.value;
  if (!('value' in secret) || secret.value !== maskedSecretValue) return document;
  const storedAuth = stored?.auth;
  const storedSecret = storedAuth?.type === auth.type ? (storedAuth.type === 'bearer' ? storedAuth.token : storedAuth.type === 'header' ? storedAuth.value : undefined) : undefined;
  if (!storedSecret) {
    issues.push({
      path: ['documents', index, 'auth', field, 'value'],
      code: 'masked_secret',
      message: `"${maskedSecretValue}" is the placeholder the admin API shows for a secret, and there is no stored secret to keep; give the real secret or {env: NAME}`,
    });
    return document;
  }
  return { ...document, auth: auth.type === 'bearer' ? { ...auth, token: storedSecret } : { ...auth, value: storedSecret } };
}

function locateIssue(issue: ConfigIssue, bundle: ConfigBundle, origins: Record<BundleField, Map<string, Origin>>): ConfigIssue {
  const [field, index, ...rest] = issue.path;
  if (!isBundleField(field) || typeof index !== 'number') return issue;
  const object = bundle[field][index];
  const origin = object ? origins[field].get(object.name) : undefined;
  if (!object || !origin) return issue;
  return { ...issue, path: 'documentIndex' in origin ? ['documents', origin.documentIndex, ...rest] : [field, object.name, ...rest] };
}

function storedOrigins(bundle: ConfigBundle): Record<BundleField, Map<string, Origin>> {
  const originsOf = (names: string[]) => new Map(names.map((name): [string, Origin] => [name, { storedName: name }]));
  return {
    upstreams: originsOf(bundle.upstreams.map((o) => o.name)),
    skills: originsOf(bundle.skills.map((o) => o.name)),
    personas: originsOf(bundle.personas.map((o) => o.name)),
  };
}

function pushObject(bundle: ConfigBundle, field: BundleField, object: ConfigDocument): void {
  (bundle[field] as ConfigDocument[]).push(object);
}

function sortBundle(bundle: ConfigBundle): void {
  for (const field of bundleFields) (bundle[field] as ConfigDocument[]).sort((a, b) => compareText(a.name, b.name));
}

function sortChanges(changes: ConfigChange[]): ConfigChange[] {
  return changes.sort((a, b) => compareText(a.kind, b.kind) || compareText(a.name, b.name));
}

function kindOfField(field: BundleField): ConfigKind {
  return field === 'personas' ? 'Persona' : field === 'skills' ? 'Skill' : 'Upstream';
}

function isBundleField(value: unknown): value is BundleField {
  return value === 'personas' || value === 'skills' || value === 'upstreams';
}

function isPathSegment(segment: PropertyKey): segment is string | number {
  return typeof segment === 'string' || typeof segment === 'number';
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

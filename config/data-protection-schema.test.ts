import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfigDocuments } from '../xds-server/store/bundle-merge.ts';
import { compileDataProtection } from '../ext-proc/dlp/compile.ts';
import { externalDlpSchema } from './data-protection-schema.ts';
import { maxInlineExternalDlpWaitMs } from './ext-proc-wait.ts';

/** The config issues for a Persona with these external DLP services, as the admin API reports them. */
function issuesOf(external: unknown[]): { path: (string | number)[]; code: string; message: string }[] {
  const parsed = parseConfigDocuments([{ kind: 'Persona', name: 'p', description: 'd', dataProtection: { external } }]);
  return parsed.ok ? [] : parsed.issues;
}

test('external DLP URLs are read with a real URL parser: a host, a port in range, the scheme of the type, no credentials', () => {
  const cases: [string, 'icap' | 'webhook', string][] = [
    ['icap://127.0.0.1:99999/x', 'icap', 'external_url_invalid'],
    ['icap:///x', 'icap', 'external_url_invalid'],
    ['icap://dlp:0/x', 'icap', 'external_url_invalid'],
    ['icap://[::1/x', 'icap', 'external_url_invalid'],
    ['http://dlp/x', 'icap', 'external_url_scheme'],
    ['icap://dlp/x', 'webhook', 'external_url_scheme'],
    ['icap://svc:S3cret@dlp:1344/x', 'icap', 'external_url_credentials'],
    ['https://svcuser:S3cret@dlp.example/scan', 'webhook', 'external_url_credentials'],
    ['https://token@dlp.example/scan', 'webhook', 'external_url_credentials'],
  ];
  for (const [url, type, code] of cases) {
    const issues = issuesOf([{ type, url }]);
    assert.deepEqual(issues.map((i) => [i.path.join('.'), i.code]), [['documents.0.dataProtection.external.0.url', code]], url);
    assert.ok(!issues[0]!.message.includes('S3cret'), 'the message does not repeat the URL');
    const compiled = compileDataProtection({ external: [{ type, url }] } as never, { basePath: ['dataProtection'] });
    assert.ok(!compiled.ok && compiled.issues[0]!.code === code && compiled.issues[0]!.path.join('.') === 'dataProtection.external.0.url', url);
  }
  for (const [url, type] of [['icap://dlp.internal:1344/reqmod', 'icap'], ['icap://[::1]/dlp', 'icap'], ['https://dlp.example:8443/scan', 'webhook'], ['http://10.0.0.9/scan?tenant=a', 'webhook']] as const) {
    assert.deepEqual(issuesOf([{ type, url }]), [], url);
  }
});

test('the inline services of one direction may wait 29 s in all: Envoy waits 30 s for ext_proc and ignores a longer override', () => {
  const icap = (timeoutMs: number, more: Record<string, unknown> = {}) => ({ type: 'icap', url: 'icap://dlp/x', timeoutMs, ...more });
  assert.deepEqual(issuesOf([icap(29_000)]), []);
  const alone = issuesOf([icap(29_500, { failMode: 'open' })]);
  assert.deepEqual(alone.map((i) => [i.path.join('.'), i.code]), [['documents.0.dataProtection.external.0.timeoutMs', 'external_dlp_wait_too_long']]);
  assert.match(alone[0]!.message, /29000 ms/);
  const twice = issuesOf([icap(15_000, { directions: ['request'] }), { type: 'webhook', url: 'http://dlp/scan', timeoutMs: 15_000, directions: ['request'] }]);
  assert.deepEqual(twice.map((i) => [i.path.join('.'), i.code]), [['documents.0.dataProtection.external.1.timeoutMs', 'external_dlp_wait_too_long']]);
  assert.match(twice[0]!.message, /requests wait up to 30000 ms/);
  // Different directions, or an async service (which holds nothing), do not add up.
  assert.deepEqual(issuesOf([icap(15_000, { directions: ['request'] }), icap(15_000, { directions: ['response'] }), icap(60_000, { mode: 'async' })]), []);
});

test("an inline service's timeoutMs is bounded by the inline ceiling, an async one's by its own: the field says so and the check names it", () => {
  const icap = (timeoutMs: number, more: Record<string, unknown> = {}) => ({ type: 'icap', url: 'icap://dlp/x', timeoutMs, ...more });
  // One inline service past the ceiling is out of the field's bounds, reported once, naming both caps.
  const alone = issuesOf([icap(45_000)]);
  assert.deepEqual(alone.map((i) => [i.path.join('.'), i.code]), [['documents.0.dataProtection.external.0.timeoutMs', 'external_dlp_wait_too_long']]);
  assert.match(alone[0]!.message, new RegExp(`inline service waits at most ${maxInlineExternalDlpWaitMs} ms.*async.*60000 ms`));
  assert.deepEqual(issuesOf([icap(60_000, { mode: 'async' })]), []);
  assert.deepEqual(issuesOf([icap(60_001, { mode: 'async' })]).map((i) => i.code), ['too_big']);
  // The field's description states the same bounds as the checks.
  const description = externalDlpSchema.shape.timeoutMs.description ?? '';
  assert.match(description, new RegExp(`inline: at most ${maxInlineExternalDlpWaitMs} ms`));
  assert.match(description, /async: at most 60000 ms/);
});

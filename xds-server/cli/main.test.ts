import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { openConfigStore, type ConfigStore } from '../store/config-store.ts';
import { createAdminServer } from '../admin/admin-server.ts';
import { runCli, runDispatched } from './main.ts';

const adminToken = 'cli-test-admin-token';
let dir: string;
let store: ConfigStore;
let server: Server;
let adminUrl: string;

const configYaml = `# Support desk
kind: Upstream
name: tickets
protocol: mcp
url: http://127.0.0.1:3001/mcp
auth:
  type: bearer
  token: {value: tickets-secret}
---
kind: Skill
name: read-tickets
grants:
  - upstream: tickets
    tools:
      - name: list_*
---
kind: Persona
name: support
description: Answers customer tickets
network:
  allow: [10.0.0.0/8]
skills: [read-tickets]
grants:
  - upstream: tickets
    tools:
      - name: get_ticket
        when: args.id != ""
`;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mandate-cli-'));
  store = openConfigStore({ path: join(dir, 'config.db'), env: {} });
  server = createAdminServer({ store, adminToken, internalToken: 'unused', xdsStatus: () => [] });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  adminUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  writeFileSync(join(dir, 'personas.yaml'), configYaml);
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function mandate(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    env: { MANDATE_ADMIN_URL: adminUrl, MANDATE_ADMIN_TOKEN: adminToken },
    cwd: dir,
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    readStdin: async () => '',
  });
  return { code, stdout, stderr };
}

test('apply -f a YAML file commits it; applying again changes nothing', async () => {
  const applied = await mandate('apply', '-f', 'personas.yaml');
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /changed Persona\/support\nchanged Skill\/read-tickets\nchanged Upstream\/tickets\nconfig version 2\n/);
  assert.equal(store.current().bundle.personas[0]?.name, 'support');
  const again = await mandate('apply', '-f', 'personas.yaml', '--dry-run');
  assert.equal(again.stdout, 'no changes (config version 2)\n');
});

test('get lists as a table, and as YAML with secrets masked', async () => {
  const table = await mandate('get', 'personas');
  assert.equal(table.code, 0);
  assert.match(table.stdout, /^NAME\s+MODE\s+ENDPOINT\s+SKILLS\s+GRANTS\nsupport\s+enforce\s+\/personas\/support\s+read-tickets\s+1\n$/);
  const yamlOut = await mandate('get', 'upstream', 'tickets', '-o', 'yaml');
  assert.match(yamlOut.stdout, /kind: Upstream/);
  assert.match(yamlOut.stdout, /value: "\*\*\*"/);
  assert.ok(!yamlOut.stdout.includes('tickets-secret'));
  const json = await mandate('get', 'skills', '-o', 'json');
  assert.deepEqual((JSON.parse(json.stdout) as { name: string }[]).map((s) => s.name), ['read-tickets']);
  const missing = await mandate('get', 'persona', 'ghost');
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^error: not_found: /);
});

test('credentials issue, describe shows effective grants, endpoint, network and the credential; revoke', async () => {
  const issued = await mandate('credentials', 'issue', '--persona', 'support', '--agent', 'helpdesk-bot', '-o', 'json');
  assert.equal(issued.code, 0, issued.stderr);
  const { id, token } = JSON.parse(issued.stdout) as { id: string; token: string };
  assert.match(token, /^mnd_[0-9a-f]{12}_/);

  const described = await mandate('describe', 'persona', 'support');
  assert.equal(described.code, 0, described.stderr);
  assert.match(described.stdout, /Config version:\s+3/);
  assert.match(described.stdout, /\/personas\/support\/tickets\s+->\s+http:\/\/127\.0\.0\.1:3001\/mcp \(mcp, production\)/);
  assert.match(described.stdout, /allow 10\.0\.0\.0\/8; deny none/);
  // Own grant first, then the skill's.
  assert.match(described.stdout, /tickets {2}tool get_ticket {2}when args\.id != ""\n {2}tickets {2}tool list_\*/);
  assert.match(described.stdout, new RegExp(`${id}\\s+helpdesk-bot\\s+active`));
  const asJson = JSON.parse((await mandate('describe', 'persona', 'support', '-o', 'json')).stdout) as { effectiveGrants: unknown[] };
  assert.equal(asJson.effectiveGrants.length, 2);

  const revoked = await mandate('credentials', 'revoke', id);
  assert.equal(revoked.code, 0);
  assert.match((await mandate('get', 'credentials')).stdout, new RegExp(`${id}\\s+support\\s+helpdesk-bot\\s+revoked`));
});

test('a YAML syntax error is reported with file, line and column, and nothing is sent', async () => {
  writeFileSync(join(dir, 'broken.yaml'), 'kind: Persona\nname: x\ngrants: [\n  {upstream: tickets\n');
  const before = store.current().version;
  const result = await mandate('apply', '-f', 'broken.yaml');
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^error: invalid_yaml: /);
  assert.match(result.stderr, /broken\.yaml:\d+:\d+: /);
  assert.equal(store.current().version, before);
});

test('a schema error names the field path and the line it is on', async () => {
  const text = configYaml.replace('  - upstream: tickets\n    tools:\n      - name: get_ticket', '  - upstream: tikets\n    tools:\n      - name: get_ticket');
  writeFileSync(join(dir, 'typo.yaml'), text);
  const result = await mandate('apply', '-f', 'typo.yaml');
  assert.equal(result.code, 1);
  const line = text.split('\n').findIndex((l) => l.includes('tikets')) + 1;
  assert.match(result.stderr, /^error: invalid_config: /);
  assert.match(result.stderr, new RegExp(`typo\\.yaml:${line}:15: documents\\[2\\]\\.grants\\[0\\]\\.upstream: unknown_upstream: no upstream named "tikets"`));

  writeFileSync(join(dir, 'bad-mode.yaml'), 'kind: Persona\nname: other\ndescription: x\nmode: loud\n');
  const schema = await mandate('apply', '-f', 'bad-mode.yaml');
  assert.match(schema.stderr, /bad-mode\.yaml:4:7: documents\[0\]\.mode: invalid_value: /);
});

test('delete: a referenced upstream is refused with the referencing path; a persona is deleted', async () => {
  const refused = await mandate('delete', 'upstream', 'tickets');
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^error: conflict: /);
  assert.match(refused.stderr, /personas\.support\.grants\[0\]\.upstream: still_referenced/);
  const deleted = await mandate('delete', 'persona', 'support');
  assert.equal(deleted.code, 0);
  assert.match(deleted.stdout, /deleted Persona\/support/);
  assert.equal(store.current().bundle.personas.length, 0);
});

test('usage errors exit 2; stage commands are dispatched, or reported missing from the build', async () => {
  for (const args of [['get'], ['frobnicate'], ['apply'], ['get', 'personas', '-o', 'xml'], ['delete', 'persona'], ['apply', '-f', 'x', '--bogus']]) {
    const result = await mandate(...args);
    assert.equal(result.code, 2, args.join(' '));
  }
  const status = await mandate('status');
  assert.equal(status.stdout, `config version ${store.current().version}\nno Envoy has connected\n`);

  let stderr = '';
  const io = { env: {}, cwd: dir, stdout: () => {}, stderr: (text: string) => (stderr += text), readStdin: async () => '' };
  assert.equal(await runDispatched('dlp', { module: pathToFileURL(join(dir, 'absent.ts')).href, prefix: [] }, [], io), 2);
  assert.equal(stderr, 'mandate: command "dlp" is not available in this build\n');
  writeFileSync(join(dir, 'stage-cli.ts'), 'export async function run(args: string[]): Promise<number> { return args.join(" ") === "report --since 1d" ? 7 : 3; }\n');
  assert.equal(await runDispatched('report', { module: pathToFileURL(join(dir, 'stage-cli.ts')).href, prefix: ['report'] }, ['--since', '1d'], io), 7);
});

test('as a process: file paths resolve against MANDATE_CWD and the exit code is the result', async () => {
  const run = promisify(execFile);
  const env = { ...process.env, MANDATE_ADMIN_URL: adminUrl, MANDATE_ADMIN_TOKEN: adminToken, MANDATE_CWD: dir };
  const ok = await run(process.execPath, [join(import.meta.dirname, 'main.ts'), 'apply', '-f', 'personas.yaml'], { env, cwd: import.meta.dirname });
  assert.match(ok.stdout, /changed Persona\/support/);
  await assert.rejects(run(process.execPath, [join(import.meta.dirname, 'main.ts'), 'apply', '-f', 'broken.yaml'], { env }), (error: { code: number; stderr: string }) => {
    assert.equal(error.code, 1);
    assert.match(error.stderr, /broken\.yaml:\d+:\d+/);
    return true;
  });
});

test('as a process: each stage command reaches its module with the arguments it expects', async () => {
  const { openAuditLog } = await import('../../ext-proc/audit/log.ts');
  const auditDir = join(dir, 'audit-trail');
  const log = openAuditLog({ directory: auditDir });
  log.append({ kind: 'decision', persona: 'support', agent: 'agent-7', verdict: 'allow' });
  await log.flush();
  await log.close();
  const run = promisify(execFile);
  const mandateCli = (...args: string[]) => run(process.execPath, [join(import.meta.dirname, 'main.ts'), ...args], { env: { ...process.env, MANDATE_CWD: dir } });
  assert.match((await mandateCli('audit', 'verify', '--dir', auditDir)).stdout, /^ok: 1 records/);
  const queried = JSON.parse((await mandateCli('audit', 'query', '--dir', auditDir, '--persona', 'support', '--json')).stdout) as { events: { agent: string }[] };
  assert.deepEqual(queried.events.map((e) => e.agent), ['agent-7']);
  assert.match((await mandateCli('report', '--help')).stdout, /mandate report --agent ID/);
  assert.match((await mandateCli('dlp', 'catalogue', '--profile', 'pci-dss')).stdout, /payment-card/);
  assert.match((await mandateCli('simulate', '--help')).stdout, /mandate simulate --persona FILE/);
  assert.match((await mandateCli('quarantine', '--help')).stdout, /mandate quarantine list/);
});

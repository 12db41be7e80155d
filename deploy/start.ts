// `npm start`: the whole gateway on the embedded default (one machine, SQLite,
// no NATS) with the demo upstreams and Personas, then how to try it.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminRequest, choosePorts, repoRoot, startGateway, waitForEnvoyVersion } from './gateway-processes.ts';
import { checksummedToken } from '../ext-proc/dlp/detectors/secrets.ts';
import { SettingError } from '../config/envoy-memory.ts';

const dataDir = process.env.MANDATE_DATA_DIR ?? join(repoRoot, '.data');
const ports = await choosePorts({
  gateway: 10000,
  xds: 18000,
  admin: 18080,
  extProc: 9002,
  extProcHealth: 9003,
  envoyAdmin: 9901,
  mcpUpstream: 3001,
  restUpstream: 3002,
});
const logDir = join(dataDir, 'logs');
process.stdout.write('Starting Mandate (control plane, ext_proc, Envoy, demo upstreams)...\n');
let gateway;
try {
  gateway = await startGateway({ dataDir, ports, demoUpstreams: true, logDir });
} catch (error) {
  if (error instanceof SettingError) {
    process.stderr.write(`mandate: could not start (${error.code}): ${error.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`mandate: could not start: ${(error as Error).message}\nLogs are in ${logDir}. Is another Mandate already running on ports 10000/18000/18080/9002/9901/3001/3002?\n`);
  process.exit(1);
}

const demo = readFileSync(join(repoRoot, 'deploy/demo/mandate-demo.yaml'), 'utf8');
const applied = await adminRequest(gateway, 'POST', '/v1/apply', demo, 'application/yaml');
if (applied.status !== 200) {
  process.stderr.write(`mandate: the demo config was rejected: ${JSON.stringify(applied.body)}\n`);
  await gateway.stop();
  process.exit(1);
}

// Demo agent credentials: reuse the ones issued on an earlier start while they are still active.
const credentialsFile = join(dataDir, 'demo-credentials.json');
const active = new Set(((await adminRequest(gateway, 'GET', '/v1/credentials')).body.items ?? []).filter((c: { revokedAt?: string | null }) => !c.revokedAt).map((c: { id: string }) => c.id));
let tokens: Record<string, { id: string; token: string }> = existsSync(credentialsFile) ? JSON.parse(readFileSync(credentialsFile, 'utf8')) : {};
for (const persona of ['support-agent', 'research-agent']) {
  if (tokens[persona] && active.has(tokens[persona].id)) continue;
  const issued = await adminRequest(gateway, 'POST', `/v1/personas/${persona}/credentials`, { agent: `demo-${persona}` });
  tokens[persona] = { id: issued.body.id, token: issued.body.token };
}
writeFileSync(credentialsFile, JSON.stringify(tokens, null, 2), { mode: 0o600 });
const version = (await adminRequest(gateway, 'GET', '/v1/status')).body.configVersion as number;
await waitForEnvoyVersion(gateway, version, 15_000);

const g = gateway.gatewayUrl;
// A made-up GitHub token with a valid checksum: one whose checksum fails is not a GitHub token and is let through.
const githubToken = checksummedToken('ghp', '16C7e42F292c6912E7710c838347Ae');
process.stdout.write(`
Mandate is running (config version ${version}).

  Gateway (agents connect here)   ${g}
  Admin API                       ${gateway.adminUrl}   (token ${process.env.MANDATE_ADMIN_TOKEN ? 'from MANDATE_ADMIN_TOKEN' : process.env.MANDATE_ADMIN_TOKEN_FILE ? `in ${process.env.MANDATE_ADMIN_TOKEN_FILE}` : `in ${join(dataDir, 'admin-token')}`})
  Envoy admin                     http://127.0.0.1:${ports.envoyAdmin}
  Logs                            ${logDir}

Demo Personas and their virtual endpoints:
  support-agent   ${g}/personas/support-agent/everything   (MCP: echo, get-sum; cards and credentials masked)
                  ${g}/personas/support-agent/tickets      (REST: GET /tickets/{id}, GET /tickets?project=DEMO)
  research-agent  ${g}/personas/research-agent/everything  (MCP: get-*, monitor mode)

Demo agent tokens are in ${credentialsFile}. Try:

  TOKEN=${tokens['support-agent']!.token}
  # list tools: only echo and get-sum of the reference server's tools are visible
  curl -s ${g}/personas/support-agent/everything -H "authorization: Bearer $TOKEN" \\
    -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}' -i
  # REST: allowed, then refused (project INTERNAL is not granted)
  curl -s "${g}/personas/support-agent/tickets/tickets?project=DEMO" -H "authorization: Bearer $TOKEN"
  curl -s "${g}/personas/support-agent/tickets/tickets?project=INTERNAL" -H "authorization: Bearer $TOKEN"
  # data protection: the card in ticket 4 reaches the agent masked ("**** **** **** 6467")
  curl -s ${g}/personas/support-agent/tickets/tickets/4 -H "authorization: Bearer $TOKEN"
  # an AWS key in a tool argument is masked before the tool sees it (echo answers with what it got),
  # and a GitHub token is refused: open an MCP session first, then call echo in it
  MCP='-H content-type:application/json -H accept:application/json,text/event-stream -H mcp-protocol-version:2025-06-18'
  SESSION=$(curl -s -D - -o /dev/null ${g}/personas/support-agent/everything -H "authorization: Bearer $TOKEN" $MCP \\
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}' \\
    | tr -d '\\r' | sed -n 's/^mcp-session-id: //ip')
  curl -s ${g}/personas/support-agent/everything -H "authorization: Bearer $TOKEN" -H "mcp-session-id: $SESSION" $MCP \\
    -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"deploy with AKIAZ3MQ7HW2XK4JLP5R"}}}'
  curl -s ${g}/personas/support-agent/everything -H "authorization: Bearer $TOKEN" -H "mcp-session-id: $SESSION" $MCP \\
    -d '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"token ${githubToken}"}}}'
  # the CLI
  npm run mandate -- describe persona support-agent
  npm run mandate -- dlp catalogue --profile pci-dss

Press Ctrl-C to stop.
`);

const shutdown = async () => {
  process.stdout.write('\nStopping Mandate...\n');
  await gateway.stop();
  process.exit(0);
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);

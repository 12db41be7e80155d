// A whole gateway for integration tests: real Envoy, the control plane and
// ext_proc as separate processes, the MCP reference server and the tickets API
// as upstreams, on free loopback ports, with the demo config applied.
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { adminRequest, choosePorts, repoRoot, startGateway, waitForEnvoyVersion, type Gateway } from '../../deploy/gateway-processes.ts';

export interface GatewayFixture extends Gateway {
  tokens: Record<string, string>;
  configVersion(): Promise<number>;
  apply(documents: unknown[]): Promise<number>;
  issueToken(persona: string, agent: string): Promise<{ id: string; token: string }>;
  mcpClient(path: string, token: string | null, headers?: Record<string, string>): Promise<Client>;
}

export function demoDocuments(ports: { mcpUpstream: number; restUpstream: number }): Record<string, unknown>[] {
  const text = readFileSync(join(repoRoot, 'deploy/demo/mandate-demo.yaml'), 'utf8')
    .replace('http://127.0.0.1:3001/mcp', `http://127.0.0.1:${ports.mcpUpstream}/mcp`)
    .replace('http://127.0.0.1:3002/api', `http://127.0.0.1:${ports.restUpstream}/api`);
  return parseAllDocuments(text).map((d) => d.toJSON() as Record<string, unknown>);
}

export async function startGatewayFixture(
  options: { demo?: boolean; ports?: Awaited<ReturnType<typeof choosePorts>>; extProcReplicas?: number; controlPlaneReplicas?: number; natsUrl?: string; env?: Record<string, string> } = {},
): Promise<GatewayFixture> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mandate-test-'));
  const ports = options.ports ?? (await choosePorts());
  const gateway = await startGateway({
    dataDir,
    ports,
    demoUpstreams: true,
    logDir: join(dataDir, 'logs'),
    ...(options.extProcReplicas ? { extProcReplicas: options.extProcReplicas } : {}),
    ...(options.controlPlaneReplicas ? { controlPlaneReplicas: options.controlPlaneReplicas } : {}),
    ...(options.natsUrl ? { natsUrl: options.natsUrl } : {}),
    ...(options.env ? { env: options.env } : {}),
  });
  const fixture: GatewayFixture = {
    ...gateway,
    // The data directory (config, audit trail, logs) goes with the gateway; MANDATE_KEEP_TEST_DATA=1 keeps it to look into a failure.
    async stop() {
      await gateway.stop();
      if (!process.env.MANDATE_KEEP_TEST_DATA) rmSync(dataDir, { recursive: true, force: true });
    },
    tokens: {},
    async configVersion() {
      return (await adminRequest(gateway, 'GET', '/v1/status')).body.configVersion as number;
    },
    async apply(documents) {
      const result = await adminRequest(gateway, 'POST', '/v1/apply', { documents });
      if (result.status !== 200) throw new Error(`apply failed: ${JSON.stringify(result.body)}`);
      const version = result.body.version as number;
      await waitForEnvoyVersion(gateway, version);
      return version;
    },
    async issueToken(persona, agent) {
      const result = await adminRequest(gateway, 'POST', `/v1/personas/${persona}/credentials`, { agent });
      if (result.status !== 201) throw new Error(`credential issue failed: ${JSON.stringify(result.body)}`);
      await waitForEnvoyVersion(gateway, result.body.version as number);
      return { id: result.body.id, token: result.body.token };
    },
    async mcpClient(path, token, headers = {}) {
      const transport = new StreamableHTTPClientTransport(new URL(`${gateway.gatewayUrl}${path}`), {
        requestInit: { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } },
      });
      const client = new Client({ name: 'mandate-test-agent', version: '1.0.0' });
      await client.connect(transport);
      return client;
    },
  };
  if (options.demo !== false) {
    await fixture.apply(demoDocuments(ports));
    fixture.tokens['support-agent'] = (await fixture.issueToken('support-agent', 'agent-007')).token;
    fixture.tokens['research-agent'] = (await fixture.issueToken('research-agent', 'agent-008')).token;
  }
  return fixture;
}

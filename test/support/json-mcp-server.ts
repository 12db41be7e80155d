// An MCP upstream built with the official SDK that answers with plain JSON
// (enableJsonResponse) instead of SSE, statelessly: the other response shape
// Mandate must filter.
import { createServer, type Server } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

export const jsonServerTools = ['list_tickets', 'read_ticket', 'delete_ticket', 'send_email'];

export function createJsonMcpServer(): Server {
  return createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const mcp = new McpServer({ name: 'json-tickets', version: '1.0.0' });
    for (const name of jsonServerTools) {
      mcp.tool(name, `${name.replace('_', ' ')}`, async () => ({ content: [{ type: 'text', text: `${name} done` }] }));
    }
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    response.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    await mcp.connect(transport);
    await transport.handleRequest(request, response, text ? JSON.parse(text) : undefined);
  });
}

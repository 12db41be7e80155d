// An MCP upstream built with the official SDK (stateless, plain JSON responses)
// that records the tool arguments exactly as they arrived over the wire, so a
// test can prove what the gateway forwarded, and answers each tool with text
// the test chooses.
import { createServer, type Server } from 'node:http';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

export interface RecordedCall {
  tool: string;
  arguments: unknown;
}

export interface RecordingMcpServer {
  server: Server;
  /** Every tools/call this upstream received, oldest first, arguments as sent on the wire. */
  calls: RecordedCall[];
  /** Every JSON-RPC message this upstream received (requests, notifications, the client's responses), oldest first. */
  messages: unknown[];
  /** The request target of every request, query string included. */
  urls: string[];
}

/** An image content item of a tool result: base64 bytes and their type. */
export interface ImageContent {
  type: 'image';
  data: string;
  mimeType: string;
}

/** Tool name -> the text its result carries (or an error result, or content items of the test's choosing). */
export type ToolAnswers = Record<string, (args: Record<string, unknown>) => string | { error: string } | { content: ({ type: 'text'; text: string } | ImageContent)[] }>;

// Every tool takes any of these optional string arguments.
const argumentShape = {
  id: z.string().optional(),
  text: z.string().optional(),
  to: z.string().optional(),
  note: z.string().optional(),
  token: z.string().optional(),
};

/** `eventStream`: answer each POST as a server-sent event stream (the SDK's default), not as one JSON body. */
export function createRecordingMcpServer(answers: ToolAnswers, options: { eventStream?: boolean } = {}): RecordingMcpServer {
  const calls: RecordedCall[] = [];
  const messages: unknown[] = [];
  const urls: string[] = [];
  const server = createServer(async (request, response) => {
    urls.push(request.url ?? '');
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const body = text ? (JSON.parse(text) as unknown) : undefined;
    if (body !== undefined) messages.push(...(Array.isArray(body) ? body : [body]));
    for (const message of Array.isArray(body) ? body : [body]) {
      const m = message as { method?: string; params?: { name?: string; arguments?: unknown } } | undefined;
      if (m?.method === 'tools/call') calls.push({ tool: m.params?.name ?? '', arguments: m.params?.arguments });
    }
    const mcp = new McpServer({ name: 'recording-upstream', version: '1.0.0' });
    for (const [name, answer] of Object.entries(answers)) {
      mcp.registerTool(name, { description: name.replace(/_/g, ' '), inputSchema: argumentShape }, async (args) => {
        const result = answer(args as Record<string, unknown>);
        if (typeof result === 'string') return { content: [{ type: 'text', text: result }] };
        return 'error' in result ? { content: [{ type: 'text', text: result.error }], isError: true } : result;
      });
    }
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: options.eventStream !== true });
    response.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    await mcp.connect(transport);
    await transport.handleRequest(request, response, body);
  });
  return { server, calls, messages, urls };
}

export async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
}

export async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

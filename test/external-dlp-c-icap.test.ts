// The enterprise DLP hand-off against a real ICAP server: Debian's c-icap with
// its content-filtering service, in the path of the real gateway for requests
// and responses, with the official MCP SDK as the agent. c-icap does not offer
// 204, so every body comes back whole: Mandate must stay transparent to the
// ones it did not change, apply the ones it rewrote, refuse the ones it
// blocked, and refuse a rewrite that changes which tool is called.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startCIcap, type CIcapServer } from './support/c-icap.ts';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { close, createRecordingMcpServer, listen, type RecordingMcpServer } from './support/recording-mcp-server.ts';

let gateway: GatewayFixture;
let notes: RecordingMcpServer;
let cIcap: CIcapServer;
let agent: Client;
let exemptToken: string;

const storedNotes: Record<string, string> = {
  roadmap: 'Next quarter: Project Bluebird ships to the first customers.',
  secret: 'Details of the forbidden-project are attached.',
  plain: 'The printer on floor 3 is fixed.',
};

before(async () => {
  cIcap = await startCIcap([
    // A body naming the secret project scores 10 and is blocked; a code name is replaced in place.
    'srv_content_filtering.Match Secret body /forbidden-project/ score=10',
    'srv_content_filtering.Match Codename body /Bluebird/ score=5 info{Mask}=[codename]',
    // A rule that rewrites which tool is called: an enterprise filter gone wrong.
    'srv_content_filtering.Match Retarget body /retarget-me/ score=5',
    'srv_content_filtering.Match Retarget body /save_note/ score=0 info{Swap}=wipe_notes',
    'srv_content_filtering.Profile mandate block score{Secret>5}',
    'srv_content_filtering.Profile mandate replace score{Codename>1} replaceInfo=Mask',
    'srv_content_filtering.Profile mandate replace score{Retarget>1} replaceInfo=Swap',
    // JSON bodies (the service reads only text/* by default), for the gateway's connections.
    'srv_content_filtering.ProfileOption mandate AnyContentType',
    // The enterprise DLP's own per-user policy: one agent (named by the gateway) is exempt.
    'acl exempt-agent auth exempt-bot',
    'srv_content_filtering.ProfileAccess mandate loopback !exempt-agent',
  ]);
  notes = createRecordingMcpServer({
    save_note: (args) => `saved: ${String(args.note)}`,
    wipe_notes: () => 'all notes wiped',
    read_note: (args) => storedNotes[String(args.id)] ?? 'no such note',
  });
  const notesPort = await listen(notes.server);
  gateway = await startGatewayFixture({ demo: false });
  await gateway.apply([
    { kind: 'Upstream', name: 'notes', protocol: 'mcp', url: `http://127.0.0.1:${notesPort}/mcp` },
    {
      kind: 'Persona',
      name: 'c-icap-guarded',
      description: 'notes, with every body checked by the enterprise ICAP DLP',
      grants: [{ upstream: 'notes', tools: [{ name: 'save_note' }, { name: 'read_note' }, { name: 'wipe_notes' }] }],
      dataProtection: { external: [{ type: 'icap', url: cIcap.url, directions: ['request', 'response'], timeoutMs: 3000 }] },
    },
  ]);
  const { token } = await gateway.issueToken('c-icap-guarded', 'notes-agent');
  agent = await gateway.mcpClient('/personas/c-icap-guarded/notes', token);
  exemptToken = (await gateway.issueToken('c-icap-guarded', 'exempt-bot')).token;
});

after(async () => {
  await agent?.close().catch(() => undefined);
  await gateway?.stop();
  if (notes) await close(notes.server);
  await cIcap?.stop();
});

function textOf(result: unknown): string {
  return ((result as { content: { text: string }[] }).content[0]!).text;
}

async function refusal(call: Promise<unknown>, message?: RegExp): Promise<{ code: number; mandateCode: string }> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof McpError, `expected an MCP error, got ${String(error)}`);
    if (message) assert.match(error.message, message);
    return { code: error.code, mandateCode: (error.data as { mandate: { code: string } }).mandate.code };
  }
  assert.fail('the call was not refused');
}

test('bodies c-icap returns unchanged pass as they are: the session, the tool list and a plain call', async () => {
  const tools = await agent.listTools();
  assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['read_note', 'save_note', 'wipe_notes']);
  const saved = await agent.callTool({ name: 'save_note', arguments: { note: 'call the plumber' } });
  assert.equal(textOf(saved), 'saved: call the plumber');
  assert.deepEqual(notes.calls.at(-1), { tool: 'save_note', arguments: { note: 'call the plumber' } });
  assert.equal(textOf(await agent.callTool({ name: 'read_note', arguments: { id: 'plain' } })), storedNotes.plain);
  const log = cIcap.accessLog();
  assert.ok(log.some((line) => / REQMOD dlp /.test(line)) && log.some((line) => / RESPMOD dlp /.test(line)), `c-icap saw both directions: ${log.join('\n')}`);
  // c-icap offers Preview: 1024 in its OPTIONS answer, asked for once before the first scan.
  assert.equal(log.filter((line) => / OPTIONS dlp 200 /.test(line)).length, 1, log.join('\n'));
  assert.ok(log.filter((line) => /MOD dlp /.test(line)).every((line) => line.endsWith(' preview=1024')), `every scan sent a preview: ${log.join('\n')}`);
});

test('a body longer than the preview: c-icap reads the first 1024 bytes, asks for the rest, and rewrites past the preview', async () => {
  const note = `${'minutes of the weekly meeting; '.repeat(40)}then Bluebird`;
  assert.ok(Buffer.byteLength(note) > 1100);
  const saved = await agent.callTool({ name: 'save_note', arguments: { note } });
  const cleaned = note.replace('Bluebird', '[codename]');
  assert.deepEqual(notes.calls.at(-1), { tool: 'save_note', arguments: { note: cleaned } });
  assert.equal(textOf(saved), `saved: ${cleaned}`);
});

test('c-icap rewrites a tool argument before the upstream sees it, and a tool result before the agent does', async () => {
  const saved = await agent.callTool({ name: 'save_note', arguments: { note: 'Bluebird launch date' } });
  assert.deepEqual(notes.calls.at(-1), { tool: 'save_note', arguments: { note: '[codename] launch date' } });
  assert.equal(textOf(saved), 'saved: [codename] launch date');
  const read = await agent.callTool({ name: 'read_note', arguments: { id: 'roadmap' } });
  assert.equal(textOf(read), 'Next quarter: Project [codename] ships to the first customers.');
});

test('c-icap blocks: a request never reaches the upstream, a result never reaches the agent', async () => {
  const before = notes.calls.length;
  const refusedRequest = await refusal(agent.callTool({ name: 'save_note', arguments: { note: 'notes on the forbidden-project' } }));
  assert.deepEqual(refusedRequest, { code: -32001, mandateCode: 'external_dlp_blocked' });
  assert.equal(notes.calls.length, before, 'the refused call never reached the upstream');

  const refusedResult = await refusal(agent.callTool({ name: 'read_note', arguments: { id: 'secret' } }));
  assert.deepEqual(refusedResult, { code: -32001, mandateCode: 'external_dlp_blocked' });
  assert.equal(notes.calls.at(-1)?.tool, 'read_note', 'the upstream answered; the answer was withheld');
});

test('a rewrite that changes which tool is called is refused, not forwarded (fail closed)', async () => {
  const before = notes.calls.length;
  const refused = await refusal(agent.callTool({ name: 'save_note', arguments: { note: 'please retarget-me' } }), /the rewritten body changes message 1/);
  assert.deepEqual(refused, { code: -32001, mandateCode: 'external_dlp_bad_response' });
  assert.equal(notes.calls.length, before, 'neither the rewrite nor the original reached the upstream');
  assert.ok(!notes.calls.some((c) => c.tool === 'wipe_notes'));
});

test('the gateway names the agent to the DLP (X-Authenticated-User), so its per-user policy applies', async () => {
  const exempt = await gateway.mcpClient('/personas/c-icap-guarded/notes', exemptToken);
  try {
    const saved = await exempt.callTool({ name: 'save_note', arguments: { note: 'Bluebird launch date' } });
    assert.equal(textOf(saved), 'saved: Bluebird launch date', 'c-icap applied no profile to the exempt agent');
    assert.deepEqual(notes.calls.at(-1), { tool: 'save_note', arguments: { note: 'Bluebird launch date' } });
  } finally {
    await exempt.close();
  }
  // The same words from the other agent are still rewritten.
  await agent.callTool({ name: 'save_note', arguments: { note: 'Bluebird again' } });
  assert.deepEqual(notes.calls.at(-1), { tool: 'save_note', arguments: { note: '[codename] again' } });
});

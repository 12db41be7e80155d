import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DataFinding } from '../decision/decision.ts';
import { compileDataProtection, type CompiledDataProtectionOk } from '../dlp/compile.ts';
import { inspectJson } from '../dlp/inspect.ts';
import { maskArguments, parseFindingPlace } from './masked-arguments.ts';

const finding = (location: string, detector = 'us-ssn', group = 'national-id'): DataFinding => ({ detector, group, location, confidence: 0.9, action: 'mask', direction: 'request' });

describe('parseFindingPlace', () => {
  it('reads the locations the engine writes, quoted names with dots and brackets included', () => {
    assert.deepEqual(parseFindingPlace('$'), { root: '$', steps: [], intoString: false, onKey: false });
    assert.deepEqual(parseFindingPlace('$.a.b[2]'), { root: '$', steps: ['a', 'b', 2], intoString: false, onKey: false });
    assert.deepEqual(parseFindingPlace('$["smtp.password"]'), { root: '$', steps: ['smtp.password'], intoString: false, onKey: false });
    assert.deepEqual(parseFindingPlace('$.x["a\\"].b[0]"]'), { root: '$', steps: ['x', 'a"].b[0]'], intoString: false, onKey: false });
    assert.deepEqual(parseFindingPlace('$.cards["4539148803436467"] (key)'), { root: '$', steps: ['cards', '4539148803436467'], intoString: false, onKey: true });
    assert.deepEqual(parseFindingPlace('$.note (base64)'), { root: '$', steps: ['note'], intoString: false, onKey: false });
    assert.deepEqual(parseFindingPlace('$.comment<json>.password (key)'), { root: '$', steps: ['comment'], intoString: true, onKey: false });
    assert.deepEqual(parseFindingPlace('query.q'), { root: 'query', steps: ['q'], intoString: false, onKey: false });
    assert.deepEqual(parseFindingPlace('body'), { root: 'body', steps: [], intoString: false, onKey: false });
    for (const bad of ['', '$.', '$[', '$["x"', '$[x]', '$ key', '.a', '$.a!']) assert.equal(parseFindingPlace(bad), null, bad);
  });
});

describe('maskArguments', () => {
  it('redacts a flagged value whatever its field is called', () => {
    const masked = maskArguments(
      { 'smtp.password': 'hunter22', config: { 'db.password': 'Sup3rS3cr3t!' }, 'aws.key': 'AKIAZ3MQ7HW2XK4JLP5R', 'list[0]': ['x'] },
      [finding('$["smtp.password"]', 'password'), finding('$.config["db.password"]', 'password'), finding('$["aws.key"]', 'aws-access-key'), finding('$["list[0]"][0]', 'x')],
    );
    assert.deepEqual(masked, {
      'smtp.password': '[redacted:password/national-id]',
      config: { 'db.password': '[redacted:password/national-id]' },
      'aws.key': '[redacted:aws-access-key/national-id]',
      'list[0]': ['[redacted:x/national-id]'],
    });
  });

  it('redacts a flagged field name, and keeps its value as any other', () => {
    const masked = maskArguments({ cards: { '4539148803436467': 'primary', '4111111111111111': 'backup', plain: 'ok' } }, [
      finding('$.cards["4539148803436467"] (key)', 'payment-card-visa', 'financial'),
      finding('$.cards["4111111111111111"] (key)', 'payment-card-visa', 'financial'),
    ]);
    assert.deepEqual(masked, {
      cards: { '[redacted-key:payment-card-visa/financial]#1': 'primary', '[redacted-key:payment-card-visa/financial]#2': 'backup', plain: 'ok' },
    });
    assert.ok(!JSON.stringify(masked).includes('4539148803436467'));
  });

  it('redacts the string that carries embedded JSON or an encoded value with a finding', () => {
    const masked = maskArguments({ comment: '{"password":"hunter22"}', blob: 'MTIzLTQ1LTY3ODg=' }, [finding('$.comment<json>.password'), finding('$.blob (base64)')]);
    assert.deepEqual(masked, { comment: '[redacted:us-ssn/national-id]', blob: '[redacted:us-ssn/national-id]' });
  });

  it('fails closed: a location that does not lead to a value redacts the whole part, and one it cannot read redacts everything', () => {
    assert.deepEqual(maskArguments({ a: 'short', b: { c: 'x' } }, [finding('$.nowhere.c')]), { a: '[redacted:us-ssn/national-id]', b: { c: '[redacted:us-ssn/national-id]' } });
    assert.deepEqual(maskArguments({ a: 'short' }, [finding('$$garbage')]), { a: '[redacted:us-ssn/national-id]' });
    assert.deepEqual(maskArguments({ query: { q: 'x' }, body: { note: 'short' } }, [finding('$.gone')], 'rest'), { query: { q: 'x' }, body: { note: '[redacted:us-ssn/national-id]' } });
  });

  it('places REST findings in the query or the body, and ignores parts the record does not hold', () => {
    const record = { query: { q: '123-45-6788', page: '2' }, body: { note: 'short', n: 1 } };
    assert.deepEqual(maskArguments(record, [finding('query.q'), finding('$.note'), finding('headers["x-note"]'), finding('path[2]')], 'rest'), {
      query: { q: '[redacted:us-ssn/national-id]', page: '2' },
      body: { note: '[redacted:us-ssn/national-id]', n: 1 },
    });
    assert.deepEqual(maskArguments({ query: {}, body: 'card 4539 1488 0343 6467' }, [finding('body')], 'rest'), { query: {}, body: '[redacted:us-ssn/national-id]' });
  });

  it('does not take MCP arguments named "query" and "body" for a REST record', () => {
    assert.deepEqual(maskArguments({ query: 'ssn 12345' }, [finding('$.query')], 'mcp'), { query: '[redacted:us-ssn/national-id]' });
  });

  it('never keeps a value the engine found, for real findings on awkward field names', () => {
    const compiled = compileDataProtection({ profiles: ['pci-dss', 'secrets', 'gdpr-pii'], defaultAction: 'mask', scanKeys: true } as never) as CompiledDataProtectionOk;
    assert.ok(compiled.ok);
    const secrets = ['hunter22', 'AKIAZ3MQ7HW2XK4JLP5R', '4539148803436467', '123-45-6788'];
    const cases: unknown[] = [
      { 'smtp.password': secrets[0] },
      { config: { 'db[0].password': secrets[0] } },
      { 'aws.key': secrets[1] },
      { cards: { [secrets[2]!]: 'primary' } },
      { 'a"b': { note: `ssn ${secrets[3]} on file` } },
      { rows: [[`card ${secrets[2]}`]] },
    ];
    for (const args of cases) {
      const result = inspectJson(compiled, args, { direction: 'request', upstream: 'x' });
      assert.ok(result.findings.length > 0, `the engine finds something in ${JSON.stringify(args)}`);
      const record = JSON.stringify(maskArguments(args, result.findings));
      for (const secret of secrets) assert.ok(!record.includes(secret.slice(0, 8)), `${record} keeps ${secret}`);
    }
  });
});

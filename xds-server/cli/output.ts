// How the CLI prints: aligned tables for people, JSON or YAML for scripts.
import { stringify } from 'yaml';
import type { ConfigIssue } from '../../config/bundle.ts';
import type { SourceLocation } from './document-source.ts';

export type OutputFormat = 'table' | 'json' | 'yaml';

export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('   ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

export function formatData(value: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? `${JSON.stringify(value, null, 2)}\n` : stringify(value, { lineWidth: 0 });
}

/** A list of documents as multi-document YAML, ready for `apply -f`. */
export function formatYamlDocuments(values: unknown[]): string {
  return values.map((value) => stringify(value, { lineWidth: 0 })).join('---\n');
}

export function formatPath(path: readonly (string | number)[]): string {
  return path.map((segment, index) => (typeof segment === 'number' ? `[${segment}]` : index === 0 ? segment : `.${segment}`)).join('') || '(root)';
}

export function formatIssue(issue: ConfigIssue, fileName: string | null, location: SourceLocation | null): string {
  const where = fileName && location ? `${fileName}:${location.line}:${location.column}: ` : '';
  return `  ${where}${formatPath(issue.path)}: ${issue.code}: ${issue.message}`;
}

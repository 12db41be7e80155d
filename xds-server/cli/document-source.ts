// Reads `apply -f` input (YAML, multi-document, or JSON) and remembers where
// each document came from, so issues from the server point at file lines.
import { LineCounter, parseAllDocuments, type Document } from 'yaml';

export interface SourceLocation {
  line: number;
  column: number;
}

export interface DocumentSource {
  documents: unknown[];
  /** File position of a path such as ['documents', 2, 'grants', 0], or of its nearest existing parent. */
  locate(path: readonly (string | number)[]): SourceLocation | null;
}

export type ParsedSource = { ok: true; source: DocumentSource } | { ok: false; errors: (SourceLocation & { message: string })[] };

export function parseDocumentSource(text: string): ParsedSource {
  const lineCounter = new LineCounter();
  const yamlDocuments = parseAllDocuments(text, { lineCounter, prettyErrors: true });
  const list: Document[] = Array.isArray(yamlDocuments) ? yamlDocuments : [];
  const errors = list.flatMap((document) =>
    document.errors.map((error) => ({
      line: error.linePos?.[0].line ?? 1,
      column: error.linePos?.[0].col ?? 1,
      message: error.message.split('\n')[0] ?? error.message,
    })),
  );
  if (errors.length > 0) return { ok: false, errors };

  // A YAML document that is a list contributes each item as a document (JSON arrays too).
  const entries: { document: Document; base: (string | number)[]; value: unknown }[] = [];
  for (const document of list) {
    const value = document.toJS() as unknown;
    if (Array.isArray(value)) value.forEach((item: unknown, index) => entries.push({ document, base: [index], value: item }));
    else if (value !== null && value !== undefined) entries.push({ document, base: [], value });
  }

  return {
    ok: true,
    source: {
      documents: entries.map((e) => e.value),
      locate(path) {
        if (path[0] !== 'documents' || typeof path[1] !== 'number') return null;
        const entry = entries[path[1]];
        if (!entry) return null;
        const rest = path.slice(2);
        for (let length = rest.length; length >= 0; length -= 1) {
          const keys = [...entry.base, ...rest.slice(0, length)];
          const node = keys.length === 0 ? entry.document.contents : entry.document.getIn(keys, true);
          const range = node && typeof node === 'object' && 'range' in node ? (node.range as [number, number, number] | null | undefined) : null;
          if (range) {
            const position = lineCounter.linePos(range[0]);
            return { line: position.line, column: position.col };
          }
        }
        return null;
      },
    },
  };
}

// REST path templates ("/tickets/{id}", "/files/{path*}") compiled once into
// segment matchers; matching is a linear walk over the request's segments.

type Segment = { literal: string } | { param: string } | { rest: string };

export interface PathTemplate {
  template: string;
  match(path: string): Record<string, string> | null;
}

export function compilePathTemplate(template: string): PathTemplate {
  const segments: Segment[] = template
    .split('/')
    .slice(1)
    .filter((s, i, all) => s !== '' || i < all.length - 1)
    .map((s) => {
      const param = /^\{([A-Za-z_][A-Za-z0-9_]*)(\*?)\}$/.exec(s);
      if (!param) return { literal: s };
      return param[2] ? { rest: param[1]! } : { param: param[1]! };
    });
  return {
    template,
    match(path) {
      const parts = path.split('/').slice(1);
      if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
      const params: Record<string, string> = {};
      for (let i = 0; i < segments.length; i++) {
        const segment = segments[i]!;
        if ('rest' in segment) {
          const remainder = parts.slice(i);
          if (remainder.length === 0) return null;
          params[segment.rest] = remainder.map(safeDecode).join('/');
          return params;
        }
        const part = parts[i];
        if (part === undefined || part === '') return null;
        if ('literal' in segment) {
          if (part !== segment.literal) return null;
        } else {
          const decoded = safeDecode(part);
          // An encoded slash must not let one parameter span two segments.
          if (decoded.includes('/')) return null;
          params[segment.param] = decoded;
        }
      }
      return parts.length === segments.length ? params : null;
    },
  };
}

function safeDecode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/**
 * Normalises a request path before matching: rejects dot segments and
 * encoded traversal so "/tickets/../admin" cannot reach an ungranted operation.
 */
export function normaliseRequestPath(path: string): string | null {
  const withoutQuery = path.split('?')[0] ?? '';
  if (!withoutQuery.startsWith('/')) return null;
  const collapsed = withoutQuery.replace(/\/{2,}/g, '/');
  for (const part of collapsed.split('/')) {
    const decoded = (() => {
      try {
        return decodeURIComponent(part);
      } catch {
        return null;
      }
    })();
    // An encoded slash is data inside a segment ("group%2Fproject"), but dot segments hidden behind it
    // ("..%2F..%2Fadmin") would climb out on an upstream that decodes before it routes.
    if (decoded === null || decoded.includes('\\') || decoded.split('/').some((piece) => piece === '.' || piece === '..')) return null;
  }
  return collapsed;
}

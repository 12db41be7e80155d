// Named admin tokens: each admin (a person, CI, a dashboard) has its own token, kept
// only as its SHA-256 in a file (MANDATE_ADMIN_TOKENS_FILE), and a role. The revision
// history then records who changed what from the token itself, not from a name the
// client asserts, and a read-only token cannot change anything. The shared admin
// token (MANDATE_ADMIN_TOKEN, or the data dir's) still works, as the role "admin".
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';
import { tokenMatches } from './tokens.ts';

export const adminRoleSchema = z.enum(['admin', 'viewer']).describe('admin: read and change everything; viewer: read only');

export const adminIdentitiesFileSchema = z
  .object({
    admins: z
      .array(
        z
          .object({
            name: z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/, 'must be 1-64 letters, digits, ".", "_", "@" or "-"'),
            role: adminRoleSchema,
            tokenSha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be the hex SHA-256 of the token (printf %s "$TOKEN" | sha256sum)'),
          })
          .strict(),
      )
      .min(1)
      .max(1000),
  })
  .strict()
  .superRefine((file, ctx) => {
    const names = new Set<string>();
    const hashes = new Set<string>();
    file.admins.forEach((admin, i) => {
      if (names.has(admin.name)) ctx.addIssue({ code: 'custom', path: ['admins', i, 'name'], message: `"${admin.name}" is listed twice` });
      if (hashes.has(admin.tokenSha256)) ctx.addIssue({ code: 'custom', path: ['admins', i, 'tokenSha256'], message: 'two admins share one token' });
      names.add(admin.name);
      hashes.add(admin.tokenSha256);
    });
  });

export type AdminRole = z.infer<typeof adminRoleSchema>;
export interface NamedAdmin {
  name: string;
  role: AdminRole;
  hash: Buffer;
}

/** Who presented a token: a named admin, or the holder of the shared admin token (name null). */
export interface AdminIdentity {
  name: string | null;
  role: AdminRole;
}

/** The named admins in a file (YAML or JSON), or an error naming the file and the field. */
export function parseAdminIdentities(text: string, source: string): NamedAdmin[] {
  let value: unknown;
  try {
    value = parse(text);
  } catch (error) {
    throw new Error(`${source}: not YAML or JSON (${(error as Error).message.split('\n')[0]})`);
  }
  const parsed = adminIdentitiesFileSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${source}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data.admins.map((a) => ({ name: a.name, role: a.role, hash: Buffer.from(a.tokenSha256, 'hex') }));
}

/** The identity behind a bearer token; every named hash is compared, in constant time, whatever matches. */
export function identifyAdmin(presented: string, sharedToken: string | null, named: readonly NamedAdmin[]): AdminIdentity | null {
  const hash = createHash('sha256').update(presented).digest();
  let found: NamedAdmin | null = null;
  for (const admin of named) if (timingSafeEqual(admin.hash, hash) && found === null) found = admin;
  if (found) return { name: found.name, role: found.role };
  if (sharedToken !== null && tokenMatches(presented, sharedToken)) return { name: null, role: 'admin' };
  return null;
}

/**
 * The named admins of MANDATE_ADMIN_TOKENS_FILE, read again when the file changes (an admin added or
 * removed needs no restart). A change that does not parse keeps the last good list and is logged.
 */
export function watchAdminIdentities(path: string, log: (event: string, fields: Record<string, unknown>) => void): () => readonly NamedAdmin[] {
  let named = parseAdminIdentities(readFileSync(path, 'utf8'), path);
  let seen = statSync(path).mtimeMs;
  return () => {
    let mtime: number;
    try {
      mtime = statSync(path).mtimeMs;
    } catch (error) {
      log('admin_tokens_file_unreadable', { path, error: (error as Error).message });
      return named;
    }
    if (mtime !== seen) {
      seen = mtime;
      try {
        named = parseAdminIdentities(readFileSync(path, 'utf8'), path);
        log('admin_tokens_reloaded', { path, admins: named.length });
      } catch (error) {
        log('admin_tokens_file_invalid', { path, error: (error as Error).message, kept: named.length });
      }
    }
    return named;
  };
}

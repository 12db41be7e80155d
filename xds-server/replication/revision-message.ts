// The message control-plane replicas share over NATS JetStream: one committed
// revision per message, in the order the stream accepted them. Checked on
// arrival like any other input; the store's RevisionChange schema is the shape.
// On the wire: gzip of the JSON message (plain JSON is read too).
import { gunzipSync, gzipSync } from 'node:zlib';
import { z } from 'zod';
import { revisionChangeSchema, type RevisionChange } from '../store/records.ts';
import { sealedSecretSchema, type SealedSecret } from './sealed-secrets.ts';

/** The stream that holds the shared config history, and its only subject. */
export const configStream = 'MANDATE_CONFIG';
export const revisionSubject = 'mandate.config.v1.revisions';
/**
 * Core NATS hint, sent by a writer after the stream acknowledged its revision: "catch up to
 * this sequence". Losing one costs only latency; replicas also poll the stream.
 */
export const committedSubject = 'mandate.config.v1.committed';

export const revisionMessageSchema = z.object({
  format: z.literal(1),
  /** MANDATE_REPLICA_ID of the control plane that published it, for logs. */
  replica: z.string().min(1),
  change: revisionChangeSchema,
  /** The change's inline upstream secrets, sealed (sealed-secrets.ts); the change holds placeholders. */
  sealedSecrets: z.array(sealedSecretSchema).optional(),
});

export type RevisionMessage = z.infer<typeof revisionMessageSchema>;

export const committedNoticeSchema = z.object({ sequence: z.number().int().positive() });

/**
 * A revision carries the whole bundle, so messages are gzip-compressed JSON: a bundle of many similar
 * Personas shrinks about tenfold, which keeps it under the server's max_payload and the stream small.
 * Plain JSON (the first releases of this format) is still read.
 */
export function encodeRevisionMessage(replica: string, change: RevisionChange, sealedSecrets: SealedSecret[] = []): Uint8Array {
  const message: RevisionMessage = { format: 1, replica, change, ...(sealedSecrets.length > 0 ? { sealedSecrets } : {}) };
  return gzipSync(JSON.stringify(message));
}

/** Decompressed messages larger than this are refused (a compressed bomb must not exhaust memory). */
export const maxRevisionMessageBytes = 256 * 1024 * 1024;

function isGzip(data: Uint8Array): boolean {
  return data.length >= 2 && data[0] === 0x1f && data[1] === 0x8b;
}

/** The message, or why it is not one (a short reason for the log, never the payload). */
export function decodeRevisionMessage(data: Uint8Array, maxBytes = maxRevisionMessageBytes): { ok: true; message: RevisionMessage } | { ok: false; reason: string } {
  let text: Uint8Array = data;
  if (isGzip(data)) {
    try {
      text = gunzipSync(data, { maxOutputLength: maxBytes });
    } catch (error) {
      return { ok: false, reason: (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? `decompresses to more than ${maxBytes} bytes` : 'not valid gzip' };
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(text));
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  const parsed = revisionMessageSchema.safeParse(value);
  if (!parsed.success) return { ok: false, reason: parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ') };
  return { ok: true, message: parsed.data };
}

// Per-Persona sensitive-data protection settings (detectors, actions, flow rules).
// Owned by the data-protection stage: ext-proc/dlp compiles this once per config version.
import { z } from 'zod';

export const dataProtectionActionSchema = z.enum(['detect', 'mask', 'redact', 'block']);

export const dataProtectionSchema = z
  .object({
    profiles: z.array(z.enum(['pci-dss', 'hipaa', 'soc2', 'gdpr-pii', 'secrets'])).default([]),
    defaultAction: dataProtectionActionSchema.default('mask'),
  })
  .strict();

export type DataProtection = z.infer<typeof dataProtectionSchema>;

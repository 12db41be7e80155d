// Per-Persona behavioural policy (sequence rules, baselines, guardrails).
// Owned by the sequence stage: ext-proc/sequence compiles this once per config version.
import { z } from 'zod';

export const behaviourSchema = z
  .object({
    rules: z.array(z.unknown()).default([]),
  })
  .strict();

export type Behaviour = z.infer<typeof behaviourSchema>;

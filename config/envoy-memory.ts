// How much heap Envoy may use before its overload manager protects it (envoy/bootstrap.yaml):
// MANDATE_ENVOY_MAX_HEAP_MIB, read by the launcher (deploy/gateway-processes.ts) and written into the
// bootstrap's fixed_heap resource monitor (envoy/run-envoy.ts).

/** MiB. Envoy at rest holds about 8 MiB; each request whose body it buffers, up to its Persona's maxBodyBytes. */
export const defaultEnvoyMaxHeapMib = 1024;
/** 1 MiB to 1 TiB: a value in bytes (or anything larger) is refused rather than taken as MiB. */
export const envoyMaxHeapMibRange = { min: 1, max: 1_048_576 } as const;

/** A setting that stops the gateway at startup; `code` is stable, the message names the variable. */
export class SettingError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'SettingError';
    this.code = code;
  }
}

/** Envoy's max heap in bytes, from MANDATE_ENVOY_MAX_HEAP_MIB (whole MiB; unset or empty: the default). */
export function envoyMaxHeapBytesFromEnv(env: Record<string, string | undefined>): number {
  const raw = env.MANDATE_ENVOY_MAX_HEAP_MIB?.trim();
  if (raw === undefined || raw === '') return defaultEnvoyMaxHeapMib * 1024 * 1024;
  const mib = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(mib) || mib < envoyMaxHeapMibRange.min || mib > envoyMaxHeapMibRange.max) {
    throw new SettingError(
      'envoy_max_heap_invalid',
      `MANDATE_ENVOY_MAX_HEAP_MIB must be a whole number of MiB, ${envoyMaxHeapMibRange.min}-${envoyMaxHeapMibRange.max}, not "${raw}" ` +
        `(the heap Envoy may use before it sheds load; default ${defaultEnvoyMaxHeapMib}, e.g. 1536 for 1.5 GiB)`,
    );
  }
  return mib * 1024 * 1024;
}

// What every Mandate process does the same way: one JSON log line per event,
// host:port settings checked with the variable's name, and a service that runs
// until SIGTERM or SIGINT stops it (or exits 1 with the reason if it cannot start).

export type EventLog = (event: string, fields: Record<string, unknown>) => void;

export function jsonEventLog(component: string): EventLog {
  return (event, fields) => process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), component, event, ...fields })}\n`);
}

export function parseHostPort(value: string, variable: string): { address: string; port: number } {
  const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value.trim());
  const port = Number(match?.[2]);
  if (!match || port > 65535) throw new Error(`${variable}="${value}" is not host:port`);
  return { address: match[1]!.replace(/^\[|\]$/g, ''), port };
}

/** A setting that stops a process at startup, with the stable code its start_failed line carries (docs/errors.md). */
export class StartupError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export async function runService(log: EventLog, start: () => Promise<{ stop(): Promise<void> }>): Promise<void> {
  try {
    const service = await start();
    const stop = async () => {
      await service.stop();
      process.exit(0);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  } catch (error) {
    log('start_failed', { ...(error instanceof StartupError ? { code: error.code } : {}), error: (error as Error).message });
    process.exit(1);
  }
}

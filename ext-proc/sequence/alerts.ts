// Alerts: what the behaviour stage tells people when it acts (or, in monitor mode,
// would have acted). emit() is called on the hot path, so sinks never block it:
// they queue and deliver in the background, and count what they had to drop.
import type { NatsConnection } from 'nats';
import type { ToolClass } from '../../config/schema.ts';
import type { BehaviourAction } from '../../config/behaviour-schema.ts';
import type { DecisionReason } from '../decision/decision.ts';

export interface BehaviourAlert {
  /** Unique per engine: "<persona>-<time>-<counter>". */
  id: string;
  time: string;
  persona: string;
  agent: string;
  user: string | null;
  /** Mcp-Session-Id, or "credential:<id>@<start>" for a stateless session. */
  session: string;
  upstream: string;
  tool: string;
  toolClass: ToolClass;
  action: BehaviourAction;
  /** False in monitor mode: this is what would have happened. */
  enforced: boolean;
  riskScore: number;
  reasons: DecisionReason[];
  evidence: {
    /** The session's recent calls as runs of one tool, oldest first, ending with this call. */
    sequence: { tool: string; toolClass: ToolClass; count: number; from: string; to: string }[];
    sessionCalls: number;
    rules: string[];
    baselineVersion: number | null;
  };
}

export interface AlertSink {
  /** Must not block or throw: called inline while a request waits. */
  emit(alert: BehaviourAlert): void;
  /** Delivers what is queued, then releases resources. */
  close(): Promise<void>;
}

/** Writes one JSON line per alert. */
export class LogAlertSink implements AlertSink {
  readonly #write: (line: string) => void;

  constructor(write: (line: string) => void = (line) => process.stderr.write(line)) {
    this.#write = write;
  }

  emit(alert: BehaviourAlert): void {
    try {
      this.#write(`${JSON.stringify({ type: 'mandate.behaviour.alert', ...alert })}\n`);
    } catch {
      // A broken log stream must not fail a request.
    }
  }

  async close(): Promise<void> {}
}

/** Collects alerts in memory: for the simulator's report and for tests. */
export class MemoryAlertSink implements AlertSink {
  readonly alerts: BehaviourAlert[] = [];

  emit(alert: BehaviourAlert): void {
    this.alerts.push(alert);
  }

  async close(): Promise<void> {}
}

/** Sends every alert to several sinks. */
export class FanOutAlertSink implements AlertSink {
  readonly #sinks: AlertSink[];

  constructor(sinks: AlertSink[]) {
    this.#sinks = sinks;
  }

  emit(alert: BehaviourAlert): void {
    for (const sink of this.#sinks) sink.emit(alert);
  }

  async close(): Promise<void> {
    await Promise.all(this.#sinks.map((s) => s.close()));
  }
}

export interface WebhookAlertSinkOptions {
  url: string;
  /** Extra headers, e.g. an authorization token for the receiver. */
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** Alerts waiting beyond this are dropped (and counted). */
  maxQueue?: number;
  /** Attempts per alert, including the first. */
  attempts?: number;
  fetch?: typeof fetch;
}

/** POSTs each alert as JSON, one at a time, in order, retrying failures a bounded number of times. */
export class WebhookAlertSink implements AlertSink {
  readonly #options: Required<Omit<WebhookAlertSinkOptions, 'headers'>> & { headers: Record<string, string> };
  readonly #queue: BehaviourAlert[] = [];
  #draining: Promise<void> | null = null;
  delivered = 0;
  dropped = 0;
  failed = 0;

  constructor(options: WebhookAlertSinkOptions) {
    this.#options = {
      url: options.url,
      headers: options.headers ?? {},
      timeoutMs: options.timeoutMs ?? 5000,
      maxQueue: options.maxQueue ?? 10_000,
      attempts: options.attempts ?? 3,
      fetch: options.fetch ?? fetch,
    };
  }

  emit(alert: BehaviourAlert): void {
    if (this.#queue.length >= this.#options.maxQueue) {
      this.dropped += 1;
      return;
    }
    this.#queue.push(alert);
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = null;
    });
  }

  async #drain(): Promise<void> {
    for (let alert = this.#queue.shift(); alert !== undefined; alert = this.#queue.shift()) {
      if (await this.#post(alert)) this.delivered += 1;
      else this.failed += 1;
    }
  }

  async #post(alert: BehaviourAlert): Promise<boolean> {
    for (let attempt = 1; attempt <= this.#options.attempts; attempt += 1) {
      try {
        const response = await this.#options.fetch(this.#options.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...this.#options.headers },
          body: JSON.stringify(alert),
          signal: AbortSignal.timeout(this.#options.timeoutMs),
        });
        await response.body?.cancel();
        if (response.ok) return true;
        if (response.status < 500 && response.status !== 429) return false;
      } catch {
        // Network error or timeout: retry.
      }
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
    return false;
  }

  async close(): Promise<void> {
    while (this.#draining) await this.#draining;
  }
}

/** The subject an alert is published on: mandate.alerts.<persona>. */
export function alertSubject(persona: string): string {
  return `mandate.alerts.${persona}`;
}

/** Publishes each alert as JSON on mandate.alerts.<persona>. The connection is owned by the caller. */
export class NatsAlertSink implements AlertSink {
  readonly #connection: NatsConnection;
  readonly #encoder = new TextEncoder();
  dropped = 0;

  constructor(connection: NatsConnection) {
    this.#connection = connection;
  }

  emit(alert: BehaviourAlert): void {
    try {
      // publish() only buffers; the client flushes in the background.
      this.#connection.publish(alertSubject(alert.persona), this.#encoder.encode(JSON.stringify(alert)));
    } catch {
      this.dropped += 1;
    }
  }

  async close(): Promise<void> {
    if (!this.#connection.isClosed()) await this.#connection.flush();
  }
}

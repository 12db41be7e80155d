// What normal looks like for one Persona, learned from monitor-mode traffic or
// imported traces: tool and class transitions, call rates, distinct objects read
// per window, error rates, and which tools each user's agents use. Bounded in
// memory; exported and imported as versioned JSON snapshots.
import { z } from 'zod';
import type { ToolClass } from '../../config/schema.ts';

const MAX_TOOLS = 1000;
const MAX_USERS = 1000;
const MAX_TOOLS_PER_USER = 200;
const SESSION_START = '^';
/** Transitions out of a tool are judged only once the tool has been left this often. */
const MIN_TRANSITION_SUPPORT = 20;

/** Running mean and variance (Welford), so no samples are kept. */
class RunningStats {
  count = 0;
  mean = 0;
  m2 = 0;

  add(value: number): void {
    this.count += 1;
    const delta = value - this.mean;
    this.mean += delta / this.count;
    this.m2 += delta * (value - this.mean);
  }

  get stddev(): number {
    return this.count > 1 ? Math.sqrt(this.m2 / (this.count - 1)) : 0;
  }

  /** True if value is far above what was seen: beyond mean + 4 sd, twice the mean, and at least `floor`. */
  isSpike(value: number, floor: number): boolean {
    if (this.count < 5) return false;
    return value >= floor && value > this.mean * 2 && value > this.mean + 4 * Math.max(this.stddev, 1);
  }

  toJSON(): { count: number; mean: number; m2: number } {
    return { count: this.count, mean: this.mean, m2: this.m2 };
  }

  static from(value: { count: number; mean: number; m2: number }): RunningStats {
    const stats = new RunningStats();
    stats.count = value.count;
    stats.mean = value.mean;
    stats.m2 = value.m2;
    return stats;
  }
}

const statsSchema = z.object({ count: z.number().int().min(0), mean: z.number(), m2: z.number().min(0) }).strict();

export const baselineSnapshotSchema = z
  .object({
    format: z.literal('mandate-baseline/1'),
    persona: z.string().min(1),
    version: z.number().int().min(1),
    createdAt: z.string(),
    observations: z.number().int().min(0),
    tools: z.record(z.string(), z.object({ toolClass: z.enum(['read', 'write', 'destructive', 'egress', 'admin']), calls: z.number().int().min(0), results: z.number().int().min(0), errors: z.number().int().min(0) }).strict()),
    transitions: z.record(z.string(), z.record(z.string(), z.number().int().min(0))),
    classTransitions: z.record(z.string(), z.number().int().min(0)),
    userTools: z.record(z.string(), z.array(z.string())),
    callsPerMinute: statsSchema,
    objectsPerWindow: statsSchema,
  })
  .strict();

export type BaselineSnapshot = z.infer<typeof baselineSnapshotSchema>;

export interface BaselineCall {
  user: string | null;
  tool: string;
  toolClass: ToolClass;
  previousTool: string | null;
  previousClass: ToolClass | null;
  /** The tools as deviations' messages quote them (as the audit trail records them); absent: as above. */
  recordedTool?: string;
  recordedPreviousTool?: string | null;
}

/** What a session looks like right now, for comparison with the baseline. */
export interface SessionActivity {
  callsThisMinute: number;
  objectsThisWindow: number;
  results: number;
  errors: number;
}

export interface BaselineDeviation {
  code: string;
  risk: number;
  message: string;
}

interface ToolStats {
  toolClass: ToolClass;
  calls: number;
  results: number;
  errors: number;
}

export class BaselineModel {
  readonly persona: string;
  version: number;
  observations = 0;
  readonly #tools = new Map<string, ToolStats>();
  readonly #transitions = new Map<string, Map<string, number>>();
  readonly #transitionTotals = new Map<string, number>();
  readonly #classTransitions = new Map<string, number>();
  readonly #userTools = new Map<string, Set<string>>();
  #callsPerMinute = new RunningStats();
  #objectsPerWindow = new RunningStats();

  constructor(persona: string, version = 1) {
    this.persona = persona;
    this.version = version;
  }

  observeCall(call: BaselineCall): void {
    this.observations += 1;
    let tool = this.#tools.get(call.tool);
    if (!tool && this.#tools.size < MAX_TOOLS) {
      tool = { toolClass: call.toolClass, calls: 0, results: 0, errors: 0 };
      this.#tools.set(call.tool, tool);
    }
    if (tool) tool.calls += 1;
    const from = call.previousTool ?? SESSION_START;
    if (this.#tools.has(call.tool) && (from === SESSION_START || this.#tools.has(from))) {
      let row = this.#transitions.get(from);
      if (!row) {
        row = new Map();
        this.#transitions.set(from, row);
      }
      row.set(call.tool, (row.get(call.tool) ?? 0) + 1);
      this.#transitionTotals.set(from, (this.#transitionTotals.get(from) ?? 0) + 1);
    }
    const classKey = `${call.previousClass ?? SESSION_START}>${call.toolClass}`;
    this.#classTransitions.set(classKey, (this.#classTransitions.get(classKey) ?? 0) + 1);
    if (call.user !== null) {
      let tools = this.#userTools.get(call.user);
      if (!tools && this.#userTools.size < MAX_USERS) {
        tools = new Set();
        this.#userTools.set(call.user, tools);
      }
      if (tools && tools.size < MAX_TOOLS_PER_USER) tools.add(call.tool);
    }
  }

  observeResult(tool: string, isError: boolean): void {
    const stats = this.#tools.get(tool);
    if (!stats) return;
    stats.results += 1;
    if (isError) stats.errors += 1;
  }

  /** A session's finished minute: how many calls it made. */
  observeMinute(calls: number): void {
    this.#callsPerMinute.add(calls);
  }

  /** A session's finished object window: how many distinct objects it read. */
  observeObjectWindow(distinctObjects: number): void {
    this.#objectsPerWindow.add(distinctObjects);
  }

  isReady(minObservations: number): boolean {
    return this.observations >= minObservations;
  }

  /** Deviations of one call (and its session so far) from this baseline; empty when normal. */
  score(call: BaselineCall, activity: SessionActivity): BaselineDeviation[] {
    const deviations: BaselineDeviation[] = [];
    const tool = this.#tools.get(call.tool);
    if (!tool) {
      deviations.push({ code: 'baseline_unseen_tool', risk: 0.5, message: `tool ${call.recordedTool ?? call.tool} (${call.toolClass}) was never used by this Persona while the baseline was learned` });
    } else if (call.user !== null) {
      const userTools = this.#userTools.get(call.user);
      if (userTools && userTools.size < MAX_TOOLS_PER_USER && !userTools.has(call.tool)) {
        deviations.push({ code: 'baseline_user_unseen_tool', risk: 0.2, message: `tool ${call.recordedTool ?? call.tool} was never used on behalf of this user while the baseline was learned` });
      }
    }
    const from = call.previousTool ?? SESSION_START;
    const support = this.#transitionTotals.get(from) ?? 0;
    if (tool && support >= MIN_TRANSITION_SUPPORT) {
      const seen = this.#transitions.get(from)?.get(call.tool) ?? 0;
      const probability = seen / support;
      if (probability < 0.01) {
        deviations.push({
          code: 'baseline_rare_transition',
          risk: seen === 0 ? 0.35 : 0.2,
          message: `${from === SESSION_START ? 'starting a session' : (call.recordedPreviousTool ?? from)} -> ${call.recordedTool ?? call.tool} was seen ${seen} times in ${support} transitions`,
        });
      }
    }
    const classKey = `${call.previousClass ?? SESSION_START}>${call.toolClass}`;
    if (this.observations >= MIN_TRANSITION_SUPPORT && (this.#classTransitions.get(classKey) ?? 0) === 0) {
      deviations.push({ code: 'baseline_unseen_class_transition', risk: 0.3, message: `a ${call.toolClass} call after a ${call.previousClass ?? 'session start'} call was never seen` });
    }
    if (this.#callsPerMinute.isSpike(activity.callsThisMinute, 10)) {
      deviations.push({
        code: 'baseline_rate_spike',
        risk: 0.4,
        message: `${activity.callsThisMinute} calls this minute; the baseline is ${this.#callsPerMinute.mean.toFixed(1)} ± ${this.#callsPerMinute.stddev.toFixed(1)}`,
      });
    }
    if (this.#objectsPerWindow.isSpike(activity.objectsThisWindow, 10)) {
      deviations.push({
        code: 'baseline_distinct_objects_spike',
        risk: 0.5,
        message: `${activity.objectsThisWindow} distinct objects read in this window; the baseline is ${this.#objectsPerWindow.mean.toFixed(1)} ± ${this.#objectsPerWindow.stddev.toFixed(1)}`,
      });
    }
    if (activity.results >= 10) {
      const baselineRate = this.#errorRate();
      const sessionRate = activity.errors / activity.results;
      if (sessionRate > Math.max(baselineRate * 3, baselineRate + 0.3)) {
        deviations.push({ code: 'baseline_error_rate', risk: 0.3, message: `${Math.round(sessionRate * 100)}% of this session's calls failed; the baseline is ${Math.round(baselineRate * 100)}%` });
      }
    }
    return deviations;
  }

  #errorRate(): number {
    let results = 0;
    let errors = 0;
    for (const stats of this.#tools.values()) {
      results += stats.results;
      errors += stats.errors;
    }
    return results === 0 ? 0 : errors / results;
  }

  toSnapshot(createdAt: Date): BaselineSnapshot {
    const transitions: Record<string, Record<string, number>> = {};
    for (const [from, row] of this.#transitions) transitions[from] = Object.fromEntries(row);
    return {
      format: 'mandate-baseline/1',
      persona: this.persona,
      version: this.version,
      createdAt: createdAt.toISOString(),
      observations: this.observations,
      tools: Object.fromEntries(this.#tools),
      transitions,
      classTransitions: Object.fromEntries(this.#classTransitions),
      userTools: Object.fromEntries([...this.#userTools].map(([user, tools]) => [user, [...tools]])),
      callsPerMinute: this.#callsPerMinute.toJSON(),
      objectsPerWindow: this.#objectsPerWindow.toJSON(),
    };
  }

  static fromSnapshot(snapshot: BaselineSnapshot): BaselineModel {
    const model = new BaselineModel(snapshot.persona, snapshot.version);
    model.observations = snapshot.observations;
    for (const [name, stats] of Object.entries(snapshot.tools).slice(0, MAX_TOOLS)) model.#tools.set(name, { ...stats });
    for (const [from, row] of Object.entries(snapshot.transitions)) {
      const entries = Object.entries(row).filter(([to]) => model.#tools.has(to));
      model.#transitions.set(from, new Map(entries));
      model.#transitionTotals.set(from, entries.reduce((sum, [, count]) => sum + count, 0));
    }
    for (const [key, count] of Object.entries(snapshot.classTransitions)) model.#classTransitions.set(key, count);
    for (const [user, tools] of Object.entries(snapshot.userTools).slice(0, MAX_USERS)) model.#userTools.set(user, new Set(tools.slice(0, MAX_TOOLS_PER_USER)));
    model.#callsPerMinute = RunningStats.from(snapshot.callsPerMinute);
    model.#objectsPerWindow = RunningStats.from(snapshot.objectsPerWindow);
    return model;
  }
}

/**
 * The baselines an engine scores against, one per Persona. Importing a snapshot
 * replaces the Persona's model atomically; exporting bumps the version so alerts
 * can name the exact baseline they were scored against.
 */
export class BaselineRegistry {
  readonly #models = new Map<string, BaselineModel>();

  get(persona: string): BaselineModel | undefined {
    return this.#models.get(persona);
  }

  /** The model that learns for a Persona, created empty on first use. */
  learner(persona: string): BaselineModel {
    let model = this.#models.get(persona);
    if (!model) {
      model = new BaselineModel(persona);
      this.#models.set(persona, model);
    }
    return model;
  }

  import(snapshot: BaselineSnapshot): BaselineModel {
    const model = BaselineModel.fromSnapshot(snapshot);
    this.#models.set(snapshot.persona, model);
    return model;
  }

  export(persona: string, now: Date): BaselineSnapshot | null {
    const model = this.#models.get(persona);
    if (!model) return null;
    const snapshot = model.toSnapshot(now);
    model.version += 1;
    return snapshot;
  }
}

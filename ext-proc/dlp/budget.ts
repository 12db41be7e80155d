// A time budget for inspecting one body. RE2 calls cannot be interrupted, so the engine works in
// steps whose cost is bounded (the Set passes over a large body in pieces, one detector's pattern at
// a time) and checks the clock between them: a body built to cost the most (random text, where the
// Sets' automata meet a new state at every byte) is stopped at the budget plus one step, instead of
// holding ext_proc's event loop or the inspection worker for seconds. Exceeding the budget is an
// error the caller answers as a refusal (fail closed; a failOpen or monitor-mode Persona passes the
// body unread), or, for a whole answer on the event loop, by moving it to the worker (processor.ts).
//
// One deadline at a time: inspection is synchronous, and a nested inspection (a decoded segment, a
// reading of the same text) keeps the outer one's deadline. The budget is the thread's: ext_proc sets
// one for its event loop and the inspection worker its own (module state is per thread).

export class InspectionOverBudget extends Error {
  readonly code = 'inspection_over_budget';
  readonly budgetMs: number;
  constructor(budgetMs: number) {
    super(`inspecting the body took longer than its budget of ${budgetMs} ms`);
    this.budgetMs = budgetMs;
    this.name = 'InspectionOverBudget';
  }
}

let deadline = Infinity;
let budget = 0;
let threadBudgetMs = Infinity;

/** Milliseconds each inspection on this thread may take (Infinity: no limit, the default). */
export function setInspectionBudget(ms: number): void {
  if (!(ms > 0)) throw new RangeError(`an inspection budget must be a positive number of milliseconds, not ${ms}`);
  threadBudgetMs = ms;
}

export function inspectionBudgetMs(): number {
  return threadBudgetMs;
}

/** Runs `inspect` under the thread's budget (or `budgetMs`), unless a budget is already running. */
export function withInspectionBudget<T>(inspect: () => T, budgetMs = threadBudgetMs): T {
  if (!Number.isFinite(budgetMs) || deadline !== Infinity) return inspect();
  deadline = performance.now() + budgetMs;
  budget = budgetMs;
  try {
    return inspect();
  } finally {
    deadline = Infinity;
  }
}

/** Throws InspectionOverBudget once the running budget is spent. */
export function checkInspectionBudget(): void {
  if (deadline !== Infinity && performance.now() > deadline) throw new InspectionOverBudget(budget);
}

/** The error is a spent budget (also when it crossed a thread as its code). */
export function isOverBudget(error: unknown): boolean {
  return error instanceof InspectionOverBudget || (typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'inspection_over_budget');
}

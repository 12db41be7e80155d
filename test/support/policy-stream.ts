// Follows the control plane's policy stream (newline-delimited JSON snapshots) for the benchmarks
// that time how soon a version reaches a reader, and waits for a version to reach ext_proc in tests.

/** A reader of one open stream: next() resolves with the version of the next snapshot line; close() ends the stream. */
export function policyVersions(response: Response): { next(): Promise<number>; close(): Promise<void> } {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  const next = async (): Promise<number> => {
    for (;;) {
      const newline = buffered.indexOf('\n');
      if (newline >= 0) {
        const line = JSON.parse(buffered.slice(0, newline)) as { version?: number };
        buffered = buffered.slice(newline + 1);
        if (typeof line.version === 'number') return line.version;
        continue;
      }
      const chunk = await reader.read();
      if (chunk.done) throw new Error('policy stream ended');
      buffered += decoder.decode(chunk.value, { stream: true });
    }
  };
  return { next, close: () => reader.cancel() };
}

/** Resolves once the ext_proc behind `healthPort` serves config `version` or later (its /readyz); throws after 10 s. */
export async function waitForExtProcVersion(healthPort: number, version: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ready = (await (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).json()) as { configVersion?: number };
    if ((ready.configVersion ?? 0) >= version) return;
    if (Date.now() > deadline) throw new Error(`ext_proc did not reach config version ${version}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

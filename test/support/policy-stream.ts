// Follows the control plane's policy stream (newline-delimited JSON snapshots) for the benchmarks
// that time how soon a version reaches a reader.

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

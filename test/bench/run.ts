// `npm run bench`: every benchmark in one run. Pass names to run only some:
// `node test/bench/run.ts gateway dlp`.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../deploy/gateway-processes.ts';
import { runGatewayBenchmark } from './gateway.ts';

const all = ['gateway', 'dlp', 'dlp-budget', 'cpu-per-request', 'sequence', 'audit'];
const selected = process.argv.slice(2).length > 0 ? process.argv.slice(2) : all;
const unknown = selected.filter((name) => !all.includes(name));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; choose from ${all.join(', ')}\n`);
  process.exit(2);
}

let failed = false;
for (const name of selected) {
  process.stdout.write(`\n## ${name}\n\n`);
  if (name === 'gateway') {
    process.stdout.write(`${await runGatewayBenchmark()}\n`);
    continue;
  }
  // The stage benchmarks are standalone scripts that print their own markdown.
  const result = spawnSync(process.execPath, ['--expose-gc', join(repoRoot, 'test/bench', `${name}.ts`)], { stdio: 'inherit', cwd: repoRoot });
  if (result.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);

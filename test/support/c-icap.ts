// A real ICAP server for the tests: Debian's c-icap with its content-filtering
// service (packages c-icap and libc-icap-mod-contentfiltering, which
// deploy/run-tests.sh installs), on a free loopback port, with filter rules the
// test gives. It stands where an enterprise DLP product would: it blocks a body
// whose score crosses a limit and rewrites matched text in place.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForListener } from '../../deploy/gateway-processes.ts';

export interface CIcapServer {
  port: number;
  /** icap:// URL of the content-filtering service. */
  url: string;
  /** c-icap's access log: one line per ICAP request it answered. */
  accessLog(): string[];
  stop(): Promise<void>;
}

/** Where Debian puts c-icap's service modules (the directory depends on the architecture). */
function servicesDir(): string | null {
  const candidates = ['/usr/lib/c_icap', ...readdirSync('/usr/lib').map((d) => join('/usr/lib', d, 'c_icap'))];
  return candidates.find((dir) => existsSync(join(dir, 'srv_content_filtering.so'))) ?? null;
}

/** Why the c-icap tests cannot run here, or null. */
export function cIcapMissing(): string | null {
  if (spawnSync('c-icap', ['-V']).error) return 'c-icap is not on PATH (deploy/run-tests.sh installs Debian\'s c-icap)';
  if (servicesDir() === null) return 'c-icap\'s content-filtering service is missing (Debian package libc-icap-mod-contentfiltering)';
  return null;
}

/**
 * Starts c-icap with the service "dlp" (srv_content_filtering) and the given
 * configuration lines of that service (Match, Profile, ProfileOption,
 * ProfileAccess, acl); the acl "loopback" is defined for ProfileAccess, and the
 * user of each request is the one the client names in X-Authenticated-User.
 */
export async function startCIcap(filterLines: string[]): Promise<CIcapServer> {
  const missing = cIcapMissing();
  if (missing) throw new Error(missing);
  const modules = servicesDir()!;
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'mandate-c-icap-'));
  const config = [
    `PidFile ${join(dir, 'c-icap.pid')}`,
    `CommandsSocket ${join(dir, 'c-icap.ctl')}`,
    'Timeout 30',
    'StartServers 1',
    'MaxServers 1',
    'MinSpareThreads 2',
    'MaxSpareThreads 8',
    'ThreadsPerChild 8',
    `Port 127.0.0.1:${port}`,
    `TmpDir ${dir}`,
    `ModulesDir ${modules}`,
    `ServicesDir ${modules}`,
    'TemplateDir /usr/share/c_icap/templates/',
    'TemplateDefaultLanguage en',
    `ServerLog ${join(dir, 'server.log')}`,
    'LogFormat mandate "%tl, %la %a %im %iu %is preview=%{Preview}>ih"',
    `AccessLog ${join(dir, 'access.log')} mandate`,
    // The user of a request is the one the client names (base64 X-Authenticated-User), as behind a proxy.
    'RemoteProxyUsers on',
    'RemoteProxyUserHeader X-Authenticated-User',
    'RemoteProxyUserHeaderEncoded on',
    'acl loopback src 127.0.0.1/255.255.255.255',
    'Service dlp srv_content_filtering.so',
    ...filterLines,
  ];
  writeFileSync(join(dir, 'c-icap.conf'), `${config.join('\n')}\n`);
  const output: Buffer[] = [];
  const child: ChildProcess = spawn('c-icap', ['-N', '-f', join(dir, 'c-icap.conf')], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stdout!.on('data', (d: Buffer) => output.push(d));
  child.stderr!.on('data', (d: Buffer) => output.push(d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitForListener(port, 'c-icap', 10_000, () => (child.exitCode !== null ? 'c-icap exited at start' : null));
  } catch (error) {
    throw new Error(`${(error as Error).message}: ${Buffer.concat(output).toString()}`);
  }
  return {
    port,
    url: `icap://127.0.0.1:${port}/dlp`,
    accessLog: () => (existsSync(join(dir, 'access.log')) ? readFileSync(join(dir, 'access.log'), 'utf8').split('\n').filter(Boolean) : []),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        // c-icap forks its serving children into the same process group.
        try {
          process.kill(-child.pid!, 'SIGTERM');
        } catch {
          child.kill('SIGTERM');
        }
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

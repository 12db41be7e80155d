// The control plane process: `node xds-server/main.ts`. Settings come from the
// environment (see docs/configuration.md).
import { resolve } from 'node:path';
import { startControlPlane } from './control-plane.ts';
import { parseGatewaySettings, parseHostPort } from './settings.ts';

const log = (event: string, fields: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), component: 'xds-server', event, ...fields })}\n`);

try {
  const env = process.env;
  const controlPlane = await startControlPlane({
    dataDir: resolve(env.MANDATE_DATA_DIR ?? '.data'),
    xds: parseHostPort(env.MANDATE_XDS_LISTEN ?? '127.0.0.1:18000', 'MANDATE_XDS_LISTEN'),
    admin: parseHostPort(env.MANDATE_ADMIN_LISTEN ?? '127.0.0.1:18080', 'MANDATE_ADMIN_LISTEN'),
    gateway: parseGatewaySettings(env),
    log,
  });
  const stop = async () => {
    await controlPlane.stop();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (error) {
  log('start_failed', { error: (error as Error).message });
  process.exit(1);
}

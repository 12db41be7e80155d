// The control plane process: `node xds-server/main.ts`. Settings come from the
// environment (see docs/configuration.md).
import { resolve } from 'node:path';
import { serverTlsFromEnv } from '../config/grpc-tls.ts';
import { jsonEventLog, parseHostPort, runService } from '../config/service-process.ts';
import { startControlPlane } from './control-plane.ts';
import { parseGatewaySettings, parseReplicationSettings } from './settings.ts';

const log = jsonEventLog('xds-server');

await runService(log, () => {
  const env = process.env;
  return startControlPlane({
    dataDir: resolve(env.MANDATE_DATA_DIR ?? '.data'),
    xds: parseHostPort(env.MANDATE_XDS_LISTEN ?? '127.0.0.1:18000', 'MANDATE_XDS_LISTEN'),
    admin: parseHostPort(env.MANDATE_ADMIN_LISTEN ?? '127.0.0.1:18080', 'MANDATE_ADMIN_LISTEN'),
    gateway: parseGatewaySettings(env),
    ...parseReplicationSettings(env),
    xdsTls: serverTlsFromEnv(env, 'MANDATE_XDS_TLS'),
    adminTls: serverTlsFromEnv(env, 'MANDATE_ADMIN_TLS'),
    log,
  });
});

// A throwaway certificate authority for TLS tests, made with openssl (deploy/run-tests.sh
// installs it): a CA, and server or client certificates it signs for the names given.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface IssuedCertificate {
  keyFile: string;
  certFile: string;
  key: Buffer;
  cert: Buffer;
}

export interface TestCertificateAuthority {
  dir: string;
  caFile: string;
  ca: Buffer;
  /** A certificate for `subjectAltName` (e.g. "DNS:localhost,IP:127.0.0.1"), for a server or a client. */
  issue(name: string, subjectAltName: string, use?: 'serverAuth' | 'clientAuth'): IssuedCertificate;
  dispose(): void;
}

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function createTestCertificateAuthority(): TestCertificateAuthority {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-test-ca-'));
  const caFile = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca.key');
  execFileSync('openssl', ['req', '-x509', ...ecKey, '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', '/CN=Mandate test CA'], { stdio: 'ignore' });
  return {
    dir,
    caFile,
    ca: readFileSync(caFile),
    issue(name, subjectAltName, use = 'serverAuth') {
      const keyFile = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const certFile = join(dir, `${name}.pem`);
      const ext = join(dir, `${name}.ext`);
      writeFileSync(ext, `subjectAltName=${subjectAltName}\nextendedKeyUsage=${use}\n`);
      execFileSync('openssl', ['req', '-new', ...ecKey, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name}`], { stdio: 'ignore' });
      execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-days', '2', '-out', certFile, '-extfile', ext], { stdio: 'ignore' });
      return { keyFile, certFile, key: readFileSync(keyFile), cert: readFileSync(certFile) };
    },
    dispose() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

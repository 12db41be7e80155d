// How a Mandate process reaches NATS when scaled out (MANDATE_NATS_URL): the
// servers, how it authenticates, and TLS. Every connection (ext_proc's behaviour
// state, quarantine list, alerts and data-flow memory; the control plane's shared
// config history) takes its options from here, so a NATS server locked down with
// TLS and credentials is reached the same way by all of them.
//
// Secrets come from files only (`_FILE` variables: a Kubernetes or compose
// secret), never from the environment or the URL, where they would show in
// process listings, crash reports and the logs that print the URL. A setting given
// badly stops the process at startup with the variable's name and a stable code,
// never the secret. The files are read again on every (re)connection, so a rotated
// secret or certificate is used from the next connection on, without a restart.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  nkeys,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
  type Authenticator,
  type ConnectionOptions,
  type NatsConnection,
  type TlsOptions,
} from 'nats';
import { z } from 'zod';

type Env = Record<string, string | undefined>;

/** Stable codes of a NATS setting given badly (docs/errors.md). */
export type NatsSettingsCode =
  | 'nats_url_invalid'
  | 'nats_url_credentials'
  | 'nats_setting_without_url'
  | 'nats_secret_inline'
  | 'nats_path_not_absolute'
  | 'nats_setting_invalid'
  | 'nats_auth_conflict'
  | 'nats_auth_incomplete'
  | 'nats_tls_incomplete'
  | 'nats_tls_conflict'
  | 'nats_file_unreadable'
  | 'nats_file_invalid';

/** Stable codes of a connection NATS or TLS refused (docs/errors.md). */
export type NatsConnectCode = 'nats_auth_refused' | 'nats_tls_failed' | 'nats_tls_unavailable' | 'nats_unreachable' | 'nats_connect_failed';

export interface NatsSettingsIssue {
  code: NatsSettingsCode;
  /** The environment variable at fault. */
  variable: string;
  message: string;
}

/** The NATS settings are unusable; the message names each variable and problem (never a secret). */
export class NatsSettingsError extends Error {
  readonly code: NatsSettingsCode;
  readonly issues: NatsSettingsIssue[];
  constructor(issues: NatsSettingsIssue[]) {
    super(issues.map((i) => `${i.variable}: ${i.message} (${i.code})`).join('; '));
    this.name = 'NatsSettingsError';
    this.code = issues[0]!.code;
    this.issues = issues;
  }
}

/** A connection to NATS failed; the message says why and which settings to check. */
export class NatsConnectError extends Error {
  readonly code: NatsConnectCode;
  constructor(code: NatsConnectCode, message: string, cause: unknown) {
    super(`${message} (${code})`, { cause });
    this.name = 'NatsConnectError';
    this.code = code;
  }
}

export type NatsAuth =
  | { method: 'creds'; file: string }
  | { method: 'nkey'; file: string }
  | { method: 'user_password'; user: string; passwordFile: string }
  | { method: 'token'; file: string };

export interface NatsTls {
  /** PEM CA bundle the servers' certificates are checked against; null: Node's CA store (and NODE_EXTRA_CA_CERTS). */
  caFile: string | null;
  /** The certificate and key this process presents (mutual TLS); both or neither. */
  certFile: string | null;
  keyFile: string | null;
}

export interface NatsSettings {
  /** The servers as given in MANDATE_NATS_URL: free of credentials, safe to log. */
  servers: string[];
  /** null: anonymous (a NATS server without authorization). */
  auth: NatsAuth | null;
  /** null: TLS only if the server offers it, the server's certificate checked against Node's CA store. */
  tls: NatsTls | null;
}

/** The variables read here, in the order documented (docs/configuration.md). */
export const natsVariables = {
  url: 'MANDATE_NATS_URL',
  credsFile: 'MANDATE_NATS_CREDS_FILE',
  nkeySeedFile: 'MANDATE_NATS_NKEY_SEED_FILE',
  user: 'MANDATE_NATS_USER',
  passwordFile: 'MANDATE_NATS_PASSWORD_FILE',
  tokenFile: 'MANDATE_NATS_TOKEN_FILE',
  tlsRequired: 'MANDATE_NATS_TLS_REQUIRED',
  tlsCaFile: 'MANDATE_NATS_TLS_CA_FILE',
  tlsCertFile: 'MANDATE_NATS_TLS_CERT_FILE',
  tlsKeyFile: 'MANDATE_NATS_TLS_KEY_FILE',
} as const;

/** Secrets that are refused when given inline, with the file variable to use instead. */
const inlineSecrets: Record<string, string> = {
  MANDATE_NATS_PASSWORD: natsVariables.passwordFile,
  MANDATE_NATS_TOKEN: natsVariables.tokenFile,
  MANDATE_NATS_NKEY_SEED: natsVariables.nkeySeedFile,
  MANDATE_NATS_NKEY: natsVariables.nkeySeedFile,
  MANDATE_NATS_CREDS: natsVariables.credsFile,
};

const authVariables: Record<NatsAuth['method'], string[]> = {
  creds: [natsVariables.credsFile],
  nkey: [natsVariables.nkeySeedFile],
  user_password: [natsVariables.user, natsVariables.passwordFile],
  token: [natsVariables.tokenFile],
};

const fileVariables = [natsVariables.credsFile, natsVariables.nkeySeedFile, natsVariables.passwordFile, natsVariables.tokenFile, natsVariables.tlsCaFile, natsVariables.tlsCertFile, natsVariables.tlsKeyFile];

/** Unset, empty and blank are the same: not given. */
const optionalSetting = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value.trim()));

const absolutePath = optionalSetting.refine((value) => value === undefined || value.startsWith('/'), {
  message: 'must be an absolute path',
  params: { code: 'nats_path_not_absolute' },
});

/** One MANDATE_NATS_URL entry: nats://host[:port], tls://host[:port] or host[:port]; no credentials, path or query. */
function serverIssue(entry: string): { code: NatsSettingsCode; message: string } | null {
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(entry) ? entry : `nats://${entry}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    // Not echoed: a malformed entry may still hold a password.
    return { code: 'nats_url_invalid', message: 'an entry is not a NATS URL (nats://host:port, tls://host:port or host:port)' };
  }
  if (url.username !== '' || url.password !== '' || entry.includes('@')) {
    return {
      code: 'nats_url_credentials',
      message:
        'an entry carries credentials (user:password@ or token@), which would show in logs and process listings: ' +
        `give them as ${natsVariables.user} with ${natsVariables.passwordFile}, ${natsVariables.tokenFile}, ${natsVariables.nkeySeedFile} or ${natsVariables.credsFile}`,
    };
  }
  if (url.protocol !== 'nats:' && url.protocol !== 'tls:') return { code: 'nats_url_invalid', message: `"${entry}" must use nats:// or tls://` };
  if (url.hostname === '' || (url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    return { code: 'nats_url_invalid', message: `"${entry}" is not a NATS URL (nats://host:port, tls://host:port or host:port)` };
  }
  return null;
}

const envSchema = z
  .object({
    MANDATE_NATS_URL: optionalSetting,
    MANDATE_NATS_CREDS_FILE: absolutePath,
    MANDATE_NATS_NKEY_SEED_FILE: absolutePath,
    MANDATE_NATS_USER: optionalSetting.refine((value) => value === undefined || /^[^\s\u0000-\u001f]{1,256}$/.test(value), {
      message: 'must be 1-256 characters without whitespace or control characters',
      params: { code: 'nats_setting_invalid' },
    }),
    MANDATE_NATS_PASSWORD_FILE: absolutePath,
    MANDATE_NATS_TOKEN_FILE: absolutePath,
    MANDATE_NATS_TLS_REQUIRED: optionalSetting.refine((value) => value === undefined || value === 'true' || value === 'false', {
      message: 'must be "true" or "false"',
      params: { code: 'nats_setting_invalid' },
    }),
    MANDATE_NATS_TLS_CA_FILE: absolutePath,
    MANDATE_NATS_TLS_CERT_FILE: absolutePath,
    MANDATE_NATS_TLS_KEY_FILE: absolutePath,
    ...Object.fromEntries(Object.keys(inlineSecrets).map((name) => [name, optionalSetting])),
  })
  .superRefine((env, ctx) => {
    const given = (name: string) => (env as Record<string, string | undefined>)[name] !== undefined;
    const issue = (variable: string, code: NatsSettingsCode, message: string) => ctx.addIssue({ code: 'custom', path: [variable], message, params: { code } });

    for (const [inline, file] of Object.entries(inlineSecrets)) {
      if (given(inline)) issue(inline, 'nats_secret_inline', `is not read: NATS secrets come from files, not the environment; put it in a file and set ${file}`);
    }

    const url = env.MANDATE_NATS_URL;
    if (url === undefined) {
      const stray = [...fileVariables, natsVariables.user, natsVariables.tlsRequired].filter(given);
      for (const variable of stray) issue(variable, 'nats_setting_without_url', `is set but ${natsVariables.url} is not: nothing would connect to NATS`);
      return;
    }
    const entries = url.split(',').map((entry) => entry.trim());
    for (const [index, entry] of entries.entries()) {
      const problem = entry === '' ? { code: 'nats_url_invalid' as const, message: `entry ${index + 1} is empty (comma-separated NATS URLs)` } : serverIssue(entry);
      if (problem) issue(natsVariables.url, problem.code, problem.message);
    }

    const methods = (Object.entries(authVariables) as [NatsAuth['method'], string[]][]).filter(([, variables]) => variables.some(given));
    if (methods.length > 1) {
      const set = methods.flatMap(([, variables]) => variables.filter(given));
      issue(set[0]!, 'nats_auth_conflict', `authenticate to NATS one way, not several: ${set.join(', ')} are set`);
    }
    if (given(natsVariables.user) !== given(natsVariables.passwordFile)) {
      const [set, missing] = given(natsVariables.user) ? [natsVariables.user, natsVariables.passwordFile] : [natsVariables.passwordFile, natsVariables.user];
      issue(set, 'nats_auth_incomplete', `needs ${missing}`);
    }

    if (given(natsVariables.tlsCertFile) !== given(natsVariables.tlsKeyFile)) {
      const [set, missing] = given(natsVariables.tlsCertFile) ? [natsVariables.tlsCertFile, natsVariables.tlsKeyFile] : [natsVariables.tlsKeyFile, natsVariables.tlsCertFile];
      issue(set, 'nats_tls_incomplete', `needs ${missing} (the client certificate and its key, both or neither)`);
    }
    if (env.MANDATE_NATS_TLS_REQUIRED === 'false') {
      const wantsTls: string[] = [natsVariables.tlsCaFile, natsVariables.tlsCertFile, natsVariables.tlsKeyFile].filter(given);
      if (entries.some((entry) => /^tls:\/\//i.test(entry))) wantsTls.unshift(`a tls:// URL in ${natsVariables.url}`);
      if (wantsTls.length > 0) issue(natsVariables.tlsRequired, 'nats_tls_conflict', `is "false" but ${wantsTls.join(', ')} ask for TLS`);
    }
  });

/**
 * The NATS settings from the environment, checked and with every file read once; null when
 * MANDATE_NATS_URL is unset (one process, no NATS). Throws a NatsSettingsError naming each bad setting.
 */
export function natsSettingsFromEnv(env: Env): NatsSettings | null {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new NatsSettingsError(
      parsed.error.issues.map((issue) => ({
        code: ((issue as { params?: { code?: NatsSettingsCode } }).params?.code ?? 'nats_setting_invalid') as NatsSettingsCode,
        variable: String(issue.path[0] ?? natsVariables.url),
        message: issue.message,
      })),
    );
  }
  const values = parsed.data;
  if (values.MANDATE_NATS_URL === undefined) return null;
  const servers = values.MANDATE_NATS_URL.split(',').map((entry) => entry.trim());

  let auth: NatsAuth | null = null;
  if (values.MANDATE_NATS_CREDS_FILE) auth = { method: 'creds', file: values.MANDATE_NATS_CREDS_FILE };
  else if (values.MANDATE_NATS_NKEY_SEED_FILE) auth = { method: 'nkey', file: values.MANDATE_NATS_NKEY_SEED_FILE };
  else if (values.MANDATE_NATS_USER && values.MANDATE_NATS_PASSWORD_FILE) auth = { method: 'user_password', user: values.MANDATE_NATS_USER, passwordFile: values.MANDATE_NATS_PASSWORD_FILE };
  else if (values.MANDATE_NATS_TOKEN_FILE) auth = { method: 'token', file: values.MANDATE_NATS_TOKEN_FILE };

  const tlsRequired =
    values.MANDATE_NATS_TLS_REQUIRED === 'true' ||
    servers.some((server) => /^tls:\/\//i.test(server)) ||
    values.MANDATE_NATS_TLS_CA_FILE !== undefined ||
    values.MANDATE_NATS_TLS_CERT_FILE !== undefined;
  const tls: NatsTls | null = tlsRequired
    ? { caFile: values.MANDATE_NATS_TLS_CA_FILE ?? null, certFile: values.MANDATE_NATS_TLS_CERT_FILE ?? null, keyFile: values.MANDATE_NATS_TLS_KEY_FILE ?? null }
    : null;

  const settings: NatsSettings = { servers, auth, tls };
  // Every file now: a missing or malformed one stops startup, not the first connection.
  const issues: NatsSettingsIssue[] = [];
  const check = (work: () => void) => {
    try {
      work();
    } catch (error) {
      if (error instanceof NatsSettingsError) issues.push(...error.issues);
      else throw error;
    }
  };
  if (auth) check(() => authenticatorFor(auth));
  if (tls) check(() => checkTlsFiles(tls));
  if (issues.length > 0) throw new NatsSettingsError(issues);
  return settings;
}

/** For logs and status: where and how, never a secret. */
export function describeNatsSettings(settings: NatsSettings): { servers: string; auth: string; tls: boolean; clientCertificate: boolean } {
  return { servers: settings.servers.join(','), auth: settings.auth?.method ?? 'none', tls: settings.tls !== null, clientCertificate: settings.tls?.certFile != null };
}

/**
 * nats.js connection options for these settings: the servers, an authenticator that reads the
 * secret file on each (re)connection, and TLS. `options` adds the name and the reconnect policy.
 * Throws a NatsSettingsError if a secret file has become unreadable or malformed since startup.
 */
export function natsConnectionOptions(settings: NatsSettings, options: Omit<ConnectionOptions, 'servers' | 'authenticator' | 'tls' | 'user' | 'pass' | 'token'> & { name: string }): ConnectionOptions {
  return {
    // A refused credential is retried like an outage (a rotated file may fix it), not given up on.
    ignoreAuthErrorAbort: true,
    ...options,
    servers: [...settings.servers],
    ...(settings.auth ? { authenticator: authenticatorFor(settings.auth) } : {}),
    ...(settings.tls ? { tls: tlsOptions(settings.tls) } : {}),
  };
}

/** Connects with natsConnectionOptions; a refusal is a NatsConnectError that says why and what to check. */
export async function connectToNats(settings: NatsSettings, options: Parameters<typeof natsConnectionOptions>[1]): Promise<NatsConnection> {
  try {
    return await connect(natsConnectionOptions(settings, options));
  } catch (error) {
    throw natsConnectFailure(error, settings);
  }
}

// --- files -------------------------------------------------------------------------------

function readSettingFile(variable: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new NatsSettingsError([{ code: 'nats_file_unreadable', variable, message: `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})` }]);
  }
}

function invalidFile(variable: string, file: string, what: string): NatsSettingsError {
  return new NatsSettingsError([{ code: 'nats_file_invalid', variable, message: `${file} is not ${what}` }]);
}

/** A user's credentials file: a JWT and an NKey seed between the dashed lines `nsc` writes. */
function parseCreds(variable: string, file: string, text: string): Uint8Array {
  const blocks = [...text.matchAll(/-{3,}[^\n]*-{3,}\r?\n([^\n]+?)\r?\n\s*-{3,}[^\n]*-{3,}/g)].map((m) => m[1]!.trim());
  const what = 'a NATS credentials file (a user JWT and its NKey seed, as `nsc generate creds` writes it)';
  if (blocks.length < 2 || !/^[\w-]+\.[\w-]+\.[\w-]+$/.test(blocks[0]!) || !isUserSeed(blocks[1]!)) throw invalidFile(variable, file, what);
  return new TextEncoder().encode(text);
}

function isUserSeed(text: string): boolean {
  try {
    // A user seed (SU...) decodes to a key pair whose public key starts with U.
    const pair = nkeys.fromSeed(new TextEncoder().encode(text));
    return typeof pair.getPublicKey() === 'string' && String(pair.getPublicKey()).startsWith('U');
  } catch {
    return false;
  }
}

/** The secret in a file, checked; on each later call the file is read again, and the last good value kept if it has gone bad. */
function fileSecret<T>(variable: string, file: string, parse: (text: string) => T): () => T {
  let last = parse(readSettingFile(variable, file).toString('utf8'));
  return () => {
    try {
      last = parse(readFileSync(file, 'utf8'));
    } catch {
      // Mid-rotation (a secret volume swapping its files): the previous secret is the best guess.
    }
    return last;
  };
}

function authenticatorFor(auth: NatsAuth): Authenticator {
  switch (auth.method) {
    case 'creds': {
      const creds = fileSecret(natsVariables.credsFile, auth.file, (text) => parseCreds(natsVariables.credsFile, auth.file, text));
      return (nonce?: string) => credsAuthenticator(creds())(nonce);
    }
    case 'nkey': {
      const seed = fileSecret(natsVariables.nkeySeedFile, auth.file, (text) => {
        const trimmed = text.trim();
        if (!isUserSeed(trimmed)) throw invalidFile(natsVariables.nkeySeedFile, auth.file, 'a NATS user NKey seed (one line starting with SU, as `nsc` or `nk -gen user` writes it)');
        return new TextEncoder().encode(trimmed);
      });
      return (nonce?: string) => nkeyAuthenticator(seed())(nonce);
    }
    case 'user_password': {
      const password = fileSecret(natsVariables.passwordFile, auth.passwordFile, (text) => {
        // One trailing newline (echo, an editor) is not part of the password.
        const value = text.replace(/\r?\n$/, '');
        if (value === '' || /[\r\n]/.test(value)) throw invalidFile(natsVariables.passwordFile, auth.passwordFile, 'a password (one non-empty line)');
        return value;
      });
      return usernamePasswordAuthenticator(auth.user, password);
    }
    case 'token': {
      const token = fileSecret(natsVariables.tokenFile, auth.file, (text) => {
        const value = text.trim();
        if (value === '' || /\s/.test(value)) throw invalidFile(natsVariables.tokenFile, auth.file, 'a token (non-empty, without whitespace)');
        return value;
      });
      return tokenAuthenticator(token);
    }
  }
}

function checkTlsFiles(tls: NatsTls): void {
  const issues: NatsSettingsIssue[] = [];
  const attempt = <T>(work: () => T): T | null => {
    try {
      return work();
    } catch (error) {
      if (!(error instanceof NatsSettingsError)) throw error;
      issues.push(...error.issues);
      return null;
    }
  };
  const certificate = (variable: string, file: string, what: string) =>
    attempt(() => {
      const pem = readSettingFile(variable, file);
      try {
        return new X509Certificate(pem);
      } catch {
        throw invalidFile(variable, file, what);
      }
    });
  if (tls.caFile) certificate(natsVariables.tlsCaFile, tls.caFile, 'a PEM CA certificate');
  if (tls.certFile && tls.keyFile) {
    const cert = certificate(natsVariables.tlsCertFile, tls.certFile, 'a PEM certificate');
    const key = attempt(() => {
      const pem = readSettingFile(natsVariables.tlsKeyFile, tls.keyFile!);
      try {
        return createPrivateKey(pem);
      } catch {
        throw invalidFile(natsVariables.tlsKeyFile, tls.keyFile!, 'an unencrypted PEM private key');
      }
    });
    if (cert && key && !cert.checkPrivateKey(key)) {
      issues.push({ code: 'nats_file_invalid', variable: natsVariables.tlsKeyFile, message: `${tls.keyFile} is not the key of the certificate in ${natsVariables.tlsCertFile}` });
    }
  }
  if (issues.length > 0) throw new NatsSettingsError(issues);
}

/** nats.js reads these files itself on every TLS handshake, so a renewed certificate is picked up on reconnection. */
function tlsOptions(tls: NatsTls): TlsOptions {
  return {
    ...(tls.caFile ? { caFile: tls.caFile } : {}),
    ...(tls.certFile ? { certFile: tls.certFile } : {}),
    ...(tls.keyFile ? { keyFile: tls.keyFile } : {}),
  };
}

// --- refusals --------------------------------------------------------------------------------

const authErrorCodes = new Set(['AUTHORIZATION_VIOLATION', 'AUTHENTICATION_EXPIRED', 'AUTHENTICATION_TIMEOUT', 'ACCOUNT_EXPIRED', 'BAD_AUTHENTICATION', 'BAD_CREDS']);
const unreachableCodes = new Set(['CONNECTION_REFUSED', 'CONNECTION_TIMEOUT', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'TIMEOUT']);

function authHint(settings: NatsSettings): string {
  if (settings.auth === null) {
    return `it requires authentication: set ${natsVariables.credsFile}, ${natsVariables.nkeySeedFile}, ${natsVariables.user} with ${natsVariables.passwordFile}, or ${natsVariables.tokenFile}`;
  }
  return `check ${authVariables[settings.auth.method].join(' and ')} against the NATS server's authorization`;
}

/** A connection failure as a NatsConnectError: the servers (credential-free), what went wrong and which settings to check. */
export function natsConnectFailure(error: unknown, settings: NatsSettings): NatsConnectError {
  if (error instanceof NatsConnectError) return error;
  if (error instanceof NatsSettingsError) return new NatsConnectError('nats_connect_failed', error.message, error);
  const where = `NATS at ${settings.servers.join(',')}`;
  const natsError = error as { code?: string; message?: string; chainedError?: { code?: string; message?: string } } | null;
  const code = String(natsError?.code ?? '');
  const chained = natsError?.chainedError;
  const detail = (chained?.message ?? natsError?.message ?? String(error)).replace(/\s+/g, ' ').trim();
  if (authErrorCodes.has(code)) return new NatsConnectError('nats_auth_refused', `${where} refused the connection (${detail}): ${authHint(settings)}`, error);
  if (code === 'SERVER_OPT_NA' && /tls/i.test(natsError?.message ?? '')) {
    return new NatsConnectError(
      'nats_tls_unavailable',
      `${where} does not offer TLS, which this process requires (a tls:// URL, ${natsVariables.tlsRequired}=true or ${natsVariables.tlsCaFile} / ${natsVariables.tlsCertFile}): turn TLS on in the NATS server`,
      error,
    );
  }
  const chainedCode = String(chained?.code ?? '');
  const tlsish = code === 'TLS' || /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO|ALTNAME|SIGNATURE/.test(chainedCode) || /certificate|handshake|ssl|tls/i.test(detail);
  // With TLS 1.3 a server that wants a client certificate refuses it after the handshake: the client sees a timeout or a reset.
  const clientCertHint = settings.tls !== null && !settings.tls.certFile ? `; if the server verifies clients, set ${natsVariables.tlsCertFile} and ${natsVariables.tlsKeyFile}` : '';
  if (tlsish) {
    const serverCertificate = /CERT|SIGNATURE|ALTNAME|ISSUER|SELF_SIGNED/.test(chainedCode) || /certificate/i.test(detail);
    const hint = serverCertificate
      ? `the server's certificate must be signed by the CA in ${natsVariables.tlsCaFile} (or, unset, Node's CA store) and name the host in ${natsVariables.url}`
      : `check the NATS server's TLS settings against ${natsVariables.tlsCaFile}, ${natsVariables.tlsCertFile} and ${natsVariables.tlsKeyFile}`;
    return new NatsConnectError('nats_tls_failed', `TLS with ${where} failed (${detail}): ${hint}${serverCertificate ? '' : clientCertHint}`, error);
  }
  if (unreachableCodes.has(code) || unreachableCodes.has(chainedCode)) return new NatsConnectError('nats_unreachable', `${where} is unreachable or did not answer (${detail || code})${clientCertHint}`, error);
  return new NatsConnectError('nats_connect_failed', `cannot connect to ${where}: ${detail || code}`, error);
}

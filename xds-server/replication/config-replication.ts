// Control-plane replicas share one config history over NATS JetStream.
//
// The stream MANDATE_CONFIG is a log of committed revisions, one message each,
// on one subject. Every replica applies it in sequence order to its own SQLite
// store (idempotently, by stream sequence), so every replica holds the same
// versions. A write is planned against the replica's current state and published
// with Nats-Expected-Last-Subject-Sequence = the last sequence this replica
// applied: if another replica wrote first, the stream refuses it, this replica
// catches up and plans again. Only an acknowledged revision is committed locally,
// so an outage never forks the history: writes are refused while NATS is away,
// and reads, ADS and the policy stream keep serving the last applied config.
//
// Replicas read the stream by sequence (JetStream's message-get API) rather than
// through a consumer: a replica's position is the stream sequence stored with its
// latest revision, so the server holds no per-replica state to leak or recreate,
// and startup replay, live updates, a refused write and a reconnect all run the
// same catch-up. Live updates are prompted by a core NATS notice a writer sends
// after its revision is acknowledged, and by a poll as a safety net.
import { DiscardPolicy, headers, RetentionPolicy, StorageType, type JetStreamManager, type MsgHdrs, type NatsConnection, type NatsError } from 'nats';
import type { ConfigIssue, PolicySnapshot } from '../../config/bundle.ts';
import { connectToNats, describeNatsSettings, natsConnectFailure, type NatsSettings } from '../../config/nats-connection.ts';
import { StartupError } from '../../config/service-process.ts';
import type { ReplicationStatus } from '../admin/api-schemas.ts';
import type { ApplyResult, ConfigEditor, ConfigStore, IssueCredentialResult, Planned, RevisionChange } from '../store/config-store.ts';
import { resolveUpstreamCredentials, type SecretEnvironment } from '../store/upstream-secrets.ts';
import { committedNoticeSchema, committedSubject, configStream, decodeRevisionMessage, encodeRevisionMessage, revisionSubject } from './revision-message.ts';
import { revisionMacHeader, revisionMacProblem, signRevision } from './revision-mac.ts';
import { openSecrets, previousSecretsKeysVariable, sealSecrets, secretsKeyringFromEnv, secretsKeyVariable } from './sealed-secrets.ts';

export interface ConfigReplicationOptions {
  store: ConfigStore;
  /** The NATS servers, credentials and TLS (config/nats-connection.ts, from MANDATE_NATS_*). */
  nats: NatsSettings;
  /** Unique among the control-plane replicas (MANDATE_REPLICA_ID). */
  replicaId: string;
  log: (event: string, fields: Record<string, unknown>) => void;
  /**
   * The environment upstream secrets are read from (a replicated revision naming a variable missing here
   * is logged), and MANDATE_CONFIG_SECRETS_KEY (and _PREVIOUS_KEYS) that seal inline secrets on the wire.
   */
  env?: SecretEnvironment;
  /** JetStream replicas of the stream when this replica creates it (3 in a NATS cluster). Default 1. */
  streamReplicas?: number;
  /** How long startup waits for NATS before serving the local config and retrying in the background. Default 5 s. */
  firstConnectWaitMs?: number;
  /** Between attempts to connect while NATS has never answered (unreachable, or refusing the credentials or TLS). Default 250 ms. */
  connectRetryMs?: number;
  /** How long a publish waits for the stream's acknowledgement. Default 2 s. */
  publishTimeoutMs?: number;
  /** Plans of one write tried against the stream before it is refused as contended. Default 10. */
  maxWriteAttempts?: number;
  /** Catch-up poll, the safety net for a lost notice; also retries a failed synchronisation. Default 2 s. */
  pollIntervalMs?: number;
}

export interface ReplicatedConfigStore extends ConfigEditor {
  apply(documents: unknown[], options: { actor: string; prune?: boolean; dryRun?: boolean }): Promise<ApplyResult>;
  remove(...args: Parameters<ConfigStore['remove']>): Promise<ApplyResult>;
  issueCredential(...args: Parameters<ConfigStore['issueCredential']>): Promise<IssueCredentialResult>;
  revokeCredential(id: string, actor: string): Promise<ApplyResult>;
  status(): ReplicationStatus;
  /** Applies everything the stream holds now (tests and benchmarks use it to wait). */
  catchUp(): Promise<void>;
  /** Stops replicating and closes the NATS connection; the store stays open (its owner closes it). */
  stop(): Promise<void>;
}

const jetStreamWrongLastSequence = 10071;
const jetStreamNoMessageFound = 10037;
const jetStreamStreamNotFound = 10059;

/** A write refused before anything was committed anywhere (or, after a lost acknowledgement, possibly committed). */
type Refusal = { ok: false; issues: ConfigIssue[] };
type ReplicationRefusalCode = 'config_replication_unavailable' | 'config_write_contended' | 'config_revision_too_large' | 'config_secrets_key_missing';
function refusal(code: ReplicationRefusalCode, message: string): Refusal {
  return { ok: false, issues: [{ path: [], code, message }] };
}

export async function startConfigReplication(options: ConfigReplicationOptions): Promise<ReplicatedConfigStore> {
  const { store, replicaId, log } = options;
  // A malformed key stops startup here: secrets must never be shared in the clear by mistake.
  const keyring = secretsKeyringFromEnv(options.env ?? process.env);
  // Revisions are authenticated with it too (revision-mac.ts): without it this replica could neither sign its own nor tell a forged one.
  if (keyring.current === null) {
    throw new StartupError(
      'config_secrets_key_missing',
      `scaled out (MANDATE_NATS_URL), every control-plane replica needs the same ${secretsKeyVariable} or ${secretsKeyVariable}_FILE (32 bytes, base64 or hex: openssl rand -base64 32); it authenticates the revisions shared over NATS and seals inline secrets`,
    );
  }
  const publishTimeoutMs = options.publishTimeoutMs ?? 2000;
  const maxWriteAttempts = options.maxWriteAttempts ?? 10;

  let nats: NatsConnection | null = null;
  let jsm: JetStreamManager | null = null;
  /** The NATS connection is up (not reconnecting). */
  let transportUp = false;
  /** Connected and synchronised: writes may be published. */
  let ready = false;
  let halted: string | null = null;
  let stopped = false;
  /** Messages on the subject skipped because their MAC was missing or wrong, since start. */
  let unauthenticated = 0;
  /** Why the last attempt to reach NATS failed (refused credentials, TLS, unreachable), until a connection succeeds. */
  let connectError: string | null = null;
  /** Highest stream sequence handled here: applied, or skipped as malformed. */
  let lastSequence = store.replicationPosition().streamSequence;

  // Catch-up, synchronisation and writes each run alone, in call order.
  let queue: Promise<unknown> = Promise.resolve();
  function serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = queue.then(work);
    queue = run.catch(() => undefined);
    return run;
  }

  function signed(sequence: number, message: Uint8Array): MsgHdrs {
    const h = headers();
    h.set(revisionMacHeader, signRevision(keyring, sequence, message));
    return h;
  }

  function halt(reason: string): void {
    halted = reason;
    ready = false;
    log('config_replication_halted', { replica: replicaId, reason, configVersion: store.current().version, streamSequence: lastSequence });
  }

  async function ensureStream(manager: JetStreamManager): Promise<void> {
    try {
      await manager.streams.info(configStream);
      return;
    } catch (error) {
      if ((error as NatsError).api_error?.err_code !== jetStreamStreamNotFound) throw error;
    }
    // Config history is kept whole (as the revisions table keeps it): a replica started from an
    // empty store replays it from the first message. No message may be deleted or purged.
    await manager.streams.add({
      name: configStream,
      subjects: [revisionSubject],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.New,
      max_msgs: -1,
      max_bytes: -1,
      max_age: 0,
      num_replicas: options.streamReplicas ?? 1,
      deny_delete: true,
      deny_purge: true,
    });
    log('config_replication_stream_created', { replica: replicaId, stream: configStream, subject: revisionSubject });
  }

  /** Applies the stream from lastSequence + 1 up to `through` (default: the stream's last sequence). Runs inside serialized(). */
  async function catchUpLocked(through?: number): Promise<void> {
    if (!jsm || halted) return;
    let last = through;
    if (last === undefined || last <= lastSequence) {
      const info = await jsm.streams.info(configStream);
      last = info.state.last_seq;
      if (last < lastSequence) {
        halt(`the stream ends at sequence ${last} but this replica applied up to ${lastSequence}: the stream was deleted or replaced`);
        return;
      }
      if (info.state.first_seq > lastSequence + 1 && info.state.messages > 0) {
        // Only possible if someone changed the stream's limits: what is gone cannot be replayed.
        log('config_replication_stream_truncated', { replica: replicaId, firstSequence: info.state.first_seq, appliedSequence: lastSequence });
      }
    }
    for (let sequence = lastSequence + 1; sequence <= last && !halted && !stopped; sequence++) {
      let data: Uint8Array;
      let header: MsgHdrs | undefined;
      try {
        const stored = await jsm.streams.getMessage(configStream, { seq: sequence });
        data = stored.data;
        header = stored.header;
      } catch (error) {
        if ((error as NatsError).api_error?.err_code !== jetStreamNoMessageFound) throw error;
        // Past the stream's end (a notice from a server that has not replicated it here yet): stop for now.
        // Before its start: the history this replica missed is gone.
        const info = await jsm.streams.info(configStream);
        if (info.state.last_seq < sequence) return;
        halt(
          info.state.first_seq > sequence
            ? `the stream no longer holds sequence ${sequence}; this replica cannot replay the history it missed`
            : `sequence ${sequence} is missing from the stream (deleted); this replica cannot replay it`,
        );
        return;
      }
      applyMessage(sequence, data, header);
    }
  }

  function applyMessage(sequence: number, data: Uint8Array, header: MsgHdrs | undefined): void {
    // The MAC first: a message not written by a replica is never decompressed or parsed.
    const unverified = revisionMacProblem(keyring, sequence, data, header?.get(revisionMacHeader));
    if (unverified?.kind === 'unknown-key') {
      halt(`sequence ${sequence} cannot be applied: ${unverified.reason} (${secretsKeyVariable} or ${previousSecretsKeysVariable})`);
      return;
    }
    if (unverified !== null) {
      unauthenticated++;
      log('config_replication_unauthenticated_message', { replica: replicaId, stream: configStream, sequence, reason: unverified.reason });
      lastSequence = sequence;
      return;
    }
    const decoded = decodeRevisionMessage(data);
    if (!decoded.ok) {
      log('config_replication_bad_message', { replica: replicaId, stream: configStream, sequence, reason: decoded.reason });
      lastSequence = sequence;
      return;
    }
    const { replica: publisher } = decoded.message;
    const opened = openSecrets(decoded.message.change, decoded.message.sealedSecrets ?? [], keyring);
    if ('refused' in opened) {
      halt(`sequence ${sequence} from ${publisher} cannot be applied: ${opened.refused}`);
      return;
    }
    const { change } = opened;
    let outcome: ReturnType<ConfigStore['commit']>;
    try {
      outcome = store.commit(change, sequence);
    } catch (error) {
      halt(`sequence ${sequence} (version ${change.version}) could not be applied: ${(error as Error).message}`);
      return;
    }
    if (outcome.status === 'refused') {
      halt(`sequence ${sequence} from ${publisher}: ${outcome.reason}; move this replica's config.db aside and restart it to adopt the shared history`);
      return;
    }
    lastSequence = sequence;
    if (outcome.status === 'applied') {
      log('config_revision_applied', { replica: replicaId, from: publisher, sequence, configVersion: change.version, summary: change.summary });
      warnMissingSecrets(change);
    }
  }

  function warnMissingSecrets(change: RevisionChange): void {
    const issues = resolveUpstreamCredentials(JSON.parse(change.bundleJson), options.env ?? process.env).issues;
    if (issues.length > 0) log('config_replication_missing_secret_env', { replica: replicaId, configVersion: change.version, issues: issues.map((i) => i.message) });
  }

  /** After (re)connecting: the stream exists, an existing local history is published once, and the replica is caught up. */
  async function synchroniseLocked(): Promise<void> {
    if (!jsm || stopped) return;
    await ensureStream(jsm);
    if (lastSequence === 0 && store.replicationPosition().localOnlyHistory) await publishBaseLocked();
    await catchUpLocked();
    if (!halted && nats && !nats.isClosed()) {
      if (!ready) log('config_replication_ready', { replica: replicaId, configVersion: store.current().version, streamSequence: lastSequence });
      ready = true;
    }
  }

  /** Migration: the first replica with a history of its own makes it the base of the shared one, exactly once. */
  async function publishBaseLocked(): Promise<void> {
    const base = store.baseChange();
    const sealed = sealSecrets(base, keyring);
    if ('refused' in sealed) throw new Error(`the local history cannot become the shared base: ${sealed.refused}`);
    const message = encodeRevisionMessage(replicaId, sealed.change, sealed.sealedSecrets);
    const tooLarge = overMaxPayload(nats!, message, `the local history (version ${base.version})`);
    if (tooLarge) throw new Error(tooLarge);
    try {
      const ack = await nats!.jetstream().publish(revisionSubject, message, { expect: { lastSubjectSequence: 0 }, timeout: publishTimeoutMs, headers: signed(1, message) });
      const outcome = store.commit(base, ack.seq);
      lastSequence = ack.seq;
      log('config_replication_base_published', { replica: replicaId, sequence: ack.seq, configVersion: base.version, credentials: base.credentialsIssued.length, outcome: outcome.status });
    } catch (error) {
      // Another replica started the history first; catching up decides whether this one can join it.
      if ((error as NatsError).api_error?.err_code !== jetStreamWrongLastSequence) throw error;
    }
  }

  function synchronise(reason: string): Promise<void> {
    return serialized(() => synchroniseLocked()).catch((error: unknown) => {
      ready = false;
      log('config_replication_sync_failed', { replica: replicaId, reason, error: (error as Error).message });
    });
  }

  /** Highest sequence a writer's notice announced; a queued catch-up reads up to it without asking the stream. */
  let noticedSequence = 0;
  let catchUpQueued = false;
  function scheduleCatchUp(): void {
    if (catchUpQueued || stopped) return;
    catchUpQueued = true;
    void serialized(async () => {
      catchUpQueued = false;
      await catchUpLocked(noticedSequence > lastSequence ? noticedSequence : undefined);
    }).catch((error: unknown) => log('config_replication_catch_up_failed', { replica: replicaId, error: (error as Error).message }));
  }

  async function attach(connection: NatsConnection): Promise<void> {
    if (stopped) {
      await connection.close();
      return;
    }
    nats = connection;
    transportUp = true;
    jsm = await connection.jetstreamManager({ timeout: publishTimeoutMs, checkAPI: false });
    connection.subscribe(committedSubject, {
      callback: (error, message) => {
        if (error) return;
        let notice: unknown = null;
        try {
          notice = JSON.parse(new TextDecoder().decode(message.data));
        } catch {
          // ignored: a notice is only a hint
        }
        const parsed = committedNoticeSchema.safeParse(notice);
        if (parsed.success && parsed.data.sequence > lastSequence) {
          noticedSequence = Math.max(noticedSequence, parsed.data.sequence);
          scheduleCatchUp();
        }
      },
    });
    void (async () => {
      for await (const status of connection.status()) {
        if (status.type === 'disconnect') {
          if (ready) log('config_replication_disconnected', { replica: replicaId, configVersion: store.current().version });
          transportUp = false;
          ready = false;
        } else if (status.type === 'reconnect') {
          transportUp = true;
          connectError = null;
          void synchronise('reconnected');
        } else if (status.type === 'error') {
          // The server's -ERR: a subject this replica's NATS user may not use, or refused credentials on reconnecting (retried).
          if (status.data === 'PERMISSIONS_VIOLATION') {
            log('config_replication_permission_denied', { replica: replicaId, permission: status.permissionContext ?? null });
          } else {
            const failure = natsConnectFailure({ code: String(status.data), message: String(status.data) }, options.nats);
            if (failure.code === 'nats_auth_refused') connectError = failure.message;
            log('config_replication_nats_error', { replica: replicaId, code: failure.code, error: failure.message });
          }
        }
      }
    })();
    await synchronise('connected');
  }

  /**
   * Connects, trying again until NATS accepts the connection or replication stops. Each new reason for a
   * failure (refused credentials, an untrusted certificate, unreachable) is logged once and shown in status().
   * Once connected, nats.js reconnects by itself, refused credentials included (a rotated file may fix them).
   */
  async function connectUntilUp(): Promise<NatsConnection | null> {
    for (;;) {
      if (stopped) return null;
      try {
        const connection = await connectToNats(options.nats, { name: `mandate-control-plane-${replicaId}`, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
        connectError = null;
        return connection;
      } catch (error) {
        const failure = natsConnectFailure(error, options.nats);
        if (failure.message !== connectError) log('config_replication_connect_failed', { replica: replicaId, code: failure.code, error: failure.message });
        connectError = failure.message;
      }
      await new Promise((resolve) => setTimeout(resolve, options.connectRetryMs ?? 250));
    }
  }

  const connecting = connectUntilUp();
  const firstWait = new Promise<'waiting'>((resolve) => setTimeout(() => resolve('waiting'), options.firstConnectWaitMs ?? 5000).unref());
  const first = await Promise.race([connecting, firstWait]);
  if (first === 'waiting' || first === null) {
    // Fail static: serve the local config and refuse writes until NATS accepts this replica.
    log('config_replication_unavailable_at_start', { replica: replicaId, ...describeNatsSettings(options.nats), configVersion: store.current().version, ...(connectError ? { error: connectError } : {}) });
    void connecting.then((connection) => (connection ? attach(connection) : undefined)).catch((error: unknown) => log('config_replication_connect_failed', { replica: replicaId, error: (error as Error).message }));
  } else {
    await attach(first);
    if (halted) {
      await first.close();
      throw new Error(`config replication: ${halted}`);
    }
  }

  const poll = setInterval(() => {
    if (!jsm || stopped || halted || !transportUp) return;
    if (!ready) void synchronise('retry');
    else scheduleCatchUp();
  }, options.pollIntervalMs ?? 2000);
  poll.unref();

  /** Plans the write, publishes it expecting lastSequence, commits it once acknowledged. */
  function write<T extends ApplyResult | IssueCredentialResult>(plan: () => Planned<T>): Promise<T | Refusal> {
    return serialized(async (): Promise<T | Refusal> => {
      for (let attempt = 1; attempt <= maxWriteAttempts; attempt++) {
        // Rejected input and no-op writes are answered from the local state, NATS or not.
        const planned = plan();
        if (planned.change === null) return planned.result;
        if (halted) return refusal('config_replication_unavailable', `this control plane stopped applying the shared config history (${halted}); nothing was changed`);
        if (!ready || !nats) {
          return refusal(
            'config_replication_unavailable',
            `NATS is unreachable, so the change cannot reach the other control-plane replicas; nothing was changed. Reads still serve version ${store.current().version}; retry when NATS is back`,
          );
        }
        const sealed = sealSecrets(planned.change, keyring);
        if ('refused' in sealed) return refusal('config_secrets_key_missing', `${sealed.refused}; nothing was changed`);
        const message = encodeRevisionMessage(replicaId, sealed.change, sealed.sealedSecrets);
        const tooLarge = overMaxPayload(nats, message, `version ${planned.change.version}`);
        if (tooLarge) return refusal('config_revision_too_large', `${tooLarge}; nothing was changed`);
        let sequence: number;
        try {
          // The stream has this one subject, so the message takes the sequence after the expected one.
          const ack = await nats.jetstream().publish(revisionSubject, message, {
            expect: { lastSubjectSequence: lastSequence },
            timeout: publishTimeoutMs,
            headers: signed(lastSequence + 1, message),
          });
          sequence = ack.seq;
        } catch (error) {
          const natsError = error as NatsError;
          if (natsError.api_error?.err_code === jetStreamWrongLastSequence) {
            // Another replica wrote first: apply its revision(s) and plan this write again on top.
            log('config_write_replanned', { replica: replicaId, attempt, expectedSequence: lastSequence });
            try {
              await catchUpLocked();
            } catch (catchUpError) {
              log('config_replication_catch_up_failed', { replica: replicaId, error: (catchUpError as Error).message });
              return refusal('config_replication_unavailable', 'another replica wrote first and its change could not be read from NATS; nothing was changed, retry');
            }
            continue;
          }
          log('config_replication_publish_failed', { replica: replicaId, configVersion: planned.change.version, error: natsError.message });
          const unanswered = natsError.code === 'TIMEOUT';
          return refusal(
            'config_replication_unavailable',
            unanswered
              ? 'NATS did not acknowledge the change in time; it may or may not have been committed. Check /v1/revisions once NATS is reachable'
              : `the change could not be published to NATS (${natsError.message}); nothing was changed`,
          );
        }
        const outcome = store.commit(planned.change, sequence);
        if (outcome.status === 'refused') halt(`own revision at sequence ${sequence}: ${outcome.reason}`);
        else lastSequence = sequence;
        nats.publish(committedSubject, new TextEncoder().encode(JSON.stringify({ sequence })));
        return planned.result;
      }
      return refusal('config_write_contended', `other control-plane replicas committed ${maxWriteAttempts} changes while this one was being written; nothing was changed, retry`);
    });
  }

  return {
    current: (): PolicySnapshot => store.current(),
    listCredentials: (persona) => store.listCredentials(persona),
    history: (limit) => store.history(limit),
    onChange: (listener) => store.onChange(listener),
    apply: (documents, applyOptions) => write(() => store.plan.apply(documents, applyOptions)),
    remove: (kind, name, actor) => write(() => store.plan.remove(kind, name, actor)),
    issueCredential: (input, actor) => write(() => store.plan.issueCredential(input, actor)),
    revokeCredential: (id, actor) => write(() => store.plan.revokeCredential(id, actor)),
    status: () => ({ replica: replicaId, connected: ready, streamSequence: lastSequence, halted, unauthenticatedMessages: unauthenticated, ...(connectError !== null && !ready ? { connectError } : {}) }),
    catchUp: () => serialized(() => catchUpLocked()),
    async stop() {
      stopped = true;
      clearInterval(poll);
      await queue;
      if (nats) await nats.close();
      else void connecting.then((connection) => connection?.close()).catch(() => undefined);
    },
  };
}

/** Why a message cannot be published on this connection (over the server's max_payload), or null. */
function overMaxPayload(connection: NatsConnection, message: Uint8Array, what: string): string | null {
  const limit = connection.info?.max_payload;
  if (limit === undefined || message.length <= limit) return null;
  return `${what} is ${message.length} bytes compressed, over the NATS server's max_payload of ${limit} bytes, so it cannot be shared with the other replicas; raise max_payload in the NATS server configuration (at most 64 MB)`;
}

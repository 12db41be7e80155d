// The gRPC shell around the processor: one ExternalProcessor/Process stream per
// HTTP request. Nothing throws across this boundary; every failure becomes the
// processor's fail-closed answer, and a cancelled stream is never written to.
import * as grpc from '@grpc/grpc-js';
import { extProcMaxMessageWaitMs } from '../config/ext-proc-wait.ts';
import { routeIdentityFromMetadata } from '../config/route-identity.ts';
import { errorWithoutMessage } from './error-description.ts';
import { createStreamProcessor, type ProcessorDependencies } from './processor.ts';
import type { ProcessingRequest, ProcessingResponse } from './envoy-messages.ts';

export interface ExtProcServerOptions extends ProcessorDependencies {
  service: grpc.ServiceDefinition;
  log: (event: string, fields: Record<string, unknown>) => void;
}

export function createExtProcServer(options: ExtProcServerOptions): grpc.Server {
  const server = new grpc.Server({
    // BUFFERED bodies arrive in one message; the Persona limit (default 4 MiB) plus framing must fit.
    'grpc.max_receive_message_length': 80 * 1024 * 1024,
    'grpc.max_send_message_length': 80 * 1024 * 1024,
    'grpc.max_concurrent_streams': 100_000,
    'grpc.keepalive_permit_without_calls': 1,
    // Channelz keeps per-call bookkeeping (counters, timestamps) for a debugging service we do not serve.
    'grpc.enable_channelz': 0,
    // grpc-node.max_session_memory is left unset: grpc-js then disables the limit; any finite value makes Node refuse streams (REFUSED_STREAM) under load.
  });
  disableNagle(server);
  server.addService(options.service, {
    Process(call: grpc.ServerDuplexStream<ProcessingRequest, ProcessingResponse>) {
      const route = routeIdentityFromMetadata((key) => {
        const value = call.metadata.get(key)[0];
        return value === undefined ? undefined : String(value);
      });
      const processor = createStreamProcessor(route, options);
      let open = true;
      const close = () => {
        if (!open) return;
        open = false;
        processor.finish();
      };
      // Answers must leave in request order. Almost every answer is synchronous and written at
      // once; when one is asynchronous (external DLP), later messages queue behind it.
      let pending: Promise<void> | null = null;
      const answer = (request: ProcessingRequest, response: ProcessingResponse | null) => {
        if (response && open && !call.cancelled) call.write(response);
      };
      const failed = (request: ProcessingRequest, error: unknown) => {
        options.log('ext_proc_internal_error', { error: errorWithoutMessage(error), phase: request.request });
        return processor.internalError(request, error);
      };
      const process = (request: ProcessingRequest): Promise<void> | null => {
        let result: ReturnType<typeof processor.handle>;
        try {
          result = processor.handle(request);
        } catch (error) {
          answer(request, failed(request, error));
          return null;
        }
        if (result === null || !('deferred' in result)) {
          answer(request, result);
          return null;
        }
        // Ask Envoy to wait for the answer longer than its per-message timeout: never past max_message_timeout,
        // as Envoy ignores such an override instead of clamping it.
        const waitMs = Math.min(Math.round(result.waitMs), extProcMaxMessageWaitMs);
        if (open && !call.cancelled) call.write({ override_message_timeout: { seconds: Math.floor(waitMs / 1000), nanos: (waitMs % 1000) * 1_000_000 } });
        return result.deferred.then(
          (response) => answer(request, response),
          (error: unknown) => answer(request, failed(request, error)),
        );
      };
      call.on('data', (request: ProcessingRequest) => {
        if (!open) return;
        if (pending) {
          const queued: Promise<void> = pending.then(() => process(request) ?? undefined).finally(() => {
            if (pending === queued) pending = null;
          });
          pending = queued;
          return;
        }
        const started = process(request);
        if (started) {
          const queued: Promise<void> = started.finally(() => {
            if (pending === queued) pending = null;
          });
          pending = queued;
        }
      });
      call.on('end', () => {
        close();
        if (!call.cancelled) call.end();
      });
      call.on('cancelled', close);
      call.on('error', (error) => {
        options.log('ext_proc_stream_error', { error: error.message });
        close();
      });
    },
  });
  return server;
}

/**
 * grpc-js creates its HTTP/2 server without TCP_NODELAY. A response is written as
 * several small segments (HEADERS, DATA); with Nagle's algorithm the later ones wait
 * for Envoy's delayed ACK, adding tens of milliseconds per message. grpc-js exposes no
 * option for it, so the flag is added to the options it passes to http2.createServer.
 */
function disableNagle(server: grpc.Server): void {
  const internals = server as unknown as { commonServerOptions?: Record<string, unknown> };
  if (internals.commonServerOptions) internals.commonServerOptions.noDelay = true;
}

// The benchmark's floor: an ext_proc server on the same stack as Mandate's (grpc-js with the same
// server options, the same Envoy API descriptors) that decides nothing and answers CONTINUE at once.
// Envoy + this server is the least any grpc-js ext_proc can cost on the machine.
import * as grpc from '@grpc/grpc-js';
import { loadEnvoyApi } from '../../proto/envoy-api.ts';

const port = Number(process.env.PORT ?? 0);
const api = loadEnvoyApi();
const server = new grpc.Server({
  'grpc.max_receive_message_length': 80 * 1024 * 1024,
  'grpc.max_send_message_length': 80 * 1024 * 1024,
  'grpc.max_concurrent_streams': 100_000,
  'grpc.enable_channelz': 0,
});
// As in ext-proc/grpc-server.ts: answers leave without waiting for Nagle.
const internals = server as unknown as { commonServerOptions?: Record<string, unknown> };
if (internals.commonServerOptions) internals.commonServerOptions.noDelay = true;

const continueFor: Record<string, object> = {
  request_headers: { request_headers: { response: { status: 'CONTINUE' } } },
  request_body: { request_body: { response: { status: 'CONTINUE' } } },
  response_headers: { response_headers: { response: { status: 'CONTINUE' } } },
  response_body: { response_body: { response: { status: 'CONTINUE' } } },
};

server.addService(api.extProcService, {
  Process(call: grpc.ServerDuplexStream<{ request?: string }, object>) {
    call.on('data', (message) => {
      const answer = continueFor[message.request ?? ''];
      if (answer && !call.cancelled) call.write(answer);
    });
    call.on('end', () => call.end());
    call.on('error', () => {});
  },
});
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
  if (error) throw error;
  process.stdout.write(`no-op ext_proc on ${bound}\n`);
});

// The ext_proc message shapes as @grpc/proto-loader produces and accepts them
// when loading the descriptor image (proto/envoy-api.ts): snake_case fields,
// enums as strings, oneofs named by a virtual field, map fields as {key, value} lists.

export interface HttpHeaderEntry {
  key: string;
  value?: string;
  raw_value?: Buffer | Uint8Array;
}

type StructValue = { string_value?: string; number_value?: number; bool_value?: boolean };
type StructFields = { key: string; value: StructValue }[] | Record<string, StructValue>;
type AttributeMap = { key: string; value: { fields?: StructFields } }[] | Record<string, { fields?: StructFields }>;

export interface ProcessingRequest {
  request?: 'request_headers' | 'response_headers' | 'request_body' | 'response_body' | 'request_trailers' | 'response_trailers';
  request_headers?: { headers?: { headers?: HttpHeaderEntry[] }; end_of_stream?: boolean };
  response_headers?: { headers?: { headers?: HttpHeaderEntry[] }; end_of_stream?: boolean };
  request_body?: { body?: Buffer; end_of_stream?: boolean };
  response_body?: { body?: Buffer; end_of_stream?: boolean };
  attributes?: AttributeMap;
  observability_mode?: boolean;
}

export interface HeaderMutation {
  set_headers?: { header: { key: string; raw_value: Buffer } }[];
  remove_headers?: string[];
}

export interface CommonResponse {
  status?: 'CONTINUE' | 'CONTINUE_AND_REPLACE';
  header_mutation?: HeaderMutation;
  body_mutation?: { body: Buffer } | { clear_body: true };
}

type BodySendMode = 'NONE' | 'STREAMED' | 'BUFFERED' | 'BUFFERED_PARTIAL' | 'FULL_DUPLEX_STREAMED';
type HeaderSendMode = 'DEFAULT' | 'SEND' | 'SKIP';

export interface ProcessingResponse {
  request_headers?: { response?: CommonResponse };
  response_headers?: { response?: CommonResponse };
  request_body?: { response?: CommonResponse };
  response_body?: { response?: CommonResponse };
  request_trailers?: Record<string, never>;
  response_trailers?: Record<string, never>;
  immediate_response?: {
    status: { code: number };
    headers?: HeaderMutation;
    body?: Buffer;
    details?: string;
  };
  /** Extends Envoy's message timeout for the current phase (needs max_message_timeout on the filter). */
  override_message_timeout?: { seconds: number; nanos: number };
  mode_override?: {
    request_header_mode: HeaderSendMode;
    response_header_mode: HeaderSendMode;
    request_body_mode: BodySendMode;
    response_body_mode: BodySendMode;
    request_trailer_mode: HeaderSendMode;
    response_trailer_mode: HeaderSendMode;
  };
}

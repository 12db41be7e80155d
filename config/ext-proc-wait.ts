// How long Envoy waits for ext_proc on one message, shared by the snapshot builder (which sets it),
// the config schema (which keeps inline external DLP within it) and ext_proc (which asks for it).

/**
 * Envoy's max_message_timeout for ext_proc: the longest wait ext_proc may ask for on one message
 * (override_message_timeout). Envoy ignores, it does not clamp, a longer override: the filter's
 * message_timeout (2 s by default) would then apply.
 */
export const extProcMaxMessageWaitMs = 30_000;

/** What ext_proc asks for beyond the inline external DLP services' timeouts, for the rest of its work on the message. */
export const externalDlpWaitMarginMs = 1_000;

/** The most the inline external DLP services' timeoutMs may add up to for one direction. */
export const maxInlineExternalDlpWaitMs = extProcMaxMessageWaitMs - externalDlpWaitMarginMs;

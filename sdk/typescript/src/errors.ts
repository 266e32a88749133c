/**
 * PeapodError is the base of every error the SDK throws on purpose; code
 * says what failed, so that callers can branch on it.
 */
export class PeapodError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(`peapod: ${message}`, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * The codes of a DescriptorError: the first five are those of the shared
 * test vectors (framework/descriptor/testdata/vectors.json).
 */
export type DescriptorErrorCode =
  | "signature"
  | "key_mismatch"
  | "expired"
  | "not_yet_valid"
  | "malformed"
  | "key_changed"
  | "network_mismatch"
  | "address_mismatch"
  | "other_authorities"
  | "fetch";

/**
 * DescriptorError refuses a provider's descriptor: it could not be fetched,
 * is malformed, its signature does not verify ("signature", whatever
 * failed), it is signed by another key than the pinned one
 * ("key_mismatch") or than the one remembered from an earlier use
 * ("key_changed"), it names another network than the directory you use
 * ("network_mismatch"), or other directory authorities than the trusted
 * ones ("other_authorities", an AuthoritiesMismatchError), or it is expired
 * or not yet valid.
 */
export class DescriptorError extends PeapodError {
  declare readonly code: DescriptorErrorCode;
  constructor(code: DescriptorErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * AuthoritiesMismatchError (code "other_authorities") refuses a descriptor
 * whose network names other directory authorities than the ones the
 * caller trusts (DiscoverOptions.authorities), or a lower threshold: with
 * them, whoever substituted the descriptor would choose the topology, and
 * so the routes. Keys are base58, sorted; thresholds are the signatures
 * each requires.
 */
export class AuthoritiesMismatchError extends DescriptorError {
  constructor(
    readonly provider: string,
    readonly trusted: string[],
    readonly trustedThreshold: number,
    readonly published: string[],
    readonly publishedThreshold: number,
  ) {
    super(
      "other_authorities",
      `THE PROVIDER'S NETWORK IS NOT YOURS: the descriptor of ${provider} names the directory authorities ` +
        `${published.join(",")} (${publishedThreshold} of them must sign), and you trust ${trusted.join(",")} ` +
        `(${trustedThreshold} of them must sign). A descriptor substituted on the way looks like this; ` +
        `if the network changed its authorities, check them with its operator.`,
    );
  }
}

/**
 * ProviderError is a failure the provider answered with: code is its error
 * code (bad_request, unknown_service, handler_failed, timeout, overloaded,
 * too_large, or a service's own such as not_found) and detail its message.
 */
export class ProviderError extends PeapodError {
  readonly detail: string;
  constructor(code: string, detail: string) {
    super(code, `the provider answered ${code}${detail ? ": " + detail : ""}`);
    this.detail = detail;
  }
}

/**
 * TooLargeError refuses a request before it is sent: its message is longer
 * than the provider accepts. Its code is "too_large", as the provider's own
 * answer would be.
 */
export class TooLargeError extends PeapodError {
  constructor(readonly size: number, readonly limit: number) {
    super("too_large", `the request is ${size} bytes, more than the provider's limit of ${limit}`);
  }
}

/** NoReplyError: no reply came within the call's timeout ("no_reply"). */
export class NoReplyError extends PeapodError {
  constructor(readonly timeoutMs: number) {
    super("no_reply", `no reply within ${timeoutMs} ms`);
  }
}

/**
 * ConnectionError: the WebSocket to the mixnet client could not be opened,
 * closed, or carried something that is not Nym's API ("connection").
 */
export class ConnectionError extends PeapodError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("connection", message, options);
  }
}

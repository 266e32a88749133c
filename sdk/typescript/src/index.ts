/**
 * @peapod/sdk: call peapod providers through a mixnet, from Node and from
 * browsers.
 *
 *     const provider = await discover("http://127.0.0.1:8080");
 *     const client = await connect("ws://127.0.0.1:1977", provider);
 *     await kv.put(client, "greeting", "hello");
 *
 * discover fetches and verifies the provider's signed descriptor; connect
 * opens a mixnet client's WebSocket API (`client run`, or Nym's native
 * client); Client.call sends one request anonymously, with reply SURBs, and
 * returns the reply. See docs/sdk-typescript.md.
 */
export { discover, keyText } from "./discover.js";
export type { DiscoverOptions, Provider } from "./discover.js";
export { connect, Client, DEFAULT_MAX_REQUEST_SIZE, DEFAULT_REPLY_SURBS, DEFAULT_RESEND_MS, DEFAULT_TIMEOUT_MS } from "./client.js";
export type { CallOptions, ConnectOptions, ProviderTarget, WebSocketClass, WebSocketLike } from "./client.js";
export { verifyDescriptor, decodeKey, WELL_KNOWN_PATH, SIGNATURE_CONTEXT } from "./descriptor.js";
export type { Descriptor, Limits, Network, Service, VerifyOptions } from "./descriptor.js";
export { PeapodError, DescriptorError, AuthoritiesMismatchError, ProviderError, TooLargeError, NoReplyError, ConnectionError } from "./errors.js";
export type { DescriptorErrorCode } from "./errors.js";
export { checkAuthorities, refuseOtherAuthorities, signaturesNeeded, MAX_AUTHORITIES } from "./authorities.js";
export type { Authorities } from "./authorities.js";
export { MemoryTrustStore, LocalStorageTrustStore, providerId } from "./trust.js";
export type { TrustStore } from "./trust.js";
export { parseAddress } from "./address.js";
export type { Address } from "./address.js";
export { encodeRequest, parseReply, validId, validService } from "./envelope.js";
export type { Reply } from "./envelope.js";
export { encodeSendAnonymous, encodeSelfAddress, parseResponse } from "./frames.js";
export type { Response } from "./frames.js";
export { echo, kv, text } from "./services.js";
export type { KVList } from "./services.js";

// A client of one provider over Nym's native-client WebSocket API: the
// API of `client run`, and of Nym's own native client.
import { Address, parseAddress } from "./address.js";
import { toBase64URL, utf8 } from "./bytes.js";
import { encodeRequest, parseReply, Reply } from "./envelope.js";
import { ConnectionError, NoReplyError, PeapodError, ProviderError, TooLargeError } from "./errors.js";
import { encodeSelfAddress, encodeSendAnonymous, parseResponse } from "./frames.js";

/** Defaults of ConnectOptions and CallOptions. */
export const DEFAULT_REPLY_SURBS = 10;
export const DEFAULT_RESEND_MS = 20_000;
export const DEFAULT_TIMEOUT_MS = 60_000;
/** The provider's request limit when its descriptor publishes none (the provider's default). */
export const DEFAULT_MAX_REQUEST_SIZE = 262_144;
const CONNECT_TIMEOUT_MS = 10_000;

/** What connect needs to know of the provider: a discovered Provider will do. */
export interface ProviderTarget {
  address: Address | string;
  limits?: { maxRequestSize?: number };
}

export interface CallOptions {
  /** How long to wait for the reply, in ms, resends included. Default 60 s. */
  timeout?: number;
  /** Reply SURBs sent with the request: enough for about 2 KB of reply each. Default 10. */
  replySurbs?: number;
  /** Send the request again, with the same id, when no reply came for this long (ms). Default 20 s; 0 never. */
  resendAfter?: number;
  /** Cancels the call: it rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface ConnectOptions extends Omit<CallOptions, "signal"> {
  /** The WebSocket class; default globalThis.WebSocket (Node ≥ 22, or Node 20 with --experimental-websocket, and browsers). */
  WebSocket?: WebSocketClass;
  /** Cancels connecting. */
  signal?: AbortSignal;
  /** Receives warnings (unreadable messages, errors the mixnet client reports); default console.warn. */
  onWarning?: (message: string) => void;
}

/** The parts of the WebSocket standard the client uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (ev: any) => void): void;
}
export type WebSocketClass = new (url: string) => WebSocketLike;

interface Pending {
  resolve(data: Uint8Array): void;
  reject(err: unknown): void;
}

/**
 * connect opens the WebSocket API of a mixnet client (such as `client run`
 * at ws://127.0.0.1:1977), checks that it answers, and returns a Client
 * that sends requests to provider.
 */
export async function connect(wsUrl: string, provider: ProviderTarget, opts: ConnectOptions = {}): Promise<Client> {
  const address = typeof provider.address === "string" ? parseAddress(provider.address) : provider.address;
  if (typeof address === "string") throw new PeapodError("bad_address", `provider address: ${address}`);
  const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
  if (!WS) {
    throw new ConnectionError("no WebSocket class: use Node ≥ 22, Node 20 with --experimental-websocket, or pass options.WebSocket");
  }
  opts.signal?.throwIfAborted();
  let ws: WebSocketLike;
  try {
    ws = new WS(wsUrl);
  } catch (e) {
    throw new ConnectionError(`${wsUrl}: ${(e as Error).message}`, { cause: e });
  }
  const client = new Client(ws, address, provider.limits?.maxRequestSize ?? DEFAULT_MAX_REQUEST_SIZE, opts);
  try {
    await client.ready(wsUrl, opts.signal);
  } catch (e) {
    client.close();
    throw e;
  }
  return client;
}

/**
 * Client sends requests to one provider through a mixnet client's
 * WebSocket API and matches the replies by request id. One connection
 * carries any number of calls at once.
 */
export class Client {
  /** The mixnet client's own address, once connected. */
  selfAddress = "";
  private pending = new Map<string, Pending>();
  private closed: ConnectionError | undefined;
  private selfAddressWaiter: ((a: string) => void) | undefined;
  private warn: (m: string) => void;

  /** @internal use connect */
  constructor(
    private ws: WebSocketLike,
    readonly provider: Address,
    readonly maxRequestSize: number,
    private defaults: ConnectOptions,
  ) {
    this.warn = defaults.onWarning ?? ((m: string) => console.warn(m));
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", (ev: { data: unknown }) => this.onMessage(ev.data));
    ws.addEventListener("close", (ev: { code?: number; reason?: string }) =>
      this.fail(new ConnectionError(`the WebSocket closed (${ev.code ?? "?"}${ev.reason ? " " + ev.reason : ""})`)),
    );
    ws.addEventListener("error", () => this.fail(new ConnectionError("the WebSocket failed")));
  }

  /** @internal */
  async ready(wsUrl: string, signal?: AbortSignal): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new ConnectionError(`${wsUrl}: no answer to SelfAddress within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
      const onAbort = () => done(signal!.reason);
      const done = (err?: unknown) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.selfAddressWaiter = undefined;
        this.onFail = undefined;
        err === undefined ? resolve() : reject(err);
      };
      signal?.addEventListener("abort", onAbort);
      this.onFail = (e) => done(new ConnectionError(`${wsUrl}: ${e.message.replace(/^peapod: /, "")}`, { cause: e }));
      this.selfAddressWaiter = (a) => {
        this.selfAddress = a;
        done();
      };
      const send = () => this.ws.send(encodeSelfAddress());
      if (this.ws.readyState === 1) send();
      else this.ws.addEventListener("open", send);
    });
  }
  private onFail: ((e: ConnectionError) => void) | undefined;

  /**
   * call sends data to the provider's service and returns the reply's data.
   * It throws a ProviderError with the provider's code when the provider
   * answers with a failure, a TooLargeError before sending a request longer
   * than the provider accepts, a NoReplyError when no reply came in time, a
   * ConnectionError when the WebSocket closes, and the signal's reason
   * when cancelled. Without a reply it sends the request again with the
   * same id; the provider answers a repeat without running it twice.
   */
  async call(service: string, data: Uint8Array | string, opts: CallOptions = {}): Promise<Uint8Array> {
    if (this.closed) throw this.closed;
    opts.signal?.throwIfAborted();
    const timeout = opts.timeout ?? this.defaults.timeout ?? DEFAULT_TIMEOUT_MS;
    const surbs = opts.replySurbs ?? this.defaults.replySurbs ?? DEFAULT_REPLY_SURBS;
    const resendAfter = opts.resendAfter ?? this.defaults.resendAfter ?? DEFAULT_RESEND_MS;
    const id = newId();
    const body = encodeRequest(id, service, typeof data === "string" ? utf8(data) : data);
    if (body.length > this.maxRequestSize) throw new TooLargeError(body.length, this.maxRequestSize);
    const frame = encodeSendAnonymous(this.provider.bytes, surbs, 0n, body);
    return new Promise<Uint8Array>((resolve, reject) => {
      const timers: ReturnType<typeof setTimeout>[] = [];
      const onAbort = () => settle(() => reject(opts.signal!.reason));
      const settle = (f: () => void) => {
        timers.forEach(clearTimeout);
        opts.signal?.removeEventListener("abort", onAbort);
        this.pending.delete(id);
        f();
      };
      this.pending.set(id, {
        resolve: (d) => settle(() => resolve(d)),
        reject: (e) => settle(() => reject(e)),
      });
      opts.signal?.addEventListener("abort", onAbort);
      timers.push(setTimeout(() => settle(() => reject(new NoReplyError(timeout))), timeout));
      const send = () => {
        try {
          this.ws.send(frame);
        } catch (e) {
          settle(() => reject(new ConnectionError(`sending: ${(e as Error).message}`, { cause: e })));
          return;
        }
        if (resendAfter > 0) timers.push(setTimeout(send, resendAfter));
      };
      send();
    });
  }

  /** close closes the WebSocket; calls waiting for a reply fail with a ConnectionError. */
  close(): void {
    this.fail(new ConnectionError("closed"));
    try {
      this.ws.close(1000);
    } catch {
      // already closed
    }
  }

  private fail(err: ConnectionError): void {
    if (this.closed) return;
    this.closed = err;
    this.onFail?.(err);
    for (const p of [...this.pending.values()]) p.reject(err);
  }

  private onMessage(data: unknown): void {
    if (!(data instanceof ArrayBuffer)) {
      this.warn("peapod: the mixnet client sent a text frame; the SDK speaks binary frames only");
      return;
    }
    let r;
    try {
      r = parseResponse(new Uint8Array(data));
    } catch (e) {
      this.warn((e as Error).message);
      return;
    }
    switch (r.type) {
      case "self_address":
        this.selfAddressWaiter?.(r.address.text);
        return;
      case "error":
        this.warn(`peapod: the mixnet client reports an error (kind ${r.kind}): ${r.message}`);
        return;
      case "lane_queue_length":
        return;
    }
    let reply: Reply;
    try {
      reply = parseReply(r.data);
    } catch (e) {
      this.warn(`peapod: a message that is not a reply: ${(e as Error).message}`);
      return;
    }
    const p = this.pending.get(reply.id);
    if (!p) {
      if (reply.id === "" && !reply.ok) {
        this.warn(`peapod: the provider refused a request it could not read: ${reply.code}: ${reply.message}`);
      }
      return; // a second reply to a request sent twice, or another application's
    }
    if (reply.ok) p.resolve(reply.data);
    else p.reject(new ProviderError(reply.code, reply.message));
  }
}

function newId(): string {
  return toBase64URL(crypto.getRandomValues(new Uint8Array(16)));
}

import type { StructDesc } from "./compact.js";

/** Options of one call. */
export interface CallOptions {
  /**
   * The call's deadline in milliseconds; past it the call fails with a
   * NoonError "timeout" (its reply, when it comes, is dropped). 0: none.
   * Default: the session's callTimeoutMs.
   */
  timeoutMs?: number;
  /** Aborting the signal fails the call at once (like a deadline). */
  signal?: AbortSignal;
}

/** Caller is what the generated service clients call through (a Session or a Connection). */
export interface Caller {
  call(method: string, payload: Uint8Array, opts?: CallOptions): Promise<Uint8Array>;
  callStruct<Req, Rep>(method: string, reqDesc: StructDesc, req: Req, repDesc: StructDesc, opts?: CallOptions): Promise<Rep>;
}

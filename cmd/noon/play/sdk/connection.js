// Connection: one WebSocket to a broker, one binary message per frame,
// replies matched to requests in order (pandaparty frames carry no request
// id; the broker answers each connection's requests in the order it
// received them), as edge/client's Client.
import { decode, encode } from "./compact.js";
import { NoonError } from "./errors.js";
import { decodeResponse, encodeRequest, DEFAULT_MAX_FRAME, withDefaults } from "./frame.js";
import { HelloReply$, HelloRequest$ } from "./gen/edge.js";
/** The protocol version edge.Hello sends (wire.ProtocolVersion). */
export const PROTOCOL_VERSION = 1;
/** The broker's own hello method (wire.MethodHello). */
export const METHOD_HELLO = "edge.Hello";
/** The default bound on connecting and the hello, 10 s (client.DefaultDialTimeout). */
export const DEFAULT_DIAL_TIMEOUT_MS = 10_000;
function toBytes(data) {
    if (data instanceof Uint8Array)
        return data;
    if (data instanceof ArrayBuffer)
        return new Uint8Array(data);
    if (ArrayBuffer.isView(data))
        return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (Array.isArray(data)) {
        // ws with binaryType "nodebuffer" and fragmented messages: Buffer[].
        const parts = data;
        const n = parts.reduce((s, p) => s + p.length, 0);
        const out = new Uint8Array(n);
        let off = 0;
        for (const p of parts) {
            out.set(p, off);
            off += p.length;
        }
        return out;
    }
    return null;
}
/**
 * Connection is one WebSocket to a broker. Calls may overlap: requests are
 * sent at once and replies matched in order. When the connection ends,
 * every pending call fails with NoonError "unavailable".
 */
export class Connection {
    /** The broker's reply to the hello, or undefined. */
    helloReply;
    /** The URL connected to. */
    url;
    ws;
    opts;
    maxFrame;
    pending = [];
    err = null;
    pushListeners = new Set();
    closeListeners = new Set();
    closedPromise;
    resolveClosed;
    constructor(url, ws, opts) {
        this.url = url;
        this.ws = ws;
        this.opts = opts;
        this.maxFrame = withDefaults({ maxFrame: opts.maxFrame }).maxFrame;
        this.closedPromise = new Promise((r) => (this.resolveClosed = r));
    }
    /**
     * open connects to a broker's WebSocket URL (ws:// or wss://) and, unless
     * opts.hello is false, says edge.Hello. A refused hello (a resume token
     * that is not live) rejects with the broker's error.
     */
    static open(url, opts = {}) {
        const WS = opts.WebSocket ?? globalThis.WebSocket;
        if (!WS) {
            return Promise.reject(new NoonError("unavailable", "no WebSocket: pass ConnectionOptions.WebSocket (in Node 20, the `ws` package's WebSocket)"));
        }
        const dialMs = opts.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
        return new Promise((resolve, reject) => {
            let ws;
            try {
                ws = new WS(url);
            }
            catch (e) {
                reject(new NoonError("unavailable", `dial ${url}: ${e.message}`));
                return;
            }
            ws.binaryType = "arraybuffer";
            const c = new Connection(url, ws, opts);
            let done = false;
            const timer = dialMs > 0
                ? setTimeout(() => {
                    if (done)
                        return;
                    done = true;
                    c.fail(new NoonError("timeout", `dial ${url}: no hello within ${dialMs} ms`));
                    reject(new NoonError("timeout", `dial ${url}: no hello within ${dialMs} ms`));
                }, dialMs)
                : undefined;
            const finish = (err) => {
                if (done)
                    return;
                done = true;
                if (timer)
                    clearTimeout(timer);
                if (err) {
                    c.fail(err instanceof NoonError ? err : new NoonError("unavailable", String(err)));
                    reject(err);
                }
                else
                    resolve(c);
            };
            ws.onerror = () => {
                if (!done)
                    finish(new NoonError("unavailable", `dial ${url}: connection failed`));
            };
            ws.onclose = (ev) => {
                const e = new NoonError("unavailable", `connection to ${url} closed${ev?.code ? ` (${ev.code}${ev.reason ? " " + ev.reason : ""})` : ""}`);
                c.fail(e);
                finish(e);
            };
            ws.onmessage = (ev) => c.onMessage(ev.data);
            ws.onopen = () => {
                const hello = opts.hello !== false || opts.push || opts.resumeToken;
                if (!hello) {
                    finish(null);
                    return;
                }
                const req = { protocolVersion: PROTOCOL_VERSION, push: !!opts.push };
                if (opts.resumeToken)
                    req.resumeToken = opts.resumeToken;
                if (opts.clientName)
                    req.clientName = opts.clientName;
                c.hello(req, { timeoutMs: 0 }).then((rep) => {
                    c.helloReply = rep;
                    finish(null);
                }, (e) => finish(e));
            };
        });
    }
    /** hello sends edge.Hello (open sends it already; again: changes the push setting). */
    hello(req, opts) {
        return this.callStruct(METHOD_HELLO, HelloRequest$, req, HelloReply$, opts);
    }
    /** onPush registers a listener of this connection's pushes; it returns an unsubscribe function. */
    onPush(fn) {
        this.pushListeners.add(fn);
        return () => this.pushListeners.delete(fn);
    }
    /** onClose registers a listener called once when the connection ends, with why. */
    onClose(fn) {
        if (this.err) {
            queueMicrotask(() => fn(this.err));
            return () => { };
        }
        this.closeListeners.add(fn);
        return () => this.closeListeners.delete(fn);
    }
    /** closed resolves when the connection has ended, with why. */
    get closed() {
        return this.closedPromise;
    }
    /** isClosed reports whether the connection has ended. */
    get isClosed() {
        return this.err !== null;
    }
    /** Pending calls: sent and not answered. */
    get inFlight() {
        return this.pending.length;
    }
    /**
     * call sends method with payload and resolves with the reply payload; an
     * error reply rejects with a NoonError carrying its code. Past the
     * deadline the call rejects with NoonError "timeout" but keeps its place
     * in line: its reply, when it comes, is dropped.
     */
    call(method, payload, opts = {}) {
        if (this.err)
            return Promise.reject(this.err);
        let frame;
        try {
            frame = encodeRequest(method, payload, { maxFrame: this.maxFrame });
        }
        catch (e) {
            return Promise.reject(e);
        }
        if (opts.signal?.aborted)
            return Promise.reject(new NoonError("timeout", `${method}: aborted before it was sent`));
        return new Promise((resolve, reject) => {
            const p = { method, resolve, reject, settled: false };
            const timeoutMs = opts.timeoutMs ?? this.opts.callTimeoutMs ?? 0;
            if (timeoutMs > 0) {
                p.timer = setTimeout(() => {
                    if (p.settled)
                        return;
                    p.settled = true;
                    p.cleanup?.();
                    reject(new NoonError("timeout", `${method}: no reply within the client's deadline of ${timeoutMs} ms`));
                }, timeoutMs);
            }
            if (opts.signal) {
                const onAbort = () => {
                    if (p.settled)
                        return;
                    p.settled = true;
                    if (p.timer)
                        clearTimeout(p.timer);
                    reject(new NoonError("timeout", `${method}: aborted`));
                };
                opts.signal.addEventListener("abort", onAbort, { once: true });
                p.cleanup = () => opts.signal.removeEventListener("abort", onAbort);
            }
            this.pending.push(p);
            try {
                this.ws.send(frame);
            }
            catch (e) {
                this.fail(new NoonError("unavailable", `write to ${this.url}: ${e.message}`));
            }
        });
    }
    /** callStruct is call with Thrift compact structs. */
    async callStruct(method, reqDesc, req, repDesc, opts) {
        const out = await this.call(method, encode(reqDesc, req), opts);
        try {
            return decode(repDesc, out);
        }
        catch (e) {
            throw new NoonError("internal", `decoding ${method} reply: ${e.message}`);
        }
    }
    /** close closes the connection; pending calls fail with "unavailable". */
    close() {
        this.fail(new NoonError("unavailable", `connection to ${this.url} closed by the client`));
    }
    onMessage(data) {
        if (this.err)
            return;
        const msg = toBytes(data);
        if (!msg) {
            this.fail(new NoonError("bad_frame", "the broker sent a text message"));
            return;
        }
        let f;
        try {
            f = decodeResponse(msg, { maxFrame: this.maxFrame });
        }
        catch (e) {
            this.fail(e);
            return;
        }
        if (f.kind === "push") {
            const p = { type: f.type, payload: f.payload.slice() };
            for (const fn of [...this.pushListeners]) {
                try {
                    fn(p);
                }
                catch (e) {
                    queueMicrotask(() => {
                        throw e;
                    });
                }
            }
            return;
        }
        const r = this.pending.shift();
        if (!r) {
            this.fail(new NoonError("internal", "the broker sent a reply to no request"));
            return;
        }
        if (r.timer)
            clearTimeout(r.timer);
        r.cleanup?.();
        if (r.settled)
            return; // the caller gave up: drop the reply
        r.settled = true;
        if (f.err !== "")
            r.reject(NoonError.parse(f.err));
        else
            r.resolve(f.payload.slice());
    }
    /** fail ends the connection with err (the first error wins) and fails every pending call. */
    fail(err) {
        if (this.err)
            return;
        this.err = err;
        const pending = this.pending;
        this.pending = [];
        try {
            this.ws.onmessage = null;
            if (this.ws.readyState <= 1)
                this.ws.close(1000);
        }
        catch {
            // already closing
        }
        // Calls cut off by the end of the connection fail "unavailable": they
        // may have run, so they are not resent.
        const callErr = err.code === "unavailable" ? err : new NoonError("unavailable", `connection to ${this.url} lost: ${err.toString()}`);
        for (const r of pending) {
            if (r.timer)
                clearTimeout(r.timer);
            r.cleanup?.();
            if (r.settled)
                continue;
            r.settled = true;
            r.reject(callErr);
        }
        for (const fn of [...this.closeListeners])
            fn(err);
        this.closeListeners.clear();
        this.resolveClosed(err);
    }
}
export { DEFAULT_MAX_FRAME };
//# sourceMappingURL=connection.js.map
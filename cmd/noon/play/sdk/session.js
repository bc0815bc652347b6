// Session: a game client's logged-in session across broker connections, as
// edge/client's Session: it picks the least-loaded broker from the
// BrokerList, says hello with pushes on, keeps the token of its login
// (login.Login, or session.login(...)), and when its connection is lost
// while logged in reconnects in the background to another broker (backoff
// 50 ms doubling to 5 s, with jitter) and resumes with the token; it moves
// to another broker on "@edge.Draining" and forgets the token on
// "@edge.LoggedOut".
import { candidates, defaultWsUrl, fetchBrokerList } from "./brokerlist.js";
import { decode, encode } from "./compact.js";
import { Connection } from "./connection.js";
import { NoonError } from "./errors.js";
import { ServiceClients, pushEvents } from "./gen/index.js";
import { LoginReply$, LogoutRequest$ } from "./gen/login.js";
/** Local events: pushes the Session makes itself (types starting with "_"). */
export const EVENT_RESUMED = "_client.Resumed";
export const EVENT_RESUME_FAILED = "_client.ResumeFailed";
/** The broker's push events the Session acts on (wire.EventDraining, wire.EventLoggedOut). */
export const EVENT_DRAINING = "edge.Draining";
export const EVENT_LOGGED_OUT = "edge.LoggedOut";
/** Defaults of the reconnection backoff (client.DefaultReconnectMin / Max). */
export const DEFAULT_RECONNECT_MIN_MS = 50;
export const DEFAULT_RECONNECT_MAX_MS = 5000;
/** The default deadline of a call, 15 s. */
export const DEFAULT_CALL_TIMEOUT_MS = 15_000;
/**
 * backoff returns the reconnection's delays: from minMs, doubling up to
 * maxMs, each with jitter in [wait/2, wait], so that the players of a dead
 * broker do not all come back at once.
 */
function backoff(minMs, maxMs) {
    let wait = minMs;
    return () => {
        const d = wait / 2 + Math.random() * (wait / 2);
        wait = Math.min(2 * wait, maxMs);
        return d;
    };
}
/** connectEnds says whether an error of client ends a retry loop: a refused token. */
function connectEnds(e) {
    return e instanceof NoonError && e.code === "unauthenticated";
}
function sleep(ms, quit) {
    return new Promise((resolve) => {
        const t = setTimeout(resolve, ms);
        void quit.then(() => {
            clearTimeout(t);
            resolve();
        });
    });
}
/**
 * Session is a logged-in session across broker connections, with a typed
 * client per service (session.room.create({...}), session.login.login(...))
 * and typed push callbacks (session.on("room.Event", (ev) => ...)).
 */
export class Session extends ServiceClients {
    opts;
    c = null;
    leaving = null;
    addr = "";
    _token = "";
    _userId = "";
    closed = false;
    connecting = null;
    listeners = new Map();
    anyListeners = new Set();
    quitResolve;
    quit = new Promise((r) => (this.quitResolve = r));
    reconnectMinMs;
    reconnectMaxMs;
    constructor(opts, token) {
        super();
        this.opts = opts;
        this._token = token;
        this.reconnectMinMs = opts.reconnectMinMs ?? DEFAULT_RECONNECT_MIN_MS;
        this.reconnectMaxMs = Math.max(opts.reconnectMaxMs ?? DEFAULT_RECONNECT_MAX_MS, this.reconnectMinMs);
    }
    /** connect fetches the BrokerList, connects to the least-loaded broker and says hello (pushes on). */
    static async connect(opts) {
        const s = new Session(opts, "");
        try {
            await s.client();
        }
        catch (e) {
            s.close();
            throw e;
        }
        return s;
    }
    /** resume is connect with an existing session token: rejects with "unauthenticated" if the token is refused. */
    static async resume(opts, token) {
        const s = new Session(opts, token);
        try {
            await s.client();
        }
        catch (e) {
            s.close();
            throw e;
        }
        return s;
    }
    /** The session token, after a login or resume ("" when logged out). */
    get token() {
        return this._token;
    }
    /** The logged-in user's id ("" when logged out). */
    get userId() {
        return this._userId;
    }
    /** The BrokerList address (or URL) of the broker the session is connected to. */
    get broker() {
        return this.addr;
    }
    /** The live connection, if any. */
    get connection() {
        return this.c;
    }
    on(type, fn) {
        let set = this.listeners.get(type);
        if (!set)
            this.listeners.set(type, (set = new Set()));
        set.add(fn);
        return () => set.delete(fn);
    }
    /** onAny registers a callback of every push, raw. */
    onAny(fn) {
        this.anyListeners.add(fn);
        return () => this.anyListeners.delete(fn);
    }
    /**
     * next resolves with the next event of the type matching pred (or rejects
     * with NoonError "timeout" after timeoutMs): handy in tests and scripts.
     */
    next(type, pred = () => true, timeoutMs = 10_000) {
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                off();
                reject(new NoonError("timeout", `no ${String(type)} event within ${timeoutMs} ms`));
            }, timeoutMs);
            const off = this.on(type, (ev) => {
                if (!pred(ev))
                    return;
                clearTimeout(timer);
                off();
                resolve(ev);
            });
        });
    }
    emit(p, decoded) {
        for (const fn of [...this.anyListeners])
            this.safe(() => fn(p));
        const set = this.listeners.get(p.type);
        if (!set || set.size === 0)
            return;
        let ev = decoded;
        if (ev === undefined) {
            const d = pushEvents[p.type];
            if (d) {
                try {
                    ev = decode(d, p.payload);
                }
                catch (e) {
                    this.opts.onError?.(new NoonError("internal", `decoding @${p.type} push: ${e.message}`));
                    return;
                }
            }
            else
                ev = p.payload;
        }
        for (const fn of [...set])
            this.safe(() => fn(ev, p));
    }
    safe(f) {
        try {
            f();
        }
        catch (e) {
            if (this.opts.onError)
                this.opts.onError(e);
            else
                queueMicrotask(() => {
                    throw e;
                });
        }
    }
    local(type, ev, payload = new Uint8Array(0)) {
        this.emit({ type, payload }, ev);
    }
    wsUrl(addr) {
        return (this.opts.wsUrl ?? ((a) => defaultWsUrl(a)))(addr);
    }
    /** candidates lists broker addresses, least loaded first, the one to avoid last. */
    async candidates(avoid) {
        let addrs;
        if (this.opts.brokerList) {
            const list = await fetchBrokerList(this.opts.brokerList, { fetch: this.opts.fetch });
            addrs = candidates(list, avoid);
        }
        else {
            const b = this.opts.brokers ?? [];
            addrs = [...b.filter((a) => a !== avoid), ...b.filter((a) => a === avoid)];
        }
        if (addrs.length === 0)
            throw new NoonError("unavailable", "no brokers in the list");
        return addrs;
    }
    /** client returns the live connection, (re)connecting when there is none, it was lost, or its broker is draining. */
    client() {
        if (this.closed)
            return Promise.reject(new NoonError("unavailable", "session closed"));
        if (this.c && !this.c.isClosed && this.c !== this.leaving)
            return Promise.resolve(this.c);
        if (!this.connecting) {
            this.connecting = this.connectOnce()
                .catch((e) => {
                // No other broker yet: keep using the draining one while it
                // still answers (its grace); the next call tries again.
                const c = this.c;
                if (c && c === this.leaving && !c.isClosed && !(e instanceof NoonError && e.code === "unauthenticated"))
                    return c;
                throw e;
            })
                .finally(() => {
                this.connecting = null;
            });
        }
        return this.connecting;
    }
    async connectOnce() {
        const addrs = await this.candidates(this.addr);
        const errs = [];
        for (const a of addrs) {
            const token = this._token;
            let conn;
            try {
                conn = await Connection.open(this.wsUrl(a), {
                    ...this.opts,
                    hello: true,
                    push: true,
                    resumeToken: token || undefined,
                    callTimeoutMs: this.opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
                });
            }
            catch (e) {
                errs.push(`${a}: ${e instanceof NoonError ? e.toString() : String(e)}`);
                continue;
            }
            if (this.closed) {
                conn.close();
                throw new NoonError("unavailable", "session closed");
            }
            const resumed = this.c !== null && token !== "";
            if (token !== "" && !conn.helloReply?.userId) {
                conn.close();
                if (this.c !== null && this._token === token) {
                    // A lost session's token: forget it, so the next connection is
                    // a fresh one, and say so.
                    this._token = "";
                    this._userId = "";
                    this.local(EVENT_RESUME_FAILED, {});
                }
                throw new NoonError("unauthenticated", "session token refused on resume");
            }
            this.c = conn;
            this.addr = a;
            if (token !== "")
                this._userId = conn.helloReply.userId;
            this.attach(conn);
            if (resumed)
                this.local(EVENT_RESUMED, { broker: a }, new TextEncoder().encode(a));
            return conn;
        }
        throw new NoonError("unavailable", `no broker reachable: ${errs.join("; ")}`);
    }
    /** attach forwards a connection's pushes and replaces it when it ends. */
    attach(conn) {
        conn.onPush((p) => {
            switch (p.type) {
                case EVENT_LOGGED_OUT:
                    // A logout (on any broker) or the token's expiry: the next
                    // connection is a fresh one, not a resume bound to fail.
                    this._token = "";
                    this._userId = "";
                    break;
                case EVENT_DRAINING:
                    // The broker is going away (a deploy): move to another broker,
                    // resuming the session, while the calls in flight here are
                    // answered; the broker closes this connection when its grace
                    // ends. Pushes keep coming from both until then (a room event
                    // may arrive twice: its seq tells).
                    if (this.c === conn) {
                        this.leaving = conn;
                        if (!this.opts.noBackgroundReconnect)
                            this.client().catch((e) => this.opts.onError?.(e));
                    }
                    break;
            }
            this.emit(p);
        });
        conn.onClose(() => {
            if (!this.opts.noBackgroundReconnect)
                void this.reconnect(conn);
        });
    }
    /**
     * reconnect replaces the lost connection conn in the background while the
     * session has a token: it tries the brokers (another than conn's first)
     * with a backoff doubling from reconnectMinMs to reconnectMaxMs, with
     * jitter, until one resumes the session, the token is refused, a call
     * reconnected first, or close.
     */
    async reconnect(conn) {
        const next = this.backoff();
        for (;;) {
            if (this.closed || this.c !== conn || this._token === "")
                return;
            try {
                await this.client();
                return;
            }
            catch (e) {
                if (this.closed || connectEnds(e))
                    return; // closed or refused
                this.opts.onError?.(e);
            }
            await sleep(next(), this.quit);
        }
    }
    /** backoff is the session's reconnection backoff (reconnectMinMs to reconnectMaxMs). */
    backoff() {
        return backoff(this.reconnectMinMs, this.reconnectMaxMs);
    }
    /**
     * clientForCall is client for a call: when no broker of the list
     * answers (a deploy restarting them, the list fetched a moment before a
     * new one registered), it tries again with the reconnection's backoff,
     * for at most reconnectMaxMs in all: nothing was sent, so it is safe. A
     * refused token or close ends it at once.
     */
    async clientForCall() {
        const next = this.backoff();
        const start = Date.now();
        for (;;) {
            try {
                return await this.client();
            }
            catch (e) {
                if (this.closed || connectEnds(e))
                    throw e;
                const d = next();
                if (Date.now() - start + d > this.reconnectMaxMs)
                    throw e;
                await sleep(d, this.quit);
                if (this.closed)
                    throw new NoonError("unavailable", "session closed");
            }
        }
    }
    /**
     * call sends method with payload and resolves with the reply payload.
     * When the connection was lost before the call, the session first
     * reconnects (to another broker when it can) and resumes, trying again
     * with the reconnection's backoff while no broker answers (at most
     * reconnectMaxMs). A call cut off
     * by a lost connection fails "unavailable": it may have run, so it is not
     * resent.
     */
    async call(method, payload, opts) {
        const c = await this.clientForCall();
        const out = await c.call(method, payload, opts);
        this.observe(method, payload, out);
        return out;
    }
    /** callStruct is call with Thrift compact structs (what the generated clients use). */
    async callStruct(method, reqDesc, req, repDesc, opts) {
        const out = await this.call(method, encode(reqDesc, req), opts);
        try {
            return decode(repDesc, out);
        }
        catch (e) {
            throw new NoonError("internal", `decoding ${method} reply: ${e.message}`);
        }
    }
    /** observe keeps the token of a successful login.Login and forgets it after a login.Logout of it. */
    observe(method, payload, out) {
        try {
            if (method === "login.Login" || method === "Login") {
                const rep = decode(LoginReply$, out);
                if (rep.sessionToken) {
                    this._token = rep.sessionToken;
                    this._userId = rep.userId;
                }
            }
            else if (method === "login.Logout") {
                const req = decode(LogoutRequest$, payload);
                if (req.sessionToken === this._token) {
                    this._token = "";
                    this._userId = "";
                }
            }
        }
        catch {
            // not ours to judge: the caller gets the reply as it is
        }
    }
    /** close closes the session's connection (the token stays valid until logout or expiry). */
    close() {
        if (!this.closed) {
            this.closed = true;
            this.quitResolve();
        }
        this.c?.close();
        if (this.leaving && this.leaving !== this.c)
            this.leaving.close();
    }
}
//# sourceMappingURL=session.js.map
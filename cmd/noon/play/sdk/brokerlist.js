// The BrokerList: GET <url> answers
//   {"version":"0.1.0","brokerList":{"host:port":0.067,"host:port":0.0418}}
// mapping each ready broker's client address to its load (lower is better).
import { NoonError } from "./errors.js";
/** The largest BrokerList body read, 1 MiB (client.MaxBrokerListBytes). */
export const MAX_BROKER_LIST_BYTES = 1 << 20;
/** fetchBrokerList GETs the BrokerList from url. */
export async function fetchBrokerList(url, opts = {}) {
    const f = opts.fetch ?? globalThis.fetch;
    let resp;
    try {
        resp = await f(url, { method: "GET", signal: opts.signal, cache: "no-store" });
    }
    catch (e) {
        throw new NoonError("unavailable", `broker list ${url}: ${e.message}`);
    }
    if (resp.status !== 200)
        throw new NoonError("unavailable", `broker list ${url}: ${resp.status} ${resp.statusText}`);
    const body = new Uint8Array(await resp.arrayBuffer());
    if (body.length > MAX_BROKER_LIST_BYTES)
        throw new NoonError("unavailable", `broker list ${url}: body over ${MAX_BROKER_LIST_BYTES} bytes`);
    return parseBrokerList(new TextDecoder().decode(body), url);
}
/** parseBrokerList reads the BrokerList JSON document. */
export function parseBrokerList(text, url = "the broker list") {
    let doc;
    try {
        doc = JSON.parse(text);
    }
    catch (e) {
        throw new NoonError("unavailable", `broker list ${url}: ${e.message}`);
    }
    const list = doc?.brokerList;
    if (typeof list !== "object" || list === null || Array.isArray(list)) {
        throw new NoonError("unavailable", `broker list ${url}: no "brokerList" in the document`);
    }
    const out = {};
    for (const [addr, load] of Object.entries(list)) {
        if (typeof load !== "number")
            throw new NoonError("unavailable", `broker list ${url}: load of ${addr} is not a number`);
        out[addr] = load;
    }
    return out;
}
/**
 * candidates lists the addresses least loaded first, ties by address, the
 * one to avoid (the broker just lost) last, as the Go client's Session does.
 */
export function candidates(list, avoid = "") {
    const addrs = Object.keys(list).filter((a) => !Number.isNaN(list[a]));
    addrs.sort((a, b) => (list[a] !== list[b] ? list[a] - list[b] : a < b ? -1 : a > b ? 1 : 0));
    return [...addrs.filter((a) => a !== avoid), ...addrs.filter((a) => a === avoid)];
}
/** pickBroker returns the least-loaded address (ties: the smallest), as client.PickBroker. */
export function pickBroker(list) {
    const c = candidates(list);
    if (c.length === 0)
        throw new NoonError("unavailable", "no brokers in the list");
    return c[0];
}
/**
 * defaultWsUrl derives a broker's WebSocket URL from its BrokerList address
 * ("host:port", the broker's TCP listener): a ws:// or wss:// address is
 * used as is; otherwise ws://host:(port+1)/ws, noon's port layout (broker
 * TCP 1055 / WebSocket 1056 in `noon dev`; 1055+2i / 1056+2i in `noon
 * cluster`). Deployments with another layout pass SessionOptions.wsUrl.
 */
export function defaultWsUrl(addr, secure = false) {
    if (/^wss?:\/\//.test(addr))
        return addr;
    const i = addr.lastIndexOf(":");
    if (i < 0)
        throw new NoonError("bad_request", `broker address ${addr} has no port`);
    const host = addr.slice(0, i);
    const port = Number(addr.slice(i + 1));
    return `${secure ? "wss" : "ws"}://${host}:${port + 1}/ws`;
}
//# sourceMappingURL=brokerlist.js.map
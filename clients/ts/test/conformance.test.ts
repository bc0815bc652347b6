// The conformance runner: idl/conformance/ holds golden vectors of the wire
// any client must pass (frames.json; thrift/<service>.json, the compact
// encodings of every method's request and reply; brokerlist.json). It skips
// when the directory is absent.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { candidates, decode, encode, frame, methods, parseBrokerList, pickBroker, type StructDesc, type TypeSpec } from "../src/index.js";
import { hex, readJSON, root, unhex } from "./helpers.js";

// NOON_CONFORMANCE_DIR points the runner at another copy of the vectors.
const dir = process.env.NOON_CONFORMANCE_DIR
  ? new URL(`file://${process.env.NOON_CONFORMANCE_DIR.replace(/\/?$/, "/")}`)
  : new URL("../../idl/conformance/", root);
const present = existsSync(dir);
const skip = present ? false : "idl/conformance/ is absent (the golden vectors are not on this branch yet)";

function str(v: any, ...keys: string[]): string | undefined {
  for (const k of keys) if (typeof v?.[k] === "string") return v[k];
  return undefined;
}

function bytesOf(v: any, hexKeys: string[], anyKeys: string[]): Uint8Array | undefined {
  const h = str(v, ...hexKeys);
  if (h !== undefined) return unhex(h);
  const a = str(v, ...anyKeys);
  if (a === undefined) return undefined;
  return /^([0-9a-f]{2})*$/i.test(a) ? unhex(a) : new Uint8Array(Buffer.from(a, "base64"));
}

test("conformance: frames.json", { skip: skip || (!existsSync(new URL("frames.json", dir)) && "no frames.json") }, () => {
  const doc = readJSON(new URL("frames.json", dir));
  const vectors: any[] = doc.vectors ?? [];
  assert.ok(vectors.length > 0, "frames.json has no vectors");
  for (const v of vectors) {
    const name = `${v.name} (${v.kind})`;
    const msg = unhex(v.hex);
    const lim: frame.Limits = {
      maxFrame: v.max_frame ?? doc.max_frame,
      maxMethod: v.max_method ?? doc.max_method,
      maxErr: v.max_err ?? doc.max_err,
    };
    const payload = bytesOf(v, ["payload_hex", "payloadHex"], ["payload"]);
    switch (v.kind) {
      case "request": {
        const r = frame.decodeRequest(msg, lim);
        if (v.method !== undefined) assert.equal(r.method, v.method, name);
        if (payload) assert.equal(hex(r.payload), hex(payload), name);
        assert.equal(hex(frame.encodeRequest(r.method, r.payload, lim)), hex(msg), `${name}: re-encoded`);
        break;
      }
      case "reply": {
        const r = frame.decodeResponse(msg, lim);
        assert.equal(r.kind, "reply", name);
        if (r.kind !== "reply") break;
        const err = str(v, "err", "error");
        if (err !== undefined) assert.equal(r.err, err, name);
        if (payload) assert.equal(hex(r.payload), hex(payload), name);
        assert.equal(hex(frame.encodeResponse(r.err, r.payload)), hex(msg), `${name}: re-encoded`);
        break;
      }
      case "push": {
        const r = frame.decodeResponse(msg, lim);
        assert.equal(r.kind, "push", name);
        if (r.kind !== "push") break;
        const typ = str(v, "type", "event", "event_type");
        if (typ !== undefined) assert.equal(r.type, typ.replace(/^@/, ""), name);
        if (payload) assert.equal(hex(r.payload), hex(payload), name);
        assert.equal(hex(frame.encodeResponse("@" + r.type, r.payload)), hex(msg), `${name}: re-encoded`);
        break;
      }
      case "bad": {
        const side = str(v, "shape", "direction", "side");
        const want = str(v, "error", "err", "want", "text", "want_error");
        const tries = side?.startsWith("req") ? [frame.decodeRequest] : side ? [frame.decodeResponse] : [frame.decodeRequest, frame.decodeResponse];
        const texts: string[] = [];
        for (const f of tries) {
          try {
            f(msg, lim);
          } catch (e: any) {
            assert.equal(e.code, "bad_frame", name);
            texts.push(e.message);
          }
        }
        assert.ok(texts.length > 0, `${name}: decoded without error`);
        if (want !== undefined) {
          const w = want.replace(/^bad_frame: /, "");
          assert.ok(texts.includes(w), `${name}: got ${JSON.stringify(texts)}, want ${JSON.stringify(w)}`);
        }
        break;
      }
      default:
        assert.fail(`${name}: unknown kind`);
    }
  }
});

const camel = (s: string) => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** fromJSON turns a vector's JSON (Go's encoding/json of the struct: snake_case or camelCase keys, binary as base64) into an SDK value. */
function fromJSON(t: TypeSpec, v: any): any {
  if (v === null || v === undefined) return undefined;
  if (typeof t === "string") {
    // binary as lowercase hex (the vectors' notes).
    if (t === "binary") return typeof v === "string" ? unhex(v) : new Uint8Array(v);
    if (t === "i64" && typeof v === "string") return BigInt(v);
    return v;
  }
  if ("list" in t) return (v as any[]).map((e) => fromJSON(t.list, e));
  if ("set" in t) return (v as any[]).map((e) => fromJSON(t.set, e));
  if ("map" in t) {
    const out: Record<string, unknown> = {};
    for (const [k, e] of Object.entries(v)) out[k] = fromJSON(t.map[1], e);
    return out;
  }
  const d = t.struct();
  const out: Record<string, unknown> = {};
  for (const f of d.fields) {
    const x = v[f.wire] ?? v[f.name] ?? v[camel(f.wire)];
    if (x !== undefined && x !== null) out[f.name] = fromJSON(f.type, x);
  }
  return out;
}

function hasBigMap(t: TypeSpec, v: any, depth = 0): boolean {
  if (v === undefined || v === null || depth > 64) return false;
  if (typeof t === "string") return false;
  if ("list" in t || "set" in t) return (v as any[]).some((e) => hasBigMap("list" in t ? t.list : t.set, e, depth + 1));
  if ("map" in t) return Object.keys(v).length > 1 || Object.values(v).some((e) => hasBigMap(t.map[1], e, depth + 1));
  return t.struct().fields.some((f) => hasBigMap(f.type, v[f.name], depth + 1));
}

function checkSide(name: string, d: StructDesc | null, json: any, hx: string | undefined) {
  if (hx === undefined) return;
  const bytes = unhex(hx);
  if (d === null) {
    // raw bytes (echo.Echo): the JSON is the payload as hex, when given.
    if (typeof json === "string") assert.equal(json.toLowerCase(), hex(bytes), name);
    return;
  }
  const got = decode(d, bytes);
  if (json === undefined) return;
  const v = fromJSON({ struct: () => d }, json);
  const mine = encode(d, v);
  assert.deepEqual(got, decode(d, mine), `${name}: decoded`);
  if (!hasBigMap({ struct: () => d }, v)) assert.equal(hex(mine), hx, `${name}: encoded`);
  else assert.deepEqual(decode(d, encode(d, got)), got, `${name}: round trip`);
}

test("conformance: thrift/<service>.json", { skip: skip || (!existsSync(new URL("thrift/", dir)) && "no thrift/") }, () => {
  const files = readdirSync(new URL("thrift/", dir)).filter((f) => f.endsWith(".json"));
  assert.ok(files.length > 0, "no thrift/*.json");
  let n = 0;
  const seen = new Set<string>();
  for (const f of files) {
    const doc = readJSON(new URL(`thrift/${f}`, dir));
    const service = f.replace(/\.json$/, "");
    let entries: [string, any][];
    if (Array.isArray(doc)) entries = doc.map((m: any) => [m.method ?? m.name, m]);
    else if (doc.methods && !Array.isArray(doc.methods)) entries = Object.entries(doc.methods);
    else if (Array.isArray(doc.methods)) entries = doc.methods.map((m: any) => [m.method ?? m.name, m]);
    else entries = Object.entries(doc).filter(([, v]) => (v as any)?.cases);
    for (const [mname, m] of entries) {
      const full = mname.includes(".") ? mname : `${service}.${mname}`;
      const desc = methods[full];
      assert.ok(desc, `${f}: ${full} is not a method of the SDK (regenerate: npm run gen)`);
      seen.add(full);
      for (const [i, c] of ((m.cases ?? []) as any[]).entries()) {
        checkSide(`${full}[${i}] request`, desc.req, c.request, c.request_hex ?? c.requestHex);
        checkSide(`${full}[${i}] reply`, desc.reply, c.reply, c.reply_hex ?? c.replyHex);
        n++;
      }
    }
  }
  assert.ok(n > 0, "no cases");
  for (const m of Object.keys(methods)) assert.ok(seen.has(m), `no vectors for ${m}`);
});

test("conformance: brokerlist.json", { skip: skip || (!existsSync(new URL("brokerlist.json", dir)) && "no brokerlist.json") }, () => {
  const doc = readJSON(new URL("brokerlist.json", dir));
  const valid: any[] = doc.valid ?? [];
  assert.ok(valid.length > 0, "no valid cases");
  for (const c of valid) {
    const list = parseBrokerList(c.body);
    if (c.order) assert.deepEqual(candidates(list), c.order, c.name);
    if (c.pick === "") assert.throws(() => pickBroker(list), (e: any) => e.code === "unavailable", c.name);
    else if (c.pick !== undefined) assert.equal(pickBroker(list), c.pick, c.name);
    if (c.avoid !== undefined && c.order_avoiding) assert.deepEqual(candidates(list, c.avoid), c.order_avoiding, `${c.name} avoiding`);
  }
  for (const c of (doc.malformed ?? []) as any[]) {
    assert.throws(() => parseBrokerList(c.body), (e: any) => e.code === "unavailable", c.name);
  }
});

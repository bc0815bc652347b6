// Thrift compact protocol, struct encoding only (no message envelope): what
// noon's wire carries as a frame's payload. The codec is driven by the
// descriptors scripts/gen.mjs writes from idl/*.thrift (src/gen), and
// behaves as the Go side (apache/thrift's TCompactProtocol and
// internal/thriftx): fields written in declaration order, every field of
// default requiredness written (its zero value when unset) and optional
// fields only when set; unknown fields and fields of an unexpected type
// skipped on reading; every length checked against the bytes left before
// anything is allocated; structs nested at most MAX_DEPTH deep.
import { NoonError } from "./errors.js";
/** How deeply structs and containers may nest (internal/thriftx.MaxDepth). */
export const MAX_DEPTH = 64;
// Compact type ids.
const CT_STOP = 0;
const CT_TRUE = 1;
const CT_FALSE = 2;
const CT_BYTE = 3;
const CT_I16 = 4;
const CT_I32 = 5;
const CT_I64 = 6;
const CT_DOUBLE = 7;
const CT_BINARY = 8;
const CT_LIST = 9;
const CT_SET = 10;
const CT_MAP = 11;
const CT_STRUCT = 12;
const CT_UUID = 13;
function ctype(t) {
    if (typeof t === "string") {
        switch (t) {
            case "bool":
                return CT_TRUE;
            case "byte":
                return CT_BYTE;
            case "i16":
                return CT_I16;
            case "i32":
                return CT_I32;
            case "i64":
                return CT_I64;
            case "double":
                return CT_DOUBLE;
            case "string":
            case "binary":
                return CT_BINARY;
        }
    }
    if ("list" in t)
        return CT_LIST;
    if ("set" in t)
        return CT_SET;
    if ("map" in t)
        return CT_MAP;
    return CT_STRUCT;
}
/** The zero value of a type, as Go's generated structs hold it. */
export function zeroOf(t) {
    if (typeof t === "string") {
        switch (t) {
            case "bool":
                return false;
            case "string":
                return "";
            case "binary":
                return new Uint8Array(0);
            default:
                return 0;
        }
    }
    if ("list" in t || "set" in t)
        return [];
    if ("map" in t)
        return {};
    return undefined;
}
const utf8enc = new TextEncoder();
const utf8dec = new TextDecoder("utf-8", { fatal: false });
function codecError(msg) {
    return new NoonError("bad_request", msg);
}
/** Writer is a growable byte buffer with the compact protocol's primitives. */
export class Writer {
    buf = new Uint8Array(256);
    view = new DataView(this.buf.buffer);
    n = 0;
    lastField = [];
    lastId = 0;
    grow(k) {
        if (this.n + k <= this.buf.length)
            return;
        let size = this.buf.length * 2;
        while (size < this.n + k)
            size *= 2;
        const b = new Uint8Array(size);
        b.set(this.buf.subarray(0, this.n));
        this.buf = b;
        this.view = new DataView(b.buffer);
    }
    bytes() {
        return this.buf.slice(0, this.n);
    }
    byte(v) {
        this.grow(1);
        this.buf[this.n++] = v & 0xff;
    }
    raw(b) {
        this.grow(b.length);
        this.buf.set(b, this.n);
        this.n += b.length;
    }
    varint32(v) {
        v = v >>> 0;
        while (v >= 0x80) {
            this.byte((v & 0x7f) | 0x80);
            v >>>= 7;
        }
        this.byte(v);
    }
    varint64(v) {
        v = BigInt.asUintN(64, v);
        while (v >= 0x80n) {
            this.byte(Number(v & 0x7fn) | 0x80);
            v >>= 7n;
        }
        this.byte(Number(v));
    }
    i32(v) {
        v = v | 0;
        this.varint32((v << 1) ^ (v >> 31));
    }
    i64(v) {
        let b = typeof v === "bigint" ? v : BigInt(Math.trunc(v));
        b = BigInt.asIntN(64, b);
        this.varint64((b << 1n) ^ (b >> 63n));
    }
    double(v) {
        this.grow(8);
        this.view.setFloat64(this.n, v, true);
        this.n += 8;
    }
    binary(b) {
        this.varint32(b.length);
        this.raw(b);
    }
    string(s) {
        this.binary(utf8enc.encode(s));
    }
    fieldHeader(type, id) {
        const delta = id - this.lastId;
        if (delta > 0 && delta <= 15) {
            this.byte((delta << 4) | type);
        }
        else {
            this.byte(type);
            this.i32(id); // an i16, zigzag varint like an i32
        }
        this.lastId = id;
    }
    structBegin() {
        this.lastField.push(this.lastId);
        this.lastId = 0;
    }
    structEnd() {
        this.byte(CT_STOP);
        this.lastId = this.lastField.pop() ?? 0;
    }
    collectionHeader(elem, size) {
        if (size < 15) {
            this.byte((size << 4) | elem);
        }
        else {
            this.byte(0xf0 | elem);
            this.varint32(size);
        }
    }
}
function checkInt(v, bits, where) {
    if (typeof v === "bigint")
        v = Number(v);
    if (typeof v !== "number" || !Number.isInteger(v))
        throw codecError(`${where}: want an integer, got ${typeof v === "number" ? v : typeof v}`);
    const lim = 2 ** (bits - 1);
    if (v < -lim || v >= lim)
        throw codecError(`${where}: ${v} does not fit in i${bits}`);
    return v;
}
function writeValue(w, t, v, where) {
    if (typeof t === "string") {
        switch (t) {
            case "bool":
                w.byte(v ? CT_TRUE : CT_FALSE);
                return;
            case "byte":
                w.byte(checkInt(v, 8, where));
                return;
            case "i16":
                w.i32(checkInt(v, 16, where));
                return;
            case "i32":
                w.i32(checkInt(v, 32, where));
                return;
            case "i64":
                if (typeof v === "bigint")
                    w.i64(v);
                else
                    w.i64(checkInt(v, 64, where));
                return;
            case "double":
                if (typeof v !== "number")
                    throw codecError(`${where}: want a number`);
                w.double(v);
                return;
            case "string":
                if (typeof v !== "string")
                    throw codecError(`${where}: want a string`);
                w.string(v);
                return;
            case "binary":
                if (typeof v === "string")
                    w.string(v);
                else if (v instanceof Uint8Array)
                    w.binary(v);
                else
                    throw codecError(`${where}: want a Uint8Array`);
                return;
        }
    }
    if ("list" in t || "set" in t) {
        const et = "list" in t ? t.list : t.set;
        const arr = v;
        if (!Array.isArray(arr))
            throw codecError(`${where}: want an array`);
        w.collectionHeader(ctype(et), arr.length);
        arr.forEach((e, i) => writeValue(w, et, e, `${where}[${i}]`));
        return;
    }
    if ("map" in t) {
        const [kt, vt] = t.map;
        const entries = v instanceof Map ? [...v.entries()] : Object.entries((v ?? {}));
        if (entries.length === 0) {
            w.byte(0);
            return;
        }
        w.varint32(entries.length);
        w.byte((ctype(kt) << 4) | ctype(vt));
        for (const [k, e] of entries) {
            writeValue(w, kt, k, `${where} key`);
            writeValue(w, vt, e, `${where}[${String(k)}]`);
        }
        return;
    }
    writeStruct(w, t.struct(), (v ?? {}));
}
function writeStruct(w, d, v) {
    if (typeof v !== "object" || v === null)
        throw codecError(`${d.name}: want an object`);
    w.structBegin();
    for (const f of d.fields) {
        let x = v[f.name];
        if (x === undefined || x === null) {
            if (f.optional)
                continue;
            if (f.def !== undefined)
                x = f.def;
            else {
                x = zeroOf(f.type);
                if (x === undefined)
                    continue; // an unset struct: nothing to write
            }
        }
        const ct = ctype(f.type);
        if (ct === CT_TRUE) {
            w.fieldHeader(x ? CT_TRUE : CT_FALSE, f.id);
            continue;
        }
        w.fieldHeader(ct, f.id);
        writeValue(w, f.type, x, `${d.name}.${f.wire}`);
    }
    w.structEnd();
}
/** encode returns the compact encoding of v as the struct d. */
export function encode(d, v) {
    const w = new Writer();
    writeStruct(w, d, v);
    return w.bytes();
}
/** Reader decodes compact-protocol values from a byte slice. */
export class Reader {
    b;
    pos = 0;
    view;
    constructor(b) {
        this.b = b;
        this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    }
    left() {
        return this.b.length - this.pos;
    }
    done() {
        return this.pos === this.b.length;
    }
    byte() {
        if (this.pos >= this.b.length)
            throw codecError("thrift: unexpected end of data");
        return this.b[this.pos++];
    }
    varint32() {
        let v = 0;
        for (let shift = 0; shift < 35; shift += 7) {
            const c = this.byte();
            v |= (c & 0x7f) << shift;
            if (c < 0x80)
                return v >>> 0;
        }
        throw codecError("thrift: varint32 too long");
    }
    varint64() {
        let v = 0n;
        for (let shift = 0n; shift < 70n; shift += 7n) {
            const c = this.byte();
            v |= BigInt(c & 0x7f) << shift;
            if (c < 0x80)
                return BigInt.asUintN(64, v);
        }
        throw codecError("thrift: varint64 too long");
    }
    i32() {
        const u = this.varint32();
        return (u >>> 1) ^ -(u & 1);
    }
    i64() {
        const u = this.varint64();
        return BigInt.asIntN(64, (u >> 1n) ^ -(u & 1n));
    }
    double() {
        if (this.left() < 8)
            throw codecError("thrift: unexpected end of data");
        const v = this.view.getFloat64(this.pos, true);
        this.pos += 8;
        return v;
    }
    /** size reads a length and checks it against the bytes left (each unit at least min bytes). */
    size(what, min) {
        const n = this.varint32();
        if (n < 0 || n > 0x7fffffff)
            throw codecError(`thrift: negative ${what} length`);
        if (n * min > this.left())
            throw codecError(`thrift: ${what} length ${n} exceeds the ${this.left()} bytes left`);
        return n;
    }
    binary() {
        const n = this.size("binary", 1);
        const out = this.b.slice(this.pos, this.pos + n);
        this.pos += n;
        return out;
    }
    string() {
        const n = this.size("string", 1);
        const out = utf8dec.decode(this.b.subarray(this.pos, this.pos + n));
        this.pos += n;
        return out;
    }
    skip(ct, depth) {
        if (depth > MAX_DEPTH)
            throw codecError(`thrift: nested deeper than ${MAX_DEPTH}`);
        switch (ct) {
            case CT_TRUE:
            case CT_FALSE:
                return; // in a struct field: the value is the type; in a list, a byte (see skipElem)
            case CT_BYTE:
                this.byte();
                return;
            case CT_I16:
            case CT_I32:
                this.varint32();
                return;
            case CT_I64:
                this.varint64();
                return;
            case CT_DOUBLE:
                this.double();
                return;
            case CT_BINARY: {
                const n = this.size("binary", 1);
                this.pos += n;
                return;
            }
            case CT_UUID:
                if (this.left() < 16)
                    throw codecError("thrift: unexpected end of data");
                this.pos += 16;
                return;
            case CT_LIST:
            case CT_SET: {
                const [et, n] = this.collectionHeader();
                for (let i = 0; i < n; i++)
                    this.skipElem(et, depth + 1);
                return;
            }
            case CT_MAP: {
                const [kt, vt, n] = this.mapHeader();
                for (let i = 0; i < n; i++) {
                    this.skipElem(kt, depth + 1);
                    this.skipElem(vt, depth + 1);
                }
                return;
            }
            case CT_STRUCT: {
                for (;;) {
                    const h = this.byte();
                    if (h === CT_STOP)
                        return;
                    const t = h & 0x0f;
                    if (h >> 4 === 0)
                        this.i32();
                    this.skip(t, depth + 1);
                }
            }
            default:
                throw codecError(`thrift: unknown type ${ct}`);
        }
    }
    skipElem(ct, depth) {
        if (ct === CT_TRUE || ct === CT_FALSE)
            this.byte();
        else
            this.skip(ct, depth);
    }
    collectionHeader() {
        const h = this.byte();
        const et = h & 0x0f;
        let n = h >> 4;
        if (n === 15)
            n = this.size("list", 1);
        else if (n > this.left())
            throw codecError(`thrift: list length ${n} exceeds the ${this.left()} bytes left`);
        return [et, n];
    }
    mapHeader() {
        const n = this.size("map", 2);
        if (n === 0)
            return [0, 0, 0];
        const kv = this.byte();
        return [kv >> 4, kv & 0x0f, n];
    }
}
function sameType(want, got) {
    if (want === CT_TRUE)
        return got === CT_TRUE || got === CT_FALSE;
    return want === got;
}
function i64ToNumber(v) {
    return Number(v);
}
function readValue(r, t, depth, ct) {
    if (typeof t === "string") {
        switch (t) {
            case "bool":
                // In a struct field the value is the type; in a container, a byte.
                return ct === -1 ? r.byte() === CT_TRUE : ct === CT_TRUE;
            case "byte": {
                const b = r.byte();
                return b > 127 ? b - 256 : b;
            }
            case "i16":
            case "i32":
                return r.i32();
            case "i64":
                return i64ToNumber(r.i64());
            case "double":
                return r.double();
            case "string":
                return r.string();
            case "binary":
                return r.binary();
        }
    }
    if (depth > MAX_DEPTH)
        throw codecError(`thrift: nested deeper than ${MAX_DEPTH}`);
    if ("list" in t || "set" in t) {
        const et = "list" in t ? t.list : t.set;
        const [got, n] = r.collectionHeader();
        const want = ctype(et);
        const out = [];
        if (n > 0 && !sameType(want, got)) {
            for (let i = 0; i < n; i++)
                r.skip(got === CT_TRUE || got === CT_FALSE ? CT_BYTE : got, depth + 1);
            return out;
        }
        for (let i = 0; i < n; i++)
            out.push(readValue(r, et, depth + 1, -1));
        return out;
    }
    if ("map" in t) {
        const [kt, vt] = t.map;
        const [gk, gv, n] = r.mapHeader();
        const useObject = kt === "string";
        const obj = {};
        const map = new Map();
        for (let i = 0; i < n; i++) {
            if (!sameType(ctype(kt), gk) || !sameType(ctype(vt), gv)) {
                r.skip(gk === CT_TRUE || gk === CT_FALSE ? CT_BYTE : gk, depth + 1);
                r.skip(gv === CT_TRUE || gv === CT_FALSE ? CT_BYTE : gv, depth + 1);
                continue;
            }
            const k = readValue(r, kt, depth + 1, -1);
            const v = readValue(r, vt, depth + 1, -1);
            if (useObject)
                obj[k] = v;
            else
                map.set(k, v);
        }
        return useObject ? obj : map;
    }
    return readStruct(r, t.struct(), depth + 1);
}
function readStruct(r, d, depth) {
    if (depth > MAX_DEPTH)
        throw codecError(`thrift: structs nested deeper than ${MAX_DEPTH}`);
    const out = {};
    let lastId = 0;
    for (;;) {
        const h = r.byte();
        if (h === CT_STOP)
            break;
        const t = h & 0x0f;
        const delta = h >> 4;
        const id = delta === 0 ? r.i32() : lastId + delta;
        lastId = id;
        const f = d.fields.find((x) => x.id === id);
        if (!f || !sameType(ctype(f.type), t)) {
            r.skip(t, depth);
            continue;
        }
        out[f.name] = readValue(r, f.type, depth, t);
    }
    for (const f of d.fields) {
        if (out[f.name] !== undefined || f.optional)
            continue;
        const z = f.def !== undefined ? f.def : zeroOf(f.type);
        if (z !== undefined)
            out[f.name] = z;
    }
    return out;
}
/** decode reads b as the struct d (trailing bytes are an error). */
export function decode(d, b) {
    const r = new Reader(b);
    const v = readStruct(r, d, 1);
    if (!r.done())
        throw codecError(`thrift: ${r.left()} trailing bytes after ${d.name}`);
    return v;
}
//# sourceMappingURL=compact.js.map
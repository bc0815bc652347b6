// pandaparty frames (README, The client wire), as edge/frame encodes and
// checks them. All integers are big-endian int32; a length never counts its
// own 4 bytes:
//
//   request  (client -> edge): TotalLen | MethodLen | Method | PayloadLen | Payload
//   response (edge -> client): TotalLen | ErrLen    | Err    | PayloadLen | Payload
//
// A push is a response whose first string starts with "@". Over WebSocket
// each binary message is one whole frame, TotalLen included.
import { NoonError } from "./errors.js";
/** The smallest legal TotalLen: two empty length-prefixed fields. */
export const MIN_FRAME = 8;
/** The default maximum TotalLen, 1 MiB. */
export const DEFAULT_MAX_FRAME = 1 << 20;
/** The default maximum method length, 128 bytes. */
export const DEFAULT_MAX_METHOD = 128;
/** The default maximum error string / push type length, 1 KiB. */
export const DEFAULT_MAX_ERR = 1 << 10;
/** The largest MaxFrame: TotalLen is an int32. */
export const MAX_FRAME_LIMIT = 0x7fffffff;
/** withDefaults fills unset limits as edge/frame does, validating them. */
export function withDefaults(l = {}) {
    const maxFrame = l.maxFrame || DEFAULT_MAX_FRAME;
    const maxMethod = l.maxMethod || Math.min(DEFAULT_MAX_METHOD, maxFrame - MIN_FRAME);
    const maxErr = l.maxErr || Math.min(DEFAULT_MAX_ERR, maxFrame - MIN_FRAME);
    if (maxFrame < MIN_FRAME || maxFrame > MAX_FRAME_LIMIT) {
        throw new Error(`frame: Limits.maxFrame is ${maxFrame}, want ${MIN_FRAME}..${MAX_FRAME_LIMIT}`);
    }
    if (maxMethod < 0 || maxMethod > maxFrame - MIN_FRAME) {
        throw new Error(`frame: Limits.maxMethod is ${maxMethod}, want 1..${maxFrame - MIN_FRAME} (maxFrame-${MIN_FRAME})`);
    }
    if (maxErr < 0 || maxErr > maxFrame - MIN_FRAME) {
        throw new Error(`frame: Limits.maxErr is ${maxErr}, want 1..${maxFrame - MIN_FRAME} (maxFrame-${MIN_FRAME})`);
    }
    return { maxFrame, maxMethod, maxErr };
}
/**
 * BadFrameError is a malformed frame: code "bad_frame", and the same text as
 * edge/frame's Error (the edge answers "bad_frame: " + that text).
 */
export class BadFrameError extends NoonError {
    kind;
    field;
    len;
    bound;
    constructor(kind, field, len, bound) {
        super("bad_frame", badFrameText(kind, field, len, bound));
        this.kind = kind;
        this.field = field;
        this.len = len;
        this.bound = bound;
        this.name = "BadFrameError";
    }
}
function badFrameText(kind, field, n, bound) {
    switch (kind) {
        case "too_large":
        case "name_too_long":
            return `${field} length ${n} exceeds maximum ${bound}`;
        case "negative_length":
            return `negative ${field} length ${n}`;
        case "too_short":
            if (field === "message")
                return `message of ${n} bytes is shorter than the ${bound}-byte frame length`;
            return `${field} length ${n} is below minimum ${bound}`;
        case "inconsistent":
            if (field === "frame")
                return `frame length ${n} does not match the ${bound} bytes after it in the message`;
            if (n < bound)
                return `${field} length ${n} leaves ${bound - n} trailing bytes in the frame`;
            return `${field} length ${n} exceeds the ${bound} bytes left in the frame`;
    }
}
const utf8enc = new TextEncoder();
const utf8dec = new TextDecoder();
function readLen(b, off) {
    // Big-endian int32 (signed).
    return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) | 0;
}
function putLen(b, off, n) {
    b[off] = (n >>> 24) & 0xff;
    b[off + 1] = (n >>> 16) & 0xff;
    b[off + 2] = (n >>> 8) & 0xff;
    b[off + 3] = n & 0xff;
}
function encodeFrame(first, payload) {
    const total = MIN_FRAME + first.length + payload.length;
    const out = new Uint8Array(4 + total);
    putLen(out, 0, total);
    putLen(out, 4, first.length);
    out.set(first, 8);
    putLen(out, 8 + first.length, payload.length);
    out.set(payload, 12 + first.length);
    return out;
}
/**
 * encodeRequest returns the request frame of method and payload. It throws
 * a NoonError("bad_request") when the method is over maxMethod bytes or the
 * frame over maxFrame, as the Go client refuses to send such a request.
 */
export function encodeRequest(method, payload, lim) {
    const l = withDefaults(lim);
    const m = utf8enc.encode(method);
    if (m.length > l.maxMethod) {
        throw new NoonError("bad_request", `method name of ${m.length} bytes is over the limit of ${l.maxMethod}`);
    }
    const n = MIN_FRAME + m.length + payload.length;
    if (n > l.maxFrame) {
        throw new NoonError("bad_request", `${method} request of ${n} bytes is over the maximum frame of ${l.maxFrame} bytes`);
    }
    return encodeFrame(m, payload);
}
/** encodeResponse returns a response frame (err "" for success, or "@type" for a push). */
export function encodeResponse(first, payload) {
    return encodeFrame(utf8enc.encode(first), payload);
}
function checkTotal(n, l) {
    if (n < 0)
        throw new BadFrameError("negative_length", "frame", n, 0);
    if (n > l.maxFrame)
        throw new BadFrameError("too_large", "frame", n, l.maxFrame);
    if (n < MIN_FRAME)
        throw new BadFrameError("too_short", "frame", n, MIN_FRAME);
}
function unwrapMessage(msg, l) {
    if (msg.length < 4)
        throw new BadFrameError("too_short", "message", msg.length, 4);
    const total = readLen(msg, 0);
    checkTotal(total, l);
    const rest = msg.length - 4;
    if (total !== rest)
        throw new BadFrameError("inconsistent", "frame", total, rest);
    return msg.subarray(4);
}
function parseBody(body, maxName, field) {
    const n = readLen(body, 0);
    const room = body.length - MIN_FRAME;
    if (n < 0)
        throw new BadFrameError("negative_length", field, n, 0);
    if (n > maxName)
        throw new BadFrameError("name_too_long", field, n, maxName);
    if (n > room)
        throw new BadFrameError("inconsistent", field, n, room);
    const end = 4 + n;
    const first = body.subarray(4, end);
    const p = readLen(body, end);
    const start = end + 4;
    const left = body.length - start;
    if (p < 0)
        throw new BadFrameError("negative_length", "payload", p, 0);
    if (p !== left)
        throw new BadFrameError("inconsistent", "payload", p, left);
    return [first, body.subarray(start)];
}
/** decodeRequest decodes a whole request frame (TotalLen included), checking every length before using it. */
export function decodeRequest(msg, lim) {
    const l = withDefaults(lim);
    const body = unwrapMessage(msg, l);
    const [m, payload] = parseBody(body, l.maxMethod, "method");
    return { method: utf8dec.decode(m), payload };
}
/** decodeResponse decodes a whole response or push frame (TotalLen included). */
export function decodeResponse(msg, lim) {
    const l = withDefaults(lim);
    const body = unwrapMessage(msg, l);
    const [first, payload] = parseBody(body, l.maxErr, "error");
    if (first.length > 0 && first[0] === 0x40 /* @ */) {
        return { kind: "push", type: utf8dec.decode(first.subarray(1)), payload };
    }
    return { kind: "reply", err: utf8dec.decode(first), payload };
}
/**
 * FrameReader splits a byte stream (TCP) into frames, checking TotalLen
 * against the limits before buffering a frame's body.
 */
export class FrameReader {
    buf = new Uint8Array(0);
    l;
    constructor(lim) {
        this.l = withDefaults(lim);
    }
    /** push appends data and returns the whole frames now available (TotalLen included). */
    push(data) {
        const b = new Uint8Array(this.buf.length + data.length);
        b.set(this.buf);
        b.set(data, this.buf.length);
        const out = [];
        let off = 0;
        while (b.length - off >= 4) {
            const total = readLen(b, off);
            checkTotal(total, this.l);
            if (b.length - off - 4 < total)
                break;
            out.push(b.slice(off, off + 4 + total));
            off += 4 + total;
        }
        this.buf = b.slice(off);
        return out;
    }
}
//# sourceMappingURL=frame.js.map
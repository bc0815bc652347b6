import { test } from "node:test";
import assert from "node:assert/strict";
import { frame, NoonError } from "../src/index.js";
import { hex, unhex } from "./helpers.js";

const { encodeRequest, decodeRequest, decodeResponse, encodeResponse, BadFrameError, FrameReader } = frame;

test("README example: Ping with payload 0a 02 68 69", () => {
  const f = encodeRequest("Ping", unhex("0a026869"));
  assert.equal(hex(f), "00000010000000045069 6e67000000040a026869".replace(/ /g, ""));
  const r = decodeRequest(f);
  assert.equal(r.method, "Ping");
  assert.equal(hex(r.payload), "0a026869");
});

test("response, error and push frames", () => {
  const ok = decodeResponse(encodeResponse("", unhex("0102")));
  assert.deepEqual(ok, { kind: "reply", err: "", payload: unhex("0102") });
  const err = decodeResponse(encodeResponse("not_found: no room r1", new Uint8Array(0)));
  assert.equal(err.kind, "reply");
  if (err.kind === "reply") {
    const e = NoonError.parse(err.err);
    assert.equal(e.code, "not_found");
    assert.equal(e.message, "no room r1");
  }
  const push = decodeResponse(encodeResponse("@room.Event", unhex("00")));
  assert.deepEqual(push, { kind: "push", type: "room.Event", payload: unhex("00") });
});

test("NoonError.parse as wire.Parse", () => {
  assert.deepEqual([NoonError.parse("timeout").code, NoonError.parse("timeout").message], ["timeout", ""]);
  const odd = NoonError.parse("Something: went wrong");
  assert.equal(odd.code, "");
  assert.equal(odd.message, "Something: went wrong");
  assert.equal(NoonError.parse("rate_limited: slow down; retry in 2s").toString(), "rate_limited: slow down; retry in 2s");
});

function be(n: number): string {
  return hex(new Uint8Array([(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]));
}

function bad(msgHex: string, text: string, lim?: frame.Limits, req = false) {
  const msg = unhex(msgHex);
  assert.throws(
    () => (req ? decodeRequest(msg, lim) : decodeResponse(msg, lim)),
    (e: unknown) => {
      assert.ok(e instanceof BadFrameError, String(e));
      assert.equal(e.code, "bad_frame");
      assert.equal(e.message, text);
      return true;
    },
  );
}

test("bad frames: the same checks and texts as edge/frame", () => {
  bad("000000", "message of 3 bytes is shorter than the 4-byte frame length");
  bad("ffffffff", "negative frame length -1");
  bad(be(2 ** 31 - 1), "frame length 2147483647 exceeds maximum 1048576");
  bad(be(7) + "00000000000000", "frame length 7 is below minimum 8");
  bad(be(9) + "0000000000000000", "frame length 9 does not match the 8 bytes after it in the message");
  bad(be(8) + "ffffffff00000000", "negative error length -1");
  bad(be(8) + "0000000100000000", "error length 1 exceeds the 0 bytes left in the frame");
  bad(be(8) + be(1025) + "00000000", "error length 1025 exceeds maximum 1024");
  bad(be(8) + be(129) + "00000000", "method length 129 exceeds maximum 128", undefined, true);
  bad(be(8) + "00000000ffffffff", "negative payload length -1");
  bad(be(9) + "000000000000000000", "payload length 0 leaves 1 trailing bytes in the frame");
  bad(be(8) + "0000000000000001", "payload length 1 exceeds the 0 bytes left in the frame");
  bad(be(20) + "00".repeat(20), "frame length 20 exceeds maximum 16", { maxFrame: 16 });
});

test("requests over the limits are refused before sending", () => {
  assert.throws(() => encodeRequest("x".repeat(129), new Uint8Array(0)), /method name of 129 bytes is over the limit of 128/);
  assert.throws(() => encodeRequest("echo.Echo", new Uint8Array(1 << 20)), /over the maximum frame of 1048576 bytes/);
  assert.equal(encodeRequest("x".repeat(128), new Uint8Array(0)).length, 4 + 8 + 128);
});

test("FrameReader splits a stream and checks TotalLen before buffering", () => {
  const a = encodeRequest("a.B", unhex("01"));
  const b = encodeRequest("c.D", unhex("0203"));
  const all = new Uint8Array([...a, ...b]);
  const r = new FrameReader();
  assert.equal(r.push(all.subarray(0, 5)).length, 0);
  const got = r.push(all.subarray(5));
  assert.deepEqual(got.map((f) => decodeRequest(f).method), ["a.B", "c.D"]);
  assert.throws(() => new FrameReader().push(unhex(be(2 ** 30))), /frame length 1073741824 exceeds maximum 1048576/);
});

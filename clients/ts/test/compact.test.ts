import { test } from "node:test";
import assert from "node:assert/strict";
import { decode, encode, structs, room, match, login, edge, game, type StructDesc } from "../src/index.js";
import { hex, readJSON, unhex } from "./helpers.js";

// test/golden-go.json: the Go side's encodings (thriftx.Marshal of the
// generated Go structs) of the values below.
const golden: Record<string, string> = readJSON("test/golden-go.json");

const cases: [string, StructDesc, unknown][] = [
  ["room.CreateRequest", room.CreateRequest$, { name: "r1", game: "race31", maxPlayers: 3 }],
  ["room.CreateRequest.zero", room.CreateRequest$, {}],
  ["room.ReadyRequest.default", room.ReadyRequest$, {}],
  ["room.ReadyRequest.false", room.ReadyRequest$, { ready: false, roomId: "r42" }],
  [
    "room.RoomState",
    room.RoomState$,
    {
      id: "r1", name: "n", game: "race31", status: "open",
      players: [{ id: "u1", ready: true }, { id: "u2" }],
      maxPlayers: 4, seq: 300, gameState: new Uint8Array([1, 2, 3]), host: "u1", createdUnixMs: 1764779000123,
      events: [{ roomId: "r1", seq: -5, type: "room.joined", player: "u2", body: new Uint8Array(0), timeUnixMs: 1 }],
      resync: true,
    },
  ],
  ["match.StartRequest", match.StartRequest$, { queue: "race31", strings: { mode: "x" }, numbers: { skill: 1500.25 } }],
  [
    "match.StartReply",
    match.StartReply$,
    {
      ticket: {
        id: "race31.1", queue: "race31", state: "matched", startedUnixMs: 7,
        match: { session: "s", placement: "room", roomId: "r", players: "abcdefghijklmnop".split("") },
      },
    },
  ],
  ["login.LoginReply", login.LoginReply$, { userId: "u", nickname: "nick", sessionToken: "tok", expiresUnix: 2 ** 31 - 1 + 5 }],
  ["login.LogoutRequest", login.LogoutRequest$, { sessionToken: "tok" }],
  ["login.ValidateReply", login.ValidateReply$, { valid: true, userId: "u", expiresUnix: -1 }],
  ["edge.HelloRequest", edge.HelloRequest$, { protocolVersion: 1, push: true, resumeToken: "t" }],
  ["game.Profile", game.Profile$, { userId: "u", stats: { wins: -3 }, updatedUnixMs: 2 ** 40 }],
];

test("compact encodings match the Go side byte for byte", () => {
  for (const [name, d, v] of cases) {
    assert.equal(hex(encode(d, v)), golden[name], name);
  }
});

test("decoding the Go side's bytes gives the values, zero-filled", () => {
  for (const [name, d, v] of cases) {
    const got = decode<Record<string, unknown>>(d, unhex(golden[name]!));
    assert.equal(hex(encode(d, got)), golden[name], `${name} round trip`);
    for (const [k, want] of Object.entries(v as Record<string, unknown>)) {
      if (k === "players" || k === "events" || k === "ticket") continue;
      assert.deepEqual(got[k], want, `${name}.${k}`);
    }
  }
  const rs = decode<room.RoomState>(room.RoomState$, unhex(golden["room.RoomState"]!));
  assert.deepEqual(rs.players, [{ id: "u1", ready: true }, { id: "u2", ready: false }]);
  assert.equal(rs.winner, "");
  assert.equal(rs.publicView, false);
  assert.equal(rs.events[0]!.seq, -5);
  const zero = decode<room.CreateRequest>(room.CreateRequest$, new Uint8Array([0]));
  assert.deepEqual(zero, { name: "", game: "", maxPlayers: 0 });
  const ready = decode<room.ReadyRequest>(room.ReadyRequest$, new Uint8Array([0]));
  assert.deepEqual(ready, { ready: true }, "IDL default");
  const reply = decode<match.StartReply>(match.StartReply$, unhex(golden["match.StartReply"]!));
  assert.equal(reply.ticket?.match?.players.length, 16);
});

test("unknown fields and fields of another type are skipped", () => {
  // A struct with fields 1: string, 40: list<map<string,i64>>, 2: i32 as an
  // old client would not know 40: decode as room.JoinRequest (1: string).
  const wide: StructDesc = {
    name: "x.Wide",
    fields: [
      { id: 1, name: "roomId", wire: "room_id", type: "string", optional: false },
      { id: 40, name: "extra", wire: "extra", type: { list: { map: ["string", "i64"] } }, optional: false },
      { id: 41, name: "flag", wire: "flag", type: "bool", optional: false },
      { id: 42, name: "d", wire: "d", type: "double", optional: false },
      { id: 43, name: "st", wire: "st", type: { struct: () => room.Player$ }, optional: false },
    ],
  };
  const b = encode(wide, { roomId: "r9", extra: [{ a: 1 }, {}], flag: true, d: 1.5, st: { id: "p", ready: true } });
  assert.ok(hex(b).includes("0950"), "field 40 uses the long header: type 9, then zigzag 40");
  assert.deepEqual(decode(room.JoinRequest$, b), { roomId: "r9" });
  // Field 1 sent as an i32: skipped, so the string takes its zero value.
  const typed: StructDesc = { name: "x", fields: [{ id: 1, name: "n", wire: "n", type: "i32", optional: false }] };
  assert.deepEqual(decode(room.JoinRequest$, encode(typed, { n: 7 })), { roomId: "" });
});

test("lengths are checked before allocating; depth and trailing bytes bounded", () => {
  // string field claiming 2^31-ish bytes.
  assert.throws(() => decode(room.JoinRequest$, unhex("18ffffffff07")), /string length \d+ exceeds the 0 bytes left/);
  // list claiming 1000 elements with 2 bytes left.
  assert.throws(() => decode(room.ListReply$, unhex("19fce8070000")), /list length 1000 exceeds the/);
  // map claiming 100 entries.
  assert.throws(() => decode(game.GetWalletReply$, unhex("1b640000")), /map length 100 exceeds/);
  assert.throws(() => decode(room.JoinRequest$, unhex("0000")), /1 trailing bytes/);
  assert.throws(() => decode(room.JoinRequest$, unhex("18")), /unexpected end of data/);
  // 70 nested structs in an unknown field: refused past MAX_DEPTH.
  const nested = unhex("1c".repeat(70) + "00".repeat(71));
  assert.throws(() => decode(room.JoinRequest$, nested), /nested deeper than 64/);
});

test("bad input values are refused with bad_request", () => {
  assert.throws(() => encode(room.CreateRequest$, { maxPlayers: 2 ** 31 }), (e: any) => e.code === "bad_request" && /does not fit in i32/.test(e.message));
  assert.throws(() => encode(room.CreateRequest$, { name: 5 as unknown as string }), (e: any) => e.code === "bad_request");
  assert.equal(hex(encode(login.LoginReply$, { expiresUnix: 5n })), "1800180018001" + "60a00", "i64 from a bigint");
});

test("every struct of idl/*.thrift has a descriptor that round-trips its zero value", () => {
  const names = Object.keys(structs);
  assert.ok(names.length >= 140, `${names.length} structs`);
  for (const n of names) {
    const d = structs[n]!;
    const z = decode(d, new Uint8Array([0]));
    assert.deepEqual(decode(d, encode(d, z)), z, n);
  }
});

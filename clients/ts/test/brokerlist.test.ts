import { test } from "node:test";
import assert from "node:assert/strict";
import { candidates, defaultWsUrl, parseBrokerList, pickBroker, methods } from "../src/index.js";

test("candidates: least loaded first, ties by address, the broker to avoid last", () => {
  const list = parseBrokerList('{"version":"0.1.0","brokerList":{"b:1":0.5,"a:1":0.5,"c:1":0.1,"d:1":0.9}}');
  assert.deepEqual(candidates(list), ["c:1", "a:1", "b:1", "d:1"]);
  assert.deepEqual(candidates(list, "c:1"), ["a:1", "b:1", "d:1", "c:1"]);
  assert.equal(pickBroker(list), "c:1");
  assert.throws(() => pickBroker({}), (e: any) => e.code === "unavailable");
  assert.throws(() => parseBrokerList('{"version":"0.1.0"}'), /no "brokerList"/);
});

test("defaultWsUrl follows noon's port layout", () => {
  assert.equal(defaultWsUrl("127.0.0.1:1055"), "ws://127.0.0.1:1056/ws");
  assert.equal(defaultWsUrl("[::1]:1057"), "ws://[::1]:1058/ws");
  assert.equal(defaultWsUrl("ws://h:9/ws"), "ws://h:9/ws");
  assert.equal(defaultWsUrl("h:1055", true), "wss://h:1056/ws");
});

test("the method table has every method of idl/*.thrift", () => {
  // The whole table is checked against Go's by the conformance runner
  // (thrift/<service>.json has every method of idl/methods); a few here.
  const names = Object.keys(methods).sort();
  for (const m of ["echo.Echo", "edge.Hello", "login.Login", "room.Create", "room.Rooms", "match.Start", "friends.Invite", "game.Top", "pay.Validate"]) {
    assert.ok(names.includes(m), m);
  }
  assert.equal(methods["echo.Echo"]!.req, null);
  assert.equal(methods["room.Create"]!.reply!.name, "room.RoomState");
});

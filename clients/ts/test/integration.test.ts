// Integration against a real `noon dev`: NOON_BIN names the binary (build
// it with `go build -o /tmp/tsdk-noon ./cmd/noon`). Without it the test
// skips, unless NOON_REQUIRE_SERVICES=1, which makes it fail.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";
import { Session, NoonError, fetchBrokerList, room, type SessionOptions, type WebSocketCtor } from "../src/index.js";
import { root } from "./helpers.js";

const bin = process.env.NOON_BIN ?? "";
const required = process.env.NOON_REQUIRE_SERVICES === "1";
const skip = bin === "" && !required ? "NOON_BIN is not set: build noon (go build -o /tmp/tsdk-noon ./cmd/noon) and set NOON_BIN=/tmp/tsdk-noon to run the integration test" : false;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

let dev: ChildProcess | null = null;
let out = "";
let opts: SessionOptions;

before(async () => {
  if (skip) return;
  if (bin === "") throw new Error("NOON_REQUIRE_SERVICES=1 but NOON_BIN is not set");
  const config = fileURLToPath(new URL("../../configs/dev.yaml", root));
  const yellow = await freePort();
  const args = [
    "dev", "-config", config, "-admin", "127.0.0.1:0",
    "-set", `yellow.router_addr=tcp://127.0.0.1:${yellow}`, "-set", "yellow.pub_addr=tcp://127.0.0.1:0",
    "-set", "broker.edge.tcp_addr=127.0.0.1:0", "-set", "broker.edge.ws_addr=127.0.0.1:0",
    "-set", "brokerlist.addr=127.0.0.1:0", "-set", "services.login.http_addr=127.0.0.1:0",
    "-set", "services.pay.http_addr=127.0.0.1:0",
    "-set", "services.login.argon2.memory_kib=1024", "-set", "services.login.argon2.time=1",
  ];
  dev = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  dev.stdout!.on("data", (d) => (out += d));
  dev.stderr!.on("data", (d) => (err += d));
  const t0 = Date.now();
  while (!out.includes("Ctrl-C stops everything")) {
    if (dev.exitCode !== null) throw new Error(`noon dev exited ${dev.exitCode}:\n${out}\n${err.slice(-4000)}`);
    if (Date.now() - t0 > 60_000) throw new Error(`noon dev not up within 60 s:\n${out}\n${err.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const field = (label: string) => new RegExp(`^\\s+${label}\\s+(\\S+)`, "m").exec(out)?.[1] ?? "";
  const brokerList = field("BrokerList");
  const tcp = field("broker TCP");
  const ws = field("broker WS");
  assert.ok(brokerList && tcp && ws, `banner incomplete:\n${out}`);
  // The BrokerList lists the broker's TCP address; its WebSocket URL comes
  // from the banner (ports are picked at random here, so the default
  // port+1 derivation does not hold).
  opts = {
    brokerList,
    WebSocket: WebSocket as unknown as WebSocketCtor,
    wsUrl: (addr) => (addr === tcp ? ws : `ws://${addr}/ws`),
    clientName: "tssdk-test",
    callTimeoutMs: 10_000,
  };
  const list = await fetchBrokerList(brokerList);
  assert.deepEqual(Object.keys(list), [tcp]);
});

after(async () => {
  if (!dev || dev.exitCode !== null) return;
  const exited = new Promise((r) => dev!.once("exit", r));
  dev.kill("SIGINT");
  const t = setTimeout(() => dev!.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(t);
});

const suffix = Math.random().toString(36).slice(2, 8);

test("against noon dev: register, login, echo, errors with codes, rooms with pushes, resume", { skip, timeout: 90_000 }, async () => {
  const a = await Session.connect(opts);
  const b = await Session.connect(opts);
  try {
    // Before login: echo is public, room.* is not.
    const bytes = new TextEncoder().encode("hello noon");
    assert.deepEqual(await a.echo.echo(bytes), bytes);
    await assert.rejects(b.room.create({ name: "nope" }), (e: unknown) => e instanceof NoonError && e.code === "unauthenticated" && !e.local);
    await assert.rejects(a.echo.fail({ code: "not_found", message: "as asked" }), (e: any) => e.code === "not_found" && e.message === "as asked");
    await assert.rejects(a.echo.sleep({ ms: 2000 }, { timeoutMs: 100 }), (e: any) => e.code === "timeout" && e.local);

    // Register and log in both players through the broker.
    const reg = await a.login.register({ username: `tsa_${suffix}`, password: "correct horse", nickname: "Alice" });
    assert.ok(reg.userId);
    await b.login.register({ username: `tsb_${suffix}`, password: "battery staple" });
    await assert.rejects(a.login.login({ username: `tsa_${suffix}`, password: "wrong password" }), (e: any) => e.code === "unauthenticated");
    const la = await a.login.login({ username: `tsa_${suffix}`, password: "correct horse" });
    assert.equal(la.userId, reg.userId);
    assert.equal(a.token, la.sessionToken);
    assert.equal(a.userId, reg.userId);
    const lb = await b.login.login({ username: `tsb_${suffix}`, password: "battery staple" });

    // A creates a room, B joins: A gets the room.joined push.
    const created = await a.room.create({ name: "ts room", game: "race31", maxPlayers: 2 });
    assert.equal(created.status, room.STATUS_OPEN);
    assert.deepEqual(created.players.map((p) => p.id), [la.userId]);
    const joined = a.next("room.Event", (ev) => ev.type === "room.joined" && ev.player === lb.userId);
    const st = await b.room.join({ roomId: created.id });
    assert.equal(st.players.length, 2);
    const ev = await joined;
    assert.equal(ev.roomId, created.id);
    assert.ok(ev.seq > created.seq);

    // Resume after the socket closes: the session reconnects in the
    // background with its token, and the broker restores the room binding.
    const resumed = a.next("_client.Resumed", () => true, 20_000);
    a.connection!.close();
    assert.ok((await resumed).broker);
    assert.equal(a.userId, la.userId);
    const got = await a.room.get({ sinceSeq: created.seq });
    assert.equal(got.id, created.id, "room binding restored by the resume");
    assert.ok(got.events.some((e) => e.type === "room.joined"));

    // And a fresh Session resumes with the token alone.
    const c = await Session.resume(opts, la.sessionToken);
    try {
      assert.equal(c.userId, la.userId);
      assert.equal((await c.room.get({ roomId: created.id })).id, created.id);
    } finally {
      c.close();
    }
    await assert.rejects(Session.resume(opts, "not-a-token"), (e: any) => e.code === "unauthenticated");
  } finally {
    a.close();
    b.close();
  }
});

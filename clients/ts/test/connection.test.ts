// The transport against a scripted broker (a `ws` server speaking frames):
// replies matched in order, deadlines, "unavailable" when the connection
// ends, pushes, bad frames from the server.

import { test } from "node:test";
import assert from "node:assert/strict";
import { WebSocket, WebSocketServer } from "ws";
import { Connection, Session, decode, encode, frame, edge, login, type WebSocketCtor } from "../src/index.js";

type Handler = (method: string, payload: Uint8Array, send: (first: string, payload?: Uint8Array) => void, ws: WebSocket) => void;

async function fakeBroker(h: Handler, state: { refuse?: boolean } = {}): Promise<{ url: string; close: () => Promise<void>; conns: Set<WebSocket> }> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((r) => wss.once("listening", () => r()));
  const conns = new Set<WebSocket>();
  wss.on("connection", (ws) => {
    if (state.refuse) {
      ws.terminate();
      return;
    }
    conns.add(ws);
    ws.on("close", () => conns.delete(ws));
    ws.on("message", (data: Buffer) => {
      const req = frame.decodeRequest(new Uint8Array(data));
      const send = (first: string, payload: Uint8Array = new Uint8Array(0)) => ws.send(frame.encodeResponse(first, payload));
      if (req.method === "edge.Hello") {
        const hr = decode<edge.HelloRequest>(edge.HelloRequest$, req.payload);
        const userId = hr.resumeToken === "good" ? "u1" : undefined;
        send("", encode(edge.HelloReply$, { protocolVersion: 1, sessionId: "s", brokerId: "b", userId, maxFrame: 1 << 20, maxInFlight: 64 }));
        return;
      }
      h(req.method, req.payload, send, ws);
    });
  });
  const addr = wss.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${addr.port}/ws`,
    conns,
    close: () => new Promise((r) => {
      for (const c of conns) c.terminate();
      wss.close(() => r());
    }),
  };
}

const WS = WebSocket as unknown as WebSocketCtor;

test("replies are matched in order; pushes interleave; error replies carry their code", async () => {
  const b = await fakeBroker((method, payload, send) => {
    if (method === "slow") {
      // answer later, but still in order: the test sends "slow" then "fast".
      setTimeout(() => send("", payload), 30);
      return;
    }
    if (method === "fail") return send("not_found: no such thing");
    send("@room.Event", new Uint8Array([0]));
    send("", payload);
  });
  const pending: Array<(v: void) => void> = [];
  const b2 = b;
  try {
    const c = await Connection.open(b2.url, { WebSocket: WS, push: true });
    assert.equal(c.helloReply?.brokerId, "b");
    const pushes: string[] = [];
    c.onPush((p) => pushes.push(p.type));
    const [x, y, z] = await Promise.allSettled([c.call("echo.Echo", new Uint8Array([1])), c.call("echo.Echo", new Uint8Array([2])), c.call("fail", new Uint8Array(0))]);
    assert.deepEqual(x.status === "fulfilled" && [...x.value], [1]);
    assert.deepEqual(y.status === "fulfilled" && [...y.value], [2]);
    assert.ok(z.status === "rejected" && z.reason.code === "not_found" && z.reason.message === "no such thing" && !z.reason.local);
    assert.deepEqual(pushes, ["room.Event", "room.Event"]);
    c.close();
    void pending;
  } finally {
    await b.close();
  }
});

test("a deadline fails the call with timeout and keeps its place in line", async () => {
  // The broker answers in order: the first reply after 150 ms, the
  // second right after it.
  let n = 0;
  let chain = Promise.resolve();
  const b = await fakeBroker((_m, payload, send) => {
    const k = n++;
    chain = chain.then(() => new Promise((r) => setTimeout(r, k === 0 ? 150 : 0))).then(() => send("", payload));
  });
  try {
    const c = await Connection.open(b.url, { WebSocket: WS });
    const slow = c.call("echo.Echo", new Uint8Array([7]), { timeoutMs: 40 });
    const next = c.call("echo.Echo", new Uint8Array([8]));
    await assert.rejects(slow, (e: any) => e.code === "timeout" && /40 ms/.test(e.message) && e.local);
    assert.deepEqual([...(await next)], [8], "the late reply of the timed-out call went to no one else");
    c.close();
  } finally {
    await b.close();
  }
});

test("pending calls fail unavailable when the connection closes; a bad frame from the server ends it", async () => {
  const b = await fakeBroker((method, _p, _send, ws) => {
    if (method === "hang") return;
    if (method === "garbage") ws.send(new Uint8Array([0, 0, 0, 3, 1, 2, 3]));
  });
  try {
    const c = await Connection.open(b.url, { WebSocket: WS });
    const hung = c.call("hang", new Uint8Array(0));
    setTimeout(() => b.conns.forEach((w) => w.close()), 20);
    await assert.rejects(hung, (e: any) => e.code === "unavailable");
    await assert.rejects(c.call("x", new Uint8Array(0)), (e: any) => e.code === "unavailable");
    const c2 = await Connection.open(b.url, { WebSocket: WS });
    const p = c2.call("garbage", new Uint8Array(0));
    await assert.rejects(p, (e: any) => e.code === "unavailable" && /bad_frame: frame length 3 is below minimum 8/.test(e.message));
    assert.equal((await c2.closed).code, "bad_frame");
  } finally {
    await b.close();
  }
});

test("Session: keeps the login token, forgets it on @edge.LoggedOut, moves on @edge.Draining, resumes elsewhere", async () => {
  const calls: string[] = [];
  const mk = (name: string) =>
    fakeBroker((method, payload, send) => {
      calls.push(`${name}:${method}`);
      if (method === "login.Login") return send("", encode(login.LoginReply$, { userId: "u1", nickname: "n", sessionToken: "good", expiresUnix: 1 }));
      if (method === "drain") {
        send("", payload);
        return send("@edge.Draining", encode(edge.Draining$, { graceMs: 100 }));
      }
      if (method === "logout") {
        send("", payload);
        return send("@edge.LoggedOut", encode(edge.LoggedOut$, { reason: "logout" }));
      }
      send("", payload);
    });
  const a = await mk("a");
  const b = await mk("b");
  try {
    const s = await Session.connect({ brokers: [a.url, b.url], WebSocket: WS, reconnectMinMs: 10 });
    assert.equal(s.broker, a.url);
    await s.login.login({ username: "x", password: "y" });
    assert.equal(s.token, "good");
    assert.equal(s.userId, "u1");
    // Draining: the session moves to b and resumes there.
    const resumed = s.next("_client.Resumed");
    const drained = s.next("edge.Draining");
    await s.call("drain", new Uint8Array(0));
    assert.equal((await drained).graceMs, 100);
    assert.equal((await resumed).broker, b.url);
    assert.equal(s.broker, b.url);
    await s.echo.echo(new Uint8Array([1]));
    assert.equal(calls.at(-1), "b:echo.Echo");
    // The broker dies: background reconnect to a (b is avoided first... and is gone).
    const again = s.next("_client.Resumed");
    for (const w of b.conns) w.terminate();
    assert.equal((await again).broker, a.url);
    // @edge.LoggedOut forgets the token.
    const lo = s.next("edge.LoggedOut");
    await s.call("logout", new Uint8Array(0));
    assert.equal((await lo).reason, "logout");
    assert.equal(s.token, "");
    s.close();
    await assert.rejects(s.call("x", new Uint8Array(0)), (e: any) => e.code === "unavailable");
  } finally {
    await a.close();
    await b.close();
  }
});

test("Session: with no other broker, a draining broker keeps answering during its grace", async () => {
  const state = { refuse: false };
  const a = await fakeBroker((method, payload, send) => {
    send("", payload);
    if (method === "drain") {
      state.refuse = true; // a draining broker takes no new connections
      send("@edge.Draining", encode(edge.Draining$, { graceMs: 1000 }));
    }
  }, state);
  try {
    const errs: unknown[] = [];
    const s = await Session.connect({ brokers: [a.url], WebSocket: WS, onError: (e) => errs.push(e) });
    const drained = s.next("edge.Draining");
    await s.call("drain", new Uint8Array(0));
    await drained;
    const conn = s.connection;
    assert.deepEqual([...(await s.call("echo.Echo", new Uint8Array([5])))], [5]);
    assert.equal(s.connection, conn, "still the draining broker's connection");
    s.close();
  } finally {
    await a.close();
  }
});

test("Session.call waits for a broker while none of the list answers, within reconnectMaxMs", async () => {
  const a = await fakeBroker((_m, payload, send) => send("", payload));
  const bState = { refuse: true };
  const b = await fakeBroker((_m, payload, send) => send("", payload), bState);
  try {
    const s = await Session.connect({ brokers: [a.url, b.url], WebSocket: WS, noBackgroundReconnect: true, reconnectMinMs: 10, reconnectMaxMs: 5000 });
    assert.equal(s.broker, a.url);
    // a goes away; b refuses connections for a while (it is starting).
    await a.close();
    await new Promise((r) => setTimeout(r, 20));
    setTimeout(() => (bState.refuse = false), 150);
    const out = await s.call("echo.Echo", new Uint8Array([7]));
    assert.deepEqual([...out], [7]);
    assert.equal(s.broker, b.url);
    s.close();

    // Nobody ever answers: the call fails "unavailable" after about
    // reconnectMaxMs (before the change: at once).
    const c = await fakeBroker((_m, payload, send) => send("", payload));
    const t = await Session.connect({ brokers: [c.url, b.url], WebSocket: WS, noBackgroundReconnect: true, reconnectMinMs: 10, reconnectMaxMs: 300 });
    bState.refuse = true;
    await c.close();
    await new Promise((r) => setTimeout(r, 20));
    const start = Date.now();
    await assert.rejects(t.call("echo.Echo", new Uint8Array([1])), (e: any) => e.code === "unavailable" && /no broker reachable/.test(e.message));
    const took = Date.now() - start;
    assert.ok(took >= 100 && took < 3000, `gave up after ${took} ms, want about 300`);
    t.close();
  } finally {
    await b.close();
  }
});

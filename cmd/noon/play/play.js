// race31 in the browser, on noon's TypeScript SDK (clients/ts, its compiled
// ESM copied to ./sdk by `make play-sdk`). No framework, no build step:
// `noon dev` serves this directory at /play/ on the BrokerList's port, so
// the page finds the BrokerList at /brokerlist of its own origin and the
// SDK derives the broker's WebSocket URL from the list (ws://host:port+1/ws).
//
// ?autoplay=1 makes the page play its own turns (the classic strategy),
// for tests and demos.

import { Session, NoonError, encode, decode, room } from "./sdk/index.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const autoplay = params.get("autoplay") === "1";
let autoplayTimer = 0;

let s = null; // the Session
let me = ""; // our user id
// The view of our room: from room.* replies and room.Get, kept current by
// the @room.Event pushes.
const view = { id: "", seq: 0, status: "", host: "", winner: "", players: [], game: null };
let lastPush = 0; // when the last push came (the poll below asks room.Get when none came for a while)

function log(text, cls = "") {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  if (cls) li.className = cls;
  $("log").prepend(li);
}

function fail(what, e) {
  const msg = e instanceof NoonError ? `${e.code}: ${e.message}` : String(e);
  log(`${what} failed: ${msg}`, "error");
}

// button runs an async action from a click, with the button disabled meanwhile.
function button(id, fn) {
  $(id).addEventListener("click", async (ev) => {
    ev.preventDefault();
    const b = ev.currentTarget;
    b.disabled = true;
    try {
      await fn();
    } catch (e) {
      fail(b.textContent, e);
    } finally {
      b.disabled = false;
      render();
    }
  });
}

// Players are user ids in the room; the page knows only its own username,
// so the others are "player" and the end of their id (unique enough at a
// table; the whole id is in the tooltip and data-id).
let myName = "";
const who = (id) => (id === me ? myName : `player …${id.slice(-6)}`);

// ---- connecting, registering, logging in

async function connect() {
  s = await Session.connect({
    brokerList: new URL("/brokerlist", location.href).href,
    clientName: "noon-play",
    onError: (e) => console.warn("noon:", e),
  });
  $("conn").textContent = `connected to broker ${s.broker}`;
  s.on("room.Event", onEvent);
  s.on("match.Matched", (ev) => matched(ev.ticket).catch((e) => fail("room.Get", e)));
  s.on("_client.Resumed", (ev) => {
    log(`reconnected to broker ${ev.broker}`);
    if (view.id) refresh().catch((e) => fail("room.Get", e));
  });
}

function credentials() {
  const username = $("username").value.trim();
  const password = $("password").value;
  if (!username || password.length < 8) throw new Error("a username and a password of 8 characters or more, please");
  return { username, password };
}

async function signIn() {
  const rep = await s.login.login(credentials());
  me = rep.userId;
  myName = $("username").value.trim();
  document.body.dataset.me = me; // for tests
  $("me").textContent = `${myName} (${me})`;
  $("login").hidden = true;
  $("lobby").hidden = false;
  log(`logged in as ${me}`);
}

button("register", async () => {
  const c = credentials();
  const rep = await s.login.register({ ...c, nickname: c.username });
  log(`registered ${c.username} (${rep.userId})`);
  await signIn();
});
$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  signIn().catch((e) => fail("log in", e));
});

// ---- finding a room

function enter(st) {
  setView(st);
  $("lobby").hidden = true;
  $("room").hidden = false;
  $("room-code").textContent = view.id;
  history.replaceState(null, "", `?${new URLSearchParams({ ...Object.fromEntries(params), room: view.id })}`);
  log(`in room ${view.id}`);
}

button("create", async () => {
  const max = Number($("max-players").value);
  enter(await s.room.create({ name: `${myName.slice(0, 40)}'s table`, game: "race31", maxPlayers: max }));
});
button("join", async () => {
  enter(await s.room.join({ roomId: $("room-id").value.trim() }));
});

let ticket = "";
button("matchmake", async () => {
  const rep = await s.match.start({ queue: "race31" });
  ticket = rep.ticket.id;
  $("match-status").textContent = `searching (ticket ${ticket})…`;
  // The push may come before the subscription is up: poll as a fallback.
  while (ticket && !view.id) {
    await new Promise((r) => setTimeout(r, 1000));
    if (!ticket || view.id) break;
    const st = await s.match.status({ ticket });
    if (st.ticket?.state !== "searching") await matched(st.ticket);
  }
});

async function matched(t) {
  if (!t || t.id !== ticket || view.id) return;
  ticket = "";
  if (t.state !== "matched" || !t.match?.roomId) {
    $("match-status").textContent = `ticket ended: ${t.state} ${t.reason ?? ""}`;
    return;
  }
  $("match-status").textContent = "";
  // The matchmaker bound the room to our connection: room.Get reads it.
  enter(await s.room.get({ roomId: t.match.roomId }));
}

// ---- in the room

function setView(st) {
  Object.assign(view, { id: st.id, seq: st.seq, status: st.status, host: st.host, winner: st.winner, players: st.players });
  view.game = st.gameState && st.gameState.length > 0 ? decode(room.Race31State$, st.gameState) : null;
  render();
}

async function refresh() {
  setView(await s.room.get({ roomId: view.id }));
}

// onEvent applies a pushed room event to the view; events come with
// consecutive seqs per room, so a gap (a push lost) means asking room.Get.
function onEvent(ev) {
  if (ev.roomId !== view.id) return;
  lastPush = Date.now();
  if (ev.seq <= view.seq) return; // already in the view
  let line = `#${ev.seq} ${ev.type}${ev.player ? " by " + who(ev.player) : ""}`;
  if (ev.seq > view.seq + 1) {
    log(line);
    refresh().catch((e) => fail("room.Get", e));
    return;
  }
  view.seq = ev.seq;
  const g = view.game;
  switch (ev.type) {
    case "room.joined":
      if (!view.players.some((p) => p.id === ev.player)) view.players.push({ id: ev.player, ready: false });
      break;
    case "room.ready":
    case "room.unready":
      for (const p of view.players) if (p.id === ev.player) p.ready = ev.type === "room.ready";
      break;
    case "room.started":
      view.status = room.STATUS_PLAYING;
      view.game = decode(room.Race31State$, ev.body);
      line += `: reach ${view.game.target}, ${who(view.game.order[view.game.turn])} moves first`;
      break;
    case "game.added":
    case "game.timeout":
    case "game.turn": {
      const a = decode(room.Race31Added$, ev.body);
      if (g) {
        g.total = a.total;
        const i = g.order.indexOf(a.nextPlayer);
        if (i >= 0) g.turn = i;
        if (ev.type !== "game.turn") g.moves++;
      }
      if (ev.type !== "game.turn") line += `: +${a.add} → ${a.total}`;
      break;
    }
    case "room.finished":
      view.status = room.STATUS_FINISHED;
      view.winner = ev.player;
      if (g) g.winner = ev.player;
      line = `#${ev.seq} room.finished: ${who(ev.player)} wins`;
      break;
    default: // left, host changed, closed...: read the room again
      refresh().catch((e) => fail("room.Get", e));
  }
  log(line);
  render();
}

// No push for a while (they begin once the broker's subscription reaches
// the room's instance): ask room.Get.
setInterval(() => {
  if (s && view.id && view.status !== room.STATUS_FINISHED && Date.now() - lastPush > 1500) {
    lastPush = Date.now();
    refresh().catch((e) => fail("room.Get", e));
  }
}, 500);

function mine() {
  return view.players.find((p) => p.id === me);
}

button("ready", async () => {
  const p = mine();
  await s.room.ready({ ready: !(p && p.ready), roomId: view.id });
  await refresh();
});
button("leave", async () => {
  await s.room.leave({ roomId: view.id }).catch((e) => fail("leave", e));
  log(`left room ${view.id}`);
  Object.assign(view, { id: "", seq: 0, status: "", host: "", winner: "", players: [], game: null });
  actedSeq = 0;
  $("room").hidden = true;
  $("lobby").hidden = false;
});
button("start", async () => {
  setView(await s.room.start({ roomId: view.id }));
});

function myTurn() {
  const g = view.game;
  return view.status === room.STATUS_PLAYING && g && !g.winner && g.total < g.target && g.order[g.turn] === me && view.seq >= actedSeq;
}

let acting = false; // a move is in flight
let actedSeq = 0; // the seq of our last move: no other move before the view has it
async function act(add) {
  if (acting) return;
  acting = true;
  render();
  try {
    const rep = await s.room.act({ action: encode(room.Race31Action$, { add }), roomId: view.id });
    actedSeq = rep.seq;
    log(`you added ${add} (event #${rep.seq})`);
  } catch (e) {
    fail(`add ${add}`, e);
    await refresh().catch(() => {});
  } finally {
    acting = false;
    render();
  }
}

// strategy is the classic winning play: leave the others a multiple of
// max_add+1 short of the target when possible, else add 1.
function strategy(g) {
  const add = (g.target - g.total) % (g.maxAdd + 1);
  return add === 0 ? 1 : add;
}

function render() {
  const g = view.game;
  const playing = view.status === room.STATUS_PLAYING;
  // Players: in seat order once the game started, else in join order.
  const ids = g && g.order.length ? g.order : view.players.map((p) => p.id);
  const ol = $("players");
  ol.replaceChildren(
    ...ids.map((id) => {
      const p = view.players.find((q) => q.id === id);
      const li = document.createElement("li");
      li.dataset.id = id;
      li.title = id;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = who(id);
      li.append(name, `${id === me ? " (you)" : ""}${id === view.host ? " ★host" : ""}${!g && p?.ready ? " ✓ready" : ""}`);
      if (playing && g && g.order[g.turn] === id) li.className = "turn";
      return li;
    }),
  );
  const p = mine();
  $("ready").textContent = p?.ready ? "Not ready" : "Ready";
  $("ready").disabled = view.status !== room.STATUS_OPEN;
  $("start").disabled =
    view.status !== room.STATUS_OPEN || view.players.length < 2 || !view.players.every((q) => q.ready);
  $("status").textContent = view.status === room.STATUS_OPEN ? `waiting: ${view.players.length} player(s), everyone ready, then Start` : view.status;
  $("total").textContent = g ? g.total : 0;
  $("target").textContent = g ? g.target : 31;
  const turn = $("turn");
  turn.textContent = !playing || !g ? "" : myTurn() ? "Your turn!" : `Waiting for ${who(g.order[g.turn])}`;
  turn.dataset.myturn = myTurn() ? "1" : "0";

  const moves = $("moves");
  const max = g ? g.maxAdd : 3;
  if (moves.children.length !== max) {
    moves.replaceChildren(
      ...Array.from({ length: max }, (_, i) => {
        const b = document.createElement("button");
        b.textContent = `+${i + 1}`;
        b.dataset.add = String(i + 1);
        b.addEventListener("click", () => act(i + 1));
        return b;
      }),
    );
  }
  for (const b of moves.children) b.disabled = !myTurn() || acting || Number(b.dataset.add) > g.target - g.total;

  const banner = $("banner");
  if (view.status === room.STATUS_FINISHED && view.winner) {
    banner.hidden = false;
    banner.textContent = `${who(view.winner)} wins`;
    banner.dataset.winner = view.winner;
    banner.classList.toggle("me", view.winner === me);
  } else banner.hidden = true;

  if (autoplay && myTurn() && !acting && !autoplayTimer) {
    autoplayTimer = setTimeout(() => {
      autoplayTimer = 0;
      if (myTurn() && !acting) act(strategy(view.game));
    }, 300);
  }
}

connect().catch((e) => {
  $("conn").textContent = `no broker: ${e instanceof NoonError ? e.code + ": " + e.message : e}`;
  $("conn").className = "error";
});
// A room id in the URL (?room=...) is offered in the join box.
if (params.get("room")) $("room-id").value = params.get("room");

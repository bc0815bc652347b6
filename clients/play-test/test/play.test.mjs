// The browser game end to end: a real `noon dev` (NOON_BIN) serves /play/;
// two headless Chromium pages (Debian's /usr/bin/chromium, or CHROMIUM_BIN,
// driven by playwright-core) register, log in, create and join a race31
// room by clicking the page; the Go bot (RACE31BOT_BIN) joins as the third
// player; the first page starts the game and plays by clicking, the second
// plays itself (?autoplay=1), until someone wins. Then both pages must show
// the same "<winner> wins" banner, the bot must agree on the winner, and a
// screenshot of the finished game (clients/play-test/test-output/) must be
// a real image showing the banner.
//
// Without NOON_BIN, RACE31BOT_BIN or chromium the test skips, unless
// NOON_REQUIRE_SERVICES=1, which makes it fail. `make play-test` builds
// everything and runs it.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const noonBin = process.env.NOON_BIN ?? "";
const botBin = process.env.RACE31BOT_BIN ?? "";
const chromiumBin = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const required = process.env.NOON_REQUIRE_SERVICES === "1";
const outDir = here("../test-output/");

const missing = [
  !noonBin && "NOON_BIN (go build -o bin/ ./cmd/noon)",
  !botBin && "RACE31BOT_BIN (go build -o bin/ ./edge/client/examples/race31bot)",
  !existsSync(chromiumBin) && `${chromiumBin} (apt-get install -y chromium)`,
].filter(Boolean);
const skip = missing.length > 0 && !required ? `missing ${missing.join(", ")}: run make play-test` : false;

const TIMEOUT = 180_000;
const t0 = Date.now();
const stamp = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
const note = (msg) => console.log(`${stamp()} ${msg}`);

function listen(port) {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(0));
    s.listen(port, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

// twoFreePorts returns a free port P with P+1 free too: the broker's TCP and
// WebSocket listeners, so that the SDK's default derivation (the BrokerList
// names the TCP address; its WebSocket is port+1) holds, as in `make run`.
async function twoFreePorts() {
  for (let i = 0; i < 50; i++) {
    const p = await listen(0);
    if (p && p < 65535 && (await listen(p + 1))) return p;
  }
  throw new Error("no two consecutive free ports");
}

let dev = null;
let devOut = "";
let devErr = "";
let browser = null;
let bot = null;
let playURL = "";
let listURL = "";

before(async () => {
  if (skip) return;
  if (missing.length) throw new Error(`NOON_REQUIRE_SERVICES=1 but missing ${missing.join(", ")}`);
  const config = here("../../../configs/dev.yaml");
  const yellow = await listen(0);
  const broker = await twoFreePorts();
  const args = [
    "dev", "-config", config, "-admin", "127.0.0.1:0",
    "-set", `yellow.router_addr=tcp://127.0.0.1:${yellow}`, "-set", "yellow.pub_addr=tcp://127.0.0.1:0",
    "-set", `broker.edge.tcp_addr=127.0.0.1:${broker}`, "-set", `broker.edge.ws_addr=127.0.0.1:${broker + 1}`,
    "-set", "brokerlist.addr=127.0.0.1:0", "-set", "services.login.http_addr=127.0.0.1:0",
    "-set", "services.pay.http_addr=127.0.0.1:0",
    "-set", "services.login.argon2.memory_kib=1024", "-set", "services.login.argon2.time=1",
  ];
  dev = spawn(noonBin, args, { stdio: ["ignore", "pipe", "pipe"] });
  dev.stdout.on("data", (d) => (devOut += d));
  dev.stderr.on("data", (d) => (devErr += d));
  while (!devOut.includes("Ctrl-C stops everything")) {
    if (dev.exitCode !== null) throw new Error(`noon dev exited ${dev.exitCode}:\n${devOut}\n${devErr.slice(-4000)}`);
    if (Date.now() - t0 > 60_000) throw new Error(`noon dev not up within 60 s:\n${devOut}\n${devErr.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const field = (label) => new RegExp(`^\\s+${label}\\s+(\\S+)`, "m").exec(devOut)?.[1] ?? "";
  listURL = field("BrokerList");
  playURL = field("play");
  assert.match(playURL, /^http:\/\/127\.0\.0\.1:\d+\/play\/$/, `no play URL in the banner:\n${devOut}`);
  note(`noon dev is up: ${playURL}`);

  const { chromium } = await import("playwright-core");
  browser = await chromium.launch({
    executablePath: chromiumBin,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  note(`chromium ${browser.version()} launched`);
});

after(async () => {
  if (bot && bot.exitCode === null) bot.kill("SIGKILL");
  await browser?.close().catch(() => {});
  if (!dev || dev.exitCode !== null) return;
  const exited = new Promise((r) => dev.once("exit", r));
  dev.kill("SIGINT");
  // In-memory stores: nothing to lose, and its drain would hold the
  // test for its grace.
  const t = setTimeout(() => dev.kill("SIGKILL"), 3_000);
  await exited;
  clearTimeout(t);
});

// openPlayer opens the game in a fresh browser context (its own tab, as
// another person would), registers user and logs in by clicking.
async function openPlayer(user, query = "") {
  const ctx = await browser.newContext({ viewport: { width: 900, height: 900 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.errors = errors;
  await page.goto(playURL + query);
  await page.locator("#conn", { hasText: "connected to broker" }).waitFor({ timeout: 30_000 });
  await page.fill("#username", user);
  await page.fill("#password", "correct horse battery");
  await page.click("#register");
  await page.locator("#lobby").waitFor({ state: "visible", timeout: 30_000 });
  const me = await page.evaluate(() => document.body.dataset.me);
  assert.ok(me, `${user}: no user id after logging in`);
  return { page, me, user };
}

const text = (page, sel) => page.locator(sel).innerText();
const log = (page) => page.locator("#log").innerText().catch(() => "");

// pngSize reads the width and height of a PNG from its IHDR chunk.
function pngSize(buf) {
  assert.ok(buf.length > 33, "PNG too short");
  assert.deepEqual([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "not a PNG signature");
  assert.equal(buf.subarray(12, 16).toString("latin1"), "IHDR", "PNG without IHDR first");
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

// pixels decodes a PNG in the page (an <img> drawn on a canvas) and
// counts its distinct colours and the pixels near rgb (the banner's).
function pixels(page, png, rgb) {
  return page.evaluate(
    async ({ b64, rgb }) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const c = document.createElement("canvas");
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const g = c.getContext("2d");
      g.drawImage(img, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      const colours = new Set();
      let near = 0;
      for (let i = 0; i < d.length; i += 4) {
        colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        if (Math.abs(d[i] - rgb[0]) + Math.abs(d[i + 1] - rgb[1]) + Math.abs(d[i + 2] - rgb[2]) < 12) near++;
      }
      return { colours: colours.size, near, width: c.width, height: c.height };
    },
    { b64: png.toString("base64"), rgb },
  );
}

test("two browser players and the Go bot play race31 to the end", { skip, timeout: TIMEOUT }, async () => {
  const suffix = Math.random().toString(36).slice(2, 8);
  const a = await openPlayer(`pa_${suffix}`);
  const b = await openPlayer(`pb_${suffix}`, "?autoplay=1");
  note(`registered and logged in ${a.me} and ${b.me}`);

  // A creates a room for 3; B joins it by id, typed in.
  await a.page.selectOption("#max-players", "3");
  await a.page.click("#create");
  await a.page.locator("#room").waitFor({ state: "visible", timeout: 15_000 });
  const roomId = (await text(a.page, "#room-code")).trim();
  assert.ok(roomId, "no room id on the page");
  await b.page.fill("#room-id", roomId);
  await b.page.click("#join");
  await b.page.locator("#room").waitFor({ state: "visible", timeout: 15_000 });
  note(`room ${roomId}: created by A, joined by B`);

  // The bot joins as the third player and gets ready.
  let botOut = "";
  bot = spawn(botBin, ["-brokerlist", listURL, "-room", roomId, "-players", "1", "-name", `pbot${suffix}`, "-timeout", "150s"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  bot.stdout.on("data", (d) => (botOut += d));
  bot.stderr.on("data", (d) => (botOut += d));
  const botDone = new Promise((r) => bot.once("exit", (code) => r(code)));

  // Both pages see the three players; A and B get ready; A starts once
  // everyone (the bot too) is ready.
  for (const p of [a, b]) await p.page.locator("#players li").nth(2).waitFor({ timeout: 30_000 });
  await a.page.click("#ready");
  await b.page.click("#ready");
  const start = a.page.locator("#start:enabled");
  await start.waitFor({ timeout: 30_000 }).catch(async (e) => {
    throw new Error(`Start never enabled: ${e}\nA's players: ${await text(a.page, "#players")}\nbot:\n${botOut}`);
  });
  await start.click();
  await a.page.locator("#status", { hasText: "playing" }).waitFor({ timeout: 15_000 });
  note(`game started; seats: ${(await text(a.page, "#players")).replace(/\n/g, " | ")}`);

  // A plays by clicking a legal button on each of its turns; B autoplays;
  // the bot plays its strategy.
  let clicks = 0;
  const banner = a.page.locator("#banner");
  const deadline = Date.now() + 120_000;
  while (!(await banner.isVisible())) {
    assert.ok(Date.now() < deadline, `no winner within 120 s\nA's log:\n${await log(a.page)}\nbot:\n${botOut}`);
    const buttons = a.page.locator("#moves button:enabled");
    const n = await buttons.count();
    if (n > 0 && (await a.page.getAttribute("#turn", "data-myturn")) === "1") {
      await buttons.nth(clicks % n).click().catch(() => {}); // re-rendered meanwhile: look again
      clicks++;
    }
    await a.page.waitForTimeout(100);
  }
  await b.page.locator("#banner").waitFor({ state: "visible", timeout: 15_000 });
  const botCode = await Promise.race([botDone, new Promise((r) => setTimeout(() => r("timeout"), 30_000).unref())]);
  note(`game over after ${clicks} click(s) by A; the bot exited ${botCode}`);
  assert.equal(botCode, 0, `the bot failed:\n${botOut}`);
  assert.ok(clicks >= 1, "A never clicked a move");

  // The winner: the same on both pages, one of the three players, and the
  // one the bot saw (the bot prints a bot's username, anyone else's id).
  const winner = await banner.getAttribute("data-winner");
  const seated = await a.page.locator("#players li").evaluateAll((lis) => lis.map((li) => li.dataset.id));
  assert.equal(seated.length, 3, `players: ${seated}`);
  assert.ok(seated.includes(winner), `winner ${winner} is not one of ${seated}`);
  for (const p of [a, b]) {
    // The banner names the winner as the page's player list does (the
    // page's own player by username).
    const name = await p.page.locator(`#players li[data-id="${winner}"] .name`).innerText();
    if (winner === p.me) assert.equal(name, p.user);
    assert.equal((await p.page.locator("#banner").innerText()).trim(), `${name} wins`, `${p.user}'s banner`);
    assert.equal(await p.page.locator("#total").innerText(), await p.page.locator("#target").innerText(), `${p.user}: the total did not reach the target`);
  }
  const botWinner = /^winner: (\S+)/m.exec(botOut)?.[1];
  assert.ok(botWinner, `the bot printed no winner:\n${botOut}`);
  if (botWinner.startsWith(`pbot${suffix}`)) assert.ok(winner !== a.me && winner !== b.me, `the bot says it won, the pages say ${winner}`);
  else assert.equal(botWinner, winner, "the bot and the pages disagree on the winner");
  note(`winner: ${winner}${winner === a.me ? " (A)" : winner === b.me ? " (B)" : " (the bot)"}`);

  // The screenshot of the finished game: a real PNG with the banner in it.
  mkdirSync(outDir, { recursive: true });
  const shot = await a.page.screenshot({ fullPage: true });
  writeFileSync(outDir + "finished-game.png", shot);
  const size = pngSize(readFileSync(outDir + "finished-game.png"));
  assert.ok(size.width >= 300 && size.height >= 300, `screenshot is ${size.width}x${size.height}`);
  const full = await pixels(a.page, shot, [0xff, 0xd5, 0x4a]);
  assert.equal(full.width, size.width);
  assert.ok(full.colours > 20, `the screenshot has ${full.colours} colours: blank?`);
  assert.ok(full.near > 2000, `the banner's yellow is not in the screenshot (${full.near} pixels)`);
  const bannerShot = await banner.screenshot();
  writeFileSync(outDir + "winner-banner.png", bannerShot);
  const bs = pngSize(bannerShot);
  const bp = await pixels(a.page, bannerShot, [0xff, 0xd5, 0x4a]);
  assert.ok(bs.width > 100 && bs.height > 20, `banner screenshot is ${bs.width}x${bs.height}`);
  assert.ok(bp.colours >= 3 && bp.near > bp.width * bp.height * 0.3, `banner screenshot looks blank: ${JSON.stringify(bp)}`);
  note(`screenshots: ${outDir}finished-game.png (${size.width}x${size.height}, ${full.colours} colours), winner-banner.png`);

  for (const p of [a, b]) assert.deepEqual(p.page.errors.filter((e) => !/favicon/.test(e)), [], `${p.user}: errors in the page`);
});

// noon console: polls GET api/snapshot with the bearer token, renders the
// tables and draws the graphs as inline SVG. No dependencies.
"use strict";
(function () {
  const TOKEN_KEY = "noon-console-token";
  const COLORS = ["#2458d3", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#5d4037", "#455a64", "#9e9d24"];
  const api = "api/"; // relative to /console/
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let timer = null;
  let interval = 2000;
  let selected = null;
  let last = null;
  const colorOf = {};

  const $ = (id) => document.getElementById(id);
  const fmt = (v, d) => (v === undefined || v === null ? "-" : Number(v).toFixed(d));
  const ms = (s) => (s === undefined || s < 0 ? "-" : (s * 1000).toFixed(1));

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function clear(tbody) { while (tbody.firstChild) tbody.removeChild(tbody.firstChild); }
  function color(name) {
    if (!colorOf[name]) colorOf[name] = COLORS[Object.keys(colorOf).length % COLORS.length];
    return colorOf[name];
  }
  function metaText(m) {
    if (!m) return "-";
    return Object.keys(m).sort().map((k) => k + "=" + m[k]).join(", ");
  }

  async function call(method, path, body) {
    const opts = { method: method, headers: { "Authorization": "Bearer " + token } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(api + path, opts);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    return { status: res.status, data: data };
  }

  async function poll() {
    let r;
    try {
      r = await call("GET", "snapshot");
    } catch (e) {
      $("status").textContent = "console unreachable: " + e;
      return schedule();
    }
    if (r.status === 401) {
      stop();
      $("login-error").textContent = "wrong token";
      $("login").classList.remove("hidden");
      $("main").classList.add("hidden");
      $("status").textContent = "not connected";
      return;
    }
    if (r.status !== 200 || !r.data) {
      $("status").textContent = (r.data && r.data.error) || ("HTTP " + r.status);
      return schedule();
    }
    $("login").classList.add("hidden");
    $("main").classList.remove("hidden");
    $("login-error").textContent = "";
    if (r.data.interval_ms) interval = r.data.interval_ms;
    render(r.data.snapshot, r.data.history || []);
    schedule();
  }
  function schedule() { stop(); timer = setTimeout(poll, interval); }
  function stop() { if (timer) clearTimeout(timer); timer = null; }

  function render(s, history) {
    last = s;
    const t = new Date(s.time);
    $("status").textContent = "snapshot " + t.toLocaleTimeString() + (s.interval_s ? " (rates over " + s.interval_s.toFixed(1) + " s)" : "");
    $("scaleout").classList.toggle("hidden", !s.scale_out);

    const sb = $("services").tBodies[0];
    clear(sb);
    for (const svc of s.services || []) {
      const tr = document.createElement("tr");
      tr.className = "service" + (svc.name === selected ? " selected" : "");
      tr.dataset.service = svc.name;
      cell(tr, svc.name);
      cell(tr, String(svc.instances.length));
      cell(tr, String(svc.ready));
      cell(tr, fmt(svc.load, 3));
      cell(tr, fmt(svc.in_flight, 0));
      cell(tr, fmt(svc.req_rate, 1));
      cell(tr, fmt(svc.err_rate, 2));
      cell(tr, ms(svc.p99));
      cell(tr, svc.name === "room" ? fmt(svc.rooms || 0, 0) : "");
      tr.addEventListener("click", () => { selected = svc.name; render(last, history); });
      sb.appendChild(tr);
    }
    renderInstances(s);

    const bb = $("brokers").tBodies[0];
    clear(bb);
    for (const b of s.brokers || []) {
      const tr = document.createElement("tr");
      cell(tr, b.id);
      cell(tr, b.state, "state-" + b.state);
      cell(tr, b.client_addr || "-");
      cell(tr, fmt(b.load, 3));
      cell(tr, fmt(b.connections || 0, 0));
      cell(tr, fmt(b.in_flight, 0));
      cell(tr, fmt(b.req_rate, 1));
      cell(tr, fmt(b.err_rate, 2));
      cell(tr, ms(b.p99));
      tr.appendChild(drainCell(b.id, b.state));
      bb.appendChild(tr);
    }

    const qb = $("queues").tBodies[0];
    clear(qb);
    for (const q of s.queues || []) {
      const tr = document.createElement("tr");
      cell(tr, q.name);
      cell(tr, fmt(q.tickets, 0));
      cell(tr, fmt(q.oldest_s, 1));
      cell(tr, fmt(q.ready, 0));
      cell(tr, fmt(q.ready_wait_s, 1));
      qb.appendChild(tr);
    }

    const errs = s.errors || [];
    $("errors-section").classList.toggle("hidden", errs.length === 0);
    const ul = $("errors");
    clear(ul);
    for (const e of errs) {
      const li = document.createElement("li");
      li.textContent = e;
      ul.appendChild(li);
    }

    const names = (s.services || []).map((x) => x.name);
    graph($("g-req"), history, names, (p) => p.r);
    graph($("g-p99"), history, names, (p) => (p.p < 0 ? null : p.p * 1000));
    graph($("g-err"), history, names, (p) => p.e);
    legend(names);
  }

  function renderInstances(s) {
    const svc = (s.services || []).find((x) => x.name === selected);
    $("instances-section").classList.toggle("hidden", !svc);
    if (!svc) return;
    $("instances-of").textContent = svc.name;
    const tb = $("instances").tBodies[0];
    clear(tb);
    for (const i of svc.instances) {
      const tr = document.createElement("tr");
      tr.className = "instance";
      tr.dataset.instance = i.id;
      cell(tr, i.id);
      cell(tr, i.state, "state-" + i.state);
      cell(tr, i.version || "-");
      cell(tr, fmt(i.load, 3));
      cell(tr, String(i.capacity));
      cell(tr, i.scraped ? fmt(i.in_flight, 0) : "-");
      cell(tr, i.scraped ? fmt(i.req_rate, 1) : "-");
      cell(tr, i.scraped ? fmt(i.err_rate, 2) : "-");
      cell(tr, svc.name === "room" ? fmt(i.rooms || 0, 0) : "");
      cell(tr, metaText(i.meta), "meta");
      tr.appendChild(drainCell(i.id, i.state));
      tb.appendChild(tr);
    }
  }

  function drainCell(id, state) {
    const td = document.createElement("td");
    const b = document.createElement("button");
    b.className = "drain";
    b.dataset.instance = id;
    b.textContent = "Drain";
    b.disabled = state === "draining";
    b.addEventListener("click", (ev) => { ev.stopPropagation(); drain(id, b); });
    td.appendChild(b);
    return td;
  }

  async function drain(id, button) {
    if (window.NOON_CONFIRM !== false && !window.confirm("Drain " + id + "?")) return;
    button.disabled = true;
    const out = $("drain-result");
    out.className = "muted";
    out.textContent = "draining " + id + " ...";
    try {
      const r = await call("POST", "drain", { instance: id });
      if (r.status === 200) {
        out.textContent = "drain " + id + ": " + r.data.result;
      } else {
        out.className = "error";
        out.textContent = "drain " + id + " failed: " + ((r.data && r.data.error) || ("HTTP " + r.status));
        button.disabled = false;
      }
    } catch (e) {
      out.className = "error";
      out.textContent = "drain " + id + " failed: " + e;
      button.disabled = false;
    }
  }

  // graph draws one polyline per service over the history, y from 0 to
  // the maximum, with the maximum written in the corner.
  function graph(svg, history, names, pick) {
    const NS = "http://www.w3.org/2000/svg";
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const W = 360, H = 160, pad = 4;
    let max = 0;
    for (const p of history) for (const n of names) {
      const v = p.s && p.s[n] ? pick(p.s[n]) : null;
      if (v !== null && v > max) max = v;
    }
    const axis = document.createElementNS(NS, "line");
    axis.setAttribute("x1", 0); axis.setAttribute("x2", W);
    axis.setAttribute("y1", H - pad); axis.setAttribute("y2", H - pad);
    axis.setAttribute("stroke", "#d9dce3");
    svg.appendChild(axis);
    const label = document.createElementNS(NS, "text");
    label.setAttribute("x", 6); label.setAttribute("y", 16);
    label.setAttribute("font-size", "14"); label.setAttribute("fill", "#6b7280");
    label.textContent = "max " + (max < 10 ? max.toFixed(2) : max.toFixed(0));
    svg.appendChild(label);
    if (history.length < 2) return;
    const t0 = history[0].t, t1 = history[history.length - 1].t;
    const span = Math.max(t1 - t0, 1);
    const top = max > 0 ? max * 1.1 : 1;
    for (const n of names) {
      const pts = [];
      for (const p of history) {
        const v = p.s && p.s[n] ? pick(p.s[n]) : null;
        if (v === null) continue;
        const x = ((p.t - t0) / span) * W;
        const y = H - pad - (v / top) * (H - 2 * pad);
        pts.push(x.toFixed(1) + "," + y.toFixed(1));
      }
      if (pts.length < 2) continue;
      const pl = document.createElementNS(NS, "polyline");
      pl.setAttribute("points", pts.join(" "));
      pl.setAttribute("fill", "none");
      pl.setAttribute("stroke", color(n));
      pl.setAttribute("stroke-width", "2");
      pl.dataset.service = n;
      svg.appendChild(pl);
    }
  }

  function legend(names) {
    const el = $("legend");
    while (el.firstChild) el.removeChild(el.firstChild);
    for (const n of names) {
      const span = document.createElement("span");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = color(n);
      span.appendChild(sw);
      span.appendChild(document.createTextNode(n));
      el.appendChild(span);
    }
  }

  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    $("login-error").textContent = "";
    poll();
  });
  if (token) poll();
})();

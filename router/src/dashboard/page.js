// The live cluster page: polls the router's /dashboard/state and redraws. Plain DOM
// (textContent only, so names from the catalogue are never parsed as HTML) and a canvas
// chart; nothing is fetched but the state.
"use strict";

(function () {
  const POLL_MS = 1500;
  const RECENT = 10;
  // Next to this script, whatever prefix a proxy serves the page under.
  const STATE_URL = new URL("state", document.currentScript.src).toString();

  function el(tag, text, className) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (className) e.className = className;
    return e;
  }

  function row(cells, attrs) {
    const tr = document.createElement("tr");
    for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, String(v));
    for (const c of cells) tr.appendChild(c);
    return tr;
  }

  function num(v) {
    return el("td", v === null || v === undefined ? "–" : v, "num");
  }

  function replaceBody(id, rows) {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren(...rows);
  }

  function renderNodes(nodes) {
    replaceBody("nodes", nodes.map((n) =>
      row([
        el("td", n.id),
        el("td", n.addr, "mono"),
        el("td", n.up ? "up" : "down", n.up ? "up node-status" : "down node-status"),
        num(n.up ? n.replicas : null),
        num(n.up ? n.leaders : null),
        num(n.dropped_messages),
        el("td", n.blocked.length ? n.blocked.join(", ") : ""),
        el("td", n.error || "", "muted"),
      ], { class: "node", "data-node": n.id, "data-up": n.up })));
    document.getElementById("nodes-up").textContent = nodes.filter((n) => n.up).length;
    document.getElementById("nodes-total").textContent = nodes.length;
  }

  const DIGEST_TEXT = {
    agree: ["agree", "up"],
    catching_up: ["catching up", "warn"],
    differ: ["DIFFER", "down"],
    unknown: ["–", "muted"],
  };

  function renderGroups(groups) {
    const rows = [];
    for (const g of groups) {
      g.replicas.forEach((r, i) => {
        const first = i === 0;
        const [digestText, digestClass] = DIGEST_TEXT[g.digests] || [g.digests, ""];
        const groupCells = first
          ? [
              el("td", g.group),
              el("td", g.kind),
              el("td", g.leader === null ? "none" : "node " + g.leader, g.leader === null ? "down" : ""),
              num(g.term),
              el("td", digestText, digestClass),
            ]
          : [el("td"), el("td"), el("td"), el("td"), el("td")];
        const role = r.up ? (r.role || "–") : "down";
        const note = r.error || (r.state && r.state !== "running" ? r.state : "");
        rows.push(row(groupCells.concat([
          el("td", "node " + r.node),
          el("td", role, r.up ? (r.role === "leader" ? "up" : "") : "down"),
          num(r.role ? r.commit : null),
          num(r.role ? r.applied : null),
          el("td", r.lag === null ? "–" : r.lag, r.lag > 0 ? "num warn" : "num"),
          num(r.records),
          el("td", r.digest || "", "mono"),
          el("td", note, "muted"),
        ]), {
          class: first ? "replica group-start" : "replica",
          "data-group": g.group,
          "data-node": r.node,
          "data-up": r.up,
        }));
      });
    }
    replaceBody("groups", rows);
    document.getElementById("groups-led").textContent = groups.filter((g) => g.leader !== null).length;
    document.getElementById("groups-total").textContent = groups.length;
  }

  function renderCollections(c) {
    replaceBody("collections", c.items.map((x) =>
      row([
        el("td", x.name),
        el("td", x.tenant + " / " + x.database, "muted"),
        el("td", x.id, "mono"),
        el("td", x.records === null ? "?" : x.records, "num records"),
        el("td", x.error || "", "warn"),
      ], { class: "collection", "data-name": x.name, "data-records": x.records === null ? "" : x.records })));
    document.getElementById("collections-total").textContent =
      c.items.length + (c.truncated ? "+" : "");
    const note = c.error ? "catalogue unavailable: " + c.error
      : c.truncated ? "only the first " + c.items.length + " collections (by id) are listed" : "";
    document.getElementById("collections-note").textContent = note;
  }

  // Requests/s (bars, left scale) and p99 latency (line, right scale), oldest left.
  function renderChart(t) {
    const canvas = document.getElementById("chart");
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height;
    const pad = { l: 40, r: 48, t: 8, b: 20 };
    const w = W - pad.l - pad.r, h = H - pad.t - pad.b;
    const rps = t.requests_per_s, p99 = t.p99_ms, n = rps.length;
    const maxR = niceMax(Math.max(1, ...rps));
    const maxP = niceMax(Math.max(1, ...p99.filter((v) => v !== null)));
    ctx.clearRect(0, 0, W, H);
    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = "#e4e7ec";
    ctx.fillStyle = "#5b6475";
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + h - (h * i) / 4;
      ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(pad.l + w, y); ctx.stroke();
      ctx.textAlign = "right"; ctx.fillText(fmt((maxR * i) / 4), pad.l - 4, y + 4);
      ctx.textAlign = "left"; ctx.fillText(fmt((maxP * i) / 4), pad.l + w + 4, y + 4);
    }
    ctx.textAlign = "center";
    for (let m = 0; m <= n / 60; m++) {
      const x = pad.l + w - (m * 60 * w) / n;
      ctx.fillText(m === 0 ? "now" : "-" + m + "m", x, H - 4);
    }
    const bw = w / n;
    ctx.fillStyle = "#2e6fdb";
    rps.forEach((v, i) => {
      if (v > 0) {
        const bh = (v / maxR) * h;
        ctx.fillRect(pad.l + i * bw, pad.t + h - bh, Math.max(1, bw - 0.3), bh);
      }
    });
    ctx.strokeStyle = "#d9480f";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let drawing = false;
    p99.forEach((v, i) => {
      if (v === null) { drawing = false; return; }
      const x = pad.l + (i + 0.5) * bw, y = pad.t + h - (v / maxP) * h;
      if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      drawing = true;
    });
    ctx.stroke();
    ctx.lineWidth = 1;
    // The legend sums up the last RECENT seconds: one second alone is mostly noise.
    const recent = rps.slice(-RECENT), recentP99 = p99.slice(-RECENT).filter((v) => v !== null);
    document.getElementById("rps-now").textContent = fmt(recent.reduce((a, b) => a + b, 0) / RECENT);
    document.getElementById("p99-now").textContent = recentP99.length ? fmt(Math.max(...recentP99)) : "–";
  }

  function niceMax(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function fmt(v) {
    return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1).replace(/\.0$/, "") : v.toFixed(2).replace(/\.?0+$/, "");
  }

  let updates = 0;
  async function poll() {
    const status = document.getElementById("status");
    try {
      const response = await fetch(STATE_URL, { cache: "no-store", credentials: "same-origin" });
      if (!response.ok) throw new Error("the router answered " + response.status);
      const s = await response.json();
      renderNodes(s.nodes);
      renderGroups(s.groups);
      renderCollections(s.collections);
      renderChart(s.traffic);
      updates += 1;
      document.body.setAttribute("data-updates", String(updates));
      status.className = "";
      status.textContent = "updated " + new Date(s.generated_unix_ms).toLocaleTimeString() +
        " · every " + POLL_MS / 1000 + " s";
    } catch (e) {
      status.className = "stale";
      status.textContent = "cannot refresh: " + e.message + " (showing the last state)";
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }
  poll();
})();

// streamproc console: renders what /console/api/ returns, and nothing else. No library, no
// network beyond this server (the Content-Security-Policy enforces it). Text goes in with
// textContent only: DLQ payloads and headers are untrusted data.
"use strict";
(function () {
  const API = "api/";
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const state = { skip: 0, next: null, limit: 20, dry: null, overviewTimer: null };

  function el(tag, attrs, text) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function set(id, value) { $(id).textContent = value === null || value === undefined ? "-" : String(value); }
  function fmt(n) { return typeof n === "number" ? n.toLocaleString("en-US") : (n === null || n === undefined ? "-" : String(n)); }
  function time(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC") : "-"; }
  function facts(dl, rows) {
    clear(dl);
    for (const [name, value] of rows) { dl.appendChild(el("dt", {}, name)); dl.appendChild(el("dd", {}, value === null || value === undefined ? "-" : value)); }
  }
  async function call(path, options) {
    const response = await fetch(API + path, Object.assign({ cache: "no-store" }, options || {}));
    let body = null;
    try { body = await response.json(); } catch (e) { body = { error: "the server sent no JSON (" + response.status + ")" }; }
    return { status: response.status, ok: response.ok, body: body };
  }

  // --- overview -------------------------------------------------------------------------
  async function loadOverview() {
    const r = await call("overview");
    if (!r.ok) { banner(r.body.error || "overview unavailable"); return; }
    banner(null);
    renderOverview(r.body);
  }
  function banner(text) { const b = $("banner"); b.hidden = !text; b.textContent = text || ""; }

  function renderOverview(o) {
    set("meta-group", o.group_id); set("meta-mode", o.mode); set("meta-version", o.version); set("meta-updated", time(o.generated_at));
    if (!o.restored) banner("the state topic is still being restored: the numbers below are not the group's yet");
    set("replay-raw", o.topics.raw); set("replay-parked", o.topics.parked);
    // Breaker
    const b = o.breaker;
    const st = $("breaker-state"); st.textContent = b.state; st.className = "big state-" + b.state;
    set("breaker-failures", fmt(b.failures_in_window)); set("breaker-reopens", b.reopens_at ? time(b.reopens_at) : "-");
    set("breaker-transition-count", b.transitions_today.length);
    const tbody = clear($("breaker-transitions"));
    for (const t of b.transitions_today.slice().reverse()) {
      const tr = el("tr");
      tr.appendChild(el("td", {}, time(t.at))); tr.appendChild(el("td", {}, t.from || "-"));
      tr.appendChild(el("td", { class: "state-" + t.to }, t.to)); tr.appendChild(el("td", {}, t.owner || "-"));
      tbody.appendChild(tr);
    }
    drawStrip(b, o.budget.burn, o.generated_at);
    // Budget
    const g = o.budget;
    set("budget-spent", fmt(g.spent)); set("budget-reserved", fmt(g.reserved));
    set("budget-remaining", fmt(g.remaining)); set("budget-limit", fmt(g.limit));
    set("budget-day", g.day ? g.day + " (" + g.timezone + ")" : "");
    set("budget-resets", time(g.resets_at)); set("budget-exhausted", g.exhausted ? "yes" : "no");
    set("spending-state", g.paused ? "paused" : "on");
    const ctl = g.control;
    set("spending-last", ctl ? "last change: " + ctl.action.replace("_", " ") + " by " + ctl.by + " at " +
      time(new Date(ctl.at * 1000).toISOString()) + ": " + ctl.why + (ctl.limit !== null ? " (limit " + ctl.limit + " for " + ctl.day + ")" : "") : "");
    drawBurn(g, o.generated_at);
    // Throughput
    const t = o.throughput;
    set("throughput-rate", t.known ? t.committed_per_s.toFixed(2) : "-");
    set("throughput-note", t.known ? "committed by the group over the last " + t.window_s + " s (" + t.source + ")"
      : "measured from two samples of " + t.source + ", a few seconds apart: wait for the next update");
    if (t.this_process) {
      facts($("throughput-process"), [["this process: committed", fmt(t.this_process.committed)],
        ["enriched", fmt(t.this_process.enriched)], ["to the DLQ", fmt(t.this_process.dlq)],
        ["in flight", fmt(t.this_process.in_flight)], ["credits charged", fmt(t.this_process.credits)]]);
    } else clear($("throughput-process"));
    // Lag
    const l = o.lag;
    set("lag-topic", l.topic || "");
    const rows = clear($("lag-rows"));
    if (l.known) {
      set("lag-total", fmt(l.total)); set("lag-note", "");
      const most = Math.max(1, ...l.partitions.map((p) => p.lag));
      for (const p of l.partitions) {
        const tr = el("tr", { id: "lag-p" + p.partition });
        tr.appendChild(el("td", {}, p.partition));
        tr.appendChild(el("td", {}, p.committed === null ? "none" : fmt(p.committed)));
        tr.appendChild(el("td", {}, fmt(p.end)));
        tr.appendChild(el("td", { class: "lag" }, fmt(p.lag)));
        const bar = el("td"), fill = el("span", { class: "bar" });
        fill.style.width = Math.round(80 * p.lag / most) + "px";  // CSSOM, not a style attribute: the CSP allows it
        bar.appendChild(fill);
        tr.appendChild(bar); rows.appendChild(tr);
      }
    } else { set("lag-total", "-"); set("lag-note", "not known: " + l.why); }
    // Health
    const h = o.health, hs = $("health-status");
    if (h.known) {
      hs.textContent = h.status; hs.className = "big health-" + h.status;
      facts($("health-facts"), [["success rate", h.success_rate === null ? "-" : (100 * h.success_rate).toFixed(1) + " %"],
        ["ready", h.ready ? "yes" : "no: " + h.reasons.join(", ")], ["leads held", fmt(h.holding)]]);
    } else { hs.textContent = "not known here"; hs.className = "big unknown"; facts($("health-facts"), [["why", h.why]]); }
    // Clay
    const c = o.clay, cr = $("clay-remaining");
    if (c.known) {
      cr.textContent = fmt(c.remaining_rows) + " rows left"; cr.className = "big" + (c.capacity_low ? " state-open" : "");
      facts($("clay-facts"), [["current webhook", c.current_webhook], ["capacity low", c.capacity_low ? "yes" : "no"], ["pending leads", fmt(c.pending)]]);
    } else { cr.textContent = "not known here"; cr.className = "big unknown"; facts($("clay-facts"), [["why", c.why]]); }
    // Waterfall providers (none: no waterfall, the card stays hidden)
    const w = o.waterfall, prows = clear($("providers-rows"));
    $("card-providers").hidden = !(w && w.providers.length);
    if (w && w.providers.length) {
      set("providers-day", w.day + " (UTC)"); set("providers-window", "last " + w.window_days + " days");
      const pct = (r) => r === null ? "-" : (100 * r).toFixed(1) + " %";
      const per = (c) => c === null ? "-" : c.toFixed(2);
      for (const p of w.providers) {
        const d = p.today, tr = el("tr", { id: "provider-" + p.provider });
        for (const v of [p.provider, fmt(d.calls), fmt(d.hits), fmt(d.credits), pct(d.fill_rate), per(d.credits_per_found),
          pct(p.window.fill_rate) + ", " + per(p.window.credits_per_found)]) tr.appendChild(el("td", {}, v));
        prows.appendChild(tr);
      }
    }
    // The DLQ form's class list.
    const list = $("error-classes");
    if (!list.childElementCount) for (const name of o.error_classes || []) list.appendChild(el("option", { value: name }));
  }

  // The budget's burn: spent (and spent + reserved) across the budget day, against the limit.
  function drawBurn(g, nowIso) {
    const svg = clear($("burn-chart")), burn = g.burn;
    if (!burn.known) { $("burn-note").textContent = burn.why; return; }
    const W = 640, H = 220, L = 48, R = 12, T = 12, B = 26;
    const x0 = burn.day_start_s, x1 = burn.day_end_s, now = Date.parse(nowIso) / 1000;
    const pts = burn.points;
    const top = Math.max(burn.limit || 0, ...pts.map((p) => p[1] + p[2]), 1) * 1.08;
    const X = (t) => L + (W - L - R) * Math.min(Math.max((t - x0) / (x1 - x0), 0), 1);
    const Y = (v) => T + (H - T - B) * (1 - v / top);
    svg.appendChild(el("svg:rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "#fbfcfd", stroke: "#dde1e7" }));
    for (let h = 0; h <= 24; h += 6) {
      const x = X(x0 + (x1 - x0) * h / 24);
      svg.appendChild(el("svg:line", { x1: x, x2: x, y1: T, y2: H - B, stroke: "#eef0f3" }));
      svg.appendChild(el("svg:text", { x: x, y: H - 8, "text-anchor": h === 24 ? "end" : h === 0 ? "start" : "middle", "font-size": 11, fill: "#6b7482" }, String(h).padStart(2, "0") + ":00"));
    }
    for (const v of [0, top / 2 / 1.08, top / 1.08]) {
      svg.appendChild(el("svg:text", { x: L - 6, y: Y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7482" }, fmt(Math.round(v))));
    }
    if (burn.limit !== null && burn.limit !== undefined) {
      svg.appendChild(el("svg:line", { id: "burn-limit", x1: L, x2: W - R, y1: Y(burn.limit), y2: Y(burn.limit), stroke: "#c53030", "stroke-dasharray": "6 4", "stroke-width": 1.5 }));
      svg.appendChild(el("svg:text", { x: W - R - 4, y: Y(burn.limit) - 5, "text-anchor": "end", "font-size": 11, fill: "#c53030" }, "limit " + fmt(burn.limit)));
    }
    if (pts.length) {
      // Before the first sample nothing was observed; the day started at 0 spent.
      svg.appendChild(el("svg:line", { x1: X(x0), y1: Y(0), x2: X(pts[0][0]), y2: Y(pts[0][1]), stroke: "#2b6cb0", "stroke-dasharray": "3 4", "stroke-width": 1.5 }));
      const line = (f) => pts.map((p) => X(p[0]).toFixed(1) + "," + Y(f(p)).toFixed(1)).concat([X(now).toFixed(1) + "," + Y(f(pts[pts.length - 1])).toFixed(1)]).join(" ");
      svg.appendChild(el("svg:polyline", { points: line((p) => p[1] + p[2]), fill: "none", stroke: "#90b4dc", "stroke-width": 1.5 }));
      svg.appendChild(el("svg:polyline", { id: "burn-spent", points: line((p) => p[1]), fill: "none", stroke: "#2b6cb0", "stroke-width": 2.5 }));
    }
    svg.appendChild(el("svg:line", { x1: X(now), x2: X(now), y1: T, y2: H - B, stroke: "#1d2430", "stroke-dasharray": "2 3" }));
    // Today's pace carried on to the day's end (or to the limit, if it comes first).
    let pace = "";
    if (pts.length && now > x0) {
      const spent = pts[pts.length - 1][1], perS = spent / (now - x0);
      const limit = burn.limit;
      let endT = x1, endV = spent + perS * (x1 - now);
      if (limit && perS > 0 && endV > limit) { endT = now + (limit - spent) / perS; endV = limit; }
      svg.appendChild(el("svg:line", { id: "burn-pace", x1: X(now), y1: Y(spent), x2: X(endT), y2: Y(Math.min(endV, top)), stroke: "#b7791f", "stroke-dasharray": "5 4", "stroke-width": 1.5 }));
      pace = limit && endV >= limit && endT < x1
        ? "At today's pace the limit is reached at about " + new Date(endT * 1000).toISOString().slice(11, 16) + " UTC."
        : "At today's pace: about " + fmt(Math.round(endV)) + " credits by the day's end.";
    }
    const legend = [["spent", "#2b6cb0"], ["spent + reserved", "#90b4dc"], ["today's pace", "#b7791f"]];
    let lx = W - R - 250;
    for (const [name, colour] of legend) {
      svg.appendChild(el("svg:text", { x: lx, y: H - B - 8, "font-size": 11, fill: colour }, name));
      lx += name.length * 6 + 16;
    }
    $("burn-note").textContent = pts.length
      ? pace + " Observed since " + time(burn.observed_since) + "; dashed blue: from the day's start to the first observation (the state topic keeps totals, not when they were reached)."
      : "no sample yet";
  }

  // The breaker's state across today, from the transitions the state topic holds.
  function drawStrip(b, burn, nowIso) {
    const svg = clear($("breaker-strip"));
    if (!burn.known) return;
    const x0 = burn.day_start_s, x1 = burn.day_end_s, now = Date.parse(nowIso) / 1000;
    const X = (t) => 600 * Math.min(Math.max((t - x0) / (x1 - x0), 0), 1);
    const colour = { closed: "#1f8a4c", half_open: "#b7791f", open: "#c53030" };
    const ts = b.transitions_today;
    let from = x0, current = ts.length ? (ts[0].from || "closed") : b.state;
    const segments = [];
    for (const t of ts) { const at = Date.parse(t.at) / 1000; segments.push([from, at, current]); from = at; current = t.to; }
    segments.push([from, now, current]);
    for (const [a, z, s] of segments) {
      svg.appendChild(el("svg:rect", { x: X(a), y: 4, width: Math.max(X(z) - X(a), 1), height: 20, fill: colour[s] || "#999" }));
    }
    svg.appendChild(el("svg:rect", { x: X(now), y: 4, width: 600 - X(now), height: 20, fill: "#eef0f3" }));
  }

  // --- DLQ ------------------------------------------------------------------------------
  // Records hold leads: the server shows them to the holder of the read (or operator) token,
  // sent in a header (never a URL) and kept in this page's memory only.
  function readHeaders() {
    const token = $("dlq-token").value || $("replay-token").value;
    return token ? { Authorization: "Bearer " + token } : {};
  }
  function filters() {
    const form = $("dlq-filters"), out = {};
    for (const name of ["error_class", "key", "since", "until", "retriable", "attempt"]) {
      const v = form.elements[name].value.trim();
      if (v) out[name] = v;
    }
    return out;
  }
  function query(extra) {
    const q = new URLSearchParams(Object.assign({}, filters(), extra));
    return q.toString();
  }
  async function loadDlq() {
    const form = $("dlq-filters");
    state.limit = Number(form.elements.limit.value);
    const r = await call("dlq?" + query({ skip: state.skip, limit: state.limit, all: form.elements.all.value, max_attempts: $("replay-max-attempts").value || "3" }), { headers: readHeaders() });
    const err = $("dlq-error");
    if (!r.ok) {
      err.hidden = false; err.textContent = (r.status === 401 || r.status === 403 ? "refused (" + r.status + "): " : "") + r.body.error;
      clear($("dlq-rows")); set("dlq-matching", null); return;
    }
    err.hidden = true;
    const page = r.body;
    set("dlq-matching", page.matching);
    set("dlq-summary", (page.matching === 1 ? "record matches" : "records match") + " in " + page.topic + " (" +
      (page.scope === "pending" ? "pending for the replayer" : "all retained") + "; filters: " + page.filters + ")");
    set("dlq-range", page.records.length ? (page.skip + 1) + "–" + (page.skip + page.records.length) : "");
    state.next = page.next_skip;
    $("dlq-prev").disabled = page.skip === 0; $("dlq-next").disabled = page.next_skip === null;
    const rows = clear($("dlq-rows"));
    for (const rec of page.records) {
      const tr = el("tr", { "data-partition": rec.partition, "data-offset": rec.offset });
      const message = (rec.exception_class ? rec.exception_class + ": " : "") + (rec.message || "(no message)");
      for (const cell of [rec.partition + ":" + rec.offset, time(rec.failed_at), rec.error_class, rec.attempt,
        rec.retriable === null ? "unknown" : String(rec.retriable), rec.key === null ? "-" : rec.key, message]) tr.appendChild(el("td", {}, cell));
      tr.addEventListener("click", () => showRecord(rec.partition, rec.offset, tr));
      rows.appendChild(tr);
    }
  }
  async function showRecord(partition, offset, row) {
    for (const tr of document.querySelectorAll("#dlq-rows tr.selected")) tr.classList.remove("selected");
    if (row) row.classList.add("selected");
    const r = await call("dlq/record?partition=" + partition + "&offset=" + offset + "&max_attempts=" + encodeURIComponent($("replay-max-attempts").value || "3"), { headers: readHeaders() });
    const panel = $("dlq-detail"); panel.hidden = false;
    if (!r.ok) { set("detail-title", ""); facts($("detail-facts"), [["error", r.body.error]]); return; }
    const d = r.body, o = d.origin;
    set("detail-title", d.topic + " " + d.partition + ":" + d.offset);
    facts($("detail-facts"), [
      ["key", d.key === null ? "(none)" : d.key], ["written by", d.source],
      ["error", d.error_class + (d.exception_class ? ": " + d.exception_class : "") + ": " + (d.message || "(no message)")],
      ["retriable", d.retriable === null ? "unknown" : String(d.retriable)], ["attempt", d.attempt],
      ["failed at", time(d.failed_at) + (d.first_failed_at && d.first_failed_at !== d.failed_at ? " (first " + time(d.first_failed_at) + ")" : "")],
      ["origin", o ? o.topic + " " + o.partition + ":" + o.offset + (o.timestamp ? " at " + time(o.timestamp) : "") : "unknown"],
      ["replay would (max " + d.replay_would.max_attempts + ")", d.replay_would.action + (d.replay_would.reason ? ": " + d.replay_would.reason : "")],
    ]);
    set("detail-header-count", d.headers.length);
    const hb = clear($("detail-headers"));
    for (const h of d.headers) { const tr = el("tr"); tr.appendChild(el("td", {}, h.name)); tr.appendChild(el("td", {}, h.value)); hb.appendChild(tr); }
    const p = d.payload;
    let title = "Payload (" + p.encoding + ", " + p.bytes + " bytes)";
    if (p.truncated) title += ": TRUNCATED to fit the DLQ; the whole " + (p.original_bytes ? p.original_bytes + " bytes" : "original") + " is at its origin";
    set("detail-payload-title", title);
    $("detail-payload").textContent = p.encoding === "json" ? JSON.stringify(p.value, null, 2) : (p.value === null ? "(no value: a tombstone)" : p.value);
  }

  // --- replay ---------------------------------------------------------------------------
  function replayBody(dryRun) {
    return { filters: filters(), max_attempts: $("replay-max-attempts").value || "3", limit: $("replay-limit").value || null, dry_run: dryRun };
  }
  function replayMessage(kind, text) {
    const err = $("replay-error"), done = $("replay-done");
    err.hidden = kind !== "error"; done.hidden = kind !== "done";
    (kind === "error" ? err : done).textContent = text || "";
  }
  async function dryRun() {
    replayMessage(null); $("replay-dry").disabled = true;
    try {
      const body = replayBody(true);
      const r = await call("replay", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      if (!r.ok) { replayMessage("error", r.body.error); $("dry-result").hidden = true; return; }
      const rep = r.body;
      state.dry = JSON.stringify(body.filters) + "|" + body.max_attempts + "|" + body.limit;
      $("dry-result").hidden = false;
      set("dry-replay", rep.replayed); set("dry-park", rep.parked); set("dry-skip", rep.skipped); set("dry-read", rep.read);
      const rows = clear($("dry-rows"));
      for (const [cls, n] of Object.entries(rep.by_error_class)) {
        const tr = el("tr"); for (const cell of [cls, n.replay, n.park, n.skip]) tr.appendChild(el("td", {}, cell)); rows.appendChild(tr);
      }
      set("dry-notes", [rep.refusal ? "a real run would refuse to start now: " + rep.refusal : "", rep.budget_warning || ""].filter(Boolean).join(" · "));
      $("replay-confirm").disabled = false;
    } finally { $("replay-dry").disabled = false; }
  }
  async function confirmReplay() {
    const body = replayBody(false);
    if (state.dry !== JSON.stringify(body.filters) + "|" + body.max_attempts + "|" + body.limit) {
      replayMessage("error", "the filters changed since the dry run: run the dry run again first"); return;
    }
    const headers = { "Content-Type": "application/json" };
    const token = $("replay-token").value;
    if (token) headers.Authorization = "Bearer " + token;  // a header: never in a URL
    $("replay-confirm").disabled = true;
    const r = await call("replay", { method: "POST", headers: headers, body: JSON.stringify(body) });
    if (!r.ok) {
      replayMessage("error", "refused (" + r.status + "): " + r.body.error);
      $("replay-confirm").disabled = false; return;
    }
    const rep = r.body;
    state.dry = null;
    replayMessage("done", "replayed " + rep.replayed + " to " + $("replay-raw").textContent + ", parked " + rep.parked +
      ", put back " + rep.skipped + " (" + rep.transactions + " transactions, stopped: " + rep.stop_reason + ")");
    state.skip = 0; loadDlq();
  }

  // --- spending levers (operator token) ----------------------------------------------------
  async function changeSpending(action) {
    const body = { action: action, reason: $("spending-reason").value };
    if (action === "set_limit") body.limit = parseInt($("spending-limit").value, 10);
    const headers = { "Content-Type": "application/json" };
    const token = $("spending-token").value;
    if (token) headers.Authorization = "Bearer " + token;  // a header: never in a URL
    const r = await call("spending", { method: "POST", headers: headers, body: JSON.stringify(body) });
    const m = $("spending-message");
    m.hidden = false;
    m.textContent = r.ok ? "done: " + (r.body.paused ? "paused" : "spending") + ", limit " + r.body.limit
      : "refused (" + r.status + "): " + r.body.error;
    if (r.ok) loadOverview();
  }

  // --- navigation -----------------------------------------------------------------------
  function route() {
    const view = location.hash === "#dlq" ? "dlq" : "overview";
    for (const name of ["overview", "dlq"]) {
      $("view-" + name).hidden = name !== view;
      $("tab-" + name).classList.toggle("active", name === view);
    }
    clearInterval(state.overviewTimer);
    loadOverview();
    if (view === "overview") state.overviewTimer = setInterval(loadOverview, 5000);
    else loadDlq();
  }
  document.addEventListener("DOMContentLoaded", () => {
    $("dlq-filters").addEventListener("submit", (e) => { e.preventDefault(); state.skip = 0; loadDlq(); });
    $("dlq-prev").addEventListener("click", () => { state.skip = Math.max(0, state.skip - state.limit); loadDlq(); });
    $("dlq-next").addEventListener("click", () => { if (state.next !== null) { state.skip = state.next; loadDlq(); } });
    $("replay-dry").addEventListener("click", dryRun);
    $("replay-confirm").addEventListener("click", confirmReplay);
    $("spending-pause").addEventListener("click", () => changeSpending("pause"));
    $("spending-resume").addEventListener("click", () => changeSpending("resume"));
    $("spending-set-limit").addEventListener("click", () => changeSpending("set_limit"));
    window.addEventListener("hashchange", route);
    route();
  });
})();

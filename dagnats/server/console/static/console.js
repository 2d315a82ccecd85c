// The dagnats console: one small script, no framework, no build step, nothing remote.
// Pages are rendered from /console/api JSON; live updates come over SSE (read with fetch so
// the bearer token can be sent); the DAG is drawn as SVG. Data is only ever set as text.
"use strict";

const API = "/console/api";
const TERMINAL = new Set(["completed", "failed", "cancelled", "compensated"]);
const MAX_TIMELINE = 500;
const MAX_OUTPUT_CHARS = 64 * 1024;
let page = null; // {stop(): void} of the page on screen
let token = sessionStorage.getItem("dagnats-token") || "";

// --- DOM helpers -------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const main = () => document.getElementById("main");
const badge = (status) => h("span", { class: `badge s-${status}`, "data-status": status }, status);
const time = (t) => (t ? new Date(t).toLocaleString() : "–");
const json = (v) => (v === undefined ? "" : JSON.stringify(v, null, 2));

function flash(message, ok) {
  const el = document.getElementById("flash");
  el.className = ok ? "ok" : "";
  el.textContent = message || "";
  if (message && ok) setTimeout(() => { if (el.textContent === message) el.textContent = ""; }, 3000);
}

function setLive(on) {
  const el = document.getElementById("live");
  el.className = `live ${on ? "on" : "off"}`;
}

// --- API and live streams ----------------------------------------------------------------

function askToken() {
  const form = document.getElementById("token-form");
  form.hidden = false;
  return new Promise((resolve) => {
    form.onsubmit = (e) => {
      e.preventDefault();
      token = document.getElementById("token-input").value.trim();
      sessionStorage.setItem("dagnats-token", token);
      form.hidden = true;
      resolve();
    };
  });
}

async function api(path, options = {}) {
  for (;;) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(API + path, {
      method: options.method || "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
    });
    if (resp.status === 401) { await askToken(); continue; }
    const body = await resp.json().catch(() => null);
    if (!resp.ok) {
      const err = body && body.error ? body.error : { kind: "HTTPError", message: resp.statusText };
      throw new Error(`${err.kind}: ${err.message}`);
    }
    return body;
  }
}

// Reads text/event-stream from `path` and calls handlers[event](data); reconnects after a
// second when the stream ends, until the returned stopper is called.
function live(path, handlers) {
  const ctrl = new AbortController();
  let stopped = false;
  async function once() {
    const headers = { Accept: "text/event-stream" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const resp = await fetch(API + path, { headers, signal: ctrl.signal });
    if (resp.status === 401) { await askToken(); return; }
    if (!resp.ok || !resp.body) throw new Error(`live updates: HTTP ${resp.status}`);
    setLive(true);
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let kind = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) kind = line.slice(7);
          else if (line.startsWith("data: ")) data.push(line.slice(6));
        }
        if (data.length && handlers[kind]) handlers[kind](JSON.parse(data.join("\n")));
      }
    }
  }
  (async () => {
    while (!stopped) {
      try { await once(); } catch (e) { if (!stopped) console.warn(e); }
      setLive(false);
      if (!stopped) await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  return () => { stopped = true; ctrl.abort(); setLive(false); };
}

// --- the DAG -----------------------------------------------------------------------------

const NODE_W = 170, NODE_H = 46, GAP_X = 60, GAP_Y = 18, PAD = 16;

function drawDag(graph, steps, onPick) {
  const handlers = new Set();
  for (const n of graph) { if (n.on_failure) handlers.add(n.on_failure); if (n.compensate) handlers.add(n.compensate); }
  const columns = [];
  for (const n of graph) {
    const col = handlers.has(n.id) ? Math.max(0, ...graph.map((m) => m.layer)) + 1 : n.layer;
    (columns[col] = columns[col] || []).push(n);
  }
  const pos = {};
  columns.forEach((nodes, col) => nodes.forEach((n, row) => {
    pos[n.id] = { x: PAD + col * (NODE_W + GAP_X), y: PAD + row * (NODE_H + GAP_Y) };
  }));
  const width = PAD * 2 + columns.length * (NODE_W + GAP_X) - GAP_X;
  const height = PAD * 2 + Math.max(...columns.map((c) => (c ? c.length : 0))) * (NODE_H + GAP_Y) - GAP_Y;
  const root = svg("svg", { class: "dag", width, height, viewBox: `0 0 ${width} ${height}`, id: "dag" });
  const edge = (from, to, cls) => {
    const a = pos[from], b = pos[to];
    if (!a || !b) return;
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2, mx = (x1 + x2) / 2;
    root.append(svg("path", { class: `edge ${cls}`, d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
  };
  for (const n of graph) {
    for (const d of n.depends_on) edge(d, n.id, "");
    if (n.on_failure) edge(n.id, n.on_failure, "handler");
    if (n.compensate) edge(n.id, n.compensate, "handler");
  }
  for (const n of graph) {
    const st = (steps && steps[n.id]) || null;
    const status = st ? st.status : (steps ? "pending" : "pending");
    const kind = n.type === "normal" ? (n.task && n.task !== n.id ? n.task : "") : n.type;
    let sub = steps ? status : kind || "step";
    if (st && st.attempts > 1) sub += ` · attempt ${st.attempts}`;
    if (st && st.waiting && !TERMINAL.has(status)) sub += ` · ${st.waiting}`;
    if (st && st.items) sub += ` · ${st.items_done}/${st.items.length}`;
    const { x, y } = pos[n.id];
    const g = svg("g", { class: "node", "data-step": n.id, "data-status": status, transform: `translate(${x},${y})` },
      svg("rect", { class: `s-${status}`, width: NODE_W, height: NODE_H }),
      svg("text", { x: 10, y: 19 }, n.id.length > 22 ? n.id.slice(0, 21) + "…" : n.id),
      svg("text", { class: "sub", x: 10, y: 36 }, sub),
      svg("title", {}, `${n.id} (${n.type}${n.task ? `: ${n.task}` : ""})`));
    if (onPick) g.addEventListener("click", () => onPick(n.id));
    root.append(g);
  }
  return root;
}

// --- pages -------------------------------------------------------------------------------

async function runsPage(params) {
  const q = new URLSearchParams(params);
  const [flows] = await Promise.all([api("/workflows")]);
  const status = q.get("status") || "", workflow = q.get("workflow") || "", since = q.get("since") || "";
  const sinceDate = since ? new Date(Date.now() - Number(since) * 1000) : null;
  const query = new URLSearchParams({ limit: "200" });
  if (status) query.set("status", status);
  if (workflow) query.set("workflow", workflow);
  if (sinceDate) query.set("since", sinceDate.toISOString());
  const rows = await api(`/runs?${query}`);
  const tbody = h("tbody");
  const rowOf = (r) => h("tr", { "data-run-id": r.run_id, "data-status": r.status },
    h("td", { class: "mono" }, h("a", { href: `#/runs/${r.run_id}` }, r.run_id)),
    h("td", {}, r.workflow), h("td", {}, badge(r.status)),
    h("td", {}, time(r.created_at)), h("td", {}, time(r.finished_at)));
  rows.forEach((r) => tbody.append(rowOf(r)));
  const change = (e) => {
    const f = new FormData(e.target.form);
    const next = new URLSearchParams();
    for (const [k, v] of f.entries()) if (v) next.set(k, v);
    location.hash = `#/runs?${next}`;
  };
  const select = (name, options, value) => h("select", { name, onchange: change },
    options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
  main().replaceChildren(
    h("h1", {}, "Runs"),
    h("form", { class: "filters", id: "run-filters" },
      select("workflow", [["", "every workflow"], ...flows.map((w) => [w.name, w.name])], workflow),
      select("status", [["", "every status"], ...["scheduled", "pending", "running", "completed", "failed", "cancelled", "compensated"].map((s) => [s, s])], status),
      select("since", [["", "any time"], ["3600", "last hour"], ["86400", "last 24 hours"], ["604800", "last 7 days"]], since)),
    h("table", { id: "runs-table" },
      h("thead", {}, h("tr", {}, ["Run", "Workflow", "Status", "Created", "Finished"].map((t) => h("th", {}, t)))),
      tbody),
    rows.length ? null : h("p", { class: "muted", id: "no-runs" }, "No runs match."));
  const stop = live("/live/runs", {
    run(r) {
      if ((workflow && r.workflow !== workflow) || (status && r.status !== status)) return;
      if (sinceDate && r.created_at && new Date(r.created_at) < sinceDate) return;
      const old = tbody.querySelector(`tr[data-run-id="${CSS.escape(r.run_id)}"]`);
      const row = rowOf(r);
      if (old) old.replaceWith(row);
      else { row.classList.add("fresh"); tbody.prepend(row); document.getElementById("no-runs")?.remove(); }
    },
  });
  return { stop };
}

function stepDetails(id, st, logs) {
  const parts = [h("summary", {}, badge(st.status), " ", h("b", {}, id),
    st.attempts ? ` · ${st.attempts} attempt${st.attempts > 1 ? "s" : ""}` : "",
    st.waiting && !TERMINAL.has(st.status) ? ` · waiting: ${st.waiting}` : "")];
  if (st.input !== null && st.input !== undefined) parts.push(h("div", { class: "muted" }, "input"), h("pre", {}, json(st.input)));
  if (st.output !== null && st.output !== undefined) parts.push(h("div", { class: "muted" }, "output"), h("pre", { class: "step-output" }, json(st.output)));
  if (st.error) parts.push(h("div", { class: "muted" }, "error"), h("pre", { class: "step-error" }, `${st.error.type}: ${st.error.message}`));
  for (const [key, log] of Object.entries(logs || {})) {
    if (key !== id && !(key.startsWith(`${id}.`) && /^\d+$/.test(key.slice(id.length + 1)))) continue;
    const lines = log.lines.map((l) => `${l.ts.slice(11, 23)} ${l.level.padEnd(7)} #${l.attempt} ${l.message}`);
    if (log.dropped) lines.unshift(`… ${log.dropped} older lines dropped`);
    parts.push(h("div", { class: "muted" }, `log ${key}`), h("pre", { class: "step-log" }, lines.join("\n")));
  }
  return h("details", { "data-step": id, id: `step-${id}` }, parts);
}

async function runPage(runId) {
  const header = h("div"), warn = h("div"), approvals = h("div"), dag = h("div", { class: "panel" });
  const stepsBox = h("div"), output = h("pre", { class: "output", id: "stream-output" });
  const tbody = h("tbody");
  const seen = new Set();
  let open = new Set();
  main().replaceChildren(header, warn, approvals,
    h("div", { class: "grid" },
      h("div", {}, h("h2", {}, "Graph"), dag, h("h2", {}, "Steps"), stepsBox),
      h("div", {}, h("h2", {}, "Streamed output"), output,
        h("h2", {}, "Timeline"), h("div", { class: "timeline" }, h("table", { id: "timeline" },
          h("thead", {}, h("tr", {}, ["#", "Time", "Event", "Step", "Data"].map((t) => h("th", {}, t)))), tbody)))));

  const addEvent = (e) => {
    if (seen.has(e.seq)) return;
    seen.add(e.seq);
    const data = e.data === undefined ? "" : JSON.stringify(e.data);
    tbody.append(h("tr", { "data-type": e.type }, h("td", {}, e.seq), h("td", {}, time(e.ts)), h("td", {}, e.type),
      h("td", {}, e.step_id ? `${e.step_id}${e.attempt ? `#${e.attempt}` : ""}` : ""),
      h("td", { class: "mono" }, data.length > 300 ? data.slice(0, 299) + "…" : data)));
    while (tbody.children.length > MAX_TIMELINE) tbody.firstChild.remove();
  };

  const act = async (label, fn) => {
    try { await fn(); flash(label, true); schedule(); } catch (e) { flash(e.message); }
  };

  const render = (doc) => {
    const st = doc.state;
    open = new Set([...stepsBox.querySelectorAll("details[open]")].map((d) => d.dataset.step));
    // What the user is typing survives a re-render (events keep arriving while they type).
    const typed = new Map([...main().querySelectorAll("input[id]")].map((i) => [i.id, i.value]));
    const focused = document.activeElement && document.activeElement.id;
    const sigName = h("input", { placeholder: "signal name", id: "signal-name", size: 14 });
    const sigData = h("input", { placeholder: "JSON data", id: "signal-data", size: 18 });
    header.replaceChildren(
      h("h1", {}, "Run ", h("span", { class: "mono" }, st.run_id), " ", h("span", { id: "run-status" }, badge(st.status))),
      h("p", { class: "muted" }, h("a", { href: `#/workflows/${st.workflow}` }, st.workflow),
        st.revision ? ` revision ${st.revision}` : "", ` · started ${time(st.created_at)}`,
        st.finished_at ? ` · finished ${time(st.finished_at)}` : "",
        st.error ? ` · ${st.error.message}` : ""),
      h("div", { class: "actions" },
        TERMINAL.has(st.status) ? null : h("button", { id: "cancel", class: "danger", onclick: () => act("Cancel requested", () => api(`/runs/${st.run_id}/cancel`, { method: "POST" })) }, "Cancel"),
        st.status === "failed" ? h("button", { id: "retry", class: "primary", onclick: () => act("Retry requested", () => api(`/runs/${st.run_id}/retry`, { method: "POST" })) }, "Retry") : null,
        TERMINAL.has(st.status) ? null : h("span", {}, sigName, " ", sigData, " ",
          h("button", { id: "signal", onclick: () => act("Signal sent", () => api(`/runs/${st.run_id}/signal`, { method: "POST", body: { name: sigName.value, data: parseJson(sigData.value) } })) }, "Send signal"))));
    warn.replaceChildren(...doc.stuck.map((m) => h("div", { class: "warn stuck" }, m)));
    approvals.replaceChildren(...doc.approvals.map((a) => {
      const input = h("input", { placeholder: "JSON data or reason", id: `decision-${a.step_id}`, size: 30 });
      return h("div", { class: "panel approval", "data-step": a.step_id },
        h("b", {}, `Approval "${a.step_id}" is waiting`), a.message ? ` — ${a.message}` : "",
        h("div", { class: "muted" }, `expires ${time(a.expires_at)} · token `, h("code", {}, a.token)),
        h("div", { class: "actions" }, input,
          h("button", { class: "primary", id: `approve-${a.step_id}`, onclick: () => act("Approved", () => api(`/approvals/${encodeURIComponent(a.token)}/approve`, { method: "POST", body: { data: parseJson(input.value) } })) }, "Approve"),
          h("button", { class: "danger", id: `reject-${a.step_id}`, onclick: () => act("Rejected", () => api(`/approvals/${encodeURIComponent(a.token)}/reject`, { method: "POST", body: { reason: input.value || null } })) }, "Reject")));
    }));
    dag.replaceChildren(drawDag(doc.graph, st.steps, (id) => {
      const d = document.getElementById(`step-${id}`);
      if (d) { d.open = true; d.scrollIntoView({ block: "nearest" }); }
    }));
    stepsBox.replaceChildren(...doc.graph.map((n) => {
      const d = stepDetails(n.id, st.steps[n.id] || { status: "pending", attempts: 0 }, doc.logs);
      if (open.has(n.id)) d.open = true;
      return d;
    }));
    doc.events.forEach(addEvent);
    for (const [id, value] of typed) { const i = document.getElementById(id); if (i) i.value = value; }
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  };

  let timer = null, busy = false, again = false;
  const refresh = async () => {
    if (busy) { again = true; return; }
    busy = true;
    try { render(await api(`/runs/${encodeURIComponent(runId)}`)); } catch (e) { flash(e.message); }
    busy = false;
    if (again) { again = false; schedule(); }
  };
  const schedule = () => { clearTimeout(timer); timer = setTimeout(refresh, 150); };
  await refresh();
  const stop = live(`/live/runs/${encodeURIComponent(runId)}`, {
    event(e) { addEvent(e); schedule(); },
    state() { schedule(); },
    chunk(c) {
      const data = c.chunk && typeof c.chunk === "object" && "data" in c.chunk ? c.chunk.data : c.chunk;
      output.textContent += `[${c.step_id}] ${typeof data === "string" ? data : JSON.stringify(data)}\n`;
      if (output.textContent.length > MAX_OUTPUT_CHARS) output.textContent = output.textContent.slice(-MAX_OUTPUT_CHARS);
      output.scrollTop = output.scrollHeight;
    },
  });
  return { stop: () => { stop(); clearTimeout(timer); } };
}

function parseJson(text) {
  if (!text) return null;
  try { return JSON.parse(text); } catch { return text; }
}

async function workflowsPage() {
  const rows = await api("/workflows");
  main().replaceChildren(h("h1", {}, "Workflows"),
    h("table", { id: "workflows-table" },
      h("thead", {}, h("tr", {}, ["Name", "Version", "Revision", "Steps", "Description"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.map((w) => h("tr", { "data-workflow": w.name },
        h("td", {}, h("a", { href: `#/workflows/${w.name}` }, w.name)), h("td", {}, w.version),
        h("td", {}, w.revision), h("td", {}, w.steps), h("td", {}, w.description || ""))))),
    rows.length ? null : h("p", { class: "muted" }, "No workflows registered."));
}

async function workflowPage(name, params) {
  const revision = new URLSearchParams(params).get("revision");
  const doc = await api(`/workflows/${encodeURIComponent(name)}${revision ? `?revision=${revision}` : ""}`);
  main().replaceChildren(h("h1", {}, "Workflow ", h("span", { class: "mono" }, doc.name)),
    h("form", { class: "filters" }, "Revision ",
      h("select", { id: "revision", onchange: (e) => { location.hash = `#/workflows/${name}?revision=${e.target.value}`; } },
        doc.revisions.map((r) => h("option", { value: r, selected: r === doc.revision }, r))),
      " ", h("a", { href: `#/runs?workflow=${encodeURIComponent(name)}` }, "its runs")),
    h("div", { class: "panel" }, drawDag(doc.graph, null)),
    h("h2", {}, "Definition"), h("pre", { id: "definition" }, json(doc.definition)));
}

async function triggersPage() {
  main().replaceChildren(h("h1", {}, "Triggers"), h("p", { class: "muted" }, "Loading…"));
  let rows;
  try { rows = await api("/triggers"); } catch (e) {
    main().replaceChildren(h("h1", {}, "Triggers"), h("p", { class: "warn", id: "triggers-error" }, `Triggers are not available here: ${e.message}`));
    return;
  }
  main().replaceChildren(h("h1", {}, "Triggers"),
    h("table", { id: "triggers-table" },
      h("thead", {}, h("tr", {}, ["Id", "Workflow", "Kind", "Enabled", "Definition"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.map((t) => h("tr", { "data-trigger": t.id },
        h("td", { class: "mono" }, t.id), h("td", {}, t.workflow_id || t.workflow || ""),
        h("td", {}, ["cron", "subject", "webhook", "http"].find((k) => t[k]) || ""),
        h("td", {}, t.enabled === false ? "no" : "yes"), h("td", {}, h("code", {}, JSON.stringify(t))))))),
    rows.length ? null : h("p", { class: "muted" }, "No triggers."));
}

async function deadLettersPage() {
  const rows = await api("/dead-letters?limit=500");
  main().replaceChildren(h("h1", {}, "Dead letters"),
    h("table", { id: "dlq-table" },
      h("thead", {}, h("tr", {}, ["Seq", "Run", "Step", "Task", "Attempts", "Error", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.map((d) => h("tr", { "data-seq": d.seq },
        h("td", {}, d.seq), h("td", { class: "mono" }, d.run_id ? h("a", { href: `#/runs/${d.run_id}` }, d.run_id) : ""),
        h("td", {}, d.step_id || ""), h("td", {}, d.task || ""), h("td", {}, d.attempts ?? ""),
        h("td", { class: "mono" }, typeof d.error === "string" ? d.error : JSON.stringify(d.error)),
        h("td", {}, h("button", { id: `replay-${d.seq}`, onclick: async () => {
          try { await api(`/dead-letters/${d.seq}/replay`, { method: "POST" }); flash(`Replayed ${d.seq}`, true); route(); } catch (e) { flash(e.message); }
        } }, "Replay")))))),
    rows.length ? null : h("p", { class: "muted" }, "No dead letters."));
}

async function workersPage() {
  const doc = await api("/system");
  main().replaceChildren(h("h1", {}, "Workers"),
    ...doc.unserved_queues.map((m) => h("div", { class: "warn" }, m)),
    h("table", { id: "workers-table" },
      h("thead", {}, h("tr", {}, ["Id", "Name", "Tasks", "Groups", "Host", "Pid", "In flight", "Since"].map((t) => h("th", {}, t)))),
      h("tbody", {}, doc.workers.map((w) => h("tr", { "data-worker": w.id },
        h("td", { class: "mono" }, w.id), h("td", {}, w.name || ""), h("td", {}, (w.tasks || []).join(", ")),
        h("td", {}, (w.groups || []).join(", ") || "–"), h("td", {}, w.host || ""), h("td", {}, w.pid ?? ""),
        h("td", {}, w.inflight ?? ""), h("td", {}, time(w.started_at)))))),
    doc.workers.length ? null : h("p", { class: "muted" }, "No live workers."),
    h("h2", {}, "Queues"),
    h("table", { id: "queues-table" }, h("thead", {}, h("tr", {}, h("th", {}, "Subject"), h("th", {}, "Task messages"))),
      h("tbody", {}, doc.queues.map((q) => h("tr", {}, h("td", { class: "mono" }, q.subject), h("td", {}, q.messages))))),
    h("h2", {}, "Engines"),
    h("table", {}, h("thead", {}, h("tr", {}, ["Engine", "Host", "Pid", "Partitions"].map((t) => h("th", {}, t)))),
      h("tbody", {}, doc.engines.map((e) => h("tr", {}, h("td", { class: "mono" }, e.engine_id), h("td", {}, e.host), h("td", {}, e.pid), h("td", {}, e.partitions.join(", ")))))),
    h("table", {}, h("thead", {}, h("tr", {}, ["Partition", "Held by", "Events pending", "Unacked", "Pulling"].map((t) => h("th", {}, t)))),
      h("tbody", {}, doc.partitions.map((p) => h("tr", {}, h("td", {}, p.partition), h("td", { class: "mono" }, p.holder || "none"), h("td", {}, p.pending), h("td", {}, p.ack_pending), h("td", {}, p.waiting))))),
    h("p", {}, `Dead letters: ${doc.dead_letters}`));
}

// --- routing -----------------------------------------------------------------------------

async function route() {
  if (page && page.stop) page.stop();
  page = null;
  flash("");
  const [path, params] = (location.hash.slice(1) || "/runs").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.dataset.nav === parts[0]));
  try {
    if (parts[0] === "runs" && parts[1]) page = await runPage(parts[1]);
    else if (parts[0] === "workflows" && parts[1]) await workflowPage(parts[1], params);
    else if (parts[0] === "workflows") await workflowsPage();
    else if (parts[0] === "triggers") await triggersPage();
    else if (parts[0] === "dead-letters") await deadLettersPage();
    else if (parts[0] === "workers") await workersPage();
    else page = await runsPage(params || "");
    document.title = `dagnats · ${parts.join(" · ") || "runs"}`;
  } catch (e) {
    main().replaceChildren(h("h1", {}, "Error"), h("p", { class: "warn", id: "page-error" }, e.message));
  }
}

window.addEventListener("hashchange", route);
route();

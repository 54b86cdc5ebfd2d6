// The streamflow dashboard page: draws the topology with Cytoscape.js (dagre layout) and
// applies every frame the server sends over server-sent events. No layout code here: the
// graph library places the nodes; this file only maps figures to colours, labels and panels.
(function () {
  "use strict";

  const COLORS = { ok: "#2e9d4f", warn: "#e0a526", down: "#d64545", unknown: "#9aa3ad" };
  const state = { graph: null, frame: null, frames: 0, selected: null, cy: null };
  window.streamflowDashboard = state; // for the console and the browser test

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function fill(node, ...children) {
    node.replaceChildren();
    node.append(...children.flat().filter((c) => c !== null && c !== undefined));
  }

  const WRAP = 32; // characters per label line before it wraps (see "text-max-width")

  function labelSize(label) {
    const lines = String(label || "").split("\n");
    const rows = lines.reduce((n, l) => n + Math.max(1, Math.ceil(l.length / WRAP)), 0);
    const widest = Math.min(WRAP, Math.max(...lines.map((l) => l.length)));
    return { w: 18 + 6.4 * widest, h: 12 + 14 * rows };
  }

  function num(v, digits) {
    if (v === undefined || v === null) return "–";
    return typeof v === "number" && digits !== undefined ? v.toFixed(digits) : String(v);
  }

  function table(headers, rows, numeric) {
    const nums = new Set(numeric || []);
    return el("table", {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c, i) =>
        el("td", { class: nums.has(i) ? "num" : null }, c))))));
  }

  function processorLabel(name, p) {
    p = p || {};
    return `${name}\n${num(p.rate, 1)} rec/s · lag ${num(p.lag)} · err ${num(p.errors)}`;
  }

  function topicLabel(name, t) {
    return `${name}\n${num(t && t.rate, 1)} rec/s`;
  }

  function style() {
    return [
      { selector: "node", style: {
        "label": "data(label)", "text-wrap": "wrap", "text-valign": "center",
        "text-halign": "center", "font-size": 11, "color": "#1f2933",
        "text-max-width": `${6.4 * WRAP}px`, "text-overflow-wrap": "anywhere",
        "width": (n) => labelSize(n.data("label")).w,
        "height": (n) => labelSize(n.data("label")).h } },
      { selector: "node[kind = 'processor']", style: {
        "shape": "round-rectangle", "background-color": "data(color)", "color": "#fff",
        "font-weight": "bold", "border-width": 0 } },
      { selector: "node[kind = 'topic']", style: {
        "shape": "round-rectangle", "background-color": "#eef2f7", "border-width": 1,
        "border-color": "#9aa5b1", "corner-radius": 18 } },
      { selector: "node[?internal]", style: { "border-style": "dashed" } },
      { selector: "node:selected", style: { "border-width": 3, "border-color": "#3b6fd6" } },
      { selector: "edge", style: {
        "curve-style": "bezier", "target-arrow-shape": "triangle", "width": "data(width)",
        "line-color": "#9aa5b1", "target-arrow-color": "#9aa5b1", "label": "data(label)",
        "font-size": 10, "text-background-color": "#fff", "text-background-opacity": 0.8,
        "color": "#52606d" } },
      { selector: "edge[kind = 'global']", style: { "line-style": "dashed" } },
    ];
  }

  function setStatus(text) { document.getElementById("status").textContent = text; }

  function apply(frame) {
    state.frame = frame;
    state.frames += 1;
    const procs = frame.processors || {};
    const topics = frame.topics || {};
    state.cy.batch(() => {
      state.cy.nodes().forEach((n) => {
        const name = n.data("name");
        if (n.data("kind") === "processor") {
          const p = procs[name];
          const health = p ? p.health : "unknown";
          n.data({ health, color: COLORS[health] || COLORS.unknown, label: processorLabel(name, p) });
        } else {
          n.data({ label: topicLabel(name, topics[name]) });
        }
      });
      state.cy.edges().forEach((e) => {
        const t = topics[e.data("topic")];
        const rate = t ? t.rate : null;
        e.data({ label: rate === null || rate === undefined ? "" : `${num(rate, 1)}/s`,
                 width: 1 + Math.min(6, Math.log10(1 + (rate || 0))) });
      });
    });
    const when = new Date(frame.time * 1000).toLocaleTimeString();
    setStatus(`updated ${when} · frame ${frame.seq}`);
    const banner = document.getElementById("error");
    banner.hidden = !frame.error;
    banner.textContent = frame.error ? `Polling failed: ${frame.error}` : "";
    renderSummary(procs);
    if (state.selected && state.selected.kind === "processor") showProcessor(state.selected.name);
    if (state.selected && state.selected.kind === "topic") showTopicFigures(state.selected.name);
  }

  function buildSummary() {
    const body = document.querySelector("#summary tbody");
    fill(body, state.graph.nodes.filter((n) => n.kind === "processor").map((n) =>
      el("tr", { "data-processor": n.name, "data-health": "unknown",
                 onclick: () => select("processor", n.name) },
        el("td", {}, n.name),
        ["health", "members", "rate", "lag", "errors", "reasons"].map((f) =>
          el("td", { "data-field": f, class: f === "health" || f === "reasons" ? null : "num" })))));
  }

  function renderSummary(procs) {
    // cells are updated in place, so a row stays put under the pointer while frames arrive
    document.querySelectorAll("#summary tbody tr").forEach((row) => {
      const p = procs[row.dataset.processor] || { health: "unknown", reasons: [] };
      const cell = (f) => row.querySelector(`[data-field="${f}"]`);
      row.dataset.health = p.health;
      cell("health").textContent = p.health;
      cell("health").className = `health ${p.health}`;
      cell("members").textContent = num(p.members ? p.members.length : null);
      cell("rate").textContent = num(p.rate, 1);
      cell("lag").textContent = num(p.lag);
      cell("errors").textContent = num(p.errors);
      cell("reasons").textContent = (p.reasons || []).join("; ");
    });
  }

  function select(kind, name) {
    state.selected = { kind, name };
    state.cy.nodes().unselect();
    state.cy.getElementById(`${kind}:${name}`).select();
    if (kind === "processor") showProcessor(name);
    else showTopic(name);
  }

  function showProcessor(name) {
    const node = state.graph.nodes.find((n) => n.id === `processor:${name}`);
    const p = (state.frame && state.frame.processors && state.frame.processors[name]) || {};
    const health = p.health || "unknown";
    const members = (p.members || []).map((m) => [m.instance_id || m.client_id || m.member_id,
      m.host || "", (m.partitions || []).map((tp) => tp.join("-")).join(", ")]);
    const parts = (p.partitions || []).map((x) => [x.topic, x.partition, num(x.committed),
      num(x.end), num(x.lag)]);
    const insts = (p.instances || []).map((i) => [i.instance_id || i.url || "?",
      i.reachable === false ? "no answer" : i.ready ? "ready" : "not ready",
      num(i.processed), num(i.dead_lettered), num(i.skipped), restoreText(i)]);
    fill(document.getElementById("details"),
      el("h2", {}, `processor ${name}`),
      el("p", {}, el("span", { class: `health ${health}` }, health),
        ` · group ${node.group} · ${node.guarantee} · on_error=${node.on_error}`),
      (p.reasons || []).length ? el("ul", { class: "reasons" }, p.reasons.map((r) => el("li", {}, r))) : null,
      el("p", {}, `group state ${p.state || "unknown"} · ${num(p.rate, 1)} records/s · lag ${num(p.lag)}`
        + ` · errors ${num(p.errors)}`
        + (p.dead_letter_topic ? ` (dead letters ${num(p.dead_letters)} in ${p.dead_letter_topic})` : "")),
      (p.notes || []).length ? el("ul", { class: "reasons" }, p.notes.map((r) => el("li", {}, r))) : null,
      node.stores.length ? el("p", {}, `stores: ${node.stores.join(", ")}`) : null,
      el("h3", {}, "members"),
      members.length ? table(["instance", "host", "partitions"], members) : el("p", { class: "hint" }, "none"),
      el("h3", {}, "partitions"),
      parts.length ? table(["topic", "partition", "committed", "end", "lag"], parts, [1, 2, 3, 4])
        : el("p", { class: "hint" }, "none known"),
      el("h3", {}, "instances (/status)"),
      insts.length ? table(["instance", "state", "processed", "dead letters", "skipped", "restore"],
        insts, [2, 3, 4])
        : el("p", { class: "hint" }, "none known"),
      errorTable(p));
  }

  function restoreText(i) {
    if (i.restoring) return `restoring, ${num(i.restore_remaining)} left`;
    if (i.restore_records) return `restored ${i.restore_records} records`;
    return "";
  }

  function errorTable(p) {
    const rows = [];
    for (const i of p.instances || []) {
      for (const e of i.error_kinds || []) rows.push([i.instance_id || "?", e.step, e.exception, e.count]);
    }
    return rows.length ? [el("h3", {}, "errors by step"),
      table(["instance", "step", "exception", "count"], rows, [3])] : null;
  }

  function showTopicFigures(name) {
    const fig = document.getElementById("topic-figures");
    if (!fig) return;
    const t = (state.frame && state.frame.topics && state.frame.topics[name]) || {};
    fig.textContent = `${num(t.rate, 1)} records/s · end offsets ${num(t.end)}`;
  }

  async function showTopic(name) {
    const node = state.graph.nodes.find((n) => n.id === `topic:${name}`) || {};
    const body = el("div", { id: "topic-records" }, el("p", { class: "hint" }, "reading…"));
    fill(document.getElementById("details"),
      el("h2", {}, `topic ${name}`),
      el("p", {}, `key ${node.key} · value ${node.value}`
        + (node.internal ? " · internal" : "") + (node.external ? " · external" : "")),
      el("p", { id: "topic-figures" }),
      el("h3", {}, "latest records ", el("button", { onclick: () => showTopic(name) }, "refresh")),
      body);
    showTopicFigures(name);
    try {
      const answer = await (await fetch(`/api/topics/${encodeURIComponent(name)}/records?last=20`)).json();
      if (answer.error) throw new Error(answer.error);
      const rows = answer.records.map((r) => [r.partition, r.offset,
        r.timestamp ? new Date(r.timestamp).toISOString() : "",
        el("pre", {}, JSON.stringify(r.key)),
        el("pre", {}, JSON.stringify(r.value) + (r.value_error ? `\n(${r.value_error})` : "")),
        el("pre", {}, (r.headers || []).map(([k, v]) => `${k}: ${v}`).join("\n"))]);
      fill(body, rows.length ? table(["p", "offset", "time", "key", "value", "headers"], rows, [0, 1])
        : el("p", { class: "hint" }, "no records"));
    } catch (err) {
      fill(body, el("p", { class: "health down" }, String(err.message || err)));
    }
  }

  async function init() {
    state.graph = await (await fetch("/api/graph")).json();
    document.getElementById("topology").textContent = state.graph.topology;
    document.title = `${state.graph.topology} · streamflow dashboard`;
    const elements = [
      ...state.graph.nodes.map((n) => ({ group: "nodes",
        data: { ...n, health: "unknown", color: COLORS.unknown,
                label: n.kind === "processor" ? processorLabel(n.name) : topicLabel(n.name) } })),
      ...state.graph.edges.map((e) => ({ group: "edges", data: { ...e, label: "", width: 1 } })),
    ];
    state.cy = cytoscape({
      container: document.getElementById("cy"), elements, style: style(),
      layout: { name: "dagre", rankDir: "LR", nodeSep: 30, rankSep: 80,
                nodeDimensionsIncludeLabels: true, padding: 20 },
    });
    state.cy.on("tap", "node", (ev) => select(ev.target.data("kind"), ev.target.data("name")));
    state.cy.on("tap", "edge", (ev) => select("topic", ev.target.data("topic")));
    buildSummary();
    renderSummary({});
    const events = new EventSource("/api/events");
    events.addEventListener("frame", (ev) => apply(JSON.parse(ev.data)));
    events.onerror = () => setStatus("connection to the dashboard lost; retrying…");
  }

  init().catch((err) => {
    const banner = document.getElementById("error");
    banner.hidden = false;
    banner.textContent = `The page failed to start: ${err.message || err}`;
  });
})();

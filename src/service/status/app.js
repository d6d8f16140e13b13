// kilnd's status page: reads GET /v1/status (and once GET /v1/status/topology.svg) with the bearer
// token typed in (kept in sessionStorage: gone when the tab closes) and shows it. Service data is
// only ever set as text (textContent), never parsed as HTML; the topology SVG is parsed as XML, its
// scripts, foreign objects, event handlers and links dropped, and only then put in the page.
"use strict";

(() => {
  const kPollMs = 1500;
  const kTokenKey = "kilnd-token";
  const el = (id) => document.getElementById(id);
  let timer = null;
  let generation = 0;  // a new token starts a new generation; late answers of the old one are dropped

  function text(id, value) {
    el(id).textContent = value === undefined || value === null ? "–" : String(value);
  }

  function bytes(n) {
    if (typeof n !== "number") return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; ++i; }
    return (i === 0 ? String(n) : n.toFixed(n >= 100 ? 0 : 1)) + " " + units[i];
  }

  function ms(value) {
    return typeof value === "number" ? value.toFixed(value >= 100 ? 0 : 3) + " ms" : "–";
  }

  function duration(s) {
    const t = Math.floor(s);
    const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = t % 60;
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + sec + " s";
  }

  function cell(row, value, className) {
    const td = document.createElement("td");
    td.textContent = value === undefined || value === null ? "–" : String(value);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function renderDevices(data) {
    const body = el("devices");
    body.replaceChildren();
    if (!data.devices.length) {
      const row = document.createElement("tr");
      const td = cell(row, "None: no GPU on this machine (the reason is above).", "muted");
      td.colSpan = 12;
      body.appendChild(row);
      return;
    }
    for (const d of data.devices) {
      const row = document.createElement("tr");
      row.className = "device";
      cell(row, d.ordinal);
      cell(row, d.name + (d.pci_bus_id ? " (" + d.pci_bus_id + ")" : ""));
      cell(row, "sm_" + d.arch);
      cell(row, bytes(d.memory_used), "num");
      cell(row, bytes(d.memory_free), "num");
      cell(row, bytes(d.memory_total), "num");
      cell(row, bytes(d.buffer_bytes), "num");
      cell(row, d.worker_up ? "up" : "down", d.worker_up ? "good" : "bad");
      cell(row, d.worker_restarts, "num");
      cell(row, d.watchdog_kills, "num");
      cell(row, d.circuit_open ? "open" : "closed", d.circuit_open ? "bad" : "good");
      cell(row, d.last_failure || "");
      body.appendChild(row);
    }
  }

  function renderFailures(failures) {
    const list = el("failures");
    list.replaceChildren();
    el("no-failures").hidden = failures.length > 0;
    for (const f of failures) {
      const li = document.createElement("li");
      li.className = "failure";
      const what = document.createElement("div");
      what.className = "what";
      const where = [f.source];
      if (f.device !== null && f.device !== undefined) where.push("GPU " + f.device);
      if (f.job) where.push("job " + f.job);
      if (f.request_id) where.push("request " + f.request_id);
      what.textContent = new Date(f.time).toLocaleTimeString() + "  " + f.error + "  (" + where.join(", ") + ")";
      li.appendChild(what);
      const message = document.createElement("div");
      message.className = "mono message";
      message.textContent = f.message;
      li.appendChild(message);
      if (f.explanation) {
        const explanation = document.createElement("div");
        explanation.className = "explanation";
        explanation.textContent = f.explanation;
        li.appendChild(explanation);
      }
      if (f.hint) {
        const hint = document.createElement("div");
        hint.className = "hint";
        hint.textContent = "Hint: " + f.hint;
        li.appendChild(hint);
      }
      list.appendChild(li);
    }
  }

  function render(data) {
    text("node", data.node);
    text("ready", data.ready ? "yes" : "no");
    el("ready").className = data.ready ? "good" : "bad";
    // Without a GPU the reasons all say the same: the notice above holds it once.
    text("ready-reason", data.gpu.available ? data.reason || "" : "Not ready: no GPU (the reason is above).");
    text("uptime", duration(data.uptime_s));
    text("updated", new Date().toLocaleTimeString());
    el("no-gpu").hidden = data.gpu.available;
    text("no-gpu-reason", data.gpu.reason || "");
    renderDevices(data);

    for (const p of ["high", "normal", "low"]) text("queue-" + p, data.queue.depth[p]);
    text("jobs-running", data.queue.running);

    const l = data.launches;
    text("launches-per-second", l.per_second.toFixed(2));
    text("latency-p50", l.latency_ms.samples ? ms(l.latency_ms.p50) : "no launches");
    text("latency-p90", l.latency_ms.samples ? ms(l.latency_ms.p90) : "no launches");
    text("latency-p99", l.latency_ms.samples ? ms(l.latency_ms.p99) : "no launches");
    text("launches-window", l.in_window);
    for (const [outcome, n] of Object.entries(l.total)) {
      const node = el("launches-" + outcome);
      if (node) node.textContent = String(n);
    }

    const k = data.kernels, c = data.cache;
    text("kernels-registered", k.registered);
    text("compiles", k.compiles_running + " / " + k.compiles_waiting);
    text("cache-memory-hits", c.memory_hits);
    text("cache-disk-hits", c.disk_hits);
    text("cache-misses", c.misses);
    text("cache-hit-rate", c.hit_rate === null ? "no lookups yet" : (100 * c.hit_rate).toFixed(1) + " %");
    text("cache-compile-failures", c.compile_failures);

    text("topology-reason", data.topology.available ? ""
         : data.gpu.available ? data.topology.reason : "No GPU on this machine, so no topology to draw (the reason is above).");
    renderFailures(data.failures);
  }

  // The SVG as an element of this document, with nothing in it that could run or navigate.
  function safeSvg(source) {
    const doc = new DOMParser().parseFromString(source, "image/svg+xml");
    const root = doc.documentElement;
    if (!root || root.nodeName !== "svg" || doc.getElementsByTagName("parsererror").length) return null;
    for (const bad of Array.from(root.querySelectorAll("script, foreignObject, a, iframe, image, use, style"))) bad.remove();
    for (const node of [root, ...root.querySelectorAll("*")])
      for (const attr of Array.from(node.attributes))
        if (/^on/i.test(attr.name) || /href$/i.test(attr.name) || attr.name === "style") node.removeAttribute(attr.name);
    return document.importNode(root, true);
  }

  async function get(path, token) {
    return fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  }

  async function loadTopology(token, mine) {
    try {
      const res = await get("/v1/status/topology.svg", token);
      if (mine !== generation || !res.ok) return;
      const svg = safeSvg(await res.text());
      if (mine !== generation) return;
      if (svg) el("topology").replaceChildren(svg);
      else text("topology-reason", "kilnd's topology picture could not be read");
    } catch (e) {
      text("topology-reason", "the topology picture could not be fetched: " + e.message);
    }
  }

  async function poll(token, mine) {
    if (mine !== generation) return;
    try {
      const res = await get("/v1/status", token);
      if (mine !== generation) return;
      if (res.status === 401) {
        text("state", "kilnd refused the token (401): enter another one.");
        sessionStorage.removeItem(kTokenKey);
        return;  // no more polling with it
      }
      if (!res.ok) {
        text("state", "GET /v1/status answered " + res.status + "; retrying");
      } else {
        render(await res.json());
        text("state", "Live: GET /v1/status every " + kPollMs / 1000 + " s.");
      }
    } catch (e) {
      if (mine !== generation) return;
      text("state", "kilnd cannot be reached (" + e.message + "); retrying");
    }
    timer = setTimeout(() => poll(token, mine), kPollMs);
  }

  function connect(token) {
    clearTimeout(timer);
    const mine = ++generation;
    text("state", "Connecting…");
    loadTopology(token, mine);
    poll(token, mine);
  }

  document.addEventListener("DOMContentLoaded", () => {
    el("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = el("token").value.trim();
      if (!token) return;
      sessionStorage.setItem(kTokenKey, token);
      el("token").value = "";
      connect(token);
    });
    el("forget").addEventListener("click", () => {
      sessionStorage.removeItem(kTokenKey);
      clearTimeout(timer);
      ++generation;
      text("state", "Token forgotten.");
    });
    const saved = sessionStorage.getItem(kTokenKey);
    if (saved) connect(saved);
  });
})();

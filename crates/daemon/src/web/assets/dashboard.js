// pmdaemon dashboard: the process table from GET /api/processes, kept live
// by the events of GET /ws; a log tail of the selected instance over a
// second socket; actions through the same REST API as the CLI. The API key
// lives in sessionStorage only (this tab, this session).
"use strict";

const KEY_STORE = "pmdaemon-key";
const HISTORY = 60; // samples kept per sparkline (one a second)
const LOG_LINES = 1000;

const state = {
  instances: new Map(), // id -> ProcessInfo plus {cpuHistory, memHistory, seenAt}
  selected: null, // instance name
  events: null,
  logs: null,
  retry: 500,
  pendingKey: null, // resolve() of the key dialog
};

const $ = (id) => document.getElementById(id);

function key() {
  return sessionStorage.getItem(KEY_STORE);
}

// ---- REST ---------------------------------------------------------------

async function api(method, path, body, retried) {
  const headers = {};
  if (key()) headers["Authorization"] = "Bearer " + key();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && !retried) {
    await askKey(key() ? "That key was refused." : null);
    return api(method, path, body, true);
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error((data && data.error) || response.statusText);
  return data;
}

async function loadProcesses() {
  const list = await api("GET", "/api/processes");
  const now = Date.now();
  const next = new Map();
  for (const info of list) {
    const old = state.instances.get(info.id);
    next.set(info.id, Object.assign(info, {
      cpuHistory: old ? old.cpuHistory : [],
      memHistory: old ? old.memHistory : [],
      seenAt: now,
    }));
  }
  state.instances = next;
  renderTable();
}

async function loadSystem() {
  try {
    const s = await api("GET", "/api/system");
    const used = s.memory_total - s.memory_available;
    $("host").innerHTML = "";
    const parts = [
      ["CPU", s.cpu_percent == null ? "–" : s.cpu_percent.toFixed(0) + "% of " + s.cpus],
      ["Load", s.load.map((l) => l.toFixed(2)).join(" ")],
      ["Memory", bytes(used) + " / " + bytes(s.memory_total)],
      ["Daemon", bytes(s.daemon_memory)],
    ];
    for (const [label, value] of parts) {
      const span = document.createElement("span");
      span.append(label + " ");
      const b = document.createElement("b");
      b.textContent = value;
      span.append(b);
      $("host").append(span);
    }
  } catch (_) { /* shown by the connection state */ }
}

// ---- Events -------------------------------------------------------------

function socketUrl() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
}

// Opens /ws, sends the key first, then `subscribe`; calls onEvent for each.
function openSocket(subscribe, onEvent, onClose) {
  const ws = new WebSocket(socketUrl());
  ws.onopen = () => {
    if (key()) ws.send(JSON.stringify({ type: "auth", key: key() }));
  };
  ws.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.kind === "hello") {
      ws.send(JSON.stringify(Object.assign({ type: "subscribe" }, subscribe)));
    }
    onEvent(event);
  };
  ws.onclose = (close) => onClose && onClose(close);
  return ws;
}

function connectEvents() {
  setConn("connecting");
  state.events = openSocket({ apps: [], kinds: [] }, onEvent, (close) => {
    setConn("down", close.code === 4401 ? "key needed" : "reconnecting");
    if (close.code === 4401) {
      askKey(key() ? "That key was refused." : null).then(connectEvents);
      return;
    }
    setTimeout(connectEvents, state.retry);
    state.retry = Math.min(state.retry * 2, 8000);
  });
}

function onEvent(event) {
  switch (event.kind) {
    case "subscribed":
      state.retry = 500;
      setConn("live");
      loadProcesses().catch(showError);
      if (state.selected) followLogs(state.selected);
      break;
    case "status": {
      const row = state.instances.get(event.id);
      if (!row) return loadProcesses().catch(showError);
      if (row.pid !== event.pid) row.seenAt = Date.now(), row.uptime_ms = event.pid ? 0 : null;
      row.status = event.status;
      row.pid = event.pid;
      if (!event.pid) row.cpu_percent = row.memory_bytes = null;
      updateRow(row);
      break;
    }
    case "restarted": {
      const row = state.instances.get(event.id);
      if (!row) return loadProcesses().catch(showError);
      row.restarts = event.restarts;
      row.pid = event.pid;
      updateRow(row);
      flash(row, "restarted: " + event.reason);
      break;
    }
    case "health": {
      const row = state.instances.get(event.id);
      if (!row) return;
      row.health = event.health;
      row.health_error = event.error;
      updateRow(row);
      break;
    }
    case "metrics":
      for (const sample of event.samples) {
        const row = state.instances.get(sample.id);
        if (!row) continue;
        row.cpu_percent = sample.cpu_percent;
        row.memory_bytes = sample.memory_bytes;
        push(row.cpuHistory, sample.cpu_percent);
        push(row.memHistory, sample.memory_bytes);
        updateRow(row);
      }
      break;
    case "removed":
      state.instances.delete(event.id);
      renderTable();
      break;
    case "error":
      if (!/key/i.test(event.error)) showError(new Error(event.error));
      break;
  }
}

function push(list, value) {
  list.push(value);
  if (list.length > HISTORY) list.shift();
}

// ---- Logs ---------------------------------------------------------------

function followLogs(name) {
  if (state.logs) state.logs.onclose = null, state.logs.close();
  $("log").textContent = "";
  $("log-target").textContent = name;
  state.logs = openSocket({ apps: [name], kinds: ["log"], lines: 100 }, (event) => {
    if (event.kind !== "log") return;
    const line = document.createElement("div");
    if (event.stream === "err") line.className = "err";
    line.textContent = event.line;
    const log = $("log");
    log.append(line);
    while (log.childElementCount > LOG_LINES) log.firstChild.remove();
    if ($("log-follow").checked) log.scrollTop = log.scrollHeight;
  });
}

// ---- Rendering ----------------------------------------------------------

function renderTable() {
  const body = $("rows");
  body.textContent = "";
  const apps = new Map();
  for (const row of [...state.instances.values()].sort((a, b) => a.id - b.id)) {
    if (!apps.has(row.app)) apps.set(row.app, []);
    apps.get(row.app).push(row);
  }
  for (const [app, rows] of apps) {
    body.append(appRow(app, rows));
    for (const row of rows) {
      row.element = instanceRow(row);
      body.append(row.element);
      updateRow(row);
    }
  }
  $("empty").hidden = state.instances.size > 0;
  const online = [...state.instances.values()].filter((r) => r.status === "online").length;
  $("summary").textContent = `${apps.size} app${apps.size === 1 ? "" : "s"} · ${online}/${state.instances.size} online`;
}

function appRow(app, rows) {
  const tr = document.createElement("tr");
  tr.className = "app";
  tr.dataset.app = app;
  const td = document.createElement("td");
  td.colSpan = 8;
  const name = element("span", "app-name", app);
  const meta = element("span", "app-meta", `${rows.length} instance${rows.length === 1 ? "" : "s"}`);
  td.append(name, meta);
  const actions = document.createElement("td");
  actions.className = "actions-cell";
  const box = element("div", "actions");
  box.append(
    button("Scale", "scale", () => confirmAction("scale", app, rows.length)),
    button("Reload", "reload", () => confirmAction("reload", app)),
    button("Restart", "restart", () => confirmAction("restart", app)),
  );
  actions.append(box);
  tr.append(td, actions);
  return tr;
}

function instanceRow(row) {
  const tr = document.createElement("tr");
  tr.className = "instance";
  tr.dataset.name = row.name;
  tr.dataset.id = row.id;
  const cells = {
    name: cell("name"), status: cell("status"), pid: cell("num pid"), port: cell("num hide-s port"),
    uptime: cell("num hide-s uptime"), restarts: cell("num restarts"), cpu: cell("cpu-cell"),
    mem: cell("mem-cell"), actions: cell("actions-cell"),
  };
  cells.cpu.append(metric("cpu"));
  cells.mem.append(metric("mem"));
  const box = element("div", "actions");
  box.append(
    button("Restart", "restart", () => confirmAction("restart", row.name)),
    button("Reload", "reload", () => confirmAction("reload", row.name)),
    button("Stop", "stop danger", () => confirmAction(row.status === "stopped" || row.status === "errored" ? "start" : "stop", row.name)),
  );
  cells.actions.append(box);
  tr.append(...Object.values(cells));
  tr.cells_ = cells;
  tr.addEventListener("click", (e) => {
    if (e.target.closest("button")) return;
    select(row.name);
  });
  if (state.selected === row.name) tr.classList.add("selected");
  return tr;
}

function updateRow(row) {
  const tr = row.element;
  if (!tr || !tr.isConnected) return renderTable();
  const c = tr.cells_;
  c.name.textContent = row.name;
  const small = element("small", "", "#" + row.id);
  c.name.append(small);
  c.status.textContent = "";
  c.status.append(element("span", "badge " + row.status, row.status));
  if (row.health_checked) {
    const h = element("span", "health " + row.health, row.health === "healthy" ? "✓" : row.health === "unhealthy" ? "✗" : "?");
    h.title = row.health_error || row.health;
    c.status.append(h);
  }
  c.pid.textContent = row.pid == null ? "–" : row.pid;
  c.pid.dataset.pid = row.pid == null ? "" : row.pid;
  c.port.textContent = row.port == null ? "–" : row.port;
  c.uptime.textContent = uptime(row);
  c.restarts.textContent = row.restarts;
  setMetric(c.cpu, row.cpuHistory, row.cpu_percent == null ? "–" : row.cpu_percent.toFixed(1) + "%", 100);
  setMetric(c.mem, row.memHistory, row.memory_bytes == null ? "–" : bytes(row.memory_bytes), 0);
  const stop = c.actions.querySelector(".stop");
  const down = row.status === "stopped" || row.status === "errored";
  stop.textContent = down ? "Start" : "Stop";
  stop.classList.toggle("danger", !down);
}

function metric(kind) {
  const box = element("div", "metric " + kind);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 92 26");
  svg.setAttribute("preserveAspectRatio", "none");
  const area = document.createElementNS(svg.namespaceURI, "polygon");
  area.setAttribute("class", "area");
  const line = document.createElementNS(svg.namespaceURI, "polyline");
  svg.append(area, line);
  box.append(svg, element("span", "value", "–"));
  return box;
}

// Draws `history` scaled to at least `floor` (CPU: 100%; memory: its peak).
function setMetric(cellElement, history, text, floor) {
  cellElement.querySelector(".value").textContent = text;
  const line = cellElement.querySelector("polyline");
  const area = cellElement.querySelector("polygon");
  if (history.length < 2) {
    line.setAttribute("points", "");
    area.setAttribute("points", "");
    return;
  }
  const peak = Math.max(floor ? Math.min(floor, Math.max(...history) * 1.25 + 1) : 0, ...history) || 1;
  const step = 92 / (HISTORY - 1);
  const start = 92 - step * (history.length - 1);
  const points = history.map((v, i) => `${(start + i * step).toFixed(1)},${(24 - (v / peak) * 22).toFixed(1)}`);
  line.setAttribute("points", points.join(" "));
  area.setAttribute("points", `${start.toFixed(1)},26 ${points.join(" ")} 92,26`);
}

function select(name) {
  state.selected = name;
  for (const tr of document.querySelectorAll("tr.instance")) {
    tr.classList.toggle("selected", tr.dataset.name === name);
  }
  followLogs(name);
}

function flash(row, title) {
  if (!row.element) return;
  row.element.classList.remove("flash");
  void row.element.offsetWidth;
  row.element.classList.add("flash");
  row.element.title = title;
}

// ---- Actions ------------------------------------------------------------

function confirmAction(verb, target, instances) {
  const scaling = verb === "scale";
  $("confirm-title").textContent = `${verb[0].toUpperCase()}${verb.slice(1)} ${target}?`;
  $("confirm-text").textContent = {
    restart: `Stops ${target} and starts it again.`,
    reload: `Replaces ${target}'s processes one at a time, each new one ready before the old one stops.`,
    stop: `Stops ${target} and keeps it stopped.`,
    start: `Starts ${target}.`,
    scale: `Sets the number of ${target}'s instances.`,
  }[verb];
  $("scale-field").hidden = !scaling;
  if (scaling) $("scale-input").value = instances;
  $("confirm").hidden = false;
  (scaling ? $("scale-input") : $("confirm-yes")).focus();
  const close = () => {
    $("confirm").hidden = true;
    $("confirm-yes").onclick = $("confirm-no").onclick = null;
  };
  $("confirm-no").onclick = close;
  $("confirm-yes").onclick = async () => {
    close();
    const path = `/api/processes/${encodeURIComponent(target)}/${verb}`;
    const body = scaling ? { instances: Number($("scale-input").value) } : undefined;
    try {
      await api("POST", path, body);
      toast(`${verb} ${target}: done`, true);
      await loadProcesses();
    } catch (error) {
      showError(error);
    }
  };
}

// ---- Key ----------------------------------------------------------------

function askKey(error) {
  $("key-error").hidden = !error;
  $("key-error").textContent = error || "";
  $("key-dialog").hidden = false;
  $("key-input").value = "";
  $("key-input").focus();
  return new Promise((resolve) => { state.pendingKey = resolve; });
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY_STORE, $("key-input").value.trim());
  $("key-dialog").hidden = true;
  if (state.pendingKey) state.pendingKey(), state.pendingKey = null;
});
$("key-cancel").onclick = () => { $("key-dialog").hidden = true; };
$("key-button").onclick = () => askKey(null).then(() => {
  if (state.events) state.events.close();
});

// ---- Helpers ------------------------------------------------------------

function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function cell(className) {
  return element("td", className);
}

function button(label, className, action) {
  const b = element("button", className, label);
  b.type = "button";
  b.addEventListener("click", action);
  return b;
}

function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) n /= 1024, i++;
  return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
}

function uptime(row) {
  if (row.uptime_ms == null || !row.pid) return "–";
  const s = Math.floor((row.uptime_ms + Date.now() - row.seenAt) / 1000);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}

function setConn(mode, text) {
  $("conn").className = "conn " + mode;
  $("conn-text").textContent = text || (mode === "live" ? "live" : mode);
}

let toastTimer;
function toast(text, info) {
  const t = $("toast");
  t.textContent = text;
  t.className = "toast" + (info ? " info" : "");
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}

function showError(error) {
  toast(error.message || String(error));
}

// ---- Start --------------------------------------------------------------

setInterval(() => {
  for (const row of state.instances.values()) {
    if (row.element && row.element.cells_) row.element.cells_.uptime.textContent = uptime(row);
  }
}, 1000);
setInterval(loadSystem, 5000);

(async function start() {
  if (!key()) await askKey(null);
  loadSystem();
  connectEvents();
})();

// The live stock board: reads positions over HTTP, then follows /v1/stream.
// Plain browser JavaScript, no build step. State lives in `state`; the DOM mirrors state.rows.
"use strict";

(() => {
  const STORE_KEY = "omnistock.key";
  const STORE_WHERE = "omnistock.where";
  const STORE_KIOSK = "omnistock.kiosk";
  const MAX_ROWS = 2000;
  const PAGE = 500;
  const SILENCE_MS = 35000; // heartbeats come every 10-15 s: this much quiet means a dead link
  const IDENTIFIER = /^[A-Za-z0-9._:-]{1,128}$/;

  const $ = (id) => document.getElementById(id);
  const state = {
    key: localStorage.getItem(STORE_KEY) || "",
    where: "",
    rows: new Map(), // "location/sku" -> {p: position, tr: element|null}
    ws: null,
    subId: null,
    subCount: 0,
    cursor: null,
    retry: 500,
    lastMessage: 0,
    loading: 0,
    truncated: false,
    loadedQuery: "",
    searchTimer: null,
  };

  class AuthError extends Error {}

  async function api(path) {
    const resp = await fetch(path, { headers: { Authorization: `Bearer ${state.key}` } });
    if (resp.status === 401) throw new AuthError("unknown API key");
    if (!resp.ok) {
      let detail = resp.statusText;
      try { detail = (await resp.json()).detail || detail; } catch (_) { /* not JSON */ }
      throw new Error(detail);
    }
    return resp.json();
  }

  // -- connection indicator, notices ----------------------------------------------------------

  function setConn(kind, text) {
    const el = $("conn");
    el.className = `conn ${kind}`;
    el.querySelector("span").textContent = text;
  }

  function notice(text) {
    const el = $("notice");
    el.textContent = text || "";
    el.hidden = !text;
  }

  // -- sign in --------------------------------------------------------------------------------

  function showLogin(message) {
    closeStream();
    setConn("off", "offline");
    $("board").hidden = true;
    $("signout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("key").value = "";
    $("key").focus();
  }

  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("key").value.trim();
    localStorage.setItem(STORE_KEY, state.key);
    start();
  });

  $("signout").addEventListener("click", () => {
    state.key = "";
    localStorage.removeItem(STORE_KEY);
    showLogin();
  });

  async function start() {
    let locations;
    try {
      locations = (await api("/v1/locations")).items;
    } catch (err) {
      if (err instanceof AuthError) return showLogin("That key was not accepted.");
      setConn("off", "offline");
      $("login-error").textContent = `Cannot reach the server (${err.message}); retrying…`;
      setTimeout(start, 3000);
      return;
    }
    $("login").hidden = true;
    $("board").hidden = false;
    $("signout").hidden = false;
    const options = fillWhere(locations);
    const params = new URLSearchParams(location.search);
    const wanted = params.get("location") ? `loc:${params.get("location")}`
      : params.get("group") ? `group:${params.get("group")}`
      : localStorage.getItem(STORE_WHERE);
    connect();
    if (!options.length) {
      showEmpty("No locations yet.");
      return;
    }
    const where = options.includes(wanted) ? wanted : options[0];
    $("where").value = where;
    select(where);
  }

  function fillWhere(locations) {
    const sel = $("where");
    sel.replaceChildren();
    const values = [];
    const add = (parent, value, text) => {
      const opt = document.createElement("option");
      opt.value = value;
      opt.textContent = text;
      parent.append(opt);
      values.push(value);
    };
    const locs = document.createElement("optgroup");
    locs.label = "Locations";
    for (const loc of locations) add(locs, `loc:${loc.id}`, loc.name === loc.id ? loc.id : `${loc.name} · ${loc.id}`);
    sel.append(locs);
    const groups = [...new Set(locations.flatMap((loc) => loc.groups || []))].sort();
    if (groups.length) {
      const grp = document.createElement("optgroup");
      grp.label = "Groups";
      for (const g of groups) add(grp, `group:${g}`, `Group: ${g}`);
      sel.append(grp);
    }
    return values;
  }

  $("where").addEventListener("change", (event) => select(event.target.value));

  // -- what is shown --------------------------------------------------------------------------

  function parseWhere(where) {
    const at = where.indexOf(":");
    return [where.slice(0, at), where.slice(at + 1)];
  }

  function select(where) {
    state.where = where;
    localStorage.setItem(STORE_WHERE, where);
    document.body.classList.toggle("grouped", where.startsWith("group:"));
    state.rows = new Map();
    state.cursor = null;
    render();
    subscribe(); // live first, then read: nothing changes unseen in between
    load();
  }

  function searchTerm() {
    return $("search").value.trim();
  }

  function matches(p) {
    const q = searchTerm().toLowerCase();
    return !q || p.sku.toLowerCase().includes(q);
  }

  async function load() {
    const token = ++state.loading;
    const q = searchTerm();
    const serverQ = IDENTIFIER.test(q) ? q : "";
    const [kind, id] = parseWhere(state.where);
    const found = [];
    let truncated = false;
    try {
      let locs = [id];
      if (kind === "group") {
        locs = (await api(`/v1/locations?group=${encodeURIComponent(id)}`)).items.map((l) => l.id);
      }
      outer: for (const [n, loc] of locs.entries()) {
        let page = null;
        do {
          const params = new URLSearchParams({ limit: String(PAGE) });
          if (serverQ) params.set("q", serverQ);
          if (page) params.set("page", page);
          const body = await api(`/v1/stock/${encodeURIComponent(loc)}?${params}`);
          if (token !== state.loading) return; // a newer load took over
          found.push(...body.items);
          page = body.next;
          if (found.length >= MAX_ROWS) {
            truncated = page !== null || n < locs.length - 1;
            break outer;
          }
        } while (page);
      }
    } catch (err) {
      if (err instanceof AuthError) return showLogin("That key no longer works.");
      notice(`Could not load stock: ${err.message}`);
      return;
    }
    notice("");
    state.truncated = truncated;
    state.loadedQuery = serverQ;
    const rows = new Map();
    for (const p of found) {
      const key = `${p.location}/${p.sku}`;
      const live = state.rows.get(key); // a change the stream brought while we read
      rows.set(key, { p: live && live.p.version > p.version ? live.p : p, tr: null });
    }
    for (const [key, row] of state.rows) if (!rows.has(key) && matches(row.p)) rows.set(key, row);
    state.rows = rows;
    render();
  }

  $("search").addEventListener("input", () => {
    const q = searchTerm();
    const loaded = state.loadedQuery.toLowerCase();
    render();
    // The loaded rows answer the search unless they were cut short or filtered more narrowly.
    if (!state.truncated && (!loaded || q.toLowerCase().includes(loaded))) return;
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(load, 300);
  });

  // -- the table ------------------------------------------------------------------------------

  const NUMBERS = ["on_hand", "reserved", "available"];
  const LABELS = ["On hand", "Reserved", "Available"];
  const STATUS_TEXT = { in_stock: "In stock", limited: "Limited", out_of_stock: "Out of stock" };

  function cell(tr, cls, text) {
    const td = document.createElement("td");
    td.className = cls;
    td.textContent = text;
    tr.append(td);
    return td;
  }

  function timeOf(iso) {
    return iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "–";
  }

  function makeRow(p) {
    const tr = document.createElement("tr");
    tr.dataset.key = `${p.location}/${p.sku}`;
    cell(tr, "sku", p.sku);
    cell(tr, "loc", p.location);
    for (const [n, name] of NUMBERS.entries()) cell(tr, `num ${name}`, "").dataset.label = LABELS[n];
    const status = cell(tr, "status-cell", "");
    status.append(document.createElement("span"));
    cell(tr, "when", "");
    fillRow(tr, p);
    return tr;
  }

  function fillRow(tr, p, previous) {
    for (const name of NUMBERS) {
      const td = tr.querySelector(`td.${name}`);
      td.textContent = p[name].toLocaleString();
      td.classList.remove("up", "down");
      if (previous && p[name] !== previous[name]) td.classList.add(p[name] > previous[name] ? "up" : "down");
    }
    const pill = tr.querySelector(".status-cell span");
    pill.className = `status ${p.status}`;
    pill.textContent = STATUS_TEXT[p.status] || p.status;
    tr.querySelector("td.when").textContent = timeOf(p.updated_at);
  }

  function flash(tr) {
    tr.classList.remove("flash");
    void tr.offsetWidth; // restart the animation
    tr.classList.add("flash");
  }

  function order(a, b) {
    return a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : a.location < b.location ? -1 : a.location > b.location ? 1 : 0;
  }

  function showEmpty(text) {
    $("empty").textContent = text;
    $("empty").hidden = !text;
  }

  function render() {
    const body = document.querySelector("#stock tbody");
    const shown = [...state.rows.values()].filter((row) => matches(row.p)).sort((a, b) => order(a.p, b.p));
    body.replaceChildren(...shown.map((row) => (row.tr = row.tr || makeRow(row.p))));
    const total = state.rows.size;
    let text = `${shown.length.toLocaleString()} position${shown.length === 1 ? "" : "s"}`;
    if (state.truncated) text += ` (first ${MAX_ROWS.toLocaleString()}: search to narrow)`;
    $("count").textContent = text;
    showEmpty(shown.length ? "" : total ? `No SKU matches “${searchTerm()}”.` : "No positions here yet.");
  }

  function applyChange(msg) {
    const key = `${msg.location}/${msg.sku}`;
    const row = state.rows.get(key);
    if (row && row.p.version >= msg.version) return; // already shown (a replay)
    const p = {
      sku: msg.sku, location: msg.location, on_hand: msg.on_hand, reserved: msg.reserved,
      available: msg.available, status: msg.status, version: msg.version, updated_at: msg.ts,
    };
    if (!row) {
      state.rows.set(key, { p, tr: null });
      if (matches(p)) {
        render();
        flash(state.rows.get(key).tr);
      }
      return;
    }
    const previous = row.p;
    row.p = p;
    if (row.tr) {
      fillRow(row.tr, p, previous);
      if (row.tr.isConnected) flash(row.tr);
    }
  }

  // -- the stream -----------------------------------------------------------------------------

  function closeStream() {
    const ws = state.ws;
    state.ws = null;
    state.subId = null;
    if (ws) ws.close();
  }

  function connect() {
    if (!state.key) return;
    closeStream();
    setConn("connecting", state.cursor ? "reconnecting…" : "connecting…");
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/v1/stream?api_key=${encodeURIComponent(state.key)}`);
    state.ws = ws;
    ws.onopen = () => {
      if (ws !== state.ws) return;
      state.retry = 500;
      state.lastMessage = Date.now();
      subscribe();
    };
    ws.onmessage = (event) => {
      if (ws !== state.ws) return;
      state.lastMessage = Date.now();
      handle(JSON.parse(event.data));
    };
    ws.onclose = () => {
      if (ws !== state.ws) return;
      state.ws = null;
      state.subId = null;
      if (!state.key) return;
      setConn("off", "offline · retrying");
      setTimeout(connect, state.retry);
      state.retry = Math.min(state.retry * 2, 8000);
    };
  }

  function subscribe() {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !state.where) return;
    if (state.subId) ws.send(JSON.stringify({ op: "unsubscribe", id: state.subId }));
    const [kind, id] = parseWhere(state.where);
    state.subId = `board-${++state.subCount}`;
    const op = { op: "subscribe", id: state.subId, [kind === "loc" ? "locations" : "groups"]: [id] };
    if (state.cursor) op.since = state.cursor; // resume: every change since the last one seen
    ws.send(JSON.stringify(op));
  }

  function handle(msg) {
    switch (msg.type) {
      case "subscribed":
        if (msg.id !== state.subId) return;
        state.cursor = msg.cursor;
        setConn("live", "live");
        return;
      case "change":
        if (msg.sub !== state.subId) return;
        state.cursor = msg.cursor;
        applyChange(msg);
        return;
      case "heartbeat":
        if (state.subId) state.cursor = msg.cursor;
        return;
      case "resync":
        if (msg.sub === state.subId) load(); // missed too much: read everything again
        return;
      case "error":
        notice(`Stream: ${msg.detail}`);
        return;
    }
  }

  // A silent link is a dead link (phones sleep, proxies drop): reconnect and resume.
  setInterval(() => {
    if (state.ws && state.ws.readyState === WebSocket.OPEN && Date.now() - state.lastMessage > SILENCE_MS) {
      state.ws.close();
    }
  }, 5000);
  window.addEventListener("online", () => { if (!state.ws && state.key) connect(); });

  // -- kiosk ----------------------------------------------------------------------------------

  function setKiosk(on) {
    document.body.classList.toggle("kiosk", on);
    $("kiosk").setAttribute("aria-pressed", String(on));
    localStorage.setItem(STORE_KIOSK, on ? "1" : "");
  }
  $("kiosk").addEventListener("click", () => setKiosk(!document.body.classList.contains("kiosk")));
  setKiosk(new URLSearchParams(location.search).get("kiosk") === "1" || localStorage.getItem(STORE_KIOSK) === "1");

  if (state.key) start();
  else showLogin();
})();

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
    rows: new Map(), // "location/sku" -> {p: position, tr: element|null, due: see dueChanged}
    locs: new Map(), // location id -> location (names, coordinates, fences for the nearby view)
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

  // GET `path`, or POST `body` as JSON; a problem body's `detail` becomes the error's message.
  async function api(path, body) {
    const init = { headers: { Authorization: `Bearer ${state.key}` } };
    if (body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
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
    rememberLocations(locations);
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
    nearbyWhereChanged();
    localStorage.setItem(STORE_WHERE, where);
    document.body.classList.toggle("grouped", where.startsWith("group:"));
    state.rows = new Map();
    state.cursor = null;
    due.urgent.clear();
    due.sweep.clear();
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
      p.unsellable = p.unsellable || 0;
      p.incoming = p.incoming || 0;
      const key = `${p.location}/${p.sku}`;
      const live = state.rows.get(key); // a change the stream brought while we read
      const newer = live && live.p.version > p.version ? live.p : p;
      rows.set(key, { p: newer, tr: null, due: live ? live.due : undefined });
    }
    for (const [key, row] of state.rows) if (!rows.has(key) && matches(row.p)) rows.set(key, row);
    state.rows = rows;
    render();
    sweepDue(true); // the next ETA of everything incoming here, read again
  }

  $("search").addEventListener("input", () => {
    const q = searchTerm();
    const loaded = state.loadedQuery.toLowerCase();
    render();
    sweepDue(false); // rows the search brings into view whose due date was never read
    // The loaded rows answer the search unless they were cut short or filtered more narrowly.
    if (!state.truncated && (!loaded || q.toLowerCase().includes(loaded))) return;
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(load, 300);
  });

  // -- the table ------------------------------------------------------------------------------

  const NUMBERS = ["on_hand", "reserved", "unsellable", "available", "incoming"];
  const LABELS = ["On hand", "Reserved", "Unsellable", "Available", "Incoming"];
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

  function makeRow(row) {
    const p = row.p;
    const tr = document.createElement("tr");
    tr.dataset.key = `${p.location}/${p.sku}`;
    cell(tr, "sku", p.sku);
    cell(tr, "loc", p.location);
    for (const [n, name] of NUMBERS.entries()) cell(tr, `num ${name}`, "").dataset.label = LABELS[n];
    cell(tr, "due", "").dataset.label = "Due";
    const status = cell(tr, "status-cell", "");
    status.append(document.createElement("span"));
    cell(tr, "when", "");
    fillRow(tr, p);
    fillDue(tr, row);
    return tr;
  }

  function fillRow(tr, p, previous) {
    for (const name of NUMBERS) {
      const td = tr.querySelector(`td.${name}`);
      td.textContent = p[name].toLocaleString();
      td.classList.toggle("zero", p[name] === 0);
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
    body.replaceChildren(...shown.map((row) => (row.tr = row.tr || makeRow(row))));
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
      unsellable: msg.unsellable || 0, incoming: msg.incoming || 0,
    };
    if (!row) {
      const added = { p, tr: null, due: undefined };
      state.rows.set(key, added);
      dueChanged(added, null);
      if (matches(p)) {
        render();
        flash(added.tr);
      }
      return;
    }
    const previous = row.p;
    row.p = p;
    dueChanged(row, previous);
    if (row.tr) {
      fillRow(row.tr, p, previous);
      fillDue(row.tr, row);
      if (row.tr.isConnected) flash(row.tr);
    }
  }

  // -- due: the next delivery of each row with incoming units ----------------------------------
  // POST /v1/availability {skus, locations, by: <far>}: next_eta and next_incoming cover open
  // supply and transfers alike, up to 500 skus of the rows shown in one read (a sku shown at more
  // than 500 locations of a group: GET /v1/availability/{sku}?group=&by=). A row is read again
  // when its `incoming` changes (supply created, received, cancelled; a transfer: first in line)
  // and every DUE_EVERY_MS while shown, since a reschedule moves an ETA without changing the
  // position. One read at a time, DUE_GAP_MS apart: a board never sends more than
  // 1000/DUE_GAP_MS reads a second, and its queues hold each shown sku at most once.

  const DUE_BY = "2099-12-31T23:59:59Z"; // the contract's last date: everything incoming counts
  const DUE_GAP_MS = 100;
  const DUE_RETRY_MS = 5000; // after a failed read, before the next one
  const DUE_MAX_SKUS = 500; // POST /v1/availability's bounds
  const DUE_MAX_LOCATIONS = 500;
  const DUE_MAX_CELLS = 10000;
  const DUE_EVERY_MS = (() => {
    const every = Number(new URLSearchParams(location.search).get("due_every"));
    return Number.isFinite(every) && every >= 2 && every <= 3600 ? every * 1000 : 60000;
  })();
  const NOT_DUE = { eta: null, units: 0 };
  const due = { urgent: new Set(), sweep: new Set(), running: false, swept: 0 };

  // `row.due`: undefined = not read yet; NOT_DUE = nothing with an ETA; else {eta, units}.
  function dueChanged(row, previous) {
    if (row.p.incoming === 0) {
      row.due = NOT_DUE; // nothing incoming: nothing to read
    } else if (!previous || previous.incoming !== row.p.incoming || row.due === undefined) {
      wantDue(row.p.sku, true);
    }
  }

  // `urgent`: a change or a row never read; else a periodic re-read, after every urgent one.
  function wantDue(sku, urgent) {
    if (urgent) {
      due.sweep.delete(sku);
      due.urgent.add(sku);
    } else if (!due.urgent.has(sku)) {
      due.sweep.add(sku);
    }
    pumpDue();
  }

  // Every shown row with units incoming (`all`), or only those never read.
  function sweepDue(all) {
    if (all) due.swept = Date.now();
    for (const row of state.rows.values()) {
      if (row.p.incoming > 0 && matches(row.p) && (all || row.due === undefined)) {
        wantDue(row.p.sku, row.due === undefined);
      }
    }
  }

  const sweepIfDue = () => {
    if (state.key && state.where && !document.hidden && Date.now() - due.swept >= DUE_EVERY_MS) sweepDue(true);
  };
  setInterval(sweepIfDue, Math.min(DUE_EVERY_MS / 4, 5000)); // re-read within a quarter period of due
  document.addEventListener("visibilitychange", sweepIfDue);

  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function pumpDue() {
    if (due.running) return;
    due.running = true;
    try {
      for (let batch = nextBatch(); batch; batch = nextBatch()) {
        let wait = DUE_GAP_MS;
        try {
          await readDue(batch);
        } catch (err) {
          if (err instanceof AuthError) return showLogin("That key no longer works.");
          // Overloaded or rate limited: the last due dates stay; read them again after a while.
          for (const sku of batch.skus) if (!due.urgent.has(sku)) due.sweep.add(sku);
          wait = DUE_RETRY_MS;
        }
        await pause(wait);
      }
    } finally {
      due.running = false;
    }
  }

  // The next read: queued skus (changed ones first) and the locations where they are incoming,
  // within POST /v1/availability's bounds; `wide` when one sku alone passes them (a big group).
  function nextBatch() {
    const at = new Map(); // sku -> locations of rows with units incoming
    for (const row of state.rows.values()) {
      if (row.p.incoming === 0) continue;
      const locs = at.get(row.p.sku);
      if (locs) locs.push(row.p.location);
      else at.set(row.p.sku, [row.p.location]);
    }
    const skus = [];
    const locations = new Set();
    for (const queue of [due.urgent, due.sweep]) {
      for (const sku of [...queue]) {
        const here = at.get(sku);
        if (!here) {
          queue.delete(sku); // nothing incoming any more: nothing to read
          continue;
        }
        if (!skus.length && here.length > DUE_MAX_LOCATIONS) {
          queue.delete(sku);
          return { skus: [sku], locations: [], wide: true };
        }
        const more = here.filter((loc) => !locations.has(loc));
        const count = locations.size + more.length;
        if (skus.length === DUE_MAX_SKUS || count > DUE_MAX_LOCATIONS || (skus.length + 1) * count > DUE_MAX_CELLS) {
          return { skus, locations: [...locations], wide: false };
        }
        queue.delete(sku);
        skus.push(sku);
        for (const loc of more) locations.add(loc);
      }
    }
    return skus.length ? { skus, locations: [...locations], wide: false } : null;
  }

  async function readDue(batch) {
    const where = state.where;
    let cells;
    if (batch.wide) {
      const [sku] = batch.skus;
      if (sku === "." || sku === "..") return; // not addressable in a URL path: stays unknown
      const params = new URLSearchParams({ group: parseWhere(where)[1], by: DUE_BY });
      const body = await api(`/v1/availability/${encodeURIComponent(sku)}?${params}`);
      cells = body.locations.map((cell) => ({ ...cell, sku }));
    } else {
      cells = (await api("/v1/availability", { skus: batch.skus, locations: batch.locations, by: DUE_BY })).items;
    }
    if (where !== state.where) return; // the board shows somewhere else now
    for (const cell of cells) {
      const row = state.rows.get(`${cell.location}/${cell.sku}`);
      if (!row) continue;
      const next = cell.next_eta ? { eta: cell.next_eta, units: cell.next_incoming } : NOT_DUE;
      const before = row.due;
      row.due = row.p.incoming === 0 ? NOT_DUE : next; // a change since the read has the last word
      if (!row.tr) continue;
      fillDue(row.tr, row);
      const moved = before && before !== NOT_DUE && (before.eta !== row.due.eta || before.units !== row.due.units);
      if (moved && row.tr.isConnected) flash(row.tr);
    }
  }

  function dateOf(iso) {
    return new Date(iso).toLocaleString([], { day: "numeric", month: "short", hour: "numeric", minute: "2-digit" });
  }

  function fillDue(tr, row) {
    const td = tr.querySelector("td.due");
    const { p } = row;
    td.classList.remove("late", "zero");
    td.removeAttribute("title");
    if (p.incoming === 0) {
      td.textContent = "–";
      td.classList.add("zero");
      return;
    }
    if (row.due === undefined) {
      td.textContent = "…";
      td.title = "Reading the next delivery";
      return;
    }
    if (row.due === NOT_DUE) {
      td.textContent = "no date";
      td.title = `${p.incoming.toLocaleString()} incoming without an expected date`;
      return;
    }
    const units = document.createElement("span");
    units.className = "due-units";
    units.textContent = row.due.units.toLocaleString();
    const when = document.createElement("time");
    when.dateTime = row.due.eta;
    when.textContent = dateOf(row.due.eta);
    const late = Date.parse(row.due.eta) < Date.now();
    const sep = document.createElement("span");
    sep.className = "sep";
    sep.textContent = " · ";
    td.replaceChildren(units, sep, when);
    if (late) {
      const flag = document.createElement("span");
      flag.className = "late-flag";
      flag.textContent = "late";
      td.append(" ", flag);
      td.classList.add("late");
    }
    td.title = `${row.due.units.toLocaleString()} of ${p.incoming.toLocaleString()} incoming due ` +
      `${new Date(row.due.eta).toLocaleString()}${late ? " (late)" : ""}`;
  }

  // -- the stream -----------------------------------------------------------------------------

  function closeStream() {
    const ws = state.ws;
    state.ws = null;
    state.subId = null;
    nb.subId = null;
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
      subscribeNearby();
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
      nb.subId = null;
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
        if (msg.id === nb.subId) return nearbySubscribed();
        if (msg.id !== state.subId) return;
        state.cursor = msg.cursor;
        setConn("live", "live");
        return;
      case "change":
        if (msg.sub === nb.subId) return nearbyChange(msg);
        if (msg.sub !== state.subId) return;
        state.cursor = msg.cursor;
        applyChange(msg);
        return;
      case "heartbeat":
        if (state.subId) state.cursor = msg.cursor;
        return;
      case "resync":
        if (msg.sub === state.subId) load(); // missed too much: read everything again
        if (msg.sub === nb.subId) schedulePlan();
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

  // -- find it nearby -------------------------------------------------------------------------
  // Pickup options for one sku near a place: POST /v1/sourcing/plans (pickup), then the channel's
  // availability at the listed locations in one POST /v1/availability. A subscription to the sku
  // on the board's WebSocket keeps it live: a change at a listed location updates its numbers at
  // once, and any change that may alter the answer re-plans (coalesced, PLAN_DELAY_MS).

  const PLAN_DELAY_MS = 300;
  const PLAN_LIMIT = 10;
  const DEFAULT_RADIUS_KM = 50; // the contract's pickup default; sent explicitly so the text matches
  const EARTH_KM = 6371.0088;
  const nb = {
    query: null, // {sku, qty, lat, lon, radius, channel, from}
    subId: null,
    subCount: 0,
    rows: new Map(), // location id -> {li, available, status} for the options shown
    shownFor: null, // the query the list shows: an option new to it joined live, so it flashes
    token: 0,
    timer: null,
    inflight: false, // a plan is being read: a change meanwhile re-plans after it (dirty)
    dirty: false,
    naming: false, // the location list is being read again (a new location's name)
  };

  function rememberLocations(locations) {
    state.locs = new Map(locations.map((loc) => [loc.id, loc]));
    hereName();
  }

  function nearbyNotice(text) {
    $("nearby-notice").textContent = text || "";
    $("nearby-notice").hidden = !text;
  }

  function selectedStore() {
    const [kind, id] = parseWhere(state.where || ":");
    return kind === "loc" ? state.locs.get(id) || { id, name: id } : null;
  }

  function hereName() {
    const here = selectedStore();
    $("nb-here-name").textContent = here ? `(${here.name})` : "(pick a location above)";
  }

  // -- tabs: buttons, with arrow keys moving between them (WAI-ARIA tabs pattern)

  function showView(name) {
    const nearby = name === "nearby";
    for (const [tab, panel, on] of [["tab-stock", "view-stock", !nearby], ["tab-nearby", "view-nearby", nearby]]) {
      $(tab).setAttribute("aria-selected", String(on));
      $(tab).tabIndex = on ? 0 : -1;
      $(panel).hidden = !on;
    }
    document.body.classList.toggle("nearby", nearby);
    if (nearby) {
      if (nb.query && $("nb-here").checked) refreshHere(); // the store above may have changed
      else subscribeNearby();
      if (!nb.query) $("nb-sku").focus();
    } else {
      unsubscribeNearby(); // the stock view does not need it: the server holds less
    }
  }

  $("tab-stock").addEventListener("click", () => showView("stock"));
  $("tab-nearby").addEventListener("click", () => showView("nearby"));
  for (const id of ["tab-stock", "tab-nearby"]) {
    $(id).addEventListener("keydown", (event) => {
      if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) return;
      event.preventDefault();
      const next = event.key === "Home" ? "tab-stock" : event.key === "End" ? "tab-nearby"
        : id === "tab-stock" ? "tab-nearby" : "tab-stock";
      $(next).focus();
      showView(next === "tab-nearby" ? "nearby" : "stock");
    });
  }

  // -- the form

  for (const id of ["nb-lat", "nb-lon"]) {
    $(id).addEventListener("input", () => { $("nb-point").checked = true; });
  }

  function readForm() {
    const sku = $("nb-sku").value.trim();
    const qty = Number($("nb-qty").value || "1");
    const radiusText = $("nb-radius").value.trim();
    const radius = radiusText ? Number(radiusText) : DEFAULT_RADIUS_KM;
    const channel = $("nb-channel").value || null;
    let lat, lon, from;
    if ($("nb-here").checked) {
      const here = selectedStore();
      if (!here) throw new Error("“This store” needs one location chosen above (not a group); or enter coordinates.");
      if (typeof here.lat !== "number" || typeof here.lon !== "number") {
        throw new Error(`${here.name} has no coordinates: enter a latitude and longitude instead.`);
      }
      [lat, lon, from] = [here.lat, here.lon, here.name];
    } else {
      const latText = $("nb-lat").value.trim();
      const lonText = $("nb-lon").value.trim();
      if (!latText || !lonText) throw new Error("Enter both a latitude and a longitude.");
      [lat, lon, from] = [Number(latText), Number(lonText), `${latText}, ${lonText}`];
    }
    return { sku, qty, lat, lon, radius, channel, from };
  }

  $("nearby-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    let query;
    try {
      query = readForm();
    } catch (err) {
      nearbyNotice(err.message);
      return;
    }
    try { rememberLocations((await api("/v1/locations")).items); } catch (_) { /* keep the list we have */ }
    startNearby(query);
  });

  function startNearby(query) {
    nb.query = query;
    nb.rows = new Map();
    $("nearby-list").replaceChildren();
    $("nearby-empty").hidden = true;
    nearbyNotice("");
    $("nearby-status").textContent = "Searching…";
    // Live first, then read (the plan runs when the subscription is confirmed); offline: read now.
    if (!subscribeNearby()) plan();
  }

  function nearbyWhereChanged() {
    hereName();
    if (nb.query && $("nb-here").checked && !$("view-nearby").hidden) refreshHere();
  }

  // "This store" follows the board's selection: search again from the store now selected.
  function refreshHere() {
    try {
      startNearby(readForm());
    } catch (err) {
      unsubscribeNearby();
      nb.query = null;
      nb.rows = new Map();
      $("nearby-list").replaceChildren();
      $("nearby-status").textContent = "";
      nearbyNotice(err.message);
    }
  }

  // -- the subscription (one sku, every location: a far store that gets stock must be seen too)

  function subscribeNearby() {
    const ws = state.ws;
    if (!nb.query || !ws || ws.readyState !== WebSocket.OPEN || $("view-nearby").hidden) return false;
    unsubscribeNearby();
    nb.subId = `nearby-${++nb.subCount}`;
    ws.send(JSON.stringify({ op: "subscribe", id: nb.subId, skus: [nb.query.sku] }));
    return true;
  }

  function unsubscribeNearby() {
    clearTimeout(nb.timer);
    nb.timer = null;
    if (nb.subId && state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify({ op: "unsubscribe", id: nb.subId }));
    }
    nb.subId = null;
  }

  function nearbySubscribed() {
    plan(); // fresh: nothing that changed before the subscription is missed
  }

  function schedulePlan() {
    if (nb.timer) return; // one re-plan per PLAN_DELAY_MS however many changes arrive
    nb.timer = setTimeout(() => {
      nb.timer = null;
      if (nb.inflight) nb.dirty = true; // never more than one re-plan in flight
      else plan();
    }, PLAN_DELAY_MS);
  }

  function kmBetween(lat1, lon1, lat2, lon2) {
    const rad = Math.PI / 180;
    const dp = (lat2 - lat1) * rad;
    const dl = (lon2 - lon1) * rad;
    const h = Math.sin(dp / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dl / 2) ** 2;
    return 2 * EARTH_KM * Math.asin(Math.min(1, Math.sqrt(h)));
  }

  // Could a change at `id` alter the answer? Unknown locations (new since we read) count as yes.
  function mayMatter(id) {
    const loc = state.locs.get(id);
    if (!loc) return true;
    if (!loc.pickup || typeof loc.lat !== "number" || typeof loc.lon !== "number") return false;
    const q = nb.query;
    return kmBetween(q.lat, q.lon, loc.lat, loc.lon) <= q.radius * 1.001 + 0.01;
  }

  // The channel's view of a change (API.md "Channel availability"): less the location's fence.
  function channelView(msg) {
    const loc = state.locs.get(msg.location);
    if (!loc) return null;
    const fence = nb.query.channel ? (loc.channel_safety_stock || {})[nb.query.channel] || 0 : 0;
    const available = Math.max(0, msg.available - fence);
    const limited = loc.limited_threshold ?? 2;
    const status = available === 0 ? "out_of_stock" : available <= limited ? "limited" : "in_stock";
    return { available, status };
  }

  function nearbyChange(msg) {
    if (!nb.query || msg.sku !== nb.query.sku) return;
    const row = nb.rows.get(msg.location);
    if (row) {
      const seen = channelView(msg);
      if (seen) setAvailability(row, seen.available, seen.status, true);
      schedulePlan();
    } else if (mayMatter(msg.location)) {
      schedulePlan();
    }
  }

  // -- reading and showing

  async function plan() {
    const q = nb.query;
    if (!q) return;
    const token = ++nb.token;
    const body = {
      lines: [{ sku: q.sku, qty: q.qty }],
      fulfillment: "pickup",
      near: { lat: q.lat, lon: q.lon },
      radius_km: q.radius,
      limit: PLAN_LIMIT,
    };
    if (q.channel) body.channel = q.channel;
    let options, cells;
    nb.inflight = true;
    try {
      options = (await api("/v1/sourcing/plans", body)).options;
      const ids = options.map((o) => o.allocations[0].location);
      cells = new Map();
      if (ids.length) {
        const read = { skus: [q.sku], locations: ids };
        if (q.channel) read.channel = q.channel;
        for (const c of (await api("/v1/availability", read)).items) cells.set(c.location, c);
      }
    } catch (err) {
      if (token !== nb.token) return;
      if (err instanceof AuthError) return showLogin("That key no longer works.");
      $("nearby-status").textContent = "";
      nearbyNotice(`Could not find pickup options: ${err.message}`);
      return;
    } finally {
      if (token === nb.token) nb.inflight = false;
      if (!nb.inflight && nb.dirty) {
        nb.dirty = false;
        schedulePlan();
      }
    }
    if (token !== nb.token || q !== nb.query) return; // a newer search or re-plan took over
    nearbyNotice("");
    showOptions(q, options, cells);
  }

  function showOptions(q, options, cells) {
    const rows = new Map();
    const joined = nb.shownFor === q;
    const items = options.map((option) => {
      const alloc = option.allocations[0];
      const cell = cells.get(alloc.location) || { available: 0, status: "out_of_stock" };
      const old = nb.rows.get(alloc.location);
      const row = old || { li: makeOption(alloc.location), available: null, status: null };
      fillOption(row, alloc, option.why);
      setAvailability(row, cell.available, cell.status, Boolean(old));
      if (!old && joined) flash(row.li);
      rows.set(alloc.location, row);
      return row.li;
    });
    nb.rows = rows;
    nb.shownFor = q;
    $("nearby-list").replaceChildren(...items);
    const what = `${q.qty.toLocaleString()} × ${q.sku}${q.channel ? ` (${q.channel})` : ""}`;
    const within = `within ${q.radius.toLocaleString()} km of ${q.from}`;
    $("nearby-empty").textContent = `Nowhere ${within} has ${what} for pickup.`;
    $("nearby-empty").hidden = items.length > 0;
    const status = items.length
      ? `${items.length} pickup option${items.length === 1 ? "" : "s"} for ${what} ${within}, nearest first.`
      : "";
    // A live region: say it again only when it changed, not on every re-plan.
    if ($("nearby-status").textContent !== status) $("nearby-status").textContent = status;
    if (options.some((o) => !state.locs.has(o.allocations[0].location))) refreshNames();
  }

  // A location created since the board read the list: read it again for its name.
  async function refreshNames() {
    if (nb.naming) return;
    nb.naming = true;
    try {
      rememberLocations((await api("/v1/locations")).items);
      for (const [id, row] of nb.rows) row.li.querySelector(".opt-name").textContent = nameOf(id);
    } catch (_) {
      /* the id stands in for the name */
    } finally {
      nb.naming = false;
    }
  }

  function nameOf(id) {
    const loc = state.locs.get(id);
    return loc && loc.name !== loc.id ? `${loc.name} · ${loc.id}` : id;
  }

  function makeOption(id) {
    const li = document.createElement("li");
    li.className = "option";
    li.dataset.location = id;
    const head = document.createElement("div");
    head.className = "opt-head";
    for (const cls of ["opt-name", "opt-km"]) {
      const span = document.createElement("span");
      span.className = cls;
      head.append(span);
    }
    const stock = document.createElement("div");
    stock.className = "opt-stock";
    const count = document.createElement("span");
    count.className = "opt-available";
    stock.append(count, document.createElement("span"));
    stock.lastChild.className = "status";
    const why = document.createElement("p");
    why.className = "opt-why";
    li.append(head, stock, why);
    return li;
  }

  function fillOption(row, alloc, why) {
    row.li.querySelector(".opt-name").textContent = nameOf(alloc.location);
    row.li.querySelector(".opt-km").textContent =
      typeof alloc.distance_km === "number" ? `${alloc.distance_km.toFixed(1)} km` : "distance unknown";
    row.li.querySelector(".opt-why").textContent = why;
  }

  function setAvailability(row, available, status, live) {
    if (row.available === available && row.status === status) return;
    const count = row.li.querySelector(".opt-available");
    count.textContent = `${available.toLocaleString()} available`;
    count.classList.remove("up", "down");
    if (live && row.available !== null && available !== row.available) {
      count.classList.add(available > row.available ? "up" : "down");
      flash(row.li);
    }
    const pill = row.li.querySelector(".status");
    pill.className = `status ${status}`;
    pill.textContent = STATUS_TEXT[status] || status;
    row.available = available;
    row.status = status;
  }

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

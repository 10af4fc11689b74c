// The dashboard's script, served as /dashboard.js: vanilla JavaScript, no framework, no build.
// It routes on the URL's hash, polls the JSON API, and builds every element with createElement
// and textContent — values from the server (payloads, error messages, names) are never parsed as
// HTML. Written without template literals so that it can live in this String.raw.
export const DASHBOARD_SCRIPT = String.raw`(function () {
  "use strict";

  var BASE = document.documentElement.getAttribute("data-base") || "/";
  var STATUSES = ["pending", "processing", "completed", "failed", "cancelled"];
  var SEVERITIES = ["ok", "wait", "stuck"];
  var state = {
    session: null,
    view: null,
    timer: null,
    paused: false,
    busy: false,
    lastOk: 0,
    failing: null,
    pollMs: 3000,
    skewMs: 0
  };
  var main = document.getElementById("main");

  // --- elements: text only, never HTML -------------------------------------------------------

  function h(tag, props) {
    var el = document.createElement(tag);
    setProps(el, props);
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }

  function setProps(el, props) {
    if (!props) return;
    Object.keys(props).forEach(function (key) {
      var value = props[key];
      if (value === undefined || value === null || value === false) return;
      if (key === "class") el.setAttribute("class", String(value));
      else if (key === "text") el.textContent = String(value);
      else if (key === "style") Object.keys(value).forEach(function (name) { el.style[name] = value[name]; });
      else if (key.slice(0, 2) === "on") el.addEventListener(key.slice(2), value);
      else if (key === "href") el.setAttribute("href", internalHref(value));
      else el.setAttribute(key, value === true ? "" : String(value));
    });
  }

  function append(parent, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) {
      child.forEach(function (c) { append(parent, c); });
      return;
    }
    parent.appendChild(typeof child === "object" && child.nodeType ? child : document.createTextNode(String(child)));
  }

  /** Links only ever go to the dashboard's own views. */
  function internalHref(value) {
    var href = String(value);
    return href.charAt(0) === "#" ? href : "#/";
  }

  var SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    var el = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (name) { el.setAttribute(name, String(attrs[name])); });
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }

  function fill(el, content) {
    while (el.firstChild) el.removeChild(el.firstChild);
    append(el, content);
  }

  // --- formatting ----------------------------------------------------------------------------

  /** UUIDv7s made together share their first characters (a timestamp): show the start and the end. */
  function shortId(id) {
    var text = String(id || "");
    return text.length > 16 ? text.slice(0, 8) + "…" + text.slice(-4) : text;
  }
  function num(n) { return Number(n || 0).toLocaleString("en-US"); }
  function serverNow() { return Date.now() + state.skewMs; }

  function duration(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return s % 60 ? m + " min " + (s % 60) + " s" : m + " min";
    var hours = Math.floor(m / 60);
    if (hours < 24) return m % 60 ? hours + " h " + (m % 60) + " min" : hours + " h";
    var d = Math.floor(hours / 24);
    return hours % 24 ? d + " d " + (hours % 24) + " h" : d + " d";
  }

  /** "3 min 5 s ago"; coarse: "3 min ago". */
  function ago(iso, coarse) {
    if (!iso) return "—";
    var delta = serverNow() - Date.parse(iso);
    var text = duration(Math.abs(delta));
    if (coarse) text = text.split(" ").slice(0, 2).join(" ");
    return delta >= 0 ? text + " ago" : "in " + text;
  }

  function clock(iso) {
    if (!iso) return "—";
    var date = new Date(iso);
    var time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
    if (new Date(serverNow()).toDateString() === date.toDateString()) return time;
    return date.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + time;
  }

  function when(iso) {
    return iso ? h("span", { title: new Date(iso).toISOString() }, clock(iso), " ", h("span", { class: "faint" }, "(" + ago(iso) + ")")) : h("span", { class: "faint" }, "—");
  }

  function errorText(error) {
    if (error === null || error === undefined) return "";
    if (typeof error === "object") {
      var name = typeof error.name === "string" ? error.name : "";
      var message = typeof error.message === "string" ? error.message : JSON.stringify(error);
      return name ? name + ": " + message : message;
    }
    return String(error);
  }

  function pretty(value) {
    return value === undefined || value === null ? "null" : JSON.stringify(value, null, 2);
  }

  // --- pieces --------------------------------------------------------------------------------

  function pill(status) {
    var known = STATUSES.concat(["live", "gone", "stopped"]).indexOf(status) >= 0;
    var label = status === "processing" ? "running" : status;
    return h("span", { class: "pill " + (known ? "s-" + status : ""), "data-status": status }, label);
  }

  function dot(severity) {
    var known = SEVERITIES.indexOf(severity) >= 0 ? severity : "ok";
    return h("span", { class: "sev sev-" + known, title: known });
  }

  function reasonCell(reason, fallback) {
    if (!reason) return fallback ? h("span", { class: "error-text" }, fallback) : h("span", { class: "faint" }, "—");
    return h("div", { class: "reason", "data-reason": reason.code }, dot(reason.severity), h("span", { class: "text" }, reason.text));
  }

  /** A finished row: its error if it has one, else when it finished. */
  function outcomeCell(status, finishedAt, error, quiet) {
    if (error && status !== "completed") return h("span", { class: "error-text" }, errorText(error));
    if (quiet) return h("span", { class: "faint" }, "—");
    var word = { completed: "Completed ", failed: "Failed ", cancelled: "Cancelled " }[status] || "Finished ";
    return h("span", { class: "muted" }, word + ago(finishedAt, true));
  }

  function progress(counts, big) {
    var total = Math.max(1, counts.total);
    var part = function (key, cls) {
      return counts[key] ? h("span", { class: cls, style: { width: (100 * counts[key]) / total + "%" }, title: counts[key] + " " + key }) : null;
    };
    var done = counts.completed + counts.failed + counts.cancelled;
    return h("div", null,
      h("div", { class: "bar" + (big ? " big" : ""), role: "img", "aria-label": done + " of " + counts.total + " done" },
        part("completed", "b-completed"), part("failed", "b-failed"), part("cancelled", "b-cancelled"), part("processing", "b-processing")),
      h("div", { class: "bar-label" }, num(done) + " / " + num(counts.total) + (counts.failed ? " · " + num(counts.failed) + " failed" : "")));
  }

  function section(title, hint, content, attrs) {
    return h("section", Object.assign({ class: "section" }, attrs || {}),
      h("div", { class: "section-head" }, h("h2", null, title), hint ? h("span", { class: "hint" }, hint) : null),
      content);
  }

  function card(content, cls) { return h("div", { class: "card " + (cls || "") }, content); }

  /** A table: columns are [label, className?]; each row is an array of cells. */
  function table(columns, rows, empty) {
    if (!rows.length) return h("div", { class: "empty" }, empty || "Nothing here.");
    return h("div", { class: "table-wrap" },
      h("table", null,
        h("thead", null, h("tr", null, columns.map(function (c) { return h("th", { class: c[1] || null }, c[0]); }))),
        h("tbody", null, rows.map(function (cells) {
          var attrs = cells.attrs || null;
          return h("tr", attrs, cells.map(function (cell, i) {
            return h("td", { class: columns[i][1] || null, "data-label": columns[i][0] || null }, cell);
          }));
        }))));
  }

  function stat(label, value, note, tone) {
    return h("div", { class: "card stat" + (tone ? " tone-" + tone : ""), "data-stat": label },
      h("div", { class: "label" }, label), h("div", { class: "value" }, value), note ? h("div", { class: "note" }, note) : null);
  }

  function reasonBox(reason, title) {
    var severity = SEVERITIES.indexOf(reason.severity) >= 0 ? reason.severity : "ok";
    return card(h("div", { class: "reason-box sev-box-" + severity, "data-reason": reason.code },
      dot(severity), h("div", null, h("div", { class: "title" }, title || "Why it is waiting"), h("div", { class: "text" }, reason.text))));
  }

  function outcomeBox(status, finishedAt, error) {
    var text = status === "completed" ? "Completed " : status === "failed" ? "Failed " : "Cancelled ";
    var severity = status === "completed" ? "ok" : status === "failed" ? "stuck" : "wait";
    return card(h("div", { class: "reason-box sev-box-" + severity },
      dot(severity), h("div", null, h("div", { class: "title" }, "Finished"),
        h("div", { class: "text" }, text, when(finishedAt)),
        error ? h("div", { class: "error-text" }, errorText(error)) : null)));
  }

  function idLink(kind, id) {
    return h("a", { href: "#/" + kind + "/" + encodeURIComponent(id), class: "id", title: id }, shortId(id));
  }

  /** The first page as just read, then the older pages loaded before, without repeats. */
  function merge(first, older, key) {
    var seen = {};
    first.forEach(function (item) { seen[key(item)] = true; });
    return first.concat(older.filter(function (item) { return !seen[key(item)]; }));
  }
  function byId(item) { return item.id; }

  function moreButton(page, load) {
    if (!page.nextCursor) return null;
    return h("div", { class: "more" }, h("button", { type: "button", class: "btn", onclick: function (event) {
      event.target.disabled = true;
      load(page.nextCursor);
    } }, "Load older"));
  }

  // --- API -----------------------------------------------------------------------------------

  function api(path, init) {
    init = init || {};
    init.credentials = "same-origin";
    init.headers = Object.assign({ accept: "application/json" }, init.headers || {});
    return fetch(BASE + "api/" + path, init).then(function (response) {
      return response.text().then(function (body) {
        var data = null;
        try { data = body ? JSON.parse(body) : null; } catch (ignored) { data = null; }
        if (!response.ok) {
          var error = new Error((data && data.message) || "HTTP " + response.status);
          error.status = response.status;
          error.code = data && data.error;
          throw error;
        }
        if (data && typeof data.now === "string") state.skewMs = Date.parse(data.now) - Date.now();
        return data;
      });
    });
  }

  function post(path, body) {
    return api(path, {
      method: "POST",
      headers: { "content-type": "application/json", "x-dashboard-csrf": state.session.csrfToken },
      body: JSON.stringify(body || {})
    });
  }

  function query(params) {
    var search = new URLSearchParams();
    Object.keys(params).forEach(function (key) { if (params[key]) search.set(key, params[key]); });
    var text = search.toString();
    return text ? "?" + text : "";
  }

  // --- feedback ------------------------------------------------------------------------------

  function toast(message, kind, code) {
    var el = h("div", { class: "toast" + (kind === "error" ? " error" : ""), "data-kind": kind || "ok" },
      h("div", null, message), code ? h("div", { class: "code" }, code) : null);
    document.getElementById("toasts").appendChild(el);
    setTimeout(function () { if (el.parentNode) el.parentNode.removeChild(el); }, 7000);
  }

  /** A button that asks for a second click before it acts. */
  function confirmButton(label, confirmLabel, cls, run) {
    var armed = false;
    var timer = null;
    var button = h("button", { type: "button", class: "btn " + (cls || ""), "data-action": label });
    function disarm() {
      armed = false;
      clearTimeout(timer);
      button.textContent = label;
      button.classList.remove("armed");
    }
    button.addEventListener("click", function () {
      if (!armed) {
        armed = true;
        button.textContent = confirmLabel;
        button.classList.add("armed");
        timer = setTimeout(disarm, 5000);
        return;
      }
      disarm();
      button.disabled = true;
      run().then(function (message) { toast(message); }, function (error) { toast(error.message, "error", error.code); })
        .then(function () { button.disabled = false; refresh(false); });
    });
    disarm();
    return button;
  }

  function liveStatus() {
    var live = document.getElementById("live");
    var text = document.getElementById("live-text");
    live.classList.toggle("paused", state.paused);
    live.classList.toggle("error", !!state.failing);
    if (state.failing) text.textContent = "Not updating: " + state.failing.message;
    else if (state.paused) text.textContent = "Paused";
    else if (state.lastOk) text.textContent = "Live · updated " + duration(Date.now() - state.lastOk) + " ago";
    document.getElementById("live-toggle").textContent = state.paused ? "Resume" : "Pause";
  }

  // --- views ---------------------------------------------------------------------------------

  function overviewView() {
    var stats = h("div", { class: "stats", id: "stats" });
    var attention = card(null);
    var chart = card(null, "card-pad");
    var queues = card(null);
    var batches = card(null);
    var workers = card(null);
    var subscribers = card(null);
    fill(main, [
      h("div", { class: "page-head" }, h("div", null, h("h1", null, "Overview"),
        h("div", { class: "sub" }, "What is queued, running and stuck — and why."))),
      stats,
      section("Needs attention", "unfinished work that waits longer than it should", attention, { id: "attention" }),
      section("Recent batches", h("a", { href: "#/batches" }, "all batches"), batches, { id: "recent-batches" }),
      section("Queues", "per type and tenant", queues, { id: "queues" }),
      h("div", { class: "columns even" },
        h("div", null,
          section("Throughput", "operations finished per minute, last hour", chart),
          section("Subscribers", "outbox deliveries", subscribers, { id: "subscribers" })),
        section("Workers", "from their heartbeats", workers, { id: "workers" }))
    ]);
    return {
      tab: "overview",
      refresh: function () {
        return api("overview").then(function (data) {
          var sum = function (list, key) { return list.reduce(function (total, row) { return total + (row[key] || 0); }, 0); };
          var live = data.workers.filter(function (w) { return w.state === "live"; }).length;
          fill(stats, [
            stat("Claimable", num(sum(data.queues, "claimable")), "due now"),
            stat("Scheduled", num(sum(data.queues, "scheduled")), "not due yet"),
            stat("Running", num(sum(data.queues, "processing")), "under a lease"),
            stat("In flight", num(sum(data.queues, "batchesInFlight")), "batches"),
            stat("Completed · 1 h", num(sum(data.queues, "completedLastHour")), null, "completed"),
            stat("Failed · 1 h", num(sum(data.queues, "failedLastHour")), null, sum(data.queues, "failedLastHour") ? "failed" : null),
            stat("Undelivered", num(sum(data.subscribers, "backlog")), "outbox backlog", sum(data.subscribers, "backlog") ? "wait" : null),
            stat("Dead", num(sum(data.subscribers, "dead")), "deliveries", sum(data.subscribers, "dead") ? "failed" : null),
            stat("Workers", num(live), data.workers.length - live ? "live · " + (data.workers.length - live) + " gone" : "live")
          ]);
          fill(attention, attentionList(data));
          fill(chart, throughputChart(data.throughput));
          fill(queues, table(
            [["Type"], ["Tenant"], ["Due", "num"], ["Scheduled", "num opt"], ["Running", "num"], ["Oldest due", "num opt"],
              ["Done 1 h", "num opt"], ["Failed 1 h", "num opt"], ["Why waiting", "why"]],
            data.queues.map(function (q) {
              var filter = query({ type: q.type, tenant: q.tenantId });
              var row = [h("a", { href: "#/batches" + filter }, q.type), h("span", { class: "nowrap" }, q.tenantId), num(q.claimable), num(q.scheduled),
                num(q.processing), q.claimable ? duration(q.oldestClaimableAgeSeconds * 1000) : "—",
                num(q.completedLastHour), q.failedLastHour ? h("span", { class: "error-text" }, num(q.failedLastHour)) : "0",
                reasonCell(q.reason)];
              row.attrs = { "data-type": q.type, "data-tenant": q.tenantId };
              return row;
            }), "No operations yet."));
          fill(batches, batchTable(data.recentBatches, "No batches yet."));
          fill(workers, table([["Worker"], ["Types", "opt"], ["Load", "num"], ["Seen", "nowrap"], ["State"]],
            data.workers.map(function (w) {
              return [h("div", { class: "nowrap" }, h("div", { class: "id" }, w.id), h("div", { class: "faint" }, w.hostname + " · pid " + w.pid)),
                w.types.join(", "), (w.running === null ? "—" : num(w.running)) + " / " + num(w.concurrency),
                ago(w.seenAt, true), pill(w.state)];
            }), "No worker has reported yet."));
          fill(subscribers, table([["Subscriber"], ["Backlog", "num"], ["Oldest", "num"], ["Dead", "num"]],
            data.subscribers.map(function (s) {
              return [s.subscriber, num(s.backlog), s.backlog ? duration(s.oldestUndeliveredAgeSeconds * 1000) : "—",
                s.dead ? h("a", { href: "#/dead" + query({ subscriber: s.subscriber }), class: "error-text" }, num(s.dead)) : "0"];
            }), "No subscriber is registered."));
        });
      }
    };
  }

  function attentionList(data) {
    var items = [];
    var queued = {};
    data.queues.forEach(function (q) {
      if (q.reason && q.reason.severity !== "ok") {
        queued[JSON.stringify([q.type, q.tenantId, q.reason.code])] = true;
        items.push({ severity: q.reason.severity, what: q.type + " · " + q.tenantId, why: q.reason.text,
          href: "#/batches" + query({ type: q.type, tenant: q.tenantId, status: "pending,processing" }) });
      }
    });
    data.recentBatches.forEach(function (b) {
      if (b.reason && b.reason.severity === "stuck" && !queued[JSON.stringify([b.type, b.tenantId, b.reason.code])]) {
        items.push({ severity: "stuck", what: "Batch " + shortId(b.id) + " · " + b.type, why: b.reason.text, href: "#/batches/" + b.id });
      }
    });
    data.subscribers.forEach(function (s) {
      if (s.dead) items.push({ severity: "stuck", what: "Subscriber " + s.subscriber, why: num(s.dead) + " deliveries are dead: they used up their attempts.", href: "#/dead" + query({ subscriber: s.subscriber }) });
      else if (s.backlog && s.oldestUndeliveredAgeSeconds > 60) items.push({ severity: "wait", what: "Subscriber " + s.subscriber, why: num(s.backlog) + " events not delivered yet, the oldest for " + duration(s.oldestUndeliveredAgeSeconds * 1000) + ".", href: "#/dead" });
    });
    if (!items.length) return h("div", { class: "all-clear" }, "Nothing is stuck: every due row is being taken, and every delivery is on time.");
    items.sort(function (a, b) { return SEVERITIES.indexOf(b.severity) - SEVERITIES.indexOf(a.severity); });
    return h("ul", { class: "attention" }, items.map(function (item) {
      return h("li", { "data-severity": item.severity }, dot(item.severity),
        h("div", null, h("a", { href: item.href, class: "what" }, item.what), h("div", { class: "why" }, item.why)));
    }));
  }

  function throughputChart(minutes) {
    var width = 600, height = 130, left = 34, bottom = 16, top = 8;
    var peak = Math.max(1, Math.max.apply(null, minutes.map(function (m) { return m.completed + m.failed + m.cancelled; })));
    // The axis goes to twice a round step, so that its middle line is a round number too.
    var magnitude = Math.pow(10, Math.floor(Math.log10(peak / 2)));
    var step = [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].map(function (f) { return f * magnitude; })
      .filter(function (v) { return 2 * v >= peak && v === Math.round(v); })[0] || Math.ceil(peak / 2);
    var max = Math.max(2, 2 * step);
    var slot = (width - left) / Math.max(1, minutes.length);
    var scale = function (n) { return ((height - bottom - top) * n) / max; };
    var y0 = height - bottom;
    var total = minutes.reduce(function (sum, m) { return sum + m.completed + m.failed + m.cancelled; }, 0);
    var chart = svg("svg", { class: "chart", viewBox: "0 0 " + width + " " + height, preserveAspectRatio: "none", role: "img",
      "aria-label": total + " operations finished in the last hour" },
      [0, 0.5, 1].map(function (f) {
        var y = y0 - (height - bottom - top) * f;
        return [svg("line", { class: "grid-line", x1: left, x2: width, y1: y, y2: y }),
          svg("text", { x: left - 6, y: y + 3, "text-anchor": "end" }, num(Math.round(max * f)))];
      }),
      minutes.map(function (m, i) {
        var x = left + i * slot + 1;
        var w = Math.max(1, slot - 2);
        var c = scale(m.completed), f = scale(m.failed), x2 = scale(m.cancelled);
        return svg("g", null,
          svg("title", null, clock(m.minute) + " — " + m.completed + " completed, " + m.failed + " failed, " + m.cancelled + " cancelled"),
          svg("rect", { class: "c-completed", x: x, width: w, y: y0 - c, height: c }),
          svg("rect", { class: "c-failed", x: x, width: w, y: y0 - c - f, height: f }),
          svg("rect", { class: "c-cancelled", x: x, width: w, y: y0 - c - f - x2, height: x2 }));
      }),
      svg("text", { x: left, y: height - 3 }, "60 min ago"),
      svg("text", { x: width, y: height - 3, "text-anchor": "end" }, "now"));
    return [chart, h("div", { class: "legend" },
      h("span", null, h("i", { style: { background: "var(--completed)" } }), "completed"),
      h("span", null, h("i", { style: { background: "var(--failed)" } }), "failed"),
      h("span", null, h("i", { style: { background: "var(--cancelled)" } }), "cancelled"),
      h("span", { class: "faint" }, num(total) + " in the last hour"))];
  }

  function batchTable(batches, empty) {
    return table([["Batch"], ["Tenant", "opt"], ["Status"], ["Progress"], ["Why waiting / outcome", "why"], ["Created", "nowrap opt"]],
      batches.map(function (b) {
        var row = [h("div", { class: "nowrap" }, idLink("batches", b.id), h("div", { class: "faint" }, b.type)),
          h("span", { class: "nowrap" }, b.tenantId), pill(b.status), progress(b.counts),
          b.reason ? reasonCell(b.reason) : outcomeCell(b.status, b.finishedAt, b.error), ago(b.createdAt, true)];
        row.attrs = { "data-batch": b.id };
        return row;
      }), empty);
  }

  function filterForm(route, fields, target) {
    var form = h("form", { class: "filters", onsubmit: function (event) {
      event.preventDefault();
      var params = {};
      fields.forEach(function (f) { params[f.name] = form.elements[f.name].value.trim(); });
      location.hash = target + query(params);
    } });
    fields.forEach(function (f) {
      var value = route.query.get(f.name) || "";
      var input;
      if (f.options) {
        input = h("select", { name: f.name }, f.options.map(function (o) {
          return h("option", { value: o[0], selected: o[0] === value }, o[1]);
        }));
      } else {
        input = h("input", { type: "text", name: f.name, value: value, placeholder: f.placeholder || "", autocomplete: "off" });
      }
      form.appendChild(h("label", null, f.label, input));
    });
    form.appendChild(h("button", { type: "submit", class: "btn" }, "Filter"));
    return form;
  }

  function statusOptions() {
    return [["", "Any status"], ["pending,processing", "Unfinished"]].concat(STATUSES.map(function (s) {
      return [s, s === "processing" ? "running" : s];
    }));
  }

  function typeOptions() {
    return [["", "Any type"]].concat(((state.session && state.session.types) || []).map(function (t) { return [t, t]; }));
  }

  function listView(route, kind) {
    var list = card(null);
    var title = kind === "batches" ? "Batches" : "Operations";
    fill(main, [
      h("div", { class: "page-head" }, h("div", null, h("h1", null, title),
        h("div", { class: "sub" }, kind === "batches" ? "Newest first. Each unfinished batch says what it waits for." : "Standalone operations (children are listed in their batch), newest first."))),
      h("div", { class: "toolbar" }, filterForm(route, [
        { name: "tenant", label: "Tenant", placeholder: "any tenant" },
        { name: "type", label: "Type", options: typeOptions() },
        { name: "status", label: "Status", options: statusOptions() }
      ], "#/" + kind)),
      list
    ]);
    var older = [];
    var params = { tenant: route.query.get("tenant"), type: route.query.get("type"), status: route.query.get("status") };
    var render = function (items, page) {
      var rows = merge(items, older, byId);
      fill(list, [kind === "batches" ? batchTable(rows, "No batch matches.") : operationTable(rows, "No operation matches."),
        moreButton(page, function (cursor) {
          api(kind + query(Object.assign({ cursor: cursor }, params))).then(function (next) {
            older = older.concat(next.items);
            render(items, next);
          }, function (error) { toast(error.message, "error", error.code); });
        })]);
    };
    return {
      tab: kind,
      refresh: function () {
        return api(kind + query(params)).then(function (page) {
          render(page.items, older.length ? { nextCursor: null } : page);
        });
      }
    };
  }

  function operationTable(operations, empty) {
    return table([["Operation"], ["Tenant", "opt"], ["Status"], ["Attempt", "num"], ["Why waiting / error", "why"], ["Created", "nowrap opt"]],
      operations.map(function (o) {
        var row = [h("div", { class: "nowrap" }, idLink("operations", o.id), h("div", { class: "faint" }, o.type)),
          h("span", { class: "nowrap" }, o.tenantId), pill(o.status), o.attempts + " / " + o.maxAttempts,
          o.reason ? reasonCell(o.reason) : outcomeCell(o.status, o.finishedAt, o.error), ago(o.createdAt, true)];
        row.attrs = { "data-operation": o.id };
        return row;
      }), empty);
  }

  function batchView(route) {
    var id = route.parts[1];
    var status = route.query.get("status") || "";
    var head = h("div", { class: "page-head" });
    var why = h("div");
    var bar = card(null, "card-pad");
    var children = card(null);
    var events = card(null);
    var extra = h("div");
    var cancel = confirmButton("Cancel batch", "Click again to cancel", "btn-danger", function () {
      return post("batches/" + encodeURIComponent(id) + "/cancel").then(function (answer) {
        return "Batch " + shortId(id) + " is " + answer.batch.status + ": pending children cancelled, running ones asked to stop.";
      });
    });
    var retry = confirmButton("Retry failed and cancelled", "Click again to retry", "", function () {
      return post("batches/" + encodeURIComponent(id) + "/retry").then(function (answer) {
        return "Batch " + shortId(id) + " is " + answer.batch.status + " again: its failed and cancelled children are queued.";
      });
    });
    var actions = h("div", { class: "actions" }, state.session.readOnly ? null : [cancel, retry]);
    var filters = h("div", { class: "segmented", role: "tablist" }, [["", "All"], ["pending,processing", "Unfinished"], ["pending", "Pending"], ["processing", "Running"],
      ["failed", "Failed"], ["cancelled", "Cancelled"], ["completed", "Completed"]].map(function (f) {
      return h("a", { href: "#/batches/" + encodeURIComponent(id) + query({ status: f[0] }), class: f[0] === status ? "active" : null }, f[1]);
    }));
    fill(main, [
      h("div", { class: "crumb" }, h("a", { href: "#/batches" }, "Batches"), " / ", h("span", { class: "id" }, id)),
      head, why,
      section("Progress", null, bar),
      section("Children", null, [h("div", { class: "toolbar" }, filters), children], { id: "children" }),
      h("div", { class: "columns" }, section("Events", "in order, with each subscriber's delivery", events, { id: "events" }), extra)
    ]);
    var older = [];
    return {
      tab: "batches",
      refresh: function () {
        return api("batches/" + encodeURIComponent(id) + query({ status: status })).then(function (data) {
          var b = data.batch;
          fill(head, [h("div", null, h("h1", null, "Batch ", h("span", { class: "id" }, shortId(b.id)), " ", pill(b.status)),
            h("div", { class: "sub" }, h("span", null, b.type), h("span", null, "tenant " + b.tenantId),
              h("span", null, b.failurePolicy), b.episode > 1 ? h("span", null, "episode " + b.episode) : null,
              h("span", null, "created ", when(b.createdAt)), b.idempotencyKey ? h("span", { class: "mono" }, "key " + b.idempotencyKey) : null)),
            actions]);
          cancel.disabled = ["completed", "failed", "cancelled"].indexOf(b.status) >= 0;
          retry.disabled = !(b.counts.failed + b.counts.cancelled);
          fill(why, b.reason ? reasonBox(b.reason) : outcomeBox(b.status, b.finishedAt, b.error));
          var c = b.counts;
          fill(bar, [progress(c, true), h("div", { class: "legend", style: { marginTop: "8px" } },
            h("span", null, h("i", { style: { background: "var(--completed)" } }), num(c.completed) + " completed"),
            h("span", null, h("i", { style: { background: "var(--failed)" } }), num(c.failed) + " failed"),
            h("span", null, h("i", { style: { background: "var(--cancelled)" } }), num(c.cancelled) + " cancelled"),
            h("span", null, h("i", { style: { background: "var(--processing)" } }), num(c.processing) + " running"),
            h("span", null, h("i", { style: { background: "var(--pending-bg)" } }), num(c.pending) + " pending"))]);
          var renderChildren = function (page) {
            fill(children, [table([["Child"], ["Status"], ["Attempt", "num"], ["Why waiting / error", "why"], ["Updated", "nowrap opt"]],
              merge(page.items, older, byId).map(function (o) {
                var row = [idLink("operations", o.id), pill(o.status), o.attempts + " / " + o.maxAttempts,
                  o.reason ? reasonCell(o.reason) : outcomeCell(o.status, o.finishedAt, o.error, true), ago(o.finishedAt || o.updatedAt, true)];
                row.attrs = { "data-operation": o.id, "data-status": o.status };
                return row;
              }), "No child matches."),
              moreButton(older.length ? { nextCursor: null } : page, function (cursor) {
                api("batches/" + encodeURIComponent(id) + query({ status: status, cursor: cursor })).then(function (next) {
                  older = older.concat(next.children.items);
                  renderChildren({ items: page.items, nextCursor: next.children.nextCursor });
                });
              })]);
          };
          renderChildren(data.children);
          fill(events, eventTimeline(data.events));
          fill(extra, b.metadata !== null && b.metadata !== undefined ? section("Metadata", null, card(h("pre", { class: "json" }, pretty(b.metadata)))) : null);
        });
      }
    };
  }

  function eventTimeline(events, extraEntries) {
    var entries = (extraEntries || []).concat(events.map(function (e) {
      return { at: e.createdAt, event: e };
    }));
    if (!entries.length) return h("div", { class: "empty" }, "No events are stored (delivered ones are pruned after a while).");
    entries.sort(function (a, b) { return Date.parse(a.at) - Date.parse(b.at); });
    return h("ol", { class: "timeline" }, entries.map(function (entry) {
      if (!entry.event) return h("li", { class: "t-" + (entry.tone || "") }, h("div", null, entry.label), h("div", { class: "when" }, clock(entry.at)));
      var e = entry.event;
      var tone = /completed$/.test(e.topic) ? "completed" : /failed$/.test(e.topic) ? "failed" : /cancelled$/.test(e.topic) ? "cancelled" : "processing";
      return h("li", { class: "t-" + tone, "data-topic": e.topic },
        h("div", null, h("code", null, e.topic), " ", h("span", { class: "faint" }, "#" + e.id)),
        h("div", { class: "when" }, clock(e.createdAt)),
        h("div", { class: "deliveries" }, e.deliveries.length ? e.deliveries.map(function (d) {
          if (d.kind === "inline") return h("span", { class: "delivery d-delivered", title: "delivered by the process that wrote it, right after its commit (no row is kept)" }, d.subscriber + " ✓");
          if (d.kind === "held") return h("span", { class: "delivery d-owed", title: "the process that wrote it is delivering it; a relay takes over at " + clock(d.availableAt) }, d.subscriber + " · being delivered");
          if (d.deliveredAt) return h("span", { class: "delivery d-delivered", title: "delivered " + clock(d.deliveredAt) }, d.subscriber + " ✓");
          if (d.deadAt) return h("span", { class: "delivery d-dead", title: d.lastError || "" }, d.subscriber + " ✗ dead after " + d.attempts + (d.lastError ? ": " + d.lastError : ""));
          return h("span", { class: "delivery d-owed", title: d.lastError || "" }, d.subscriber + " · owed, attempt " + d.attempts + ", next " + clock(d.availableAt));
        }) : h("span", { class: "faint" }, "no delivery recorded for it")));
    }));
  }

  function operationView(route) {
    var id = route.parts[1];
    var crumb = h("div", { class: "crumb" });
    var head = h("div", { class: "page-head" });
    var why = h("div");
    var facts = card(null);
    var payload = h("pre", { class: "json", id: "payload" });
    var result = h("pre", { class: "json", id: "result" });
    var error = h("pre", { class: "json error-text", id: "error" });
    var timeline = card(null);
    var cancel = confirmButton("Cancel", "Click again to cancel", "btn-danger", function () {
      return post("operations/" + encodeURIComponent(id) + "/cancel").then(function (answer) {
        return answer.state === "cancelled" ? "Cancelled." : "Cancel requested: its handler's signal fires.";
      });
    });
    var retry = confirmButton("Retry", "Click again to retry", "", function () {
      return post("operations/" + encodeURIComponent(id) + "/retry").then(function () { return "Queued again with fresh attempts."; });
    });
    var actions = h("div", { class: "actions" }, state.session.readOnly ? null : [cancel, retry]);
    fill(main, [crumb, head, why,
      section("Details", null, facts),
      h("div", { class: "columns" },
        h("div", null, section("Payload", null, card(payload)), section("Result", null, card(result)), section("Error", null, card(error))),
        section("Timeline", "events in order, with their deliveries", timeline, { id: "timeline" }))]);
    return {
      tab: "operations",
      refresh: function () {
        return api("operations/" + encodeURIComponent(id)).then(function (data) {
          var o = data.operation;
          fill(crumb, data.batch ? [h("a", { href: "#/batches" }, "Batches"), " / ", idLink("batches", data.batch.id), " / ", h("span", { class: "id" }, o.id)]
            : [h("a", { href: "#/operations" }, "Operations"), " / ", h("span", { class: "id" }, o.id)]);
          fill(head, [h("div", null, h("h1", null, "Operation ", h("span", { class: "id" }, shortId(o.id)), " ", pill(o.status)),
            h("div", { class: "sub" }, h("span", null, o.type), h("span", null, "tenant " + o.tenantId),
              h("span", null, "attempt " + o.attempts + " of " + o.maxAttempts))), actions]);
          cancel.disabled = ["completed", "failed", "cancelled"].indexOf(o.status) >= 0;
          retry.disabled = ["failed", "cancelled"].indexOf(o.status) < 0;
          fill(why, data.reason ? reasonBox(data.reason) : outcomeBox(o.status, o.finishedAt, o.status === "completed" ? null : o.error));
          var fact = function (label, value) { return h("div", null, h("dt", null, label), h("dd", null, value)); };
          fill(facts, h("dl", { class: "facts" },
            fact("Type", o.type), fact("Tenant", o.tenantId),
            fact("Batch", data.batch ? [idLink("batches", data.batch.id), " ", pill(data.batch.status)] : "standalone"),
            fact("Attempts", o.attempts + " of " + o.maxAttempts),
            fact("Run at", when(o.runAt)),
            fact("Lease holder", o.lockedBy ? h("span", { class: "id" }, o.lockedBy) : "—"),
            fact("Lease until", when(o.lockedUntil)),
            fact("Cancel requested", when(o.cancelRequestedAt)),
            fact("Idempotency key", o.idempotencyKey ? h("span", { class: "mono" }, o.idempotencyKey) : "—"),
            fact("Created", when(o.createdAt)), fact("Started", when(o.startedAt)), fact("Finished", when(o.finishedAt))));
          payload.textContent = pretty(o.payload);
          result.textContent = pretty(o.result);
          error.textContent = o.error ? pretty(o.error) : "null";
          var extra = [{ at: o.createdAt, label: "created", tone: "" }];
          if (o.startedAt) extra.push({ at: o.startedAt, label: "first claimed", tone: "processing" });
          if (o.finishedAt) extra.push({ at: o.finishedAt, label: "finished " + o.status, tone: o.status });
          fill(timeline, eventTimeline(data.events, extra));
        });
      }
    };
  }

  function deadView(route) {
    var list = card(null);
    var selected = {};
    var params = { subscriber: route.query.get("subscriber"), tenant: route.query.get("tenant") };
    var redeliverSelected = h("button", { type: "button", class: "btn btn-primary", disabled: true, onclick: function () {
      var deliveries = Object.keys(selected).map(function (key) { return selected[key]; });
      redeliverSelected.disabled = true;
      post("dead/redeliver", { deliveries: deliveries }).then(function (answer) {
        toast(answer.redelivered + " deliveries handed back to the relays.");
        selected = {};
      }, function (error) { toast(error.message, "error", error.code); }).then(function () { refresh(false); });
    } }, "Redeliver selected");
    var all = params.subscriber ? confirmButton("Redeliver all for " + params.subscriber, "Click again to redeliver all", "", function () {
      return post("dead/redeliver", { subscriber: params.subscriber, all: true }).then(function (answer) {
        return answer.redelivered + " deliveries handed back to the relays.";
      });
    }) : null;
    var updateButton = function () {
      var n = Object.keys(selected).length;
      redeliverSelected.disabled = n === 0;
      redeliverSelected.textContent = n ? "Redeliver selected (" + n + ")" : "Redeliver selected";
    };
    fill(main, [
      h("div", { class: "page-head" }, h("div", null, h("h1", null, "Dead deliveries"),
        h("div", { class: "sub" }, "Deliveries that used up their attempts. Fix the subscriber, then hand them back to the relays."))),
      h("div", { class: "toolbar" }, filterForm(route, [
        { name: "subscriber", label: "Subscriber", placeholder: "any subscriber" },
        { name: "tenant", label: "Tenant", placeholder: "any tenant" }
      ], "#/dead"), state.session.readOnly ? null : h("div", { class: "actions" }, redeliverSelected, all)),
      list
    ]);
    var older = [];
    var render = function (page) {
      var rows = merge(page.items, older, function (d) { return d.eventId + ":" + d.subscriber; });
      fill(list, [table([[""], ["Event", "nowrap"], ["Subscriber", "nowrap"], ["Topic", "opt"], ["About", "nowrap"], ["Tenant", "nowrap opt"], ["Attempts", "num opt"], ["Died", "nowrap"], ["Last error", "why"]],
        rows.map(function (d) {
          var key = d.eventId + ":" + d.subscriber;
          var box = h("input", { type: "checkbox", "aria-label": "select event " + d.eventId + " for " + d.subscriber, checked: !!selected[key], disabled: state.session.readOnly, onchange: function () {
            if (box.checked) selected[key] = { eventId: d.eventId, subscriber: d.subscriber };
            else delete selected[key];
            updateButton();
          } });
          var kind = d.topic.indexOf("batch.") === 0 ? "batches" : "operations";
          var row = [box, "#" + d.eventId, d.subscriber, h("code", null, d.topic), idLink(kind, d.aggregateId), d.tenantId, num(d.attempts),
            ago(d.deadAt, true), h("span", { class: "error-text" }, d.lastError || "—")];
          row.attrs = { "data-event": d.eventId, "data-subscriber": d.subscriber };
          return row;
        }), "No dead deliveries: every subscriber has taken what it was sent."),
        moreButton(older.length ? { nextCursor: null } : page, function (cursor) {
          api("dead" + query(Object.assign({ cursor: cursor }, params))).then(function (next) {
            older = older.concat(next.items);
            render({ items: page.items, nextCursor: next.nextCursor });
          });
        })]);
      updateButton();
    };
    return {
      tab: "dead",
      refresh: function () { return api("dead" + query(params)).then(render); }
    };
  }

  function notFoundView() {
    fill(main, h("div", { class: "empty" }, "No such page. ", h("a", { href: "#/" }, "Go to the overview.")));
    return { tab: "", refresh: function () { return Promise.resolve(); } };
  }

  // --- routing and the refresh loop ----------------------------------------------------------

  function parseRoute() {
    var hash = location.hash.replace(/^#/, "") || "/";
    var at = hash.indexOf("?");
    var path = at >= 0 ? hash.slice(0, at) : hash;
    var parts = path.split("/").filter(Boolean).map(function (part) {
      try { return decodeURIComponent(part); } catch (ignored) { return part; }
    });
    return { parts: parts, query: new URLSearchParams(at >= 0 ? hash.slice(at + 1) : "") };
  }

  function route() {
    var r = parseRoute();
    var name = r.parts[0] || "overview";
    var view;
    if (name === "overview" && r.parts.length <= 1) view = overviewView(r);
    else if (name === "batches" && r.parts.length === 2) view = batchView(r);
    else if ((name === "batches" || name === "operations") && r.parts.length === 1) view = listView(r, name);
    else if (name === "operations" && r.parts.length === 2) view = operationView(r);
    else if (name === "dead" && r.parts.length === 1) view = deadView(r);
    else view = notFoundView();
    state.view = view;
    Array.prototype.forEach.call(document.querySelectorAll(".tabs a"), function (a) {
      a.classList.toggle("active", a.getAttribute("data-tab") === view.tab);
    });
    refresh(true);
  }

  function refresh(first) {
    var view = state.view;
    if (!view || (state.busy && !first)) return Promise.resolve();
    state.busy = true;
    return view.refresh().then(function () {
      state.lastOk = Date.now();
      state.failing = null;
    }, function (error) {
      state.failing = error;
      if (state.view === view && first) {
        fill(main, h("div", { class: "banner", role: "alert" }, error.message));
      }
    }).then(function () {
      state.busy = false;
      main.setAttribute("data-loaded", String(state.lastOk));
      liveStatus();
    });
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(function () {
      if (state.paused || document.hidden) return schedule();
      refresh(false).then(schedule, schedule);
    }, state.pollMs);
  }

  function showScope(session) {
    var scope = document.getElementById("scope");
    fill(scope, [h("span", { class: "badge" }, session.tenants === "*" ? "All tenants" : "Tenants: " + session.tenants.join(", ")),
      session.readOnly ? h("span", { class: "badge" }, "Read-only") : null]);
  }

  document.getElementById("live-toggle").addEventListener("click", function () {
    state.paused = !state.paused;
    liveStatus();
    if (!state.paused) refresh(false);
  });
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(false); });
  setInterval(liveStatus, 1000);

  api("session").then(function (session) {
    state.session = session;
    state.pollMs = Math.max(500, session.pollIntervalMs || 3000);
    showScope(session);
    window.addEventListener("hashchange", route);
    route();
    schedule();
  }, function (error) {
    fill(main, h("div", { class: "banner", role: "alert" }, "The dashboard could not start: " + error.message));
    state.failing = error;
    liveStatus();
  });
})();
`;

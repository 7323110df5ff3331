/* klconf report: the case x API matrix and the failure list, rendered from the embedded JSON.
   Every string from the data goes into the page through textContent or an attribute, never as
   markup, and only the visible page of rows is built, so large runs stay fast. The per-check
   columns arrive as base64 typed arrays (payload.py), failure details as indices into one table
   of texts, each expanded only when its card is opened. */
(function () {
  "use strict";
  var source = document.getElementById("klconf-data");
  if (!source) { return; }
  var timings = { start: performance.now() };
  var D = JSON.parse(source.textContent);
  timings.parsed = performance.now();
  var M = D.m;
  var N = M.n;
  var TYPES = { u8: Uint8Array, u16: Uint16Array, u32: Uint32Array, f32: Float32Array };

  function column(spec) {
    var bytes;
    if (Uint8Array.fromBase64) { bytes = Uint8Array.fromBase64(spec.b64); }
    else {
      var text = atob(spec.b64);
      bytes = new Uint8Array(text.length);
      for (var i = 0; i < text.length; i++) { bytes[i] = text.charCodeAt(i); }
    }
    return new TYPES[spec.type](bytes.buffer, bytes.byteOffset, bytes.byteLength / TYPES[spec.type].BYTES_PER_ELEMENT);
  }
  // per check: its case (c), its group (g) and headroom (h); a group holds what checks share (G.a[g]: API, ...)
  ["c", "g", "h"].forEach(function (name) { M[name] = column(M.cols[name]); });
  var G = M.groups, NG = G.a.length;
  M.f = new Int32Array(N).fill(-1);
  D.failures.forEach(function (f, n) { M.f[f.r] = n; });
  function text(index) { return D.texts[index]; }
  timings.decoded = performance.now();
  var ROWS_PER_PAGE = 60;
  var FAILURES_PER_PAGE = 20;
  var CELL_LIMIT = 300;
  var FAILING = { fail: 1, error: 1, timeout: 1, crash: 1 };
  var KNOWN = { pass: 1, fail: 1, error: 1, timeout: 1, crash: 1, xfail: 1, unsupported: 1, skip: 1 };
  var ABBREVIATIONS = { unsupported: "unsup." };

  var DIMS = [
    { key: "fw", label: "framework", names: M.fws, column: function (g) { return M.apiFw[G.a[g]]; } },
    { key: "d", label: "device", names: M.devices, column: function (g) { return G.d[g]; } },
    { key: "t", label: "dtype", names: M.dtypes, column: function (g) { return G.t[g]; } },
    { key: "v", label: "verdict", names: M.verdicts, column: function (g) { return G.v[g]; } },
    { key: "k", label: "check", names: M.checks, column: function (g) { return G.k[g]; } }
  ];
  var state = { on: {}, text: "", page: 0, fpage: 0, cell: null, selected: null };

  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        var value = attrs[name];
        if (value === null || value === undefined || value === false) { return; }
        if (name === "text") { node.textContent = String(value); }
        else if (name === "onclick") { node.addEventListener("click", value); }
        else { node.setAttribute(name, String(value)); }
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var kid = arguments[i];
      if (kid === null || kid === undefined) { continue; }
      node.appendChild(typeof kid === "string" ? document.createTextNode(kid) : kid);
    }
    return node;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  function present(dim) {
    var seen = new Uint8Array(dim.names.length);
    for (var g = 0; g < NG; g++) { seen[dim.column(g)] = 1; }
    return seen;
  }

  function verdictClass(name) { return KNOWN[name] ? name : "other"; }

  function optionLabel(i) {
    var label = M.opts[G.o[M.g[i]]];
    return label === "" ? "defaults" : label;
  }

  function checkId(i) {
    var g = M.g[i];
    return M.cases[M.c[i]] + "::" + M.apis[G.a[g]] + "[" + M.opts[G.o[g]] + "]::" + M.devices[G.d[g]] + "::" + M.dtypes[G.t[g]];
  }

  // ------------------------------------------------------------------ filters

  function buildFilters() {
    var box = document.getElementById("filters");
    clear(box);
    DIMS.forEach(function (dim) {
      var seen = present(dim);
      var on = new Uint8Array(dim.names.length);
      var set = el("fieldset", { "data-dim": dim.key }, el("legend", { text: dim.label }));
      var shown = 0;
      dim.names.forEach(function (name, index) {
        if (!seen[index]) { return; }
        on[index] = 1;
        shown++;
        var input = el("input", { type: "checkbox", value: name, checked: "checked", "data-dim": dim.key, "data-index": index });
        input.addEventListener("change", function () {
          state.on[dim.key][index] = input.checked ? 1 : 0;
          refresh();
        });
        set.appendChild(el("label", { "class": dim.key === "v" ? "v-" + verdictClass(name) : null }, input, " " + name));
      });
      state.on[dim.key] = on;
      if (shown > 0) { box.appendChild(set); }
    });
    var search = el("input", { type: "search", id: "filter-text", placeholder: "case or API contains…", "aria-label": "case or API contains" });
    search.addEventListener("input", function () { state.text = search.value.toLowerCase(); refresh(); });
    box.appendChild(el("fieldset", null, el("legend", { text: "search" }), search));
    box.appendChild(el("span", { "class": "count", id: "filter-count" }));
  }

  function textMatch() {
    if (!state.text) { return null; }
    var cases = new Uint8Array(M.cases.length), apis = new Uint8Array(M.apis.length);
    M.cases.forEach(function (name, i) { cases[i] = name.toLowerCase().indexOf(state.text) >= 0 ? 1 : 0; });
    M.apis.forEach(function (name, i) { apis[i] = name.toLowerCase().indexOf(state.text) >= 0 ? 1 : 0; });
    return { cases: cases, apis: apis };
  }

  function selection() {
    var keep = new Uint8Array(N), count = 0;
    var on = state.on, match = textMatch(), groupOn = new Uint8Array(NG);
    for (var g = 0; g < NG; g++) {
      groupOn[g] = on.fw[M.apiFw[G.a[g]]] && on.d[G.d[g]] && on.t[G.t[g]] && on.v[G.v[g]] && on.k[G.k[g]] ? 1 : 0;
    }
    var C = M.c, Gs = M.g;
    for (var i = 0; i < N; i++) {
      var gi = Gs[i];
      if (!groupOn[gi]) { continue; }
      if (match && !match.cases[C[i]] && !match.apis[G.a[gi]]) { continue; }
      keep[i] = 1;
      count++;
    }
    return { keep: keep, count: count };
  }

  // ------------------------------------------------------------------ matrix

  // Cells (case x API) are counted in typed arrays indexed by case * APIs + API; with more cells than
  // checks (many cases, many APIs) a Map gives each cell met a slot instead.
  function cellCounter(nCells) {
    var size = Math.min(nCells, N), slots = nCells > 4 * N ? new Map() : null;
    return {
      worst: new Uint8Array(size).fill(255), total: new Uint32Array(size), failing: new Uint32Array(size),
      slot: slots ? function (key) {
        var s = slots.get(key);
        if (s === undefined) { s = slots.size; slots.set(key, s); }
        return s;
      } : function (key) { return key; },
      find: slots ? function (key) { var s = slots.get(key); return s === undefined ? -1 : s; } : function (key) { return key; }
    };
  }

  function renderMatrix(sel) {
    var view = document.getElementById("matrix-view");
    clear(view);
    var nApi = M.apis.length, C = M.c, Gs = M.g, keep = sel.keep;
    var cells = cellCounter(M.cases.length * nApi);
    var failingVerdict = new Uint8Array(M.verdicts.map(function (v) { return FAILING[v] ? 1 : 0; }));
    var caseOn = new Uint8Array(M.cases.length), apiOn = new Uint8Array(nApi);
    for (var i = 0; i < N; i++) {
      if (!keep[i]) { continue; }
      var g = Gs[i], a = G.a[g], v = G.v[g], s = cells.slot(C[i] * nApi + a);
      cells.total[s]++;
      if (v < cells.worst[s]) { cells.worst[s] = v; }
      if (failingVerdict[v]) { cells.failing[s]++; }
      caseOn[C[i]] = 1;
      apiOn[a] = 1;
    }
    var caseList = [], apiList = [];
    caseOn.forEach(function (on, c) { if (on) { caseList.push(c); } });
    apiOn.forEach(function (on, a) { if (on) { apiList.push(a); } });
    apiList.sort(function (x, y) { return (M.apiFw[x] - M.apiFw[y]) || (M.apis[x] < M.apis[y] ? -1 : 1); });
    document.getElementById("filter-count").textContent = sel.count + " of " + N + " checks · " + caseList.length + " cases × " + apiList.length + " APIs";
    if (!caseList.length) {
      view.appendChild(el("p", { "class": "empty", text: "No check matches the filters." }));
      return;
    }
    var pages = Math.ceil(caseList.length / ROWS_PER_PAGE);
    if (state.page >= pages) { state.page = pages - 1; }
    var shown = caseList.slice(state.page * ROWS_PER_PAGE, (state.page + 1) * ROWS_PER_PAGE);
    var tips = verdictCounts(sel, shown, nApi);
    var head = el("tr", null, el("th", { text: "case" }));
    apiList.forEach(function (a) {
      head.appendChild(el("th", { "class": "api", title: M.fws[M.apiFw[a]] + ": " + M.apis[a], text: M.apis[a] }));
    });
    var body = el("tbody");
    shown.forEach(function (c) {
      var row = el("tr", null, el("th", { "class": "case", scope: "row", title: M.cases[c], text: M.cases[c] }));
      apiList.forEach(function (a) {
        var s = cells.find(c * nApi + a);
        if (s < 0 || !cells.total[s]) { row.appendChild(el("td", { "class": "cell c-none" })); return; }
        var worst = M.verdicts[cells.worst[s]], failing = cells.failing[s], total = cells.total[s];
        var label = failing ? "✗" + failing + "/" + total : (worst === "pass" ? "✓" + total : (ABBREVIATIONS[worst] || worst));
        var td = el("td", { "class": "cell c-" + verdictClass(worst), title: M.cases[c] + " × " + M.apis[a] + ": " + tips.get(c * nApi + a),
                            "data-case": M.cases[c], "data-api": M.apis[a], text: label });
        if (state.cell && state.cell[0] === c && state.cell[1] === a) { td.classList.add("sel"); }
        td.addEventListener("click", function () { state.cell = [c, a]; renderMatrix(sel); renderCell(sel); });
        row.appendChild(td);
      });
      body.appendChild(row);
    });
    view.appendChild(pager(pages, state.page, function (p) { state.page = p; renderMatrix(sel); }, caseList.length, "cases"));
    view.appendChild(el("div", { "class": "scroll" }, el("table", { "class": "matrix" }, el("thead", null, head), body)));
  }

  // "3 pass, 1 fail" for the cells of the cases shown, counted only for them.
  function verdictCounts(sel, cases, nApi) {
    var onPage = new Uint8Array(M.cases.length), counts = new Map(), tips = new Map();
    cases.forEach(function (c) { onPage[c] = 1; });
    for (var i = 0; i < N; i++) {
      if (!sel.keep[i] || !onPage[M.c[i]]) { continue; }
      var g = M.g[i], key = M.c[i] * nApi + G.a[g], cell = counts.get(key);
      if (!cell) { cell = {}; counts.set(key, cell); }
      cell[G.v[g]] = (cell[G.v[g]] || 0) + 1;
    }
    counts.forEach(function (cell, key) {
      tips.set(key, Object.keys(cell).map(function (v) { return cell[v] + " " + M.verdicts[v]; }).join(", "));
    });
    return tips;
  }

  function pager(pages, page, go, total, noun) {
    var bar = el("div", { "class": "pager" });
    if (pages <= 1) { bar.appendChild(el("span", { text: total + " " + noun })); return bar; }
    bar.appendChild(el("button", { type: "button", disabled: page === 0 ? "disabled" : null, text: "◀ previous", onclick: function () { go(page - 1); } }));
    bar.appendChild(el("span", { text: "page " + (page + 1) + " of " + pages + " (" + total + " " + noun + ")" }));
    bar.appendChild(el("button", { type: "button", disabled: page >= pages - 1 ? "disabled" : null, text: "next ▶", onclick: function () { go(page + 1); } }));
    return bar;
  }

  function renderCell(sel) {
    var box = document.getElementById("cell-detail");
    clear(box);
    if (!state.cell) { return; }
    var c = state.cell[0], a = state.cell[1];
    var rows = [];
    for (var i = 0; i < N; i++) {
      if (sel.keep[i] && M.c[i] === c && G.a[M.g[i]] === a) { rows.push(i); }
    }
    if (!rows.length) { state.cell = null; return; }
    box.appendChild(el("h3", { text: M.cases[c] + " × " + M.apis[a] + " (" + rows.length + " checks)" }));
    var body = el("tbody");
    rows.slice(0, CELL_LIMIT).forEach(function (i) {
      var g = M.g[i], verdict = M.verdicts[G.v[g]];
      var link = null;
      if (M.f[i] >= 0) {
        link = el("a", { href: "#failure-" + M.f[i], text: "details", onclick: function (event) { event.preventDefault(); showFailure(M.f[i]); } });
      }
      body.appendChild(el("tr", null, el("td", { "class": "opts", text: optionLabel(i) }), el("td", { text: M.devices[G.d[g]] }),
        el("td", { text: M.dtypes[G.t[g]] }), el("td", { text: M.checks[G.k[g]] }),
        el("td", { "class": "v-" + verdictClass(verdict), text: verdict }),
        el("td", { "class": "n", text: isNaN(M.h[i]) ? "—" : String(Number(M.h[i].toPrecision(3))) }), el("td", null, link)));
    });
    var head = el("tr", null, el("th", { text: "options" }), el("th", { text: "device" }), el("th", { text: "dtype" }),
      el("th", { text: "check" }), el("th", { text: "verdict" }), el("th", { text: "headroom" }), el("th", { text: "" }));
    box.appendChild(el("table", null, el("thead", null, head), body));
    if (rows.length > CELL_LIMIT) { box.appendChild(el("p", { "class": "lead", text: "… " + (rows.length - CELL_LIMIT) + " more; narrow the filters." })); }
  }

  // ------------------------------------------------------------------ failures

  function failureRows(sel) {
    var out = [];
    D.failures.forEach(function (f, n) { if (sel.keep[f.r]) { out.push(n); } });
    return out;
  }

  function renderFailures(sel) {
    var box = document.getElementById("failure-list");
    clear(box);
    var rows = failureRows(sel);
    if (!rows.length) {
      box.appendChild(el("p", { "class": "empty", text: D.failingTotal ? "No failing check matches the filters." : "No check failed." }));
      return;
    }
    var pages = Math.ceil(rows.length / FAILURES_PER_PAGE);
    if (state.fpage >= pages) { state.fpage = pages - 1; }
    var first = state.fpage * FAILURES_PER_PAGE;
    box.appendChild(pager(pages, state.fpage, function (p) { state.fpage = p; renderFailures(sel); }, rows.length, "failing checks"));
    rows.slice(first, first + FAILURES_PER_PAGE).forEach(function (n) { box.appendChild(failureCard(n)); });
  }

  function failureCard(n) {
    var f = D.failures[n];
    var verdict = text(f.verdict), kind = text(f.kind);
    var card = el("details", { "class": "failure is-" + verdictClass(verdict), id: "failure-" + n });
    var short = text(f.message) || text(f.reason) || "";
    if (short.length > 220) { short = short.slice(0, 220) + "…"; }
    card.appendChild(el("summary", null, el("span", { "class": "badge", text: verdict + (kind ? " · " + kind : "") }),
      el("code", { text: text(f.id) }), " — " + short));
    card.addEventListener("toggle", function () {
      if (card.open && card.childNodes.length === 1) { card.appendChild(failureBody(f)); }
    });
    return card;
  }

  function failureBody(f) {
    var dl = el("dl");
    function item(label, value) {
      if (value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)) { return; }
      dl.appendChild(el("dt", { text: label }));
      dl.appendChild(el("dd", { text: Array.isArray(value) ? value.join("\n") : String(value) }));
    }
    item("check", text(f.check));
    item("expected", text(f.expected));
    item("observed", text(f.observed));
    item("error", text(f.errors));
    item("message", text(f.message));
    item("reason", text(f.reason));
    item("diagnosis", text(f.diagnosis));
    item("convention", text(f.convention));
    item("inferred", text(f.extra));
    item("output dtype", text(f.output_dtype));
    item("shape", f.shape ? "[" + f.shape.join(", ") + "]" : "");
    item("tolerance", text(f.override));
    item("warnings", f.warnings.map(text));
    item("traceback", text(f.traceback));
    var body = el("div", { "class": "body" }, dl);
    var repro = text(f.repro);
    if (repro) {
      var pre = el("pre", { "class": "repro", text: repro });
      var copy = el("button", { type: "button", text: "copy" });
      copy.addEventListener("click", function () { copyText(pre, copy); });
      body.appendChild(el("div", { "class": "repro-head" }, el("strong", { text: "Reproduce" }), copy));
      body.appendChild(pre);
    } else if (text(f.repro_error)) {
      body.appendChild(el("p", { "class": "lead", text: "No reproduction snippet: " + text(f.repro_error) }));
    }
    return body;
  }

  function copyText(pre, button) {
    var done = function () { button.textContent = "copied"; };
    var fallback = function () {
      var range = document.createRange();
      range.selectNodeContents(pre);
      var s = window.getSelection();
      s.removeAllRanges();
      s.addRange(range);
      button.textContent = "selected: press Ctrl+C";
    };
    try {
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(pre.textContent).then(done, fallback);
      } else { fallback(); }
    } catch (e) { fallback(); }
  }

  function showFailure(n) {
    var sel = selection();
    var rows = failureRows(sel);
    var at = rows.indexOf(n);
    if (at >= 0) { state.fpage = Math.floor(at / FAILURES_PER_PAGE); }
    renderFailures(sel);
    var card = document.getElementById("failure-" + n);
    if (card) {
      if (card.childNodes.length === 1) { card.appendChild(failureBody(D.failures[n])); }
      card.open = true;
      card.scrollIntoView({ block: "start" });
    }
  }

  function refresh() {
    var sel = selection();
    state.page = 0;
    state.fpage = 0;
    renderMatrix(sel);
    renderCell(sel);
    renderFailures(sel);
  }

  buildFilters();
  timings.filters = performance.now();
  refresh();
  timings.rendered = performance.now();
  window.klconfReport = { checks: N, renderedAt: timings.rendered, timings: timings,
                          selection: function () { return selection().count; }, checkId: checkId };
}());

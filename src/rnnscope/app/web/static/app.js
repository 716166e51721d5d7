// rnnscope explorer: controls -> query string -> /api/explore and /api/heatmap -> plotly.
// No math here: every number drawn comes from the server (rnnscope.explorer). This file only moves data.
//
// State for tests and the curious: window.explorer = {state, data, heatmap, updates, busy, latencies, error,
// memory (the last /api/memory answer), memoryUpdates}.
//
// Requests: input events are debounced into one send per frame burst (DEBOUNCE_MS). When nothing is in flight
// the latest state is sent at once; while a request is in flight, further input only marks the state dirty,
// and the latest state is sent as soon as it returns (so a drag renders every completed step and always ends on
// the slider's final position). A request still in flight after PATIENCE_MS while the state has moved on is
// stale: it is aborted (AbortController) and the latest state sent instead; the server then drops it if it had
// not started (a slow setting never holds the page).
"use strict";

(() => {
  const DEBOUNCE_MS = 8, PATIENCE_MS = 250;
  const $ = (id) => document.getElementById(id);
  const state = {
    cell: "elman", activation: "tanh", hidden: 32, length: 200, scale: "gain", value: 1.0,
    input_scale: 0.0, init: "normal", bias: "zero", seed: 0, r_min: 0, r_max: 1, dt_min: 0.001, dt_max: 0.1,
  };
  const ex = window.explorer = {
    state, meta: null, data: null, heatmap: null, updates: 0, busy: false, error: null, latencies: [],
    preset: null, ready: false, memory: null, memoryUpdates: 0, memoryError: null,
  };
  const PLOT_CONFIG = { displayModeBar: false, responsive: true };
  const FONT = { family: "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif", size: 11.5, color: "#1d2430" };
  const COLORS = { flow: "#1f5fbf", adjoint: "#e07b00", bound: "#6b7280", eig: ["#1f5fbf", "#e07b00", "#17803d", "#9c27b0"] };
  const SCALE_LABEL = { gain: "gain g", rho: "largest eigenvalue \u03c1", sigma_max: "largest singular value \u03c3max" };
  const SCALE_SHORT = { gain: "gain g", rho: "\u03c1(W<sub>hh</sub>)", sigma_max: "\u03c3<sub>max</sub>(W<sub>hh</sub>)" };
  const GATED = (s) => s.cell === "lstm" || s.cell === "gru";
  const VANILLA = (s) => s.cell === "elman" || s.cell === "pal";  // W_hh, phi, the hand-derived BPTT heatmap
  const MODERN = (s) => ex.meta !== null && ex.meta.modern_cells.includes(s.cell);  // no W_hh scale, init or bias
  const HAS_PHI = (s) => VANILLA(s) || (ex.meta !== null && ex.meta.activated.includes(s.cell));
  const OPTIONS = (s) => (ex.meta && ex.meta.option_kinds[s.cell]) || [];  // lru: r_min, r_max; mamba: dt_min, dt_max
  const LOG_OPTIONS = ["dt_min", "dt_max"];  // their sliders move log10 of the value
  let timer = null, patience = null, inflight = null, dirty = false, seq = 0, pendingSince = null, busyTimer = null;

  // ------------------------------------------------------------------ formatting (presentation only)
  const fmt = (v, d = 3) => (v === null || v === undefined || !Number.isFinite(v)) ? "\u2014" : Number(v.toPrecision(d)).toString();
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));

  function baseLayout(title, extra) {
    return Object.assign({
      title: { text: title, font: { size: 13 }, x: 0.02, xanchor: "left", y: 0.97 },
      font: FONT, margin: { l: 52, r: 12, t: 34, b: 40 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff",
      showlegend: false, hovermode: "closest",
    }, extra || {});
  }
  const axis = (title, extra) => Object.assign({ title: { text: title, standoff: 4 }, gridcolor: "#eef1f5",
    zerolinecolor: "#c9d0da", automargin: true }, extra || {});

  // ------------------------------------------------------------------ query string <-> state
  function query(s) {
    const p = new URLSearchParams();
    p.set("cell", s.cell);
    if (HAS_PHI(s)) p.set("activation", s.activation);
    p.set("hidden", s.hidden);
    p.set("length", s.length);
    if (!MODERN(s)) p.set(s.scale, s.value);
    p.set("input_scale", s.input_scale);
    if (!MODERN(s)) { p.set("init", s.init); p.set("bias", s.bias); }
    p.set("seed", s.seed);
    for (const k of OPTIONS(s)) p.set(k, s[k]);
    return p.toString();
  }

  function fromLocation() {
    const p = new URLSearchParams(window.location.search);
    const num = (k) => (p.has(k) && Number.isFinite(Number(p.get(k)))) ? Number(p.get(k)) : null;
    for (const k of ["cell", "activation", "init", "bias"]) if (p.has(k)) state[k] = p.get(k);
    for (const k of ["hidden", "length", "seed"]) if (num(k) !== null) state[k] = Math.round(num(k));
    if (num("input_scale") !== null) state.input_scale = num("input_scale");
    for (const k of ["gain", "rho", "sigma_max"]) if (num(k) !== null) { state.scale = k; state.value = num(k); }
    for (const k of ["r_min", "r_max", "dt_min", "dt_max"]) if (num(k) !== null) state[k] = num(k);
    if (!HAS_PHI(state)) state.activation = "tanh";
  }

  // ------------------------------------------------------------------ controls
  const sliders = ["hidden", "length", "value", "input_scale"];

  function constrain() {  // what the server would refuse, the page does not offer
    const gated = GATED(state), saddle = state.init === "saddle";
    if (gated) { state.scale = "gain"; state.bias = "zero"; if (saddle) state.init = "normal"; }
    if (MODERN(state)) { state.scale = "gain"; state.value = 1; state.bias = "zero"; state.init = "normal"; }
    if (state.init === "saddle") {
      state.hidden = 2; state.bias = "zero";
      if (!["sigmoid", "tanh"].includes(state.activation)) state.activation = "tanh";
    }
  }

  function syncControls() {
    constrain();
    const gated = GATED(state) || MODERN(state), saddle = state.init === "saddle", modern = MODERN(state);
    $("cell").value = state.cell;
    $("activation").value = state.activation;
    $("activation").disabled = !HAS_PHI(state);
    for (const o of $("activation").options) o.disabled = saddle && !["sigmoid", "tanh"].includes(o.value);
    $("init").value = state.init;
    $("init").querySelector("option[value=saddle]").disabled = gated || !VANILLA(state);
    $("init").disabled = modern;
    $("bias").value = state.bias;
    $("bias").disabled = gated || saddle;
    $("value").disabled = $("value-num").disabled = modern;
    $("weights-note").hidden = !modern;
    for (const kind of Object.keys(ex.meta ? ex.meta.option_kinds : {})) $("options-" + kind).hidden = state.cell !== kind;
    $("options").hidden = OPTIONS(state).length === 0;
    for (const k of OPTIONS(state)) {
      $(k).value = String(LOG_OPTIONS.includes(k) ? Math.log10(state[k]) : state[k]);  // the slider's position only
      $(k + "-num").value = String(state[k]);
    }
    $("seed").value = state.seed;
    for (const r of document.querySelectorAll("input[name=scale]")) {
      r.checked = r.value === state.scale;
      r.disabled = (gated && r.value !== "gain") || modern;
      r.parentElement.classList.toggle("disabled", r.disabled);
    }
    $("value-label").innerHTML = SCALE_SHORT[state.scale];
    $("value-label").title = SCALE_LABEL[state.scale];
    const gamma = ex.meta && !gated ? ex.meta.activations[state.activation].gamma : 1;
    $("value").max = String(Math.min(ex.meta ? ex.meta.limits.value[1] : 20, Math.max(4, 4 / gamma)));
    $("hidden").disabled = $("hidden-num").disabled = saddle;
    for (const k of sliders) {
      $(k).value = String(state[k]);
      $(k + "-num").value = String(state[k]);
    }
  }

  function markPreset(name) {
    ex.preset = name;
    for (const b of $("presets").querySelectorAll("button")) b.classList.toggle("active", b.dataset.name === name);
    const p = name && ex.meta.presets.find((q) => q.name === name);
    $("preset-note").hidden = !p;
    $("preset-note").textContent = p ? p.description : "";
  }

  function changed() {
    if (pendingSince === null) pendingSince = performance.now();
    dirty = true;
    if (inflight) {  // wait for it; past PATIENCE_MS it is stale: abort it and send the latest state
      if (!patience) patience = setTimeout(() => { patience = null; if (inflight && dirty) send(); }, PATIENCE_MS);
      return;
    }
    clearTimeout(timer);
    timer = setTimeout(send, DEBOUNCE_MS);
  }

  function send() {
    clearTimeout(timer);
    timer = null;
    if (inflight) inflight.abort();
    dirty = false;
    const controller = new AbortController();
    inflight = controller;
    update(controller).finally(() => {
      if (inflight === controller) inflight = null;
      if (dirty && !inflight) send();
    });
  }

  function wire() {
    for (const k of sliders) {
      const isInt = k === "hidden" || k === "length";
      const set = (raw) => {
        let v = Number(raw);
        if (!Number.isFinite(v)) return false;
        if (isInt) v = Math.round(v);
        const lo = Number($(k + "-num").min), hi = Number($(k + "-num").max);
        state[k] = Math.min(hi, Math.max(lo, v));
        return true;
      };
      $(k).addEventListener("input", () => { if (set($(k).value)) { $(k + "-num").value = String(state[k]); markPreset(null); changed(); } });
      $(k + "-num").addEventListener("change", () => { if (set($(k + "-num").value)) { syncControls(); markPreset(null); changed(); } });
    }
    for (const k of ["cell", "activation", "init", "bias"]) {
      $(k).addEventListener("change", () => {
        state[k] = $(k).value;
        if (k === "cell" && ex.meta.default_activation[state.cell]) state.activation = ex.meta.default_activation[state.cell];
        syncControls(); markPreset(null); changed();
      });
    }
    for (const k of ["r_min", "r_max", "dt_min", "dt_max"]) {  // the modern cells' options (the server checks min < max)
      const log = LOG_OPTIONS.includes(k);
      $(k).addEventListener("input", () => {
        const v = Number($(k).value);
        state[k] = log ? Number((10 ** v).toPrecision(3)) : v;
        $(k + "-num").value = String(state[k]); markPreset(null); changed();
      });
      $(k + "-num").addEventListener("change", () => {
        const v = Number($(k + "-num").value), lo = Number($(k + "-num").min), hi = Number($(k + "-num").max);
        if (!Number.isFinite(v)) return;
        state[k] = Math.min(hi, Math.max(lo, v)); syncControls(); markPreset(null); changed();
      });
    }
    $("memory-rho").addEventListener("input", () => { $("memory-rho-num").textContent = $("memory-rho").value; });
    $("memory-rho").addEventListener("change", () => { $("memory-rho-num").textContent = $("memory-rho").value; updateMemory(); });
    $("memory-sequences").addEventListener("change", () => updateMemory());
    $("seed").addEventListener("change", () => {
      const v = Math.round(Number($("seed").value));
      if (Number.isFinite(v) && v >= 0) { state.seed = v; markPreset(null); changed(); }
    });
    for (const r of document.querySelectorAll("input[name=scale]")) {
      r.addEventListener("change", () => { if (r.checked) { state.scale = r.value; syncControls(); changed(); } });
    }
  }

  function buildPresets() {
    const box = $("presets");
    for (const p of ex.meta.presets) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = p.title;
      b.dataset.name = p.name;
      b.title = p.description;
      b.addEventListener("click", () => applyPreset(p.name));
      box.appendChild(b);
    }
  }

  function applyPreset(name) {
    const p = ex.meta.presets.find((q) => q.name === name);
    const c = p.config;
    Object.assign(state, { cell: c.cell, activation: c.activation || "tanh", hidden: c.hidden, length: c.length,
      scale: c.scale, value: c.value, input_scale: c.input_scale, init: c.init, bias: c.bias, seed: c.seed });
    for (const k of OPTIONS(state)) state[k] = c[k] !== null ? c[k] : ex.meta.options[state.cell][k];
    syncControls();
    markPreset(name);
    changed();
  }
  ex.applyPreset = applyPreset;
  // ex.render(view?): redraw from the last answers without asking the server (to time the drawing)
  ex.render = (which) => {
    const d = ex.data;
    const views = {
      verdict: () => renderVerdict(d), profile: () => renderProfile(d.profile), spectrum: () => renderSpectrum(d.spectrum),
      activation: () => renderActivation(d.activation), heatmap: () => renderHeatmap(ex.heatmap, state),
      memory: () => renderMemory(ex.memory),
    };
    (which ? [which] : Object.keys(views)).forEach((k) => views[k]());
  };

  // ------------------------------------------------------------------ requests
  async function fetchJSON(url, signal) {
    const t0 = performance.now();
    const r = await fetch(url, { signal, headers: { Accept: "application/json" } });
    const body = await r.json();
    if (!r.ok) throw Object.assign(new Error(body.error || `HTTP ${r.status}`), { status: r.status });
    const st = /dur=([0-9.]+)/.exec(r.headers.get("Server-Timing") || "");
    return { body, server_ms: st ? Number(st[1]) : null, fetch_ms: performance.now() - t0 };
  }

  async function update(controller) {
    const started = pendingSince === null ? performance.now() : pendingSince;
    pendingSince = null;
    const signal = controller.signal, my = ++seq, s = Object.assign({}, state), q = query(s);
    history.replaceState(null, "", "?" + q);
    ex.busy = true;
    clearTimeout(busyTimer);
    busyTimer = setTimeout(() => { if (ex.busy) document.body.classList.add("busy"); }, 150);
    const timing = { query: q };
    // The heatmap is asked for as soon as the other views' answer has arrived: the server computes one request
    // at a time, and this way it works on the heatmap while the page draws the other views.
    const answer = fetchJSON("/api/explore?" + q, signal);
    const heatAnswer = answer.then(() => (!VANILLA(s) || my !== seq) ? null : fetchJSON("/api/heatmap?" + q, signal));
    const explore = answer.then((r) => {
      if (my !== seq) return;
      ex.data = r.body;
      renderExplore(r.body);
      timing.explore_ms = performance.now() - started;
      timing.explore_server_ms = r.server_ms;
    });
    const heat = Promise.all([heatAnswer, explore]).then(([r]) => {
      if (my !== seq) return;
      ex.heatmap = r && r.body;
      renderHeatmap(r && r.body, s);
      if (r) { timing.heatmap_ms = performance.now() - started; timing.heatmap_server_ms = r.server_ms; }
    });
    try {
      await Promise.all([explore, heat]);
      if (my !== seq) return;
      timing.total_ms = performance.now() - started;
      ex.latencies.push(timing);
      showError(null);
      $("timing").textContent = `updated in ${Math.round(timing.total_ms)} ms (server: profile ${fmt(timing.explore_server_ms, 2)} ms` +
        (timing.heatmap_server_ms != null ? `, heatmap ${fmt(timing.heatmap_server_ms, 2)} ms)` : ")");
    } catch (e) {
      if (e.name === "AbortError" || my !== seq) return;
      showError(e.message);
    } finally {
      if (my === seq) {
        ex.busy = dirty;
        ex.updates += 1;
        clearTimeout(busyTimer);
        document.body.classList.remove("busy");
      }
    }
  }

  function showError(msg) {
    ex.error = msg;
    $("error").hidden = !msg;
    $("error").textContent = msg ? `The server refused this setting: ${msg}` : "";
  }

  // ------------------------------------------------------------------ views
  const drawn = {};  // what each plot last drew: an unchanged view is not drawn again (plotly costs ~20 ms a plot)
  function fresh(key, data) {
    const k = JSON.stringify(data);
    if (drawn[key] === k) return false;
    drawn[key] = k;
    return true;
  }

  function renderExplore(d) {
    renderVerdict(d);
    if (fresh("profile", d.profile)) renderProfile(d.profile);
    if (fresh("spectrum", d.spectrum)) renderSpectrum(d.spectrum);
    if (fresh("activation", d.activation)) renderActivation(d.activation);
  }

  function renderVerdict(d) {
    const p = d.profile, sp = d.spectrum, m = d.measured;
    const v = $("verdict");
    v.textContent = p.verdict;
    v.className = "badge " + (p.verdict.startsWith("vanishing") ? "v-vanishing" : p.verdict.startsWith("exploding") ? "v-exploding"
      : p.verdict.startsWith("never") ? "v-never" : "v-gated");
    const s = p.state === "h" ? "h" : "s";
    const what = m.regime === "neither" ? "<b>neither</b>: within 10\u00b3 over all " + (m.t - 1) + " steps"
      : `<b class="${m.regime}">${m.regime}</b>: ${m.regime === "vanishing" ? "fallen" : "risen"} by 10\u00b3 within ${m.horizon} steps`;
    $("measured").innerHTML = `measured: ${what}; \u2016\u2202${s}<sub>T</sub>/\u2202${s}<sub>1</sub>\u2016 = 10<sup>${fmt(m.log10_first)}</sup>, ` +
      `slope ${fmt(m.rate_per_step)} decades/step`;
    $("note").textContent = p.note;
    const warn = $("profile-warning"), ws = p.warnings || [];
    warn.hidden = ws.length === 0;
    warn.textContent = ws.join(" ");
    const tests = $("tests");
    if (!sp.tests && sp.step_bound !== null && sp.step_bound !== undefined && MODERN(d.config)) {  // a modern cell's own bound
      const c = fmt(sp.step_bound, 6);
      tests.innerHTML = `<li class="${sp.step_bound <= 1 ? "promise" : "nopromise"}" id="test-step">the ${esc(sp.cell)} cell's ` +
        `step bound: ‖∂s<sub>t</sub>/∂s<sub>t−1</sub>‖ ≤ c = ${c} at every step, whatever the inputs, ` +
        `so ‖∂s<sub>T</sub>/∂s<sub>k</sub>‖ ≤ c<sup>T−k</sup> (dashed in the profile)</li>`;
      return;
    }
    if (!sp.tests) { tests.innerHTML = ""; return; }
    const inv = fmt(sp.inv_gamma), rho = fmt(sp.spectral_radius), sig = fmt(sp.sigma_max);
    const eigPromise = sp.tests.rho_below_inv_gamma, sigPromise = sp.tests.sigma_max_below_inv_gamma;
    const wrong = eigPromise && !sigPromise;
    tests.innerHTML =
      `<li class="${wrong ? "wrong" : eigPromise ? "promise" : "nopromise"}" id="test-eigen">seed 002's eigenvalue test: ` +
      `\u03c1(W<sub>hh</sub>) = ${rho} ${eigPromise ? "&lt;" : "\u2265"} 1/\u03b3 = ${inv} \u21d2 ` +
      `${eigPromise ? "promises vanishing" + (wrong ? " <b>(not a valid promise)</b>" : "") : "says exploding"}</li>` +
      `<li class="${sigPromise ? "promise" : "nopromise"}" id="test-sigma">Pascanu's singular-value test: ` +
      `\u03c3<sub>max</sub>(W<sub>hh</sub>) = ${sig} ${sigPromise ? "&lt;" : "\u2265"} 1/\u03b3 = ${inv} \u21d2 ` +
      `${sigPromise ? "vanishing guaranteed" : "exploding possible, not certain"}</li>`;
  }

  function renderProfile(p) {
    const k = p.log10_spectral.map((_, i) => i + 1);
    const s = p.state === "h" ? "h" : "s";
    const traces = [
      { x: k, y: p.log10_spectral, name: `\u2016\u2202${s}<sub>T</sub>/\u2202${s}<sub>k</sub>\u2016<sub>2</sub>`, mode: "lines",
        line: { color: COLORS.flow, width: 2.4 } },
      { x: k, y: p.log10_adjoint, name: `\u2016\u2202L/\u2202${s}<sub>k</sub>\u2016`, mode: "lines",
        line: { color: COLORS.adjoint, width: 1.8, dash: "dot" } },
    ];
    const measured = [...p.log10_spectral, ...p.log10_adjoint].filter((v) => v !== null);
    let lo = Math.min(0, ...measured), hi = Math.max(0, ...measured);
    if (p.log10_bound) {
      const vanilla = p.gamma !== null && p.sigma_max !== null && !MODERN(ex.data ? ex.data.config : state);
      traces.push({ x: k, y: p.log10_bound, mode: "lines", name: vanilla ? "bound (\u03b3\u03c3<sub>max</sub>)<sup>T\u2212k</sup>"
        : `bound c<sup>T\u2212k</sup>, c = ${fmt(p.step_bound, 6)}`,
        line: { color: COLORS.bound, width: 1.5, dash: "dash" } });
    }
    const pad = Math.max(0.5, 0.08 * (hi - lo));
    lo -= pad; hi += pad;
    if (p.log10_bound) {  // keep the measured curves readable: the bound may run off the chart
      const b = p.log10_bound.filter((v) => v !== null);
      const bmin = Math.min(...b), bmax = Math.max(...b);
      const span = Math.max(hi, bmax + pad) - Math.min(lo, bmin - pad);
      if (span <= 3 * (hi - lo)) { lo = Math.min(lo, bmin - pad); hi = Math.max(hi, bmax + pad); }
      else if (bmax > hi) traces[2].name += " \u2191 off the chart";
    }
    const layout = baseLayout(`Gradient flow into step T = ${p.t}: log10 norms against k`, {
      xaxis: axis("k (step)", { range: [1, p.t] }), yaxis: axis("log10 norm", { range: [lo, hi] }),
      showlegend: true, legend: { orientation: "h", x: 0, xanchor: "left", y: 1.0, yanchor: "bottom", font: { size: 11 } },
      margin: { l: 52, r: 12, t: 50, b: 38 },
    });
    Plotly.react("plot-profile", traces, layout, PLOT_CONFIG);
  }

  function renderSpectrum(sp) {
    const eig = [], sv = [];
    let r = 0;
    sp.blocks.forEach((b, i) => {
      const re = b.eigenvalues.re, im = b.eigenvalues.im;
      re.forEach((x, j) => { r = Math.max(r, Math.hypot(x, im[j])); });
      eig.push({ x: re, y: im, name: b.name, mode: "markers", type: "scatter",
        marker: { size: sp.blocks.length > 1 ? 5 : 6, color: COLORS.eig[i % 4], opacity: 0.85 } });
      sv.push({ x: b.singular_values.map((_, j) => j + 1), y: b.singular_values, name: b.name,
        type: sp.blocks.length > 1 ? "scatter" : "bar", mode: "lines+markers",
        marker: { color: COLORS.eig[i % 4], size: 4 }, line: { width: 1.5 } });
    });
    const modern = MODERN({ cell: sp.cell });
    const ring = sp.inv_gamma === null ? 1 : sp.inv_gamma;
    const ringLabel = sp.inv_gamma === null ? "|\u03bb| = 1" : `|\u03bb| = 1/\u03b3 = ${fmt(ring)}`;
    const circle = (rad, color, dash, width) => ({ type: "circle", xref: "x", yref: "y", x0: -rad, y0: -rad, x1: rad, y1: rad,
      line: { color, width, dash } });
    const shapes = [circle(ring, "#b42318", "dash", 1.5)];
    const annotations = [{ x: 0, y: ring, text: ringLabel, showarrow: false, xanchor: "center", yanchor: "bottom",
      font: { size: 11, color: "#b42318" }, bgcolor: "rgba(255,255,255,0.75)" }];
    if (sp.ring) {  // lru: the ring its |lambda| were drawn on
      shapes.push(circle(sp.ring.r_min, "#17803d", "dot", 1.2), circle(sp.ring.r_max, "#17803d", "dot", 1.2));
    }
    const lim = 1.15 * Math.max(r, ring, 1e-9), xr = [-lim, lim], yr = [-lim, lim];
    const gated = sp.blocks.length > 1;
    const titles = {
      lambda: `\u03bb<sub>j</sub> of the LRU (max|\u03bb| = ${fmt(sp.spectral_radius, 6)})`,
      jacobian: `Eigenvalues of J<sub>T</sub> = \u2202s<sub>T</sub>/\u2202s<sub>T\u22121</sub> (step ${sp.step})`,
      W_hh: modern ? "Eigenvalues of W<sub>hh</sub> = expm(A)" : gated ? "Eigenvalues of the gate blocks of W<sub>hh</sub>"
        : `Eigenvalues of W<sub>hh</sub> (\u03c1 = ${fmt(sp.spectral_radius)})`,
    };
    Plotly.react("plot-eigen", eig, baseLayout(titles[sp.matrix], {
      xaxis: axis("Re \u03bb", { range: xr, zeroline: true }),
      yaxis: axis("Im \u03bb", { range: yr, scaleanchor: "x", scaleratio: 1, zeroline: true }),
      shapes, annotations, margin: { l: 48, r: 10, t: 34, b: 40 },
    }), PLOT_CONFIG);
    const notes = {
      lambda: `h<sub>t</sub> = \u03bb \u2299 h<sub>t\u22121</sub> + B x<sub>t</sub>: dotted green, the ring r = ${fmt(sp.ring && sp.ring.r_min, 4)}` +
        ` \u2026 ${fmt(sp.ring && sp.ring.r_max, 4)} they were drawn on; dashed red, the unit circle (|\u03bb<sub>j</sub>| below, right).`,
      jacobian: `The ${esc(sp.cell)} cell has no W<sub>hh</sub>: its one-step Jacobian at the trajectory's last step (sequence 1).`,
    };
    $("spectrum-note").innerHTML = notes[sp.matrix] || (gated
      ? sp.blocks.map((b, i) => `<span style="color:${COLORS.eig[i % 4]}">\u25cf</span> ${esc(b.name.replace("W_hh ", ""))}`).join(" &nbsp;")
      : modern ? "W<sub>hh</sub> = expm(A), A skew-symmetric: orthogonal, every |\u03bb| = 1."
      : "Seed 002 compares the largest |\u03bb| with 1/\u03b3; Pascanu's bound needs \u03c3<sub>max</sub> (right).");
    const svShapes = sp.inv_gamma === null ? [] : [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: ring, y1: ring,
      line: { color: "#b42318", width: 1.5, dash: "dash" } }];
    const ann = sp.inv_gamma === null ? [] : [{ xref: "paper", x: 1, y: ring, text: `1/\u03b3 = ${fmt(ring)}`, showarrow: false,
      xanchor: "right", yanchor: "bottom", font: { size: 11, color: "#b42318" } }];
    const svTitles = {
      lambda: `|\u03bb<sub>j</sub>| (singular values, each twice)`,
      jacobian: `Singular values of J<sub>T</sub> (\u03c3<sub>max</sub> = ${fmt(Math.max(...sp.blocks[0].singular_values))})`,
      W_hh: `Singular values of W<sub>hh</sub> (\u03c3<sub>max</sub> = ${fmt(sp.sigma_max)})`,
    };
    const svRange = sp.matrix === "lambda" ? { range: [Math.min(...sp.blocks[0].singular_values) * 0.999 - 0.001, 1.0005] }
      : { rangemode: "tozero" };
    Plotly.react("plot-singular", sv, baseLayout(svTitles[sp.matrix], {
      xaxis: axis("index i"), yaxis: axis(sp.matrix === "lambda" ? "|\u03bb<sub>j</sub>|" : "\u03c3<sub>i</sub>", svRange),
      shapes: svShapes, annotations: ann, bargap: 0.15, margin: { l: 52, r: 10, t: 34, b: 40 },
    }), PLOT_CONFIG);
  }

  function renderActivation(a) {
    const traces = [], notes = [];
    const colors = ["#1f5fbf", "#17803d"];
    if (a.factors) {  // a diagonal modern cell: where memory is kept, J_t = diag(a_t)
      const f = a.factors, centers = f.edges.slice(0, -1).map((e, j) => (e + f.edges[j + 1]) / 2);
      Plotly.react("plot-activation", [{ x: centers, y: f.counts, type: "bar", name: f.values, marker: { color: "#17803d", opacity: 0.6 },
        hovertemplate: "memory \u2248 10^%{x:.2f} steps: %{y}<extra></extra>" }], baseLayout("Where memory is kept: 1/(1 \u2212 |a<sub>t</sub>|)", {
        xaxis: axis("log10 memory (steps)", { range: [f.edges[0], f.edges[f.edges.length - 1]] }),
        yaxis: axis("count", { rangemode: "tozero", tickformat: "~s" }), bargap: 0.05, margin: { l: 48, r: 12, t: 34, b: 40 },
      }), PLOT_CONFIG);
      $("activation-note").textContent = `J_t = diag(a_t), a_t = ${f.values}: ${f.count} factors${f.per_step ? " (every step, sequence and unit)" : ""}; ` +
        `median memory ${fmt(f.median_memory)} steps, largest factor ${fmt(f.max_factor, 6)}` +
        (f.outside ? `; ${f.outside} beyond 10^${fmt(f.edges[f.edges.length - 1])} steps in the last bin` : "");
      return;
    }
    if (a.curves.length === 0) {
      Plotly.react("plot-activation", [], baseLayout("No one \u03c6 to draw", { xaxis: { visible: false }, yaxis: { visible: false },
        annotations: [{ text: esc(a.note || ""), showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5,
          font: { size: 12, color: "#5b6575" } }] }), PLOT_CONFIG);
      $("activation-note").textContent = a.note || "";
      return;
    }
    a.curves.forEach((c, i) => {
      const centers = c.edges.slice(0, -1).map((e, j) => (e + c.edges[j + 1]) / 2);
      traces.push({ x: centers, y: c.counts, type: "bar", yaxis: "y2", name: `${c.values}`,
        marker: { color: colors[i], opacity: 0.28 }, hovertemplate: "a \u2248 %{x:.2f}: %{y}<extra></extra>" });
      traces.push({ x: c.a, y: c.phi, mode: "lines", name: `${c.activation}`, line: { color: colors[i], width: 2 } });
      traces.push({ x: c.a, y: c.dphi, mode: "lines", name: `${c.activation}'`, line: { color: colors[i], width: 2, dash: "dash" } });
      notes.push(`${c.activation}: ${fmt(100 * c.saturated_fraction, 2)}% of ${c.count} ${c.values} saturated (|\u03c6'| < \u03b3/10)` +
        (c.outside ? `; ${c.outside} beyond \u00b18 in the end bins` : ""));
    });
    const title = a.curves.length > 1 ? "\u03c6, \u03c6' and where the gates sit" : `${a.curves[0].activation}: \u03c6, \u03c6' and where units sit`;
    Plotly.react("plot-activation", traces, baseLayout(title, {
      xaxis: axis("a", { range: [-8, 8] }), yaxis: axis("\u03c6(a), \u03c6'(a)"),
      yaxis2: { overlaying: "y", side: "right", showgrid: false, title: { text: "count", standoff: 2 }, rangemode: "tozero",
        automargin: true, tickmode: "auto", nticks: 5, tickformat: "~s" },
      bargap: 0.02, margin: { l: 48, r: 40, t: 34, b: 40 },
    }), PLOT_CONFIG);
    $("activation-note").textContent = notes.join(" \u00b7 ");
  }

  function renderHeatmap(h, s) {
    if (!h) {
      Plotly.react("plot-heatmap", [], baseLayout("Per-step contributions", {
        xaxis: { visible: false }, yaxis: { visible: false },
        annotations: [{ text: "Hand-derived BPTT (rnnscope bptt)<br>covers the Elman and Pal cells:<br>pick one to see C[t, k].",
          showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { size: 12, color: "#5b6575" } }],
      }), PLOT_CONFIG);
      $("heatmap-note").textContent = `${s.cell.toUpperCase()}: no per-step contributions.`;
      return;
    }
    const hm = h.heatmap;
    Plotly.react("plot-heatmap", [{ z: hm.log10_contributions_norm, x: hm.k, y: hm.t, type: "heatmap",
      colorscale: "Viridis", colorbar: { thickness: 10, title: { text: "log10", side: "right" }, outlinewidth: 0 },
      hovertemplate: "t = %{y}, k = %{x}: 10^%{z:.2f}<extra></extra>", hoverongaps: false }],
    baseLayout("Per-step contributions: log10 \u2016C[t, k]\u2016", {
      xaxis: axis("k (through step)"), yaxis: axis("t (loss at step)"), margin: { l: 48, r: 8, t: 34, b: 40 },
    }), PLOT_CONFIG);
    let note = `C[t, k]: the part of \u2202E_t/\u2202W_hh through step k (MSE to N(0, 1) targets).`;
    if (hm.truncated) note += ` First ${hm.steps} of ${h.T_total} steps (the table costs T\u00b2S\u00b2).`;
    if (hm.stride > 1) note += ` Every ${hm.stride}${hm.stride === 2 ? "nd" : hm.stride === 3 ? "rd" : "th"} step shown.`;
    $("heatmap-note").textContent = note;
  }

  // ------------------------------------------------------------------ the curse of memory (/api/memory)
  let memoryAbort = null;
  async function updateMemory() {
    if (memoryAbort) memoryAbort.abort();
    const controller = memoryAbort = new AbortController();
    const p = new URLSearchParams({ lambdas: ex.meta.memory.lambdas, rho: $("memory-rho").value,
      sequences: $("memory-sequences").value, seed: ex.meta.memory.seed });
    $("memory-status").textContent = "computing\u2026";
    try {
      const r = await fetchJSON("/api/memory?" + p.toString(), controller.signal);
      ex.memory = r.body;
      ex.memoryQuery = p.toString();
      ex.memoryError = null;
      renderMemory(r.body);
      $("memory-status").textContent = `${r.body.sequences} sequences per \u03bb, ${fmt(r.server_ms / 1000, 2)} s; ` +
        (r.body.agree ? "every Monte Carlo mean within " + r.body.tolerance_se + " s.e. of its closed form"
          : "some Monte Carlo means disagree with their closed forms");
    } catch (e) {
      if (e.name === "AbortError") return;
      ex.memoryError = e.message;
      $("memory-status").textContent = `The server refused: ${e.message}`;
    } finally {
      if (memoryAbort === controller) { memoryAbort = null; ex.memoryUpdates += 1; }
    }
  }

  const MEMORY_STYLE = { "plain/lambda": { color: "#1f5fbf", symbol: "circle", name: "plain h = \u03bbh + x, \u2202h/\u2202\u03bb" },
    "normalised/lambda": { color: "#e07b00", symbol: "square", name: "normalised \u221a(1\u2212\u03bb\u00b2) x, \u2202h/\u2202\u03bb" },
    "exponential/nu": { color: "#17803d", symbol: "triangle-up", name: "normalised, \u03bb = exp(\u2212e<sup>\u03bd</sup>), \u2202h/\u2202\u03bd" } };

  function renderMemory(m) {
    if (!m) return;
    for (const [div, key, title, ylabel] of [
      ["plot-memory-h2", "h2", "Forward: E[h\u00b2]", "E[h<sub>T</sub>\u00b2]"],
      ["plot-memory-sens", "sens", "Backward: E[(\u2202h/\u2202p)\u00b2]", "E[(\u2202h<sub>T</sub>/\u2202p)\u00b2]"]]) {
      const traces = [];
      for (const c of m.curves) {
        const id = `${c.case}/${c.param}`, st = MEMORY_STYLE[id];
        if (key === "h2" && c.case === "exponential") continue;  // the same variance as normalised
        const rows = m.rows.filter((r) => r.case === c.case && r.param === c.param);
        const slope = m.slopes[id] && m.slopes[id][key + "_mc"];
        traces.push({ x: c.memory, y: c[key], mode: "lines", name: `${st.name} closed form`, legendgroup: id, showlegend: false,
          line: { color: st.color, width: 1.6 }, hovertemplate: "1/(1\u2212\u03bb) = %{x:.3g}: %{y:.4g}<extra>closed form</extra>" });
        traces.push({ x: rows.map((r) => r.memory), y: rows.map((r) => r[key + "_mc"]), mode: "markers", legendgroup: id,
          name: (key === "h2" && c.case === "normalised" ? "normalised (= exponential)" : key === "h2" ? "plain" : st.name) +
            (slope === null || slope === undefined ? "" : ` (slope ${fmt(slope, 3)})`),
          error_y: { type: "data", array: rows.map((r) => r[key + "_bar"]), visible: true, color: st.color, thickness: 1.2, width: 3 },
          marker: { color: "#fff", symbol: st.symbol, size: 7, line: { color: st.color, width: 1.6 } },
          hovertemplate: "1/(1\u2212\u03bb) = %{x:.3g}: %{y:.4g} (Monte Carlo)<extra></extra>" });
      }
      Plotly.react(div, traces, baseLayout(title, {
        xaxis: axis("memory 1/(1 \u2212 \u03bb) (steps)", { type: "log", dtick: 1 }),
        yaxis: axis(ylabel, { type: "log", dtick: 1, exponentformat: "power" }),
        showlegend: true, legend: { orientation: "h", x: 0, xanchor: "left", y: 1.0, yanchor: "bottom", font: { size: 10.5 } },
        margin: { l: 56, r: 12, t: 66, b: 40 },
      }), PLOT_CONFIG);
    }
  }
  ex.updateMemory = updateMemory;

  // ------------------------------------------------------------------ start
  async function start() {
    try {
      const r = await fetch("/api/meta");
      ex.meta = await r.json();
    } catch (e) {
      showError(`could not reach the server (${e.message})`);
      return;
    }
    buildPresets();
    for (const kind of Object.keys(ex.meta.options)) Object.assign(state, ex.meta.options[kind]);  // the cells' defaults
    $("memory-rho").value = String(ex.meta.memory.rho);
    $("memory-rho-num").textContent = String(ex.meta.memory.rho);
    $("memory-sequences").value = String(ex.meta.memory.sequences);
    fromLocation();
    syncControls();
    wire();
    ex.ready = true;
    changed();
    // the memory panel once the first views are drawn (the server computes one request at a time)
    const first = setInterval(() => { if (ex.updates > 0) { clearInterval(first); updateMemory(); } }, 50);
  }
  start();
})();

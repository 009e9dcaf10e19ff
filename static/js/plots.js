// Charts that fit the screen: on a narrow one the legend moves below the plot (never over the data), the side
// margins shrink and the chart grows by the legend's height. Pages call PW.fitLayout(el, layout, data) before every
// Plotly.react; charts they fitted follow the window across the breakpoint.
(function () {
  "use strict";
  const PW = (window.PW = window.PW || {});
  const NARROW = (PW.NARROW = 640); // px: below it a screen is laid out (and drawn) as a phone's
  const wide = new WeakMap(); // el -> the layout's own legend, margin and height
  const fitted = new Set();

  PW.fitLayout = (el, layout, data) => {
    if (!wide.has(el)) wide.set(el, { legend: layout.legend, margin: layout.margin, height: layout.height });
    fitted.add(el);
    const own = wide.get(el);
    const width = el.clientWidth || window.innerWidth;
    if (width >= NARROW) return Object.assign(layout, own);
    const entries = (data || el.data || []).filter((t) => t.showlegend !== false).length || 8;
    const perRow = Math.max(1, Math.floor(width / 140));
    const legendPx = Math.ceil(entries / perRow) * 19 + 10;
    const height = (own.height || 450) + legendPx;
    const margin = { ...(own.margin || {}), l: 46, r: 10 };
    // Below the bottom axis (its tick labels and title, about 80 px), in the plot area's own units.
    const plotPx = height - (margin.t || 80) - (margin.b || 80);
    return Object.assign(layout, {
      height, margin,
      legend: { ...(own.legend || {}), orientation: "h", x: 0, xanchor: "left", y: -80 / plotPx, yanchor: "top",
        font: { size: 10 } },
    });
  };

  let timer = null;
  window.addEventListener("resize", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      for (const el of fitted) {
        if (!el.isConnected || !el.layout || typeof Plotly === "undefined") continue;
        const layout = PW.fitLayout(el, { ...el.layout });
        const fit = { height: layout.height, margin: layout.margin, legend: layout.legend };
        // Plotly follows the width itself (responsive); relayout only when the fit changes (across the breakpoint).
        const was = { height: el.layout.height, margin: el.layout.margin, legend: el.layout.legend };
        if (JSON.stringify(fit) !== JSON.stringify(was)) Plotly.relayout(el, fit);
      }
    }, 200);
  });
})();
// Drawing is the costliest thing a page does. PW.drawer(el, draw, {lazy}) returns request(): the chart is drawn
// when the browser is next idle, never while the tab is hidden (a lazy chart is first drawn when it comes near the
// screen, so it is ready when scrolled to), and live data redraws it only while it is on the screen (one off it is
// brought up to date as it comes back), at most once a second and at most a fifth of the time (the gap after a
// redraw is at least four times what it took), so a slow phone stays responsive. Charts due at the same time are
// drawn one per task (several never add up to one long task), paced together the same way.
(function () {
  "use strict";
  const PW = (window.PW = window.PW || {});
  const MIN_GAP_MS = 1000;
  const states = new Map(); // el -> state
  const queue = []; // states due, drawn one per idle callback
  let waiting = false;
  // Near: within 300 px of the screen (first drawn); seen: on it (redrawn). On a phone-sized screen a chart is first
  // drawn when it comes onto the screen: drawing the ones below it while the page loads costs a slow phone a
  // tenth of a second each before it answers a touch.
  const watch = (key, rootMargin) => ("IntersectionObserver" in window ? new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const state = states.get(entry.target);
      if (!state) continue;
      state[key] = entry.isIntersecting;
      pump(state);
    }
  }, { rootMargin }) : null);
  const observer = watch("near", window.innerWidth < PW.NARROW ? "0px" : "300px 0px");
  const onScreen = watch("seen", "0px");
  // Due now: a first draw once the chart is near the screen, a redraw while it is on it.
  const due = (state) => !document.hidden && (state.lastEnd === -Infinity ? state.near : state.seen);
  // A busy page still draws within a second.
  const whenIdle = window.requestIdleCallback ? (fn) => requestIdleCallback(fn, { timeout: 1000 })
    : (fn) => setTimeout(fn, 50);

  // Draw now; the time it took sets the gap before the next redraw.
  function run(state) {
    state.dirty = false;
    const t0 = performance.now();
    state.draw();
    state.lastEnd = performance.now();
    state.lastMs = state.lastEnd - t0;
  }

  // Redraws keep that ratio across charts too: after one, the next (of any chart) waits four times as long, so all
  // the charts of a page together redraw at most a fifth of the time. A round of redraws with a long task in it
  // (over 50 ms: a slow device) leaves the page two seconds without any before the next round, for the user's input.
  // A chart's first draw does not wait.
  const LONG_TASK_MS = 50;
  const AFTER_LONG_MS = 2000;
  let freeAt = -Infinity;
  let roundLong = false;
  function drain() {
    if (waiting) return;
    if (!queue.length) {
      if (roundLong) freeAt = Math.max(freeAt, performance.now() + AFTER_LONG_MS);
      roundLong = false;
      return;
    }
    waiting = true;
    const wait = queue[0].lastEnd === -Infinity ? 0 : Math.max(0, freeAt - performance.now());
    setTimeout(() => whenIdle(() => {
      waiting = false;
      const state = queue.shift();
      state.queued = false;
      const redraw = state.lastEnd !== -Infinity;
      if (state.dirty && due(state)) { // else resumed when seen again
        run(state);
        if (redraw) freeAt = state.lastEnd + 4 * state.lastMs;
        roundLong = roundLong || state.lastMs > LONG_TASK_MS;
      }
      drain();
    }), wait);
  }

  function pump(state) {
    if (!state.dirty || state.timer || state.queued || !due(state)) return;
    const wait = Math.max(0, state.lastEnd + Math.max(MIN_GAP_MS, 4 * state.lastMs) - performance.now());
    state.timer = setTimeout(() => {
      state.timer = null;
      state.queued = true;
      queue.push(state);
      drain();
    }, wait);
  }

  document.addEventListener("visibilitychange", () => { for (const state of states.values()) pump(state); });

  PW.drawer = (el, draw, { lazy = false } = {}) => {
    const state = { draw, dirty: false, timer: null, queued: false, near: !lazy || !observer, seen: !onScreen,
      lastEnd: -Infinity, lastMs: 0 };
    states.set(el, state);
    if (observer) observer.observe(el);
    if (onScreen) onScreen.observe(el);
    return {
      request() { state.dirty = true; pump(state); },
      now() { run(state); }, // the page's first chart: drawn at once
    };
  };
})();

// Instrument page: the server-built figures (six panels of price and order flow, a figure each, and the index),
// filled from the page's bars and then from live bars. Only the figures near the screen are drawn and redrawn, each
// in a short task of its own, so a live page stays responsive on a slow phone.
(function () {
  "use strict";
  const read = (id) => JSON.parse(document.getElementById(id).textContent);
  const byTime = (a, b) => (a.bucket_start < b.bucket_start ? -1 : a.bucket_start > b.bucket_start ? 1 : 0);
  const CONFIG = { responsive: true, displaylogo: false };

  // The bars all charts plot, merged by bucket_start. A live chart slides: it keeps the selected range behind the
  // newest bar.
  function Bars(rows, { rangeMs, live }) {
    const index = new Map(rows.map((r, i) => [r.bucket_start, i]));
    const merge = (bars) => {
      for (const bar of bars) {
        const at = index.get(bar.bucket_start);
        if (at === undefined) rows.push(bar); else rows[at] = bar;
      }
      rows.sort(byTime);
      if (live && rows.length) {
        const oldest = Date.parse(rows[rows.length - 1].bucket_start) - rangeMs;
        let drop = 0;
        while (drop < rows.length && Date.parse(rows[drop].bucket_start) < oldest) drop += 1;
        rows.splice(0, drop);
      }
      index.clear();
      rows.forEach((r, i) => index.set(r.bucket_start, i));
      let run = 0;
      for (const r of rows) { run += Number(r.delta_base || 0); r.cvd_base = run; }
    };
    return { rows, merge };
  }

  // The panels share one time axis, as the subplots of one figure would: a zoom or pan in one is applied to the
  // others, and a double click (or autoscale) brings them all back to following the bars.
  function TimeAxis(bars, intervalMs) {
    const els = [];
    let zoom = null;
    const iso = (ms) => new Date(ms).toISOString();
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    const range = () => {
      const rows = bars.rows;
      if (zoom || !rows.length) return zoom;
      return [iso(Date.parse(rows[0].bucket_start) - intervalMs / 2),
        iso(Date.parse(rows[rows.length - 1].bucket_start) + intervalMs / 2)];
    };
    const show = (except) => {
      const want = range();
      for (const el of els) if (el !== except && want && !same(el.layout.xaxis.range, want)) {
        Plotly.relayout(el, { "xaxis.range": want });
      }
    };
    const follow = () => { zoom = null; show(); };
    return {
      range,
      join(el) {
        els.push(el);
        el.on("plotly_relayout", (ev) => {
          if (ev["xaxis.autorange"]) return follow();
          const next = ev["xaxis.range"] || ("xaxis.range[0]" in ev ? [ev["xaxis.range[0]"], ev["xaxis.range[1]"]] : null);
          if (!next || same(next, range())) return; // our own relayout, echoed
          zoom = next;
          show(el);
        });
        el.on("plotly_doubleclick", () => { setTimeout(follow); });
      },
    };
  }

  // One figure fed by the bars; each trace's meta names the field it plots. A trace with meta.final plots final
  // bars only; one with meta.forming the forming (not yet final) bar only.
  function Chart(el, figure, bars, { lazy = true, forming = false, fit = false, axis = null, mark = null } = {}) {
    const value = (r, meta) => {
      if (meta.final && r.final === false) return null;
      if (meta.forming && r.final !== false) return null;
      if (meta.contrib) return (r.spi_contributions || {})[meta.contrib] ?? null;
      const v = r[meta.y];
      return v === null || v === undefined ? null : (meta.sign || 1) * Number(v);
    };
    const baseAnnotations = (figure.layout.annotations || []).filter((a) => !a.forming);
    let joined = false;
    const draw = () => {
      const rows = bars.rows;
      const x = rows.map((r) => r.bucket_start);
      for (const trace of figure.data) {
        const meta = trace.meta || {};
        trace.x = x;
        if (meta.kind === "ohlc") {
          for (const k of ["open", "high", "low", "close"]) trace[k] = rows.map((r) => PW.num(r[k]));
        } else if (meta.y || meta.contrib) {
          trace.y = rows.map((r) => value(r, meta));
          if (trace.customdata) trace.customdata = rows.map((r) => PW.num(r[meta.y]));
        }
      }
      // The forming bar is labelled: its values move until the bar is final.
      const last = rows[rows.length - 1];
      if (forming) {
        figure.layout.annotations = baseAnnotations.concat(last && last.final === false ? [{
          forming: true, x: last.bucket_start, xref: "x", y: 1, yref: "paper", yanchor: "bottom", showarrow: false,
          text: "forming", font: { size: 10 }, opacity: 0.8,
        }] : []);
      }
      if (axis) {
        const range = axis.range();
        figure.layout.xaxis = { ...figure.layout.xaxis, range: range || undefined, autorange: !range };
      }
      if (fit && PW.fitLayout) PW.fitLayout(el, figure.layout, figure.data);
      Plotly.react(el, figure.data, figure.layout, CONFIG);
      if (mark && !el.dataset.ready) performance.mark(mark);
      if (axis && !joined) { joined = true; axis.join(el); }
      el.dataset.ready = "1";
    };
    return PW.drawer(el, draw, { lazy });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const config = read("live-config");
    const bars = Bars(read("bars-data"), config);
    const rows = bars.rows;
    const { template, panels } = JSON.parse(read("figure-data"));
    const axis = TimeAxis(bars, config.intervalMs);
    // On a desk the price panel is the page's first chart, drawn at once; the others when they come near the
    // screen. On a phone the index strip fills the first screen: the price panel too is drawn when it comes onto it.
    const phone = window.innerWidth < PW.NARROW;
    const charts = panels.map(({ id, figure }, i) => {
      figure.layout.template = template;
      // The first draw of the price panel is marked, measured from navigation (bench/first_chart.py).
      return Chart(document.getElementById(id), figure, bars,
        { lazy: i > 0 || phone, forming: i === 0, axis, mark: i === 0 ? "pw:chart-ready" : null });
    });
    const chart = document.getElementById(panels[0].id);
    const spiEl = document.getElementById("spi-chart");
    if (spiEl) charts.push(Chart(spiEl, JSON.parse(read("spi-figure-data")), bars, { forming: true, fit: true }));
    let updates = 0;
    // A range longer than the stored history (the replay starts with an hour): say where the data starts, rather
    // than let a 24h chart look like the 1h one.
    const note = document.getElementById("range-note");
    if (note && rows.length && config.rangeStart) {
      const first = Date.parse(rows[0].bucket_start);
      if (first - Date.parse(config.rangeStart) > 2 * config.intervalMs) {
        note.textContent = "Stored bars in this range start at " +
          new Date(first).toISOString().slice(0, 16).replace("T", " ") + " UTC; nothing is stored before that.";
        note.hidden = false;
      }
    }

    // The headline: one object from the latest final bar, replaced whole (never from a forming bar).
    const showHeadline = (h) => {
      const box = document.getElementById("spi-headline");
      if (!box || !h || h.spi === null || h.spi === undefined) return;
      box.hidden = false;
      const waiting = document.getElementById("spi-waiting");
      if (waiting) waiting.remove();
      document.getElementById("spi-value").textContent = Math.round(h.spi);
      const badge = document.getElementById("spi-regime");
      badge.textContent = h.regime || "";
      badge.className = `badge regime-${h.regime || "none"}`;
      const time = document.getElementById("spi-bar-time");
      time.dateTime = h.bucket_start;
      time.textContent = h.bucket_start.slice(11, 16);
      document.getElementById("spi-explain").textContent = h.explanation || "";
      document.getElementById("spi-meaning").textContent = h.regime_meaning || "";
      const risk = document.getElementById("drop-risk");
      risk.hidden = h.drop_risk === null || h.drop_risk === undefined;
      if (!risk.hidden) {
        document.getElementById("drop-risk-value").textContent = `${(100 * h.drop_risk).toFixed(1)}%`;
        document.getElementById("drop-risk-normal").textContent = h.drop_risk_normal
          ? `(${h.drop_risk_ratio.toFixed(1)}× normal, ${(100 * h.drop_risk_normal).toFixed(1)}%)` : "";
      }
      box.dataset.bucketStart = h.bucket_start;
    };

    const apply = (update, headline) => {
      if (update[config.interval]) {
        bars.merge(update[config.interval]);
        for (const c of charts) c.request(); // each redrawn when due, if near the screen
      }
      if (headline && headline[config.interval]) showHeadline(headline[config.interval]);
      updates += 1;
      chart.dataset.liveUpdates = String(updates);
      document.getElementById("bar-count").textContent = rows.length;
      if (rows.length) {
        document.getElementById("last-update").textContent =
          rows[rows.length - 1].bucket_start.slice(0, 16).replace("T", " ") + " UTC";
        const empty = document.getElementById("empty-state");
        if (empty) empty.remove();
      }
    };

    const catchUp = async () => {
      // Fetch everything since the last bar we hold, so the chart has no gap: the bars, and the index of
      // the same bars (with which of them are final) from the pressure API.
      const since = rows.length ? rows[rows.length - 1].bucket_start
        : new Date(Date.now() - config.rangeMs).toISOString();
      try {
        // End one range past "since": a fast-forwarded replay runs ahead of the wall clock.
        const until = new Date(Date.parse(since) + config.rangeMs).toISOString();
        const window = `&start=${encodeURIComponent(since)}&end=${encodeURIComponent(until)}`;
        const [barsResp, index] = await Promise.all([fetch(config.api + window), fetch(config.pressureApi + window)]);
        if (!barsResp.ok || !index.ok) return;
        const pressure = new Map((await index.json()).pressure.map((r) => [r.bucket_start, r]));
        const fresh = (await barsResp.json()).bars.map((r) => {
          const p = pressure.get(r.bucket_start);
          if (!p) return r;
          const contributions = Object.fromEntries(Object.entries(p.components).map(([k, c]) => [k, c.contribution]));
          return { ...r, final: p.final, spi: p.spi, regime: p.regime, spi_contributions: contributions };
        });
        apply({ [config.interval]: fresh });
      } catch (e) { /* the next reconnect tries again */ }
    };

    if (phone) charts[0].request(); else charts[0].now();
    for (const c of charts.slice(1)) c.request(); // drawn when they come near the screen
    if (!config.live) {
      PW.showHistorical(document.getElementById("conn-status"));
      return;
    }
    PW.connect(`/ws/instruments/${config.instrument}/`, {
      statusEl: document.getElementById("conn-status"),
      // Also on the first open: bars written between rendering the page and subscribing arrive too.
      onOpen: () => catchUp(),
      onMessage: (msg) => { if (msg.type === "bars") apply(msg.bars, msg.headline); },
    });
  });
})();

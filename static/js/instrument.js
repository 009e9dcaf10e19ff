// Instrument page: render the server-built Plotly figures, then merge live bars into them.
(function () {
  "use strict";
  const read = (id) => JSON.parse(document.getElementById(id).textContent);
  const byTime = (a, b) => (a.bucket_start < b.bucket_start ? -1 : a.bucket_start > b.bucket_start ? 1 : 0);

  // One chart fed by a list of bar rows; each trace's meta names the field it plots. A trace with
  // meta.final plots final bars only; one with meta.forming the forming (not yet final) bar only.
  function LiveFigure(el, figure, rows, { rangeMs, live, lazy = false }) {
    const index = new Map(rows.map((r, i) => [r.bucket_start, i]));
    const value = (r, meta) => {
      if (meta.final && r.final === false) return null;
      if (meta.forming && r.final !== false) return null;
      if (meta.contrib) return (r.spi_contributions || {})[meta.contrib] ?? null;
      const v = r[meta.y];
      return v === null || v === undefined ? null : (meta.sign || 1) * Number(v);
    };
    const baseAnnotations = (figure.layout.annotations || []).filter((a) => !a.forming);
    const redraw = () => {
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
      figure.layout.annotations = baseAnnotations.concat(last && last.final === false ? [{
        forming: true, x: last.bucket_start, xref: "x", y: 1, yref: "paper", yanchor: "bottom", showarrow: false,
        text: "forming", font: { size: 10 }, opacity: 0.8,
      }] : []);
      if (PW.fitLayout) PW.fitLayout(el, figure.layout, figure.data);
      Plotly.react(el, figure.data, figure.layout, { responsive: true, displaylogo: false });
      el.dataset.ready = "1";
    };
    const drawer = PW.drawer(el, redraw, { lazy });
    const merge = (bars) => {
      for (const bar of bars) {
        const at = index.get(bar.bucket_start);
        if (at === undefined) rows.push(bar); else rows[at] = bar;
      }
      rows.sort(byTime);
      // A live chart slides: keep only the selected range behind the newest bar.
      if (live && rows.length) {
        const newest = Date.parse(rows[rows.length - 1].bucket_start);
        while (rows.length && Date.parse(rows[0].bucket_start) < newest - rangeMs) rows.shift();
      }
      index.clear();
      rows.forEach((r, i) => index.set(r.bucket_start, i));
      let run = 0;
      for (const r of rows) { run += Number(r.delta_base || 0); r.cvd_base = run; }
      drawer.request();
    };
    return { rows, draw: drawer.now, request: drawer.request, merge };
  }

  document.addEventListener("DOMContentLoaded", () => {
    const config = read("live-config");
    const chart = document.getElementById("chart");
    const main = LiveFigure(chart, JSON.parse(read("figure-data")), read("bars-data"), config);
    const spiEl = document.getElementById("spi-chart");
    // The index chart plots the same bars (parsed again: each chart keeps its own rows).
    const spi = spiEl && LiveFigure(spiEl, JSON.parse(read("spi-figure-data")), read("bars-data"),
      { rangeMs: config.rangeMs, live: config.live, lazy: true });
    let updates = 0;
    // A range longer than the stored history (the replay starts with an hour): say where the data starts, rather
    // than let a 24h chart look like the 1h one.
    const note = document.getElementById("range-note");
    if (note && main.rows.length && config.rangeStart) {
      const first = Date.parse(main.rows[0].bucket_start);
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

    const apply = (bars, headline) => {
      if (bars[config.interval]) {
        main.merge(bars[config.interval]);
        if (spi) spi.merge(bars[config.interval]);
      }
      if (headline && headline[config.interval]) showHeadline(headline[config.interval]);
      updates += 1;
      chart.dataset.liveUpdates = String(updates);
      document.getElementById("bar-count").textContent = main.rows.length;
      if (main.rows.length) {
        document.getElementById("last-update").textContent =
          main.rows[main.rows.length - 1].bucket_start.slice(0, 16).replace("T", " ") + " UTC";
        const empty = document.getElementById("empty-state");
        if (empty) empty.remove();
      }
    };

    const catchUp = async () => {
      // Fetch everything since the last bar we hold, so the chart has no gap: the bars, and the index of
      // the same bars (with which of them are final) from the pressure API.
      const since = main.rows.length ? main.rows[main.rows.length - 1].bucket_start
        : new Date(Date.now() - config.rangeMs).toISOString();
      try {
        // End one range past "since": a fast-forwarded replay runs ahead of the wall clock.
        const until = new Date(Date.parse(since) + config.rangeMs).toISOString();
        const window = `&start=${encodeURIComponent(since)}&end=${encodeURIComponent(until)}`;
        const [bars, index] = await Promise.all([fetch(config.api + window), fetch(config.pressureApi + window)]);
        if (!bars.ok || !index.ok) return;
        const pressure = new Map((await index.json()).pressure.map((r) => [r.bucket_start, r]));
        const rows = (await bars.json()).bars.map((r) => {
          const p = pressure.get(r.bucket_start);
          if (!p) return r;
          const contributions = Object.fromEntries(Object.entries(p.components).map(([k, c]) => [k, c.contribution]));
          return { ...r, final: p.final, spi: p.spi, regime: p.regime, spi_contributions: contributions };
        });
        apply({ [config.interval]: rows });
      } catch (e) { /* the next reconnect tries again */ }
    };

    main.draw();
    performance.mark("pw:chart-ready"); // the first chart drawn, measured from navigation (bench/first_chart.py)
    if (spi) spi.request(); // below the price chart: drawn when it comes near the screen
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

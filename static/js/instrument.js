// Instrument page: render the server-built Plotly figures, then merge live bars into them.
(function () {
  "use strict";
  const read = (id) => JSON.parse(document.getElementById(id).textContent);
  const byTime = (a, b) => (a.bucket_start < b.bucket_start ? -1 : a.bucket_start > b.bucket_start ? 1 : 0);

  // One chart fed by a list of bar rows; each trace's meta names the field it plots.
  function LiveFigure(el, figure, rows, { rangeMs, live }) {
    const index = new Map(rows.map((r, i) => [r.bucket_start, i]));
    const value = (r, meta) => {
      if (meta.contrib) return (r.spi_contributions || {})[meta.contrib] ?? null;
      const v = r[meta.y];
      return v === null || v === undefined ? null : (meta.sign || 1) * Number(v);
    };
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
      Plotly.react(el, figure.data, figure.layout, { responsive: true, displaylogo: false });
    };
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
      redraw();
    };
    return { rows, redraw, merge };
  }

  document.addEventListener("DOMContentLoaded", () => {
    const config = read("live-config");
    const chart = document.getElementById("chart");
    const main = LiveFigure(chart, JSON.parse(read("figure-data")), read("bars-data"), config);
    const spiEl = document.getElementById("spi-chart");
    // On 1m charts the SPI rows are the bars themselves (parsed again: each chart keeps its own rows).
    const spiRows = document.getElementById("spi-bars-data") ? read("spi-bars-data") : read("bars-data");
    const spi = spiEl && LiveFigure(spiEl, JSON.parse(read("spi-figure-data")), spiRows,
      { rangeMs: Math.min(config.rangeMs, 24 * 3600 * 1000), live: config.live });
    let updates = 0;

    const apply = (bars) => {
      if (bars[config.interval]) main.merge(bars[config.interval]);
      if (spi && bars["1m"]) {
        spi.merge(bars["1m"]);
        const last = bars["1m"][bars["1m"].length - 1];
        const badge = document.getElementById("spi-regime");
        if (badge && last.regime) { badge.textContent = last.regime; badge.className = `badge regime-${last.regime}`; }
      }
      updates += 1;
      chart.dataset.liveUpdates = String(updates);
      document.getElementById("bar-count").textContent = main.rows.length;
      if (main.rows.length) {
        document.getElementById("last-update").textContent = main.rows[main.rows.length - 1].bucket_start;
        const empty = document.getElementById("empty-state");
        if (empty) empty.remove();
      }
    };

    const catchUp = async () => {
      // Fetch everything since the last bar we hold, so the chart has no gap.
      const since = main.rows.length ? main.rows[main.rows.length - 1].bucket_start
        : new Date(Date.now() - config.rangeMs).toISOString();
      try {
        // End one range past "since": a fast-forwarded replay runs ahead of the wall clock.
        const until = new Date(Date.parse(since) + config.rangeMs).toISOString();
        const resp = await fetch(`${config.api}&start=${encodeURIComponent(since)}&end=${encodeURIComponent(until)}`);
        if (resp.ok) apply({ [config.interval]: (await resp.json()).bars });
      } catch (e) { /* the next reconnect tries again */ }
    };

    main.redraw();
    if (spi) spi.redraw();
    chart.dataset.ready = "1";
    if (!config.live) {
      const status = document.getElementById("conn-status");
      status.dataset.state = "static";
      status.textContent = "historical range (not live)";
      return;
    }
    PW.connect(`/ws/instruments/${config.instrument}/`, {
      statusEl: document.getElementById("conn-status"),
      // Also on the first open: bars written between rendering the page and subscribing arrive too.
      onOpen: () => catchUp(),
      onMessage: (msg) => { if (msg.type === "bars") apply(msg.bars); },
    });
  });
})();

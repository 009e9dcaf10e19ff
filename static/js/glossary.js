// Glossary term page: draw the server-built chart of the term's metric, then extend it with live 1m bars.
(function () {
  "use strict";
  const read = (id) => JSON.parse(document.getElementById(id).textContent);

  document.addEventListener("DOMContentLoaded", () => {
    const el = document.getElementById("term-chart");
    if (!el || typeof Plotly === "undefined") return;
    const figure = JSON.parse(read("term-figure-data"));
    const config = read("term-chart-config");
    const rows = config.rows;
    const plotConfig = { responsive: true, displaylogo: false };

    const redraw = () => {
      if (config.cumulativeOf) {
        // CVD depends on the range start, so live bars omit it: sum delta here as the instrument page does.
        let run = 0;
        for (const r of rows) { run += Number(r[config.cumulativeOf] || 0); r.value = run; }
      }
      const trace = figure.data[0];
      trace.x = rows.map((r) => r.bucket_start);
      trace.y = rows.map((r) => PW.num(r.value));
      if (PW.fitLayout) PW.fitLayout(el, figure.layout, figure.data);
      Plotly.react(el, figure.data, figure.layout, plotConfig);
      const empty = document.getElementById("chart-empty");
      if (empty && rows.length) empty.remove();
    };

    const merge = (bars) => {
      for (const bar of bars) {
        const row = { bucket_start: bar.bucket_start, value: bar[config.metric], delta_base: bar.delta_base };
        const at = rows.findIndex((r) => r.bucket_start === bar.bucket_start);
        if (at >= 0) rows[at] = row; else rows.push(row);
      }
      rows.sort((a, b) => (a.bucket_start < b.bucket_start ? -1 : a.bucket_start > b.bucket_start ? 1 : 0));
      if (rows.length) {
        const newest = Date.parse(rows[rows.length - 1].bucket_start);
        while (rows.length && Date.parse(rows[0].bucket_start) < newest - config.rangeMs) rows.shift();
      }
      redraw();
      el.dataset.liveUpdates = String(Number(el.dataset.liveUpdates || 0) + 1);
    };

    redraw();
    el.dataset.ready = "1";
    PW.connect(`/ws/instruments/${config.instrument}/`, {
      statusEl: document.getElementById("conn-status"),
      onMessage: (msg) => {
        if (msg.type === "bars" && msg.instrument === config.instrument && msg.bars["1m"]) merge(msg.bars["1m"]);
      },
    });
  });
})();

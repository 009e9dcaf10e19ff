// Overview and watchlist heat map: draw sparklines and update each instrument's row live.
(function () {
  "use strict";
  const fmt = {
    bucket_start: (v) => v.slice(0, 16).replace("T", " ") + " UTC",
    close: (v, row) => Number(v).toLocaleString("en-US", { maximumFractionDigits: 2 }) + " " + row.dataset.quote,
    taker_sell_ratio: (v) => (v === null ? "–" : Math.round(v * 100) + "%"),
    delta_base: (v, row) => Number(v).toFixed(4) + " " + row.dataset.base,
    spread_bps: (v) => (v === null ? "–" : Number(v).toFixed(3) + " bps"),
    imbalance_0_5pct: (v) => (v === null ? "–" : Number(v).toFixed(3)),
    spi: (v) => (v === null ? "–" : Math.round(v)),
    regime: (v) => v || "–",
  };
  // Heat: how far the metric leans to selling, as a level the CSS colours.
  const heat = {
    taker_sell_ratio: (v) => (v === null ? 0 : v >= 0.7 ? 3 : v >= 0.6 ? 2 : v >= 0.55 ? 1 : v <= 0.4 ? -1 : 0),
    spi: (v) => (v === null ? 0 : v >= 80 ? 3 : v >= 60 ? 2 : v >= 40 ? 1 : -1),
  };
  const paint = (row) => {
    for (const [field, level] of Object.entries(heat)) {
      const cell = row.querySelector(`[data-field="${field}"]`);
      if (cell && cell.dataset.value !== undefined && cell.dataset.value !== "") {
        cell.dataset.level = level(Number(cell.dataset.value));
      }
    }
  };
  document.addEventListener("DOMContentLoaded", () => {
    const figures = new Map();
    const template = document.getElementById("sparkline-figure");
    document.querySelectorAll(".sparkline").forEach((el) => {
      // One shared figure (layout and style), filled with this row's closes.
      const fig = JSON.parse(JSON.parse(template.textContent));
      const closes = JSON.parse(document.getElementById(el.dataset.figureId).textContent);
      fig.data[0].x = closes.x;
      fig.data[0].y = closes.y;
      figures.set(el, fig);
      Plotly.newPlot(el, fig.data, fig.layout, { staticPlot: true, displayModeBar: false });
    });
    document.querySelectorAll("tr[data-instrument]").forEach(paint);
    PW.connect("/ws/overview/", {
      statusEl: document.getElementById("conn-status"),
      onMessage: (msg) => {
        if (msg.type !== "bars" || !msg.bars["1m"]) return;
        const bar = msg.bars["1m"][msg.bars["1m"].length - 1];
        document.querySelectorAll(`tr[data-instrument="${msg.instrument}"]`).forEach((row) => {
          for (const [field, render] of Object.entries(fmt)) {
            const cell = row.querySelector(`[data-field="${field}"]`);
            if (cell && bar[field] !== undefined) {
              cell.textContent = render(bar[field], row);
              cell.dataset.value = bar[field] === null ? "" : bar[field];
            }
          }
          paint(row);
          const el = row.querySelector(".sparkline");
          const fig = el && figures.get(el);
          if (fig && bar.close !== null) {
            const t = fig.data[0];
            const i = t.x.indexOf(bar.bucket_start);
            if (i >= 0) t.y[i] = Number(bar.close); else { t.x.push(bar.bucket_start); t.y.push(Number(bar.close)); }
            if (t.x.length > 60) { t.x.shift(); t.y.shift(); }
            Plotly.react(el, fig.data, fig.layout, { staticPlot: true, displayModeBar: false });
          }
          row.classList.add("flash");
          setTimeout(() => row.classList.remove("flash"), 400);
        });
      },
    });
  });
})();

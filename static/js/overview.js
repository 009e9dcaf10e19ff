// Overview and watchlist heat map: draw the index sparklines, update rows live, sort by a column.
// Index, regime, drop risk and CVD change come from the last closed minute (the headline of a final bar);
// price, taker sell ratio and spread from the minute forming now.
(function () {
  "use strict";
  const MINUS = "\u2212";
  const signed = (v, digits) => (v < 0 ? MINUS : "+") + Math.abs(v).toLocaleString("en-US",
    { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const fmt = {
    bucket_start: (v) => v.slice(0, 16).replace("T", " ") + " UTC",
    close: (v, row) => Number(v).toLocaleString("en-US", {
      minimumFractionDigits: Number(row.dataset.priceDecimals || 2),
      maximumFractionDigits: Number(row.dataset.priceDecimals || 2) }) + " " + row.dataset.quote,
    taker_sell_ratio: (v) => (v === null ? "–" : Math.round(v * 100) + "%"),
    spread_bps: (v) => (v === null ? "–" : Number(v).toFixed(2) + " bps"),
    imbalance_0_5pct: (v) => (v === null ? "–" : Number(v).toFixed(3)),
  };
  const headlineFmt = {
    spi: (h) => (h.spi === null ? "–" : String(Math.round(h.spi))),
    regime: (h) => h.regime || "–",
    drop_risk: (h) => (h.drop_risk === null ? "–" : (100 * h.drop_risk).toFixed(1) + "%" +
      (h.drop_risk_ratio ? " (" + h.drop_risk_ratio.toFixed(1) + "×)" : "")),
  };
  const REGIME_RANK = { calm: 0, elevated: 1, high: 2, extreme: 3 };
  // The geometry of apps/dashboard/templatetags/sparklines.py: minutes across the hour ending at the newest point,
  // y = 100 - index, a new segment after a missing minute.
  const sparkPath = ({ x, y }) => {
    if (!x.length) return "";
    const minutes = x.map((t) => Date.parse(t) / 60000);
    const start = minutes[minutes.length - 1] - 60;
    const parts = [];
    let previous = null;
    minutes.forEach((m, i) => {
      if (y[i] === null || m < start) { previous = null; return; }
      parts.push(`${previous !== null && m - previous <= 1 ? "L" : "M"}${(m - start).toFixed(2)} ${(100 - y[i]).toFixed(1)}`);
      previous = m;
    });
    return parts.join(" ");
  };
  // Heat: how far the metric leans to selling, as a level the CSS colours.
  const heat = {
    taker_sell_ratio: (v) => (v >= 0.7 ? 3 : v >= 0.6 ? 2 : v >= 0.55 ? 1 : v <= 0.4 ? -1 : 0),
    spi: (v) => (v >= 80 ? 3 : v >= 60 ? 2 : v >= 40 ? 1 : -1),
  };
  const setCell = (row, field, text, value) => {
    const cell = row.querySelector(`[data-field="${field}"]`);
    if (!cell) return;
    cell.textContent = text;
    cell.dataset.value = value === null || value === undefined ? "" : value;
  };
  const paint = (row) => {
    for (const [field, level] of Object.entries(heat)) {
      const cell = row.querySelector(`[data-field="${field}"]`);
      if (cell && cell.dataset.value !== undefined && cell.dataset.value !== "") {
        cell.dataset.level = level(Number(cell.dataset.value));
      }
    }
  };
  const sortValue = (row, th) => {
    const button = th.querySelector("button");
    const cell = button.dataset.key ? row.querySelector(`[data-field="${button.dataset.key}"]`) : row.cells[th.cellIndex];
    if (!cell) return null;
    const raw = cell.dataset.value !== undefined ? cell.dataset.value : (cell.dataset.sort || cell.textContent);
    if (raw === "") return null;
    if (button.dataset.sort === "number") return Number(raw);
    if (button.dataset.sort === "regime") return REGIME_RANK[raw] ?? null;
    return raw.toLowerCase();
  };
  const sortable = (table) => {
    table.querySelectorAll("thead button[data-sort]").forEach((button) => {
      button.addEventListener("click", () => {
        const th = button.closest("th");
        const order = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
        table.querySelectorAll("thead th[aria-sort]").forEach((h) => h.setAttribute("aria-sort", "none"));
        th.setAttribute("aria-sort", order);
        const sign = order === "ascending" ? 1 : -1;
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        rows.sort((a, b) => {
          const x = sortValue(a, th), y = sortValue(b, th);
          if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1;  // empty cells last
          return (x < y ? -1 : x > y ? 1 : 0) * sign;
        });
        rows.forEach((r) => body.appendChild(r));
      });
    });
  };
  document.addEventListener("DOMContentLoaded", () => {
    // Each row's sparkline (inline SVG drawn by the server) keeps its points here to redraw them live.
    const sparks = new Map();
    document.querySelectorAll("svg.sparkline").forEach((el) => {
      sparks.set(el, JSON.parse(document.getElementById(el.dataset.figureId).textContent));
    });
    document.querySelectorAll("tr[data-instrument]").forEach(paint);
    document.querySelectorAll("table.sortable").forEach(sortable);
    PW.connect("/ws/overview/", {
      statusEl: document.getElementById("conn-status"),
      onMessage: (msg) => {
        if (msg.type !== "bars") return;
        const bar = msg.bars && msg.bars["1m"] ? msg.bars["1m"][msg.bars["1m"].length - 1] : null;
        const head = msg.headline && msg.headline["1m"];
        document.querySelectorAll(`tr[data-instrument="${msg.instrument}"]`).forEach((row) => {
          if (bar) {
            for (const [field, render] of Object.entries(fmt)) {
              if (bar[field] !== undefined) setCell(row, field, render(bar[field], row), bar[field]);
            }
            const when = row.querySelector('[data-field="bucket_start"]');
            if (when && bar.final === false) when.insertAdjacentHTML("beforeend", ' <span class="forming">forming</span>');
          }
          if (head) {
            for (const [field, render] of Object.entries(headlineFmt)) setCell(row, field, render(head), head[field]);
            const regime = row.querySelector('[data-field="regime"]');
            if (regime && head.regime in REGIME_RANK) {
              const badge = document.createElement("span");
              badge.className = "badge regime-" + head.regime;
              badge.title = head.regime_meaning || "";
              badge.textContent = head.regime;
              regime.replaceChildren(badge);
            }
            if (msg.cvd_change_1h !== undefined) {
              const v = msg.cvd_change_1h === null ? null : Number(msg.cvd_change_1h);
              setCell(row, "cvd_change", v === null ? "–" : signed(v, 4) + " " + row.dataset.base, msg.cvd_change_1h);
            }
            const el = row.querySelector("svg.sparkline");
            const spark = el && sparks.get(el);
            if (spark && head.spi !== null) {
              const i = spark.x.indexOf(head.bucket_start);
              if (i >= 0) spark.y[i] = head.spi; else { spark.x.push(head.bucket_start); spark.y.push(head.spi); }
              while (spark.x.length > 60) { spark.x.shift(); spark.y.shift(); }
              el.firstElementChild.setAttribute("d", sparkPath(spark));
            }
          }
          paint(row);
          row.classList.add("flash");
          setTimeout(() => row.classList.remove("flash"), 400);
        });
      },
    });
  });
})();

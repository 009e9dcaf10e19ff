// Derivatives panel: fetches the figure for each .derivatives-chart and refreshes it periodically.
// No inline scripts (CSP): the URL and refresh period come from data attributes.
(function () {
  "use strict";

  function render(el) {
    const url = el.dataset.seriesUrl;
    if (!url || typeof Plotly === "undefined") return;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (resp) { return resp.ok ? resp.json() : Promise.reject(resp.status); })
      .then(function (payload) {
        // Plotly.react keeps the user's zoom (layout.uirevision) while swapping in fresh data.
        if (window.PW && PW.fitLayout) PW.fitLayout(el, payload.figure.layout, payload.figure.data);
        Plotly.react(el, payload.figure.data, payload.figure.layout, { responsive: true, displaylogo: false });
      })
      .catch(function (err) { el.dataset.error = String(err); });
  }

  // Below the price chart: fetched and drawn when it comes near the screen, refreshed while it is there.
  function start() {
    document.querySelectorAll(".derivatives-chart").forEach(function (el) {
      const drawer = window.PW && PW.drawer ? PW.drawer(el, function () { render(el); }, { lazy: true })
        : { request: function () { render(el); } };
      drawer.request();
      const seconds = parseInt(el.dataset.refreshSeconds || "30", 10);
      if (seconds > 0) window.setInterval(drawer.request, seconds * 1000);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

// Alert rule form: show only the fields that apply to the chosen scope and metric, with the metric's unit,
// range and default. The server checks everything again (apps/alerts/forms.py); without this script every
// field shows and the form still works.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("rule-form");
    const configEl = document.getElementById("rule-form-config");
    if (!form || !configEl) return;
    const config = JSON.parse(configEl.textContent);
    const input = (name) => form.elements.namedItem(name);
    const show = (name, visible) => form.querySelectorAll(`[data-field="${name}"]`).forEach((el) => { el.hidden = !visible; });
    const scope = input("scope");
    const metric = input("metric");
    const instrument = input("instrument");
    const threshold = input("threshold");
    const email = input("deliver_email");

    // Which metrics fit the scope (market or flows) and, for one instrument, its market type.
    const allowed = (key) => {
      const m = config.metrics[key];
      if (!m) return false;
      if ((scope.value === "asset") !== (m.scope === "flows")) return false;
      if (m.perpOnly && scope.value === "instrument" && config.kinds[instrument.value] === "spot") return false;
      return true;
    };

    const applyDefaults = (m) => {
      if (m.default !== null && m.default !== undefined) threshold.value = m.default;
      input("comparator").value = m.comparator;
      input("rearm_level").value = "";
    };

    const update = () => {
      show("instrument", scope.value === "instrument");
      show("watchlist", scope.value === "watchlist");
      show("asset", scope.value === "asset");
      for (const option of metric.options) {
        option.disabled = !allowed(option.value);
        option.hidden = option.disabled;
      }
      if (metric.selectedOptions[0] && metric.selectedOptions[0].disabled) {
        const first = [...metric.options].find((o) => !o.disabled);
        if (first) { metric.value = first.value; applyDefaults(config.metrics[first.value]); }
      }
      const m = config.metrics[metric.value];
      if (!m) return;
      const numeric = m.needsThreshold && !m.levels;
      show("comparator", m.needsThreshold);
      show("threshold", numeric);
      show("rearm_level", numeric);
      show("threshold-range", numeric);
      show("level", m.levels);
      show("event-note", !m.needsThreshold);
      form.querySelectorAll("[data-unit-for]").forEach((el) => { el.textContent = m.unit; });
      for (const name of ["threshold", "rearm_level"]) {
        const el = input(name);
        el.step = m.step;
        if (m.min === null) el.removeAttribute("min"); else el.min = m.min;
        if (m.max === null) el.removeAttribute("max"); else el.max = m.max;
      }
      document.getElementById("threshold-range-text").textContent = m.range;
      document.getElementById("metric-explain").textContent = m.explain;
      // Quiet hours and the digest only change emails.
      show("daily_digest", email.checked);
      show("quiet_start", email.checked);
      show("quiet_end", email.checked);
    };

    metric.addEventListener("change", () => { applyDefaults(config.metrics[metric.value]); update(); });
    for (const el of [scope, instrument, email]) el.addEventListener("change", update);
    update();
    form.dataset.enhanced = "1";
  });
})();

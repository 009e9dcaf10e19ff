// Shared live-update client: WebSocket with visible status, reconnect with back-off, catch-up hook.
(function () {
  "use strict";
  const PW = (window.PW = window.PW || {});

  // "1 min", "45 s": how long ago, for the live indicator.
  PW.ago = (ms) => {
    const s = Math.floor(ms / 1000);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    return `${Math.floor(s / 3600)} h`;
  };

  // A page showing a past range does not connect: its indicator says so.
  PW.showHistorical = (statusEl) => {
    statusEl.dataset.state = "static";
    statusEl.textContent = "historical range (not live)";
  };

  PW.connect = function (path, { onMessage, onOpen, statusEl }) {
    let attempt = 0;
    let everOpened = false;
    let socket = null;
    // An open socket is not enough to say "live": with the worker or a feed stopped, nothing comes. After
    // data-stale-after-ms without an update the indicator says "stale" and how old the data is. The page was
    // rendered with fresh data, so the clock starts now.
    const staleAfterMs = statusEl ? Number(statusEl.dataset.staleAfterMs) || 0 : 0;
    let lastUpdate = Date.now();
    const setStatus = (state, text) => {
      if (!statusEl) return;
      statusEl.dataset.state = state;
      statusEl.textContent = text;
    };
    const showFreshness = () => {
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      const age = Date.now() - lastUpdate;
      if (staleAfterMs && age > staleAfterMs) setStatus("stale", `stale · last update ${PW.ago(age)} ago`);
      else setStatus("live", "live");
    };
    if (staleAfterMs) setInterval(showFreshness, Math.min(1000, staleAfterMs));
    const open = () => {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + location.host + path);
      setStatus("connecting", attempt ? `reconnecting (try ${attempt + 1})…` : "connecting…");
      socket.onopen = () => {
        const reconnected = everOpened;
        everOpened = true;
        attempt = 0;
        showFreshness();
        if (onOpen) onOpen({ reconnected });
      };
      socket.onmessage = (event) => {
        let msg;
        try { msg = JSON.parse(event.data); } catch (e) { return; }
        if (msg.type !== "hello" && msg.type !== "pong") {
          lastUpdate = Date.now();
          showFreshness();
        }
        if (onMessage) onMessage(msg);
      };
      socket.onclose = () => {
        // Exponential back-off with jitter, capped at 30 s, so a restart is not stampeded.
        const delay = Math.min(30000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
        attempt += 1;
        setStatus("down", `disconnected, retrying in ${Math.round(delay / 1000)} s`);
        setTimeout(open, delay);
      };
    };
    open();
    return { get socket() { return socket; } };
  };

  PW.num = (v) => (v === null || v === undefined ? null : Number(v));

  document.addEventListener("DOMContentLoaded", () => {
    const toggle = document.getElementById("theme-toggle");
    if (toggle) {
      toggle.addEventListener("click", () => {
        const next = document.documentElement.dataset.theme === "light" ? "dark" : "light";
        document.cookie = `theme=${next}; path=/; max-age=31536000; SameSite=Lax`;
        location.reload();
      });
    }
    const clock = document.getElementById("clock");
    if (clock) {
      const tick = () => { clock.textContent = new Date().toISOString().slice(11, 19) + " UTC"; };
      tick();
      setInterval(tick, 1000);
    }
  });
})();

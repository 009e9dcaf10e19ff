// Shared live-update client: WebSocket with visible status, reconnect with back-off, catch-up hook.
(function () {
  "use strict";
  const PW = (window.PW = window.PW || {});

  PW.connect = function (path, { onMessage, onOpen, statusEl }) {
    let attempt = 0;
    let everOpened = false;
    let socket = null;
    const setStatus = (state, text) => {
      if (!statusEl) return;
      statusEl.dataset.state = state;
      statusEl.textContent = text;
    };
    const open = () => {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + location.host + path);
      setStatus("connecting", attempt ? `reconnecting (try ${attempt + 1})…` : "connecting…");
      socket.onopen = () => {
        const reconnected = everOpened;
        everOpened = true;
        attempt = 0;
        setStatus("live", "live");
        if (onOpen) onOpen({ reconnected });
      };
      socket.onmessage = (event) => {
        let msg;
        try { msg = JSON.parse(event.data); } catch (e) { return; }
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

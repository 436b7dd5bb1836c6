// pgqueue dashboard: live refresh and confirmations. No framework, nothing fetched from elsewhere.
// Live refresh fetches this page again every data-refresh seconds and swaps in the parts marked
// data-live (by id), so the page never reloads and what you type in a form stays. The "Live" switch
// turns it off (remembered in this browser); ?live=0 in the address starts with it off.
(function () {
  "use strict";
  var every = parseFloat(document.body.dataset.refresh || "0");
  var toggle = document.getElementById("live-toggle");
  var status = document.getElementById("live-status");
  var key = "pgqueue-dashboard-live";
  var live = {timer: null, refreshes: 0, failures: 0, busy: false};
  window.pgqueueLive = live;

  function stored() {
    try { return window.localStorage.getItem(key); } catch (e) { return null; }
  }
  function store(value) {
    try { window.localStorage.setItem(key, value); } catch (e) { /* private mode: not remembered */ }
  }
  function say(text) { if (status) { status.textContent = text; } }

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    document.querySelectorAll("[data-live]").forEach(function (old) {
      var next = old.id && fresh.getElementById(old.id);
      if (next) { old.replaceWith(document.importNode(next, true)); }
    });
  }

  function tick() {
    if (live.busy || document.hidden) { return; }
    live.busy = true;
    fetch(window.location.href, {credentials: "same-origin", headers: {"X-Pgqueue-Live": "1"}})
      .then(function (response) {
        if (!response.ok || response.redirected) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) { swap(html); live.refreshes += 1; say(""); })
      .catch(function () { live.failures += 1; say("(no answer)"); })
      .finally(function () { live.busy = false; document.body.dataset.refreshes = String(live.refreshes); });
  }

  function start() {
    if (live.timer === null && every > 0) { live.timer = window.setInterval(tick, every * 1000); }
    document.body.dataset.live = live.timer === null ? "off" : "on";
  }
  function stop() {
    if (live.timer !== null) { window.clearInterval(live.timer); live.timer = null; }
    document.body.dataset.live = "off";
  }

  var off = every <= 0 || stored() === "off" || /[?&]live=0(&|$)/.test(window.location.search);
  if (toggle) {
    toggle.checked = !off;
    toggle.disabled = every <= 0;
    toggle.addEventListener("change", function () {
      store(toggle.checked ? "on" : "off");
      if (toggle.checked) { start(); tick(); } else { stop(); }
    });
  }
  if (off) { stop(); } else { start(); }
  document.documentElement.classList.add("js");

  // Forms marked data-confirm ask first (delete, cancel, pause, requeue all).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
})();

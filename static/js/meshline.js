// Live SLA countdowns: any <time data-countdown datetime="..."> shows the time left.
// Without JavaScript the element keeps its server-rendered absolute time.
(function () {
  function format(ms) {
    const late = ms < 0;
    let s = Math.abs(Math.round(ms / 1000));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60);
    const text = (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m";
    return late ? text + " overdue" : text + " left";
  }
  function tick() {
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      const due = Date.parse(el.getAttribute("datetime"));
      if (isNaN(due)) return;
      const ms = due - Date.now();
      el.textContent = format(ms);
      el.classList.toggle("overdue", ms < 0);
    });
  }
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSwap", tick);
  setInterval(tick, 30000);
})();

// A 400 from a portal form carries the form with its errors next to the fields: show it.
document.addEventListener("htmx:beforeSwap", function (event) {
  if (event.detail.xhr.status === 400) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});

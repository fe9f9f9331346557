// The console's keyboard and the force-majeure time line. No framework, nothing from a CDN;
// every page works without it (the forms are plain forms).
(function () {
  "use strict";

  function typing(e) {
    var el = e.target;
    var tag = el && el.tagName;
    return tag === "INPUT" && el.type !== "checkbox" && el.type !== "radio" || tag === "TEXTAREA" || tag === "SELECT" || (el && el.isContentEditable);
  }

  function plainKey(e) {
    return !e.ctrlKey && !e.metaKey && !e.altKey;
  }

  // --- the review queue: j/k or arrows move between rows, x selects, Enter opens (a link) ---
  function queue(table) {
    var links = Array.prototype.slice.call(table.querySelectorAll("a[data-item]"));
    if (!links.length) return;
    function current() {
      return links.indexOf(document.activeElement);
    }
    function go(i) {
      i = Math.max(0, Math.min(links.length - 1, i));
      links.forEach(function (a) { a.closest("tr").classList.remove("current"); });
      links[i].closest("tr").classList.add("current");
      links[i].focus();
    }
    document.addEventListener("keydown", function (e) {
      if (typing(e) || !plainKey(e)) return;
      var i = current();
      if (e.key === "j" || e.key === "ArrowDown") {
        go(i < 0 ? 0 : i + 1);
        e.preventDefault();
      } else if (e.key === "k" || e.key === "ArrowUp") {
        go(i < 0 ? 0 : i - 1);
        e.preventDefault();
      } else if (e.key === "x" && i >= 0) {
        var box = links[i].closest("tr").querySelector("input[type=checkbox]");
        box.checked = !box.checked;
        e.preventDefault();
      }
    });
  }

  // --- one item: one key per verdict, digits pick a reason ---
  function item(form) {
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape") {
        var back = document.querySelector("a[data-key=q]");
        if (back) { window.location = back.href; e.preventDefault(); }
        return;
      }
      if (typing(e) || !plainKey(e)) return;
      if (/^[1-9]$/.test(e.key)) {
        var radio = form.querySelector("input[data-digit='" + e.key + "']");
        if (radio) { radio.checked = true; radio.focus(); e.preventDefault(); }
        return;
      }
      var key = e.key.toLowerCase();
      var button = form.querySelector("button[data-key='" + key + "']");
      if (button) {
        e.preventDefault();
        if (form.requestSubmit) form.requestSubmit(button); else button.click();
        return;
      }
      var link = document.querySelector("a[data-key='" + key + "']");
      if (link && key !== "q") {
        e.preventDefault();
        if (link.target === "_blank") window.open(link.href, "_blank", "noopener,noreferrer"); else window.location = link.href;
      }
    });
  }

  // --- the force-majeure time line follows the period inputs ---
  function timeline(svg) {
    var bar = svg.querySelector("#tl-confirmed");
    var from = document.querySelector("input[data-timeline=from]");
    var to = document.querySelector("input[data-timeline=to]");
    if (!bar || !from || !to) return;
    var lo = Number(svg.dataset.from), hi = Number(svg.dataset.to), off = Number(svg.dataset.tzOffset);
    function ms(input) {
      // the input holds the office's wall-clock time; the svg carries that office's UTC offset
      var t = Date.parse(input.value + "Z");
      return isNaN(t) ? null : t - off;
    }
    function update() {
      var a = ms(from), b = ms(to);
      if (a === null || b === null || b <= a) return;
      var x = Math.max(0, 100 * (a - lo) / (hi - lo)), w = Math.min(100, 100 * (b - lo) / (hi - lo)) - x;
      bar.setAttribute("x", x.toFixed(2) + "%");
      bar.setAttribute("width", Math.max(0, w).toFixed(2) + "%");
      bar.setAttribute("visibility", "visible");
    }
    from.addEventListener("input", update);
    to.addEventListener("input", update);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.querySelector("table[data-queue]");
    if (table) queue(table);
    var form = document.getElementById("verdict-form");
    if (form) item(form);
    var svg = document.querySelector("svg.timeline");
    if (svg) timeline(svg);
  });
})();

// Keyboard shortcuts for the review pages (served from /review/static; no CDN).
// Queue: j / k move, o or Enter open, / focuses the filters. Detail: r release, x reject,
// e escalate (each focuses the reason), j / k next / previous incident of the last queue
// shown, u back to it. No shortcut fires while typing in a field or with a modifier key;
// Esc leaves the field.
(function () {
  "use strict";
  var KEY = "guardrail.review.queue";

  function typing(e) {
    var t = e.target;
    if (!t || !t.tagName) return false;
    return t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName);
  }

  function saved() {
    try { return JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (err) { return null; }
  }

  function queue() {
    var rows = Array.prototype.slice.call(document.querySelectorAll("#queue tbody tr"));
    try {
      sessionStorage.setItem(KEY, JSON.stringify({
        url: location.pathname + location.search,
        ids: rows.map(function (r) { return r.getAttribute("data-href"); })
      }));
    } catch (err) { /* storage off: next/previous on the detail page do nothing */ }
    var at = -1;
    function select(i) {
      if (!rows.length) return;
      at = Math.max(0, Math.min(rows.length - 1, i));
      rows.forEach(function (r, n) {
        r.classList.toggle("current", n === at);
        r.setAttribute("aria-selected", n === at ? "true" : "false");
      });
      var link = rows[at].querySelector("a.open");
      if (link) link.focus();
    }
    rows.forEach(function (r, n) {
      r.addEventListener("focusin", function () { if (at !== n) { at = n; select(n); } });
    });
    return function (e) {
      if (e.key === "j") { select(at + 1); return true; }
      if (e.key === "k") { select(at < 0 ? 0 : at - 1); return true; }
      if ((e.key === "o" || e.key === "Enter") && at >= 0) {
        if (e.key === "Enter" && e.target.tagName === "A") return false; // the link opens itself
        location.href = rows[at].getAttribute("data-href");
        return true;
      }
      if (e.key === "/") {
        var first = document.querySelector("#filters select, #filters input");
        if (first) first.focus();
        return true;
      }
      return false;
    };
  }

  function detail() {
    var choices = { r: "decision-release", x: "decision-reject", e: "decision-escalate" };
    return function (e) {
      if (choices[e.key]) {
        var radio = document.getElementById(choices[e.key]);
        var reason = document.getElementById("reason");
        if (!radio || !reason) return false;
        radio.checked = true;
        reason.focus();
        return true;
      }
      var q = saved();
      if (e.key === "u") { location.href = (q && q.url) || "/review"; return true; }
      if ((e.key === "j" || e.key === "k") && q && q.ids) {
        var i = q.ids.indexOf(location.pathname);
        var next = i < 0 ? -1 : i + (e.key === "j" ? 1 : -1);
        if (next >= 0 && next < q.ids.length) { location.href = q.ids[next]; }
        return true;
      }
      return false;
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.body.getAttribute("data-page");
    var handle = page === "queue" ? queue() : page === "detail" ? detail() : null;
    if (!handle) return;
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && typing(e)) { e.target.blur(); return; } // leave the field
      if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
      if (handle(e)) e.preventDefault();
    });
  });
})();

// batchway dashboard: the few things the server-rendered pages cannot do alone. Every page works without it.
// - Regions marked data-live-region="" with data-live="true" are re-fetched (the same URL) while a batch runs,
//   keeping keyboard focus where it was; they stop once the server says nothing there is live any more.
// - A table row with data-href opens on a click anywhere in it (its first cell holds the real link for
//   keyboard and screen-reader users).
// - Forms with data-confirm ask first; GET forms leave empty fields out of the URL, so shared views stay short.
(function () {
  "use strict";

  var interval = Number(document.body.getAttribute("data-refresh-ms")) || 0;
  var timer = null;

  function regions(root) {
    return Array.prototype.slice.call(root.querySelectorAll("[data-live-region]"));
  }

  function anyLive() {
    return regions(document).some(function (region) { return region.getAttribute("data-live") === "true"; });
  }

  function schedule() {
    if (interval > 0 && timer === null && anyLive()) {
      timer = window.setTimeout(refresh, interval);
    }
  }

  function swap(region, fresh) {
    var focused = document.activeElement;
    var focusedId = focused && region.contains(focused) ? focused.id : "";
    region.innerHTML = fresh.innerHTML; // HTML our own server rendered (autoescaped), same origin
    region.setAttribute("data-live", fresh.getAttribute("data-live") || "false");
    if (focusedId) {
      var again = document.getElementById(focusedId);
      if (again) { again.focus(); }
    }
  }

  function refresh() {
    timer = null;
    if (document.hidden) { schedule(); return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        // Signed out (redirected to the login page) or an error: stop quietly, the next click will tell.
        if (!response.ok || response.redirected) { throw new Error("refresh stopped"); }
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        regions(document).forEach(function (region) {
          var fresh = region.id && page.getElementById(region.id);
          if (fresh) { swap(region, fresh); }
        });
        schedule();
      })
      .catch(function () { /* keep the page as it is */ });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && timer === null) { schedule(); }
  });

  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest("tr[data-href]");
    if (!row || event.target.closest("a, button, input, select, label, form, summary")) { return; }
    if (String(window.getSelection ? window.getSelection() : "").length > 0) { return; } // selecting text
    if (event.ctrlKey || event.metaKey) { window.open(row.getAttribute("data-href"), "_blank", "noopener"); }
    else { window.location.assign(row.getAttribute("data-href")); }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); return; }
    if ((form.getAttribute("method") || "get").toLowerCase() !== "get") { return; }
    event.preventDefault();
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, name) {
      if (String(value).trim() !== "") { params.append(name, String(value).trim()); }
    });
    var query = params.toString();
    window.location.assign(form.getAttribute("action") + (query ? "?" + query : ""));
  });

  schedule();
})();

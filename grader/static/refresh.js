// Keeps a waiting report page current without reloading it (grader/templates/state.html): every
// few seconds it reads the page's own model (/reports/TOKEN.json) and rewrites the place in the
// queue in place, as text; when the submission's state changes (grading started, graded) it loads
// the page again to show what it now is. Served from /static/ because the CSP allows no inline
// script; without JavaScript the page's <noscript> meta refresh does the same by reloading.
(function () {
  "use strict";
  var status = document.querySelector("[data-state]");
  if (!status || !window.fetch) {
    return;
  }
  var every = 1000 * (parseInt(status.getAttribute("data-every"), 10) || 10);
  var model = location.pathname + ".json";

  function show(lines) {
    var list = document.getElementById("waiting");
    if (!list || !Array.isArray(lines)) {
      return;
    }
    list.replaceChildren.apply(list, lines.map(function (line) {
      var item = document.createElement("li");
      item.textContent = String(line);
      return item;
    }));
  }

  function tick() {
    fetch(model, {cache: "no-store", credentials: "omit"}).then(function (response) {
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return response.json();
    }).then(function (now) {
      if (now.state !== status.getAttribute("data-state")) {
        location.reload();
        return;
      }
      show(now.waiting);
      setTimeout(tick, every);
    }).catch(function () {
      setTimeout(tick, every);  // the service restarting, a rate limit: try again later
    });
  }

  setTimeout(tick, every);
}());

// Campaign pages: show UTC times in the reader's own time zone too. No inline script (CSP).
(function () {
  "use strict";

  function localText(date) {
    return date.toLocaleString(undefined, {
      year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
    });
  }

  function showLocalTimes(root) {
    root.querySelectorAll("time.local[datetime]").forEach(function (element) {
      if (element.dataset.localDone) return;
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date)) return;
      element.dataset.localDone = "1";
      element.title = "Your time: " + localText(date);
      element.insertAdjacentText("beforeend", " · your time " + localText(date));
    });
    root.querySelectorAll("[data-local-for]").forEach(function (element) {
      var input = document.getElementById(element.dataset.localFor);
      if (!input) return;
      var update = function () {
        if (!input.value) { element.textContent = ""; return; }
        var date = new Date(input.value + "Z");
        element.textContent = isNaN(date) ? "" : "= " + localText(date) + " your time";
      };
      if (!input.dataset.localBound) {
        input.dataset.localBound = "1";
        input.addEventListener("input", update);
      }
      update();
    });
  }

  document.addEventListener("DOMContentLoaded", function () { showLocalTimes(document); });
  document.addEventListener("htmx:afterSettle", function (event) { showLocalTimes(event.target); });
})();

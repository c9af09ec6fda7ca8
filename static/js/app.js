// TriggerDesk's script for every page besides htmx (altcraft_upload.js serves the upload page
// alone). Templates carry no inline handlers or <script> (the Content-Security-Policy forbids
// them); they declare behaviour with data-* attributes instead:
//   data-confirm="Question?"   on a form, a submit button or a link: ask first, stop on Cancel
//   data-navigate              on a <select>: go to the chosen option's value (tenant switcher)
//   data-local-of="ISO time"   fill in that moment on the reader's own clock
//   time.local[datetime]       append that moment on the reader's own clock (campaign pages)
//   data-local-for="input id"  show a UTC datetime-local input's value on the reader's clock
//   form.filters               its inputs follow the address bar when Back/Forward restores a list
//   ul[data-invalid-fields]    (a live check's answer) clears the errors shown under the fields of
//                              form#data-errors-of that the check no longer finds wrong
//   data-countdown-to="ISO"    its text counts down to that moment ("3 h 12 min", as the server
//                              writes it), once a second, from the server's own clock
// and it shows #offline-banner while live fragments cannot reach the server.
// Its words come in the reader's language from the catalogue /jsi18n/ loads before it
// (locale/*/LC_MESSAGES/djangojs.po); times are written for <html lang> in the zone the reader
// chose (body[data-time-zone], their preferences), else in the browser's own.
(function () {
  "use strict";

  var gettext = window.gettext || function (text) { return text; };
  var pgettext = window.pgettext || function (context, text) { return text; };
  var interpolate = window.interpolate || function (format, values) {
    var index = 0;
    return format.replace(/%s/g, function () { return String(values[index++]); });
  };

  // -- confirmations --------------------------------------------------------------------------
  // window.confirm, named in full: inside an inline handler a form field called "confirm"
  // shadowed it, the dialog never appeared and the form went out (the bug this file fixes).
  function ask(element) {
    var question = element && element.getAttribute("data-confirm");
    return !question || window.confirm(question);
  }

  // Capture phase on the document: runs before htmx's own listeners on the form.
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement)) { return; }
      if (!ask(event.submitter) || !ask(form)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  document.addEventListener(
    "click",
    function (event) {
      var link = event.target instanceof Element ? event.target.closest("a[data-confirm]") : null;
      if (link && !ask(link)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  // -- navigation select ----------------------------------------------------------------------
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select instanceof HTMLSelectElement && select.hasAttribute("data-navigate") && select.value) {
      window.location.assign(select.value);
    }
  });

  // -- the menu button (phones) --------------------------------------------------------------
  // On a narrow screen static/css/app.css folds the navigation behind the .menu-toggle button; the
  // button opens and closes it and says which (aria-expanded). Escape closes it and gives the
  // focus back to the button.
  function setMenu(button, open) {
    var menu = document.getElementById(button.getAttribute("aria-controls"));
    if (!menu) { return; }
    button.setAttribute("aria-expanded", open ? "true" : "false");
    menu.classList.toggle("is-open", open);
  }

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest(".menu-toggle") : null;
    if (button) { setMenu(button, button.getAttribute("aria-expanded") !== "true"); }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    document.querySelectorAll(".menu-toggle[aria-expanded=true]").forEach(function (button) {
      setMenu(button, false);
      button.focus();
    });
  });

  // -- vendor-specific fields ----------------------------------------------------------------
  // A field marked data-kinds="a b" (the connection form) is shown only while the form's
  // "kind" select holds one of those kinds.
  function showFieldsForKind() {
    document.querySelectorAll("form").forEach(function (form) {
      var kind = form.elements.namedItem("kind");
      if (!(kind instanceof HTMLSelectElement)) { return; }
      form.querySelectorAll("[data-kinds]").forEach(function (field) {
        var wrapper = field.closest(".field") || field;
        wrapper.hidden = kind.value !== "" && field.getAttribute("data-kinds").split(" ").indexOf(kind.value) === -1;
      });
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target instanceof HTMLSelectElement && event.target.name === "kind") { showFieldsForKind(); }
  });

  // -- local times beside UTC -----------------------------------------------------------------
  // Times are rendered in UTC on the server; this only adds each reader's local time beside them.
  function pad(number) { return String(number).padStart(2, "0"); }

  function readerLocale() { return document.documentElement.lang || undefined; }
  // Every time on the pages, UTC or local, is on the 24-hour clock, whatever the language.

  function readerZone() { return (document.body && document.body.getAttribute("data-time-zone")) || undefined; }

  function localText(date) {
    return date.toLocaleString(readerLocale(), {
      year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
      hourCycle: "h23", timeZone: readerZone(),
    });
  }

  // The reader's calendar date (YYYY-MM-DD) of a moment, in their zone.
  function localDateOf(date) {
    var parts = {};
    new Intl.DateTimeFormat("en-CA", {
      year: "numeric", month: "2-digit", day: "2-digit", timeZone: readerZone(),
    }).formatToParts(date).forEach(function (part) { parts[part.type] = part.value; });
    return parts.year + "-" + parts.month + "-" + parts.day;
  }

  // Campaign pages: a <time class="local"> gets the reader's time appended once (a restored or
  // re-settled page keeps its mark), and a UTC datetime-local input shows its reader's time as
  // it is typed.
  function showLocalTimes(root) {
    root.querySelectorAll("time.local[datetime]").forEach(function (element) {
      if (element.dataset.localDone) return;
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date)) return;
      element.dataset.localDone = "1";
      element.title = interpolate(gettext("Your time: %s"), [localText(date)]);
      element.insertAdjacentText("beforeend", " · " + interpolate(gettext("your time %s"), [localText(date)]));
    });
    root.querySelectorAll("[data-local-for]").forEach(function (element) {
      var input = document.getElementById(element.dataset.localFor);
      if (!input) return;
      var update = function () {
        if (!input.value) { element.textContent = ""; return; }
        var date = new Date(input.value + "Z");
        element.textContent = isNaN(date) ? "" : "= " + interpolate(gettext("%s your time"), [localText(date)]);
      };
      if (!input.dataset.localBound) {
        input.dataset.localBound = "1";
        input.addEventListener("input", update);
      }
      update();
    });
  }

  function localize() {
    document.querySelectorAll("[data-local-of]").forEach(function (element) {
      var when = new Date(element.getAttribute("data-local-of"));
      if (isNaN(when)) { return; }
      element.textContent = "(" + interpolate(gettext("%s your time"), [when.toLocaleString(readerLocale(), {
        weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
        hourCycle: "h23", timeZone: readerZone(),
      })]) + ")";
    });
    showLocalTimes(document);
    var status = document.getElementById("daily-status");
    if (!status) { return; }
    var now = new Date(status.getAttribute("data-now"));
    var utcDate = status.getAttribute("data-utc-date");
    var note = document.getElementById("local-date-note");
    if (note && !isNaN(now)) {
      var localDate = localDateOf(now);
      note.hidden = localDate === utcDate;
      note.textContent = interpolate(
        gettext("Your local date is %s, but Optimove counts days in UTC: today's trigger is for %s (UTC)."),
        [localDate, utcDate]
      );
    }
    var canRequest = status.getAttribute("data-can-request") === "true";
    var button = document.getElementById("request-submit");
    if (button) { button.disabled = !canRequest; }
    var hint = document.getElementById("request-hint");
    if (hint) { hint.hidden = canRequest; }
  }

  // -- table cells name their column --------------------------------------------------------
  // On a phone each table row is stacked (static/css/app.css); each cell then shows the name of
  // its column above it.
  function labelTableCells() {
    document.querySelectorAll("table.table").forEach(function (table) {
      var head = table.tHead;
      if (!head || !head.rows.length) { return; }
      var names = Array.prototype.map.call(head.rows[0].cells, function (cell) {
        return cell.textContent.trim();
      });
      Array.prototype.forEach.call(table.tBodies, function (body) {
        Array.prototype.forEach.call(body.rows, function (row) {
          var column = 0;
          Array.prototype.forEach.call(row.cells, function (cell) {
            if (cell.colSpan === 1 && names[column] && !cell.hasAttribute("data-label")) {
              cell.setAttribute("data-label", names[column]);
            }
            column += cell.colSpan;
          });
        });
      });
    });
  }

  // -- filters follow the address bar ---------------------------------------------------------
  // Back after filtering restores the list htmx saved, but the form's inputs would keep what
  // was typed last (or nothing): set them from the URL the list belongs to.
  function syncFilters() {
    var query = new URLSearchParams(window.location.search);
    document.querySelectorAll("form.filters").forEach(function (form) {
      Array.prototype.forEach.call(form.elements, function (field) {
        if (!field.name || field.type === "submit" || field.type === "button") { return; }
        var value = query.get(field.name) || "";
        if (field.type === "checkbox" || field.type === "radio") {
          field.checked = query.getAll(field.name).indexOf(field.value) !== -1;
        } else {
          field.value = value;
        }
      });
    });
  }

  // -- offline banner -------------------------------------------------------------------------
  // A live fragment whose poll fails keeps showing what it last knew; say so, loudly, until a
  // request gets through again.
  function banner() { return document.getElementById("offline-banner"); }

  function showOffline(text) {
    var element = banner();
    if (!element) { return; }
    if (element.hidden) {
      var since = new Date();
      element.querySelector("[data-offline-since]").textContent =
        pad(since.getUTCHours()) + ":" + pad(since.getUTCMinutes()) + ":" + pad(since.getUTCSeconds()) + " UTC";
    }
    element.querySelector("[data-offline-reason]").textContent = text;
    element.hidden = false;
    document.body.classList.add("is-offline");
  }

  function showOnline() {
    var element = banner();
    if (element) { element.hidden = true; }
    document.body.classList.remove("is-offline");
  }

  document.addEventListener("htmx:sendError", function () {
    showOffline(gettext("TriggerDesk cannot be reached (the server or your connection is down)."));
  });
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail && event.detail.xhr ? event.detail.xhr.status : 0;
    if (status >= 500 || status === 0) {
      showOffline(interpolate(gettext("TriggerDesk answered with an error (HTTP %s)."), [status]));
    }
  });
  // A session that ended (logged out elsewhere, expired) answers a poll with the login page:
  // go there instead of showing a login form inside a fragment of the page.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var loginPath = document.body.getAttribute("data-login-url");
    var xhr = event.detail && event.detail.xhr;
    if (!loginPath || !xhr || !xhr.responseURL) { return; }
    var answered = new URL(xhr.responseURL);
    if (answered.pathname === loginPath) {
      event.detail.shouldSwap = false;
      answered.searchParams.set("next", window.location.pathname + window.location.search);
      window.location.assign(answered.toString());
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail && event.detail.successful) { showOnline(); }
  });

  // -- stale field errors ----------------------------------------------------------------------
  // A submit that failed leaves an error under each wrong field; once the live check says a
  // field is right, its old error would only mislead. Errors of fields the check does not cover
  // (no data-field, e.g. the topics) stay until the next submit.
  function clearFixedErrors(root) {
    root.querySelectorAll("ul[data-invalid-fields]").forEach(function (list) {
      var form = document.getElementById(list.getAttribute("data-errors-of"));
      if (!form) { return; }
      var invalid = Array.prototype.map.call(list.querySelectorAll("li"), function (item) {
        return item.textContent;
      });
      var stillWrong = function (name) {
        return invalid.some(function (wrong) { return wrong === name || wrong.indexOf(name + "/") === 0; });
      };
      form.querySelectorAll(".field.has-error[data-field]").forEach(function (field) {
        if (stillWrong(field.getAttribute("data-field"))) { return; }
        field.classList.remove("has-error");
        field.querySelectorAll(".field-error").forEach(function (error) { error.remove(); });
      });
      form.querySelectorAll("fieldset[data-path]").forEach(function (fieldset) {
        if (stillWrong(fieldset.getAttribute("data-path"))) { return; }
        Array.prototype.forEach.call(fieldset.children, function (child) {
          if (child.matches("p.errorlist")) { child.remove(); }
        });
      });
    });
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.target instanceof Element) { clearFixedErrors(event.target); }
  });

  // -- countdowns ------------------------------------------------------------------------------
  // The server writes how long is left when it renders; the text then moves on its own. The
  // offset from the server's clock (data-countdown-now) keeps a wrong client clock out of it.
  function durationText(seconds) {
    seconds = Math.max(0, Math.ceil(seconds));
    var hours = Math.floor(seconds / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    var rest = seconds % 60;
    var h = pgettext("hours, short", "h");
    var min = pgettext("minutes, short", "min");
    var s = pgettext("seconds, short", "s");
    if (hours) { return hours + " " + h + " " + pad(minutes) + " " + min; }
    if (minutes) { return minutes + " " + min + " " + pad(rest) + " " + s; }
    return rest + " " + s;
  }

  function tickCountdowns() {
    document.querySelectorAll("[data-countdown-to]").forEach(function (element) {
      var target = Date.parse(element.getAttribute("data-countdown-to"));
      if (isNaN(target)) { return; }
      if (!element.dataset.countdownOffset) {
        var serverNow = Date.parse(element.getAttribute("data-countdown-now") || "");
        element.dataset.countdownOffset = String(isNaN(serverNow) ? 0 : serverNow - Date.now());
      }
      var left = (target - (Date.now() + Number(element.dataset.countdownOffset))) / 1000;
      var text = durationText(left);
      if (element.textContent !== text) { element.textContent = text; }
    });
  }

  window.setInterval(tickCountdowns, 1000);

  function enhance() {
    showFieldsForKind();
    localize();
    labelTableCells();
    tickCountdowns();
  }

  document.addEventListener("DOMContentLoaded", enhance);
  document.addEventListener("htmx:afterSettle", enhance);
  document.addEventListener("htmx:historyRestore", function () {
    syncFilters();
    enhance();
  });
  // A page shown from the browser's back-forward cache runs no DOMContentLoaded.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { syncFilters(); }
  });
})();

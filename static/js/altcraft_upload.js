// Altcraft launch upload: checks the file size before sending and shows upload progress.
// Served as a static file (no inline script: the pages' CSP allows none).
(function () {
  "use strict";

  function setup(form) {
    var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10);
    var status = document.getElementById("upload-status");
    var bar = document.getElementById("upload-progress");
    var percent = document.getElementById("upload-percent");
    var error = document.getElementById("upload-error");
    var button = form.querySelector("button[type=submit]");

    form.addEventListener("submit", function (event) {
      var input = form.querySelector("input[type=file][name=file]");
      var file = input && input.files && input.files[0];
      error.hidden = true;
      if (file && maxBytes && file.size > maxBytes) {
        event.preventDefault();
        error.textContent = "The file is too large (" + (file.size / 1e6).toFixed(1) +
          " MB): the largest upload is " + Math.round(maxBytes / 1e6) + " MB. Split it into several files.";
        error.hidden = false;
        return;
      }
      if (!window.XMLHttpRequest || !window.FormData) {
        return; // the plain form post still works, without progress
      }
      event.preventDefault();
      var request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.upload.addEventListener("progress", function (progress) {
        if (progress.lengthComputable) {
          var value = Math.floor((100 * progress.loaded) / progress.total);
          bar.value = value;
          percent.textContent = value + "%" + (value === 100 ? " — reading and checking the file…" : "");
        }
      });
      request.addEventListener("load", function () {
        var landed = request.responseURL || "";
        if (request.status >= 200 && request.status < 300 && landed && landed.indexOf(form.getAttribute("action").split("?")[0]) === -1) {
          window.location.assign(landed);
          return;
        }
        document.open();
        document.write(request.responseText);
        document.close();
      });
      request.addEventListener("error", function () {
        button.disabled = false;
        status.hidden = true;
        error.textContent = "The upload was interrupted (network error). Nothing was sent; try again.";
        error.hidden = false;
      });
      button.disabled = true;
      status.hidden = false;
      request.send(new FormData(form));
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var forms = document.querySelectorAll("form[data-upload-progress]");
    for (var i = 0; i < forms.length; i++) {
      setup(forms[i]);
    }
  });
})();

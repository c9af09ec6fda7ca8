// Passkeys (WebAuthn) for TriggerDesk: registering one on Account security, and using one for
// the check after logging in or before an approval. No inline script (the page's CSP), so the
// markup declares what to do:
//   form[data-passkey-register="begin URL"][data-complete="URL"]  register a passkey named by
//       the form's "name" field; then go to data-recovery-codes (a first factor) or reload
//   button[data-passkey-check="begin URL"] inside form[data-second-factor-form]
//       ask the browser for a passkey, put its answer into the form's [data-passkey-answer]
//       field and submit the form (htmx posts it in place where the form has hx-post)
// Errors go into the form's [data-passkey-error], in the page's language: the form carries the
// texts (data-msg-unsupported, -cancelled, -duplicate, -failed, -name). The options and answers use the browser's own
// JSON helpers (PublicKeyCredential.parse*OptionsFromJSON, credential.toJSON()).
(function () {
  "use strict";

  function csrfToken(form) {
    var field = form.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function post(url, form, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(form), "Accept": "application/json" },
      body: body || new FormData(),
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) {
          var problem = new Error(data.detail || ("HTTP " + response.status));
          problem.fromServer = true;
          throw problem;
        }
        return data;
      });
    });
  }

  function showError(form, message) {
    var box = form.querySelector("[data-passkey-error]");
    if (box) {
      box.textContent = message;
      box.hidden = false;
    }
  }

  function text(form, name, fallback) {
    return form.getAttribute("data-msg-" + name) || fallback;
  }

  function browserMessage(form, error) {
    if (error && error.name === "NotAllowedError") {
      return text(form, "cancelled", "The passkey request was cancelled or timed out; try again.");
    }
    if (error && error.name === "InvalidStateError") {
      return text(form, "duplicate", "This passkey is already registered.");
    }
    // The server's own message (a JSON problem's detail, translated there) when it gave one.
    return (error && error.fromServer && error.message) || text(form, "failed", "The passkey did not work; try again.");
  }

  function supported() {
    return window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON;
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-passkey-register")) { return; }
    event.preventDefault();
    if (!supported()) { showError(form, text(form, "unsupported", "This browser cannot use passkeys.")); return; }
    var name = form.querySelector("input[name=name]").value.trim();
    if (!name) { showError(form, text(form, "name", "Give the passkey a name, e.g. “Work laptop”.")); return; }
    post(form.getAttribute("data-passkey-register"), form)
      .then(function (options) {
        return navigator.credentials.create({
          publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
        });
      })
      .then(function (credential) {
        var body = new FormData(form);
        body.set("response", JSON.stringify(credential.toJSON()));
        return post(form.getAttribute("data-complete"), form, body);
      })
      .then(function (answer) {
        var firstCodes = form.getAttribute("data-recovery-codes");
        window.location.assign(firstCodes + (answer.next ? "?next=" + encodeURIComponent(answer.next) : ""));
      })
      .catch(function (error) { showError(form, browserMessage(form, error)); });
  });

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("[data-passkey-check]") : null;
    if (!button) { return; }
    var form = button.closest("form[data-second-factor-form]");
    if (!form) { return; }
    event.preventDefault();
    if (!supported()) { showError(form, text(form, "unsupported", "This browser cannot use passkeys.")); return; }
    post(button.getAttribute("data-passkey-check"), form)
      .then(function (options) {
        return navigator.credentials.get({
          publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
        });
      })
      .then(function (credential) {
        form.querySelector("[data-passkey-answer]").value = JSON.stringify(credential.toJSON());
        var code = form.querySelector("input[name=second_factor_code]");
        if (code) { code.value = ""; }
        form.requestSubmit();
      })
      .catch(function (error) { showError(form, browserMessage(form, error)); });
  });
})();

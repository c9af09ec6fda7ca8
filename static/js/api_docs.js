// The API docs page (templates/api/swagger.html) beside Swagger UI: its code samples scroll
// sideways but cannot take the keyboard's focus, so a keyboard user could not scroll them.
// Swagger UI renders them as operations are opened; give each one a tab stop as it appears.
(function () {
  "use strict";

  function focusable(root) {
    root.querySelectorAll(".highlight-code pre, pre.microlight").forEach(function (block) {
      if (!block.hasAttribute("tabindex")) {
        block.setAttribute("tabindex", "0");
        block.setAttribute("aria-label", "Example (scrolls sideways)");
      }
    });
  }

  new MutationObserver(function () { focusable(document); }).observe(document.body, {
    childList: true,
    subtree: true,
  });
})();

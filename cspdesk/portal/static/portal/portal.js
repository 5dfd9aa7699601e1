// Customer portal behaviour, kept out of the HTML so the Content-Security-Policy can forbid inline scripts.
(function () {
  "use strict";

  // <select data-autosubmit> submits its form when the choice changes (the language picker, filters).
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el && el.matches && el.matches("select[data-autosubmit]") && el.form) {
      el.form.submit();
    }
  });

  // "Explain this charge": htmx loads the explanation under the line; a second press folds it away.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var trigger = event.detail.elt;
    if (!trigger || !trigger.classList || !trigger.classList.contains("explain")) {
      return;
    }
    var box = document.getElementById(trigger.getAttribute("aria-controls"));
    if (box && trigger.getAttribute("aria-expanded") === "true") {
      event.preventDefault();
      box.innerHTML = "";
      trigger.setAttribute("aria-expanded", "false");
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var box = event.detail.target;
    if (!box || !box.id) {
      return;
    }
    var trigger = document.querySelector('[aria-controls="' + box.id + '"]');
    if (trigger) {
      trigger.setAttribute("aria-expanded", "true");
    }
  });
})();

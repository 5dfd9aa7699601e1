// cspdesk page behaviour, kept out of the HTML so the Content-Security-Policy can forbid inline scripts.
// <select data-autosubmit> submits its form when the choice changes (the language picker).
document.addEventListener("change", function (event) {
  var el = event.target;
  if (el && el.matches && el.matches("select[data-autosubmit]") && el.form) {
    el.form.submit();
  }
});

// upshot dashboard: small enhancements; every page works without this script.
// Selects marked data-autosubmit submit their form when changed; the custom date
// inputs show only for a custom range.
(function () {
  "use strict";
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () {
      var form = select.form;
      if (select.name === "preset" && select.value === "custom") { form.classList.add("custom-range"); return; }
      if (select.name === "preset") {
        form.querySelectorAll("input[type=date]").forEach(function (input) { input.disabled = true; });
      }
      form.submit();
    });
  });
  var preset = document.querySelector("form.controls select[name=preset]");
  if (preset && preset.value !== "custom") {
    var form = preset.form;
    form.classList.add("has-script");
    form.addEventListener("submit", function () {
      if (preset.value !== "custom") form.querySelectorAll("input[type=date]").forEach(function (input) { input.disabled = true; });
    });
  }
})();

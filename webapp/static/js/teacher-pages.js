// Teacher pages: typeset LaTeX in problem texts with KaTeX (text stays text: KaTeX builds DOM
// nodes, no HTML from the problem is ever parsed), and copy a join code or link on request.
(function () {
  "use strict";
  var DELIMITERS = [
    { left: "$$", right: "$$", display: true },
    { left: "\\[", right: "\\]", display: true },
    { left: "\\(", right: "\\)", display: false },
    { left: "$", right: "$", display: false },
  ];

  function typeset(root) {
    if (typeof window.renderMathInElement !== "function") return;
    root.querySelectorAll(".math").forEach(function (element) {
      window.renderMathInElement(element, { delimiters: DELIMITERS, throwOnError: false });
    });
  }

  function copyFrom(button) {
    var source = document.getElementById(button.dataset.copy);
    if (!source) return;
    var text = source.value || source.textContent;
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = button.dataset.label; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text.trim()).then(done);
    } else if (source.select) {
      source.select();
      document.execCommand("copy");
      done();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    typeset(document);
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.dataset.label = button.textContent;
      button.addEventListener("click", function () { copyFrom(button); });
    });
  });
  document.addEventListener("htmx:afterSwap", function (event) { typeset(event.target); });
})();

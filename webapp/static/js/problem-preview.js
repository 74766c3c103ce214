/*
 * The ask form: a live preview of the problem as it will be shown (Markdown + LaTeX, through the
 * same safe renderer as the solutions), and Ctrl/Cmd+Enter to submit from the text area.
 */
(function () {
  "use strict";

  function wire(textarea) {
    const preview = document.querySelector(textarea.dataset.previewTarget);
    if (!preview) return;
    const holder = preview.closest(".preview");
    let timer = 0;
    const update = () => {
      const text = textarea.value;
      if (holder) holder.hidden = !text.trim();
      RichText.renderInto(preview, text);
    };
    textarea.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(update, 120);
    });
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        const solve = textarea.form.querySelector("button[value=solve]");
        textarea.form.requestSubmit(solve || undefined);
      }
    });
    update();
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const textarea of document.querySelectorAll("textarea[data-preview-target]")) wire(textarea);
  });
})();

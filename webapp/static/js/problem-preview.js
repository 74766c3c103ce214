/*
 * The ask form: a live preview of the problem as it will be shown (Markdown + LaTeX, through the
 * same safe renderer as the solutions), and Ctrl/Cmd+Enter to submit from the text area.
 * (Submitting it is htmx's: the attempt page comes back in the answer, see student_home.html.)
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
        // A click, not requestSubmit(button): htmx sends the clicked button's name and value
        // (mode=solve) only for a button it saw clicked.
        const solve = textarea.form.querySelector("button[value=solve]");
        if (solve) solve.click();
        else textarea.form.requestSubmit();
      }
    });
    update();
  }

  // On page load and whenever htmx swaps a form in (a refused ask comes back with its errors).
  const wired = new WeakSet();
  htmx.onLoad((root) => {
    const scope = root && root.querySelectorAll ? root : document;
    for (const textarea of scope.querySelectorAll("textarea[data-preview-target]")) {
      if (wired.has(textarea)) continue;
      wired.add(textarea);
      wire(textarea);
    }
  });
})();

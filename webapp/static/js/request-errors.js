/*
 * What a person sees when an htmx request fails. htmx leaves the page untouched on a 4xx/5xx it
 * does not swap (see the responseHandling in base.html) and on a network failure, so without this
 * a click that failed looked like a click that did nothing. The alert says what happened and what
 * to do; nothing on the page is replaced, so what the person typed is still there to retry.
 */
(function () {
  "use strict";

  function describe(status) {
    if (status === 0) return "The site could not be reached. Check your connection, then try again.";
    if (status === 403) return "That was refused (403): your session may have ended. Reload the page and try again.";
    if (status === 404) return "That is no longer there (404). Reload the page to see what is.";
    if (status === 413) return "That was too large to send (413).";
    if (status === 429) return "Too many requests just now (429). Wait a moment, then try again.";
    if (status >= 500) return "Something went wrong on the site (" + status + "). What you typed is still here; try again in a moment.";
    return "That did not work (" + status + "). Reload the page and try again.";
  }

  function show(status) {
    const box = document.getElementById("request-error");
    if (!box) return;
    box.querySelector("[data-role=text]").textContent = describe(status);
    box.hidden = false;
  }

  document.addEventListener("htmx:responseError", (event) => show(event.detail.xhr.status));
  document.addEventListener("htmx:sendError", () => show(0));
  // A later request that works clears the alert: it no longer describes the page.
  document.addEventListener("htmx:afterRequest", (event) => {
    const box = document.getElementById("request-error");
    if (box && event.detail.successful) box.hidden = true;
  });
  document.addEventListener("click", (event) => {
    if (!event.target.closest("[data-role=dismiss-request-error]")) return;
    document.getElementById("request-error").hidden = true;
  });
})();

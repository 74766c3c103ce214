/*
 * The live solution page: one WebSocket per unfinished hint or solution, speaking the JSON events
 * of webapp/tutoring/events.py, and the small page controls (copy, auto-follow).
 *
 * Events: `snapshot` (everything so far, sent first on every (re)connect), `delta` (numbered from
 * 1; a gap means a lost message, so the client reconnects and starts again from a snapshot),
 * `status` (queued with position, running), `done` (done / cancelled / failed with the verdict)
 * and `error`. The server decides everything that matters (hints, verdicts, feedback); when a
 * generation ends this script asks the server for the finished footer and the next-step buttons
 * (htmx partials) instead of drawing them itself.
 *
 * The visible state: Waiting in the queue (position) -> Thinking (reasoning open, timer) ->
 * Writing the answer (reasoning collapses, "Thought for N s") -> Done / Stopped / Failed.
 * Only state changes go to the aria-live status line, never the streamed text itself. Each change
 * is also a `generation:phase` DOM event on the article (detail: {phase, status}).
 */
(function () {
  "use strict";

  const CLOSE_CODES_FINAL = new Set([4401, 4403, 4404]);
  const FOLLOW_SLACK_PX = 160;

  function formatSeconds(ms) {
    const seconds = Math.max(0, Math.round(ms / 1000));
    if (seconds < 60) return `${seconds} s`;
    return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  }

  function nearBottom() {
    const doc = document.documentElement;
    return window.innerHeight + window.scrollY >= doc.scrollHeight - FOLLOW_SLACK_PX;
  }

  class GenerationStream {
    constructor(article) {
      this.article = article;
      this.kind = article.dataset.kind;
      this.seq = 0;
      this.finished = false;
      this.retryDelay = 500;
      this.phase = "queued"; // queued | thinking | answering | ended
      this.thinkingStartedAt = article.dataset.startedAt ? Date.parse(article.dataset.startedAt) : null;
      this.thinkingMs = null;
      this.userToggledReasoning = false;
      this.statusText = article.querySelector("[data-role=status-text]");
      this.errorLine = article.querySelector("[data-role=error]");
      this.details = article.querySelector("[data-role=reasoning-details]");
      this.reasoningLabel = article.querySelector("[data-role=reasoning-label]");
      const reasoning = article.querySelector("[data-role=reasoning]");
      this.reasoning = reasoning ? RichText.attach(reasoning) : null;
      this.answerElement = article.querySelector("[data-role=answer]");
      this.answer = RichText.attach(this.answerElement);
      if (this.details) {
        this.details.querySelector("summary").addEventListener("click", () => {
          this.userToggledReasoning = true;
        });
      }
      this.answerElement.setAttribute("aria-busy", "true");
      this.setPhase(article.dataset.status === "running" ? "thinking" : "queued");
      this.connect();
    }

    connect() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      this.socket = new WebSocket(scheme + location.host + this.article.dataset.wsPath);
      this.socket.addEventListener("open", () => {
        this.retryDelay = 500;
      });
      this.socket.addEventListener("message", (message) => {
        let event;
        try {
          event = JSON.parse(message.data);
        } catch (error) {
          return;
        }
        this.handle(event);
      });
      this.socket.addEventListener("close", (close) => this.onClose(close));
    }

    reconnect() {
      if (this.socket) this.socket.close(4000, "resync");
    }

    onClose(close) {
      if (this.finished) return;
      if (CLOSE_CODES_FINAL.has(close.code)) {
        this.showError(
          close.code === 4401
            ? "Your session has ended: log in again to see this solution."
            : "You cannot watch this solution."
        );
        this.end("failed");
        return;
      }
      // Reconnect; the snapshot that opens the new connection fills in whatever was missed.
      if (this.retryDelay >= 2000) this.say("Reconnecting…");
      setTimeout(() => this.connect(), this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, 8000);
    }

    handle(event) {
      switch (event.type) {
        case "snapshot":
          return this.onSnapshot(event);
        case "delta":
          return this.onDelta(event);
        case "status":
          return this.onStatus(event);
        case "done":
          return this.onDone(event);
        case "error":
          return this.showError(event.message || "Something went wrong.");
        default:
          return undefined;
      }
    }

    onSnapshot(event) {
      this.seq = event.seq || 0;
      const follow = nearBottom();
      if (this.reasoning) this.reasoning.set(event.reasoning || "");
      this.answer.set(event.answer || "");
      if (event.answer) this.setPhase("answering");
      else if (event.status === "running" || event.reasoning) this.setPhase("thinking");
      else if (event.status === "queued") this.setPhase("queued");
      this.follow(follow);
      // A generation that ended while we were away: its `done` may already be gone.
      if (["done", "cancelled", "failed"].includes(event.status)) this.finishFromServer(event.status);
    }

    onDelta(event) {
      if (event.seq <= this.seq) return; // already part of the snapshot
      if (event.seq !== this.seq + 1) {
        this.reconnect(); // a gap: start again from a snapshot
        return;
      }
      this.seq = event.seq;
      const follow = nearBottom();
      if (event.channel === "answer") {
        if (this.phase !== "answering") this.setPhase("answering");
        this.answer.append(event.text);
      } else {
        if (this.phase === "queued") this.setPhase("thinking");
        if (this.reasoning) this.reasoning.append(event.text);
      }
      this.follow(follow);
    }

    onStatus(event) {
      if (event.status === "queued") {
        this.setPhase("queued", event.position);
      } else if (event.status === "running" && this.phase === "queued") {
        this.setPhase("thinking");
      }
    }

    onDone(event) {
      if (this.reasoning) this.reasoning.finish();
      this.answer.finish();
      if (event.status === "failed" && event.final_answer === undefined) {
        this.showError("This request failed.");
      }
      this.finishFromServer(event.status);
    }

    // The stream has ended: settle the page and fetch the server's footer and next steps.
    finishFromServer(status) {
      if (this.finished) return;
      this.end(status);
      const footer = this.article.querySelector(".generation-footer");
      if (window.htmx && footer) {
        htmx.ajax("GET", this.article.dataset.footerUrl, { target: footer, swap: "outerHTML" });
      }
      const actions = document.getElementById("attempt-actions");
      if (window.htmx && actions) {
        htmx.ajax("GET", this.article.dataset.actionsUrl, { target: actions, swap: "outerHTML" });
      }
    }

    end(status) {
      this.finished = true;
      if (this.reasoning) this.reasoning.finish();
      this.answer.finish();
      if (this.phase === "thinking") this.stopThinkingClock();
      this.setPhase("ended", null, status);
      this.article.dataset.status = status;
      this.article.classList.remove("status-queued", "status-running");
      this.article.classList.add(`status-${status}`);
      this.answerElement.removeAttribute("aria-busy");
      const stop = this.article.querySelector("[data-role=stop-form]");
      if (stop) stop.remove();
      if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000, "done");
    }

    setPhase(phase, position = null, endStatus = null) {
      const previous = this.phase;
      this.phase = phase;
      this.article.dataset.phase = phase;
      const hint = this.kind === "hint";
      if (phase === "queued") {
        this.say(
          position === null || position === undefined
            ? "Waiting in the queue…"
            : position <= 0
              ? "Starting…"
              : `Waiting in the queue: ${position} ahead of you`
        );
      } else if (phase === "thinking") {
        if (this.thinkingStartedAt === null) this.thinkingStartedAt = Date.now();
        this.say(hint ? "Thinking about a hint…" : "Thinking…");
        this.startThinkingClock();
        if (this.details && !this.userToggledReasoning) this.details.open = true;
      } else if (phase === "answering") {
        if (previous === "thinking" || previous === "queued") this.stopThinkingClock();
        this.say(hint ? "Writing the hint…" : "Writing the answer…");
        // Reasoning makes way for the answer, unless the student chose to keep it open.
        if (this.details && !this.userToggledReasoning) this.details.open = false;
      } else if (phase === "ended") {
        const labels = { done: "Done", cancelled: "Stopped", failed: "Failed" };
        this.say(labels[endStatus] || "Finished");
        if (this.details && !this.answer.text.trim() && this.reasoning && this.reasoning.text) {
          this.details.open = true; // no answer came: the reasoning is all there is
        }
      }
      // For other scripts (and the browser tests): the page has just entered this phase.
      this.article.dispatchEvent(
        new CustomEvent("generation:phase", { bubbles: true, detail: { phase, status: endStatus } })
      );
    }

    startThinkingClock() {
      if (this.clock || !this.reasoningLabel) return;
      const tick = () => {
        this.reasoningLabel.textContent = `Thinking… ${formatSeconds(Date.now() - this.thinkingStartedAt)}`;
      };
      tick();
      this.clock = setInterval(tick, 1000);
    }

    stopThinkingClock() {
      if (this.clock) clearInterval(this.clock);
      this.clock = null;
      if (!this.reasoningLabel || this.thinkingStartedAt === null) return;
      this.thinkingMs = Date.now() - this.thinkingStartedAt;
      this.reasoningLabel.textContent = `Thought for ${formatSeconds(this.thinkingMs)}`;
    }

    say(text) {
      if (this.statusText && this.statusText.textContent !== text) this.statusText.textContent = text;
    }

    showError(message) {
      if (!this.errorLine) return;
      this.errorLine.textContent = message;
      this.errorLine.hidden = false;
    }

    follow(wasNearBottom) {
      if (!wasNearBottom) return;
      requestAnimationFrame(() => window.scrollTo({ top: document.documentElement.scrollHeight }));
    }
  }

  const streams = new WeakMap();

  function startStreams(root) {
    const scope = root && root.querySelectorAll ? root : document;
    const articles = [...scope.querySelectorAll("article.generation")];
    if (scope.matches && scope.matches("article.generation")) articles.push(scope);
    for (const article of articles) {
      if (streams.has(article)) continue;
      const status = article.dataset.status;
      if (status === "queued" || status === "running") {
        streams.set(article, new GenerationStream(article));
        if (root !== document.body) article.scrollIntoView({ block: "nearest", behavior: "smooth" });
      }
    }
  }

  // Copy the raw Markdown/LaTeX of an answer: what a student pastes into notes or a document.
  async function copyFrom(button) {
    const source = document.querySelector(button.dataset.copy);
    const view = source && RichText.of(source);
    const text = view ? view.text : source ? source.textContent : "";
    const status = button.parentElement.querySelector("[data-role=copy-status]");
    try {
      await navigator.clipboard.writeText(text);
      if (status) status.textContent = "Copied";
    } catch (error) {
      if (status) status.textContent = "Copy failed: select the text instead";
    }
    if (status) setTimeout(() => (status.textContent = ""), 2500);
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-copy]");
    if (button) copyFrom(button);
  });

  htmx.onLoad(startStreams);
  // An ask answered in place (the attempt page swapped into #student-page, its URL pushed) is a new
  // page to a screen reader and a keyboard: focus moves to its heading (tabindex=-1 in the
  // template), as a page load would.
  document.addEventListener("htmx:afterSettle", (event) => {
    if (event.detail.target.id !== "student-page") return;
    const heading = event.detail.target.querySelector("#problem-title");
    if (!heading) return;
    heading.focus({ preventScroll: true });
  });
  window.RingTutorStreams = { of: (article) => streams.get(article) || null };
})();

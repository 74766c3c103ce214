"""Time from "submit" to the first token a student *sees*, against the engine's own time to first
token, measured in a real browser against a running site.

For each run a headless Chromium (Playwright, /usr/bin/chromium) logs in as the demo student, types
a problem and clicks "Solve it step by step". The submit time is taken in the page just before the
click; a MutationObserver installed in every page records when the first reasoning or answer text
appears in the DOM (after the POST, the redirect, the page load, the WebSocket handshake, the queue,
the engine, the coalescing and the renderer). The engine's own time to first token comes from the
generation's `done` event (`time_to_first_token_ms`, measured by the worker around the engine).
The difference is what the site adds; the table splits it into the POST and redirect, the page's
scripts, the WebSocket handshake, and the wait from the socket to the first text on screen.

Run against `make run` (or any site with a worker):
    .venv/bin/python bench/browser_first_token.py --url http://127.0.0.1:8000 -n 10
"""

import argparse
import json
import statistics
import time

from playwright.sync_api import sync_playwright

# Installed in every page: when the first reasoning or answer text is in the DOM, and when the
# page's WebSocket opened (the attempt page starts with empty reasoning and answer elements).
PAGE_PROBES = """
(() => {
  window.__firstTextAt = null;
  window.__socketOpenAt = null;
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = function (...args) {
    const socket = new NativeWebSocket(...args);
    socket.addEventListener('open', () => { window.__socketOpenAt ??= Date.now(); });
    return socket;
  };
  window.WebSocket.prototype = NativeWebSocket.prototype;
  Object.assign(window.WebSocket, NativeWebSocket);
  const seen = () => {
    if (window.__firstTextAt !== null) return;
    for (const el of document.querySelectorAll('[data-role=reasoning], [data-role=answer]')) {
      if (el.classList.contains('is-rendered') && el.textContent.trim()) {
        window.__firstTextAt = Date.now();
        return;
      }
    }
  };
  new MutationObserver(seen).observe(document, {subtree: true, childList: true,
                                                characterData: true});
})();
"""
# The attempt page's own milestones, as epoch milliseconds.
PAGE_TIMES = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const at = (ms) => performance.timeOrigin + ms;
  return {response: at(nav.responseEnd), ready: at(nav.domContentLoadedEventEnd),
          socket: window.__socketOpenAt, text: window.__firstTextAt};
}"""

PROBLEMS = ["Compute 47 + 38.", "Compute 305 - 178.", "Compute 64 * 7.", "What is 25% of 80?"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--user", default="student")
    parser.add_argument("--password", default="ring-student-demo")
    parser.add_argument("-n", type=int, default=10, help="runs (one at a time)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=args.chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        context = browser.new_context()
        context.add_init_script(PAGE_PROBES)
        page = context.new_page()
        page.goto(f"{args.url}/accounts/login/")
        page.get_by_label("Username").fill(args.user)
        page.get_by_label("Password").fill(args.password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state("networkidle")

        for run in range(args.n):
            done_events: list[dict] = []

            def on_socket(socket, sink=done_events):
                def on_frame(payload):
                    event = json.loads(payload)
                    if event.get("type") == "done":
                        sink.append(event)

                socket.on("framereceived", on_frame)

            page.on("websocket", on_socket)
            page.goto(f"{args.url}/solve/")
            page.get_by_label("Your problem").fill(PROBLEMS[run % len(PROBLEMS)])
            submitted_at = page.evaluate("Date.now()")
            page.get_by_role("button", name="Solve it step by step").click()
            page.wait_for_function("window.__firstTextAt !== null", timeout=120_000)
            times = page.evaluate(PAGE_TIMES)
            deadline = time.monotonic() + 120
            while not done_events and time.monotonic() < deadline:
                page.wait_for_timeout(50)
            page.remove_listener("websocket", on_socket)
            if not done_events or done_events[0].get("time_to_first_token_ms") is None:
                print(f"run {run}: no done event with the engine's time to first token; skipped")
                continue
            rows.append(
                {
                    "submit -> first token visible in the page": times["text"] - submitted_at,
                    "engine's own time to first token": done_events[0]["time_to_first_token_ms"],
                    "  submit -> attempt page received (POST, redirect)": times["response"]
                    - submitted_at,
                    "  page received -> scripts ready": times["ready"] - times["response"],
                    "  scripts ready -> WebSocket open": times["socket"] - times["ready"],
                    "  WebSocket open -> first token visible": times["text"] - times["socket"],
                }
            )
        browser.close()

    if not rows:
        raise SystemExit("no completed runs")
    print(f"\n{len(rows)} runs against {args.url}\n")
    print(f"{'ms':<52}{'median':>10}{'p90':>10}")
    for label in rows[0]:
        values = [row[label] for row in rows]
        print(f"{label:<52}{statistics.median(values):>10.0f}{percentile(values, 0.9):>10.0f}")


if __name__ == "__main__":
    main()

"""Time from "submit" to the first token a student *sees*, against the engine's own time to first
token, measured in a real browser against a running site, for the two ways the ask form reaches the
attempt page.

For each run a headless Chromium (Playwright, /usr/bin/chromium) logs in as the demo student, types
a problem and clicks "Solve it step by step". The submit time is taken in the page just before the
click; a MutationObserver installed in every page records when the first reasoning or answer text
appears in the DOM (after the POST, the page, the WebSocket handshake, the queue, the engine, the
coalescing and the renderer). The engine's own time to first token comes from the generation's
`done` event (`time_to_first_token_ms`, measured by the worker around the engine). The difference
is what the site adds.

The flows (`--flows`, both by default, A/B in one run):
  inline    what the page does with JavaScript: htmx posts the form, the answer is the attempt
            page's content, the stream script opens the socket at once (the URL is pushed).
  redirect  the form posted natively (as without JavaScript, and as every page did before): the
            POST redirects, the browser loads the attempt page and its scripts, which open the
            socket. Made by replacing the form with a copy htmx has not processed.
Runs come in pairs, one of each flow, alternating which goes first (ABBA); the report gives each
flow's medians and the median over pairs of (redirect - inline).

Run against `make run` (or any site with a worker):
    .venv/bin/python bench/browser_first_token.py --url http://127.0.0.1:8000 -n 10
"""

import argparse
import json
import re
import statistics
import time

# Installed in every page: when the first reasoning or answer text is in the DOM, and when the
# page's WebSocket opened (the attempt page starts with empty reasoning and answer elements).
PAGE_PROBES = """
(() => {
  window.__firstTextAt = null;
  window.__socketOpenAt = null;
  window.__socketCreatedAt = null;
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = function (...args) {
    window.__socketCreatedAt ??= Date.now();
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
# The page's milestones, as epoch milliseconds: when the attempt page's markup had arrived (the
# ask's XHR answer inline; the attempt page's navigation otherwise), the socket opened, the text.
PAGE_TIMES = """() => {
  const at = (ms) => performance.timeOrigin + ms;
  const asks = performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/solve/ask/'));
  const markup = asks.length ? asks[asks.length - 1].responseEnd
                             : performance.getEntriesByType('navigation')[0].responseEnd;
  return {markup: at(markup), created: window.__socketCreatedAt, socket: window.__socketOpenAt,
          text: window.__firstTextAt};
}"""
# The redirect flow: the same form, but one htmx never processed, so the browser posts it natively.
DETACH_HTMX = """() => {
  const form = document.querySelector('form.ask-form');
  const copy = form.cloneNode(true);
  for (const name of [...copy.getAttributeNames()]) {
    if (name.startsWith('hx-')) copy.removeAttribute(name);
  }
  form.replaceWith(copy);
}"""
FLOWS = ("inline", "redirect")

PROBLEMS = ["Compute 47 + 38.", "Compute 305 - 178.", "Compute 64 * 7.", "What is 25% of 80?"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def pair_orders(pairs: int, flows: tuple[str, ...] = FLOWS) -> list[tuple[str, ...]]:
    """The order of each pair's runs: A B, then B A, and so on (one flow alone: itself)."""
    if len(flows) == 1:
        return [flows] * pairs
    return [flows if index % 2 == 0 else tuple(reversed(flows)) for index in range(pairs)]


def paired_differences(pairs: list[dict[str, float]], a: str, b: str) -> list[float]:
    """Per pair with both flows measured, b - a (ms)."""
    return [pair[b] - pair[a] for pair in pairs if a in pair and b in pair]


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--user", default="student")
    parser.add_argument("--password", default="ring-student-demo")
    parser.add_argument("-n", type=int, default=10, help="pairs of runs (one run at a time)")
    parser.add_argument(
        "--flows",
        default="inline,redirect",
        help="comma-separated: inline, redirect (default both)",
    )
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    flows = tuple(flow.strip() for flow in args.flows.split(","))
    if not flows or set(flows) - set(FLOWS):
        parser.error(f"--flows takes {', '.join(FLOWS)}")

    rows: list[dict] = []
    pairs: list[dict[str, float]] = []
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

        run = 0
        for order in pair_orders(args.n, flows):
            pair: dict[str, float] = {}
            for flow in order:
                row = measure(page, args.url, flow, PROBLEMS[run % len(PROBLEMS)])
                run += 1
                if row is None:
                    print(
                        f"run {run} ({flow}): no done event with the engine's time to first token"
                    )
                    continue
                rows.append(row)
                pair[flow] = row["click -> first token visible"]
            pairs.append(pair)
        browser.close()

    if not rows:
        raise SystemExit("no completed runs")
    print(f"\n{len(rows)} runs against {args.url} (pairs in alternating order)\n")
    labels = [label for label in rows[0] if label != "flow"]
    print(f"{'ms, median (p90)':<44}" + "".join(f"{flow:>20}" for flow in flows))
    for label in labels:
        cells = []
        for flow in flows:
            values = [row[label] for row in rows if row["flow"] == flow]
            cells.append(
                f"{statistics.median(values):.0f} ({percentile(values, 0.9):.0f})"
                if values
                else "-"
            )
        print(f"{label:<44}" + "".join(f"{cell:>20}" for cell in cells))
    differences = paired_differences(pairs, "inline", "redirect")
    if differences:
        print(
            f"\nredirect - inline, click -> first token visible, median of {len(differences)} "
            f"pairs: {statistics.median(differences):.0f} ms (pairs: "
            f"{', '.join(f'{d:.0f}' for d in differences)})"
        )


def measure(page, url: str, flow: str, problem: str) -> dict | None:
    """One ask in `flow`, timed from the click; None when the stream gave no engine TTFT."""
    done_events: list[dict] = []

    def on_socket(socket):
        def on_frame(payload):
            event = json.loads(payload)
            if event.get("type") == "done":
                done_events.append(event)

        socket.on("framereceived", on_frame)

    page.on("websocket", on_socket)
    try:
        page.goto(f"{url}/solve/")
        if flow == "redirect":
            page.evaluate(DETACH_HTMX)
        page.get_by_label("Your problem").fill(problem)
        submitted_at = page.evaluate("() => Date.now()")
        page.get_by_role("button", name="Solve it step by step").click()
        page.wait_for_url(re.compile(r"/solve/attempts/\d+/$"), wait_until="commit")
        # A function, not an expression: the site's CSP has no 'unsafe-eval'.
        page.wait_for_function("() => window.__firstTextAt !== null", timeout=120_000)
        times = page.evaluate(PAGE_TIMES)
        deadline = time.monotonic() + 120
        while not done_events and time.monotonic() < deadline:
            page.wait_for_timeout(50)
    finally:
        page.remove_listener("websocket", on_socket)
    if not done_events or done_events[0].get("time_to_first_token_ms") is None:
        return None
    engine = done_events[0]["time_to_first_token_ms"]
    return {
        "flow": flow,
        "click -> first token visible": times["text"] - submitted_at,
        "engine's own time to first token": engine,
        "what the site adds (first token - engine)": times["text"] - submitted_at - engine,
        "  click -> attempt page markup received": times["markup"] - submitted_at,
        "  click -> WebSocket created by the page": times["created"] - submitted_at,
        "  click -> WebSocket open": times["socket"] - submitted_at,
        "  WebSocket open -> first token visible": times["text"] - times["socket"],
    }


if __name__ == "__main__":
    main()

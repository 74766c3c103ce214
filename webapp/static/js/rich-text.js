/*
 * Safe rich text for Ring Tutor: Markdown with LaTeX for problem statements and model output,
 * rendered whole or while it streams.
 *
 * Pipeline: text -> marked (raw HTML shown as text, images as their alt text, math cut out as
 * placeholders) -> DOMPurify with a strict allowlist -> placeholders typeset by KaTeX (trust off).
 * Nothing from a problem or from the model reaches the page as HTML.
 *
 * Math: $...$, $$...$$, \(...\), \[...\] and a bare \boxed{...}. A `$` follows pandoc's rule (the
 * opener has a non-space on its right, the closer a non-space on its left and no digit after it),
 * so "$5 and $10" stays text; \$ is a literal dollar; nothing inside code is math. A `*` or `**`
 * between two operands ("u*t", "64*7", "(a+b)*(c+d)", "x**2", "α*β") is an operator, not emphasis.
 *
 * Streaming without flicker: the text is cut into blocks at blank lines outside code fences and
 * display math. A block followed by another one is finished: it is rendered once and never
 * touched again. Only the last block is re-rendered, at most once per animation frame, and in it
 * math is typeset only once its closing delimiter has arrived (until then it shows as dim text).
 * Typeset formulas are cached, so re-rendering the live block does not re-run KaTeX.
 *
 * API (window.RichText):
 *   RichText.attach(element)        -> view; renders element's text content (finished text)
 *   view.set(text, {final})         replace the text (e.g. a snapshot)
 *   view.append(delta)              streamed text
 *   view.finish()                   no more text: finish the last block
 *   view.text                       the raw source (what "copy" copies)
 *   RichText.renderInto(el, text)   one-off render (previews)
 */
(function () {
  "use strict";

  const KATEX_OPTIONS = {
    throwOnError: false,
    trust: false,
    strict: "ignore",
    maxSize: 10,
    maxExpand: 500,
    output: "htmlAndMathml",
  };
  const ALLOWED_TAGS = [
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code", "pre",
    "blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td", "a", "span",
    "div",
  ];
  const PURIFY_OPTIONS = {
    ALLOWED_TAGS,
    ALLOWED_ATTR: ["href", "title", "start", "align", "data-math"],
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
    // Attributes whose values are not URLs (otherwise the URI rule above would drop them).
    ADD_URI_SAFE_ATTR: ["data-math", "start", "align"],
    RETURN_DOM_FRAGMENT: true,
  };

  function escapeHtml(text) {
    return String(text)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#39;");
  }

  function isEscaped(src, index) {
    let backslashes = 0;
    for (let i = index - 1; i >= 0 && src[i] === "\\"; i--) backslashes++;
    return backslashes % 2 === 1;
  }

  // Index of the first unescaped occurrence of `needle` at or after `from`, or -1.
  function findUnescaped(src, needle, from) {
    let index = src.indexOf(needle, from);
    while (index !== -1 && isEscaped(src, index)) index = src.indexOf(needle, index + 1);
    return index;
  }

  // The end (exclusive) of a balanced {...} group starting at src[open] === "{", or -1.
  function balancedEnd(src, open) {
    let depth = 0;
    for (let i = open; i < src.length; i++) {
      const c = src[i];
      if (c === "\\") {
        i++;
        continue;
      }
      if (c === "{") depth++;
      else if (c === "}" && --depth === 0) return i + 1;
    }
    return -1;
  }

  const UNCLOSED = -1;
  const NOT_MATH = -2;

  // Where the `$...$` opened at src[0] closes: the closing index, UNCLOSED or NOT_MATH.
  function dollarClose(src) {
    if (!src[1] || /\s/.test(src[1])) return NOT_MATH;
    for (let i = 1; i < src.length; i++) {
      const c = src[i];
      if (c === "\\") {
        i++;
        continue;
      }
      if (c !== "$") continue;
      // The first `$` decides: it closes, or the opener was a literal dollar after all.
      if (/\s/.test(src[i - 1]) || /\d/.test(src[i + 1] || "")) return NOT_MATH;
      return i;
    }
    return UNCLOSED;
  }

  // The state of one parse: whether unclosed math may be shown as pending (live block only).
  let streamingParse = false;

  function mathToken(raw, tex, display) {
    return { type: "math", raw, tex: tex.trim(), display };
  }

  function pendingToken(raw) {
    return { type: "mathPending", raw, text: raw };
  }

  const inlineMath = {
    name: "math",
    level: "inline",
    start(src) {
      const opener = /\$|\\\(|\\\[|\\boxed\{/g;
      for (let match; (match = opener.exec(src)); ) {
        // An escaped \$ is left to the escape rule, which makes it a literal dollar.
        if (!(match[0] === "$" && isEscaped(src, match.index))) return match.index;
      }
      return undefined;
    },
    tokenizer(src) {
      if (src.startsWith("$$")) {
        const close = findUnescaped(src, "$$", 2);
        if (close > 2) return mathToken(src.slice(0, close + 2), src.slice(2, close), true);
        if (close === -1 && streamingParse) return pendingToken(src);
        return undefined;
      }
      if (src[0] === "$") {
        const close = dollarClose(src);
        if (close > 1) return mathToken(src.slice(0, close + 1), src.slice(1, close), false);
        // A `$` before a digit is most likely a price: never hold it back as pending math.
        if (close === UNCLOSED && streamingParse && !/\d/.test(src[1])) return pendingToken(src);
        return undefined;
      }
      for (const [open, shut, display] of [["\\(", "\\)", false], ["\\[", "\\]", true]]) {
        if (!src.startsWith(open)) continue;
        const close = src.indexOf(shut, 2);
        if (close > 2) return mathToken(src.slice(0, close + 2), src.slice(2, close), display);
        if (close === -1 && streamingParse) return pendingToken(src);
        return undefined;
      }
      if (src.startsWith("\\boxed{")) {
        const end = balancedEnd(src, 6);
        if (end > 0) return mathToken(src.slice(0, end), src.slice(0, end), false);
        if (streamingParse) return pendingToken(src);
      }
      return undefined;
    },
    renderer(token) {
      // A span even for display math inside a line: a div cannot sit in a paragraph.
      return `<span data-math="${token.display ? "display" : "inline"}">${escapeHtml(token.tex)}</span>`;
    },
  };

  const pendingMath = {
    name: "mathPending",
    renderer(token) {
      return `<span data-math="pending">${escapeHtml(token.text)}</span>`;
    },
  };

  // $$ or \[ opening a line, closed by $$ or \] ending a (later) line.
  const blockMath = {
    name: "blockMath",
    level: "block",
    start(src) {
      const match = /^ {0,3}(?:\$\$|\\\[)/m.exec(src);
      return match ? match.index : undefined;
    },
    tokenizer(src) {
      const open = /^ {0,3}(\$\$|\\\[)/.exec(src);
      if (!open) return undefined;
      const shut = open[1] === "$$" ? "$$" : "\\]";
      const bodyStart = open[0].length;
      const close = shut === "$$" ? findUnescaped(src, "$$", bodyStart) : src.indexOf(shut, bodyStart);
      if (close === -1) {
        if (streamingParse) return { type: "blockMathPending", raw: src, text: src };
        return undefined;
      }
      const rest = /^[ \t]*(?:\n|$)/.exec(src.slice(close + 2));
      if (!rest) return undefined; // text after the closer: an inline formula in a paragraph
      const raw = src.slice(0, close + 2 + rest[0].length);
      return { type: "blockMath", raw, tex: src.slice(bodyStart, close).trim() };
    },
    renderer(token) {
      return `<div data-math="display">${escapeHtml(token.tex)}</div>`;
    },
  };

  const pendingBlockMath = {
    name: "blockMathPending",
    renderer(token) {
      return `<div data-math="pending">${escapeHtml(token.text)}</div>`;
    },
  };

  // Model text writes products with `*` and powers with `**`: "64*7=448", "u*t + a*t^2/2",
  // "(a+b)*(c+d)", "x**2 + y**2", "α*β", "x²*y". A `*` or `**` with an operand on both sides (a
  // letter or digit of any script, or a closing bracket, before it; a letter, digit, opening
  // bracket or backslash after it) is an operator, never emphasis; emphasis is still written the
  // Markdown way, with the stars against a space ("a *word* here", "the **answer** is").
  const OPERAND_BEFORE = /[\p{L}\p{N})\]}^.]$/u;
  const OPERATOR_AFTER = /^\*{1,2}(?=[\p{L}\p{N}([{\\])/u;
  const operatorStar = {
    name: "operatorStar",
    level: "inline",
    start(src) {
      const match = /[\p{L}\p{N})\]}^.]\*{1,2}[\p{L}\p{N}([{\\]/u.exec(src);
      return match ? match.index + 1 : undefined;
    },
    tokenizer(src, tokens) {
      const previous = tokens.length ? tokens[tokens.length - 1].raw : "";
      const operator = OPERAND_BEFORE.test(previous) ? OPERATOR_AFTER.exec(src) : null;
      return operator ? { type: "text", raw: operator[0], text: operator[0] } : undefined;
    },
  };

  const markdown = new marked.Marked({ gfm: true, breaks: true, async: false });
  markdown.use({
    extensions: [blockMath, pendingBlockMath, inlineMath, pendingMath, operatorStar],
    renderer: {
      // Raw HTML in a problem or an answer is shown as the text it is.
      html(token) {
        return escapeHtml(token.text);
      },
      // No images from model output or problem text (tracking pixels, layout breakers).
      image(token) {
        return escapeHtml(token.text || "");
      },
    },
  });

  const mathCache = new Map();
  const MATH_CACHE_LIMIT = 1000;

  function typeset(tex, display) {
    const key = (display ? "D" : "I") + tex;
    let node = mathCache.get(key);
    if (!node) {
      node = document.createElement("span");
      try {
        katex.render(tex, node, { ...KATEX_OPTIONS, displayMode: display });
      } catch (error) {
        node.textContent = tex; // KaTeX reports bad input inline; this is a last resort
      }
      if (mathCache.size >= MATH_CACHE_LIMIT) mathCache.clear();
      mathCache.set(key, node);
    }
    return node.cloneNode(true);
  }

  // Sanitised DOM for one Markdown source; `streaming` lets unclosed math show as pending.
  function renderFragment(source, streaming) {
    streamingParse = streaming;
    let html;
    try {
      html = markdown.parse(source);
    } finally {
      streamingParse = false;
    }
    const fragment = DOMPurify.sanitize(html, PURIFY_OPTIONS);
    for (const el of fragment.querySelectorAll("[data-math]")) {
      const kind = el.getAttribute("data-math");
      if (kind === "pending") continue;
      el.replaceChildren(typeset(el.textContent, kind === "display"));
    }
    for (const link of fragment.querySelectorAll("a")) showLinkAddress(link);
    return fragment;
  }

  const LINK_ADDRESS_CHARS = 120;

  // A link in a problem or an answer says where it really goes: it opens in a new tab without
  // the page's referrer or any hold on this window, search engines do not credit it, and unless
  // its text already is its address, the address (as the browser will use it: punycode hosts
  // included) follows the text, so "[your grades](https://elsewhere.example)" cannot pass for a
  // link of this site.
  function showLinkAddress(link) {
    link.rel = "nofollow noopener noreferrer";
    link.target = "_blank";
    const href = link.getAttribute("href");
    if (!href) return; // DOMPurify dropped an address it does not allow: the text stays inert
    let address = href;
    try {
      address = new URL(href).href;
    } catch (error) {
      // a relative or odd address: show it as written
    }
    link.title = address;
    const text = link.textContent.trim();
    const spellings = [href, address].flatMap((form) => {
      const bare = form.replace(/^(?:https?:\/\/|mailto:)/i, "");
      return [form, bare, bare.replace(/\/$/, "")];
    });
    if (spellings.includes(text)) return;
    const shown = document.createElement("span");
    shown.className = "link-address";
    const cut = address.length > LINK_ADDRESS_CHARS;
    shown.textContent = ` (${cut ? address.slice(0, LINK_ADDRESS_CHARS) + "…" : address})`;
    link.after(shown);
  }

  // Cut text into Markdown blocks at blank lines outside fences and display math. A blank line
  // followed by an indented line continues the block (a list item's next paragraph).
  function splitBlocks(text) {
    const lines = text.split("\n");
    const blocks = [];
    let current = [];
    let fence = null; // the fence marker while inside ``` / ~~~
    let mathShut = null; // "$$" or "\\]" while inside display math
    let sawBlank = false;
    for (const line of lines) {
      const blank = line.trim() === "";
      if (!fence && !mathShut && sawBlank && !blank && !/^[ \t]/.test(line) && current.length) {
        blocks.push(current.join("\n") + "\n");
        current = [];
      }
      current.push(line);
      sawBlank = blank;
      if (fence) {
        const close = new RegExp("^ {0,3}" + fence[0] + "{" + fence.length + ",}\\s*$");
        if (close.test(line)) fence = null;
        continue;
      }
      if (mathShut) {
        if (line.includes(mathShut)) mathShut = null;
        continue;
      }
      const opensFence = /^ {0,3}(`{3,}|~{3,})/.exec(line);
      if (opensFence) {
        fence = opensFence[1];
        continue;
      }
      const opensMath = /^ {0,3}(\$\$|\\\[)(.*)$/.exec(line);
      if (opensMath) {
        const shut = opensMath[1] === "$$" ? "$$" : "\\]";
        if (!opensMath[2].includes(shut)) mathShut = shut;
      }
    }
    if (current.length) blocks.push(current.join("\n"));
    return blocks;
  }

  class RichTextView {
    constructor(element, text, final) {
      this.element = element;
      this.text = text;
      this.final = final;
      this.blocks = []; // {source, complete, node}
      this.frame = 0;
      element.replaceChildren();
      element.classList.add("is-rendered");
      this.render();
    }

    set(text, { final = false } = {}) {
      this.text = text;
      this.final = final;
      this.schedule();
    }

    append(delta) {
      this.text += delta;
      this.final = false;
      this.schedule();
    }

    finish() {
      this.final = true;
      this.schedule();
    }

    schedule() {
      if (this.frame) return;
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.render();
      });
    }

    // Render now (tests and the end of a stream call this to skip the frame wait).
    flush() {
      if (this.frame) cancelAnimationFrame(this.frame);
      this.frame = 0;
      this.render();
    }

    render() {
      // Leading blank lines (a model's reasoning often starts with one) would render as a gap.
      const text = this.text.replace(/^(?:[ \t]*\n)+/, "");
      const sources = text ? splitBlocks(text) : [];
      sources.forEach((source, index) => {
        const complete = this.final || index < sources.length - 1;
        const block = this.blocks[index];
        if (block && block.source === source && block.complete === complete) return;
        const node = document.createElement("div");
        node.className = "md-block";
        node.append(renderFragment(source, !complete));
        if (block) block.node.replaceWith(node);
        else this.element.append(node);
        this.blocks[index] = { source, complete, node };
      });
      while (this.blocks.length > sources.length) this.blocks.pop().node.remove();
      this.element.classList.toggle("is-empty", !this.text.trim());
    }
  }

  const views = new WeakMap();

  window.RichText = {
    // Render an element whose text content is Markdown (escaped by the server), once.
    attach(element, { final = true } = {}) {
      let view = views.get(element);
      if (!view) {
        view = new RichTextView(element, element.textContent, final);
        views.set(element, view);
      }
      return view;
    },
    of(element) {
      return views.get(element) || null;
    },
    renderInto(element, text) {
      const view = views.get(element);
      if (view) {
        view.set(text, { final: true });
        view.flush();
      } else {
        views.set(element, new RichTextView(element, text, true));
      }
    },
    // Exposed for the browser tests of the rules above.
    renderHtml(text, { streaming = false } = {}) {
      const holder = document.createElement("div");
      holder.append(renderFragment(text, streaming));
      return holder.innerHTML;
    },
    splitBlocks,
  };

  // A lone formula (a final answer: the contents of its \boxed{}), typeset in place; text that
  // KaTeX cannot read stays as it is.
  function typesetInPlace(element) {
    if (element.dataset.texRendered) return;
    element.dataset.texRendered = "1";
    const tex = element.textContent;
    try {
      katex.render(tex, element, { ...KATEX_OPTIONS, throwOnError: true, displayMode: false });
    } catch (error) {
      element.textContent = tex;
    }
  }

  // Everything marked data-rich-text or data-tex renders when it arrives (page load or a swap).
  function renderAll(root) {
    const scope = root && root.querySelectorAll ? root : document;
    for (const [selector, render] of [
      ["[data-rich-text]", (element) => window.RichText.attach(element)],
      ["[data-tex]", typesetInPlace],
    ]) {
      const targets = [...scope.querySelectorAll(selector)];
      if (scope.matches && scope.matches(selector)) targets.push(scope);
      for (const element of targets) render(element);
    }
  }
  if (window.htmx) window.htmx.onLoad(renderAll);
  else document.addEventListener("DOMContentLoaded", () => renderAll(document));
})();

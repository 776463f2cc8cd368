"""Headless Chromium (the Debian package) driven by Playwright: no browser is downloaded."""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import time

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--enable-unsafe-swiftshader",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Every text node of a document, descending into open shadow roots (TensorBoard is Polymer).
_TEXTS = """() => {
  const out = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) walk(el.shadowRoot);
      if (el.tagName === 'STYLE' || el.tagName === 'SCRIPT') continue;
      for (const n of el.childNodes) {
        if (n.nodeType === 3 && n.textContent.trim()) out.push(n.textContent.trim());
      }
    }
  };
  walk(document);
  return out;
}"""


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def browser_page(width: int = 1400, height: int = 900):
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="labkit-chromium-")
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                profile,
                executable_path=chromium_path(),
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": width, "height": height},
            )
            try:
                yield ctx.new_page()
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _after(texts: list[str], label: str) -> int | None:
    if label in texts:
        value = texts[texts.index(label) + 1]
        if value.isdigit():
            return int(value)
    return None


def read_projector(page, url: str, timeout: float = 120.0) -> dict:
    """Open the projector; once it shows a loaded tensor, return what its panels say.

    ``{"tensors_found": 3, "points": 450, "dimension": 64, "texts": [...]}``. The projector
    lives two iframes deep (plugin_entry.html -> projector_binary.html).
    """
    page.goto(url)
    deadline = time.time() + timeout
    state: dict = {"texts": []}
    while time.time() < deadline:
        frame = next((f for f in page.frames if "projector_binary" in f.url), None)
        if frame is not None:
            with contextlib.suppress(Exception):  # the frame may navigate while we read
                texts = frame.evaluate(_TEXTS)
                found = [m for t in texts if (m := re.fullmatch(r"(\d+) tensors? found", t))]
                state = {
                    "texts": texts,
                    "tensors_found": int(found[0].group(1)) if found else None,
                    "points": _after(texts, "Points:"),
                    "dimension": _after(texts, "Dimension:"),
                }
                if found and state["points"]:
                    return state
        page.wait_for_timeout(500)  # not time.sleep: Playwright sees new frames only in its calls
    raise AssertionError(
        f"the projector never showed a loaded tensor; it showed "
        f"{[t for t in state['texts'] if len(t) < 80][:60]}"
    )

"""Every dashboard the index page lists, in headless Chromium (Playwright).

For each dashboard: it renders with no browser console error, one control changed in the page
changes what the view shows, and a screenshot is saved under ``test-artifacts/screenshots/``.

Dashboards added later are covered without editing this file: they are read from the index page
(``GET /`` as a browser asks for it). The control to change is the Viewer's ``probe``
(``probe = ("param_name", new_value)``, see :class:`widgets.base.DomainViewer`): after setting
it, the text the page's plots and panes show (titles, Markdown/HTML, the text of each Bokeh
model) must change. A Viewer without a probe gets its first select set to another option,
and then a change of either that text or the page's pixels is accepted.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# Messages Chromium itself logs at "error" level that say nothing about the page.
BENIGN = (re.compile(r"GL Driver Message", re.I), re.compile(r"favicon\.ico", re.I))

# Text of every Bokeh model that carries some (titles, Div/Markdown/HTML panes, labels), in order.
VIEW_TEXT_JS = """() => {
  const out = [];
  for (const doc of (window.Bokeh ? Bokeh.documents : [])) {
    for (const root of doc.roots()) {
      const seen = new Set();
      const walk = (m) => {
        if (!m || seen.has(m.id)) return;
        seen.add(m.id);
        if (typeof m.text === "string" && !("value" in m)) out.push(m.text);
        if (m.title && typeof m.title.text === "string") out.push(m.title.text);
        for (const ref of m.references ? m.references() : []) walk(ref);
      };
      walk(root);
    }
  }
  return out.join("\\n");
}"""


def dashboard_slugs(base_url: str) -> list[str]:
    page = httpx.get(base_url + "/", headers={"Accept": "text/html"}, timeout=60).text
    block = re.search(r'<ul id="dashboards">(.*?)</ul>', page, re.S)
    assert block, "the index page has no dashboard list"
    return re.findall(r'href="\./([^"]+)"', block.group(1))


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module", autouse=True)
def clean_shots():
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)


def _viewer_class(slug: str):
    import importlib

    from widgets.registry import dashboards

    for d in dashboards():
        if d.slug == slug:
            module, _, name = d.viewer.partition(":")
            return getattr(importlib.import_module(module), name)
    return None


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            m.type == "error"
            and not any(b.search(m.text) for b in BENIGN)
            and errors.append(f"console: {m.text}")
        ),
    )
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.goto(url, wait_until="load", timeout=120_000)
    return page, errors


def _wait_rendered(page) -> None:
    page.wait_for_function(
        "() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].roots().length > 0",
        timeout=120_000,
    )
    page.wait_for_selector(".bk-input, .bk-btn, canvas", timeout=120_000)
    page.wait_for_timeout(1500)  # let the first layout and plots settle


def _settled_text(page, before: str, timeout_s: float = 30.0) -> str:
    deadline = time.time() + timeout_s
    text = page.evaluate(VIEW_TEXT_JS)
    while text == before and time.time() < deadline:
        page.wait_for_timeout(250)
        text = page.evaluate(VIEW_TEXT_JS)
    return text


def _set_control(page, label: str, value) -> None:
    group = page.locator(".bk-input-group", has=page.locator("label", has_text=label)).first
    select = group.locator("select")
    if select.count():
        select.select_option(label=str(value))
        return
    box = group.locator("input")
    if box.count():
        kind = box.first.get_attribute("type") or "text"
        if kind == "checkbox":
            if bool(value) != box.first.is_checked():
                box.first.click()
        else:
            box.first.fill(str(value))
            box.first.press("Enter")
        return
    raise AssertionError(
        f"no select or input labelled {label!r}: give the probe a Selector or a text/number input"
    )


def test_index_lists_dashboards(server):
    slugs = dashboard_slugs(server.url)
    assert "system" in slugs


def test_index_page_has_no_console_errors(server, browser):
    page, errors = _open(browser, server.url + "/")
    page.screenshot(path=str(SHOTS / "index.png"), full_page=True)
    page.close()
    assert not errors, errors


@pytest.mark.timeout(900)  # one test walks every dashboard; each takes ~10-40 s on a busy machine
def test_every_dashboard_renders_and_reacts(server, browser):
    """One test walks every dashboard the index lists (new ones included), collecting failures."""
    slugs = dashboard_slugs(server.url)
    assert slugs
    failures: list[str] = []
    for slug in slugs:
        try:
            _check_dashboard(server.url, browser, slug)
        except Exception as exc:  # report every dashboard, not only the first broken one
            failures.append(f"/{slug}: {type(exc).__name__}: {exc}"[:2000])
    print(f"dashboards checked: {slugs}; screenshots in {SHOTS}")
    assert not failures, "\n".join(failures)


def _check_dashboard(base: str, browser, slug: str) -> None:
    page, errors = _open(browser, f"{base}/{slug}")
    try:
        _wait_rendered(page)
        assert not errors, f"console errors after load: {errors}"
        page.screenshot(path=str(SHOTS / f"{slug}.png"), full_page=True)
        before_text = page.evaluate(VIEW_TEXT_JS)
        assert before_text.strip(), "the page shows no text at all"
        cls = _viewer_class(slug)
        probe = getattr(cls, "probe", None) if cls is not None else None
        if probe:
            name, value = probe
            label = cls.param[name].label
            _set_control(page, label, value)
            after_text = _settled_text(page, before_text)
            assert after_text != before_text, (
                f"setting {name}={value!r} changed none of the view's text"
            )
        else:
            before_px = page.screenshot()
            select = page.locator("select").first
            assert select.count(), (
                "no probe declared and no select to change: declare probe = (param, value)"
            )
            options = select.locator("option").all_text_contents()
            current = select.input_value()
            other = next(o for o in options if o != current)
            select.select_option(label=other)
            after_text = _settled_text(page, before_text, timeout_s=10)
            assert after_text != before_text or page.screenshot() != before_px, (
                "changing the first select changed nothing"
            )
        page.wait_for_timeout(1000)
        page.screenshot(path=str(SHOTS / f"{slug}-after-probe.png"), full_page=True)
        assert not errors, f"console errors: {errors}"
    finally:
        page.close()

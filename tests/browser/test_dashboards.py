"""Every dashboard the index page lists, in headless Chromium (Playwright).

For each dashboard: it renders with no browser console error, one control changed in the page
changes what the view shows, every plotted mark lies inside its plot's axis ranges, and a
screenshot is saved under ``test-artifacts/screenshots/``. A dashboard whose Viewer declares
``source_probe`` (see :class:`widgets.base.DomainViewer`) also gets its data source switched in
the page, after which every mark must still lie inside its plot's ranges (plots re-range when
their data changes). The server's log lines written while these tests run hold no traceback,
no ERROR and no Bokeh/Panel/HoloViews warning (such as W-1005).

Dashboards added later are covered without editing this file: they are read from the index page
(``GET /`` as a browser asks for it). The control to change is the Viewer's ``probe``
(``probe = ("param_name", new_value)``): after setting it, the text the page's plots and panes
show (titles, Markdown/HTML, the text of each Bokeh model) must change. A Viewer without a probe
gets its first select set to another option, and then a change of either that text or the
page's pixels is accepted.

The range check reads Bokeh's own models in the page (:data:`RANGES_JS`): for each plot, its
``x_range``/``y_range`` start and end, and for each visible glyph renderer the columns of its
data source that the glyph's x-like fields (``x``, ``x0``, ``x1``, ``left``, ``right``, ``xs``)
and y-like fields (``y``, ``y0``, ``y1``, ``top``, ``bottom``, ``ys``) name. NaN is ignored
(a gap), a categorical axis is skipped, and a mark may overshoot by 0.5 % of the range.
:func:`test_range_check_fails_on_marks_off_their_ranges` shows on small pages served here that
the check fails when a plot keeps its first ranges after its data changed and passes when it
re-ranges; :func:`test_rerange_keeps_marks_inside_after_a_source_switch` holds
:func:`widgets.base.rerange` to it.

Every page opens in one browser context, :func:`dashboard_context`: signing in to the
dashboards happens there, once.
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
VIEWPORT = {"width": 1400, "height": 900}
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# Messages Chromium itself logs at "error" level that say nothing about the page.
BENIGN = (re.compile(r"GL Driver Message", re.I), re.compile(r"favicon\.ico", re.I))
# Server log lines that ordinary use must not produce.
LOG_PROBLEMS = re.compile(
    r"Traceback \(most recent call last\)"
    r"|\b[WE]-\d{4}\b"  # Bokeh's validation warnings and errors (W-1005 ...)
    r"|\b(ERROR|CRITICAL)\b"
    r"|\bWARNING (bokeh|panel|holoviews|param)\b"
)
RANGE_TOLERANCE = 0.005  # of the range's span
SETTLE_S = 60.0

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

# Every glyph's marks against its plot's ranges: {checked: fields checked, problems: [text]}.
RANGES_JS = """(tol) => {
  const X = ["x", "x0", "x1", "left", "right", "xs"];
  const Y = ["y", "y0", "y1", "top", "bottom", "ys"];
  const isNum = (v) => typeof v === "number";
  const column = (source, name) => {
    const data = source.data;
    return data instanceof Map ? data.get(name) : data[name];
  };
  const numbers = (values, out) => {  // flattened, NaN dropped (xs/ys hold arrays of arrays)
    if (values == null) return out;
    if (isNum(values)) { if (!Number.isNaN(values)) out.push(values); return out; }
    if (typeof values === "string" || typeof values.length !== "number") return out;
    for (let i = 0; i < values.length; i++) numbers(values[i], out);
    return out;
  };
  const fmt = (v) => Number(v).toPrecision(5);
  const problems = [];
  let checked = 0;
  for (const doc of (window.Bokeh ? Bokeh.documents : [])) {
    for (const plot of doc.all_models) {
      if (!plot.x_range || !plot.y_range || !Array.isArray(plot.renderers)) continue;
      if (plot.visible === false) continue;
      const name = (plot.title && plot.title.text) || plot.id;
      for (const [axis, range, fields] of [["x", plot.x_range, X], ["y", plot.y_range, Y]]) {
        if (!isNum(range.start) || !isNum(range.end)) continue;  // a categorical axis
        if (!Number.isFinite(range.start) || !Number.isFinite(range.end)) continue;
        const lo = Math.min(range.start, range.end), hi = Math.max(range.start, range.end);
        const pad = tol * Math.max(hi - lo, 1e-12);
        for (const r of plot.renderers) {
          if (!r.glyph || !r.data_source || r.visible === false) continue;
          for (const f of fields) {
            const prop = r.glyph.properties[f];
            if (!prop) continue;
            const spec = prop.get_value();
            let values = spec;
            if (spec && typeof spec === "object" && "field" in spec) {
              values = column(r.data_source, spec.field);
            } else if (spec && typeof spec === "object" && "value" in spec) {
              values = spec.value;
            }
            const vals = numbers(values, []);
            if (!vals.length) continue;
            checked += 1;
            let n = 0, min = Infinity, max = -Infinity;
            for (const v of vals) {
              if (v < lo - pad || v > hi + pad) { n += 1; min = Math.min(min, v); max = Math.max(max, v); }
            }
            if (n) {
              const label = r.name ? `${r.name} (${r.glyph.type})` : r.glyph.type;
              problems.push(`plot "${name}": ${label} ${f} from ${fmt(min)} to ` +
                `${fmt(max)} (${n} of ${vals.length} marks) outside its ${axis} range ` +
                `[${fmt(lo)}, ${fmt(hi)}]`);
            }
          }
        }
      }
    }
  }
  return {checked, problems};
}"""


def dashboard_slugs(base_url: str) -> list[str]:
    page = httpx.get(base_url + "/", headers={"Accept": "text/html"}, timeout=60).text
    block = re.search(r'<ul id="dashboards">(.*?)</ul>', page, re.S)
    assert block, "the index page has no dashboard list"
    return re.findall(r'href="\./([^"]+)"', block.group(1))


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _needs_sign_in(server) -> bool:
    """True when the server sends a browser without a session to its sign-in page."""
    slugs = dashboard_slugs(server.url)
    r = httpx.get(f"{server.url}/{slugs[0]}", follow_redirects=False, timeout=60)
    return r.status_code in (302, 303) and "/login" in r.headers.get("location", "")


@pytest.fixture(scope="module")
def dashboard_context(browser, server):
    """The one browser context every page of this module opens in.

    Signing in happens here and only here: when the dashboards are behind the server's
    ``/login``, the context gets a ``user`` session cookie (:meth:`PrismServer.login_cookies`).
    """
    context = browser.new_context(viewport=VIEWPORT)
    if _needs_sign_in(server):
        context.add_cookies(server.login_cookies("user"))
    yield context
    context.close()


@pytest.fixture(scope="module", autouse=True)
def api_examples_posted(server):
    """Every POST example of the OpenAPI document, sent once with a ``user`` key, so that the
    dashboards that show what the API was sent (tracks, the book, the archive) have data: a
    dashboard's view of the API is checked on real API state, whatever the domain."""
    with server.client("user") as api:
        doc = api.get("/api/v1/openapi.json").json()
        for path, ops in doc["paths"].items():
            op = ops.get("post")
            body = op and op.get("requestBody", {}).get("content", {}).get("application/json", {})
            if body and "example" in body:
                r = api.post(path, json=body["example"], timeout=120)
                assert r.status_code in (200, 403), (
                    f"POST {path} example: {r.status_code} {r.text[:300]}"
                )


@pytest.fixture(scope="module", autouse=True)
def clean_shots():
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)


class ServerLog:
    """The session server's log file, read from an offset (the lines a test caused)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = self.mark()

    def mark(self) -> int:
        return self.path.stat().st_size

    def since(self, offset: int) -> str:
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def problems(self, offset: int) -> list[str]:
        """Problem lines since ``offset``; a traceback is shown by its exception line."""
        lines = self.since(offset).splitlines()
        found = []
        for i, line in enumerate(lines):
            if not LOG_PROBLEMS.search(line):
                continue
            if line.startswith("Traceback"):
                end = next((x for x in lines[i + 1 :] if x and not x[0].isspace()), "")
                line = f"{line} ... {end}"
            found.append(line[:400])
        return found


@pytest.fixture(scope="module", autouse=True)
def server_log(server) -> ServerLog:
    assert server.log_path is not None and server.log_path.exists()
    return ServerLog(server.log_path)


# ---------------------------------------------------------------- page helpers


def _viewer_class(slug: str):
    import importlib

    from widgets.registry import dashboards

    for d in dashboards():
        if d.slug == slug:
            module, _, name = d.viewer.partition(":")
            return getattr(importlib.import_module(module), name)
    return None


def _open(context, url: str):
    page = context.new_page()
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


def _quiet_text(page, timeout_s: float = SETTLE_S, still_s: float = 2.0) -> str:
    """The page's text once it has stopped changing for ``still_s`` and nothing is computing."""
    deadline = time.time() + timeout_s
    text, since = page.evaluate(VIEW_TEXT_JS), time.time()
    while time.time() < deadline:
        page.wait_for_timeout(250)
        now = page.evaluate(VIEW_TEXT_JS)
        if now != text:
            text, since = now, time.time()
        elif time.time() - since >= still_s and "Computing" not in text:
            break
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


def marks_off_range(page, timeout_s: float = 15.0) -> tuple[int, list[str]]:
    """``(fields checked, problems)`` of :data:`RANGES_JS`, polled until no problem is left or
    ``timeout_s`` passes (a plot may re-range a moment after its data arrives)."""
    deadline = time.time() + timeout_s
    while True:
        got = page.evaluate(RANGES_JS, RANGE_TOLERANCE)
        if not got["problems"] or time.time() > deadline:
            return got["checked"], got["problems"]
        page.wait_for_timeout(500)


def switch_source(page, label: str, value) -> None:
    """Set the data-source control and wait until the page has shown the new data."""
    before = _quiet_text(page)
    _set_control(page, label, value)
    after = _settled_text(page, before)
    assert after != before, f"switching {label!r} to {value!r} changed none of the view's text"
    _quiet_text(page)


# ---------------------------------------------------------------- tests


def test_index_lists_dashboards(server):
    slugs = dashboard_slugs(server.url)
    assert "system" in slugs


def test_index_page_has_no_console_errors(server, dashboard_context):
    page, errors = _open(dashboard_context, server.url + "/")
    page.screenshot(path=str(SHOTS / "index.png"), full_page=True)
    page.close()
    assert not errors, errors


@pytest.mark.timeout(1200)  # one test walks every dashboard; each takes ~10-60 s on a busy machine
def test_every_dashboard_renders_and_reacts(server, dashboard_context, server_log):
    """One test walks every dashboard the index lists (new ones included), collecting failures."""
    slugs = dashboard_slugs(server.url)
    assert slugs
    failures: list[str] = []
    for slug in slugs:
        mark = server_log.mark()
        try:
            _check_dashboard(server.url, dashboard_context, slug)
        except Exception as exc:  # report every dashboard, not only the first broken one
            failures.append(f"/{slug}: {type(exc).__name__}: {exc}"[:3000])
        time.sleep(1.0)  # what closing the tab logs (a closed socket, a discarded session)
        logged = server_log.problems(mark)
        if logged:
            failures.append(f"/{slug}: the server logged\n    " + "\n    ".join(logged[:10]))
    print(f"dashboards checked: {slugs}; screenshots in {SHOTS}")
    assert not failures, "\n".join(failures)


def _check_dashboard(base: str, context, slug: str) -> None:
    page, errors = _open(context, f"{base}/{slug}")
    try:
        _wait_rendered(page)
        assert not errors, f"console errors after load: {errors}"
        page.screenshot(path=str(SHOTS / f"{slug}.png"), full_page=True)
        before_text = page.evaluate(VIEW_TEXT_JS)
        assert before_text.strip(), "the page shows no text at all"
        _, problems = marks_off_range(page)
        assert not problems, "marks off their plot's ranges after load:\n" + "\n".join(problems)
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
        source = getattr(cls, "source_probe", None) if cls is not None else None
        if source:
            # A probe that already switched to this source leaves nothing to switch.
            switched = probe is not None and tuple(probe) == tuple(source)
            _check_source_switch(page, slug, cls.param[source[0]].label, source[1], switched)
        assert not errors, f"console errors: {errors}"
    finally:
        page.close()


def _check_source_switch(page, slug: str, label: str, value, switched: bool = False) -> None:
    if switched:
        _quiet_text(page)
    else:
        switch_source(page, label, value)
    page.screenshot(path=str(SHOTS / f"{slug}-after-source.png"), full_page=True)
    checked, problems = marks_off_range(page)
    assert checked, (
        f"after switching {label!r} to {value!r} the page plots no mark, so nothing was checked: "
        "declare a source_probe whose data the page plots"
    )
    assert not problems, (
        f"after switching {label!r} to {value!r}, marks lie off their plot's ranges:\n"
        + "\n".join(problems)
    )


# ---------------------------------------------------------------- the range check itself


def _demo_app(mode: str):
    """A plot whose data source switches between two scales (the bug the check is for).

    ``mode``: ``"fixed"`` keeps the ranges of the first data (HoloViews' default for a
    DynamicMap), ``"framewise"`` re-ranges each element with its data (set here, by hand),
    ``"rerange"`` is what the dashboards use, :func:`widgets.base.rerange`.
    """
    import holoviews as hv
    import numpy as np
    import panel as pn

    from widgets.base import rerange

    source = pn.widgets.Select(options=["small", "large"], value="small")
    source.label = "Source"

    def plot(source: str):
        scale = 1.0 if source == "small" else 1000.0
        x = np.linspace(0.0, 10.0 * scale, 50)
        y = np.sin(x / scale) * scale + 2 * scale
        y[7] = np.nan  # a gap: ignored by the check
        return (hv.Curve((x, y), "x", "y") * hv.Scatter((x[::5], y[::5]), "x", "y")).opts(
            title=f"{source} data", height=300, width=500
        )

    dmap = hv.DynamicMap(pn.bind(plot, source))
    if mode == "framewise":
        dmap = dmap.map(lambda e: e.opts(framewise=True), hv.Element)
    elif mode == "rerange":
        dmap = rerange(dmap)
    return pn.Row(source, dmap)


DEMO_MODES = ("fixed", "framewise", "rerange")


@pytest.fixture(scope="module")
def demo_server():
    """The three :func:`_demo_app` pages (``/fixed``, ``/framewise``, ``/rerange``) served
    from this process on a free loopback port."""
    import panel as pn

    from tests.serverutil import free_port

    port = free_port()
    server = pn.serve(
        {mode: (lambda mode=mode: _demo_app(mode)) for mode in DEMO_MODES},
        port=port,
        address="127.0.0.1",
        websocket_origin=[f"127.0.0.1:{port}"],
        show=False,
        threaded=True,
        start=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/fixed", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.mark.timeout(300)
def test_range_check_fails_on_marks_off_their_ranges(demo_server, dashboard_context):
    """The check fails when a plot keeps its first ranges after its source switched (and
    names the plot, the glyphs and the fields), and passes when the plot re-ranges."""
    page, errors = _open(dashboard_context, demo_server + "/fixed")
    try:
        _wait_rendered(page)
        checked, problems = marks_off_range(page)
        assert checked >= 4 and not problems, problems  # both glyphs, x and y, in range at first
        switch_source(page, "Source", "large")
        checked, problems = marks_off_range(page, timeout_s=3)
        assert problems, "the check passed although the plot kept the small data's ranges"
        text = "\n".join(problems)
        for part in ('plot "large data"', "Line x", "Line y", "Scatter x", "Scatter y"):
            assert part in text, f"{part!r} missing from the report:\n{text}"
        assert not errors, errors
    finally:
        page.close()

    _demo_switch_keeps_marks_inside(dashboard_context, demo_server, "framewise")


@pytest.mark.timeout(300)
def test_rerange_keeps_marks_inside_after_a_source_switch(demo_server, dashboard_context):
    """:func:`widgets.base.rerange`, the dashboards' one way to re-range, on an overlay in a
    DynamicMap (the shape of the finance frontier plot)."""
    _demo_switch_keeps_marks_inside(dashboard_context, demo_server, "rerange")


def _demo_switch_keeps_marks_inside(context, base: str, mode: str) -> None:
    page, errors = _open(context, f"{base}/{mode}")
    try:
        _wait_rendered(page)
        _check_source_switch(page, f"demo-{mode}", "Source", "large")
        assert not errors, errors
    finally:
        page.close()


def test_server_log_of_the_browser_run_is_clean(server_log):
    """Nothing since this module started: no traceback, no ERROR, no Bokeh warning."""
    time.sleep(1.0)
    problems = server_log.problems(server_log.start)
    assert not problems, "the server logged during the browser tests:\n" + "\n".join(problems)

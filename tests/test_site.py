"""The documentation site, built and read in a real headless browser without network.

``mkdocs build`` (every notebook executed, docs/hooks.py) writes the site to a temporary folder;
``http.server`` serves it on 127.0.0.1 and Chromium, driven by selenium through Debian's
chromedriver, opens every page with all other traffic sent to a closed proxy port: like a reader
on a train, the site must bring its own scripts, math and fonts. Checked: no page logs a console
error (a blocked or missing resource is one), no TeX error, no raw ``$...$`` left in the text;
every chapter shows typeset math and at least one figure that decodes; every image decodes; every
link inside the site reaches a page (and its ``#anchor`` exists); search finds "FedAvg".

Needs the docs extra (``pip install -e ".[docs]"``), ``chromium`` and ``chromium-driver`` (Debian)
and the data sets the notebooks name; without them the tests are skipped with the reason, and
they fail when ``CI=true``.
"""

from __future__ import annotations

import functools
import html.parser
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import nbformat
import pytest
from conftest import require_dataset

ROOT = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI", "").lower() == "true"
DOCS_MODULES = ["mkdocs", "material", "mkdocs_jupyter", "mkdocstrings", "mathjax", "selenium"]


def _unavailable(reason: str) -> None:
    if CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def _require_tools() -> tuple[str, str]:
    missing = [m for m in DOCS_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        _unavailable(f'the docs extra is missing ({", ".join(missing)}): pip install -e ".[docs]"')
    browser = next(filter(None, map(shutil.which, ["chromium", "chromium-browser"])), None)
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        _unavailable("no headless browser: apt-get install chromium chromium-driver")
    for path in sorted((ROOT / "tutorials").rglob("*.ipynb")):
        if ".ipynb_checkpoints" not in path.parts:
            for name in nbformat.read(path, 4).metadata.get("minifed", {}).get("requires", []):
                require_dataset(name)
    return browser, driver


# --------------------------------------------------------------------------------------------
# Fixtures: the built site, a local server, a browser without network


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    _require_tools()
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    print(f"mkdocs build: {time.perf_counter() - start:.0f} s")
    log = proc.stdout + proc.stderr
    failed = log.find("notebooks failed to execute")  # docs/hooks.py names each notebook
    assert proc.returncode == 0, log[failed:] if failed >= 0 else log[-8000:]
    assert "WARNING" not in log, "\n".join(ln for ln in log.splitlines() if "WARNING" in ln)
    return out


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # not a page the browser left
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def base_url(site):
    server = _Server(("127.0.0.1", 0), functools.partial(_Quiet, directory=site))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(site):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _require_tools()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in [
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
        "--window-size=1280,900", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-default-apps",
        # no network: every request goes to a closed port, except those to the local server
        "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ]:  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


# --------------------------------------------------------------------------------------------
# Reading a page

# Text outside code, scripts and typeset math that still looks like TeX: $x$, $$x$$, \(x\), \[x\].
RAW_MATH_JS = r"""
const skip = "PRE, CODE, SCRIPT, STYLE, TEXTAREA, MJX-CONTAINER, MJX-ASSISTIVE-MML, svg";
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const raw = [];
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  if (node.parentElement.closest(skip)) continue;
  const text = node.textContent;
  if (/\$[^$\s][^$]*\$|\\\(|\\\[/.test(text)) raw.push(text.trim().slice(0, 120));
}
return raw;
"""

PAGE_JS = r"""
const done = arguments[arguments.length - 1];
const ready = window.MathJax && MathJax.startup ? MathJax.startup.promise : Promise.resolve();
ready.then(() => Promise.all(Array.from(document.images, img =>
    img.decode().then(() => null, () => img.currentSrc.slice(0, 80)))))
  .then(broken => done({
    math: document.querySelectorAll("mjx-container").length,
    tex_errors: Array.from(document.querySelectorAll("mjx-merror"),
                           e => e.getAttribute("data-mjx-error") || e.textContent),
    broken_images: broken.filter(x => x !== null),
    images: Array.from(document.images).filter(img => img.naturalWidth > 0).length,
    figures: Array.from(document.querySelectorAll(".jp-OutputArea-output img"))
      .filter(img => img.complete && img.naturalWidth > 0).length,
    links: Array.from(document.querySelectorAll("a[href]"), a => a.href),
  }), e => done({error: String(e)}));
"""


def _pages(site: Path) -> list[str]:
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                  if p.name != "404.html" and "assets" not in p.parts)  # fmt: skip


def _chapters(site: Path) -> list[str]:
    return [p for p in _pages(site) if re.fullmatch(r"tutorials/\d\d_[^/]+\.html", p)]


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        self.ids |= {v for k, v in attrs if k in ("id", "name") and v}


@functools.cache
def _ids(path: Path) -> frozenset[str]:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8"))
    return frozenset(parser.ids)


@pytest.fixture(scope="module")
def visited(site, base_url, browser) -> dict[str, dict]:
    """Every page opened once in the browser: what it shows and what it logged."""
    results = {}
    browser.get_log("browser")  # start from an empty log
    for page in _pages(site):
        browser.get(base_url + page)
        result = browser.execute_async_script(PAGE_JS)
        assert "error" not in result, (page, result)
        result["raw_math"] = browser.execute_script(RAW_MATH_JS)
        result["console"] = [e["message"] for e in browser.get_log("browser")
                             if e["level"] in ("SEVERE", "WARNING")]  # fmt: skip
        results[page] = result
    return results


# --------------------------------------------------------------------------------------------
# The checks


def test_site_has_every_page(site):
    pages = _pages(site)
    chapters = _chapters(site)
    assert len(chapters) == len(list((ROOT / "tutorials").glob("[0-9][0-9]_*.ipynb"))) >= 10
    solutions = [p for p in pages if p.startswith("tutorials/solutions/")]
    assert len(solutions) == len(list((ROOT / "tutorials" / "solutions").glob("*.ipynb")))
    for name in ("notation", "glossary", "bibliography"):
        if (ROOT / "tutorials" / f"{name}.md").exists():
            assert f"tutorials/{name}.html" in pages
    api = "models data dataset federations partition algorithms simulation plot".split()
    expected = [
        "index.html",
        "reproducing-fedavg.html",
        "reproducing-fedprox.html",
        "comparing-algorithms.html",
        "performance.html",
    ] + [f"api/{m}.html" for m in api]
    assert set(expected) <= set(pages)
    assert "FedAvg" in (site / "api" / "algorithms.html").read_text(encoding="utf-8")


def test_no_page_logs_a_console_error(visited):
    errors = {page: r["console"] for page, r in visited.items() if r["console"]}
    assert not errors, errors


def test_math_is_typeset_everywhere(site, visited):
    for page in _chapters(site):
        assert visited[page]["math"] > 0, f"{page}: no typeset math"
    raw = {page: r["raw_math"] for page, r in visited.items() if r["raw_math"]}
    assert not raw, f"raw TeX left in the text: {raw}"
    errors = {page: r["tex_errors"] for page, r in visited.items() if r["tex_errors"]}
    assert not errors, f"TeX errors: {errors}"


def test_every_chapter_shows_a_figure_and_every_image_decodes(site, visited):
    for page in _chapters(site):
        assert visited[page]["figures"] >= 1, f"{page}: no figure"
    assert visited["index.html"]["images"] >= 1, "the home page shows no figure"
    broken = {page: r["broken_images"] for page, r in visited.items() if r["broken_images"]}
    assert not broken, broken


def test_internal_links_resolve(site, base_url, visited):
    problems = set()
    for page, result in visited.items():
        for href in result["links"]:
            url, fragment = urldefrag(href)
            if not url.startswith(base_url):
                continue  # a link out of the site: not followed (the browser has no network)
            rel = urlsplit(url).path[1:] or "index.html"
            target = site / rel
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                problems.add(f"{page} -> {rel}: not found")
            elif fragment and target.suffix == ".html" and fragment not in _ids(target):
                problems.add(f"{page} -> {rel}#{fragment}: no such anchor")
    assert not problems, "\n".join(sorted(problems))


def test_links_are_served(base_url, visited):
    """The same links through the server, as the browser fetches them (one request each)."""
    urls = {urldefrag(h)[0] for r in visited.values() for h in r["links"]}
    for url in sorted(u for u in urls if u.startswith(base_url)):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200, url
        except urllib.error.HTTPError as exc:
            pytest.fail(f"{url}: HTTP {exc.code}")


def test_search_finds_fedavg(base_url, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(base_url + "index.html")
    browser.find_element(By.CSS_SELECTOR, "label.md-search__icon, .md-search__input").click()
    box = WebDriverWait(browser, 10).until(EC.element_to_be_clickable((By.NAME, "query")))
    box.send_keys("FedAvg")
    results = WebDriverWait(browser, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".md-search-result__item") or None
    )
    hrefs = [a.get_attribute("href") for a in browser.find_elements(
        By.CSS_SELECTOR, ".md-search-result__item a")]  # fmt: skip
    assert results and hrefs and all(h.startswith(base_url) for h in hrefs), hrefs
    titles = browser.find_element(By.CSS_SELECTOR, ".md-search-result").text
    assert "FedAvg" in titles, titles[:500]
    console = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not console, console

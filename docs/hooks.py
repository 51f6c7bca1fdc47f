"""MkDocs hooks that assemble the course site from the repository itself (see mkdocs.yml).

Nothing is copied into docs/: the pages are read where they live.

- ``tutorials/`` keeps its layout, so the chapters' links to ``notation.md``, ``glossary.md#...``,
  ``bibliography.md#...`` and ``solutions/NN_solutions.ipynb`` work in the site as in the
  repository. Every notebook is executed first (``docs/execute.py``), so the pages show every
  figure and output; an executed copy is reused while the notebook and the library are unchanged
  (``build/docs-cache/``). A notebook that fails stops the build with its traceback.
- The home page and the results pages are the README's own sections (with the full tables of
  ``figures/*.md``), the API reference is mkdocstrings over the docstrings.
- MathJax is copied from the ``django-static-mathjax`` package (MathJax 3.2.2, no Django needed):
  the site loads no script, style sheet or font from elsewhere, and the build fails if a page
  would.

Environment: ``MINIFED_DOCS_JOBS`` (notebooks executed at once, default 1),
``MINIFED_DOCS_EXECUTE=0`` (render notebooks without running them, for a quick look),
``MINIFED_DOCS_CACHE=0`` (execute every notebook again).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import posixpath
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.minifed")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


execute = _load("execute")  # docs/execute.py: runs one notebook; where its copy is kept
ROOT, CACHE = execute.ROOT, execute.CACHE
TUTORIALS = ROOT / "tutorials"
SKIP_DIRS = {"__pycache__"}  # and hidden folders (.ipynb_checkpoints)
REFERENCE_PAGES = ["notation.md", "glossary.md", "bibliography.md"]  # included when they exist
API = [
    "models", "data", "dataset", "federations", "partition", "algorithms", "simulation",
    "metrics", "applications", "privacy", "plot",
]  # fmt: skip
# (page, title, the README section it shows, the full table appended to it)
README_PAGES = [
    ("reproducing-fedavg.md", "Reproducing FedAvg", "Reproducing the FedAvg paper",
     "fedavg_mnist_table.md"),
    ("reproducing-fedprox.md", "Reproducing FedProx", "Reproducing the FedProx paper",
     "fedprox_synthetic_table.md"),
    ("comparing-algorithms.md", "Algorithms on non-IID MNIST", "Comparing the algorithms",
     "compare_mnist_table.md"),
    ("applications.md", "Applications", "Applications", "applications_table.md"),
    ("privacy.md", "Privacy", "Privacy", "privacy_utility_table.md"),
    ("performance.md", "Performance", "Performance", None),
]  # fmt: skip


def _mathjax_dir() -> Path:
    try:
        import mathjax  # the django-static-mathjax package: static files only
    except ImportError as exc:
        raise PluginError('MathJax is missing: pip install -e ".[docs]"') from exc
    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def _notebooks(folder: Path) -> list[str]:
    return sorted(p.relative_to(ROOT).as_posix() for p in folder.glob("*.ipynb"))


# ---------------------------------------------------------------------------------------------
# Navigation


def on_config(config):
    course = _notebooks(TUTORIALS)
    solutions = _notebooks(TUTORIALS / "solutions")
    if solutions:
        course.append({"Solutions": solutions})
    course += [f"tutorials/{name}" for name in REFERENCE_PAGES if (TUTORIALS / name).exists()]
    config["nav"] = [
        {"Home": "index.md"},
        {"Course": course},
        {"Results": [{title: page} for page, title, _, _ in README_PAGES]},
        {"API reference": [{f"minifed.{name}": f"api/{name}.md"} for name in API]},
    ]
    return config


# ---------------------------------------------------------------------------------------------
# Pages from the README


def _promote(markdown: str) -> str:
    """Every heading one level up (``## A`` -> ``# A``), outside code fences."""
    out, fence = [], False
    for line in markdown.splitlines():
        fence ^= line.lstrip().startswith("```")
        out.append(line[1:] if not fence and re.match(r"##+ ", line) else line)
    return "\n".join(out)


def _source_of(link: re.Match) -> str:
    """``](site/tutorials/01_x.html`` as ``](tutorials/01_x.ipynb``: a link of the README to a
    built page, as the link to its source that mkdocs resolves in the site."""
    stem, generated = link[1].removesuffix(".html"), [p for p, *_ in README_PAGES]
    generated += ["index.md"] + [f"api/{name}.md" for name in API]
    for source in (f"{stem}.ipynb", f"{stem}.md"):
        if source in generated or (ROOT / source).is_file():
            return f"]({source}"
    return f"]({link[1]}"


def _readme_pages() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    text = re.sub(r"\]\(site/([^)#]*)", _source_of, text)  # the README's links to the site
    intro, *parts = re.split(r"^(?=## )", text, flags=re.MULTILINE)
    sections = {part.split("\n", 1)[0][3:].strip(): part for part in parts}
    pages, used = {}, set()
    for page, _title, heading, table in README_PAGES:
        found = [name for name in sections if name.startswith(heading)]
        if len(found) != 1:
            raise PluginError(f"README.md has no single section '## {heading}...' for {page}")
        used.add(found[0])
        body = _promote(sections[found[0]])
        if table:
            lines = (ROOT / "figures" / table).read_text(encoding="utf-8").splitlines()
            lines = [f"##{line}" if line.startswith("#") else line for line in lines]
            body += f"\n\n## Every recorded run\n\nFrom `figures/{table}`.\n\n" + "\n".join(lines)
        pages[page] = body + "\n"
    home = [intro] + [part for name, part in sections.items() if name not in used]
    pages["index.md"] = "".join(home)
    return pages


# ---------------------------------------------------------------------------------------------
# API reference


def _api_page(name: str) -> str:
    module = f"minifed.{name}"
    lines = [f"# `{module}`", "", f"::: {module}", "    options:", "      show_root_heading: false"]
    package = ROOT / "minifed" / name
    submodules = sorted(
        p.stem for p in package.glob("*.py") if package.is_dir() and not p.stem.startswith("_")
    )
    if submodules:
        lines += ["", "## Modules", ""]
        for sub in submodules:
            lines += [f"::: {module}.{sub}", "    options:", "      members: false",
                      "      heading_level: 3", ""]  # fmt: skip
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Executed notebooks


def _run(src: Path, dst: Path) -> tuple[Path, float, float, str | None]:
    """Execute ``src`` into ``dst`` in a child process: wall seconds, CPU seconds (the child's
    and its kernel's), and the error if a cell failed."""
    start = time.perf_counter()
    cmd = [sys.executable, str(ROOT / "docs" / "execute.py"), str(src), str(dst)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    error = None if proc.returncode == 0 else (stderr.strip() or f"exit {proc.returncode}")
    return src, time.perf_counter() - start, usage.ru_utime + usage.ru_stime, error


def _executed(notebooks: list[Path]) -> dict[Path, Path]:
    """The folder holding each notebook's executed copy at its path relative to the repository
    (the repository itself with ``MINIFED_DOCS_EXECUTE=0``), executing those not in the cache
    (``MINIFED_DOCS_JOBS`` at a time)."""
    if os.environ.get("MINIFED_DOCS_EXECUTE", "1") == "0":
        log.warning("MINIFED_DOCS_EXECUTE=0: the notebooks are shown without outputs")
        return {nb: ROOT for nb in notebooks}
    CACHE.mkdir(parents=True, exist_ok=True)
    digest = execute.library_digest()
    copies = {nb: execute.cached_copy(nb, digest) for nb in notebooks}
    if os.environ.get("MINIFED_DOCS_CACHE", "1") == "0":
        for copy in copies.values():
            copy.unlink(missing_ok=True)
    todo = [nb for nb, copy in copies.items() if not copy.exists()]
    # One at a time by default: the notebooks already use both cores (BLAS, worker processes),
    # and two at once took 291 s against 182 s one after the other on two cores.
    jobs = int(os.environ.get("MINIFED_DOCS_JOBS", "1"))
    if todo:
        log.info(f"executing {len(todo)} of {len(notebooks)} notebooks, {jobs} at a time")
    start, failures = time.perf_counter(), []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for src, seconds, cpu, error in pool.map(lambda nb: _run(nb, copies[nb]), todo):
            name = src.relative_to(ROOT).as_posix()
            state = "FAILED" if error else "executed"
            log.info(f"{state} {name} in {seconds:.0f} s ({cpu:.0f} s of CPU)")
            if error:
                failures.append(f"{name}:\n{error[-3000:]}")
    if todo:
        log.info(f"executed {len(todo)} notebooks in {time.perf_counter() - start:.0f} s")
    if failures:
        raise PluginError("notebooks failed to execute:\n\n" + "\n\n".join(failures))
    used = {CACHE / copy.relative_to(CACHE).parts[0] for copy in copies.values()}
    for folder in CACHE.iterdir():  # keep only the copies this build used
        if folder.is_dir() and folder not in used:
            shutil.rmtree(folder, ignore_errors=True)
    return {nb: CACHE / copy.relative_to(CACHE).parts[0] for nb, copy in copies.items()}


# ---------------------------------------------------------------------------------------------
# Files of the site


def _repo_file(rel: str, config) -> File:
    return File(rel, str(ROOT), config["site_dir"], config["use_directory_urls"])


@event_priority(100)  # before mkdocs-jupyter, which wraps the notebooks found here
def on_files(files: Files, config) -> Files:
    for path in sorted(TUTORIALS.rglob("*")):  # notation.md, ..., images: as they are
        rel = path.relative_to(ROOT)
        hidden = any(part.startswith(".") or part in SKIP_DIRS for part in rel.parts)
        if path.is_file() and not hidden and path.suffix not in {".ipynb", ".py", ".pyc"}:
            files.append(_repo_file(rel.as_posix(), config))
    notebooks = [ROOT / p for p in _notebooks(TUTORIALS) + _notebooks(TUTORIALS / "solutions")]
    for nb, folder in _executed(notebooks).items():  # a real File: mkdocs-jupyter needs src_dir
        uri = nb.relative_to(ROOT).as_posix()
        files.append(File(uri, str(folder), config["site_dir"], config["use_directory_urls"]))
    for path in sorted((ROOT / "figures").glob("*.png")):
        files.append(_repo_file(path.relative_to(ROOT).as_posix(), config))
    for page, content in _readme_pages().items():
        files.append(File.generated(config, page, content=content))
    for name in API:
        files.append(File.generated(config, f"api/{name}.md", content=_api_page(name)))
    mathjax = _mathjax_dir()
    for path in sorted(mathjax.rglob("*")):
        rel = path.relative_to(mathjax).as_posix()
        bundle = "/" not in rel and rel.endswith(".js") and rel != "tex-mml-chtml.js"
        if path.is_file() and not bundle and not rel.startswith("output/svg"):
            uri = f"assets/mathjax/{rel}"
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


# ---------------------------------------------------------------------------------------------
# Notebook pages: links between pages, and no script from a CDN

NBCONVERT_MATHJAX = re.compile(
    r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S
)
NBCONVERT_MERMAID = re.compile(
    r'<script type="module">(?:(?!</script>).)*?mermaid.*?</script>', re.S
)
LINK = re.compile(r'(?P<attr>href|src)="(?P<url>[^"]*)"')
EXTERNAL = re.compile(r'<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)="(?:https?:)?//', re.I)


def _relink(html: str, page, files: Files) -> str:
    """Links to other files of the repository (``notation.md#w``, ``05_fedavg.ipynb``,
    ``../figures/demo.png``) as links to their pages and files in the site."""
    base = posixpath.dirname(page.file.src_uri)

    def fix(match: re.Match) -> str:
        url = match["url"]
        if not url or url.startswith(("#", "/", "data:")) or re.match(r"[a-z][a-z0-9+.-]*:", url):
            return match[0]
        path, _, fragment = url.partition("#")
        target = files.get_file_from_path(posixpath.normpath(posixpath.join(base, path)))
        if target is None:
            log.warning(f"{page.file.src_uri}: link to {url!r}, which is not part of the site")
            return match[0]
        new = target.url_relative_to(page.file) + (f"#{fragment}" if fragment else "")
        return f'{match["attr"]}="{new}"'

    return LINK.sub(fix, html)


def on_page_content(html: str, page, config, files: Files) -> str:
    if page.file.src_uri.endswith(".ipynb"):
        html = NBCONVERT_MERMAID.sub("", NBCONVERT_MATHJAX.sub("", html))
        html = _relink(html, page, files)
    return html


def on_post_page(output: str, page, config) -> str:
    if EXTERNAL.search(output):  # the site is read offline: every resource comes with it
        raise PluginError(f"{page.file.src_uri}: the page loads a resource from another site")
    return output

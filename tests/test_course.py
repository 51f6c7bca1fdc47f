"""The course's conventions (issue 11, "the course as a book"), checked mechanically.

The documents are the chapters ``tutorials/NN_*.ipynb``, the solutions
``tutorials/solutions/NN_solutions.ipynb`` and the reference pages ``tutorials/*.md`` (notation,
glossary, bibliography). Every test is parametrized by document, and every failure lists the
document, the cell (index and id) and the offending text, so that it can be fixed from the
message alone. Nothing is executed: the whole file runs in about a second.

Rules
-----
1. **Format.** nbformat 4.5: every cell has an ``id`` (unique, ``[A-Za-z0-9_-]{1,64}``), the
   notebook validates against nbformat's schema, code cells are stored without outputs and with
   ``execution_count`` None.
2. **Title.** The first cell is markdown. A chapter's first line is ``# N Title`` with ``N`` its
   number (``# 5 Federated averaging``; ``# 05 ...`` and ``# 5. ...`` are accepted). A solutions
   notebook's first line is a ``# `` heading that names the chapter number and the word
   "solution(s)".
3. **Sections of a chapter.** ``## Learning goals`` is a heading of the title cell or of the next
   markdown cell; ``## Summary``, ``## Exercises`` and ``## References`` are headings, in this
   order. The Exercises section (from its heading to the next ``##`` heading) links
   ``solutions/NN_solutions.ipynb`` as a markdown link, and that file exists (and every solutions
   notebook belongs to a chapter). The References section links at least one bibliography entry
   (``bibliography.md#key``).
4. **No math in backticks** (markdown cells and pages; fenced code blocks are not looked at).
   Inline code is for Python names, calls and literals, file names and commands; equations go in
   LaTeX. An inline code span is *math* if one of these holds:

   a. it contains a math-only marker: an arrow ``<-``, ``->`` (or a Unicode arrow); a sum or mean
      written with a subscript, ``sum_k``, ``mean_{...}``, ``prod_i``, ``argmin_w``, ``max_k``
      (a letter or ``{`` after the underscore, so ``max_rounds`` or ``min_size`` do not count);
      ``^``; ``||`` or ``|...|`` (norms, absolute values); a LaTeX command (a backslash and two
      or more letters, so ``"\\n"`` does not count); a braced subscript ``_{``; ``grad`` followed
      by a space and a letter; a binary ``~`` with spaces (``x ~ N(0, 1)``); a star right after
      a name that closes the name (``w*``, ``w_k*``, but not ``a*b`` nor ``*args``); a Unicode
      math sign or Greek letter (``−``, ``≤``, ``∇``, ``η``, ...);
   b. it is not valid Python, consists only of names, numbers, spaces and the characters
      ``+ - * / = < > ( ) , . !``, every name is a *math name* (below) or a math function
      (``sqrt ceil floor log ln exp max min round abs sign mean``), and it has two or more
      tokens or an operator: ``w_k = w - eta g_k``, ``2 m d * 4``, ``p_k K / m``, ``2K``;
   c. it is valid Python made only of math names, numbers, arithmetic (``+ - * / // **``),
      comparisons, tuples and calls of math names or math functions without keywords, and it
      contains an operation: ``n_k / n_S``, ``E * T``, ``F_k(w)``, ``ceil(n_k / B)``,
      ``u_k = E``. An ``=`` counts only when written with spaces, ``a = b``, in b. and c.: ``K=``,
      ``mu=0.1`` or ``E=5, B=10`` are keyword arguments.

   A *math name* is a single letter or a Greek letter's name (``eta``, ``Delta``, ...), optionally
   followed by digits and by a subscript of one to four letters or digits: ``w``, ``w_k``,
   ``n_S``, ``beta1``, ``lambda_k``, ``w_bar``; also ``inf`` and ``const``. Bare names and tuples
   of names are never flagged (``w_k``, ``(K, d)``, ``X, y``): a symbol in backticks is fine as a
   Python name. Neither are ``@`` (NumPy's matrix product), attribute access, indexing, strings,
   ``None`` or keyword arguments, so ``p @ W``, ``w = w.copy()``, ``run(..., workers=2)``,
   ``FedAvg(model, lr=0.1)``, ``client_loss[k]`` and ``B = None`` pass.
   ``test_backtick_math_rule`` pins these examples.
5. **Chapter references.** Every "chapter N" / "Chapter N" / "chapters N and M" / "chapters N-M"
   in markdown or code names an existing chapter ``tutorials/NN_*.ipynb``.
6. **Links.** Every relative link of a markdown cell or page (``[text](target)``, images,
   reference definitions, ``href=``/``src=``) resolves to an existing file or folder. A
   ``#fragment`` into a ``.md`` page must be one of its anchors; into a notebook, one of its
   headings (compared after slugging both, since GitHub and Jupyter spell heading anchors
   differently); a bare ``#fragment`` must be a heading of the same document. **Anchors** are
   the GitHub slugs of the headings (lower case; characters other than letters, digits, ``_``,
   ``-`` and spaces dropped; spaces become ``-``; a repeated slug gets ``-1``, ``-2``) and
   explicit ``<a id="...">`` / ``name="..."`` anchors. The glossary uses headings (``## client
   drift`` is ``#client-drift``); notation and bibliography use explicit anchors.
7. **Bibliography.** Every ``bibliography.md#key`` cited exists, and every key follows the
   scheme (lower-case family name, year, optional lower-case word: ``li2020fedprox``); the keys
   of the course's list are all present. "Li et al. 2020" (three different papers) never appears
   in markdown outside a link.
8. **Notation.** A chapter whose markdown has LaTeX math links ``notation.md`` at least once.
9. **Figures.** No code cell sets matplotlib's style (``rcParams.update(``,
   ``rcParams[...] =``, ``plt.rc(``, ``matplotlib.rc(``, ``style.use(``; reading ``rcParams``
   is fine); a notebook that draws a figure (``plt.subplots(``, ``plt.figure(``, ``plt.plot(``,
   ..., or a ``plot_...(`` call) calls ``use_style()`` exactly once, before its first figure.
10. **Docstrings** are printed with ``minifed.show_doc`` / ``minifed.plain_doc``, never with
    ``__doc__`` or ``inspect.getdoc`` (which keep the reST double backticks).
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
CHAPTERS = sorted(TUTORIALS.glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((TUTORIALS / "solutions").glob("*.ipynb"))
PAGES = sorted(TUTORIALS.glob("*.md"))
NOTEBOOKS = CHAPTERS + SOLUTIONS
DOCUMENTS = NOTEBOOKS + PAGES
CHAPTER_NUMBERS = {int(p.name[:2]) for p in CHAPTERS}
BIBLIOGRAPHY = TUTORIALS / "bibliography.md"

# the keys the course's conventions name (course.md); more may be added, none removed
COURSE_KEYS = """mcmahan2017 li2020fedprox li2020convergence li2020survey karimireddy2020 reddi2021
hsu2019 boyd2011 kairouz2021 wang2021field hard2018 bonawitz2017 bonawitz2019 abadi2016
mcmahan2018dp geiping2020 zhu2019dlg mohri2019afl li2020qffl li2021ditto yang2019fml flamby2022
gong2022fedadmm zhou2023admm""".split()
KEY_SCHEME = re.compile(r"[a-z]+(?:19|20)\d\d[a-z]*")


def name(path: Path) -> str:
    return str(path.relative_to(TUTORIALS))


def documents(paths):
    return pytest.mark.parametrize("path", paths, ids=[name(p) for p in paths])


# ---------------------------------------------------------------------------------------------
# reading documents: a document is a list of (where, markdown) and (where, code) blocks


@cache
def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def cell_source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def where(index: int, cell) -> str:
    return f"cell {index} (id {cell.get('id', '-')})"


@cache
def markdown_blocks(path: Path) -> tuple[tuple[str, str], ...]:
    if path.suffix == ".md":
        return (("page", path.read_text(encoding="utf-8")),)
    cells = load(path)["cells"]
    return tuple(
        (where(i, c), cell_source(c)) for i, c in enumerate(cells) if c["cell_type"] == "markdown"
    )


@cache
def code_blocks(path: Path) -> tuple[tuple[str, str], ...]:
    if path.suffix == ".md":
        return ()
    cells = load(path)["cells"]
    return tuple(
        (where(i, c), cell_source(c)) for i, c in enumerate(cells) if c["cell_type"] == "code"
    )


FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)


def without_fences(md: str) -> str:
    return FENCE.sub("", md)


MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+\$", re.S)


def prose(md: str) -> str:
    """Markdown without fenced blocks, inline code and LaTeX: the text whose links count."""
    return MATH.sub("", CODE_SPAN.sub("", without_fences(md)))


def code_spans(md: str) -> list[str]:
    spans = []
    for match in CODE_SPAN.finditer(without_fences(md)):
        span = match.group(2).replace("\n", " ")
        if span.startswith(" ") and span.endswith(" ") and span.strip():
            span = span[1:-1]
        spans.append(span)
    return spans


def short(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def report(path: Path, problems: list[str], rule: str) -> None:
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        pytest.fail(f"{name(path)}: {rule}\n{lines}", pytrace=False)


# ---------------------------------------------------------------------------------------------
# headings and anchors

HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
EXPLICIT_ANCHOR = re.compile(r"<[a-zA-Z][^>]*?\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']")


def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation removed."""
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images: their text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(md: str) -> list[tuple[int, str]]:
    return [(len(m.group(1)), m.group(2)) for m in HEADING.finditer(without_fences(md))]


@cache
def anchors(path: Path) -> frozenset[str]:
    found, seen = set(), {}
    for _, md in markdown_blocks(path):
        for _, text in headings(md):
            slug = github_slug(text)
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
        found.update(EXPLICIT_ANCHOR.findall(without_fences(md)))
    return frozenset(found)


# ---------------------------------------------------------------------------------------------
# rule 1: format


@documents(NOTEBOOKS)
def test_nbformat_45_with_ids_and_no_outputs(path):
    nb = load(path)
    problems = []
    version = f"{nb.get('nbformat')}.{nb.get('nbformat_minor')}"
    if version != "4.5":
        problems.append(
            f"nbformat {version}, expected 4.5 (read with nbformat, write back "
            "after nbformat.validator.normalize)"
        )
    ids = [c.get("id") for c in nb["cells"]]
    missing = [i for i, cell_id in enumerate(ids) if cell_id is None]
    if missing:
        problems.append(f"{len(missing)} cells without an id (cells {missing[:10]}...)")
    bad = [i for i in ids if i is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", i)]
    if bad:
        problems.append(f"invalid cell ids {bad}")
    duplicated = sorted({i for i in ids if i is not None and ids.count(i) > 1})
    if duplicated:
        problems.append(f"duplicated cell ids {duplicated}")
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code" and (
            cell.get("outputs") or cell.get("execution_count") is not None
        ):
            problems.append(f"{where(i, cell)} is stored with outputs or an execution count")
    if not problems:
        nbformat = pytest.importorskip("nbformat")
        try:
            nbformat.validate(nbformat.from_dict(nb))
        except nbformat.ValidationError as error:
            problems.append(f"not valid nbformat: {short(str(error), 300)}")
    report(path, problems, "notebook format (nbformat 4.5, cell ids, stored clean)")


# ---------------------------------------------------------------------------------------------
# rule 2: title


def first_line(path: Path) -> tuple[str, str]:
    cell = load(path)["cells"][0]
    lines = [line for line in cell_source(cell).splitlines() if line.strip()]
    return cell["cell_type"], lines[0] if lines else ""


@documents(CHAPTERS)
def test_chapter_title(path):
    number = int(path.name[:2])
    kind, line = first_line(path)
    ok = kind == "markdown" and re.fullmatch(rf"# 0?{number}\.?[ \t]+\S.*", line)
    report(
        path,
        [] if ok else [f"first cell ({kind}) starts with {line!r}"],
        f"the first cell must be markdown starting with '# {number} Title'",
    )


@documents(SOLUTIONS)
def test_solutions_title(path):
    number = int(path.name[:2])
    kind, line = first_line(path)
    ok = (
        kind == "markdown"
        and line.startswith("# ")
        and re.search(rf"\b0?{number}\b", line)
        and re.search(r"solution", line, re.I)
    )
    report(
        path,
        [] if ok else [f"first cell ({kind}) starts with {line!r}"],
        f"the first cell must be a '# ' heading naming chapter {number} and 'solutions'",
    )


# ---------------------------------------------------------------------------------------------
# rule 3: sections


def section_positions(path: Path, title: str) -> list[tuple[int, int]]:
    """(markdown block, offset) of every '## title' heading."""
    pattern = re.compile(rf"^##[ \t]+{re.escape(title)}[ \t]*$", re.M | re.I)
    return [
        (b, m.start())
        for b, (_, md) in enumerate(markdown_blocks(path))
        for m in pattern.finditer(without_fences(md))
    ]


def section_text(path: Path, title: str) -> str:
    """Markdown from the first '## title' heading to the next '#' or '##' heading."""
    positions = section_positions(path, title)
    if not positions:
        return ""
    block, offset = positions[0]
    texts = [without_fences(md) for _, md in markdown_blocks(path)]
    parts = [texts[block][offset:]]
    parts += texts[block + 1 :]
    text = "\n".join(parts)
    end = re.compile(r"^#{1,2}[ \t]", re.M).search(text, 3)
    return text[: end.start()] if end else text


@documents(CHAPTERS)
def test_chapter_sections(path):
    problems = []
    goals = section_positions(path, "Learning goals")
    if not goals:
        problems.append("no '## Learning goals' heading")
    elif goals[0][0] > 1:
        problems.append(
            f"'## Learning goals' is in markdown cell number {goals[0][0] + 1} "
            "(counting markdown cells only); it belongs in the title cell or the "
            "markdown cell after it"
        )
    found = {}
    for title in ("Summary", "Exercises", "References"):
        positions = section_positions(path, title)
        if positions:
            found[title] = positions[0]
        else:
            problems.append(f"no '## {title}' heading")
    order = [t for t in ("Summary", "Exercises", "References") if t in found]
    if order != sorted(order, key=found.get):
        problems.append(
            f"sections in the order {sorted(order, key=found.get)}, expected "
            "Summary, Exercises, References"
        )
    report(path, problems, "a chapter has Learning goals, then Summary, Exercises, References")


@documents(CHAPTERS)
def test_exercises_link_their_solutions(path):
    target = f"solutions/{path.name[:2]}_solutions.ipynb"
    problems = []
    text = section_text(path, "Exercises")
    links = [t for t in link_targets(prose(text)) if t.split("#")[0] == target]
    if not text:
        problems.append("no '## Exercises' section")
    elif not links:
        problems.append(
            f"the Exercises section has no markdown link to {target}, e.g. '[solutions]({target})'"
        )
    if not (TUTORIALS / target).exists():
        problems.append(f"{target} does not exist")
    report(path, problems, "the exercises point to their solutions notebook")


def test_every_solutions_notebook_has_a_chapter():
    orphans = [
        name(p)
        for p in SOLUTIONS
        if not re.fullmatch(r"\d\d_solutions\.ipynb", p.name)
        or int(p.name[:2]) not in CHAPTER_NUMBERS
    ]
    assert not orphans, f"solutions notebooks without a chapter (or misnamed): {orphans}"


@documents(CHAPTERS)
def test_references_cite_the_bibliography(path):
    text = section_text(path, "References")
    cited = [t for t in link_targets(prose(text)) if t.split("#")[0] == "bibliography.md"]
    report(
        path,
        [] if cited or not text else ["the References section links no bibliography.md#key"],
        "references are cited by bibliography key, "
        "e.g. [McMahan et al. 2017](bibliography.md#mcmahan2017)",
    )


# ---------------------------------------------------------------------------------------------
# rule 4: math in backticks

GREEK = (
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu "
    "nu xi omicron pi rho sigma tau upsilon phi varphi chi psi omega"
).split()
MATH_NAME = re.compile(
    rf"(?:[A-Za-z]|(?i:{'|'.join(GREEK)}))\d*(?:_[A-Za-z0-9]{{1,4}})?"
    r"|inf|const"
)
MATH_FUNCTIONS = set("sqrt ceil floor log ln exp max min round abs sign mean".split())
MARKERS = [
    (re.compile(r"<-|->|[←→⇐⇒↦⟶]"), "an arrow"),
    (
        re.compile(r"\b(?:sum|mean|prod|argmin|argmax|max|min)_(?:\{|[A-Za-z](?![A-Za-z0-9_]))"),
        "a sum/mean/arg-min with a subscript",
    ),
    (re.compile(r"\^"), "a superscript ^"),
    (re.compile(r"\|\||(?<![|\w])\|[^\s|][^|]*?\|(?![|\w])"), "a norm or absolute value |...|"),
    (re.compile(r"\\[A-Za-z]{2,}"), "a LaTeX command"),
    (re.compile(r"_\{"), "a braced subscript _{...}"),
    (re.compile(r"\bgrad [A-Za-z]"), "'grad' applied to a symbol"),
    (re.compile(r"\S\s+~\s+\S"), "a distribution '~'"),
    (re.compile(r"(?<=[A-Za-z0-9_])\*(?=$|[\s),=|\]])"), "a star marking an optimum (w*)"),
    (
        re.compile(r"[−×·÷≤≥≠≈∑∏∫∂∇∈∉⊂∪∩√∞±\u0391-\u03a9\u03b1-\u03c9]"),
        "a Unicode math sign or Greek letter",
    ),
]
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?")
ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Pow)


def is_math_name(token: str) -> bool:
    return bool(MATH_NAME.fullmatch(token))


def _math_expression(node) -> bool:
    """Is this expression made only of math names, numbers, arithmetic and math calls?"""
    if isinstance(node, ast.Name):
        return is_math_name(node.id)
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int | float | complex) and not isinstance(node.value, bool)
    if isinstance(node, ast.BinOp):
        return (
            isinstance(node.op, ARITHMETIC)
            and _math_expression(node.left)
            and _math_expression(node.right)
        )
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.USub | ast.UAdd) and _math_expression(node.operand)
    if isinstance(node, ast.Compare):
        return not any(
            isinstance(op, ast.In | ast.NotIn | ast.Is | ast.IsNot) for op in node.ops
        ) and all(_math_expression(n) for n in [node.left, *node.comparators])
    if isinstance(node, ast.Call):
        function = node.func.id if isinstance(node.func, ast.Name) else None
        return (
            function is not None
            and (is_math_name(function) or function in MATH_FUNCTIONS)
            and not node.keywords
            and all(_math_expression(a) for a in node.args)
        )
    if isinstance(node, ast.Tuple):
        return all(_math_expression(e) for e in node.elts)
    return False


def _has_operation(node) -> bool:
    return any(
        isinstance(n, ast.BinOp | ast.Compare | ast.Call)
        or (isinstance(n, ast.UnaryOp) and not isinstance(n.operand, ast.Constant))
        for n in ast.walk(node)
    )


def backtick_math(span: str) -> str | None:
    """Why the inline code ``span`` looks like math (rule 4 of the module docstring), or None."""
    for pattern, reason in MARKERS:
        if pattern.search(span):
            return reason
    try:
        tree = ast.parse(span.strip())
    except SyntaxError:
        if "=" in span and not re.search(r"\s=|=\s", span):
            return None  # K=, w0=, E=5, B=10: keyword arguments, written without spaces
        tokens = TOKEN.findall(span)
        if (
            tokens
            and re.fullmatch(r"[A-Za-z0-9_\s+\-*/=<>().,!]+", span)
            and all(is_math_name(t) or t in MATH_FUNCTIONS or t[0].isdigit() for t in tokens)
            and (len(tokens) > 1 or re.search(r"[+\-*/=<>]", span))
        ):
            return "math notation that is not Python (juxtaposed symbols or an equation)"
        return None
    if len(tree.body) != 1:
        return None
    statement = tree.body[0]
    if isinstance(statement, ast.Expr):
        parts = [statement.value]
    elif isinstance(statement, ast.Assign) and " = " in span:
        parts = [*statement.targets, statement.value]
    elif isinstance(statement, ast.AugAssign):
        parts = [statement.target, statement.value]
    else:
        return None
    if all(_math_expression(p) for p in parts) and (
        not isinstance(statement, ast.Expr) or _has_operation(statement)
    ):
        return "an expression or equation of math symbols"
    return None


@pytest.mark.parametrize(
    "span, is_math",
    [
        ("w <- w - eta g", True),
        ("sum_k (n_k/n) F_k(w)", True),
        ("F(w) = sum_k p_k F_k(w)", True),
        ("w_k = w - eta g_k", True),
        ("u_k = E * ceil(n_k / B)", True),
        ("m = max(round(C K), 1)", True),
        ("n_k / n_S", True),
        ("E * T", True),
        ("F_k(w)", True),
        ("p_k = n_k / n", True),
        ("delta_k = w_k - w", True),
        ("w_{t+1}", True),
        ("||w_bar - w*||", True),
        ("w*", True),
        ("M_k = (I - eta H_k)^E", True),
        ("q_c ~ Dir(alpha * 1_K)", True),
        ("eta -> 0", True),
        ("2 m d * 4", True),
        ("B = inf", True),
        ("z = w", True),
        ("run(..., workers=2)", False),
        ("FedAvg(model, lr=0.1)", False),
        ("FedAvg(model, lr=0.1, epochs=5, batch_size=10)", False),
        ("simulation.sample_clients(K, 0.1, seed, t)", False),
        ("w = w.copy()", False),
        ("local_model = global_model", False),
        ("p @ W", False),
        ("B = None", False),
        ("mu=0.1", False),
        ("server_lr=1", False),
        ("K=", False),
        ("w0=", False),
        ("w_k", False),
        ("(K, d)", False),
        ("X, y", False),
        ("client_loss[k]", False),
        ("np.mean", False),
        ("max_rounds", False),
        ("min_size=10", False),
        ("benchmarks/results/compare_mnist/", False),
        ("python benchmarks/reproduce_fedavg.py list", False),
        ("2nn-iid-C0.1-E1-B10", False),
        ('{"minifed": {"requires": ["heart-disease"]}}', False),
        ('"\\n".join(lines)', False),
        ("[notation](notation.md#eta)", False),
        ("unflatten(w)", False),
        ("-1", False),
    ],
)
def test_backtick_math_rule(span, is_math):
    assert (backtick_math(span) is not None) == is_math, (span, backtick_math(span))


@documents(DOCUMENTS)
def test_no_math_in_backticks(path):
    problems = [
        f"{place}: `{span}` ({reason})"
        for place, md in markdown_blocks(path)
        for span in code_spans(md)
        if (reason := backtick_math(span))
    ]
    report(
        path,
        problems,
        "math belongs in LaTeX ($...$), not in backticks; keep inline code "
        "for Python names and calls (rule 4 of tests/test_course.py)",
    )


# ---------------------------------------------------------------------------------------------
# rule 5: chapter references

CHAPTER_REFERENCE = re.compile(
    r"\b[Cc]hapters?\s+(\d+(?:\s*(?:,|-|–|\bto\b|\band\b|\bor\b)\s*\d+)*)"
)


def referenced_chapters(text: str):
    for match in CHAPTER_REFERENCE.finditer(text):
        numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
        ranges = re.findall(r"(\d+)\s*(?:-|–|\bto\b)\s*(\d+)", match.group(1))
        for low, high in ranges:
            numbers += range(int(low), int(high) + 1)
        yield match, sorted(set(numbers))


@documents(DOCUMENTS)
def test_chapter_references_exist(path):
    problems = []
    for place, text in [*markdown_blocks(path), *code_blocks(path)]:
        for match, numbers in referenced_chapters(text):
            missing = [n for n in numbers if n not in CHAPTER_NUMBERS]
            if missing:
                context = text[max(0, match.start() - 40) : match.end() + 40]
                problems.append(
                    f"{place}: chapter {missing} does not exist: '...{short(context)}...'"
                )
    report(
        path,
        problems,
        f"every 'chapter N' must exist (chapters {sorted(CHAPTER_NUMBERS)}); "
        "say 'a later chapter' for topics not written yet",
    )


# ---------------------------------------------------------------------------------------------
# rules 6 and 7: links, anchors, bibliography keys

INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^[ \t]{0,3}\[[^\]]+\]:[ \t]*<?(\S+?)>?(?:[ \t]+.*)?$", re.M)
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']")
EXTERNAL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")


def link_targets(text: str) -> list[str]:
    return [
        m.group(1)
        for pattern in (INLINE_LINK, REFERENCE_DEFINITION, HTML_LINK)
        for m in pattern.finditer(text)
    ]


def anchor_exists(target: Path, fragment: str) -> bool:
    found = anchors(target)
    if target.suffix == ".ipynb":  # GitHub and Jupyter spell heading anchors differently
        return fragment in found or github_slug(fragment) in found
    return fragment in found


@documents(DOCUMENTS)
def test_relative_links_resolve(path):
    problems = []
    for place, md in markdown_blocks(path):
        for raw in link_targets(prose(md)):
            if EXTERNAL.match(raw):
                continue
            file_part, _, fragment = unquote(raw).partition("#")
            target = (path.parent / file_part).resolve() if file_part else path
            if not target.exists():
                problems.append(f"{place}: ({raw}): no file {file_part!r}")
            elif fragment and target.suffix in (".md", ".ipynb") and target != BIBLIOGRAPHY:
                if not anchor_exists(target, fragment):
                    problems.append(
                        f"{place}: ({raw}): no anchor #{fragment} in "
                        f"{target.relative_to(TUTORIALS.parent)}"
                    )
    report(path, problems, "relative links must resolve (files and #anchors)")


@cache
def bibliography_keys() -> frozenset[str]:
    if not BIBLIOGRAPHY.exists():
        return frozenset()
    return frozenset(EXPLICIT_ANCHOR.findall(BIBLIOGRAPHY.read_text(encoding="utf-8")))


@documents(DOCUMENTS)
def test_cited_bibliography_keys_exist(path):
    problems = []
    for place, md in markdown_blocks(path):
        for raw in link_targets(prose(md)):
            file_part, _, key = unquote(raw).partition("#")
            if file_part and (path.parent / file_part).resolve() == BIBLIOGRAPHY:
                if not key:
                    continue
                if key not in bibliography_keys():
                    problems.append(f"{place}: ({raw}): no entry '{key}' in bibliography.md")
    report(path, problems, "cited bibliography keys must exist in tutorials/bibliography.md")


AMBIGUOUS_LI = re.compile(r"\bLi(?:,? [A-Z][a-z]+)? et al\.?,? \(?2020\b")


@documents([p for p in DOCUMENTS if p != BIBLIOGRAPHY])  # the bibliography explains the three
def test_li_et_al_2020_is_always_a_key(path):
    problems = []
    for place, md in markdown_blocks(path):
        unlinked = INLINE_LINK.sub("", CODE_SPAN.sub("", without_fences(md)))
        problems += [
            f"{place}: '{short(unlinked[max(0, m.start() - 50) : m.end() + 30])}'"
            for m in AMBIGUOUS_LI.finditer(unlinked)
        ]
    report(
        path,
        problems,
        "three papers are 'Li et al. 2020': cite each as a link to its key, "
        "[Li et al. 2020](bibliography.md#li2020fedprox), #li2020convergence or #li2020survey",
    )


def test_bibliography_keys_follow_the_scheme():
    text = BIBLIOGRAPHY.read_text(encoding="utf-8")
    ids = EXPLICIT_ANCHOR.findall(text)
    bad = [key for key in ids if not KEY_SCHEME.fullmatch(key)]
    duplicated = sorted({key for key in ids if ids.count(key) > 1})
    missing = [key for key in COURSE_KEYS if key not in ids]
    assert not (bad or duplicated or missing), (
        f"bibliography.md: keys not of the form family+year+word: {bad}; duplicated: "
        f"{duplicated}; keys of the course's list missing: {missing}"
    )


# ---------------------------------------------------------------------------------------------
# rule 8: notation

LATEX = re.compile(r"\$[^$\n]+\$")


@documents(CHAPTERS)
def test_chapters_with_math_link_the_notation(path):
    texts = [md for _, md in markdown_blocks(path)]
    has_math = any(LATEX.search(CODE_SPAN.sub("", without_fences(t))) for t in texts)
    links = [
        t for text in texts for t in link_targets(prose(text)) if t.split("#")[0] == "notation.md"
    ]
    report(
        path,
        [] if links or not has_math else ["LaTeX math but no link to notation.md"],
        "a chapter that uses symbols links [notation](notation.md)",
    )


# ---------------------------------------------------------------------------------------------
# rules 9 and 10: figures and docstrings

RC_SETTING = re.compile(
    r"rcParams\s*\.\s*update\(|rcParams\s*\[[^\]]*\]\s*=(?!=)"
    r"|\b(?:plt|mpl|matplotlib)\.rc\(|\bstyle\.use\(|\brcdefaults\("
)
FIGURE = re.compile(
    r"\bplt\.(?:subplots|figure|subplot|subplot_mosaic|plot|bar|barh|scatter"
    r"|imshow|hist|semilogy|loglog|contour)\(|(?<!def )\bplot_\w+\("
)
USE_STYLE = re.compile(r"\buse_style\(\)")
RAW_DOCSTRING = re.compile(r"\.__doc__\b|\binspect\.getdoc\(|\bgetdoc\(")


def code_lines(path: Path, pattern: re.Pattern) -> list[tuple[int, str, str]]:
    return [
        (i, place, line)
        for i, (place, code) in enumerate(code_blocks(path))
        for line in code.splitlines()
        if pattern.search(line)
    ]


@documents(NOTEBOOKS)
def test_figures_use_the_course_style(path):
    problems = [
        f"{place}: {short(line)!r} sets matplotlib's style in the notebook"
        for _, place, line in code_lines(path, RC_SETTING)
    ]
    figures = code_lines(path, FIGURE)
    calls = code_lines(path, USE_STYLE)
    if figures:
        if len(calls) != 1:
            problems.append(
                f"use_style() is called {len(calls)} times; call "
                "minifed.plot.use_style() once, at the top"
            )
        elif calls[0][0] > figures[0][0]:
            problems.append(
                f"use_style() ({calls[0][1]}) comes after the first figure ({figures[0][1]})"
            )
    report(path, problems, "figures: minifed.plot.use_style() once at the top, no rcParams")


@documents(NOTEBOOKS)
def test_docstrings_printed_without_rest_markup(path):
    problems = [f"{place}: {short(line)!r}" for _, place, line in code_lines(path, RAW_DOCSTRING)]
    report(
        path,
        problems,
        "print docstrings with minifed.show_doc(obj) (or plain_doc), not "
        "__doc__ / inspect.getdoc, which keep reST markup",
    )

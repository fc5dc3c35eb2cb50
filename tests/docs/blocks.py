"""The code blocks of the docs and the README, read as a reader meets them.

A page's ```python blocks run in order in one namespace, as a reader types them
into one session. A block whose first line names a file (``# pig.py``) is also a
file the page tells the reader to save: it is written under that name, and the
unmarked blocks after it, up to the next block that names a file, are added to
that file, as the pages say ("Add to pig.py:"). Every page sees the files of
every page, so a page that imports ``pig`` finds the tutorial's. A figure a
block promises in a comment is checked: ``print(x)  # 36: a new pig`` must print
``36``, and ``expression  # 51``, a literal, must be 51.

A block that cannot run as it stands carries a mark the reader sees too: an
HTML comment on the line right before its fence.

- ``<!-- continues pig.py of docs/tutorial.md -->``: the block, and the
  unmarked ones after it, are added to that page's file; the namespace first
  runs the file as that page leaves it. For pages that say "at the end of
  pig.py, add".
- ``<!-- excerpt of PATH -->``: the block quotes PATH (a game's module, say):
  each of its lines is one of PATH's. A line ``...``, and a trailing ``: ...``
  or ``# comment``, stand for what the excerpt leaves out.
  ``<!-- python blocks: excerpts of PATH -->`` anywhere on a page makes it the
  default for the page's unmarked blocks.
- ``<!-- signature -->``: the block gives the signature of a callable,
  ``Name(params)``, ``obj.method(params) -> Returned``, or a ``def``. Each one's
  parameters (names, kinds, defaults) must be those of the object the page's
  namespace names; ``app``, ``harness`` and ``slab`` stand for instances of
  their classes.
- ``<!-- not run: REASON; tests/PATH.py runs it -->``: skipped, for a block that
  truly cannot run here (one that starts a server); the test it names must exist.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import inspect
import io
import re
import shlex
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[^\s`]*)[^\n]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    re.M | re.S,
)
_MARK = re.compile(r"<!--\s*(?P<mark>[^>]*?)\s*-->")
_PAGE_EXCERPTS = re.compile(r"<!--\s*python blocks: excerpts of (?P<path>\S+)\s*-->")
_NAMES_FILE = re.compile(r"# (?P<name>[\w-]+\.py)\n")
#: The marks a block may carry (see the module's docstring).
CONTINUES = re.compile(r"continues (?P<name>[\w-]+\.py) of (?P<page>\S+\.md)")
EXCERPT = re.compile(r"excerpt of (?P<path>\S+)")
NOT_RUN = re.compile(
    r"not run: (?P<reason>.+?); (?P<test>tests/\S+\.py)(::(?P<function>\w+))? runs it"
)
SIGNATURE = "signature"


@attrs.frozen
class Block:
    """One fenced code block of a page."""

    page: Path
    #: The page's line of the block's first line of code (after the fence).
    line: int
    lang: str
    code: str
    #: The HTML comment right before the fence, without its ``<!--``/``-->``.
    mark: str = ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"

    @property
    def file_name(self) -> str | None:
        """The file the block's first line names (``# pig.py``), if any."""
        found = _NAMES_FILE.match(self.code)
        return found["name"] if found else None

    def source(self) -> str:
        """The code, on the page's own line numbers, for tracebacks."""
        return "\n" * (self.line - 1) + self.code


def read_blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, with its mark."""
    text = page.read_text()
    default = _PAGE_EXCERPTS.search(text)
    found = []
    for fence in _FENCE.finditer(text):
        before = text[: fence.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        mark = _MARK.fullmatch(before)
        indent = len(fence["indent"])
        code = "".join(
            line[indent:] for line in fence["code"].splitlines(keepends=True)
        )
        comment = mark["mark"] if mark else ""
        if default and fence["lang"] == "python" and not comment:
            comment = f"excerpt of {default['path']}"
        line = text.count("\n", 0, fence.start()) + 2
        found.append(Block(page, line, fence["lang"], code, comment))
    return found


def python_blocks(page: Path) -> list[Block]:
    return [block for block in read_blocks(page) if block.lang == "python"]


def page_path(name: str) -> Path:
    return REPO / name


# -- the files a page tells the reader to save ---------------------------------


@functools.cache
def page_files(page: Path) -> dict[str, str]:
    """The files ``page`` has the reader save, by name, as the page leaves them."""
    files: dict[str, str] = {}
    current: str | None = None
    for block in python_blocks(page):
        continued = CONTINUES.fullmatch(block.mark)
        if block.file_name is not None:
            current = block.file_name
            files[current] = block.code
        elif continued:
            current = continued["name"]
            home = page_path(continued["page"])
            base = files.get(current) or page_files(home)[current]
            files[current] = base + "\n\n" + block.code
        elif block.mark:
            continue
        elif current is not None:
            files[current] += "\n\n" + block.code
    return files


def named_files() -> dict[str, Path]:
    """Every file a page names (``# pig.py``), and the page that names it."""
    named: dict[str, Path] = {}
    for page in PAGES:
        for block in python_blocks(page):
            if block.file_name is not None:
                other = named.setdefault(block.file_name, page)
                assert other == page, f"{block.where}: {block.file_name} is {other}'s"
    return named


def files_for(page: Path) -> dict[str, str]:
    """What a reader of ``page`` has in their directory: every page's files,
    with this page's own versions of them."""
    files = {name: page_files(home)[name] for name, home in named_files().items()}
    files.update(page_files(page))
    return files


# -- checks of blocks that do not run -------------------------------------------


def _normal(line: str) -> str:
    line = line.strip()
    if not line.startswith("#"):
        line = re.sub(r"\s+#.*$", "", line)
    return line.removesuffix(" ...").removesuffix(":...").strip()


def excerpt_problems(block: Block, path: str) -> list[str]:
    """The lines of ``block`` that are no line of ``path``."""
    source = REPO / path
    if not source.is_file():
        return [f"{block.where}: {path} is no file of the repository"]
    theirs = {_normal(line) for line in source.read_text().splitlines()}
    return [
        f"{block.page.name}:{number}: not in {path}: {_normal(line)}"
        for number, line in enumerate(block.code.splitlines(), block.line)
        if _normal(line) not in ("", "...") and _normal(line) not in theirs
    ]


#: What a signature's leading name stands for, when the page binds nothing to it.
INSTANCES = {
    "app": ("jetforce_sesh", "SessionApplication"),
    "harness": ("jetforce_sesh.testing", "SessionHarness"),
    "slab": ("jetforce_sesh", "Slab"),
}
_SIGNATURE = re.compile(
    r"@?(?:\w+\s*=\s*)?(?P<callee>[A-Za-z_][\w.]*)\((?P<params>.*)\)(?:\s*->.*)?"
)


def signatures(code: str) -> Iterator[tuple[int, str]]:
    """Each signature of a block (it may span lines), with its first line."""
    chunk: list[str] = []
    start = 0
    for number, line in enumerate(code.splitlines()):
        if not chunk:
            start = number
        chunk.append(line.strip())
        text = " ".join(chunk)
        if text.count("(") == text.count(")"):
            yield start, text
            chunk = []
    assert not chunk, f"unbalanced brackets in {' '.join(chunk)!r}"


def _resolve(callee: str, namespace: dict[str, Any]) -> Any:
    first, *rest = callee.split(".")
    if first in namespace:
        value = namespace[first]
    elif first in INSTANCES:
        module, name = INSTANCES[first]
        value = getattr(importlib.import_module(module), name)
    else:
        raise NameError(f"{first!r} is neither imported on the page nor an instance")
    for part in rest:
        value = getattr(value, part)
    return value


def signature_problems(block: Block, namespace: dict[str, Any]) -> list[str]:
    problems = []
    for offset, text in signatures(block.code):
        where = f"{block.page.name}:{block.line + offset}"
        if text.startswith(("def ", "async def ")):
            compile(text, where, "exec")  # the handler's shape: it must be Python
            continue
        found = _SIGNATURE.fullmatch(text)
        if found is None:
            problems.append(f"{where}: not a signature: {text}")
            continue
        try:
            target = _resolve(found["callee"], namespace)
        except (NameError, AttributeError) as error:
            problems.append(f"{where}: {found['callee']}: {error}")
            continue
        written = ast.parse(f"def _({found['params']}): pass").body[0]
        assert isinstance(written, ast.FunctionDef)
        shown = _parameters(written.args, namespace)
        real = [
            (parameter.name, parameter.kind.name, parameter.default)
            for parameter in inspect.signature(target).parameters.values()
        ]
        if real and real[0][0] == "self":
            real = real[1:]
        if [(n, k) for n, k, _ in shown] != [(n, k) for n, k, _ in real]:
            problems.append(
                f"{where}: {found['callee']} takes"
                f" {_shown(real)}, the page says {_shown(shown)}"
            )
            continue
        for (name, _, mine), (_, _, theirs) in zip(shown, real, strict=True):
            if not _same_default(mine, theirs):
                problems.append(
                    f"{where}: {found['callee']}'s {name} defaults to {theirs!r},"
                    f" the page says {mine!r}"
                )
    return problems


_EMPTY = inspect.Parameter.empty


#: Where a default a page names without importing it is looked up.
PUBLIC = ("jetforce_sesh", "jetforce_sesh.stores", "jetforce_sesh.testing")


def _parameters(args: ast.arguments, namespace: dict[str, Any]) -> list[Any]:
    public = {
        name: getattr(module, name)
        for module in map(importlib.import_module, PUBLIC)
        for name in module.__all__
        if name != "app"
    }

    def value(node: ast.expr | None) -> Any:
        if node is None:
            return _EMPTY
        try:
            code = compile(ast.Expression(node), "<default>", "eval")
            return eval(code, {**public, **namespace})
        except NameError as error:
            return f"<{ast.unparse(node)}: {error}>"

    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    shown = [
        (
            arg.arg,
            "POSITIONAL_ONLY" if arg in args.posonlyargs else "POSITIONAL_OR_KEYWORD",
            value(default),
        )
        for arg, default in zip(positional, defaults, strict=True)
    ]
    if args.vararg:
        shown.append((args.vararg.arg, "VAR_POSITIONAL", _EMPTY))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        shown.append((arg.arg, "KEYWORD_ONLY", value(default)))
    if args.kwarg:
        shown.append((args.kwarg.arg, "VAR_KEYWORD", _EMPTY))
    return shown


def _shown(parameters: list[Any]) -> str:
    marks = {"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}
    return "(" + ", ".join(marks.get(k, "") + n for n, k, _ in parameters) + ")"


def _same_default(mine: Any, theirs: Any) -> bool:
    if mine is _EMPTY or theirs is _EMPTY:
        return mine is theirs
    try:
        return bool(mine == theirs) and type(mine) is type(theirs)
    except Exception:
        return mine is theirs


# -- running a block --------------------------------------------------------------


def run_block(block: Block, namespace: dict[str, Any]) -> list[str]:
    """Run ``block`` in ``namespace``, one statement at a time; the problems of
    the values its comments promise: ``print(x)  # 36: why`` must print ``36``,
    and ``expr  # 51`` (a literal) must be 51."""
    tree = ast.parse(block.source(), str(block.page))
    comments = _comments(block.source())
    problems = []
    for statement in tree.body:
        promised = comments.get(statement.end_lineno or statement.lineno)
        code = compile(ast.Module([statement], []), str(block.page), "exec")
        if promised is None or not isinstance(statement, ast.Expr):
            exec(code, namespace)
            continue
        call = statement.value
        if isinstance(call, ast.Call) and ast.unparse(call.func) == "print":
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(code, namespace)
            printed = out.getvalue().strip()
            expected = promised.split(": ", 1)[0]
            if printed != expected:
                problems.append(
                    f"{block.page.name}:{statement.lineno} prints {printed!r},"
                    f" the page says {expected!r}"
                )
            continue
        try:
            literal = ast.literal_eval(promised)
        except (ValueError, SyntaxError):
            exec(code, namespace)
            continue
        value = eval(
            compile(ast.Expression(statement.value), str(block.page), "eval"), namespace
        )
        if value != literal:
            problems.append(
                f"{block.page.name}:{statement.lineno} is {value!r},"
                f" the page says {literal!r}"
            )
    return problems


def _comments(source: str) -> dict[int, str]:
    """Each line's trailing comment, by line number."""
    found = {}
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    for token in tokens:
        if token.type == tokenize.COMMENT:
            found[token.start[0]] = token.string.lstrip("#").strip()
    return found


# -- shell blocks -------------------------------------------------------------------


def commands(code: str) -> Iterator[list[str]]:
    """Each ``jetforce-sesh`` command of a shell block, as its arguments: after
    ``&&``, ``;`` or ``|`` too, up to a redirection."""
    joined = code.replace("\\\n", " ")
    for line in joined.splitlines():
        if line.lstrip().startswith("#"):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token and set(token) <= set("();<>|&"):
                if command and command[0] == "jetforce-sesh":
                    if token[0] in "<>" and command[-1].isdigit():
                        command.pop()  # 2> names a stream, not an argument
                    yield command[1:]
                command = [] if token[0] not in "<>" else ["(redirected)"]
                continue
            if not command and re.fullmatch(r"\w+=.*", token):
                continue  # VARIABLE=value before the command
            command.append(token)

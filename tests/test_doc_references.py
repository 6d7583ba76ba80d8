"""Every code reference in the documentation resolves: README.md, docs/*.md (not the generated
docs/configuration.md) and the docstrings and comments of blendrl/**/*.py.

- ``blendrl.x.y`` (also inside ``:mod:``/``:func:``/``:class:``/``:data:``/``:meth:``, with or without ``~``) imports
  the longest module prefix, then resolves the rest attribute by attribute (a dataclass field, an annotation or a
  ``self.name`` assignment in the class's source count as attributes). In a docstring a role without a dot
  (``:func:`foo```) names something in the module itself; ``:meth:`` and ``:attr:`` without a dot are skipped.
- Paths under blendrl/, benchmarks/, scripts/, examples/, docs/, tests/ (globs allowed) exist; a ``#anchor`` on
  a markdown file names one of its headings; relative markdown links resolve from the linking file. ``models/x.py``
  (a blendrl subpackage) is looked up under blendrl/ and a bare ``test_x.py`` under tests/.
- In the markdown, a backticked ``section.key`` (also ``tasks[0].judges``, ``key=value``, ``key: value`` and
  ``--set key=value``) whose first segment is a section of some run config (the configs of
  scripts/gen_config_docs.py, at any depth) is a field path of one of them.

All failures are reported at once, as ``file:line: reference (why)``.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import glob
import importlib
import importlib.util
import inspect
import io
import re
import subprocess
import tokenize
import types
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATH_ROOTS = ("blendrl", "benchmarks", "scripts", "examples", "docs", "tests")
FILE_SUFFIXES = {"py", "md", "json", "jsonl", "yaml", "yml", "pt", "png", "html", "txt", "toml", "cpp", "gz", "sh",
                 "csv", "safetensors", "bin", "log", "cfg", "ini"}

DOTTED = re.compile(r"(?<![\w./-])blendrl(?:\.[A-Za-z_]\w*)+")
ROLE = re.compile(r":(mod|func|class|data|meth|attr|obj|exc):`~?([^`<>]+?)`")
PATH = re.compile(r"(?<![\w./-])((?:%s)/(?:[\w./*\-]|\{[\w,.\-]*\})*(?:#[\w\-]+)?)" % "|".join(PATH_ROOTS))
HISTORY = re.compile(r"git history at `?([0-9a-f]{7,40})\b")
SUBPKG_PATH = re.compile(r"(?<![\w./-])([a-z_]+/[\w/\-]*\.py)\b")
BARE_TEST = re.compile(r"(?<![\w./-])(test_\w+\.py)\b")
MD_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
SECTION = re.compile(r"§(\d+)")
README_SECTION = re.compile(r"\bREADME(?:\.md)?(?:'s)?,? (?:section )?[\"“]?([A-Z][\w-]*)")
BACKTICK = re.compile(r"`[^`\n]+`")
KEY = re.compile(r"[a-z_][a-z0-9_]*(?:\[\d*\])?(?:\.[a-z_][a-z0-9_]*(?:\[\d*\])?)+")
SET = re.compile(r"--set[ =]([a-z_][\w.\[\]]*)=")


@dataclasses.dataclass(frozen=True)
class Ref:
    where: str  # file:line
    text: str
    kind: str  # "dotted", "role", "path", "link", "section", "readme", "key"
    module: str = ""  # for roles without a dot: the module the docstring belongs to

    def __str__(self):
        return f"{self.where}: {self.text}"


# --------------------------------------------------------------------------------------------- collecting


def markdown_files() -> list[Path]:
    return [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "configuration.md")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def refs_in_text(text: str, where: str, *, markdown: bool, module: str = "", base: Path = ROOT) -> list[Ref]:
    """The references in one piece of text (a markdown line, a docstring line or a comment)."""
    out: list[Ref] = []
    for m in DOTTED.finditer(text):
        out.append(Ref(where, m.group(0), "dotted"))
    for role, target in ROLE.findall(text):
        target = target.strip().lstrip("~").rstrip("()")
        if not target.startswith("blendrl.") and module:
            if "." in target or role not in ("meth", "attr"):
                out.append(Ref(where, target, "role", module))
    commit = HISTORY.search(text)
    paths = list(PATH.finditer(text))
    for i, m in enumerate(paths):
        out.append(Ref(where, m.group(1) + (f"@{commit.group(1)}" if commit else ""), "path"))
        if m.group(1).endswith(".md"):  # "docs/algorithms.md §11 (...) and §8": sections of that file
            upto = paths[i + 1].start() if i + 1 < len(paths) else len(text)
            out.extend(Ref(where, f"{m.group(1)} §{n}", "section") for n in SECTION.findall(text, m.end(), upto))
    for m in README_SECTION.finditer(text):
        out.append(Ref(where, f"README.md {m.group(1)}", "readme"))
    for m in SUBPKG_PATH.finditer(text):
        if m.group(1).split("/")[0] in _subpackages() and not m.group(1).startswith(PATH_ROOTS):
            out.append(Ref(where, "blendrl/" + m.group(1), "path"))
    for m in BARE_TEST.finditer(text):
        out.append(Ref(where, "tests/" + m.group(1), "path"))
    if markdown:
        for label, target in MD_LINK.findall(BACKTICK.sub("", text)):  # a link in a code span is an example
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = _rel((base / path).resolve()) if path else where.split(":")[0]
            out.append(Ref(where, resolved + (f"#{anchor}" if anchor else ""), "link"))
            out.extend(Ref(where, f"{resolved} §{n}", "section") for n in SECTION.findall(label))  # [§13](x.md)
    return out


def keys_in_span(span: str, where: str) -> list[Ref]:
    """The config keys of one code span: ``--set key=value``s, or the span itself (``key``, ``key=v``, ``key: v``)."""
    span = " ".join(span.split())
    out = [Ref(where, key, "key") for key in SET.findall(span)]
    token = re.split(r"[=:\s]", span, maxsplit=1)[0]
    if KEY.fullmatch(token) and token.rsplit(".", 1)[-1] not in FILE_SUFFIXES:
        out.append(Ref(where, token, "key"))
    return out


def markdown_refs(path: Path) -> list[Ref]:
    out: list[Ref] = []
    fence = None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        where = f"{_rel(path)}:{n}"
        if line.lstrip().startswith("```"):
            fence = None if fence else line
            continue
        if fence:  # code: only the module names, paths and --set keys
            out.extend(r for r in refs_in_text(line, where, markdown=False) if r.kind == "dotted" or r.kind == "path")
            out.extend(Ref(where, key, "key") for key in SET.findall(line))
        else:
            out.extend(refs_in_text(line, where, markdown=True, base=path.parent))
    # code spans' config keys, over the whole text (fences blanked) so that a span broken over two lines
    # (`--set\nkey=value`) pairs up as markdown pairs it; reported at the line the span starts on
    text = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), path.read_text(), flags=re.S | re.M)
    for m in re.finditer(r"`([^`]*)`", text):
        if m.group(1).count("\n") <= 1:  # a blank line would end the paragraph, and the span with it
            out.extend(keys_in_span(m.group(1), f"{_rel(path)}:{text.count(chr(10), 0, m.start()) + 1}"))
    return out


def python_prose(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every docstring line and comment in a Python file."""
    source = path.read_text()
    lines = source.splitlines()
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            out.extend((n, lines[n - 1]) for n in range(node.lineno, node.end_lineno + 1))
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out.append((tok.start[0], tok.string))
    return out


def python_strings(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the string literals that are not docstrings (help texts, error messages); an
    f-string's ``{...}`` fields are blanked."""
    source = path.read_text()
    docstrings = {(n.lineno, n.col_offset) for n in ast.walk(ast.parse(source))
                  if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)}
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.STRING and tok.start not in docstrings:
            text = tok.string
            if "f" in text[:text.index(text[-1])].lower():
                text = re.sub(r"\{[^{}]*\}", " ", text)
            out.extend((tok.start[0] + i, line) for i, line in enumerate(text.splitlines()))
    return out


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def python_refs(path: Path) -> list[Ref]:
    module = _module_name(path)
    out: list[Ref] = []
    for n, text in python_prose(path):
        out.extend(refs_in_text(text, f"{_rel(path)}:{n}", markdown=False, module=module))
    for n, text in python_strings(path):  # only what points into the documentation and the tree
        out.extend(r for r in refs_in_text(text, f"{_rel(path)}:{n}", markdown=False)
                   if r.kind in ("path", "section", "readme"))
    return out


# --------------------------------------------------------------------------------------------- resolving


@functools.cache
def _subpackages() -> frozenset[str]:
    return frozenset(p.name for p in (ROOT / "blendrl").iterdir() if (p / "__init__.py").is_file())


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@functools.cache
def _anchors(path: Path) -> frozenset[str]:
    heads = [line.lstrip("#").strip() for line in path.read_text().splitlines() if re.match(r"#{1,6} ", line)]
    return frozenset(_slug(re.sub(r"`", "", h)) for h in heads)


def _has_attribute(obj, name: str):
    """obj.name, or a stand-in when name is a dataclass field / annotation / ``self.name`` set in obj's source."""
    try:
        return True, getattr(obj, name)
    except AttributeError:
        pass
    except Exception:  # a property or lazy attribute that fails when touched still exists
        return True, None
    if inspect.isclass(obj):
        for klass in obj.__mro__:
            if name in getattr(klass, "__dataclass_fields__", {}) or name in vars(klass).get("__annotations__", {}):
                return True, None
            try:
                if re.search(rf"\bself\.{re.escape(name)}\b\s*(:[^=]*)?=", inspect.getsource(klass)):
                    return True, None
            except (OSError, TypeError):
                pass
    return False, None


def resolve_dotted(name: str) -> str | None:
    """None when ``name`` resolves; otherwise why not."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module)
            break
        except ModuleNotFoundError as e:
            if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
                return f"importing {module} failed: {e}"
    else:
        return "no such module"
    for j, attr in enumerate(parts[i:], i):
        ok, value = _has_attribute(obj, attr)
        if not ok:
            return f"{'.'.join(parts[:j])} has no {attr!r}"
        if value is None:
            return None
        obj = value
    return None


def resolve_role(target: str, module: str) -> str | None:
    """A name in the docstring's module; ``.name`` (Sphinx's relative form) also from the module's package."""
    if not target.startswith("."):
        return resolve_dotted(f"{module}.{target}")
    package = module if hasattr(importlib.import_module(module), "__path__") else module.rpartition(".")[0]
    whys = [resolve_dotted(base + target) for base in dict.fromkeys((module, package))]
    return None if None in whys else whys[-1]


def _expand(path: str) -> list[str]:
    """Shell brace expansion: ``a.{md,json}`` → ``a.md``, ``a.json``."""
    m = re.search(r"\{([^{}]*)\}", path)
    if not m:
        return [path]
    return [x for alt in m.group(1).split(",") for x in _expand(path[:m.start()] + alt + path[m.end():])]


def _in_history(commit: str, path: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{commit}:{path}"], cwd=ROOT, capture_output=True).returncode == 0


def resolve_path(ref: str) -> str | None:
    """None when the file exists (a ``path@commit``: when it exists there, the prose says it is in git history)."""
    ref, _, commit = ref.partition("@")
    path, _, anchor = ref.partition("#")
    for one in _expand(path.rstrip(".,;:")):
        if any(c in one for c in "*?["):
            if not glob.glob(str(ROOT / one)):
                return f"no file matches {one}"
            continue
        target = ROOT / one
        if not target.exists() and not (commit and _in_history(commit, one)):
            return f"no such file {one}" + (f" (nor at {commit})" if commit else "")
        if anchor and target.suffix == ".md" and anchor not in _anchors(target):
            return f"no heading #{anchor} in {one}"
    return None


@functools.cache
def _sections(path: Path) -> frozenset[str]:
    return frozenset(SECTION.findall("\n".join(h for h in path.read_text().splitlines() if h.startswith("#"))))


def resolve_section(ref: str) -> str | None:
    """``docs/x.md §N``: x.md has a heading §N."""
    path, _, number = ref.rpartition(" §")
    target = ROOT / path.rstrip(".,;:")
    if not target.is_file():
        return None  # the path itself is reported
    return None if number in _sections(target) else f"{path} has no heading §{number}"


def resolve_readme(ref: str) -> str | None:
    """``README, Memory``: a README heading starts with that word."""
    word = ref.split(" ", 1)[1].lower()
    heads = [line.lstrip("#").strip().lower() for line in (ROOT / "README.md").read_text().splitlines()
             if line.startswith("## ")]
    return None if any(h.startswith(word) for h in heads) else "no README section of that name"


@functools.cache
def config_paths() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(every field path of every run config, with list indices as ``[]``, less the moved keys whose field says
    "not read here"; the section names at any depth; paths below which anything goes: dict-valued fields)."""
    spec = importlib.util.spec_from_file_location("_gen_config_docs", ROOT / "scripts" / "gen_config_docs.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    paths, sections, open_ended = set(), set(), set()

    def walk(cls, prefix: str, seen: tuple):
        hints, comments = typing.get_type_hints(cls), gen._comments(cls)
        for f in dataclasses.fields(cls):
            key = f"{prefix}{f.name}"
            if comments.get(f.name, "").startswith("not read here"):  # a moved key kept only to raise an error
                continue
            paths.add(key)
            tp = hints[f.name]
            for sub in typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,):
                origin = typing.get_origin(sub)
                if sub is dict or origin is dict:
                    open_ended.add(key)
                listed = origin is list and typing.get_args(sub)
                inner = typing.get_args(sub)[0] if listed else sub
                if dataclasses.is_dataclass(inner) and inner not in seen:
                    sections.add(f.name)
                    walk(inner, key + ("[]." if listed else "."), seen + (inner,))

    for _, cls in gen.COMMANDS:
        walk(cls, "", (cls,))
    return frozenset(paths), frozenset(sections), frozenset(open_ended)


def resolve_key(key: str) -> str | None:
    paths, sections, open_ended = config_paths()
    norm = re.sub(r"\[\d*\]", "[]", key)
    for listed in sorted({p.split("[]")[0] for p in paths if "[]" in p}, key=len, reverse=True):
        if norm.startswith(listed + "."):  # a list item addressed by position or name: tasks.0.x, tasks.chat.x
            parts = norm[len(listed) + 1:].split(".", 1)
            if len(parts) == 2 and listed + "[]." + parts[1] in {p for p in paths}:
                norm = listed + "[]." + parts[1]
    if norm.split(".")[0].rstrip("[]") not in sections:
        return None  # not a config key (a file name, an attribute, ...): not checked
    candidates = {p for p in paths} | {p.replace("[]", "") for p in paths}
    if norm in candidates or any(norm.startswith(o + ".") or norm.startswith(o.replace("[]", "") + ".")
                                 for o in open_ended):
        return None
    if any(p.endswith("." + norm) for p in candidates):  # a nested section named by itself: calibration.baseline
        return None
    return "not a field of any run config"


def unresolved(refs: list[Ref]) -> list[str]:
    out, seen = [], set()
    for ref in refs:
        key = (ref.where, ref.text, "file" if ref.kind in ("path", "link") else ref.kind)
        if key in seen:  # a link is often matched as a path too
            continue
        seen.add(key)
        if ref.kind == "dotted":
            why = resolve_dotted(ref.text)
        elif ref.kind == "role":
            why = resolve_role(ref.text, ref.module)
        elif ref.kind in ("path", "link"):
            why = resolve_path(ref.text)
        elif ref.kind == "section":
            why = resolve_section(ref.text)
        elif ref.kind == "readme":
            why = resolve_readme(ref.text)
        else:
            why = resolve_key(ref.text)
        if why:
            out.append(f"{ref} ({why})")
    return out


def _report(failures: list[str]) -> str:
    return f"{len(failures)} unresolved documentation reference(s):\n  " + "\n  ".join(failures)


# --------------------------------------------------------------------------------------------- tests


def test_readme_and_docs_references_resolve():
    refs = [r for path in markdown_files() for r in markdown_refs(path)]
    assert refs, "found no references: the scanner is broken"
    failures = unresolved(refs)
    assert not failures, _report(failures)


def test_docstring_and_comment_references_resolve():
    refs = [r for path in sorted((ROOT / "blendrl").rglob("*.py")) for r in python_refs(path)]
    assert refs, "found no references: the scanner is broken"
    failures = unresolved(refs)
    assert not failures, _report(failures)


def test_made_up_references_are_reported(tmp_path):
    md = tmp_path / "fake.md"
    md.write_text("See `blendrl.training.no_such_module`, :func:`~blendrl.functional.kl.no_such_fn`,\n"
                  "blendrl/training/no_such_file.py, docs/usage.md#no-such-heading and\n"
                  "`train.no_such_key`, docs/algorithms.md §99, the README, Nowhere;\n"
                  "but not `blendrl.functional.kl`, `train.lr`, `tasks[0].judges`, `tasks.chat.optimizer.name`,\n"
                  "docs/algorithms.md §13, README, Quick start, `metadata.answer` or `reference.context()`;\n"
                  "`--set train.seed=1 --set\nlogging.no_such=x`.\n")
    refs = markdown_refs(md)
    failures = unresolved(refs)
    assert len(failures) == 8, _report(failures)
    for bad in ("no_such_module", "no_such_fn", "no_such_file.py", "#no-such-heading", "train.no_such_key", "§99",
                "Nowhere", ":6: logging.no_such"):
        assert any(bad in f for f in failures), bad
    assert all(f.startswith(str(md) + ":") for f in failures)
    links = refs_in_text("[§98](docs/algorithms.md), [x](docs/nope.md), [y](#the-loop-and-its-seams)", "README.md:7",
                         markdown=True)  # links resolve from the linking file (README.md: the root)
    assert sorted(unresolved(links)) == ["README.md:7: docs/algorithms.md §98 (docs/algorithms.md has no heading §98)",
                                         "README.md:7: docs/nope.md (no such file docs/nope.md)"]
    py = tmp_path / "fake.py"
    py.write_text('"""Uses :class:`~blendrl.config.schema.NoSuchConfig`."""\nx = 1  # see scripts/nope.sh\n')
    assert len(unresolved(python_refs_at(py, "blendrl.fake"))) == 2


def python_refs_at(path: Path, module: str) -> list[Ref]:
    return [r for n, text in python_prose(path) for r in refs_in_text(text, f"{path}:{n}", markdown=False,
                                                                      module=module)]

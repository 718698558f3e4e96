"""Find import cycles between the files of each crate in the workspace.

Used by scripts/lint.sh. Every crate root of every workspace member (src/lib.rs,
src/main.rs, src/bin/*.rs, tests/*.rs, benches/*.rs, examples/*.rs) is read as
its own module tree: `mod name;` declarations lead to files, inline `mod name {
... }` blocks stay part of their file. A file uses another when its code names
a path that resolves into it: `crate::...`, `super::...`, `self::...`, a child
module's name, or a name a `use` brought in. A path resolves to the deepest
module it names, so `crate::wire::event::X` is a use of wire/event.rs, not of
wire.rs; a name re-exported by lib.rs (`crate::X`) is a use of lib.rs, whose
`pub use` is in turn a use of the file that defines it. Declaring `mod x;` is
not a use. Comments and string literals are ignored.

An inline `#[cfg(test)] mod` is a node of its own: nothing can import a test
module, so a test may use any file without making a cycle.

The check fails, naming each cycle and where each step of it is written, when
any crate's file graph has one. `--known-cycle ROOT` reports a crate root's
cycles without failing, for one another change is about to remove, and fails
once that root has none (so the exception cannot outlive its reason).
`--graph` prints each crate's files bottom to top; `--self-test` runs the
checker on tiny fake crates (one with a cycle, one without, and a known
cycle) and fails if it gets any wrong.

Exit status: 0 without cycles, 1 with a cycle (or a failed self-test).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments_and_strings(text: str) -> str:
    """Blank out comments and string/char literals, keeping newlines and offsets."""
    out = []
    i, n = 0, len(text)

    def blank(s: str) -> str:
        return "".join("\n" if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(text, i)) and (
            i == 0 or not re.match(r"[A-Za-z0-9_]", text[i - 1])
        ):
            end = '"' + m.group(1)
            j = text.find(end, m.end())
            j = n if j < 0 else j + len(end)
            out.append(blank(text[i:j]))
            i = j
        elif c == '"' or (c == "b" and text.startswith('b"', i)):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i : j + 1]))
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}', '\'') or a lifetime ('a).
            m = re.compile(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'").match(text, i)
            if m:
                out.append(blank(m.group(0)))
                i = m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(text: str, open_at: int) -> int:
    """Index just past the brace that closes the one at `open_at`."""
    depth = 0
    for j in range(open_at, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


def expand_use_tree(tree: str) -> list[tuple[list[str], str | None]]:
    """`a::{b, c::d as e, self}` → [(['a','b'],'b'), (['a','c','d'],'e'), (['a'],'a')].

    The second item is the name the import binds (None for a glob)."""
    tree = re.sub(r"\s+", "", tree)
    results: list[tuple[list[str], str | None]] = []

    def split_top(s: str) -> list[str]:
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        return parts

    def walk(prefix: list[str], s: str) -> None:
        if not s:
            return
        brace = s.find("{")
        if brace >= 0 and (s.find("as") < 0 or brace < s.find("as")):
            head = s[:brace].rstrip(":")
            inner = s[brace + 1 : s.rfind("}")]
            base = prefix + [p for p in head.split("::") if p]
            for part in split_top(inner):
                walk(base, part)
            return
        # `as` has no spaces around it any more: split on the last "as" that
        # follows a complete path segment.
        m = re.fullmatch(r"((?:" + IDENT + r"::)*(?:" + IDENT + r"|\*))(?:as(" + IDENT + r"))?", s)
        if not m:
            return
        path = prefix + m.group(1).split("::")
        if path[-1] == "*":
            results.append((path[:-1], None))
            return
        if path[-1] == "self":
            path = path[:-1]
        alias = m.group(2) or (path[-1] if path else None)
        results.append((path, alias))

    walk([], tree)
    return results


@dataclass
class Scope:
    """A module, or an inline test module, and what its text says."""

    module: tuple[str, ...]
    node: str  # the graph node it belongs to: a file, or "file#mod" for a test module
    file: Path
    spans: list[tuple[int, int]]  # the text that belongs to this scope alone
    raw_aliases: dict[str, list[str]] = field(default_factory=dict)  # name -> path as written


@dataclass
class Crate:
    name: str
    root: Path
    modules: dict[tuple[str, ...], str] = field(default_factory=dict)  # module -> node
    scopes: list[Scope] = field(default_factory=list)
    scope_of: dict[tuple[str, ...], Scope] = field(default_factory=dict)
    texts: dict[Path, str] = field(default_factory=dict)
    edges: dict[str, dict[str, tuple[Path, int, str]]] = field(default_factory=dict)


def module_dir(file: Path, is_root: bool) -> Path:
    if is_root or file.name == "mod.rs":
        return file.parent
    return file.parent / file.stem


USE_RE = re.compile(r"\b(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);")
MOD_RE = re.compile(r"((?:#\[[^\]]*\]\s*)*)(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*([;{])")
PATH_RE = re.compile(r"(?<![A-Za-z0-9_:$])((?:" + IDENT + r"\s*::\s*)+" + IDENT + r")")


def load_crate(name: str, root: Path) -> Crate:
    crate = Crate(name, root)

    def visit(file: Path, module: tuple[str, ...], is_root: bool) -> None:
        if not file.exists():
            return
        text = strip_comments_and_strings(file.read_text())
        crate.texts[file] = text
        node = str(file)
        crate.modules[module] = node
        directory = module_dir(file, is_root)

        def scan(module: tuple[str, ...], node: str, start: int, end: int, directory: Path) -> None:
            spans, pos = [], start
            for m in MOD_RE.finditer(text, start, end):
                if m.start() < pos:
                    continue
                child = module + (m.group(2),)
                if m.group(3) == ";":
                    path = directory / f"{m.group(2)}.rs"
                    if not path.exists():
                        path = directory / m.group(2) / "mod.rs"
                    visit(path, child, False)
                    continue
                open_at = m.end() - 1
                close = matching_brace(text, open_at)
                spans.append((pos, m.start()))
                is_test = "cfg(test)" in m.group(1).replace(" ", "")
                child_node = f"{node}#{m.group(2)}" if is_test else node
                crate.modules[child] = child_node
                scan(child, child_node, open_at + 1, close - 1, directory / m.group(2))
                pos = close
            spans.append((pos, end))
            crate.scopes.append(Scope(module, node, file, spans))

        scan(module, node, 0, len(text), directory)

    visit(root, (), True)
    return crate


def resolve(crate: Crate, scope: Scope, path: list[str], depth: int = 0) -> tuple[str, ...] | None:
    """The absolute path a path names, or None if it leaves the crate."""
    if depth > 32:
        return None
    head, rest = path[0], path[1:]
    if head == "crate":
        return tuple(rest)
    if head == "self":
        return scope.module + tuple(rest)
    if head == "super":
        module = list(scope.module)
        while path and path[0] == "super":
            if not module:
                return None
            module.pop()
            path = path[1:]
        return tuple(module) + tuple(path)
    if head in scope.raw_aliases and scope.raw_aliases[head][0] != head:
        target = resolve(crate, scope, scope.raw_aliases[head], depth + 1)
        return None if target is None else target + tuple(rest)
    if scope.module + (head,) in crate.modules:
        return scope.module + tuple(path)
    return None


def target_node(crate: Crate, absolute: tuple[str, ...], depth: int = 0) -> str | None:
    """The file that defines what an absolute path names, through re-exports."""
    for k in range(len(absolute), -1, -1):
        module = absolute[:k]
        if module not in crate.modules:
            continue
        scope = crate.scope_of.get(module)
        if k < len(absolute) and scope is not None and depth < 32:
            name = absolute[k]
            if name in scope.raw_aliases:
                target = resolve(crate, scope, scope.raw_aliases[name])
                if target is not None:
                    return target_node(crate, target + absolute[k + 1 :], depth + 1)
        return crate.modules[module]
    return None


def build_edges(crate: Crate) -> None:
    uses: dict[int, list[tuple[list[str], int]]] = {}
    for scope in crate.scopes:
        crate.scope_of[scope.module] = scope
        text = crate.texts[scope.file]
        found = uses.setdefault(id(scope), [])
        for start, end in scope.spans:
            for m in USE_RE.finditer(text, start, end):
                for path, alias in expand_use_tree(m.group(1)):
                    if not path:
                        continue
                    if alias and alias != "_":
                        scope.raw_aliases[alias] = path
                    found.append((path, m.start()))
    for scope in crate.scopes:
        text = crate.texts[scope.file]
        for path, offset in uses[id(scope)]:
            # A use names its own path: resolve it without the alias it binds.
            absolute = resolve_use(crate, scope, path)
            if absolute is not None:
                add_edge(crate, scope, absolute, offset, "::".join(path))
        for start, end in scope.spans:
            for m in PATH_RE.finditer(text, start, end):
                path = re.sub(r"\s+", "", m.group(1)).split("::")
                absolute = resolve(crate, scope, path)
                if absolute is not None:
                    add_edge(crate, scope, absolute, m.start(), "::".join(path))


def resolve_use(crate: Crate, scope: Scope, path: list[str]) -> tuple[str, ...] | None:
    if path[0] in ("crate", "self", "super") or scope.module + (path[0],) in crate.modules:
        return resolve(crate, scope, path)
    if path[0] in scope.raw_aliases and scope.raw_aliases[path[0]] != path:
        return resolve(crate, scope, path)
    return None


def add_edge(crate: Crate, scope: Scope, absolute: tuple[str, ...], offset: int, written: str) -> None:
    target = target_node(crate, absolute)
    if target is None or target == scope.node:
        return
    line = crate.texts[scope.file].count("\n", 0, offset) + 1
    crate.edges.setdefault(scope.node, {}).setdefault(target, (scope.file, line, written))


def strongly_connected(nodes: list[str], edges: dict[str, dict[str, object]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; returns the components with a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, {}))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    result.append(sorted(component))
    return result


def one_cycle(component: list[str], edges: dict[str, dict[str, object]]) -> list[str]:
    """A shortest cycle through the component's first node."""
    members = set(component)
    start = component[0]
    previous = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(edges.get(node, {})):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while previous[path[-1]] is not None:
                        path.append(previous[path[-1]])
                    return list(reversed(path)) + [start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return component + [start]


def layers(crate: Crate) -> list[str]:
    """The crate's files, each after every file it uses (cycles left in place)."""
    nodes = sorted(set(crate.modules.values()))
    done: list[str] = []
    seen: set[str] = set()

    def visit(node: str, trail: set[str]) -> None:
        if node in seen or node in trail:
            return
        trail.add(node)
        for child in sorted(crate.edges.get(node, {})):
            visit(child, trail)
        trail.discard(node)
        seen.add(node)
        done.append(node)

    for node in nodes:
        visit(node, set())
    return done


def crate_roots(package: Path) -> list[Path]:
    roots = [package / "src" / "lib.rs", package / "src" / "main.rs"]
    for folder in ("src/bin", "tests", "benches", "examples"):
        roots += sorted((package / folder).glob("*.rs"))
    return [r for r in roots if r.exists()]


def workspace_packages(workspace: Path) -> list[Path]:
    manifest = tomllib.loads((workspace / "Cargo.toml").read_text())
    members = manifest.get("workspace", {}).get("members", [])
    packages = []
    for member in members:
        packages += sorted(p for p in workspace.glob(member) if (p / "Cargo.toml").exists())
    return packages


def check(workspace: Path, show_graph: bool, out=sys.stdout, known: tuple[str, ...] = ()) -> int:
    cycles = 0
    crates = 0
    known_left = set(known)
    for package in workspace_packages(workspace):
        for root in crate_roots(package):
            crate = load_crate(str(root), root)
            build_edges(crate)
            crates += 1
            rel = lambda node: str(Path(node.split("#")[0]).relative_to(package)) + (  # noqa: E731
                "#" + node.split("#")[1] if "#" in node else ""
            )
            nodes = sorted(set(crate.modules.values()))
            if show_graph and len(nodes) > 1:
                print(f"{root.relative_to(workspace)} (bottom to top):", file=out)
                for node in layers(crate):
                    used = ", ".join(rel(t) for t in sorted(crate.edges.get(node, {})))
                    print(f"  {rel(node)}" + (f"  uses {used}" if used else ""), file=out)
            where = str(root.relative_to(workspace))
            components = strongly_connected(nodes, crate.edges)
            if where in known_left and components:
                known_left.discard(where)
                print(f"{where}: known import cycle, not counted (--known-cycle):", file=out)
            elif components:
                cycles += len(components)
            for component in components:
                cycle = one_cycle(component, crate.edges)
                print(
                    f"{where}: import cycle: " + " -> ".join(rel(n) for n in cycle),
                    file=out,
                )
                for a, b in zip(cycle, cycle[1:]):
                    file, line, written = crate.edges[a][b]
                    print(f"  {Path(file).relative_to(workspace)}:{line}: {written}", file=out)
                if len(component) > len(cycle) - 1:
                    print("  (files in the same knot: " + ", ".join(rel(n) for n in component) + ")", file=out)
    for where in sorted(known_left):
        cycles += 1
        print(f"{where}: has no import cycle any more: drop its --known-cycle", file=out)
    if cycles:
        print(f"module cycles: {cycles} problem(s) found", file=out)
        return 1
    noted = f" ({len(known) - len(known_left)} known, not counted)" if known else ""
    print(f"module cycles: none in {crates} crate roots{noted}", file=out)
    return 0


def self_test() -> int:
    """Run the checker on fake workspaces; 0 when it judges each one right."""
    base = {
        "Cargo.toml": '[workspace]\nmembers = ["fake"]\n',
        "fake/Cargo.toml": '[package]\nname = "fake"\n',
        "fake/src/lib.rs": "pub mod a;\npub mod b;\npub mod outer;\npub use b::B;\n",
        "fake/src/a.rs": "pub struct A;\n",
        # Paths in a comment or a string are no use; outer uses b for real, so
        # reading them as uses would make a cycle b -> outer -> b.
        "fake/src/b.rs": "// crate::outer::g is only a comment\npub struct B;\n"
        'pub fn f() -> &\'static str { "crate::outer::g" }\n',
        # A parent's re-export of its child is a use downwards; a test module
        # may use anything, nothing can use it back.
        "fake/src/outer.rs": "pub mod inner;\npub use inner::X;\npub fn g(_: crate::B) {}\n"
        "#[cfg(test)]\nmod tests { use crate::a::A; }\n",
        "fake/src/outer/inner.rs": "pub struct X;\n#[cfg(test)]\nmod tests { use super::super::g; }\n",
    }

    def variant(**changes: str) -> dict[str, str]:
        files = dict(base)
        files.update({f"fake/src/{k.replace('__', '/')}.rs": v for k, v in changes.items()})
        return files

    cases = [
        # (what, files, --known-cycle roots, expected status, text the report must hold)
        ("a clean crate", base, (), 0, "none in 1 crate roots"),
        (
            # a -> b through a grouped, aliased import; b -> a through super.
            "a cycle through an aliased import and super",
            variant(a="use crate::{b::{self as bee}};\npub struct A(bee::B);\n",
                    b="pub struct B;\npub fn f() { let _ = super::a::A; }\n"),
            (), 1, "src/a.rs -> src/b.rs -> src/a.rs",
        ),
        (
            # b uses crate::X, which lib.rs re-exports from outer/inner.rs; inner uses b.
            "a cycle through a re-export at the root",
            variant(lib="pub mod a;\npub mod b;\npub mod outer;\npub use outer::inner::X;\n",
                    b="pub struct B;\npub fn f(_: crate::X) {}\n",
                    outer__inner="pub struct X;\nfn h(_: crate::b::B) {}\n"),
            (), 1, "src/b.rs -> src/outer/inner.rs -> src/b.rs",
        ),
        (
            # A parent that re-exports its child may not also hold what the child uses.
            "a cycle between a parent and its child",
            variant(outer="pub mod inner;\npub use inner::X;\npub const Y: u8 = 1;\n",
                    outer__inner="pub struct X(pub [u8; super::Y as usize]);\n"),
            (), 1, "src/outer.rs -> src/outer/inner.rs -> src/outer.rs",
        ),
        (
            "a known cycle is reported, not counted",
            variant(a="use crate::b::B;\npub struct A(B);\n", b="pub struct B(Box<crate::a::A>);\n"),
            ("fake/src/lib.rs",), 0, "known import cycle",
        ),
        ("a known cycle that is gone fails", base, ("fake/src/lib.rs",), 1, "drop its --known-cycle"),
    ]

    class Capture:
        def __init__(self) -> None:
            self.text = ""

        def write(self, s: str) -> None:
            self.text += s

    failures = []
    for what, files, known, expected, needle in cases:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for name, body in files.items():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_text(body)
            capture = Capture()
            status = check(root, False, capture, known=known)
            if status != expected or needle not in capture.text:
                failures.append(f"{what}: status {status} (expected {expected}), report:\n{capture.text}")
    for failure in failures:
        print(f"module cycles self-test failed: {failure}", file=sys.stderr)
    if not failures:
        print(f"module cycles: self-test OK ({len(cases)} fake crates judged right)")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workspace", nargs="?", default=".", type=Path)
    parser.add_argument("--graph", action="store_true", help="print each crate's files bottom to top")
    parser.add_argument("--self-test", action="store_true", help="check the checker on fake crates")
    parser.add_argument(
        "--known-cycle",
        action="append",
        default=[],
        metavar="ROOT",
        help="a crate root (e.g. crates/x/src/main.rs) whose cycles are reported but not "
        "counted, while another change removes them; fails once it has none",
    )
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    return check(args.workspace.resolve(), args.graph, known=tuple(args.known_cycle))


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Fails when modules of one crate depend on each other in a cycle.

For every crate source directory given, each module's references to other
modules of the same crate (`crate::a::b`, `super::a`, `self::a`, and names
the crate root re-exports with `pub use`) are collected from its code
(comments, doc comments and `#[cfg(test)] mod tests` blocks left out).
At each level of the module tree, an edge joins two sibling modules when
something inside one refers to something inside the other; a reference to
a module's own ancestors is containment, not an edge. Any cycle among
siblings is printed, and the exit status is 1.

    scripts/module-cycles.py host/core/src host/server/src plugin-api/src
"""

import re
import sys
from pathlib import Path


def module_path(src: Path, file: Path) -> tuple:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts.pop()
    return tuple(parts)


def without_tests(text: str) -> str:
    """`text` without its `#[cfg(test)] mod tests { ... }` blocks: what comes
    after one is code too."""
    while True:
        cut = re.search(r"#\[cfg\(test\)\]\s*mod tests\s*\{", text)
        if not cut:
            return text
        depth, i = 1, cut.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        text = text[: cut.start()] + text[i:]


def code_of(text: str) -> str:
    text = without_tests(text)
    lines = []
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("//"):
            continue
        lines.append(re.sub(r"//.*$", "", line))
    return "\n".join(lines)


PATH = r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*"


def references(code: str):
    """(anchor, [segments]) for each path; grouped `use a::{b, c::d}` expanded."""
    out = []
    for m in re.finditer(r"\b(crate|super|self)((?:::" + r"[A-Za-z_][A-Za-z0-9_]*)*)(::\{([^{}]*)\})?", code):
        anchor = m.group(1)
        base = [s for s in m.group(2).split("::") if s]
        if m.group(4) is not None:
            for item in m.group(4).split(","):
                item = item.strip().split(" as ")[0].strip()
                if item and item != "self" and item != "*":
                    out.append((anchor, base + item.split("::")))
                elif item:
                    out.append((anchor, base))
        else:
            out.append((anchor, base))
    return out


def check(src: Path) -> list:
    files = sorted(src.rglob("*.rs"))
    modules = {module_path(src, f): f for f in files}
    root = next((src / n for n in ("lib.rs", "main.rs") if (src / n).exists()), None)
    reexports = {}
    if root:
        for m in re.finditer(r"pub(?:\(crate\))?\s+use\s+(" + PATH + r")(?:::\{([^}]*)\})?", root.read_text()):
            base = m.group(1).split("::")
            if base[0] == "crate":
                base = base[1:]
            if m.group(2) is not None:
                for item in m.group(2).split(","):
                    name = item.strip().split(" as ")[-1].strip()
                    if name:
                        reexports[name] = tuple(base)
            else:
                reexports[base[-1]] = tuple(base[:-1])
    edges = set()
    top = {m[0] for m in modules if len(m) == 1}
    ROOT = "<root items>"
    for mod, file in modules.items():
        code = code_of(file.read_text())
        refs = references(code)
        if mod == ():
            # The root's code names its modules without `crate::`.
            for m in re.finditer(r"(?<![:\w])([a-z_][a-z0-9_]*)::", code):
                if m.group(1) in top:
                    edges.add(((), ROOT, m.group(1)))
        for anchor, segs in refs:
            if anchor == "crate":
                path = list(segs)
                if path and path[0] in reexports and tuple(path[:1]) not in modules:
                    path = list(reexports[path[0]])
            elif anchor == "super":
                is_dir_mod = file.name == "mod.rs"
                parent = list(mod[:-1]) if not is_dir_mod or True else list(mod)
                path = parent + list(segs)
            else:
                path = list(mod) + list(segs)
            target = ()
            for i in range(len(path), 0, -1):
                if tuple(path[:i]) in modules:
                    target = tuple(path[:i])
                    break
            if target == () and path and mod != () and path[0] not in reexports:
                edges.add(((), mod[0], ROOT))  # an item of the crate root
                continue
            if target[: len(target)] == mod[: len(target)]:
                continue  # itself or an ancestor
            common = 0
            while common < min(len(mod), len(target)) and mod[common] == target[common]:
                common += 1
            if common >= len(target) or common >= len(mod):
                continue
            level = mod[:common]
            edges.add((level, mod[common], target[common]))
    cycles = []
    levels = {e[0] for e in edges}
    for level in sorted(levels):
        graph = {}
        for lv, a, b in edges:
            if lv == level:
                graph.setdefault(a, set()).add(b)
        cycles += [(level, c) for c in find_cycles(graph)]
    return cycles


def find_cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    failed = False
    for arg in sys.argv[1:]:
        src = Path(arg)
        for level, comp in check(src):
            where = "::".join(level) or "crate root"
            print(f"{src}: module cycle under {where}: {' <-> '.join(comp)}")
            failed = True
    if not failed:
        print(f"no module cycles in {len(sys.argv) - 1} crates")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

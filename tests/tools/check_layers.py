#!/usr/bin/env python3
"""Checks which source file uses which, from the object files (nm: the symbols each one
defines and needs; includes alone would miss it, and a shared header hides who calls whom).

Fails when
  - a folder uses a higher one: core < archive, tensor, http, grpc, vision < weights, backend
    < serve < api < cli (a folder may use its own files and lower folders only);
  - files use each other in a circle (a strongly connected set of two or more files).

Usage: check_layers.py BUILD_DIR     (after a build; `make test` runs it)
Exit 0 when clean, 1 with every finding listed, 2 when the build has no object files."""
import os
import subprocess
import sys

LEVELS = {
    "core": 0,
    "archive": 1, "tensor": 1, "http": 1, "grpc": 1, "vision": 1,
    "weights": 2, "backend": 2,
    "serve": 3,
    "api": 4,
    "cli": 5,
}

# The libtorch stand-in for builds and unit tests without libtorch defines the same C API
# as torch.cc; it is never linked beside it.
IGNORED = {"src/backend/torch_none.c"}


def objects(build):
    """{source path relative to the repository: object file} for src/ of this build."""
    out = {}
    for root, _, files in os.walk(build):
        for f in files:
            if not f.endswith(".o"):
                continue
            path = os.path.join(root, f)
            rel = path.split(os.sep + "src" + os.sep, 1)
            if len(rel) != 2 or "CMakeFiles" not in path:
                continue
            src = "src/" + rel[1][:-2]  # "serve/pool.c.o" -> "src/serve/pool.c"
            if src not in IGNORED:
                out[src] = path
    return out


def symbols(obj):
    """(defined, needed) global symbol names of one object file."""
    text = subprocess.run(["nm", "-P", "--no-sort", obj], capture_output=True, text=True,
                          check=True).stdout
    defined, needed = set(), set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            needed.add(name)
        elif kind in "TDBRC" and kind.isupper():
            defined.add(name)
    return defined, needed


def folder(src):
    return src.split("/")[1]


def graph(objs):
    """{file: {file it uses: [a symbol it uses from there, ...]}}."""
    defs, needs = {}, {}
    for src, obj in objs.items():
        d, n = symbols(obj)
        needs[src] = n
        for s in d:
            defs.setdefault(s, src)
    uses = {src: {} for src in objs}
    for src, n in needs.items():
        for s in sorted(n):
            to = defs.get(s)
            if to is not None and to != src:
                uses[src].setdefault(to, []).append(s)
    return uses


def circles(uses):
    """Strongly connected sets of two or more files (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in uses[v]:
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

    sys.setrecursionlimit(10000)
    for v in sorted(uses):
        if v not in index:
            visit(v)
    return out


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    objs = objects(argv[1])
    if not objs:
        print(f"check_layers: no object files of src/ under {argv[1]}: build first", file=sys.stderr)
        return 2
    uses = graph(objs)
    findings = []
    for src in sorted(uses):
        for to, syms in sorted(uses[src].items()):
            a, b = folder(src), folder(to)
            if a in LEVELS and b in LEVELS and LEVELS[b] > LEVELS[a]:
                findings.append(f"{src} ({a}) uses {to} ({b}), a higher folder: {', '.join(syms[:4])}")
            elif a in LEVELS and b in LEVELS and a != b and LEVELS[b] == LEVELS[a]:
                findings.append(f"{src} ({a}) uses {to} ({b}), a folder of the same level: "
                                f"{', '.join(syms[:4])}")
    for comp in circles(uses):
        detail = []
        for src in comp:
            for to in comp:
                if to in uses[src]:
                    detail.append(f"{src} -> {to} ({', '.join(uses[src][to][:3])})")
        findings.append("circle of files: " + "; ".join(detail))
    for f in findings:
        print("check_layers: " + f)
    print(f"check_layers: {len(objs)} object files, {sum(len(u) for u in uses.values())} "
          f"file-to-file uses, {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

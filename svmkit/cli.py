"""The ``svmkit`` command: walk, show, audit, compare, import-debugfs, exercise.

Every command takes a scenario file or the name of a shipped example
(``svmkit show --list`` lists them). A bad file or argument prints one line
on stderr and exits 2; ``audit`` exits 1 when it has findings, so scripts
can test it. Work that takes more than a second reports progress on stderr.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from contextlib import contextmanager

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line, exit status 2."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


class UsageError(Exception):
    """A bad file or argument: printed as one line, exit status 2."""


@contextmanager
def progress(label: str, stream=None):
    """Say on stderr what is running if it takes more than a second, then
    every second, and how long it took at the end."""
    stream = stream or sys.stderr
    done = threading.Event()
    t0 = time.monotonic()
    shown = []

    tty = hasattr(stream, "isatty") and stream.isatty()

    def tick():
        while not done.wait(1.0):
            shown.append(1)
            if tty:           # one line, rewritten each second
                stream.write(f"\r{label}... {time.monotonic() - t0:.0f} s")
            elif len(shown) == 1:
                stream.write(f"{label}...\n")
            stream.flush()

    th = threading.Thread(target=tick, daemon=True)
    th.start()
    try:
        yield
    finally:
        done.set()
        th.join()
        if shown:
            stream.write(f"{chr(13) if tty else ''}{label}: done in "
                         f"{time.monotonic() - t0:.1f} s\n")
            stream.flush()


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (decimal or 0x hex)")


def _load(path):
    from svmkit.scenario import ScenarioError, load
    try:
        return load(path)
    except ScenarioError as e:
        raise UsageError(e.first_line())


def _built(args):
    s = _load(args.scenario)
    with progress(f"building {s.name}"):
        try:
            b = s.build(caches="off" if getattr(args, "no_cache", False) else None)
        except ValueError as e:
            raise UsageError(f"{args.scenario}: {e}")
        steps = getattr(args, "step", None)
        n = len(s.steps) if steps == "all" else int(steps or 0)
        if n > len(s.steps):
            raise UsageError(f"--step {n}: {s.name} has {len(s.steps)} steps; allowed: 0 to "
                             f"{len(s.steps)} or 'all'")
        for _ in range(n):
            try:
                b.apply()
            except ValueError as e:
                raise UsageError(f"{args.scenario}: step {b.steps_done}: {e}")
    return s, b


def _steps_arg(p):
    p.add_argument("--step", default="0", metavar="N",
                   help="apply the scenario's first N steps first ('all' for every step)")


def _out(args, text):
    if getattr(args, "output", None):
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


# -- commands ----------------------------------------------------------------------------------

def cmd_walk(args):
    from svmkit.render import json as rjson, svg, text
    s, b = _built(args)
    dev = s.get_device(args.device)
    if dev is None:
        raise UsageError(f"--device {args.device}: not a device of {s.name}; allowed: "
                         + ", ".join(d.bdf for d in s.devices))
    try:
        w = b.translate(dev.bdf, args.address, pasid=args.pasid, access=args.access,
                        privileged=args.privileged)
    except ValueError as e:
        raise UsageError(str(e))
    where = f"{dev.bdf}" + (f" PASID {args.pasid}" if args.pasid is not None else "")
    title = f"{s.name}: {where}, " + {"r": "read", "w": "write", "x": "execute"}[args.access]
    if args.format == "json":
        _out(args, rjson.walk_json(w, scenario=s.name, model=s.model, device=dev.bdf,
                                   pasid=args.pasid, access=args.access))
    elif args.format == "svg":
        _out(args, svg.walk_grid_svg(w, highlight=args.highlight, title=title))
    else:
        body = text.walk_text(w, title=title)
        names = [f"{i:>3}  {b.name(r.address)}" for i, r in enumerate(w.refs, 1)]
        body += "\nwhat each reference read:\n" + "\n".join(text._fit(n) for n in names) + "\n"
        _out(args, body)
    return 0


def cmd_show(args):
    from svmkit.graphs import mapping_graph, structure_graph
    from svmkit.render import json as rjson, svg, text
    from svmkit.scenario import dumps, examples
    if args.list:
        for name, path in examples().items():
            from svmkit.scenario import load
            _out(args, f"{name:<24} {load(path).description}"[:72])
        return 0
    if args.scenario is None:
        raise UsageError("give a SCENARIO (a file or an example name; --list lists them)")
    if args.format == "toml":
        _out(args, dumps(_load(args.scenario)))
        return 0
    if args.format == "json":
        _out(args, rjson.scenario_json(_load(args.scenario)))
        return 0
    s, b = _built(args)
    if args.ops:
        _out(args, text.ops_text(b.log, b.name))
        return 0
    with progress("drawing"):
        g = structure_graph(b) if args.graph == "structure" else mapping_graph(b)
    if args.format == "svg":
        _out(args, svg.graph_svg(g, title=f"{s.name}: {args.graph} graph"))
        return 0
    lines = [f"{s.name} ({s.model}): {s.description}"[:72], ""]
    for v in s.vms:
        base, size = b.vm_ram[v.name]
        lines.append(f"VM {v.name}: {text.size_name(size)} RAM at HPA {base:#x}, "
                     f"{v.second_levels}-level second stage")
    for d in s.devices:
        lines.append(f"device {d.bdf}{' ' + d.name if d.name else ''}: "
                     f"{', '.join(d.owners)}")
    for bd in s.binds:
        lines.append(f"bind {bd.process} to {bd.device} at PASID {bd.pasid}")
    for i, st in enumerate(s.steps, 1):
        lines.append(f"step {i}: {st.name or st.action}")
    lines.append("")
    if args.graph == "structure":
        lines.append(text.tree_text(g))
    else:
        for u, v, d in sorted(g.edges(data=True), key=str):
            target = g.nodes[v]['label'].replace(chr(10), ' ')
            if "gpa" in d:      # a GVA range lands at one GPA inside the VM's GPA range
                target = f"{v[1]} GPA {d['gpa']:#x}"
            lines.append(text._fit(f"{g.nodes[u]['label'].replace(chr(10), ' ')} -> "
                                   f"{target} {d.get('rights', '')}"))
    _out(args, "\n".join(lines))
    return 0


def cmd_audit(args):
    from svmkit.graphs import audit
    from svmkit.render import text
    s, b = _built(args)
    with progress("auditing"):
        a = audit(b)
    title = f"isolation audit of {s.name} ({s.model}), after {b.steps_done} of " \
            f"{len(s.steps)} steps"
    if args.format == "svg":
        from svmkit.graphs import finding_edge, structure_graph
        from svmkit.render import svg
        g = structure_graph(b)
        hl = finding_edge(g, a.findings[0]) if a.findings else None
        _out(args, svg.graph_svg(g, highlight=hl, title=title + (
            f": {len(a.findings)} findings, the first one's entry outlined" if hl else "")))
    else:
        _out(args, text.audit_text(a, title=title))
    return 0 if a.ok else 1


def cmd_compare(args):
    """The comparison (svmkit.compare, docs/compare.md) for this scenario's
    shape: its first bind's PASID, the process's first-stage levels and,
    for a VM's process, the VM's second-stage levels."""
    try:
        from svmkit.compare import compare
    except ImportError:
        raise UsageError("unavailable in this build (svmkit.compare is not installed)")
    s = _load(args.scenario)
    if not s.binds:
        raise UsageError(f"{s.name} binds no process to a device; allowed: a "
                         "scenario with at least one [[bind]]")
    b = next((x for x in s.binds if not x.process.startswith("host/")), s.binds[0])
    proc = s.get_process(b.process)
    vm = s.get_vm(proc.owner)
    with progress("comparing"):
        result = compare(p=b.pasid, n=proc.levels, m=vm.second_levels if vm else 4)
    _out(args, f"{s.name}: {b.process} at PASID {b.pasid} on each model\n\n" + result.text())
    return 0


def cmd_import(args):
    from svmkit import debugfs
    from svmkit.scenario import dumps
    try:
        with progress(f"reading {args.dir}"):
            s = debugfs.import_dir(args.dir, name=args.name)
    except ValueError as e:
        raise UsageError(str(e))
    _out(args, dumps(s))
    return 0


def cmd_exercise(args):
    from svmkit import exercise
    try:
        ex = exercise.make(args.seed, args.kind)
    except ValueError as e:
        raise UsageError(str(e))
    _out(args, ex.question + ("\n" + ex.answer if args.answers else
                              "\nCompute the result, then run again with --answers.\n"))
    return 0


EXAMPLES = {
    "walk": """examples:
  svmkit walk nested-vtd --device 00:02.0 --pasid 5 --address 0x600000
  svmkit walk userspace-driver-2017 --device 01:00.0 --pasid 1 \\
      --address 0x10000000 --access w --format json
  svmkit walk my.toml --device 00:02.0 --address 0x1000 --format svg -o walk.svg
  svmkit walk userspace-driver-2017 --device 01:00.0 --pasid 1 \\
      --address 0x10000000 --step 1       (after the first step: a fault)""",
    "show": """examples:
  svmkit show --list
  svmkit show nested-vtd                      (summary and structure tree)
  svmkit show nested-vtd --graph mapping      (GVA -> GPA -> HPA ranges)
  svmkit show nested-vtd --ops --step all     (every write and invalidation)
  svmkit show nested-vtd --format svg -o structures.svg
  svmkit show nested-vtd --format toml > mine.toml""",
    "audit": """examples:
  svmkit audit broken-isolation               (exit status 1: findings)
  svmkit audit broken-isolation --format svg -o culprit.svg
  svmkit audit two-vms-shared-device --step all""",
    "compare": """examples:
  svmkit compare nested-vtd""",
    "import-debugfs": """examples:
  sudo cp -r /sys/kernel/debug/iommu/intel /tmp/dump
  svmkit import-debugfs /tmp/dump -o machine.toml
  svmkit show machine.toml""",
    "exercise": """examples:
  svmkit exercise --seed 7
  svmkit exercise --seed 7 --answers
  svmkit exercise --seed 3 --kind first""",
}


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="svmkit", description="IOMMU Shared Virtual Memory, walk by walk.",
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="Run 'svmkit COMMAND --help' for a command's options and examples.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def cmd(name, help, fn):
        c = sub.add_parser(name, help=help, description=help, epilog=EXAMPLES[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        c.set_defaults(fn=fn)
        return c

    w = cmd("walk", "translate one DMA request and show every memory reference", cmd_walk)
    w.add_argument("scenario", metavar="SCENARIO", help="a scenario file or example name")
    w.add_argument("--device", required=True, metavar="BDF", help="PCI address, e.g. 00:02.0")
    w.add_argument("--pasid", type=_int, default=None, metavar="N",
                   help="the request's PASID (none: a request without PASID)")
    w.add_argument("--address", required=True, type=_int, metavar="A",
                   help="the DMA address (GVA, VA, IOVA or GPA as the tables make it)")
    w.add_argument("--access", choices=("r", "w", "x"), default="r")
    w.add_argument("--privileged", action="store_true", help="a supervisor request")
    w.add_argument("--no-cache", action="store_true",
                   help="turn the IOMMU's caches off: every reference of the walk is made")
    w.add_argument("--format", choices=("text", "svg", "json"), default="text")
    w.add_argument("--highlight", type=_int, default=None, metavar="N",
                   help="SVG: outline reference N")
    w.add_argument("-o", "--output", metavar="FILE")
    _steps_arg(w)

    s = cmd("show", "describe a scenario: summary, structure tree or mapping ranges", cmd_show)
    s.add_argument("scenario", metavar="SCENARIO", nargs="?")
    s.add_argument("--list", action="store_true", help="list the shipped example scenarios")
    s.add_argument("--graph", choices=("structure", "mapping"), default="structure")
    s.add_argument("--ops", action="store_true",
                   help="what the drivers wrote and invalidated, operation by operation")
    s.add_argument("--format", choices=("text", "svg", "json", "toml"), default="text")
    s.add_argument("-o", "--output", metavar="FILE")
    _steps_arg(s)

    a = cmd("audit", "what each device and PASID can reach, and what it should not",
            cmd_audit)
    a.add_argument("scenario", metavar="SCENARIO")
    a.add_argument("--format", choices=("text", "svg"), default="text",
                   help="svg: the structure graph with the first finding's entry outlined")
    a.add_argument("-o", "--output", metavar="FILE")
    _steps_arg(a)

    c = cmd("compare", "the same scenario on VT-d, SMMUv3 and AMD-Vi side by side",
            cmd_compare)
    c.add_argument("scenario", metavar="SCENARIO")
    c.add_argument("-o", "--output", metavar="FILE")

    i = cmd("import-debugfs", "read Linux intel-iommu debugfs dumps into a scenario file",
            cmd_import)
    i.add_argument("dir", metavar="DIR", help="a copy of /sys/kernel/debug/iommu/intel")
    i.add_argument("--name", default=None, help="the scenario's name")
    i.add_argument("-o", "--output", metavar="FILE")

    e = cmd("exercise", "a fresh translation problem for each seed", cmd_exercise)
    e.add_argument("--seed", type=_int, required=True, metavar="N")
    e.add_argument("--kind", choices=("nested", "first", "second"), default="nested")
    e.add_argument("--answers", action="store_true", help="show the full walk and result")
    e.add_argument("-o", "--output", metavar="FILE")
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except UsageError as e:
        sys.stderr.write(f"svmkit {args.command}: {e}\n")
        return EXIT_USAGE
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

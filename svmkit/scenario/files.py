"""Scenario files: TOML read with the standard library's ``tomllib`` and written
by a small writer here (the standard library has no TOML writer). The schema
is in docs/scenarios.md; ``schema = "svmkit-scenario/1"`` names its version.

``load(path)`` and ``save(s, path)`` round-trip: ``load(save(s))`` gives a
scenario equal to ``s`` (same dicts from :func:`to_dict`).
"""

from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ImportError:           # Python 3.10: the same parser as a package
    import tomli as tomllib

from svmkit.scenario.model import (
    HOST, SCHEMA, Bind, Device, Mapping, Process, Scenario, Step, Vm, parse_size, size_str)
from svmkit.scenario.validate import Problem, ScenarioError, check

TOP = ("schema", "name", "description", "model", "host", "options", "vm", "device", "bind", "step",
       "image")
IMAGE_KEYS = ("root_table", "ttm", "qwords", "labels")
LABEL_KEYS = ("pa", "size", "kind", "detail")
HOST_KEYS = ("memory", "phys_bits", "process")
VM_KEYS = ("name", "ram", "second_levels", "process")
PROC_KEYS = ("name", "levels", "map")
MAP_KEYS = ("va", "size", "perms", "page_size")
DEV_KEYS = ("bdf", "name", "vm")
BIND_KEYS = ("process", "device", "pasid", "second_of")
HEX_KEYS = {"va", "pa"}


class _Reader:
    """Pulls typed values out of the parsed TOML, noting each problem with
    its key path instead of stopping at the first."""

    def __init__(self, file):
        self.file = file
        self.problems: list[Problem] = []

    def bad(self, path, what, allowed=""):
        self.problems.append(Problem(path, what, allowed, self.file))

    def table(self, d, path, keys):
        if not isinstance(d, dict):
            self.bad(path, f"is a {type(d).__name__}", "a table")
            return {}
        for k in d:
            if k not in keys:
                self.bad(f"{path}.{k}" if path else k, "unknown key", ", ".join(keys))
        return d

    def array(self, d, key, path):
        v = d.get(key, [])
        if not isinstance(v, list):
            self.bad(f"{path}{key}", f"is a {type(v).__name__}", f"an array of tables ([[{key}]])")
            return []
        return v

    def get(self, d, key, path, kind, default=None, required=False):
        full = f"{path}.{key}" if path else key
        if key not in d:
            if required:
                self.bad(full, "is missing", kind)
            return default
        v = d[key]
        try:
            if kind == "size":
                return parse_size(v, full)
            if kind == "int":
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ValueError
                return v
            if kind == "str":
                if not isinstance(v, str):
                    raise ValueError
                return v
        except ValueError:
            pass
        allowed = {"size": "bytes or a string like '2 MiB'", "int": "an integer (hex allowed)",
                   "str": "a string"}[kind]
        self.bad(full, f"{v!r} is not {'a ' + kind if kind != 'int' else 'an integer'}", allowed)
        return default


def from_dict(d: dict, *, file: str | None = None, validate: bool = True) -> Scenario:
    """A Scenario from parsed TOML; ScenarioError lists every problem."""
    r = _Reader(file)
    r.table(d, "", TOP)
    schema = d.get("schema")
    if schema != SCHEMA:
        r.bad("schema", f"{schema!r} is not a supported schema" if schema is not None
              else "is missing", repr(SCHEMA))
    s = Scenario(name=r.get(d, "name", "", "str", "scenario"),
                 description=r.get(d, "description", "", "str", ""),
                 model=r.get(d, "model", "", "str", "vtd"), source=file)
    host = r.table(d.get("host", {}), "host", HOST_KEYS)
    s.memory = r.get(host, "memory", "host", "size", s.memory)
    s.phys_bits = r.get(host, "phys_bits", "host", "int", s.phys_bits)
    opts = d.get("options", {})
    s.options = dict(r.table(opts, "options", ("pasid_bits",)))

    def procs(container, path, owner):
        out = []
        for j, p in enumerate(r.array(container, "process", f"{path}.")):
            pp = f"{path}.process[{j}]"
            p = r.table(p, pp, PROC_KEYS)
            proc = Process(r.get(p, "name", pp, "str", "", required=True), owner,
                           r.get(p, "levels", pp, "int", 4))
            for k, m in enumerate(r.array(p, "map", f"{pp}.")):
                mp = f"{pp}.map[{k}]"
                m = r.table(m, mp, MAP_KEYS)
                ps = r.get(m, "page_size", mp, "size")
                proc.maps.append(Mapping(r.get(m, "va", mp, "int", 0, required=True),
                                         r.get(m, "size", mp, "size", 4096, required=True),
                                         r.get(m, "perms", mp, "str", "rw"), ps))
            out.append(proc)
        return out

    s.host_processes = procs(host, "host", HOST)
    for i, v in enumerate(r.array(d, "vm", "")):
        p = f"vm[{i}]"
        v = r.table(v, p, VM_KEYS)
        vm = Vm(r.get(v, "name", p, "str", "", required=True), r.get(v, "ram", p, "size", 0,
                                                                      required=True),
                r.get(v, "second_levels", p, "int", 4))
        vm.processes = procs(v, p, vm.name)
        s.vms.append(vm)
    for i, x in enumerate(r.array(d, "device", "")):
        p = f"device[{i}]"
        x = r.table(x, p, DEV_KEYS)
        vm = x.get("vm", HOST)
        if isinstance(vm, list) and all(isinstance(v, str) for v in vm) and vm:
            owner = list(vm)
        else:
            owner = r.get(x, "vm", p, "str", HOST)
        s.devices.append(Device(r.get(x, "bdf", p, "str", "", required=True),
                                r.get(x, "name", p, "str"), owner))
    for i, x in enumerate(r.array(d, "bind", "")):
        p = f"bind[{i}]"
        x = r.table(x, p, BIND_KEYS)
        proc = r.get(x, "process", p, "str", "", required=True)
        s.binds.append(Bind(proc if "/" in proc else f"{HOST}/{proc}",
                            r.get(x, "device", p, "str", "", required=True),
                            r.get(x, "pasid", p, "int", 0, required=True),
                            r.get(x, "second_of", p, "str")))
    for i, x in enumerate(r.array(d, "step", "")):
        p = f"step[{i}]"
        if not isinstance(x, dict):
            r.bad(p, f"is a {type(x).__name__}", "a table")
            continue
        args = {k: v for k, v in x.items() if k not in ("action", "name")}
        if "size" in args:
            args["size"] = r.get(args, "size", p, "size", 4096)
        if "page_size" in args:
            args["page_size"] = r.get(args, "page_size", p, "size")
        if isinstance(args.get("process"), str) and "/" not in args["process"]:
            args["process"] = f"{HOST}/{args['process']}"
        s.steps.append(Step(r.get(x, "action", p, "str", "", required=True), args,
                            r.get(x, "name", p, "str")))
    if "image" in d:
        s.image = _read_image(r, d["image"])
    if r.problems:
        raise ScenarioError(r.problems)
    if validate:
        check(s, file)
    return s


def _read_image(r, im):
    """``[image]``: qwords as "PA VALUE" hex strings (64-bit values do not
    fit TOML's signed integers), labels as tables."""
    im = r.table(im, "image", IMAGE_KEYS)
    out = {"root_table": r.get(im, "root_table", "image", "int", 0, required=True),
           "ttm": r.get(im, "ttm", "image", "str", "scalable"), "qwords": [], "labels": []}
    if out["ttm"] not in ("scalable", "legacy"):
        r.bad("image.ttm", f"{out['ttm']!r}", "'scalable' or 'legacy'")
    for i, q in enumerate(r.array(im, "qwords", "image.")):
        parts = q.split() if isinstance(q, str) else []
        try:
            pa, v = (int(x, 16) for x in parts)
            if pa % 8 or not 0 <= v < 1 << 64:
                raise ValueError
        except ValueError:
            r.bad(f"image.qwords[{i}]", f"{q!r} is not 'PA VALUE'",
                  "two hex numbers, PA 8-byte aligned, e.g. '0x1000 0x2003'")
            continue
        out["qwords"].append((pa, v))
    for i, lab in enumerate(r.array(im, "labels", "image.")):
        p = f"image.labels[{i}]"
        lab = r.table(lab, p, LABEL_KEYS)
        out["labels"].append((r.get(lab, "pa", p, "int", 0, required=True),
                              r.get(lab, "size", p, "size", 4096),
                              r.get(lab, "kind", p, "str", "", required=True),
                              r.get(lab, "detail", p, "str", "")))
    return out


def to_dict(s: Scenario) -> dict:
    """The scenario as plain data in the file's shape (sizes as '2 MiB')."""
    def proc(p):
        return {"name": p.name, "levels": p.levels,
                "map": [{k: v for k, v in (("va", m.va), ("size", size_str(m.size)),
                                            ("perms", m.perms),
                                            ("page_size", None if m.page_size is None
                                             else size_str(m.page_size))) if v is not None}
                        for m in p.maps]}

    d = {"schema": SCHEMA, "name": s.name, "description": s.description, "model": s.model,
         "host": {"memory": size_str(s.memory), "phys_bits": s.phys_bits,
                  "process": [proc(p) for p in s.host_processes]}}
    if s.options:
        d["options"] = dict(s.options)
    d["vm"] = [{"name": v.name, "ram": size_str(v.ram), "second_levels": v.second_levels,
                "process": [proc(p) for p in v.processes]} for v in s.vms]
    d["device"] = [{k: v for k, v in (("bdf", x.bdf), ("name", x.name), ("vm", x.owner))
                    if v is not None and not (k == "vm" and v == HOST)} for x in s.devices]
    d["bind"] = [{k: v for k, v in (("process", b.process), ("device", b.device),
                                     ("pasid", b.pasid), ("second_of", b.second_of))
                  if v is not None} for b in s.binds]
    steps = []
    for st in s.steps:
        e = {"action": st.action}
        if st.name:
            e["name"] = st.name
        for k, v in st.args.items():
            e[k] = size_str(v) if k in ("size", "page_size") and isinstance(v, int) else v
        steps.append(e)
    d["step"] = steps
    if s.image is not None:
        im = s.image
        d["image"] = {"root_table": im["root_table"], "ttm": im["ttm"],
                      "qwords": [f"{pa:#x} {v:#018x}" for pa, v in im["qwords"]],
                      "labels": [{"pa": pa, "size": size_str(n), "kind": k, "detail": det}
                                 for pa, n, k, det in im["labels"]]}
    return d


# -- writing -----------------------------------------------------------------------------------

def _scalar(k, v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v:#x}" if k in HEX_KEYS else str(v)
    if isinstance(v, str):
        # TOML basic strings: escape backslash, quote and every control char.
        esc = "".join("\\\\" if c == "\\" else '\\"' if c == '"' else
                      f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7f else c for c in v)
        return f'"{esc}"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(a)} = {_scalar(a, b)}" for a, b in v.items()) + " }"
    if isinstance(v, list):
        if v and (all(isinstance(x, dict) for x in v) or len(v) > 8):
            return "[\n" + "".join(f"  {_scalar(k, x)},\n" for x in v) + "]"
        return "[" + ", ".join(_scalar(k, x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _scalar("", k)


def dumps(s: Scenario) -> str:
    """The scenario as TOML text."""
    d = to_dict(s)
    out = []
    for k in ("schema", "name", "description", "model"):
        out.append(f"{k} = {_scalar(k, d[k])}")
    out.append("")
    out.append("[host]")
    out.append(f"memory = {_scalar('memory', d['host']['memory'])}")
    out.append(f"phys_bits = {d['host']['phys_bits']}")
    if "options" in d:
        out += ["", "[options]"] + [f"{_key(k)} = {_scalar(k, v)}" for k, v in d["options"].items()]

    def procs(prefix, plist):
        for p in plist:
            out.extend(["", f"[[{prefix}.process]]", f"name = {_scalar('name', p['name'])}",
                        f"levels = {p['levels']}", f"map = {_scalar('map', p['map'])}"])

    procs("host", d["host"]["process"])
    for v in d["vm"]:
        out.extend(["", "[[vm]]"] + [f"{k} = {_scalar(k, v[k])}" for k in ("name", "ram",
                                                                             "second_levels")])
        procs("vm", v["process"])
    for key in ("device", "bind", "step"):
        for e in d[key]:
            out.extend(["", f"[[{key}]]"] + [f"{_key(k)} = {_scalar(k, x)}" for k, x in e.items()])
    if "image" in d:
        im = d["image"]
        out += ["", "[image]", f"root_table = {im['root_table']:#x}",
                f"ttm = {_scalar('ttm', im['ttm'])}",
                f"qwords = {_scalar('qwords', im['qwords'])}",
                f"labels = {_scalar('labels', im['labels'])}"]
    return "\n".join(out) + "\n"


def loads(text: str, *, file: str | None = None, validate: bool = True) -> Scenario:
    """Parse TOML text; a syntax error becomes a ScenarioError with the line."""
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError([Problem("(syntax)", str(e), "TOML 1.0", file)]) from None
    return from_dict(d, file=file, validate=validate)


def load(path, *, validate: bool = True) -> Scenario:
    """Read a scenario file (a path, or a name of a shipped example such as
    ``"userspace-driver-2017"``, see :func:`examples`)."""
    p = Path(path)
    if not p.exists() and str(path) in examples():
        p = examples()[str(path)]
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError([Problem("(file)", f"cannot read: {e.strerror}",
                                     "a readable TOML file or an example name: "
                                     + ", ".join(examples()), str(path))]) from None
    return loads(text, file=str(path), validate=validate)


def save(s: Scenario, path) -> None:
    Path(path).write_text(dumps(s), encoding="utf-8")


def examples() -> dict:
    """Name -> path of the scenario files shipped in ``svmkit/scenarios``."""
    root = Path(__file__).resolve().parent.parent / "scenarios"
    return {p.stem: p for p in sorted(root.glob("*.toml"))}

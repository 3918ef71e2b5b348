"""Regenerate ``edgegan_runtime/_tflite_schema.py`` from the flatc-generated Python schema of ai-edge-litert.

The runtime verifies a .tflite flatbuffer in pure Python before any native interpreter sees it, so it
needs the layout of every table (which vtable slot holds a scalar, a string, a vector or a sub-table).
That layout is read here, once, from ``ai_edge_litert.schema_py_generated`` (flatc output for
tensorflow/compiler/mlir/lite/schema/schema.fbs) and frozen into a small module, so the runtime needs
neither ai-edge-litert nor the flatbuffers package to verify a file.

    python runtime/tools/gen_tflite_schema.py > runtime/edgegan_runtime/_tflite_schema.py
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import sys

FLAG_SIZES = {"Bool": 1, "Uint8": 1, "Int8": 1, "Uint16": 2, "Int16": 2, "Uint32": 4, "Int32": 4,
              "Uint64": 8, "Int64": 8, "Float32": 4, "Float64": 8}


def main() -> None:
    spec = importlib.util.find_spec("ai_edge_litert.schema_py_generated")
    src = open(spec.origin).read()
    classes = re.split(r"^class ", src, flags=re.M)[1:]
    bodies = {c.split("(", 1)[0]: c for c in classes}
    unions: dict[str, dict[int, str]] = {}
    union_names = set(re.findall(r"^def (\w+)Creator\(", src, flags=re.M))
    for name in union_names:
        members = re.findall(r"^    (\w+) = (\d+)$", bodies[name], flags=re.M)
        unions[name] = {int(v): k for k, v in members if k != "NONE"}
    # (table, accessor) -> union enum, from the object API: `X = FooCreator(self.barType, obj.Bar())`
    union_of = {}
    for tname, body in bodies.items():
        if tname.endswith("T"):
            for u, acc in re.findall(r"(\w+)Creator\(self\.\w+Type, \w+\.(\w+)\(\)\)", body):
                union_of[(tname[:-1], acc)] = u
    tables: dict[str, list] = {}
    for tname, body in bodies.items():
        if "def Init(self, buf, pos)" not in body or tname.endswith("T") and tname[:-1] in bodies:
            continue
        fields = {}
        for m in re.finditer(r"    def (\w+)\(self(?:, j)?\):\n(.*?)(?=\n    (?:#|def|@)|\Z)", body, flags=re.S):
            acc, code = m.group(1), m.group(2)
            slot = re.search(r"self\._tab\.Offset\((\d+)\)", code)
            if not slot or acc.endswith(("AsNumpy", "Length", "IsNone")):
                continue
            slot = int(slot.group(1))
            obj = re.search(r"obj = (\w+)\(\)", code)
            if "self._tab.Union(" in code:
                kind = ("u", union_of[(tname, acc)])
            elif "self._tab.Vector(o)" in code:
                if "Indirect" in code and obj:
                    kind = ("vt", obj.group(1))
                elif "self._tab.String(" in code:
                    kind = ("vstr", None)
                elif obj:
                    raise SystemExit(f"{tname}.{acc}: vector of structs not supported")
                else:
                    kind = ("vs", FLAG_SIZES[re.search(r"Get\(flatbuffers\.number_types\.(\w+)Flags", code).group(1)])
            elif "self._tab.String(o + self._tab.Pos)" in code:
                kind = ("str", None)
            elif "Indirect(o + self._tab.Pos)" in code and obj:
                kind = ("t", obj.group(1))
            elif obj:
                raise SystemExit(f"{tname}.{acc}: inline struct not supported")
            else:
                kind = ("s", FLAG_SIZES[re.search(r"Get\(flatbuffers\.number_types\.(\w+)Flags", code).group(1)])
            fields[slot] = (slot, *kind)
        tables[tname] = [list(fields[k]) for k in sorted(fields)]
    version = importlib.metadata.version("ai-edge-litert")
    print(f'"""TFLite flatbuffer table layouts, generated from ai-edge-litert {version} by runtime/tools/gen_tflite_schema.py.')
    print()
    print("Do not edit. TABLES: name -> [[vtable offset, kind, arg], ...], kind: s scalar (arg: bytes),")
    print("str string, t table, vs vector of scalars (arg: element bytes), vt vector of tables, vstr vector")
    print("of strings, u union (arg: union name; its type byte is the slot before). UNIONS: name -> {type: table}.")
    print()
    print("Kept as one JSON string: compiling the same data as Python literals costs 1.4 MB of peak memory")
    print('when no .pyc is cached, a third of what the rest of the runtime needs.')
    print('"""')
    print()
    print("import json")
    print()
    text = json.dumps({"tables": tables, "unions": unions}, separators=(",", ":"), sort_keys=True)
    chunks = [text[i : i + 100] for i in range(0, len(text), 100)]
    print("_DATA = json.loads(")
    for c in chunks:
        print(f"    {c!r}")
    print(")")
    print('TABLES: dict[str, list] = _DATA["tables"]')
    print('UNIONS: dict[str, dict[int, str]] = {u: {int(k): v for k, v in m.items()} for u, m in _DATA["unions"].items()}')

if __name__ == "__main__":
    sys.exit(main())

"""Writes next_plaid_client.json: the public surface of NextPlaid's Python SDK (next_plaid_client),
read from its source with `ast` (nothing is imported or run): what the package exports, each client
method with its parameters, and each model dataclass with its fields. test/readme-sdk.test.ts checks
README.md's Python snippet against it, so the README cannot show a method the SDK does not have.

    python3 test/fixtures-sdk/generate.py <next-plaid checkout>/next-plaid-api/python-sdk/next_plaid_client
"""
import ast
import json
import os
import re
import sys

src = sys.argv[1]


def parse(name):
    with open(os.path.join(src, name)) as f:
        return ast.parse(f.read())


def params(fn):
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    return [n for n in names if n != "self"]


init = parse("__init__.py")
exports = []
for node in init.body:
    if isinstance(node, ast.ImportFrom):
        exports += [a.asname or a.name for a in node.names]
    if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets):
        version = node.value.value

classes = {}
for file in ["_base.py", "client.py", "async_client.py", "models.py", "exceptions.py"]:
    for node in parse(file).body:
        if not isinstance(node, ast.ClassDef):
            continue
        methods = {}
        fields = []
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                methods[item.name] = params(item)
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                fields.append(item.target.id)
        bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
        classes[node.name] = {"bases": bases, "methods": methods, "fields": fields}

# Inherited methods, flattened.
def all_methods(name):
    c = classes.get(name)
    if not c:
        return {}
    out = {}
    for b in c["bases"]:
        out.update(all_methods(b))
    out.update(c["methods"])
    return out

out = {
    "package": "next_plaid_client",
    "version": version,
    "exports": sorted(exports),
    "classes": {n: {"methods": all_methods(n), "fields": c["fields"]} for n, c in sorted(classes.items())},
}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "next_plaid_client.json"), "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write("\n")
print(f"next_plaid_client {version}: {len(exports)} exports, {len(classes)} classes")

"""docs/architecture.md's layer table is the import rule: every module of hftfeed/ imports only
the layers its row allows (read from the table itself, so the doc and the code cannot drift)."""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "hftfeed")


def layer_rules():
    """[(layer, allowed dotted prefixes or "*")] in table order, e.g. ("tools.sim", {...})."""
    with open(os.path.join(ROOT, "docs", "architecture.md"), encoding="utf-8") as f:
        text = f.read()
    rules = []
    for line in text.splitlines():
        m = re.match(r"\| `hftfeed/([a-z_/]+?)(?:/|\.py)` \| .* \| (.*) \|$", line)
        if not m:
            continue
        layer = m.group(1).strip("/").replace("/", ".")
        cell = m.group(2)
        allowed = set(name.replace("/", ".") for name in re.findall(r"`([a-z_./]+)`", cell))
        if "anything" in cell:
            allowed = "*"
        elif "everything above" in cell:
            allowed |= set(layer for layer, _ in rules) | {"errors"}
        rules.append((layer, allowed))
    return rules


def layer_of(module, layers):
    """The longest layer name that ``module`` (dotted, without "hftfeed.") belongs to."""
    best = None
    for layer in layers:
        if module == layer or module.startswith(layer + "."):
            if best is None or len(layer) > len(best):
                best = layer
    return best


def imports_of(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:        # "from hftfeed.venues import registry": venues.registry
                yield node.module + "." + alias.name


def test_the_table_covers_every_layer():
    layers = [layer for layer, _ in layer_rules()]
    assert {"codecs", "core", "venues", "transport", "runtime", "pipeline", "app", "tools.sim",
            "tools.monitor", "tools.bench", "errors"} <= set(layers)


def test_every_import_is_allowed_by_the_layer_table():
    rules = dict(layer_rules())
    layers = list(rules)
    bad = []
    for folder, _dirs, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            module = os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, ".")
            own = layer_of(module, layers)
            if own is None:
                continue                # hftfeed/__init__.py: the version only
            allowed = rules[own]
            for target in imports_of(path):
                if not target.startswith("hftfeed."):
                    continue
                target = target[len("hftfeed."):]
                other = layer_of(target, layers)
                if other in (None, own) or allowed == "*":
                    continue
                if not any(target == a or target.startswith(a + ".") for a in allowed):
                    bad.append("%s imports hftfeed.%s" % (module, target))
    assert bad == []

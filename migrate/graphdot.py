"""A written plan as a Graphviz DOT picture (``meshmigrate graph``): the namespace call graph,
each namespace inside the move step that moves it, for a review meeting.

Built from plan.json alone, so it works on any plan folder, offline. SVG is rendered by
Graphviz's own ``dot`` where it is installed; nothing here imports a graph library.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from migrate.errors import MigrateError, SourceError


def _q(text: str) -> str:
    """A DOT double-quoted ID (https://graphviz.org/doc/info/lang.html: only the quote needs
    escaping inside one; backslashes are escaped too so none starts an escape)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def load_plan(plan_dir: str | Path) -> dict[str, Any]:
    """plan.json of a plan folder."""
    path = Path(plan_dir) / "plan.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: not a meshmigrate plan ({exc})") from None


def plan_dot(plan: dict[str, Any]) -> str:
    """The DOT text: one cluster per move step (labelled with the step that enforces its
    namespaces' policy), an edge per caller -> callee dependency (its reasons as tooltip),
    and the ingress gateway, which moves last, with dashed edges to the namespaces it calls."""
    enforce = {ns: s["id"] for s in plan["steps"] if s["kind"] == "enforce"
               for ns in s["namespaces"]}
    source, target = plan["source"], plan["target"]
    title = f"{source['mesh']} to {target['mesh']} {target['version']}: namespaces by move step"
    lines = ["digraph meshmigrate {", "  rankdir=LR;",
             '  node [shape=box, style=rounded, fontname="Helvetica"];',
             f"  label={_q(title)};", "  labelloc=t;"]
    for step in plan["steps"]:
        if step["kind"] != "move":
            continue
        later = sorted({enforce[ns] for ns in step["namespaces"] if ns in enforce})
        label = step["id"] + (f" (enforced at {', '.join(later)})" if later else "")
        lines.append(f"  subgraph {_q('cluster_' + step['id'])} {{")
        lines.append(f"    label={_q(label)};")
        lines += [f"    {_q(ns)};" for ns in step["namespaces"]]
        lines.append("  }")
    order = plan["order"]
    if order["ingress_namespaces"]:
        lines.append(f'  {_q("ingress gateway (last)")} [shape=ellipse];')
        lines += [f'  {_q("ingress gateway (last)")} -> {_q(ns)} [style=dashed];'
                  for ns in order["ingress_namespaces"]]
    for dep in order["dependencies"]:
        tooltip = "; ".join(dep["reasons"])
        lines.append(f"  {_q(dep['caller'])} -> {_q(dep['callee'])} [tooltip={_q(tooltip)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(dot_text: str) -> str:
    """SVG from Graphviz's ``dot``; a clear error when it is not installed."""
    dot = shutil.which("dot")
    if dot is None:
        raise MigrateError("SVG needs Graphviz's `dot`, which is not on PATH: install graphviz "
                           "(apt install graphviz, brew install graphviz), or write DOT with "
                           "--format dot and render it elsewhere")
    done = subprocess.run([dot, "-Tsvg"], input=dot_text, capture_output=True, text=True,
                          timeout=120, check=False)
    if done.returncode != 0:
        raise MigrateError(f"dot -Tsvg failed: {done.stderr.strip()}")
    return done.stdout

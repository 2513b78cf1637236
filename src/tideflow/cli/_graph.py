"""Draw a compiled flow: ``tideflow graph`` as text, Graphviz dot or Mermaid.

Two sources, both reached through public names: the flow tree (``iter_nodes()``,
``iter_links()`` and their metadata, each flow's ``retry``) gives the nesting, the
links as written or inferred, the deciders and the retry scopes; the engine's
compiled plan (``Engine.compilation``) gives the order the engine will follow between
atoms (``atom_order()``: the bookkeeping nodes each flow adds collapsed away, and which
values each atom takes from which) and what must come from the store
(``store_requirements()``): both public, documented methods of the plan.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import tideflow

__all__ = ["Drawing", "draw", "render"]

_PATTERNS = {
    tideflow.LinearFlow: "linear",
    tideflow.UnorderedFlow: "unordered",
    tideflow.TargetedFlow: "targeted",
    tideflow.GraphFlow: "graph",
}


def _pattern(flow: tideflow.Flow) -> str:
    for cls in type(flow).__mro__:
        if cls in _PATTERNS:
            return _PATTERNS[cls]
    return type(flow).__name__


def _callable_name(func: Any) -> str:
    return str(getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or func)


@dataclass
class Box:
    """One flow of the tree: its pattern, its retry controller, its children."""

    name: str
    pattern: str
    retry: str | None
    retry_kind: str | None
    children: list[Box | str] = field(default_factory=list)

    def atoms(self) -> Iterator[str]:
        """Every atom under this flow, depth first."""
        if self.retry is not None:
            yield self.retry
        for child in self.children:
            if isinstance(child, Box):
                yield from child.atoms()
            else:
                yield child


@dataclass
class Link:
    """An ordering written in a flow (or inferred by a graph flow from requires/provides)."""

    flow: str
    before: str
    after: str
    how: str  # "order", "inferred", "link"
    symbols: tuple[str, ...] = ()
    decider: str | None = None
    depth: str | None = None


@dataclass
class Drawing:
    """What ``tideflow graph`` shows, in any format."""

    root: Box
    atoms: dict[str, tideflow.Atom]
    #: (before, after) -> symbols passed along that edge: the compiled order between atoms
    edges: dict[tuple[str, str], set[str]]
    links: list[Link]
    #: symbol -> atoms that need it from the store
    external: dict[str, list[str]]


def _tree(flow: tideflow.Flow, atoms: dict[str, tideflow.Atom], links: list[Link]) -> Box:
    retry = flow.retry
    box = Box(
        flow.name,
        _pattern(flow),
        retry.name if retry is not None else None,
        type(retry).__name__ if retry is not None else None,
    )
    if retry is not None:
        atoms[retry.name] = retry
    for child, _meta in flow.iter_nodes():
        if isinstance(child, tideflow.Flow):
            box.children.append(_tree(child, atoms, links))
        else:
            atoms[child.name] = child
            box.children.append(child.name)
    for before, after, meta in flow.iter_links():
        decider = meta.get("decider")
        reasons = tuple(sorted(meta.get("reasons") or ()))
        if meta.get("invariant"):
            how = "order"
        elif meta.get("manual") or decider is not None:
            how = "link"
        else:
            how = "inferred"
        links.append(
            Link(
                flow.name,
                before.name,
                after.name,
                how,
                reasons,
                _callable_name(decider) if decider is not None else None,
                str(meta["decider_depth"]) if meta.get("decider_depth") else None,
            )
        )
    return box


def draw(engine: tideflow.Engine) -> Drawing:
    """Compile the engine's flow and gather what a drawing shows."""
    plan = engine.compilation
    atoms: dict[str, tideflow.Atom] = {}
    links: list[Link] = []
    root = _tree(engine.flow, atoms, links)
    edges = {edge: set(symbols) for edge, symbols in plan.atom_order().items()}
    external = plan.store_requirements()
    return Drawing(root, atoms, edges, links, external)


# -- text -----------------------------------------------------------------------------


def _atom_line(atom: tideflow.Atom) -> str:
    kind = "retry" if isinstance(atom, tideflow.Retry) else "task"
    parts = [f"{kind} {atom.name}"]
    required = sorted(atom.requires - atom.optional)
    optional = sorted(atom.optional)
    if required or optional:
        parts.append("requires " + ", ".join([*required, *(f"{o}?" for o in optional)]))
    if atom.provides:
        parts.append("provides " + ", ".join(sorted(atom.provides)))
    return "  ".join(parts)


def _text_tree(box: Box, drawing: Drawing, prefix: str, lines: list[str]) -> None:
    items: list[Box | str] = list(box.children)
    for index, child in enumerate(items):
        last = index == len(items) - 1
        branch, deeper = ("└─ ", "   ") if last else ("├─ ", "│  ")
        if isinstance(child, Box):
            lines.append(prefix + branch + _box_line(child))
            _text_tree(child, drawing, prefix + deeper, lines)
        else:
            lines.append(prefix + branch + _atom_line(drawing.atoms[child]))


def _box_line(box: Box) -> str:
    line = f"flow {box.name} ({box.pattern})"
    if box.retry is not None:
        line += f"  retry {box.retry} ({box.retry_kind})"
    return line


def _text(drawing: Drawing) -> str:
    lines = [_box_line(drawing.root)]
    _text_tree(drawing.root, drawing, "", lines)
    lines += ["", "order (compiled; values passed in brackets):"]
    for (before, after), symbols in drawing.edges.items():
        label = f"  [{', '.join(sorted(symbols))}]" if symbols else ""
        lines.append(f"  {before} -> {after}{label}")
    if not drawing.edges:
        lines.append("  (none: every atom may run at once)")
    graph_links = [link for link in drawing.links if link.how != "order"]
    if graph_links:
        lines += ["", "graph links:"]
        for link in graph_links:
            line = f"  {link.before} -> {link.after}  {link.how}"
            if link.symbols:
                line += f" ({', '.join(link.symbols)})"
            if link.decider is not None:
                line += f"  decider {link.decider}" + (f" depth {link.depth}" if link.depth else "")
            lines.append(line)
    scopes = list(_scopes(drawing.root))
    if scopes:
        lines += ["", "retry scopes:"]
        for box in scopes:
            guarded = [a for a in box.atoms() if a != box.retry]
            lines.append(
                f"  {box.retry} ({box.retry_kind}) guards flow {box.name}: {', '.join(guarded)}"
            )
    if drawing.external:
        lines += ["", "from the store: " + ", ".join(sorted(drawing.external))]
    return "\n".join(lines)


def _scopes(box: Box) -> Iterator[Box]:
    if box.retry is not None:
        yield box
    for child in box.children:
        if isinstance(child, Box):
            yield from _scopes(child)


# -- dot and mermaid --------------------------------------------------------------------


def _dot_id(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _find(box: Box, name: str) -> Box | None:
    if box.name == name:
        return box
    for child in box.children:
        if isinstance(child, Box) and (found := _find(child, name)) is not None:
            return found
    return None


def _first_atom(drawing: Drawing, name: str) -> str:
    """``name`` if it is an atom, else the first atom of the flow of that name."""
    if name in drawing.atoms:
        return name
    box = _find(drawing.root, name)
    return next(box.atoms(), name) if box is not None else name


def _dot(drawing: Drawing) -> str:
    lines = [f"digraph {_dot_id(drawing.root.name)} {{", "  compound=true;", "  rankdir=LR;"]
    counter = iter(range(1_000_000))

    def cluster(box: Box, indent: str) -> None:
        label = f"{box.name} ({box.pattern})"
        if box.retry is not None:
            label += f"\nretry {box.retry} ({box.retry_kind}) guards this flow"
        lines.append(f"{indent}subgraph cluster_{next(counter)} {{")
        lines.append(f"{indent}  label={_dot_id(label)};")
        if box.retry is not None:
            lines.append(f"{indent}  {_dot_id(box.retry)} [shape=diamond];")
        for child in box.children:
            if isinstance(child, Box):
                cluster(child, indent + "  ")
            else:
                lines.append(f"{indent}  {_dot_id(child)} [shape=box];")
        lines.append(f"{indent}}}")

    cluster(drawing.root, "  ")
    for (before, after), symbols in drawing.edges.items():
        attrs = f" [label={_dot_id(', '.join(sorted(symbols)))}]" if symbols else ""
        lines.append(f"  {_dot_id(before)} -> {_dot_id(after)}{attrs};")
    for link in drawing.links:
        if link.decider is not None:
            lines.append(
                f"  {_dot_id(_first_atom(drawing, link.before))} -> "
                f"{_dot_id(_first_atom(drawing, link.after))} "
                f"[style=dashed, label={_dot_id('decider ' + link.decider)}];"
            )
    lines.append("}")
    return "\n".join(lines)


def _mermaid_id(name: str, ids: dict[str, str]) -> str:
    if name not in ids:
        ids[name] = f"n{len(ids)}_" + re.sub(r"\W", "_", name)
    return ids[name]


def _mermaid_label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def _mermaid(drawing: Drawing) -> str:
    ids: dict[str, str] = {}
    lines = ["flowchart LR"]

    def cluster(box: Box, indent: str) -> None:
        label = f"{box.name} ({box.pattern})"
        if box.retry is not None:
            label += f" retry {box.retry}"
        lines.append(
            f"{indent}subgraph {_mermaid_id('flow:' + box.name, ids)}[{_mermaid_label(label)}]"
        )
        if box.retry is not None:
            lines.append(f"{indent}  {_mermaid_id(box.retry, ids)}{{{_mermaid_label(box.retry)}}}")
        for child in box.children:
            if isinstance(child, Box):
                cluster(child, indent + "  ")
            else:
                lines.append(f"{indent}  {_mermaid_id(child, ids)}[{_mermaid_label(child)}]")
        lines.append(f"{indent}end")

    cluster(drawing.root, "  ")
    for (before, after), symbols in drawing.edges.items():
        label = f"|{_mermaid_label(', '.join(sorted(symbols)))}|" if symbols else ""
        lines.append(f"  {_mermaid_id(before, ids)} -->{label} {_mermaid_id(after, ids)}")
    for link in drawing.links:
        if link.decider is not None:
            before = ids.get(link.before) or _mermaid_id("flow:" + link.before, ids)
            after = ids.get(link.after) or _mermaid_id("flow:" + link.after, ids)
            lines.append(f"  {before} -.->|{_mermaid_label('decider ' + link.decider)}| {after}")
    return "\n".join(lines)


def render(drawing: Drawing, fmt: str) -> str:
    """The drawing as ``text``, ``dot`` or ``mermaid``."""
    if fmt == "dot":
        return _dot(drawing)
    if fmt == "mermaid":
        return _mermaid(drawing)
    return _text(drawing)

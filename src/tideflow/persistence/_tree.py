"""A read-only view of a store's records as a small tree of paths, for looking at a run.

The tree has three directories under ``/``: ``books`` (one node per log book, whose
children link to its flow records), ``flow_details`` (one node per flow record, whose
children link to its atom records) and ``atom_details`` (one node per atom record).
Each record node's value is the record described as a dict. This is the layout TaskFlow
programs print from the memory store (``backend.memory.pformat()``) and walk with
``ls``/``ls_r``.

The view is rebuilt from the records each time it is asked something, so it always
shows them as they are now; it never changes them (records are changed through a
connection). Building it costs one pass over the records: it is meant for debugging,
not for a hot path.
"""

from __future__ import annotations

import os
import posixpath
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tideflow.errors import NotFoundError
from tideflow.persistence.models import AtomDetail, FlowDetail, LogBook, RetryDetail

__all__ = ["RecordSource", "RecordTree"]

#: What the tree shows: the log books, and flow records that belong to no book.
RecordSource = Callable[[], tuple[Iterable[LogBook], Iterable[FlowDetail]]]


def _show_book(book: LogBook) -> dict[str, Any]:
    return {
        "name": book.name,
        "uuid": book.uuid,
        "meta": dict(book.meta),
        "created_at": book.created_at,
        "updated_at": book.updated_at,
    }


# tideflow's own descriptions, whatever a subclass's to_dict() says
def _show_flow(flow_detail: FlowDetail) -> dict[str, Any]:
    data = FlowDetail.to_dict(flow_detail)
    del data["atoms"]  # they are the node's children
    return data


def _show_atom(atom_detail: AtomDetail) -> dict[str, Any]:
    if isinstance(atom_detail, RetryDetail):
        return RetryDetail.to_dict(atom_detail)
    return AtomDetail.to_dict(atom_detail)


class _Node:
    """One path: a directory, a record (``value``) or a link to another path (``target``)."""

    __slots__ = ("children", "name", "parent", "path", "target", "value")

    def __init__(
        self, name: str, path: str, parent: _Node | None, value: Any = None, target: str = ""
    ) -> None:
        self.name = name
        self.path = path
        self.parent = parent
        self.value = value
        self.target = target
        self.children: list[_Node] = []

    def add(self, name: str, value: Any = None, target: str = "") -> _Node:
        path = posixpath.join(self.path, name)
        child = _Node(name, path, self, value, target)
        self.children.append(child)
        return child

    def label(self) -> str:
        return f"{self.name} (link to {self.target})" if self.target else self.name


class RecordTree:
    """The records of a store as a tree of paths (read-only; rebuilt on every question).

    ``render_book``, ``render_flow`` and ``render_atom`` describe one record as the
    value of its node; by default they use the records' own ``to_dict()``.
    """

    #: The root of every path.
    root_path = posixpath.sep

    def __init__(
        self,
        source: RecordSource,
        *,
        render_book: Callable[[LogBook], Any] = _show_book,
        render_flow: Callable[[FlowDetail], Any] = _show_flow,
        render_atom: Callable[[AtomDetail], Any] = _show_atom,
    ) -> None:
        self._source = source
        self._render_book = render_book
        self._render_flow = render_flow
        self._render_atom = render_atom

    # -- paths ------------------------------------------------------------------------

    @classmethod
    def normpath(cls, path: str) -> str:
        """``path`` normalised; it must be absolute (start with ``/``)."""
        if not path:
            raise ValueError("an empty path names nothing in the tree; paths start with '/'")
        if not path.startswith(cls.root_path):
            raise ValueError(f"path {path!r} is not absolute: paths in the tree start with '/'")
        return posixpath.normpath(path)

    #: Split a path into ``(head, tail)``.
    split = staticmethod(posixpath.split)

    @staticmethod
    def join(*pieces: str) -> str:
        """Join path pieces with ``/``."""
        return posixpath.sep.join(pieces)

    # -- reading ----------------------------------------------------------------------

    def __getitem__(self, path: str) -> Any:
        """The value at ``path`` (following links); NotFoundError if there is none."""
        return self._value(path)

    def get(self, path: str, default: Any = None) -> Any:
        """The value at ``path`` (following links), or ``default`` if there is no such path."""
        try:
            return self._value(path)
        except NotFoundError:
            return default

    def ls(self, path: str, absolute: bool = False) -> list[str]:
        """The names (or, with ``absolute``, the paths) of ``path``'s children."""
        node = self._node(path)
        return [child.path if absolute else child.name for child in node.children]

    def ls_r(self, path: str, absolute: bool = False) -> list[str]:
        """Every path below ``path``, breadth first, each level's children latest first.

        Paths are relative to ``path`` unless ``absolute``. (The order is the one
        TaskFlow's memory store lists.)
        """
        node = self._node(path)
        prefix = len(node.path.rstrip(posixpath.sep)) + 1
        return [n.path if absolute else n.path[prefix:] for n in self._breadth_first(node)]

    def pformat(self) -> str:
        """The tree drawn with one path per line, links shown with their target."""
        root = self._build()
        lines = [root.name]
        for node in self._depth_first(root):
            parts = []
            ancestor = node.parent
            # for each ancestor below the root: a bar if more siblings follow it
            while ancestor is not None and ancestor.parent is not None:
                siblings = ancestor.parent.children
                parts.append("   " if siblings[-1] is ancestor else "|  ")
                ancestor = ancestor.parent
            lines.append("".join(reversed(parts)) + "|__" + node.label())
        return os.linesep.join(lines)

    def __str__(self) -> str:
        return self.pformat()

    # -- writing is done through a connection ------------------------------------------

    def _read_only(self, *args: object, **kwargs: object) -> None:
        raise TypeError(
            "the record tree is a read-only view of the store's records; change records "
            "through a connection (save_logbook, update_flow_details, update_atom_details, "
            "destroy_logbook, clear_all)"
        )

    __setitem__ = __delitem__ = delete = clear = ensure_path = symlink = _read_only

    # -- building ---------------------------------------------------------------------

    def _build(self) -> _Node:
        root = _Node(self.root_path, self.root_path, None)
        books_dir = root.add("books")
        flows_dir = root.add("flow_details")
        atoms_dir = root.add("atom_details")
        books, loose = self._source()
        flows: dict[str, FlowDetail] = {}
        for book in books:
            book_node = books_dir.add(book.uuid, self._render_book(book))
            for flow_detail in book:
                book_node.add(flow_detail.uuid, target=f"{flows_dir.path}/{flow_detail.uuid}")
                flows.setdefault(flow_detail.uuid, flow_detail)
        for flow_detail in loose:
            flows.setdefault(flow_detail.uuid, flow_detail)
        atoms: dict[str, AtomDetail] = {}
        for flow_detail in flows.values():
            flow_node = flows_dir.add(flow_detail.uuid, self._render_flow(flow_detail))
            for atom_detail in flow_detail:
                flow_node.add(atom_detail.uuid, target=f"{atoms_dir.path}/{atom_detail.uuid}")
                atoms.setdefault(atom_detail.uuid, atom_detail)
        for atom_detail in atoms.values():
            atoms_dir.add(atom_detail.uuid, self._render_atom(atom_detail))
        return root

    def _index(self) -> dict[str, _Node]:
        root = self._build()
        index = {root.path: root}
        for node in self._depth_first(root):
            index[node.path] = node
        return index

    def _node(self, path: str) -> _Node:
        node = self._index().get(self.normpath(path))
        if node is None:
            raise NotFoundError(f"no path {path!r} in the record tree")
        return node

    def _value(self, path: str) -> Any:
        index = self._index()
        normed = self.normpath(path)
        seen: list[str] = []
        while True:
            node = index.get(normed)
            if node is None:
                raise NotFoundError(f"no path {path!r} in the record tree")
            if not node.target:
                return node.value
            seen.append(normed)
            normed = node.target
            if normed in seen:  # pragma: no cover - the tree makes no cycles
                raise ValueError(f"links loop: {[*seen, normed]}")

    @staticmethod
    def _depth_first(root: _Node) -> Iterator[_Node]:
        stack = list(reversed(root.children))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    @staticmethod
    def _breadth_first(root: _Node) -> Iterator[_Node]:
        queue = deque(reversed(root.children))
        while queue:
            node = queue.popleft()
            yield node
            queue.extend(reversed(node.children))

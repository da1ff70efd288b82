"""A panel section's settings as typed values on a ``vtkMRMLScriptedModuleNode``, so they are saved with the scene.

Values are stored the way Slicer's ``@parameterNodeWrapper`` stores them (str/int/float as text, bool as
``True``/``False``, an enum by its member's name, a node as a node reference whose role is the parameter
name), so a face may bind the same node with Slicer's own wrapper. Choices are ``enum.Enum`` classes defined
once in the Libs and shared with the command line.
"""
from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from SurgicalAICore.errors import InputError

MODULE_ATTRIBUTE = "ModuleName"  # the attribute Slicer's ScriptedLoadableModuleLogic finds its node by
SECTION_ATTRIBUTE = "SurgicalAI.Section"


@dataclass(frozen=True)
class Param:
    """One setting: ``kind`` is str, int, float, bool, an Enum class, or "node"/"nodes" (references)."""

    name: str
    kind: Any
    default: Any = None
    node_class: str | None = None  # for node references: the MRML class a value must be

    def encode(self, value: Any) -> str:
        if self.kind is bool:
            return "True" if value else "False"
        if isinstance(self.kind, type) and issubclass(self.kind, enum.Enum):
            return self.kind(value).name if not isinstance(value, self.kind) else value.name
        if self.kind in (int, float):
            return repr(self.kind(value))
        return "" if value is None else str(value)

    def decode(self, text: str) -> Any:
        if self.kind is bool:
            return text == "True"
        if isinstance(self.kind, type) and issubclass(self.kind, enum.Enum):
            try:
                return self.kind[text]
            except KeyError:
                return self.default  # a scene saved by another version: fall back, never fail to load
        if self.kind in (int, float):
            try:
                return self.kind(float(text)) if self.kind is int else float(text)
            except ValueError:
                return self.default
        return text


def choice(enum_class: type[enum.Enum], value: Any) -> enum.Enum:
    """``value`` (a member, its name or its value) as a member of ``enum_class``; one clear line otherwise."""
    if isinstance(value, enum_class):
        return value
    for member in enum_class:
        if value in (member.name, member.value):
            return member
    names = ", ".join(m.value if isinstance(m.value, str) else m.name for m in enum_class)
    raise InputError(f"'{value}' is not one of: {names}.")


class ParameterStore:
    """The typed settings of one panel section, kept on one scripted-module node of ``scene``.

    The node is found again by its module and section attributes (after a scene was closed, or a
    ``.mrb`` was loaded), and created on first use with every default written, so a saved scene holds
    the complete state."""

    def __init__(self, scene, module: str, section: str, params: Iterable[Param]):
        self.scene = scene
        self.module = module
        self.section = section
        self.params = {p.name: p for p in params}
        self._node = None
        self._observers: list[tuple[Any, int]] = []

    # ---- the node ----
    @property
    def node(self):
        if self._node is None or self._node.GetScene() is not self.scene:
            self._node = self._find() or self._create()
        return self._node

    def _find(self):
        for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode")):
            node = self.scene.GetNthNodeByClass(i, "vtkMRMLScriptedModuleNode")
            if node.GetAttribute(MODULE_ATTRIBUTE) == self.module and \
                    node.GetAttribute(SECTION_ATTRIBUTE) == self.section:
                return node
        return None

    def _create(self):
        node = self.scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", f"{self.module} {self.section}")
        node.SetAttribute(MODULE_ATTRIBUTE, self.module)
        node.SetAttribute(SECTION_ATTRIBUTE, self.section)
        for param in self.params.values():
            if param.kind not in ("node", "nodes") and param.default is not None:
                node.SetParameter(param.name, param.encode(param.default))
        return node

    # ---- values ----
    def _param(self, name: str) -> Param:
        try:
            return self.params[name]
        except KeyError:
            raise KeyError(f"{self.module} {self.section} has no setting '{name}'") from None

    def get(self, name: str) -> Any:
        param = self._param(name)
        node = self.node
        if param.kind == "node":
            return node.GetNodeReference(name)
        if param.kind == "nodes":
            return [node.GetNthNodeReference(name, i) for i in range(node.GetNumberOfNodeReferences(name))]
        text = node.GetParameter(name)
        return param.default if text == "" and param.kind is not str else param.decode(text)

    def set(self, name: str, value: Any) -> None:
        param = self._param(name)
        node = self.node
        if param.kind == "node":
            self._check_node(param, value)
            node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
        elif param.kind == "nodes":
            node.RemoveNodeReferenceIDs(name)
            for item in value or []:
                self._check_node(param, item)
                node.AddNodeReferenceID(name, item.GetID())
        else:
            if isinstance(param.kind, type) and issubclass(param.kind, enum.Enum):
                value = choice(param.kind, value)
            text = param.encode(value)
            if node.GetParameter(name) != text:
                node.SetParameter(name, text)

    @staticmethod
    def _check_node(param: Param, value) -> None:
        if value is not None and param.node_class and not value.IsA(param.node_class):
            raise InputError(f"'{value.GetName()}' is not a {param.node_class[len('vtkMRML'):]}.")

    def update(self, **values: Any) -> None:
        """Set several values with one Modified event at the end."""
        node = self.node
        was = node.StartModify()
        try:
            for name, value in values.items():
                self.set(name, value)
        finally:
            node.EndModify(was)

    def values(self) -> dict[str, Any]:
        return {name: self.get(name) for name in self.params}

    # ---- views ----
    def observe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever a value changes (how a view follows the state)."""
        node = self.node
        tag = node.AddObserver("ModifiedEvent", lambda *_: callback())
        self._observers.append((node, tag))

    def unobserve(self) -> None:
        for node, tag in self._observers:
            node.RemoveObserver(tag)
        self._observers.clear()

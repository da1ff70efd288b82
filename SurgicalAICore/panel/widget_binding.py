"""Two-way binding of a :class:`ParameterStore` to widgets, so a Slicer face is wiring and nothing else.

Duck-typed over PythonQt widgets (node combo boxes, path line edits, combo boxes for enum choices, check
boxes, spin boxes and sliders, line edits); it imports no Qt, so it lives with the Qt-free panel logic
and a widget kit with the same property names could reuse it. A value changed anywhere (widget, script,
web face, a loaded scene) reaches every bound widget through the parameter node's Modified event.
"""
from __future__ import annotations

import enum
from typing import Any


def _is_enum(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, enum.Enum)


class WidgetBinding:
    def __init__(self, store, on_change=None):
        self.store = store
        self.on_change = on_change  # the face's update of everything else it shows (buttons, labels)
        self.widgets: dict[str, Any] = {}

    def bind(self, name: str, widget, labels: dict | None = None) -> None:
        """Show ``name`` in ``widget`` and write user edits back; an enum combo box is filled with its
        choices (``labels``: display text per member, else the member's value)."""
        param = self.store.params[name]
        self.widgets[name] = widget
        # signals by their full signature: several are overloaded (Qt picks no overload for Python)
        if hasattr(widget, "setCurrentNode"):
            widget.connect("currentNodeChanged(vtkMRMLNode*)", lambda node: self.store.set(name, node))
        elif hasattr(widget, "currentPathChanged"):
            widget.connect("currentPathChanged(QString)", lambda path: self.store.set(name, path))
        elif _is_enum(param.kind):
            widget.clear()
            for member in param.kind:
                widget.addItem((labels or {}).get(member, str(member.value)), member.value)
            widget.connect("currentIndexChanged(int)", lambda index: self.store.set(name, widget.itemData(index)))
        elif param.kind is bool:
            widget.connect("toggled(bool)", lambda checked: self.store.set(name, bool(checked)))
        elif param.kind in (int, float):
            signature = "valueChanged(int)" if param.kind is int else "valueChanged(double)"
            widget.connect(signature, lambda value: self.store.set(name, param.kind(value)))
        else:
            widget.connect("textChanged(QString)", lambda text: self.store.set(name, text))
        self._show(name)

    def _show(self, name: str) -> None:
        widget, param, value = self.widgets[name], self.store.params[name], self.store.get(name)
        was = widget.blockSignals(True)  # showing a value is not an edit
        try:
            if hasattr(widget, "setCurrentNode"):
                widget.setCurrentNode(value)
            elif hasattr(widget, "currentPathChanged"):
                widget.currentPath = value or ""
            elif _is_enum(param.kind):
                widget.currentIndex = max(0, widget.findData(value.value))
            elif param.kind is bool:
                widget.checked = bool(value)
            elif param.kind in (int, float):
                widget.value = value
            else:
                widget.text = value or ""
        finally:
            widget.blockSignals(was)

    def refresh(self) -> None:
        for name in self.widgets:
            self._show(name)
        if self.on_change is not None:
            self.on_change()

    def observe(self) -> None:
        """Follow the parameter node (again, after a scene was closed or loaded)."""
        self.store.unobserve()
        self.store.observe(self.refresh)
        self.refresh()

    def release(self) -> None:
        self.store.unobserve()

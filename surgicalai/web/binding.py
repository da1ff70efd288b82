"""Two-way binding of a panel section's :class:`~SurgicalAICore.panel.parameters.ParameterStore` to trame
state variables: the web face's counterpart of ``WidgetBinding``.

A page edit (any client) sets the parameter node; a change of the node from anywhere (an action, a job's
result, a loaded scene, another binding) is pushed to the state and so to every connected page. Nodes travel
as their MRML IDs, choices as their values. The parameter node is the one truth: a value the store refuses
(a node of the wrong class, an unknown choice) is reported and the page is set back to the stored value.
"""
from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from SurgicalAICore.errors import SurgicalAIError


def to_state(value: Any) -> Any:
    """A parameter value as a JSON-friendly state value."""
    if isinstance(value, enum.Enum):
        return value.value
    if hasattr(value, "GetID"):
        return value.GetID()
    return value


class StateBinding:
    def __init__(self, state, store, names: dict[str, str], on_error: Callable[[str], None] | None = None,
                 seed: bool = False):
        """``names``: trame state variable -> parameter name. ``seed``: the page's values so far go into the
        store first (a panel built on first use, after the page was edited)."""
        self.state = state
        self.store = store
        self.names = dict(names)
        self.on_error = on_error
        for var, name in self.names.items() if seed else ():
            if self.state[var] is not None:
                self._edit(var, name)
        for var, name in self.names.items():
            state.change(var)(lambda var=var, name=name, **_: self._edit(var, name))
        store.observe(self.refresh)
        self.refresh()

    def _edit(self, var: str, name: str) -> None:
        value = self.state[var]
        if value == to_state(self.store.get(name)):
            return  # the echo of a refresh, or no change
        if self.store.params[name].kind == "node":
            value = self.store.scene.GetNodeByID(value) if value else None
        try:
            self.store.set(name, value)
        except SurgicalAIError as error:
            if self.on_error is not None:
                self.on_error(str(error))
            self.refresh()

    def refresh(self) -> None:
        for var, name in self.names.items():
            self.state[var] = to_state(self.store.get(name))

    def release(self) -> None:
        self.store.unobserve()

"""Building the page's widget tree with one HTML render per layout instead of one per nested widget.

trame renders an element's whole subtree each time a ``with`` block of it closes (to push the defaults its
attributes name into the state), and the layout renders the whole tree again when it closes; with the
segment editor's deep nesting that is about 4000 element renders for 480 elements, 5 to 7 s of the server's
start on this machine. The layout's final render pushes the same defaults, so inside :func:`one_render`
closing a widget only leaves its context; the page and the state come out the same
(``Testing/test_web_page_build.py`` compares them).
"""
from __future__ import annotations

from contextlib import contextmanager

from trame_client.widgets.core import HTML_CTX, AbstractElement


def _leave(self, exc_type, exc_value, exc_traceback):
    HTML_CTX.exit(self)


@contextmanager
def one_render():
    original = AbstractElement.__exit__
    AbstractElement.__exit__ = _leave
    try:
        yield
    finally:
        AbstractElement.__exit__ = original

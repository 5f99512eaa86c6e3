"""``ResourceKey``: the one way a resource is named across layers.

Stage: every stage (pure). A key is ``Kind/name`` in the default namespace and
``Kind/namespace/name`` elsewhere: the form the store, the guard, the API, the CLI, the
dashboard and the metrics all use, so it is built and parsed here and nowhere else.

Kinds are identifiers and names and namespaces are DNS-1123 labels (lowercase letters,
digits, ``-``; no ``/`` and no ``.``), which is what makes each derived form unambiguous:
the URL id swaps ``/`` for ``.``, the directory name joins namespace and name with ``.``.
(``{namespace}-{name}`` did not: ``shop-prod/db`` and ``shop/prod-db`` met in one directory.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DEFAULT_NAMESPACE", "ResourceKey"]

DEFAULT_NAMESPACE = "default"

_KIND = r"[A-Za-z][A-Za-z0-9]*"
_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_KEY = re.compile(rf"^({_KIND})/(?:({_LABEL})/)?({_LABEL})$")


@dataclass(frozen=True, order=True, slots=True)
class ResourceKey:
    """The identity of one declared resource: kind, namespace and name.

    ``str(key)`` is the wire form (``Container/shop``, ``Container/prod/shop``);
    ``key.url_id`` the single URL path segment (``Container.shop``); ``key.dirname`` the
    per-resource directory name (``default.shop``), distinct for distinct keys.
    """

    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, kind: str, name: str, namespace: str = DEFAULT_NAMESPACE) -> ResourceKey:
        """The key of ``kind``/``name`` in ``namespace`` (``default`` when omitted)."""
        return cls(kind, namespace, name)

    @classmethod
    def parse(cls, text: str) -> ResourceKey:
        """Parse ``Kind/name`` or ``Kind/namespace/name``; ValueError says what a key looks like."""
        match = _KEY.match(text)
        if match is None:
            raise ValueError(
                f"{text!r} is not a resource key: expected Kind/name or Kind/namespace/name, "
                "with a lowercase DNS name (for example Container/shop or Container/prod/shop)"
            )
        kind, namespace, name = match.groups()
        return cls(kind, namespace or DEFAULT_NAMESPACE, name)

    @classmethod
    def find(cls, text: str) -> ResourceKey | None:
        """``parse`` that answers None for text that is not a key, or a URL id (``Kind.name``)."""
        candidate = text.replace(".", "/") if "/" not in text else text
        try:
            return cls.parse(candidate)
        except ValueError:
            return None

    def __str__(self) -> str:
        if self.namespace == DEFAULT_NAMESPACE:
            return f"{self.kind}/{self.name}"
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def url_id(self) -> str:
        """One URL path segment that maps back to this key: ``Container.shop``."""
        return str(self).replace("/", ".")

    @property
    def dirname(self) -> str:
        """A directory name for the resource's state, distinct for every (namespace, name)."""
        return f"{self.namespace}.{self.name}"

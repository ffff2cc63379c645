"""A Sphinx directive that writes a spawner's configuration reference from its traits.

``{traitref} dockerspawner.SwarmSpawner`` walks ``class_traits(config=True)`` at
build time, so the reference holds exactly the traits the code has: name, type,
default, help and the deprecated names that still set it. Nothing is copied into
the docs by hand, so nothing can drift.

The help text is emitted as plain text nodes (never parsed as markup), so a
trait's help cannot break the build; an indented block in it (JupyterHub's
examples) becomes a literal block.
"""

from __future__ import annotations

import importlib
import inspect
import os
import textwrap
from contextlib import contextmanager
from typing import Any
from collections.abc import Iterator

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from traitlets import TraitType, Union
from traitlets.traitlets import DefaultHandler

#: the environment that would change computed defaults (host_ip reads DOCKER_HOST)
_ENGINE_ENV = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")


def import_class(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def owner_of(cls: type, name: str) -> type:
    """The class in ``cls``'s MRO that defines (or last redefines) trait ``name``."""
    return next(k for k in cls.__mro__ if name in vars(k))


def is_own(cls: type, name: str) -> bool:
    """Whether dockerspawner defines the trait (rather than JupyterHub's Spawner)."""
    return owner_of(cls, name).__module__.split(".")[0] == "dockerspawner"


def deprecated_names(cls: type) -> dict[str, tuple[str, str]]:
    """Old name -> (new name or "", version) for the deprecated traits of ``cls``."""
    aliases = dict(getattr(cls, "_deprecated_aliases", {}))
    ignored = {
        name: ("", "")
        for name in cls.class_traits(config=True)
        if owner_of(cls, name).__name__ == "Deprecations" and name not in aliases
    }
    return {**aliases, **ignored}


def type_text(trait: TraitType) -> str:
    """A short type description: ``Unicode``, ``Union(Callable, Dict)``, ``CaselessStrEnum('a', 'b')``."""
    name = type(trait).__name__
    if isinstance(trait, Union):
        return f"Union({', '.join(type_text(t) for t in trait.trait_types)})"
    values = getattr(trait, "values", None)
    if values:
        return f"{name}({', '.join(repr(v) for v in values)})"
    return name


def value_text(value: Any) -> str:
    """A stable repr: callables by qualified name, never by address."""
    if callable(value) and not isinstance(value, type):
        module = getattr(value, "__module__", "") or ""
        return f"{module}.{getattr(value, '__qualname__', repr(value))}".lstrip(".")
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


@contextmanager
def _without_engine_env() -> Iterator[None]:
    saved = {k: os.environ.pop(k) for k in _ENGINE_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def defaults(cls: type) -> dict[str, tuple[str, bool]]:
    """Trait name -> (default as text, computed?) for an unconfigured spawner of ``cls``.

    A default set by a ``@default`` method depends on other settings (or the
    environment, which is cleared of DOCKER_* here so the page is reproducible);
    it is read from a fresh instance and marked as computed.
    """
    dynamic = {
        v.trait_name for k in cls.__mro__ for v in vars(k).values() if isinstance(v, DefaultHandler)
    }
    instance = None
    out = {}
    for name, trait in cls.class_traits(config=True).items():
        if name not in dynamic:
            shown = trait.default_value_repr()
            out[name] = ("not set" if shown == "traitlets.Undefined" else shown, False)
            continue
        if instance is None:
            with _without_engine_env():
                instance = cls()
        try:
            with _without_engine_env():
                out[name] = (value_text(getattr(instance, name)), True)
        except Exception:  # noqa: BLE001 - a default that needs a running hub
            out[name] = ("computed at start", True)
    return out


def help_nodes(help_text: str) -> list[nodes.Node]:
    """Paragraphs of plain text; an indented block becomes a literal block."""
    text = textwrap.dedent(_first_line_dedent(help_text)).strip()
    if not text:
        return [nodes.paragraph(text="(no help)")]
    out: list[nodes.Node] = []
    for block in text.split("\n\n"):
        lines = block.split("\n")
        if all(line.startswith((" ", "\t")) or not line.strip() for line in lines):
            code = textwrap.dedent(block)
            out.append(nodes.literal_block(code, code))
        else:
            out.append(nodes.paragraph(text=" ".join(line.strip() for line in lines)))
    return out


def _first_line_dedent(text: str) -> str:
    # help strings put their first line right after the quotes: indent it like the rest
    first, _, rest = text.partition("\n")
    indent = min((len(line) - len(line.lstrip()) for line in rest.splitlines() if line.strip()), default=0)
    return " " * indent + first.strip() + ("\n" + rest if rest else "")


def trait_item(cls: type, name: str, trait: TraitType, default: tuple[str, bool], aliases: list[str]) -> nodes.Node:
    anchor = nodes.make_id(f"{cls.__name__}.{name}")
    term = nodes.term()
    term["ids"].append(anchor)
    term += nodes.literal(text=f"c.{cls.__name__}.{name}")
    term += nodes.Text("  ")
    term += nodes.emphasis(text=type_text(trait))
    body = nodes.definition()
    body.extend(help_nodes(trait.help or ""))
    shown, computed = default
    fields = nodes.paragraph()
    fields += nodes.strong(text="Default: ")
    fields += nodes.literal(text=shown)
    if computed:
        fields += nodes.Text(" (computed when not set, from other settings for some)")
    if aliases:
        fields += nodes.Text(". ")
        fields += nodes.strong(text="Deprecated aliases: ")
        for i, alias in enumerate(aliases):
            if i:
                fields += nodes.Text(", ")
            fields += nodes.literal(text=alias)
    body += fields
    item = nodes.definition_list_item()
    item += term
    item += body
    return item


def reference_nodes(cls: type) -> list[nodes.Node]:
    """The reference of one spawner class: its own traits, deprecated names, then JupyterHub's."""
    traits = cls.class_traits(config=True)
    shown = defaults(cls)
    deprecated = deprecated_names(cls)
    alias_of: dict[str, list[str]] = {}
    for old, (new, version) in sorted(deprecated.items()):
        if new:
            alias_of.setdefault(new, []).append(f"{old} (since {version.rstrip('.*')})")
    groups = {
        "Set by dockerspawner": [n for n in sorted(traits) if is_own(cls, n) and n not in deprecated],
        "Deprecated names (accepted with a warning)": [n for n in sorted(traits) if n in deprecated],
        "Inherited from JupyterHub's Spawner": [n for n in sorted(traits) if not is_own(cls, n)],
    }
    out: list[nodes.Node] = []
    for title, names in groups.items():
        if not names:
            continue
        out.append(nodes.rubric(text=f"{cls.__name__}: {title.lower()}"))
        dl = nodes.definition_list()
        for name in names:
            dl += trait_item(cls, name, traits[name], shown[name], alias_of.get(name, []))
        out.append(dl)
    return out


class TraitReference(SphinxDirective):
    """``{traitref} package.module.Class``: the class's configuration reference."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        cls = import_class(self.arguments[0])
        self.env.note_dependency(inspect.getsourcefile(cls) or "")
        doc = inspect.getdoc(cls) or ""
        intro = nodes.paragraph(text=doc.split("\n\n")[0].replace("\n", " ")) if doc else None
        return ([intro] if intro else []) + reference_nodes(cls)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("traitref", TraitReference)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

"""14's deprecated trait and method names, accepted with 14's warnings (once per class)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from jupyterhub.traitlets import Callable as CallableTrait
from traitlets import Any as AnyTrait, Bool, Dict, HasTraits, Int, List, Unicode, Union, observe


def _deprecated_method(old_name: str, new_name: str, version: str) -> Callable:
    """A renamed method under its old name, warning once per call site."""

    def deprecated(self: Any, *args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            f"{type(self).__name__}.{old_name} is deprecated in DockerSpawner {version}."
            f" Please use {type(self).__name__}.{new_name} instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(self, new_name)(*args, **kwargs)

    deprecated.__name__ = old_name
    return deprecated


class Deprecations(HasTraits):
    """Old names that still work and say which new name to use."""

    # -- deprecated names --------------------------------------------------------
    container_image = Unicode(config=True, help="Deprecated since 0.9: use DockerSpawner.image.")
    container_port = Int(config=True, help="Deprecated since 0.9: use DockerSpawner.port.")
    container_ip = Unicode(config=True, help="Deprecated since 0.9: use DockerSpawner.host_ip.")
    container_prefix = Unicode(config=True, help="Deprecated since 0.10: use DockerSpawner.prefix.")
    container_name_template = Unicode(config=True, help="Deprecated since 0.10: use DockerSpawner.name_template.")
    remove_containers = Bool(config=True, help="Deprecated since 0.10: use DockerSpawner.remove.")
    image_whitelist = Union(
        [Unicode(), List(Unicode()), Dict(), CallableTrait()],
        config=True,
        help="Deprecated since 12.0: use DockerSpawner.allowed_images.",
    )
    tls = tls_verify = tls_ca = tls_cert = tls_key = tls_assert_hostname = AnyTrait(
        config=True,
        help="Deprecated and ignored: set every TLS option in the DockerSpawner.tls_config dict.",
    )
    hub_ip_connect = Unicode(
        config=True,
        help="Deprecated since JupyterHub 0.8 and ignored: set JupyterHub.hub_connect_ip instead.",
    )

    #: old name -> (new name, the dockerspawner version that renamed it)
    _deprecated_aliases = {
        "container_ip": ("host_ip", "0.9.*"),
        "container_port": ("port", "0.9.*"),
        "container_image": ("image", "0.9.*"),
        "container_prefix": ("prefix", "0.10.0"),
        "container_name_template": ("name_template", "0.10.0*"),
        "remove_containers": ("remove", "0.10.0"),
        "image_whitelist": ("allowed_images", "12.0"),
    }
    _warned: set = set()

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        """Deprecation warnings once per class, not once per user's spawner."""
        key = f"{type(self).__name__}.{key}"
        if key in Deprecations._warned:
            return
        Deprecations._warned.add(key)
        self.log.warning(message, *args)

    @observe(*_deprecated_aliases)
    def _deprecated_alias_changed(self, change: dict) -> None:
        old, (new, version) = change["name"], self._deprecated_aliases[change["name"]]
        if getattr(self, new) == change["new"]:
            return  # the same value under both names: nothing to warn about
        cls = type(self).__name__
        self._warn_once(old, "%s.%s is deprecated in DockerSpawner %s, use %s.%s instead", cls, old, version, cls, new)
        setattr(self, new, change["new"])

    @observe("tls", "tls_verify", "tls_ca", "tls_cert", "tls_key", "tls_assert_hostname")
    def _tls_changed(self, change: dict) -> None:
        self._warn_once(
            change["name"], "%s config ignored, use %s.tls_config dict to set full TLS configuration.",
            change["name"], type(self).__name__,
        )

    @observe("hub_ip_connect")
    def _hub_ip_connect_changed(self, change: dict) -> None:
        self._warn_once(
            "hub_ip_connect",
            "Ignoring %s.hub_ip_connect=%r, deprecated since JupyterHub 0.8; use c.JupyterHub.hub_connect_ip instead.",
            type(self).__name__, change["new"],
        )


    check_image_whitelist = _deprecated_method("check_image_whitelist", "check_allowed", "12.0")

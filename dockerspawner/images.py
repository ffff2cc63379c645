"""Which image a server runs: the allow-list, the options form, user choices, pulls.

A mixin of DockerSpawner (and so of the whole family); every method here is
part of the extension surface 14's subclasses use (``check_allowed``,
``_get_allowed_images``, ``pull_image``, ``_default_options_form``).
"""

from __future__ import annotations

import html
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import jupyterhub
from jupyterhub.spawner import Spawner
from jupyterhub.traitlets import Callable as CallableTrait
from tornado import web
from traitlets import Bool, CaselessStrEnum, Dict, HasTraits, List, TraitType, Unicode, Union, default

from . import coalesce, naming
from .engine import EngineError, EngineUnavailable, NotFound
from .errors import SpawnError, _clip, _maybe_await, _short
from .progress import PullProgress, pull_message

_hub_version = ".".join(jupyterhub.__version__.split(".")[:2])


#: JupyterHub >= 5.3 makes options_from_form a configurable trait; before, a method.
_OPTIONS_FROM_FORM_IS_TRAIT = isinstance(Spawner.__dict__.get("options_from_form"), TraitType)


def _image_options_from_form(formdata: dict) -> dict:
    """The form's ``image`` field -> ``{"image": ...}``; nothing else is taken."""
    image = formdata.get("image")
    if isinstance(image, list):
        image = image[0] if image else None
    return {"image": image} if image else {}


class ImageChoice(HasTraits):
    """Image traits and the hooks that resolve and pull a server's image."""

    # -- image ----------------------------------------------------------------
    image = Unicode(
        f"quay.io/jupyterhub/singleuser:{_hub_version}",
        config=True,
        help="""The image every server runs unless the user chooses one of allowed_images. It must provide
        jupyterhub-singleuser of the hub's major version; the default is
        quay.io/jupyterhub/singleuser at the hub's major.minor version.""",
    )
    allowed_images = Union(
        [Unicode(), List(Unicode()), Dict(), CallableTrait()],
        default_value=[],
        config=True,
        help="""Images users may choose through user_options['image'] or the form.
        A list, a dict of display name to image, "*" for any image, or a callable
        taking the spawner and returning one of those (may be async). Empty: users
        may not choose an image.""",
    )
    pull_policy = CaselessStrEnum(
        ["always", "ifnotpresent", "never", "skip"],
        default_value="ifnotpresent",
        config=True,
        help="""When to pull the image before a start: 'ifnotpresent' (the default), 'always' (picks up a
        moved tag), 'never' (a missing image fails the start) or 'skip' (do not check; the engine
        fails at create if it is missing).""",
    )

    refuse_unknown_user_options = Bool(
        True,
        config=True,
        help="""Answer HTTP 400 to user_options keys this spawner does not use (only 'image',
        plus the keys of a dict apply_user_options), unless the admin handles options
        (options_from_form, a callable apply_user_options or a pre_spawn_hook). Set False
        to ignore unknown keys silently, as dockerspawner 14 did.""",
    )

    # -- images ------------------------------------------------------------------------
    def _get_allowed_images(self) -> dict[str, str] | str | Awaitable:
        """``allowed_images`` as ``"*"`` or a dict of display name -> image (14's helper).

        A callable is called; if it is async its awaitable is returned as is.
        """
        allowed = self.allowed_images
        if callable(allowed):
            allowed = allowed(self)
            if inspect.isawaitable(allowed):
                return allowed
        return _normalise_allowed(allowed)

    async def _allowed_images(self) -> dict[str, str] | str:
        return _normalise_allowed(await _maybe_await(self._get_allowed_images()))

    def _known_user_options(self) -> set[str] | None:
        """The user_options keys this hub understands, or None for "any".

        When the admin handles options themselves (their own options_from_form,
        a callable apply_user_options, or a pre_spawn_hook that may read them),
        only they know the keys, so none are refused here.
        """
        apply = getattr(self, "apply_user_options", None)
        if not self.refuse_unknown_user_options or callable(apply) or self.pre_spawn_hook is not None:
            return None
        if not self._form_is_ours():
            return None
        known = {"image"}
        if isinstance(apply, dict):
            known.update(apply)
        return known

    def _validate_user_options(self) -> None:
        """Refuse user_options this spawner does not understand (HTTP 400), for the
        form, the REST API and admin-started servers alike."""
        options = self.user_options or {}
        if not isinstance(options, dict):
            raise web.HTTPError(400, "user_options must be a JSON object")
        known = self._known_user_options()
        if known is not None:
            unknown = sorted(set(options) - known)
            if unknown:
                shown = ", ".join(_clip(k, 40) for k in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
                raise web.HTTPError(400, f"unknown user_options {shown}; accepted: {', '.join(sorted(known))}")
        image = options.get("image")
        if image is not None and not isinstance(image, str):
            raise web.HTTPError(400, f"user_options 'image' must be a string, not {type(image).__name__}")
        if isinstance(image, str) and len(image) > 512:
            raise web.HTTPError(400, f"user_options 'image' is {len(image)} characters long; an image name has at most 512")

    async def check_allowed(self, image: str) -> str:
        """The image to run for a user's choice ``image`` (HTTP 400 if not allowed)."""
        allowed = await self._allowed_images()
        if allowed == "*":
            resolved = image
        elif image in allowed:
            resolved = allowed[image]
        elif image in allowed.values():
            resolved = image
        elif not allowed:
            raise web.HTTPError(
                400, "choosing an image is not allowed on this hub (DockerSpawner.allowed_images is empty)"
            )
        else:
            raise web.HTTPError(
                400, f"Image {_clip(image)} is not allowed; choose one of: {', '.join(sorted(allowed))}"
            )
        _check_reference(resolved, "chosen")
        return resolved

    async def _resolve_image(self) -> str:
        """Which image this start runs; also sets ``self.image`` to it, as 14 did.

        Unlike 14, a choice does not stick: a later start without one runs the
        configured image again (unless a hook changed ``image`` meanwhile).
        """
        chosen = self.__dict__.get("_chosen_image")
        if chosen is not None and self.image == chosen:
            self.image = self.__dict__["_configured_image"]
        self.__dict__["_configured_image"] = self.image
        self._validate_user_options()
        requested = (self.user_options or {}).get("image")
        image = await self.check_allowed(requested) if requested else self.image
        _check_reference(image, "configured")
        if image != self.image:
            self.image = image
            self.__dict__["_chosen_image"] = image
        return image

    @default("options_form")
    def _default_options_form(self) -> str | Callable:
        """14's form: a <select> when there is more than one image to choose from.

        With a callable ``allowed_images`` the form is rendered each time it is
        shown (so an async callable works); otherwise it is a plain string.
        """
        if callable(self.allowed_images):
            return ImageChoice._render_options_form
        return _options_form_html(_normalise_allowed(self.allowed_images), self.image)

    async def _render_options_form(self) -> str:
        return _options_form_html(await self._allowed_images(), self.image)

    if _OPTIONS_FROM_FORM_IS_TRAIT:

        @default("options_from_form")
        def _default_options_from_form(self) -> Callable:
            return _image_options_from_form

    else:

        def options_from_form(self, formdata: dict) -> dict:
            return _image_options_from_form(formdata)

    def _form_is_ours(self) -> bool:
        handler = self.options_from_form
        return getattr(handler, "__func__", handler) in (_image_options_from_form, ImageChoice.__dict__.get("options_from_form"))

    async def pull_image(self, image: str) -> None:
        """Make ``image`` present according to ``pull_policy``, with progress."""
        attempt = self._attempt
        engine = self.docker_engine
        policy = self.pull_policy.lower()
        if policy == "skip":
            attempt.image_info = None
            return
        if policy != "always":
            try:
                attempt.image_info = await coalesce.inspect_image(engine, image)
                return
            except NotFound:
                if policy == "never":
                    raise SpawnError(
                        f"Image {image} is not on the server and pulling is disabled.",
                        f"image {image} not present and {type(self).__name__}.pull_policy is 'never':"
                        " pull it on the engine or change pull_policy",
                    ) from None
        await self._pull(image)
        attempt.image_info = await engine.inspect_image(image)

    async def _pull(self, image: str) -> None:
        self.log.info("Pulling image %s for %s", image, self._log_name)
        self._enter("pull", f"Pulling image {image}")
        tracker = PullProgress()
        shown = -1
        try:
            async for event in self.docker_engine.pull_image(image):
                if event.status == "complete":
                    self.log.info("Pulled %s (%s) for %s", image, event.image_id, self._log_name)
                    continue
                tracker.update(event)
                if tracker.percent != shown:
                    shown = tracker.percent
                    self._progress.emit(*pull_message(image, shown))
        except NotFound as e:
            raise SpawnError(
                f"Image {image} was not found.",
                f"pull of {image} for {self._log_name} failed: {e.explanation};"
                " check DockerSpawner.image / allowed_images and that the registry has this tag",
            ) from None
        except EngineUnavailable:
            raise
        except EngineError as e:
            raise SpawnError(
                f"Pulling image {image} failed: {_short(e.explanation)}",
                f"pull of {image} for {self._log_name} failed: {e}",
            ) from None


def _normalise_allowed(allowed: Any) -> dict[str, str] | str:
    if allowed == "*" or allowed == ["*"]:
        return "*"
    if isinstance(allowed, str):
        return {allowed: allowed} if allowed else {}
    if isinstance(allowed, dict):
        return dict(allowed)
    return {image: image for image in allowed or []}


def _options_form_html(allowed: dict[str, str] | str, current: str) -> str:
    """A <select> of the allowed images; none when there is nothing to choose."""
    if allowed == "*" or len(allowed) <= 1:
        return ""
    options = "".join(
        f'<option value="{html.escape(key)}"{" selected" if current in (key, image) else ""}>'
        f"{html.escape(key)}</option>"
        for key, image in allowed.items()
    )
    return (
        '<label for="image">Select an image:</label>\n'
        f'<select class="form-control" name="image" id="image" required autofocus>\n{options}\n</select>'
    )


def _check_reference(image: str, which: str) -> None:
    if not naming.valid_image_reference(image):
        raise web.HTTPError(
            400,
            f"{_clip(image)} is not a valid image name (the {which} image); use a reference such as"
            " 'quay.io/jupyterhub/singleuser:5.4' (lower-case repository, no spaces or '..')",
        )

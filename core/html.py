"""HTML pages from Jinja2 templates that share one stylesheet and one set of formats.

Every page the platform writes (the ops report, the monitoring index, the evaluation report)
extends `base.html` of a template folder and is rendered here: autoescaped, with the shared
stylesheet (`core/templates/style.css`) inlined so a page is one self-contained file, and with the
number formats as filters. A package keeps its own templates in its `templates/` folder; the
loader finds `base.html` in core's.
"""

from __future__ import annotations

import base64
import functools
import math
from importlib import resources
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup


def pct(value: float | None, digits: int = 1) -> str:
    """A share as a percentage ('12.5%'); missing as '–'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}%}"


def money(value: float | None) -> str:
    """An amount with thousands separators and no decimals; missing as '–'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.0f}"


def count(value: float | None) -> str:
    """A whole number with thousands separators; missing as '–'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.0f}"


def number(value: float | None, digits: int = 3) -> str:
    """A number with `digits` decimals; missing or not finite as '–'."""
    if value is None or not math.isfinite(float(value)):
        return "–"
    return f"{value:.{digits}f}"


def png_data_uri(png: bytes) -> str:
    """A PNG as a `data:` URI, to embed a figure in a self-contained page."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@functools.cache
def stylesheet() -> Markup:
    """The shared stylesheet, as trusted markup for the `<style>` element."""
    return Markup(resources.files("core").joinpath("templates", "style.css").read_text(encoding="utf-8"))


@functools.cache
def environment(package: str) -> Environment:
    """The Jinja2 environment of a package's `templates/` folder, with core's base and the shared filters."""
    env = Environment(
        loader=ChoiceLoader([PackageLoader(package, "templates"), PackageLoader("core", "templates")]),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=pct, money=money, count=count, number=number)
    return env


def render(package: str, template: str, **context: Any) -> str:  # noqa: ANN401
    """Render `template` of `package`'s templates with `context`, the stylesheet inlined.

    Args:
        package: The package whose `templates/` folder holds the page (e.g. "crm").
        template: The template's file name, e.g. "ops_report.html".
        **context: The template's variables; a name it uses but is not given is an error.
    """
    return environment(package).get_template(template).render(stylesheet=stylesheet(), **context)

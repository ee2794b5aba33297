"""Generation prompts: every prompt is a Jinja file under ``templates/generate/`` (the
Self-Instruct instruction prompt stays at ``templates/generator/self_instruct.jinja``).

Rendered in the sandboxed, StrictUndefined environment of :mod:`pipelines.render.templates`
(a missing variable is an error, not an empty string). Each render returns the template's
SHA-256, which every generated output records as ``prompt_template_hash``.
"""
from __future__ import annotations

from functools import lru_cache

KIND = "generate"


@lru_cache(maxsize=64)
def _template(name: str):
    from pipelines.render.templates import get_template
    return get_template(name if "/" in name else f"{KIND}/{name}")


def template_hash(name: str) -> str:
    """SHA-256 (hex) of the template ``name`` (``paraphrase`` or ``generator/self_instruct``)."""
    return _template(name).sha256


def render_prompt(name: str, **context) -> tuple[str, str]:
    """``(prompt text, template sha256)`` for template ``name`` with ``context``.

    Raises:
        NotFound: no such template. TemplateRenderError: a missing variable or a syntax error.
    """
    from pipelines.render.templates import render_strict
    tpl = _template(name)
    return render_strict(tpl.text, context, name=f"{tpl.kind}/{tpl.name}")[0], tpl.sha256


def clear_cache() -> None:
    """Forget cached templates (after a template file was edited)."""
    _template.cache_clear()

"""The Templates page through Streamlit's AppTest: pick a dataset, version, sample and
template; see the rendered text with role spans, the token count and the loss mask of the
embedded tokenizer; edit a custom template with live validation (syntax and sandbox errors
are messages, never tracebacks)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pipelines import catalog
from pipelines.render import get_template, render_with_mask
from pipelines.render.inputs import template_input
from tests.app.test_datasets_page import ENTRY, build_workspace

TEMPLATES_PAGE = "pages/2_Templates.py"
TIMEOUT_S = 120  # the first run loads the tokenizer (about 10 s on 2 shared cores)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("wb") / "ws", n_instruction=12)


@pytest.fixture(scope="module")
def tok():
    from pipelines.models import load_tokenizer
    try:
        return load_tokenizer()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"embedded tokenizer unavailable: {e}")


def _templates(ws: Path, check: bool = True, **state) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT_S)
    at.session_state["workspace"] = str(ws)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    at.switch_page(TEMPLATES_PAGE).run()
    if check:
        _no_exceptions(at)
    return at


def _no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _html(at: AppTest, cls: str) -> str:
    return next(m.value for m in at.markdown if m.value.startswith(f'<div class="{cls}"'))


def _unescape(h: str) -> str:
    import html
    return html.unescape(re.sub(r"<br>", "\n", re.sub(r"<(?!br>)[^>]+>", "", h)))


def _sample(ws: Path, name: str, number: int, sample_id: int):
    _, rows = catalog.sample_page(ws, name, number, after_id=sample_id - 1, limit=1)
    assert rows and rows[0].sample_id == sample_id
    return rows[0]


def test_chat_template_on_a_conversation(workspace, tok):
    at = _templates(workspace, tpl_dataset="chat-mini")
    at.selectbox(key="tpl_version").select(2).run()
    at.selectbox(key="tpl_sample").select(4).run()  # the chat with a tool turn
    at.selectbox(key="tpl_template").select("chat/chatml").run()
    _no_exceptions(at)
    sample = _sample(workspace, "chat-mini", 2, 4)

    rendered = _html(at, "wb-rendered")
    text = _unescape(rendered)
    for turn in sample.turns():
        assert turn["content"] in text
    assert "<|im_start|>user" in text and "<|im_start|>assistant" in text
    assert "<|im_start|>tool" in text
    # each role's content sits in a span of its role
    assert 'class="wb-user"' in rendered and 'class="wb-assistant"' in rendered and 'class="wb-tool-result"' in rendered
    assert re.search(r'class="wb-user"[^>]*>What is 2\+2\?</span>', rendered)
    legend = next(m.value for m in at.markdown if 'class="wb-legend"' in m.value)
    assert ">user<" in legend and ">assistant<" in legend and ">tool result<" in legend
    assert sample.turns()[-1]["content"] in [c.value for c in at.code][0]  # the raw text

    ids, labels = render_with_mask(tok, sample.turns(), "chatml")
    metrics = _metrics(at)
    assert metrics["Tokens"] == f"{len(ids):,}"
    n_learned = sum(1 for x in labels if x != -100)
    assert metrics["Learned tokens"] == f"{n_learned:,}" and n_learned > 0
    assert metrics["Masked tokens"] == f"{len(ids) - n_learned:,}"
    chips = _html(at, "wb-tokens")
    assert chips.count('class="wb-tok wb-learned"') == n_learned
    assert chips.count('class="wb-tok ') == len(ids)


def test_instruction_sample_with_system_prompt(workspace, tok):
    at = _templates(workspace)  # alpaca-mini head, first sample, chatml
    sample = _sample(workspace, "alpaca-mini", 2, 1)
    assert at.selectbox(key="tpl_sample").value == 1
    text = _unescape(_html(at, "wb-rendered"))
    assert "<|im_start|>system\nYou are terse.<|im_end|>" in text
    assert "Instruction number 1 (edited)" in text and "A better answer" in text
    ids, labels = render_with_mask(tok, sample.turns(), "chatml")
    assert _metrics(at)["Tokens"] == f"{len(ids):,}"
    assert _metrics(at)["Learned tokens"] == f"{sum(1 for x in labels if x != -100):,}"


def test_instruction_template_marks_fields_and_learns_the_output(workspace, tok):
    at = _templates(workspace, tpl_template="instruction/alpaca")
    at.selectbox(key="tpl_sample").select(3).run()  # has an input
    _no_exceptions(at)
    sample = _sample(workspace, "alpaca-mini", 2, 3)
    rendered = _html(at, "wb-rendered")
    text = _unescape(rendered)
    # Stanford's with-input prompt: instruction and input each in its own section, the output
    # right after "### Response:"
    assert text.startswith("Below is an instruction that describes a task, paired with an input")
    assert "### Instruction:\nInstruction number 3\n\n### Input:\nsome input\n\n### Response:Answer number 3" in text
    assert re.search(r'class="wb-instruction"[^>]*>Instruction number 3<', rendered)
    assert re.search(r'class="wb-input"[^>]*>some input<', rendered)
    assert re.search(r'class="wb-output"[^>]*>Answer number 3<', rendered)
    inp = template_input(sample, get_template("alpaca"), tokenizer=tok)
    ids, labels = render_with_mask(tok, inp, "alpaca")
    assert _metrics(at)["Tokens"] == f"{len(ids):,}"
    assert _metrics(at)["Learned tokens"] == f"{sum(1 for x in labels if x != -100):,}"
    assert _html(at, "wb-tokens").count('class="wb-tok wb-learned"') == sum(1 for x in labels if x != -100)


def test_instruction_template_refuses_a_conversation(workspace, tok):
    at = _templates(workspace, check=False, tpl_dataset="chat-mini", tpl_template="instruction/alpaca")
    assert not at.exception
    assert any("not conversations" in e.value for e in at.error)


def test_sample_by_id(workspace, tok):
    at = _templates(workspace)
    at.number_input(key="tpl_sample_id").set_value(6).run()
    _no_exceptions(at)
    assert "Instruction number 6" in _unescape(_html(at, "wb-rendered"))
    at.number_input(key="tpl_sample_id").set_value(2).run()  # removed in v2: the next one
    assert not at.exception
    assert any("no sample #2" in w.value for w in at.warning)
    assert "Instruction number 3" in _unescape(_html(at, "wb-rendered"))


# ---------------------------------------------------------------- custom templates
def _custom(ws: Path, text: str | None = None, kind: str | None = None) -> AppTest:
    at = _templates(ws, tpl_template="Custom template")
    if kind:
        at.radio(key="tpl_custom_kind").set_value(kind).run()
    if text is not None:
        at.text_area(key="tpl_custom_text").input(text).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_custom_template_starts_valid(workspace, tok):
    at = _custom(workspace)
    _no_exceptions(at)
    assert at.text_area(key="tpl_custom_text").value == get_template("chatml").text
    assert any(s.value.startswith("Valid: renders this sample") for s in at.success)


def test_custom_template_syntax_error_is_a_message(workspace, tok):
    at = _custom(workspace, "{% for m in messages %}{{ m['content'] }")
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "syntax error" in errors[0] and errors[0].startswith("Invalid template")
    assert not any(m.value.startswith('<div class="wb-rendered"') for m in at.markdown)
    assert not at.metric


def test_custom_template_sandbox_escape_is_a_security_error(workspace, tok):
    at = _custom(workspace, "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Security:") and "sandbox" in errors[0]
    at.text_area(key="tpl_custom_text").input("{{ messages.append({'role': 'x'}) }}").run()
    assert not at.exception
    assert [e.value for e in at.error][0].startswith("Security:")


def test_valid_custom_chat_template_renders(workspace, tok):
    text = ("{% for m in messages %}[{{ m['role'] | upper }}] "
            "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}</s>{% endgeneration %}"
            "{% else %}{{ m['content'] }}{% endif %}{{ '\\n' }}{% endfor %}")
    at = _custom(workspace, text)
    _no_exceptions(at)
    rendered = _unescape(_html(at, "wb-rendered"))
    assert "[SYSTEM] You are terse.\n[USER] Instruction number 1 (edited)\n[ASSISTANT] A better answer</s>\n" in rendered
    assert any(s.value.startswith("Valid:") for s in at.success)
    sample = _sample(workspace, "alpaca-mini", 2, 1)
    ids, labels = render_with_mask(tok, sample.turns(), get_custom(text))
    assert _metrics(at)["Tokens"] == f"{len(ids):,}"
    assert _metrics(at)["Learned tokens"] == f"{sum(1 for x in labels if x != -100):,}"


def test_custom_template_without_generation_block_says_how_the_mask_is_found(workspace, tok):
    text = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{{ '\\n' }}{% endfor %}"
    at = _custom(workspace, text)
    _no_exceptions(at)
    assert any("No `{% generation %}` block" in i.value for i in at.info)
    sample = _sample(workspace, "alpaca-mini", 2, 1)
    ids, labels = render_with_mask(tok, sample.turns(), get_custom(text))
    assert _metrics(at)["Learned tokens"] == f"{sum(1 for x in labels if x != -100):,}"


def test_custom_instruction_template_and_load_into_editor(workspace, tok):
    at = _custom(workspace, "Q: {{ instruction }}\nA: {% generation %}{{ output }}{% endgeneration %}",
                 kind="instruction")
    _no_exceptions(at)
    assert "Q: Instruction number 1 (edited)\nA: A better answer" in _unescape(_html(at, "wb-rendered"))
    # a missing field is a message naming it
    at.text_area(key="tpl_custom_text").input("{{ instruction }} {{ context }}").run()
    assert not at.exception
    assert any("context" in e.value for e in at.error)
    at.selectbox(key="tpl_custom_start").select("instruction/alpaca").run()
    at.button(key="tpl_load").click().run()
    _no_exceptions(at)
    assert at.text_area(key="tpl_custom_text").value == get_template("alpaca").text
    assert at.radio(key="tpl_custom_kind").value == "instruction"


def get_custom(text: str, kind: str = "chat"):
    from app.template_view import custom_template
    return custom_template(text, kind)


# ---------------------------------------------------------------- helpers
def test_long_renders_are_capped(tok):
    from app import template_view as tv
    from datastore import Sample
    s = Sample(kind="instruction", instruction="Summarize " * 3000, output="ok " * 800, sample_id=1)
    view = tv.build_view(s, get_template("chatml"), tok)
    assert len(view.ids) > tv.MAX_TOKENS_SHOWN
    chips = tv.tokens_html(tok, view.ids, view.labels)
    assert chips.count('class="wb-tok ') == tv.MAX_TOKENS_SHOWN
    html_text = tv.rendered_html(view, limit=1000)
    assert len(_unescape(html_text)) == 1000


def test_html_escapes_sample_text():
    from app import template_view as tv
    from datastore import Sample
    s = Sample(kind="instruction", instruction="<script>alert(1)</script> $x$ :red[y] **b**", output="ok",
               sample_id=1)
    h = tv.rendered_html(tv.build_view(s, get_template("chatml")))
    assert "<script>" not in h and "&lt;script&gt;" in h
    assert "$" not in h and ":red[" not in h and "**" not in h
    assert "<|im_start|>" not in h and "<|im_start|>user" in _unescape(h)


# ---------------------------------------------------------------- saving and preflight
@pytest.fixture
def templates_dir(tmp_path, monkeypatch) -> Path:
    """A copy of the repository's templates, so saving never touches the checkout."""
    import shutil

    from pipelines.render import templates_root
    dest = tmp_path / "templates"
    shutil.copytree(templates_root(), dest)
    monkeypatch.setenv("WB_TEMPLATES_DIR", str(dest))
    return dest


def test_save_custom_template_then_pick_it(workspace, tok, templates_dir):
    text = get_template("chatml").text.replace("version: 1", "version: 1 (copy)")
    at = _custom(workspace, text)
    at.text_input(key="tpl_save_name").input("../escape").run()
    at.button(key="tpl_save").click().run()
    assert not at.exception
    assert any("Name the template" in e.value for e in at.error)
    at.text_input(key="tpl_save_name").input("my-chatml").run()
    at.button(key="tpl_save").click().run()
    _no_exceptions(at)
    assert (templates_dir / "chat" / "my-chatml.jinja").read_text(encoding="utf-8") == text
    assert at.selectbox(key="tpl_template").value == "chat/my-chatml"
    assert any("Saved as `chat/my-chatml`" in s.value for s in at.success)
    assert "<|im_start|>assistant" in _unescape(_html(at, "wb-rendered"))


def test_custom_template_is_not_preflighted_before_saving(workspace, tok):
    pytest.importorskip("pipelines.preflight")
    at = _custom(workspace)
    assert any("Save as template" in i.value for i in at.info)
    assert not any(b.key == "tpl_preflight" for b in at.button)


def test_preflight_result_for_a_chat_template(workspace, tok):
    pytest.importorskip("pipelines.preflight")
    at = _templates(workspace, tpl_template="chat/chatml", tpl_pf_serve="chat/chatml")
    at.number_input(key="tpl_pf_limit").set_value(5).run()
    at.button(key="tpl_preflight").click().run()
    _no_exceptions(at)
    metrics = _metrics(at)
    assert metrics["Samples checked"] == "5"
    assert any(s.value.startswith("Preflight passed") for s in at.success)
    issues = at.dataframe[-1].value
    assert "empty_mask" in list(issues["issue"])
    at.selectbox(key="tpl_sample").select(3).run()  # another widget: the report stays
    assert _metrics(at)["Samples checked"] == "5"


def test_html_escape_shows_quotes_and_entities_as_written():
    """An apostrophe, a quote, '#' and '&' read back as themselves after the browser decodes
    the entities once (the page once showed "Don&#x27;t")."""
    import html as html_mod

    from app import template_view as tv
    text = "Don't say \"#1\" & <b>x</b> $y$ :red[z] `c`"
    h = tv.esc(text)
    assert html_mod.unescape(h) == text
    assert "&&" not in h and "'" not in h and '"' not in h and "<b>" not in h

"""Preflight: check a dataset version against a training template, a tokenizer and a serving
template before a training run spends any time on it.

For every sample (``Sample.turns()``; first ``limit`` by id) :func:`run_preflight` reports:

``train_serve_string``
    The serving prompt (the conversation up to its last assistant turn, rendered with the
    serving template and the generation prompt) is not the same text as the training rendering
    of that prefix. The first differing character and both sides around it are kept.
``train_serve_tokens``
    The serving prompt's token ids (the rendered prompt tokenized as a server does: by default
    ``tokenizer(prompt)`` with the tokenizer's own special tokens, see
    ``PreflightConfig.serve_add_special_tokens``) are not the first ids of the training sequence.
``doubled_bos``
    The training or serving ids start with the BOS token twice (template writes ``bos_token``
    and the tokenizer adds one, or the template writes it twice).
``missing_eos``
    The last token the loss covers is not the tokenizer's EOS token: the model never learns to
    stop (e.g. an instruction-style template without EOS after the answer).
``empty_mask``
    No token carries a loss (no assistant turn): the sample trains nothing.
``control_tokens``
    Message content contains the text of a special/added token (``<|im_start|>`` ...). Training
    keeps it as plain text (docs/architecture.md section 5) but a server that renders and tokenizes
    it plainly would read it as a control token.
``override_attempts``
    User turns flagged by :mod:`pipelines.filters.override_detector`.
``over_length``
    Training sequences longer than ``max_length_tokens``, handled by the user's policy, never
    silently: ``fail`` (an error), ``drop`` (removed from training, a warning), ``truncate``
    (cut to the limit keeping the start, a warning; those left without any loss token are an
    ``empty_after_truncation`` error), or ``compress`` (the earlier turns are summarized by a
    generator backend into the system turn, keeping the last user/assistant exchange; samples
    still too long, or with nothing earlier to compress, are the error ``over_length_after_compress``).
``render_error``
    The training or serving template failed on the sample.
``not_rendered``, ``empty_turn``, ``invisible_chars``, ``mixed_normal_forms``, ``tool_calls``
    What a reader of the rendered text cannot see, from
    :mod:`pipelines.render.conversation_checks` (one finding per sample, message index and field,
    each with its own severity): text the training template never writes, empty answers and user
    turns, zero-width and bidi characters, mixed Unicode normal forms, tool call arguments that are
    not JSON, break the declared schema or call an undeclared tool, tool results without their call.
    The report keeps the findings (``findings``, the first :data:`MAX_FINDINGS_KEPT`); such an issue
    is an error when one of its findings is.

Which issues are errors (``has_errors``) is ``PreflightConfig.error_issues``; the default makes
everything an error except ``control_tokens``, ``override_attempts`` and over-length samples that
the chosen policy handles. A training launch calls :func:`check_before_training` (or passes the
report to ``run_sft(preflight=...)``), which raises :class:`PreflightFailed` on errors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from datastore.errors import WorkbenchError
from pipelines.render.conversation_checks import DESCRIPTIONS as CHECK_DESCRIPTIONS
from pipelines.render.conversation_checks import Finding

OverLengthPolicy = Literal["drop", "truncate", "fail", "compress"]
SERVE_FROM_TOKENIZER = "tokenizer"
ISSUES = ("render_error", "train_serve_string", "train_serve_tokens", "doubled_bos", "missing_eos", "empty_mask",
          "control_tokens", "override_attempts", "over_length", "empty_after_truncation")
DEFAULT_ERROR_ISSUES = ("render_error", "train_serve_string", "train_serve_tokens", "doubled_bos", "missing_eos",
                        "empty_mask", "empty_after_truncation")
_DESCRIPTIONS = {
    "render_error": "a template failed to render the sample",
    "train_serve_string": "serving prompt text differs from the training rendering",
    "train_serve_tokens": "serving prompt tokens are not the start of the training tokens",
    "doubled_bos": "sequence starts with BOS twice",
    "missing_eos": "last loss token is not EOS: the model does not learn to stop",
    "empty_mask": "no token carries a loss (no assistant turn)",
    "control_tokens": "message content contains special-token text",
    "override_attempts": "a user turn tries to override the system prompt",
    "over_length": "longer than max_length_tokens",
    "empty_after_truncation": "no loss token left after truncation",
}
#: Findings of the conversation checks kept in a report (all are counted).
MAX_FINDINGS_KEPT = 1000


class PreflightFailed(WorkbenchError):
    """A preflight report has errors; ``report`` is the :class:`PreflightReport`."""

    def __init__(self, report: "PreflightReport"):
        self.report = report
        super().__init__("preflight failed: " + "; ".join(report.error_lines()))


class PreflightConfig(BaseModel):
    """What to check.

    Attributes:
        dataset / version: the dataset and version (number, tag, id; None: head).
        train_template: registered chat template used for training (``chatml``).
        serve_template: registered chat template used at serving, or ``"tokenizer"`` for the
            tokenizer's own ``chat_template`` (what ``apply_chat_template`` uses by default).
        tokenizer_path: folder of the tokenizer; None: the embedded base model's.
        max_length_tokens: training sequence limit, in tokens.
        over_length_policy: ``drop`` | ``truncate`` | ``fail`` | ``compress``.
        limit: check only the first ``limit`` samples by id (None: all).
        examples_per_issue: sample ids (and details) kept per issue.
        serve_add_special_tokens: the server tokenizes the rendered prompt with the tokenizer's
            special tokens (``tokenizer(prompt)``); False: as ``apply_chat_template(tokenize=True)``.
        error_issues: issue names that make ``has_errors`` true when their count is non-zero
            (``over_length`` is always an error under the ``fail`` policy).
        summary_max_tokens: most new tokens of one summary (``compress``).
    """

    model_config = ConfigDict(extra="forbid")

    dataset: str
    version: str | int | None = None
    train_template: str = "chatml"
    serve_template: str = SERVE_FROM_TOKENIZER
    tokenizer_path: str | None = None
    max_length_tokens: int = Field(..., ge=8)
    over_length_policy: OverLengthPolicy
    limit: int | None = Field(None, ge=1)
    examples_per_issue: int = Field(10, ge=1)
    serve_add_special_tokens: bool = True
    error_issues: tuple[str, ...] = DEFAULT_ERROR_ISSUES
    summary_max_tokens: int = Field(64, ge=8)


class IssueReport(BaseModel):
    """One kind of issue: how many samples have it, the first sample ids, details for those."""

    name: str
    description: str
    severity: Literal["error", "warning"]
    count: int = 0
    sample_ids: list[int] = Field(default_factory=list)
    examples: list[dict] = Field(default_factory=list)


class OverLength(BaseModel):
    """Over-length samples and what the policy did with them (counts of samples)."""

    policy: OverLengthPolicy
    max_length_tokens: int
    count: int = 0
    longest_tokens: int = 0
    dropped: int = 0
    truncated: int = 0
    compressed: int = 0
    still_over: int = 0


class PreflightReport(BaseModel):
    """The outcome of :func:`run_preflight`. ``compressed`` maps sample id to the conversation
    that replaces it under the ``compress`` policy; :meth:`apply` builds the training list."""

    config: PreflightConfig
    version_number: int
    version_id: str
    content_hash: str
    samples_checked: int
    train_template: dict
    serve_template: dict
    tokenizer: dict
    issues: dict[str, IssueReport]
    over_length: OverLength
    compressed: dict[int, list[dict]] = Field(default_factory=dict)
    dropped_ids: list[int] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    findings_total: int = 0

    @computed_field  # type: ignore[misc]
    @property
    def has_errors(self) -> bool:
        return any(i.severity == "error" and i.count for i in self.issues.values())

    def error_lines(self) -> list[str]:
        """One line per issue with errors: ``name: count sample(s) (ids ...)``."""
        return [f"{i.name}: {i.count} sample(s), {i.description} (ids {', '.join(map(str, i.sample_ids))})"
                for i in self.issues.values() if i.severity == "error" and i.count]

    def summary_lines(self) -> list[str]:
        """Human-readable report, one line per fact (the CLI prints these)."""
        c = self.config
        ol = self.over_length
        lines = [f"preflight {c.dataset} v{self.version_number} ({self.samples_checked} samples checked, "
                 f"hash {self.content_hash[:12]})",
                 f"train template {self.train_template['name']} (sha256 {self.train_template['sha256'][:12]}), "
                 f"serve template {self.serve_template['name']} (sha256 {self.serve_template['sha256'][:12]}), "
                 f"tokenizer {self.tokenizer['path']}",
                 f"over length (> {ol.max_length_tokens} tokens): {ol.count}, longest {ol.longest_tokens}; "
                 f"policy {ol.policy}: dropped {ol.dropped}, truncated {ol.truncated}, compressed {ol.compressed}, "
                 f"still over {ol.still_over}"]
        for i in self.issues.values():
            mark = "ERROR" if i.severity == "error" and i.count else ("warn" if i.count else "ok")
            ids = f" ids {', '.join(map(str, i.sample_ids))}" if i.count else ""
            lines.append(f"[{mark}] {i.name}: {i.count} ({i.description}){ids}")
            if i.name in CHECK_DESCRIPTIONS:
                lines.extend(f"    sample {ex['sample_id']}, message {ex['message_index']}, {ex['field']} "
                             f"[{ex['severity']}]: {ex['message']}" for ex in i.examples)
                continue
            for ex in i.examples[:2]:
                lines.append(f"    #{ex.get('sample_id')}: {_short(ex)}")
        lines.append("result: " + ("ERRORS, training would stop" if self.has_errors else "ok"))
        return lines

    def apply(self, conversations: dict[int, list[dict]]) -> list[list[dict]]:
        """The conversations to train on, by sample id order, after the over-length policy:
        ``drop`` removes, ``compress`` replaces, ``truncate`` keeps them (training truncates).
        Raises :class:`PreflightFailed` when the report has errors."""
        if self.has_errors:
            raise PreflightFailed(self)
        dropped = set(self.dropped_ids)
        return [self.compressed.get(sid, conv) for sid, conv in sorted(conversations.items()) if sid not in dropped]


def _short(ex: dict, n: int = 160) -> str:
    s = ", ".join(f"{k}={v!r}" for k, v in ex.items() if k != "sample_id")
    return s[:n] + ("..." if len(s) > n else "")


# --------------------------------------------------------------------------- helpers

def special_token_strings(tokenizer) -> list[str]:
    """Text of every special and added token of ``tokenizer`` (longest first, no empties)."""
    toks = set(getattr(tokenizer, "all_special_tokens", []) or [])
    try:
        toks |= set(tokenizer.get_added_vocab())
    except Exception:  # a tokenizer without added vocab
        pass
    return sorted((t for t in toks if isinstance(t, str) and t), key=lambda t: (-len(t), t))


def _control_strings_fallback(messages: list[dict], tokenizer) -> list[tuple[int, str]]:
    strings = special_token_strings(tokenizer)
    out = []
    for i, m in enumerate(messages):
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, str):
            out.extend((i, t) for t in strings if t in c)
    return out


def control_strings(messages: list[dict], tokenizer) -> list[tuple[int, str]]:
    """``[(message_index, token_string)]`` of special-token text inside message contents.

    Uses ``pipelines.render.control_strings_in`` when the render package provides it, else a
    local check against the tokenizer's special and added tokens."""
    try:
        from pipelines.render import control_strings_in  # type: ignore[attr-defined]
    except ImportError:
        return _control_strings_fallback(messages, tokenizer)
    return list(control_strings_in(messages, tokenizer))


def first_difference(a, b) -> int | None:
    """Index of the first differing element of two sequences (or the shorter length), None if equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _last_assistant(turns: list[dict]) -> int | None:
    for i in range(len(turns) - 1, -1, -1):
        if turns[i].get("role") == "assistant":
            return i
    return None


SUMMARY_PROMPT = ("Summarize the following conversation in at most three sentences. Keep names, numbers and "
                  "decisions.\n\n{transcript}\n\nSummary:")


def compress_conversations(convs: list[list[dict]], backend, *, max_tokens: int = 64,
                           max_chars: int = 6000) -> list[list[dict] | None]:
    """Replace the earlier turns of each conversation with a summary written by ``backend``.

    The earlier turns are everything between the leading system turn and the last user turn
    before the last assistant turn; the summary goes into the system turn (``"Summary of the
    earlier conversation: ..."``), followed by that last user turn and the last assistant turn.
    Greedy decoding, seed 0; the transcript is cut to its last ``max_chars`` characters.
    Returns one new conversation per input, or None where there is nothing earlier to compress.
    """
    from pipelines.generate.backends import SamplingConfig

    plans, prompts = [], []
    for turns in convs:
        k = _last_assistant(turns)
        u = k - 1 if k is not None and k > 0 and turns[k - 1].get("role") == "user" else None
        start = 1 if turns and turns[0].get("role") == "system" else 0
        if k is None or u is None or u <= start:
            plans.append(None)
            continue
        earlier = turns[start:u]
        transcript = "\n".join(f"{t.get('role')}: {t.get('content')}" for t in earlier)[-max_chars:]
        plans.append((turns, start, u, k, len(prompts)))
        prompts.append([{"role": "user", "content": SUMMARY_PROMPT.format(transcript=transcript)}])
    outs = backend.chat(prompts, SamplingConfig(max_tokens=max_tokens, temperature=0.0, seed=0)) if prompts else []
    result: list[list[dict] | None] = []
    for plan in plans:
        if plan is None:
            result.append(None)
            continue
        turns, start, u, k, j = plan
        summary = " ".join(outs[j].text.split())
        note = f"Summary of the earlier conversation: {summary}"
        system = f"{turns[0]['content']}\n\n{note}" if start == 1 and turns[0].get("content") else note
        result.append([{"role": "system", "content": system}, dict(turns[u]), dict(turns[k])])
    return result


def conversation_findings(samples, template, tokenizer, n_keep: int) -> tuple[dict[str, IssueReport], list[Finding], int]:
    """The conversation checks on every sample: one :class:`IssueReport` per check (count: samples
    with a finding; severity: error when any finding is; examples: the first ``n_keep`` findings),
    the first :data:`MAX_FINDINGS_KEPT` findings and their total."""
    from pipelines.render.conversation_checks import run_checks

    issues = {n: IssueReport(name=n, description=d, severity="warning") for n, d in CHECK_DESCRIPTIONS.items()}
    kept: list[Finding] = []
    total = 0
    for s in samples:
        found = run_checks(s, template, tokenizer=tokenizer)
        total += len(found)
        kept.extend(found[:MAX_FINDINGS_KEPT - len(kept)])
        for name in dict.fromkeys(f.check for f in found):
            rep = issues[name]
            rep.count += 1
            if len(rep.sample_ids) < n_keep:
                rep.sample_ids.append(s.sample_id)
        for f in found:
            rep = issues[f.check]
            if f.severity == "error":
                rep.severity = "error"
            if len(rep.examples) < n_keep:
                rep.examples.append(f.model_dump(exclude={"check"}))
    if not issues["template_input"].count:
        del issues["template_input"]
    return issues, kept, total


# --------------------------------------------------------------------------- the check

def _load_samples(workspace, dataset, version, limit):
    from datastore import Store
    from datastore import versions as V

    with Store(workspace) as st:
        v = V.resolve(st, dataset, version)
        samples = []
        for s in V.iter_samples(st, v, batch=min(limit or 5000, 5000)):
            samples.append(s)
            if limit is not None and len(samples) >= limit:
                break
    return v, samples


def run_preflight(workspace: str | Path, dataset: str, version: str | int | None = None, *,
                  train_template: str = "chatml", serve_template: str = SERVE_FROM_TOKENIZER,
                  tokenizer_path: str | Path | None = None, max_length_tokens: int,
                  over_length_policy: OverLengthPolicy, limit: int | None = None, backend=None,
                  tokenizer=None, **options: Any) -> PreflightReport:
    """Check one dataset version for training and serving (see the module doc for the issues).

    Args:
        workspace, dataset, version: the version to check (number, tag or id; None: head).
        train_template: a registered chat template. serve_template: a registered chat template or
            ``"tokenizer"`` (the tokenizer's own chat template).
        tokenizer_path: tokenizer folder (None: the embedded model's); ``tokenizer``: an already
            loaded tokenizer instead.
        max_length_tokens: training limit in tokens. over_length_policy: drop|truncate|fail|compress.
        limit: check the first ``limit`` samples by id.
        backend: generator backend for ``compress`` (default: ``get_backend("transformers",
            num_threads=1)``, the embedded model).
        options: further :class:`PreflightConfig` fields (``examples_per_issue``, ``error_issues``...).
    Returns:
        :class:`PreflightReport` (``has_errors`` says whether training must stop).
    Raises:
        NotFound: unknown dataset, version or template. WorkbenchError: the training template is not
        a chat template, or the tokenizer has no chat template while ``serve_template="tokenizer"``.
    """
    from pipelines.filters.override_detector import flag_user_turns
    from pipelines.render import get_template, render_chat, render_with_mask, template_info, template_input
    from pipelines.render.templates import render_chat_text

    cfg = PreflightConfig(dataset=dataset, version=version, train_template=train_template,
                          serve_template=serve_template,
                          tokenizer_path=str(tokenizer_path) if tokenizer_path is not None else None,
                          max_length_tokens=max_length_tokens, over_length_policy=over_length_policy,
                          limit=limit, **options)
    tpl = get_template(cfg.train_template)
    if tpl.kind != "chat":
        raise WorkbenchError(f"template '{cfg.train_template}' is a {tpl.kind} template; training renders "
                             "conversations and needs a chat template (e.g. 'chatml')")
    if tokenizer is None:
        from pipelines.models import load_tokenizer
        tokenizer = load_tokenizer(cfg.tokenizer_path)
    tok_path = cfg.tokenizer_path or getattr(tokenizer, "name_or_path", "") or "embedded"
    stpl = None  # the serving template: None for the tokenizer's own (its special tokens only)
    if cfg.serve_template == SERVE_FROM_TOKENIZER:
        serve_text = getattr(tokenizer, "chat_template", None)
        if not isinstance(serve_text, str) or not serve_text:
            raise WorkbenchError(f"the tokenizer at {tok_path} has no chat template; name a serving template")
        import hashlib
        serve_info = {"name": "tokenizer", "kind": "chat", "version": None, "path": str(tok_path),
                      "sha256": hashlib.sha256(serve_text.encode("utf-8")).hexdigest()}
    else:
        stpl = get_template(cfg.serve_template)
        if stpl.kind != "chat":
            raise WorkbenchError(f"serving template '{cfg.serve_template}' is a {stpl.kind} template, not a chat template")
        serve_text, serve_info = stpl.text, template_info(stpl)

    v, samples = _load_samples(workspace, cfg.dataset, cfg.version, cfg.limit)

    bos, eos = tokenizer.bos_token, tokenizer.eos_token
    bos_id, eos_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    errs = set(cfg.error_issues) | ({"over_length"} if cfg.over_length_policy == "fail" else set())
    issues = {n: IssueReport(name=n, description=_DESCRIPTIONS[n], severity="error" if n in errs else "warning")
              for n in ISSUES}
    ol = OverLength(policy=cfg.over_length_policy, max_length_tokens=cfg.max_length_tokens)
    n_keep = cfg.examples_per_issue

    def add(name: str, sid: int, **detail):
        rep = issues[name]
        rep.count += 1
        if len(rep.sample_ids) < n_keep:
            rep.sample_ids.append(sid)
            rep.examples.append({"sample_id": sid, **detail})

    over: list[tuple[int, list[dict]]] = []
    dropped: list[int] = []
    for s in samples:
        sid = s.sample_id
        try:
            inp = template_input(s, tpl, tokenizer=tokenizer)
            turns = inp.messages
            ids, labels = render_with_mask(tokenizer, inp, tpl)
        except WorkbenchError as e:
            add("render_error", sid, side="train", error=str(e)[:200])
            continue
        loss = [i for i, x in enumerate(labels) if x != -100]
        if not loss:
            add("empty_mask", sid, turns=len(turns))
        elif eos_id is not None and labels[loss[-1]] != eos_id:
            add("missing_eos", sid, last_loss_token=tokenizer.convert_ids_to_tokens(labels[loss[-1]]), eos=eos)
        if bos_id is not None and ids[:2] == [bos_id, bos_id]:
            add("doubled_bos", sid, side="train", bos=bos)
        found = control_strings(turns, tokenizer)
        if found:
            add("control_tokens", sid, found=[[i, t] for i, t in found[:5]])
        flagged = flag_user_turns(turns)
        if flagged:
            i, d = flagged[0]
            add("override_attempts", sid, message_index=i, rules=d.rules, match=d.matches[0][:80])

        k = _last_assistant(turns)
        if k is not None:
            prompt = inp.prefix(k)
            try:
                train_prompt = render_chat(prompt, tpl)
                serve_prompt = render_chat_text(serve_text, template_input(s, stpl, tokenizer=tokenizer).prefix(k),
                                                name=serve_info["name"])[0]
            except WorkbenchError as e:
                add("render_error", sid, side="serve", error=str(e)[:200])
            else:
                pos = first_difference(train_prompt, serve_prompt)
                if pos is not None:
                    add("train_serve_string", sid, char=pos, train=train_prompt[max(0, pos - 20):pos + 60],
                        serve=serve_prompt[max(0, pos - 20):pos + 60])
                serve_ids = tokenizer(serve_prompt, add_special_tokens=cfg.serve_add_special_tokens)["input_ids"]
                if bos_id is not None and serve_ids[:2] == [bos_id, bos_id]:
                    add("doubled_bos", sid, side="serve", bos=bos)
                tpos = first_difference(ids[:len(serve_ids)], serve_ids)
                if tpos is not None:
                    add("train_serve_tokens", sid, token=tpos,
                        train=tokenizer.convert_ids_to_tokens(ids[tpos:tpos + 3]),
                        serve=tokenizer.convert_ids_to_tokens(serve_ids[tpos:tpos + 3]))

        if len(ids) > cfg.max_length_tokens:
            ol.count += 1
            ol.longest_tokens = max(ol.longest_tokens, len(ids))
            add("over_length", sid, tokens=len(ids))
            if cfg.over_length_policy == "drop":
                ol.dropped += 1
                dropped.append(sid)
            elif cfg.over_length_policy == "truncate":
                ol.truncated += 1
                if all(x == -100 for x in labels[:cfg.max_length_tokens]) and loss:
                    add("empty_after_truncation", sid, tokens=len(ids), first_loss_token=loss[0])
            elif cfg.over_length_policy == "compress":
                over.append((sid, inp))

    conv_issues, findings, n_findings = conversation_findings(samples, tpl, tokenizer, n_keep)
    issues.update(conv_issues)

    compressed: dict[int, list[dict]] = {}
    if cfg.over_length_policy == "compress":
        issues["over_length_after_compress"] = IssueReport(
            name="over_length_after_compress", severity="error",
            description="still over max_length_tokens after compressing earlier turns (or nothing earlier to compress)")
    if over:
        if backend is None:
            from pipelines.generate.backends import get_backend
            backend = get_backend("transformers", num_threads=1)
        new = compress_conversations([t.messages for _, t in over], backend, max_tokens=cfg.summary_max_tokens)
        still = issues["over_length_after_compress"]
        for (sid, was), conv in zip(over, new):
            short = template_input(conv, tpl, tokenizer=tokenizer, tools=was.tools, documents=was.documents,
                                   sample_id=sid) if conv is not None else None
            n_tokens = len(render_with_mask(tokenizer, short, tpl)[0]) if short is not None else None
            if conv is None or n_tokens > cfg.max_length_tokens:
                ol.still_over += 1
                still.count += 1
                if len(still.sample_ids) < n_keep:
                    still.sample_ids.append(sid)
                    still.examples.append({"sample_id": sid, "tokens_after": n_tokens,
                                           "reason": "nothing earlier to compress" if conv is None else "too long"})
            else:
                ol.compressed += 1
                compressed[sid] = conv

    return PreflightReport(config=cfg, version_number=v.number, version_id=v.version_id,
                           content_hash=v.content_hash, samples_checked=len(samples),
                           train_template=template_info(tpl), serve_template=serve_info,
                           tokenizer={"path": str(tok_path), "bos_token": bos, "eos_token": eos},
                           issues=issues, over_length=ol, compressed=compressed, dropped_ids=dropped,
                           findings=findings, findings_total=n_findings)


def check_before_training(report: PreflightReport | None) -> None:
    """Stop a training launch on a report with errors (None: nothing to check).

    Raises:
        PreflightFailed: the report has errors; the message lists each issue with sample ids.
    """
    if report is not None and report.has_errors:
        raise PreflightFailed(report)


__all__ = ["DEFAULT_ERROR_ISSUES", "Finding", "ISSUES", "IssueReport", "MAX_FINDINGS_KEPT", "OverLength",
           "PreflightConfig", "PreflightFailed", "PreflightReport", "SERVE_FROM_TOKENIZER", "check_before_training", "compress_conversations",
           "control_strings", "conversation_findings", "first_difference", "run_preflight", "special_token_strings"]

"""Preference data formats: import and export, one record at a time, detected by content.

Formats (the keys decide; file names never do):

* ``trl`` (trl docs, "Dataset formats", preference): ``{"prompt", "chosen", "rejected"}``.
  *Conversational*: each a list of ``{"role", "content"}``; *plain* ("standard"): each a string.
  The *implicit prompt* variant (no ``prompt``; ``chosen``/``rejected`` are whole conversations)
  is read by splitting off their common leading turns.
* ``trl_unpaired`` (trl's unpaired preference, used by KTO): ``{"prompt", "completion", "label"}``.
* ``llamafactory_dpo`` (LLaMA-Factory ``data/dpo_en_demo.json``; its ``dataset_info.json`` entry
  has ``"ranking": true`` and columns messages=conversations, chosen, rejected): ShareGPT turns
  ``{"from", "value"}`` in ``conversations`` (roles system/human/gpt/function_call/observation),
  ``chosen`` and ``rejected`` one ``{"from": "gpt", "value"}`` each.
* ``llamafactory_kto`` (``data/kto_en_demo.json``; columns messages=messages, kto_tag=label):
  ``{"messages": [{"role", "content"}], "label": bool}``, the last message the completion.
* ``hh_rlhf`` (Anthropic hh-rlhf): ``{"chosen", "rejected"}``, each one transcript string
  ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``; the prompt is the common leading turns (cut back to
  end with a Human turn), the rest of each transcript its completion. In the harmless-base test
  split 5 of 2,312 records differ before their final turn; they keep several completion turns,
  so every record round-trips byte for byte.

Round trips are lossless (tests on the real files in ../shared/data): record keys we do not map
go to ``extra``; ``layout`` keeps the format, the style and non-standard role names.
Export to trl's format writes conversational records, or plain ones where asked (a prompt that
is more than one user turn is then rendered with a chat template, see :func:`to_trl`).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Iterator

from datastore.errors import FormatError, WorkbenchError
from pipelines.preference.pairs import Pair, Unpaired

FORMATS = ("trl", "trl_unpaired", "llamafactory_dpo", "llamafactory_kto", "hh_rlhf")
#: LLaMA-Factory's ShareGPT role tags (its ``dataset_info.json`` defaults: human/gpt/observation/
#: function_call/system) mapped to OpenAI roles; ``function_call`` is an assistant turn.
LF_TO_ROLE = {"human": "user", "gpt": "assistant", "system": "system", "observation": "tool",
              "function_call": "assistant"}
ROLE_TO_LF = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}
_HH_SPLIT = re.compile(r"\n\n(Human|Assistant): ")
_HH_ROLE = {"Human": "user", "Assistant": "assistant"}
_HH_NAME = {"user": "Human", "assistant": "Assistant"}


# ---------------------------------------------------------------- detection
def detect(rec: dict) -> str:
    """The format of one record, from its keys and value types.

    Raises:
        FormatError: no preference format fits (names the keys found).
    """
    if not isinstance(rec, dict):
        raise FormatError(f"a preference record must be a JSON object, got {type(rec).__name__}")
    keys = set(rec)
    if {"conversations", "chosen", "rejected"} <= keys:
        return "llamafactory_dpo"
    if {"messages", "label"} <= keys:
        return "llamafactory_kto"
    if {"prompt", "completion", "label"} <= keys:
        return "trl_unpaired"
    if {"chosen", "rejected"} <= keys:
        if "prompt" not in keys and isinstance(rec["chosen"], str) and rec["chosen"].startswith("\n\nHuman: "):
            return "hh_rlhf"
        return "trl"
    raise FormatError(f"not a preference record: keys {sorted(keys)} (expected prompt/chosen/rejected, "
                      "conversations/chosen/rejected, messages/label, prompt/completion/label)")


# ---------------------------------------------------------------- helpers
def _turns(value, field: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise FormatError("must be a list of {role, content} messages", field=field)
    for i, t in enumerate(value):
        if not isinstance(t.get("role"), str) or not isinstance(t.get("content"), str):
            raise FormatError("each message needs a text 'role' and 'content'", field=f"{field}[{i}]")
    return [dict(t) for t in value]


def _text(value, field: str) -> str:
    if not isinstance(value, str):
        raise FormatError(f"must be text, got {type(value).__name__}", field=field)
    return value


def _rest(rec: dict, used: Iterable[str]) -> dict:
    return {k: v for k, v in rec.items() if k not in set(used)}


def _split_common(a: list[dict], b: list[dict]) -> int:
    """Length of the common leading turns of ``a`` and ``b``, cut back so that each keeps at least
    one turn and the prompt ends with a user turn (or is empty)."""
    n = 0
    while n < min(len(a), len(b)) - 1 and a[n] == b[n]:
        n += 1
    while n > 0 and a[n - 1].get("role") != "user":
        n -= 1
    return n


# ---------------------------------------------------------------- parse one record
def parse_record(rec: dict, fmt: str | None = None) -> Pair | Unpaired:
    """One source record as a :class:`Pair` (or :class:`Unpaired` for KTO formats).

    Raises:
        FormatError: the record does not fit ``fmt`` (``field`` names the bad field).
    """
    fmt = fmt or detect(rec)
    if fmt == "trl":
        return _from_trl(rec)
    if fmt == "trl_unpaired":
        conv = isinstance(rec["prompt"], list)
        prompt = _turns(rec["prompt"], "prompt") if conv else [{"role": "user", "content": _text(rec["prompt"], "prompt")}]
        comp = (_turns(rec["completion"], "completion") if conv
                else [{"role": "assistant", "content": _text(rec["completion"], "completion")}])
        if not isinstance(rec["label"], bool):
            raise FormatError("must be true or false", field="label")
        return Unpaired(prompt, comp, rec["label"], extra=_rest(rec, ("prompt", "completion", "label")),
                        layout={"format": "trl_unpaired", "style": "conversational" if conv else "plain",
                                "keys": list(rec)})
    if fmt == "llamafactory_dpo":
        return _from_lf_dpo(rec)
    if fmt == "llamafactory_kto":
        msgs = _turns(rec["messages"], "messages")
        if not msgs or msgs[-1]["role"] != "assistant":
            raise FormatError("the last message must be the assistant's completion", field="messages")
        if not isinstance(rec["label"], bool):
            raise FormatError("must be true or false", field="label")
        return Unpaired(msgs[:-1], msgs[-1:], rec["label"], extra=_rest(rec, ("messages", "label")),
                        layout={"format": "llamafactory_kto", "keys": list(rec)})
    if fmt == "hh_rlhf":
        a = _hh_turns(_text(rec["chosen"], "chosen"), "chosen")
        b = _hh_turns(_text(rec["rejected"], "rejected"), "rejected")
        n = _split_common(a, b)
        return Pair(a[:n], a[n:], b[n:], extra=_rest(rec, ("chosen", "rejected")),
                    layout={"format": "hh_rlhf", "keys": list(rec)})
    raise FormatError(f"unknown preference format '{fmt}' (known: {', '.join(FORMATS)})")


def _from_trl(rec: dict) -> Pair:
    c, r = rec["chosen"], rec["rejected"]
    keys = list(rec)
    if "prompt" not in rec:  # implicit prompt
        a, b = _turns(c, "chosen"), _turns(r, "rejected")
        n = _split_common(a, b)
        return Pair(a[:n], a[n:], b[n:], extra=_rest(rec, ("chosen", "rejected")),
                    layout={"format": "trl", "style": "implicit", "keys": keys})
    p = rec["prompt"]
    if isinstance(p, list):
        return Pair(_turns(p, "prompt"), _turns(c, "chosen"), _turns(r, "rejected"),
                    extra=_rest(rec, ("prompt", "chosen", "rejected")),
                    layout={"format": "trl", "style": "conversational", "keys": keys})
    return Pair([{"role": "user", "content": _text(p, "prompt")}],
                [{"role": "assistant", "content": _text(c, "chosen")}],
                [{"role": "assistant", "content": _text(r, "rejected")}],
                extra=_rest(rec, ("prompt", "chosen", "rejected")),
                layout={"format": "trl", "style": "plain", "keys": keys})


def _lf_turn(t, field: str) -> tuple[dict, str]:
    if not isinstance(t, dict) or not isinstance(t.get("from"), str) or not isinstance(t.get("value"), str):
        raise FormatError("each turn needs a text 'from' and 'value'", field=field)
    if t["from"] not in LF_TO_ROLE:
        raise FormatError(f"unknown role tag '{t['from']}' (known: {', '.join(LF_TO_ROLE)})", field=f"{field}.from")
    turn = {"role": LF_TO_ROLE[t["from"]], "content": t["value"]}
    turn.update({k: v for k, v in t.items() if k not in ("from", "value")})
    return turn, t["from"]


def _from_lf_dpo(rec: dict) -> Pair:
    conv = rec["conversations"]
    if not isinstance(conv, list) or not conv:
        raise FormatError("must be a non-empty list of turns", field="conversations")
    prompt, tags = [], []
    for i, t in enumerate(conv):
        turn, tag = _lf_turn(t, f"conversations[{i}]")
        prompt.append(turn)
        tags.append(tag)
    chosen, ct = _lf_turn(rec["chosen"], "chosen")
    rejected, rt = _lf_turn(rec["rejected"], "rejected")
    layout = {"format": "llamafactory_dpo", "keys": list(rec)}
    odd = {str(i): tag for i, tag in enumerate(tags + [ct, rt])
           if ROLE_TO_LF.get(LF_TO_ROLE[tag]) != tag}  # e.g. function_call
    if odd:
        layout["tags"] = odd
    return Pair(prompt, [chosen], [rejected], extra=_rest(rec, ("conversations", "chosen", "rejected")), layout=layout)


def _hh_turns(text: str, field: str) -> list[dict]:
    parts = _HH_SPLIT.split(text)
    if parts[0] != "" or len(parts) < 3:
        raise FormatError("an hh-rlhf transcript starts with '\\n\\nHuman: ' and alternates Human/Assistant",
                          field=field)
    return [{"role": _HH_ROLE[parts[i]], "content": parts[i + 1]} for i in range(1, len(parts), 2)]


# ---------------------------------------------------------------- write one record
def _plain_prompt(prompt: list[dict], template: str | None) -> str:
    if len(prompt) == 1 and prompt[0]["role"] == "user":
        return prompt[0]["content"]
    from pipelines.render import get_template, render_chat, template_input
    tpl = get_template(template or "chatml")
    return render_chat(template_input(prompt, tpl, add_generation_prompt=True), tpl)


def to_trl(item: Pair | Unpaired, *, conversational: bool = True, template: str | None = None) -> dict:
    """trl's preference record (unpaired: ``prompt``/``completion``/``label``).

    Plain (``conversational=False``): a prompt of one user turn is written as its text; any
    other prompt is rendered with the chat ``template`` (default ``chatml``) with the generation
    prompt, as trl's plain format expects the prompt text the model sees. Completions are the
    texts of their turns joined (one assistant turn in practice). Keys of ``extra`` are written
    back after the format's keys.

    Raises:
        WorkbenchError: a plain export of a completion with several turns (not representable).
    """
    def comp(turns: list[dict], name: str):
        if conversational:
            return [dict(t) for t in turns]
        if len(turns) != 1:
            raise WorkbenchError(f"a {name} of {len(turns)} turns cannot be written in trl's plain format; "
                                 "export it conversational")
        return turns[0]["content"]
    prompt = [dict(t) for t in item.prompt] if conversational else _plain_prompt(item.prompt, template)
    if isinstance(item, Unpaired):
        rec = {"prompt": prompt, "completion": comp(item.completion, "completion"), "label": item.label}
    else:
        rec = {"prompt": prompt, "chosen": comp(item.chosen, "chosen"), "rejected": comp(item.rejected, "rejected")}
    return _with_extra(rec, item)


def _with_extra(rec: dict, item) -> dict:
    extra = dict(item.extra or {})
    keys = (item.layout or {}).get("keys")
    if keys and set(keys) == set(rec) | set(extra):
        merged = {**rec, **extra}
        return {k: merged[k] for k in keys}
    return {**rec, **extra}


def _to_lf_turn(t: dict, tag: str | None) -> dict:
    if t["role"] not in ROLE_TO_LF:
        raise WorkbenchError(f"role '{t['role']}' has no LLaMA-Factory tag")
    out = {"from": tag or ROLE_TO_LF[t["role"]], "value": t["content"]}
    out.update({k: v for k, v in t.items() if k not in ("role", "content")})
    return out


def to_llamafactory_dpo(p: Pair) -> dict:
    """LLaMA-Factory's ranking record. Raises WorkbenchError for completions of several turns."""
    if len(p.chosen) != 1 or len(p.rejected) != 1:
        raise WorkbenchError("LLaMA-Factory's DPO format holds one chosen and one rejected turn")
    tags = (p.layout or {}).get("tags", {}) if (p.layout or {}).get("format") == "llamafactory_dpo" else {}
    n = len(p.prompt)
    rec = {"conversations": [_to_lf_turn(t, tags.get(str(i))) for i, t in enumerate(p.prompt)],
           "chosen": _to_lf_turn(p.chosen[0], tags.get(str(n))),
           "rejected": _to_lf_turn(p.rejected[0], tags.get(str(n + 1)))}
    return _with_extra(rec, p)


def to_llamafactory_kto(u: Unpaired) -> dict:
    return _with_extra({"messages": [dict(t) for t in u.prompt + u.completion], "label": u.label}, u)


def to_hh(p: Pair) -> dict:
    """hh-rlhf transcripts. Raises WorkbenchError for a system or tool turn (no hh-rlhf form)."""
    def transcript(turns):
        bad = [t["role"] for t in turns if t["role"] not in _HH_NAME]
        if bad:
            raise WorkbenchError(f"hh-rlhf transcripts hold Human and Assistant turns only, not '{bad[0]}'")
        return "".join(f"\n\n{_HH_NAME[t['role']]}: {t['content']}" for t in turns)
    return _with_extra({"chosen": transcript(p.prompt + p.chosen), "rejected": transcript(p.prompt + p.rejected)}, p)


def dump_record(item: Pair | Unpaired, fmt: str, *, conversational: bool = True, template: str | None = None) -> dict:
    """Write one item in ``fmt``; ``trl`` of an :class:`Unpaired` writes trl's unpaired form."""
    if fmt in ("trl", "trl_unpaired"):
        if fmt == "trl_unpaired" and not isinstance(item, Unpaired):
            raise WorkbenchError("trl_unpaired holds unpaired (KTO) examples; this is a pair")
        return to_trl(item, conversational=conversational, template=template)
    if fmt == "llamafactory_dpo":
        if isinstance(item, Unpaired):
            raise WorkbenchError("an unpaired (KTO) example cannot be written as a DPO pair")
        return to_llamafactory_dpo(item)
    if fmt == "llamafactory_kto":
        if not isinstance(item, Unpaired):
            raise WorkbenchError("a pair cannot be written as one KTO example; export it as trl or llamafactory_dpo")
        return to_llamafactory_kto(item)
    if fmt == "hh_rlhf":
        if isinstance(item, Unpaired):
            raise WorkbenchError("an unpaired (KTO) example has no hh-rlhf form")
        return to_hh(item)
    raise WorkbenchError(f"unknown preference format '{fmt}' (known: {', '.join(FORMATS)})")


# ---------------------------------------------------------------- files
def read_file(path: str | Path, fmt: str | None = None) -> tuple[list[Pair | Unpaired], str]:
    """Every record of a JSON, JSON Lines (optionally gzipped) or Parquet file.

    The format is detected from the first record unless given, and every record must fit it.
    Returns ``(items, format)``; each item's ``source`` is the file name and its ``lineage``
    ``{"rule": "import", "file", "row"}``.

    Raises:
        FormatError: naming file, row, line and field of the first bad record.
    """
    from pipelines.formats.containers import read_records, sniff

    path = Path(path)
    if not path.exists():
        raise FormatError("file not found", file=str(path))
    container = sniff(path)
    items: list = []
    for raw in read_records(path, container):
        if raw.error:
            raise FormatError(raw.error, file=str(path), row=raw.row, line=raw.line, field=raw.field)
        try:
            if fmt is None:
                fmt = detect(raw.value)
            item = parse_record(raw.value, fmt)
        except FormatError as e:
            raise FormatError(e.reason, file=str(path), row=raw.row, line=raw.line, field=e.field) from None
        except KeyError as e:
            raise FormatError(f"missing key {e.args[0]!r} for format {fmt}", file=str(path), row=raw.row,
                              line=raw.line, field=str(e.args[0])) from None
        item.source = path.name
        item.lineage = {"rule": "import", "file": path.name, "row": raw.row, "format": fmt}
        items.append(item)
    if not items:
        raise FormatError("no records", file=str(path))
    return items, fmt


def write_file(items: Iterable[Pair | Unpaired], path: str | Path, fmt: str = "trl", *,
               conversational: bool = True, template: str | None = None, lines: bool | None = None) -> int:
    """Write items as JSON Lines (``.jsonl``/``lines=True``) or a JSON array; returns the count."""
    from pipelines.formats.containers import write_json

    path = Path(path)
    recs = []
    for n, i in enumerate(items, start=1):
        try:
            recs.append(dump_record(i, fmt, conversational=conversational, template=template))
        except WorkbenchError as e:
            where = f"sample {i.sample_id}" if i.sample_id is not None else f"item {n}"
            raise WorkbenchError(f"{where}: {e}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(recs, path, lines if lines is not None else path.suffix == ".jsonl")
    return len(recs)


def iter_trl(items: Iterable[Pair], *, conversational: bool = True, template: str | None = None) -> Iterator[dict]:
    """trl records of the pairs only (unpaired items skipped), for ``datasets.Dataset.from_list``."""
    for i in items:
        if isinstance(i, Pair):
            yield to_trl(i, conversational=conversational, template=template)


__all__ = ["FORMATS", "detect", "dump_record", "iter_trl", "parse_record", "read_file", "to_hh",
           "to_llamafactory_dpo", "to_llamafactory_kto", "to_trl", "write_file"]

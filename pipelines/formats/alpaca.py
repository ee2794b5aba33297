"""Alpaca records and any table with a column mapping.

Alpaca (Taori et al. 2023, tatsu-lab/stanford_alpaca): ``instruction``, ``input``,
``output``, optional ``system`` and ``history`` (a list of ``[user, assistant]`` pairs,
as LLaMA-Factory's alpaca format). Other tables map their columns onto these fields,
e.g. OpenOrca's ``system_prompt``/``question``/``response``, XSTest's ``prompt`` or
Self-Instruct's ``response``: by an explicit ``--map`` or by the first synonym present.

``input`` missing, null, ``""`` and whitespace-only all mean "no input" when rendering,
and each is written back exactly as it came (the layout records which keys were
present). Stanford's train.py picks its with-input prompt for any input other than ``""``,
so a whitespace-only input is imported with a warning (:data:`BLANK_INPUT_WARNING`) that
states the rule we use. A table with an ``output`` column must have it, as text, in every row; a
table with none is imported as prompts (instruction only, valid for generation and
review, not trainable as they stand).
"""
from __future__ import annotations

from datastore.samples import Sample

from .meta_map import split_mapping
from .base import ConversionError, ImportContext, Parsed, RecordSchema, RowError, ordered_record, want_text
from .conversation import empty_turns

FIELDS = ("instruction", "input", "output", "system", "history")
BLANK_INPUT_WARNING = ("field '{field}' is only whitespace: it is rendered as no input (the no-input prompt; "
                       "a missing, null, empty or whitespace-only input all mean no input), while Stanford "
                       "Alpaca's train.py would use its with-input prompt, which it picks for any input "
                       "other than \"\"")
SYNONYMS: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction", "prompt", "question", "query", "instruct"),
    "input": ("input", "context"),
    "output": ("output", "response", "completion", "answer"),
    "system": ("system", "system_prompt"),
    "history": ("history",),
}


def resolve_mapping(keys: set[str], explicit: dict[str, str] | None = None) -> dict[str, str]:
    """Canonical text field -> source column: ``explicit`` entries first, then the first
    synonym present in ``keys`` (a column is used for at most one field). ``explicit`` may
    also map metadata columns (:mod:`.meta_map`): those columns are not taken as text.

    Raises:
        WorkbenchError: an unknown target in ``explicit`` (:func:`meta_map.split_mapping`).
    """
    mapping, meta = split_mapping(explicit, FIELDS)
    used = set(mapping.values()) | set(meta.values())
    for f in FIELDS:
        if f in mapping:
            continue
        for syn in SYNONYMS[f]:
            if syn in keys and syn not in used:
                mapping[f] = syn
                used.add(syn)
                break
    return mapping


def empty_field_warnings(s: Sample, mapping: dict[str, str]) -> list[str]:
    """Warnings for the empty answers and user turns of an instruction sample, by the rule of
    :func:`pipelines.formats.conversation.empty_turns` applied to its turns, naming the source
    column: ``output`` blank (an empty answer), ``instruction`` and ``input`` both blank (an
    empty user turn), or a blank side of a ``history`` pair."""
    turns = s.turns()
    first = 1 if turns and turns[0]["role"] == "system" else 0
    n_hist = 2 * len(s.history or [])
    out = []
    for i, role, how in empty_turns(turns):
        k = i - first
        if k < n_hist:
            col = f"{mapping.get('history', 'history')}[{k // 2}][{k % 2}]"
        else:
            col = mapping.get("output", "output") if role == "assistant" else mapping.get("instruction", "instruction")
        out.append(f"empty {'answer' if role == 'assistant' else 'user turn'} in field '{col}': {how}")
    return out


class AlpacaSchema(RecordSchema):
    name = "alpaca"
    description = "Alpaca instruction/input/output (and any table with a column mapping)"

    @classmethod
    def matches(cls, keys: set[str]) -> bool:
        return bool(resolve_mapping(keys).get("instruction"))

    def parse(self, rec: dict, ctx: ImportContext) -> Parsed:
        m = ctx.mapping
        if "instruction" not in m:
            raise RowError(None, "no instruction column: map one with --map instruction=COLUMN")
        instr = want_text(rec, m["instruction"], field=m["instruction"], required=True)
        out_key = m.get("output")
        output = None
        if out_key is not None:
            output = want_text(rec, out_key, field=out_key, required=True, allow_null=False)
        inp = want_text(rec, m["input"], field=m["input"]) if "input" in m else None
        system = want_text(rec, m["system"], field=m["system"]) if "system" in m else None
        history = None
        if "history" in m and rec.get(m["history"]) is not None:
            history = rec[m["history"]]
            ok = isinstance(history, list) and all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in history)
            if not ok:
                raise RowError(m["history"], "history must be a list of [user, assistant] text pairs")
        mapped = set(m.values())
        extra = {k: v for k, v in rec.items() if k not in mapped}
        layout = {"schema": self.name, "keys": list(rec.keys())}
        renamed = {f: k for f, k in m.items() if f != k}
        if renamed:
            layout["map"] = renamed
        nulls = [k for k in (m.get("input"), m.get("system"), m.get("history")) if k and k in rec and rec[k] is None]
        if nulls:
            layout["nulls"] = nulls
        s = Sample(kind="instruction", instruction=instr, input=inp, output=output, system=system,
                   history=history, extra=extra or None, layout=layout)
        warnings = [] if output is not None else ["prompt only: no output"]
        empty = empty_field_warnings(s, m)
        warnings += empty
        if inp and not inp.strip():
            warnings.append(BLANK_INPUT_WARNING.format(field=m["input"]))
        return Parsed(s, warnings, trainable=output is not None and not empty)

    def dump(self, s: Sample) -> dict:
        lay = s.layout or {}
        if s.kind != "instruction":
            return _conversation_to_alpaca(s)
        same = lay.get("schema") == self.name
        keymap = {f: f for f in FIELDS}
        if same:
            keymap.update(lay.get("map", {}))
        keys = lay.get("keys", []) if same else ["instruction", "input", "output"]
        nulls = set(lay.get("nulls", [])) if same else set()
        values: dict = {}
        for f in FIELDS:
            k = keymap[f]
            v = getattr(s, f)
            if v is not None:
                values[k] = v
            elif k in nulls or (not same and f in ("input",)):
                values[k] = None if same else ""
        if not same and s.output is None:
            values.pop("output", None)
        return ordered_record(keys, values, s.extra if same else None)


def simple_pairs(s: Sample) -> tuple[str | None, list[tuple[str, str]]]:
    """A conversation as ``(system, [(user, assistant), ...])`` when that loses nothing:
    an optional leading system turn, then strictly alternating user/assistant text turns
    with no other keys, ending on the assistant.

    Raises ConversionError naming what does not fit.
    """
    msgs = list(s.messages or [])
    system = s.system
    if msgs and msgs[0].get("role") == "system":
        if system is not None:
            raise ConversionError("it has two system prompts")
        system, msgs = msgs[0].get("content"), msgs[1:]
    if not msgs:
        raise ConversionError("it has no user turn")
    pairs = []
    for i, m in enumerate(msgs):
        want = "user" if i % 2 == 0 else "assistant"
        if m.get("role") != want:
            raise ConversionError(f"message {i} is a '{m.get('role')}' turn where a '{want}' turn is needed")
        if set(m) - {"role", "content"} or not isinstance(m.get("content"), str):
            raise ConversionError(f"message {i} carries more than role and text")
    if len(msgs) % 2:
        raise ConversionError("it ends on a user turn (a prompt without an answer)")
    for i in range(0, len(msgs), 2):
        pairs.append((msgs[i]["content"], msgs[i + 1]["content"]))
    return system, pairs


def _conversation_to_alpaca(s: Sample) -> dict:
    """A conversation as Alpaca: system, earlier pairs as history, the last pair as
    instruction and output. Raises ConversionError where that would lose turns."""
    system, pairs = simple_pairs(s)
    rec: dict = {"instruction": pairs[-1][0], "input": "", "output": pairs[-1][1]}
    if system:
        rec["system"] = system
    if len(pairs) > 1:
        rec["history"] = [list(p) for p in pairs[:-1]]
    return rec

"""Self-Instruct task records (Wang et al. 2023, yizhongw/self-instruct ``seed_tasks.jsonl``):
``{"id", "name", "instruction", "instances": [{"input", "output"}], "is_classification"}``.

A task with exactly one instance becomes one instruction sample (the published seed
tasks and the user-oriented evaluation tasks all have one). A task with several
instances keeps them in ``extra`` and is imported as a prompt. ``is_classification``
sets ``task_type`` to ``classification`` (and stays in the record).
"""
from __future__ import annotations

from datastore.samples import Sample

from .alpaca import empty_field_warnings, simple_pairs
from .base import ConversionError, ImportContext, Parsed, RecordSchema, RowError, ordered_record, want_text


class SelfInstructSchema(RecordSchema):
    name = "self-instruct"
    description = "Self-Instruct tasks with instances"

    @classmethod
    def matches(cls, keys: set[str]) -> bool:
        return "instances" in keys and "instruction" in keys

    def parse(self, rec: dict, ctx: ImportContext) -> Parsed:
        instr = want_text(rec, "instruction", required=True)
        inst = rec.get("instances")
        if not isinstance(inst, list):
            raise RowError("instances", "'instances' must be a list of {input, output}")
        layout = {"schema": self.name, "keys": list(rec.keys())}
        extra = {k: v for k, v in rec.items() if k not in ("instruction", "instances")}
        inp = out = None
        if len(inst) == 1 and isinstance(inst[0], dict) and set(inst[0]) == {"input", "output"}:
            inp = want_text(inst[0], "input", field="instances[0].input", required=True)
            out = want_text(inst[0], "output", field="instances[0].output", required=True)
            layout["inst_keys"] = list(inst[0].keys())
        else:
            extra["instances"] = inst
        task_type = "classification" if rec.get("is_classification") is True else None
        s = Sample(kind="instruction", instruction=instr, input=inp, output=out, task_type=task_type,
                   extra=extra or None, layout=layout)
        warnings = ([] if out is not None else ["prompt only: not exactly one instance"]) + \
            empty_field_warnings(s, {"output": "instances[0].output"})
        return Parsed(s, warnings, trainable=not warnings)

    def dump(self, s: Sample) -> dict:
        lay = s.layout or {}
        same = lay.get("schema") == self.name
        extra = dict(s.extra or {}) if same else {}
        if s.kind != "instruction":
            system, pairs = simple_pairs(s)
            if system or len(pairs) != 1:
                raise ConversionError("a Self-Instruct task holds one instruction and one answer, "
                                      "without a system prompt")
            return {"instruction": pairs[0][0], "instances": [{"input": "", "output": pairs[0][1]}]}
        values = {"instruction": s.instruction}
        if "instances" in extra:
            values["instances"] = extra.pop("instances")
        else:
            inst = {"input": s.input if s.input is not None else "", "output": s.output if s.output is not None else ""}
            order = lay.get("inst_keys") or ["input", "output"]
            values["instances"] = [{k: inst[k] for k in order}]
        keys = lay.get("keys", []) if same else ["instruction", "instances"]
        return ordered_record(keys, values, extra)

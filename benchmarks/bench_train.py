"""Training: our LoRA run against a plain trl ``SFTTrainer`` LoRA run, side by side.

Same data (the demo seed tasks and Alpaca samples, ``pipelines/demo_data``, as ChatML
conversations), same model (the embedded SmolLM2-135M-Instruct), same settings (LoRA r=8,
alpha 16, q_proj/v_proj, batch 4, ``BENCH_TRAIN_STEPS`` (default 10) steps, lr 5e-4, max length
256, one torch thread, fp32, no activation checkpointing). Each run is a fresh subprocess (so its
peak resident memory is its own, ``ru_maxrss``); the two alternate, ``BENCH_TRAIN_REPEATS``
(default 3) times each, and the medians are reported.

* tokens/s = input tokens processed (padding included for both) / training-loop time;
  ratio = ours / trl (target >= 1.0); peak RSS (target: ours <= trl);
* packing on short instruction data: our first-fit-decreasing packing with per-sample position
  ids against trl's ``packing=True`` (BFD, padding-free), tokens/s ratio, and our packing ratio
  (samples per packed row);
* on a CUDA host only: QLoRA and LoRA on a Llama model built from a config (random weights, no
  download), tokens/s and peak GPU memory; elsewhere that row says why it was skipped.

The peer run uses trl's own tokenization of ``messages`` with the same ChatML template (loss on
all tokens; ours: assistant tokens only, which costs nothing extra). Timings on a shared 2-core
machine are noisy: medians, and the spread is in the raw results.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

STEPS = int(os.environ.get("BENCH_TRAIN_STEPS", 10))
REPEATS = int(os.environ.get("BENCH_TRAIN_REPEATS", 3))


def _conversations() -> list[list[dict]]:
    from pipelines.demo import DEMO_DATA
    from pipelines.formats import parse_file

    from datastore import Sample

    convs = []
    for f in ("seed_tasks.jsonl", "alpaca_samples.json"):
        _, rows, _ = parse_file(DEMO_DATA / f)
        convs.extend(Sample.from_row(r).turns() for r in rows)
    return convs


def child(kind: str, packing: bool, out: str) -> None:
    """One timed run in this process; writes ``{"tokens", "train_s", "tokens_per_s", "peak_rss_mb"}``."""
    import resource
    import time

    import torch

    torch.set_num_threads(1)
    from pipelines.models import ensure_base_model, load_model, load_tokenizer
    from pipelines.render import get_template

    convs = _conversations()
    base = ensure_base_model()
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    if kind == "ours":
        from pipelines.train import TrainConfig, run_sft
        cfg = TrainConfig(max_steps=STEPS, torch_threads=1, packing=packing, eval_ratio=0.0, warmup_ratio=0.1)
        res = run_sft(cfg, convs, tmp / "run")
        tokens, train_s = res.run_card["tokens_seen"], res.train_time_s
    else:
        from datasets import Dataset
        from peft import LoraConfig
        from transformers import TrainerCallback
        from trl import SFTConfig, SFTTrainer

        tok = load_tokenizer(base)
        tok.chat_template = get_template("chatml").text
        ds = Dataset.from_list([{"messages": c} for c in convs])
        counted = {"tokens": 0}

        class Count(TrainerCallback):
            pass

        args = SFTConfig(output_dir=str(tmp / "trl"), max_steps=STEPS, per_device_train_batch_size=4,
                         learning_rate=5e-4, lr_scheduler_type="cosine", warmup_steps=0.1, max_grad_norm=1.0,
                         logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, bf16=False, fp16=False,
                         max_length=256, packing=packing, activation_checkpointing=False, disable_tqdm=True,
                         seed=42, dataloader_num_workers=0)
        trainer = SFTTrainer(model=load_model(base), args=args, train_dataset=ds, processing_class=tok,
                             peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                                    target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
        orig = trainer.training_step

        def step(model, inputs, *a, **kw):
            counted["tokens"] += int(inputs["input_ids"].numel())
            return orig(model, inputs, *a, **kw)

        trainer.training_step = step
        t = time.monotonic()
        trainer.train()
        train_s = time.monotonic() - t
        tokens = counted["tokens"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    Path(out).write_text(json.dumps({"tokens": tokens, "train_s": train_s, "tokens_per_s": tokens / train_s,
                                     "peak_rss_mb": rss}))


def _run(kind: str, packing: bool) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    subprocess.run([sys.executable, "-m", "benchmarks.bench_train", kind, "1" if packing else "0", out],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=str(Path(__file__).resolve().parents[1]))
    try:
        return json.loads(Path(out).read_text())
    finally:
        Path(out).unlink(missing_ok=True)


def _pair(packing: bool) -> dict:
    ours, peer = [], []
    for _ in range(REPEATS):
        peer.append(_run("trl", packing))
        ours.append(_run("ours", packing))
    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    return {"ours_tps": med(ours, "tokens_per_s"), "peer_tps": med(peer, "tokens_per_s"),
            "ours_rss": med(ours, "peak_rss_mb"), "peer_rss": med(peer, "peak_rss_mb"), "ours": ours, "peer": peer}


def packing_ratio() -> float:
    from pipelines.models import load_tokenizer
    from pipelines.render import get_template
    from pipelines.train.data import pack, packing_ratio as ratio, tokenize

    rows, _ = tokenize(load_tokenizer(), _conversations(), get_template("chatml"), 256)
    return ratio(rows, pack(rows, 256))


def gpu_rows() -> list[dict]:
    """QLoRA and LoRA on a random-weight Llama built from a config, on CUDA; skipped elsewhere."""
    import torch

    if not torch.cuda.is_available():
        return [{"measure": "GPU: QLoRA and LoRA tokens/s, peak GPU memory", "ours": "skipped",
                 "peer": "no CUDA device on this host", "ratio": None, "target": "runs on a GPU host",
                 "met": None}]
    import time

    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig

    cfg = LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=16, num_attention_heads=16,
                      num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048)
    rows = []
    for name in ("lora", "qlora"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).cuda()
        if name == "qlora":
            tmp = tempfile.mkdtemp(prefix="bench-qlora-")
            model.save_pretrained(tmp)
            del model
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            model = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16), device_map={"": 0})
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"],
                                                 task_type="CAUSAL_LM"))
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        ids = torch.randint(0, 32000, (8, 512), device="cuda")
        for i in range(13):
            if i == 3:
                torch.cuda.synchronize()
                t = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
        torch.cuda.synchronize()
        tps = 10 * ids.numel() / (time.perf_counter() - t)
        rows.append({"measure": f"GPU {name} (1.1B random Llama, bs 8x512): tokens/s",
                     "ours": round(tps), "peer": f"peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB",
                     "ratio": None, "target": "reported", "met": None})
        del model, opt
    return rows


def run(console) -> list[dict]:
    console.print(f"[bold]train[/]: LoRA ours vs trl SFTTrainer, {STEPS} steps, median of {REPEATS} (subprocesses)")
    plain = _pair(False)
    packed = _pair(True)
    rows = [
        {"measure": "LoRA tokens/s (ours vs trl SFTTrainer)", "ours": round(plain["ours_tps"], 1),
         "peer": round(plain["peer_tps"], 1), "ratio": round(plain["ours_tps"] / plain["peer_tps"], 3),
         "target": ">= 1.0", "met": plain["ours_tps"] >= plain["peer_tps"]},
        {"measure": "LoRA peak RSS MB (ours vs trl)", "ours": round(plain["ours_rss"]), "peer": round(plain["peer_rss"]),
         "ratio": round(plain["ours_rss"] / plain["peer_rss"], 3), "target": "<= 1.0",
         "met": plain["ours_rss"] <= plain["peer_rss"]},
        {"measure": "packed LoRA tokens/s (ours vs trl packing=True)", "ours": round(packed["ours_tps"], 1),
         "peer": round(packed["peer_tps"], 1), "ratio": round(packed["ours_tps"] / packed["peer_tps"], 3),
         "target": ">= 1.0", "met": packed["ours_tps"] >= packed["peer_tps"]},
        {"measure": "packing ratio (samples per packed row, max 256 tokens)", "ours": round(packing_ratio(), 2),
         "peer": "", "ratio": None, "target": "reported", "met": None},
    ]
    rows.extend(gpu_rows())
    out = Path(__file__).resolve().parents[1] / ".bench"
    out.mkdir(exist_ok=True)
    (out / "train_raw.json").write_text(json.dumps({"plain": plain, "packed": packed}, indent=2))
    return rows


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2] == "1", sys.argv[3])

"""The ``transformers`` backend: in-process generation with a Hugging Face causal LM.

The embedded default is SmolLM2-135M-Instruct (:mod:`pipelines.models`), on CPU. Prompts
are generated in batches with left padding (a decoder-only model must see its prompt end
right before the first new token); sampling follows OpenAI/vLLM semantics: ``temperature``
and ``top_p`` only, no top-k (transformers would otherwise apply its own defaults), greedy
when ``temperature == 0``. ``torch.manual_seed(seed)`` is set at the start of every call, so
the same prompts, batch size and sampling config give the same texts.

Measured on 2 CPU cores (docs/architecture.md section 6): about 12 new tokens/s for one sequence,
about 50 tokens/s summed over a batch of 8; a batch costs as long as its longest output, so
stop strings and a tight ``max_tokens`` are what keep it fast.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from datastore.errors import WorkbenchError

from . import Backend, GenerationOutput, SamplingConfig, check_conversations, register_backend


def _stop_criteria(tokenizer, stops: tuple[str, ...], prompt_len: int):
    """A ``StoppingCriteria`` that ends each sequence whose *generated* text contains a stop string."""
    import torch
    from transformers import StoppingCriteria

    class _StopOnStrings(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tokenizer.batch_decode(input_ids[:, prompt_len:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in stops) for t in texts], dtype=torch.bool,
                                device=input_ids.device)

    return _StopOnStrings()


@register_backend
class TransformersBackend(Backend):
    """Generate with a local transformers model (CPU or GPU).

    Args:
        model_path: folder of a saved model and tokenizer; None: the embedded base model
            (converted once by :func:`pipelines.models.ensure_base_model`).
        model, tokenizer: already loaded objects (tests, or a model just trained); both or neither.
        model_name: name recorded on outputs (default: the folder name, or the embedded model's).
        batch_size: prompts per forward batch (8 suits 2 CPU cores).
        device: ``cpu`` or ``cuda``/``cuda:N``.
        dtype: torch dtype name for loading (``float32`` on CPU: bf16 is ~20x slower there).
        num_threads: torch CPU threads while generating (restored afterwards); None leaves
            torch's setting (one per core). On a CPU shared with other busy processes, 1 is
            far faster than 2: OpenMP threads spin-wait for each other (measured here: a
            batch-8 decode step 10-20x slower with 2 threads while another process used a core).

    The model is loaded on first use, so constructing a backend is cheap.
    """

    name = "transformers"

    def __init__(self, model_path: str | Path | None = None, *, model: Any = None, tokenizer: Any = None,
                 model_name: str | None = None, batch_size: int = 8, device: str = "cpu",
                 dtype: str = "float32", num_threads: int | None = None):
        if (model is None) != (tokenizer is None):
            raise WorkbenchError("pass both model and tokenizer, or neither")
        if batch_size < 1:
            raise WorkbenchError(f"batch_size must be at least 1, got {batch_size}")
        from pipelines.models import MODEL_NAME

        self.model_path = Path(model_path) if model_path is not None else None
        self.model_name = model_name or (self.model_path.name if self.model_path else MODEL_NAME)
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        if num_threads is not None and num_threads < 1:
            raise WorkbenchError(f"num_threads must be at least 1, got {num_threads}")
        self.num_threads = num_threads
        self._model = model
        self._tokenizer = tokenizer

    # ------------------------------------------------------------------ loading
    def _load(self):
        if self._model is None:
            from pipelines.models import load_model, load_tokenizer
            if self.model_path is not None and not (self.model_path / "config.json").exists():
                raise WorkbenchError(f"no model found at {self.model_path} (config.json missing)")
            self._tokenizer = load_tokenizer(self.model_path)
            self._model = load_model(self.model_path, dtype=self.dtype)
        import torch
        if self._model.device != torch.device(self.device):
            self._model.to(self.device)
        tok = self._tokenizer
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"
        return self._model, tok

    @property
    def tokenizer(self):
        return self._load()[1]

    # ------------------------------------------------------------------ interface
    def complete(self, prompts: list[str], sampling: SamplingConfig, *,
                 prompt_template_hash: str | None = None) -> list[GenerationOutput]:
        """Continue each raw prompt. See :meth:`Backend.complete`.

        Raises:
            WorkbenchError: a prompt that is not a string, or prompt + max_tokens longer than
                the model's context.
        """
        if not all(isinstance(p, str) for p in prompts):
            raise WorkbenchError("complete() takes a list of prompt strings")
        return self._generate(list(prompts), [None] * len(prompts), sampling, prompt_template_hash)

    def chat(self, conversations: list[list[dict]], sampling: SamplingConfig, *,
             prompt_template_hash: str | None = None) -> list[GenerationOutput]:
        """Answer each conversation through the tokenizer's chat template
        (``add_generation_prompt=True``), its input built by :func:`pipelines.render.template_input`
        and rendered by :func:`pipelines.render.render_chat` (equal to ``apply_chat_template``).
        See :meth:`Backend.chat`.

        Raises:
            WorkbenchError: a malformed conversation, a tokenizer without a chat template.
        """
        _, tok = self._load()
        if not getattr(tok, "chat_template", None):
            raise WorkbenchError(f"model {self.model_name} has no chat template; use complete()")
        check_conversations(conversations)
        from pipelines.render import render_chat, template_from_tokenizer, template_input
        tpl = template_from_tokenizer(tok)
        texts = [render_chat(template_input(conv, tpl, tokenizer=tok, add_generation_prompt=True), tpl)
                 for conv in conversations]
        return self._generate(texts, [list(c) for c in conversations], sampling, prompt_template_hash)

    # ------------------------------------------------------------------ generation
    def _generate(self, texts: list[str], messages: list, sampling: SamplingConfig,
                  template_hash: str | None) -> list[GenerationOutput]:
        if not texts:
            return []
        import torch

        model, tok = self._load()
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        eos_ids.add(tok.pad_token_id)
        gen_kw: dict[str, Any] = {"max_new_tokens": sampling.max_tokens, "pad_token_id": tok.pad_token_id}
        if sampling.temperature > 0:
            gen_kw.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        else:
            gen_kw.update(do_sample=False)

        torch.manual_seed(sampling.seed)
        threads_before = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        try:
            return self._run_batches(model, tok, texts, messages, sampling, template_hash, gen_kw, eos_ids)
        finally:
            if self.num_threads is not None:
                torch.set_num_threads(threads_before)

    def _run_batches(self, model, tok, texts, messages, sampling, template_hash, gen_kw, eos_ids):
        import torch

        ctx = getattr(model.config, "max_position_embeddings", None)
        params = sampling.as_dict()
        outputs: list[GenerationOutput] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            plen = enc["input_ids"].shape[1]
            if ctx and plen + sampling.max_tokens > ctx:
                raise WorkbenchError(f"prompt of {plen} tokens + max_tokens {sampling.max_tokens} exceeds "
                                     f"the context of {self.model_name} ({ctx} tokens)")
            kw = dict(gen_kw)
            if sampling.stop:
                from transformers import StoppingCriteriaList
                kw["stopping_criteria"] = StoppingCriteriaList([_stop_criteria(tok, sampling.stop, plen)])
            with torch.inference_mode():
                out = model.generate(**enc, **kw)
            for j, row in enumerate(out[:, plen:].tolist()):
                n = next((k for k, t in enumerate(row) if t in eos_ids), len(row))
                text = tok.decode(row[:n], skip_special_tokens=True)
                cut = min((i for i in (text.find(s) for s in sampling.stop) if i >= 0), default=-1)
                if cut >= 0:
                    text, finish, ntok = text[:cut], "stop", n
                elif n < len(row):
                    finish, ntok = "stop", n + 1  # the end-of-sequence token counts
                else:
                    finish, ntok = "length", n
                outputs.append(GenerationOutput(
                    text=text, prompt=batch[j], messages=messages[start + j], model=self.model_name,
                    backend=self.name, sampling=params, seed=sampling.seed,
                    prompt_template_hash=template_hash, finish_reason=finish, tokens_generated=ntok))
        return outputs

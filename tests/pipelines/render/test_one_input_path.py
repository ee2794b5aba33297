"""One input path: every call of a template renderer in ``app/`` and ``pipelines/`` (outside
``pipelines/render/``, which holds the renderers and ``template_input``) passes input built by
``pipelines.render.template_input``; a server that renders (the openai backend) is sent the
messages it builds.

The check reads the source with ``ast`` and follows names inside their function: an argument
is accepted when it is a ``template_input(...)`` call, a method call or the ``messages`` or an
item of such a value, a name bound only to accepted values (assignments, ``for`` targets and
comprehension targets over accepted values), a comprehension of accepted values, or a parameter
annotated ``TemplateInput``. The negative tests plant violations in small sources.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
#: Renderer name -> (position, keyword) of the argument that carries the template's input.
RENDERERS = {
    "render_chat": (0, "messages"), "assistant_char_spans": (0, "messages"), "render_instruction": (0, "fields"),
    "render_chat_text": (1, "messages"), "render_with_mask": (1, "messages"),
    "encode_conversations": (1, "conversations"), "apply_chat_template": (0, "conversation"),
}
#: Lower-level renderers nothing outside pipelines/render may call at all.
FORBIDDEN = {"marked_renderer", "compile_chat", "prepare_messages", "_render_spans", "_encode_safe"}
BUILDER = "template_input"
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
           ast.GeneratorExp, ast.Module)
_PASS_THROUGH = {"enumerate", "zip", "reversed", "sorted", "list", "tuple", "iter"}


def _name(func) -> str | None:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


class _Module:
    def __init__(self, tree: ast.Module):
        self.tree = tree
        self.parent: dict = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
        self._bindings: dict = {}

    def scope_of(self, node):
        p = self.parent.get(node)
        while p is not None and not isinstance(p, _SCOPES):
            p = self.parent.get(p)
        return p

    def bindings(self, scope) -> dict[str, list]:
        """``name -> [("expr", value) | ("iter", iterable) | ("param", annotation) | ("other", None)]``."""
        if scope in self._bindings:
            return self._bindings[scope]
        out: dict[str, list] = {}

        def bind(target, kind, value):
            if isinstance(target, ast.Name):
                out.setdefault(target.id, []).append((kind, value))
            elif isinstance(target, (ast.Tuple, ast.List)):
                if kind == "expr" and isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                    for t, v in zip(target.elts, value.elts):
                        bind(t, "expr", v)
                else:
                    for t in target.elts:
                        bind(t, kind if kind == "iter" else "other", value)
            elif isinstance(target, ast.Starred):
                bind(target.value, "other", None)

        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = scope.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, *([a.vararg] if a.vararg else []),
                        *([a.kwarg] if a.kwarg else [])]:
                out.setdefault(arg.arg, []).append(("param", arg.annotation))
        if isinstance(scope, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            for gen in scope.generators:
                bind(gen.target, "iter", gen.iter)
        body = scope.body if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)) else []
        stack = list(body)
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.setdefault(node.name, []).append(("other", None))
                continue
            if isinstance(node, _SCOPES):
                continue
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    bind(t, "expr", node.value)
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                bind(node.target, "expr", node.value)
            elif isinstance(node, ast.NamedExpr):
                bind(node.target, "expr", node.value)
            elif isinstance(node, ast.AugAssign):
                bind(node.target, "other", None)
            elif isinstance(node, (ast.For, ast.AsyncFor)):
                bind(node.target, "iter", node.iter)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        bind(item.optional_vars, "other", None)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for al in node.names:
                    out.setdefault((al.asname or al.name).split(".")[0], []).append(("other", None))
            elif isinstance(node, ast.ExceptHandler) and node.name:
                out.setdefault(node.name, []).append(("other", None))
            stack.extend(ast.iter_child_nodes(node))
        self._bindings[scope] = out
        return out

    def accepted(self, expr, seen=None) -> bool:
        seen = set() if seen is None else seen
        if expr is None or id(expr) in seen:
            return False
        seen = seen | {id(expr)}
        if isinstance(expr, ast.Call):
            if _name(expr.func) == BUILDER:
                return True
            return isinstance(expr.func, ast.Attribute) and self.accepted(expr.func.value, seen)
        if isinstance(expr, ast.Attribute):
            return expr.attr == "messages" and self.accepted(expr.value, seen)
        if isinstance(expr, ast.Subscript):
            return self.accepted(expr.value, seen)
        if isinstance(expr, ast.IfExp):  # ``x if ... else None`` renders nothing in the None branch
            return all(self.accepted(b, seen) or (isinstance(b, ast.Constant) and b.value is None)
                       for b in (expr.body, expr.orelse)) and not all(isinstance(b, ast.Constant)
                                                                   for b in (expr.body, expr.orelse))
        if isinstance(expr, (ast.ListComp, ast.GeneratorExp)):
            return self.accepted(expr.elt, seen)
        if isinstance(expr, ast.Name):
            scope = self.scope_of(expr)
            while scope is not None:
                found = self.bindings(scope).get(expr.id)
                if found:
                    return all(self._binding_ok(kind, value, seen) for kind, value in found)
                scope = self.scope_of(scope)
        return False

    def _binding_ok(self, kind, value, seen) -> bool:
        if kind == "expr":
            return self.accepted(value, seen)
        if kind == "iter":
            if isinstance(value, ast.Call) and _name(value.func) in _PASS_THROUGH:
                return any(self.accepted(a, seen) for a in value.args)
            return self.accepted(value, seen)
        if kind == "param":
            return value is not None and "TemplateInput" in ast.unparse(value)
        return False


def _argument(call: ast.Call, pos: int | None, kw: str):
    for k in call.keywords:
        if k.arg == kw:
            return k.value
    if pos is not None and len(call.args) > pos and not isinstance(call.args[pos], ast.Starred):
        return call.args[pos]
    return None


def violations(source: str, filename: str = "<source>") -> list[str]:
    """``"file:line: why"`` for every renderer call in ``source`` whose input is not built by
    ``template_input``."""
    mod = _Module(ast.parse(source, filename))
    out = []
    for node in ast.walk(mod.tree):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        where = f"{filename}:{node.lineno}"
        if name in FORBIDDEN:
            out.append(f"{where}: calls {name}, a renderer internal of pipelines/render")
        elif name in RENDERERS:
            arg = _argument(node, *RENDERERS[name])
            if not mod.accepted(arg):
                shown = ast.unparse(arg) if arg is not None else "nothing"
                out.append(f"{where}: {name} is given {shown!r}, not input built by template_input")
        elif name == "create" and "chat.completions" in ast.unparse(node.func):
            arg = _argument(node, None, "messages")
            if not mod.accepted(arg):
                out.append(f"{where}: chat completion request sends messages not built by template_input")
        elif name == "chat" and any(k.arg == "add_generation_prompt" for k in node.keywords):  # vLLM LLM.chat
            if not mod.accepted(_argument(node, 0, "messages")):
                out.append(f"{where}: LLM.chat is sent messages not built by template_input")
    return out


def _modules():
    for top in ("app", "pipelines"):
        for p in sorted((REPO / top).rglob("*.py")):
            if (REPO / "pipelines" / "render") not in p.parents:
                yield p


def test_every_render_call_outside_the_renderer_passes_template_input():
    found = []
    checked = 0
    for p in _modules():
        src = p.read_text(encoding="utf-8")
        checked += any(n in src for n in (*RENDERERS, "completions.create"))
        found += violations(src, str(p.relative_to(REPO)))
    assert checked >= 10   # the call sites exist: wb render, Templates page, preflight, training, serving...
    assert found == []


@pytest.mark.parametrize("src", [
    'render_chat([{"role": "user", "content": "x"}], "chatml")',
    "def f(s, tok, tpl):\n    msgs = s.turns()\n    return render_with_mask(tok, msgs, tpl)",
    "def f(tok, conv):\n    return tok.apply_chat_template(conv, tokenize=False)",
    "def f(inp, tpl):\n    return render_chat(inp, tpl)",                     # a parameter of unknown origin
    "def f(s, tpl):\n    inp = template_input(s, tpl)\n    inp = s.turns()\n    return render_chat(inp, tpl)",
    "def f(s, tpl):\n    inp = template_input(s, tpl)\n    return render_chat([dict(m) for m in inp.messages], tpl)",
    "def f(tok, convs, tpl):\n    return encode_conversations(tok, [c for c in convs], tpl)",
    "def f(text, s):\n    return render_chat_text(text, s.turns())[0]",
    "def f(client, conv):\n    return client.chat.completions.create(model='m', messages=conv)",
    "def f(text):\n    return marked_renderer(text)",
    "def f(llm, convs, p):\n    return llm.chat(convs, p, add_generation_prompt=True)",
    "def f(s, tpl, x):\n    return render_chat(template_input(s, tpl) if x else s.turns(), tpl)",
    "def f(tok, tpl):\n    return render_with_mask(tok, *args)",
])
def test_a_planted_violation_is_found(src):
    assert len(violations(src)) == 1, src


@pytest.mark.parametrize("src", [
    "def f(s, tok, tpl):\n    inp = template_input(s, tpl, tokenizer=tok)\n    return render_with_mask(tok, inp, tpl)",
    "def f(s, tpl):\n    inp = template_input(s, tpl)\n    return render_chat(inp.messages, tpl, **inp.variables())",
    "def f(s, tpl, k):\n    inp = template_input(s, tpl)\n    return render_chat(inp.prefix(k), tpl)",
    "def f(ss, tok, tpl):\n    return encode_conversations(tok, [template_input(s, tpl) for s in ss], tpl)",
    "def f(ss, tok, tpl):\n    xs = [template_input(s, tpl) for s in ss]\n"
    "    return [tok.apply_chat_template(x.messages, tokenize=False) for x in xs]",
    "def f(ss, tpl):\n    xs = [template_input(s, tpl) for s in ss]\n"
    "    for i, x in enumerate(xs):\n        render_chat(x, tpl)",
    "def f(inp: TemplateInput, tpl):\n    return render_chat(inp, tpl)",
    "def f(s, tpl, x):\n    inp = template_input(s, tpl) if x else None\n    return render_chat(inp, tpl)",
    "def f(client, prompt):\n    return client.completions.create(prompt=prompt)",   # no chat: no messages
    "def f(client, conv):\n    return client.chat.completions.create(messages=template_input(conv).messages)",
])
def test_input_built_by_template_input_passes(src):
    assert violations(src) == [], src

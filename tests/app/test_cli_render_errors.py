"""`wb render` names the sample a template cannot render; a negative --limit or --after is a
usage error (exit 2), not a database error."""
import json

from tests.app.test_cli_show import AGENT, wb


def test_render_refusal_names_the_sample_and_bad_paging_is_a_usage_error(tmp_path):
    ws = str(tmp_path / "ws")
    src = tmp_path / "agent.jsonl"
    plain = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}
    src.write_text(json.dumps(plain) + "\n" + json.dumps(AGENT) + "\n", encoding="utf-8")
    assert wb("-w", ws, "import", str(src), "-d", "agent", cwd=tmp_path).returncode == 0
    r = wb("-w", ws, "render", "-d", "agent", "-t", "chatml", cwd=tmp_path)   # chatml writes no tool calls
    assert r.returncode == 1
    assert r.stderr.startswith("error: sample 2: template 'chatml'") and len(r.stderr.splitlines()) == 1
    for cmd in (["render", "-d", "agent", "-n", "-1"], ["show", "-d", "agent", "--after", "-3"],
                ["show", "-d", "agent", "-n", "0"]):
        r = wb("-w", ws, *cmd, cwd=tmp_path)
        assert r.returncode == 2, (cmd, r.stderr)
        assert "Traceback" not in r.stderr and "Binder" not in r.stderr

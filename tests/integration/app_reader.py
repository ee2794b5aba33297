"""Stands in for people using the app: renders the real Datasets page (AppTest) in a loop
against a workspace and prints one JSON line: renders, page errors shown, exceptions."""
import json
import sys
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[2]


def main(ws: str, seconds: float) -> None:
    renders = errors = exceptions = 0
    messages = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        at = AppTest.from_file(str(REPO / "app" / "Workbench.py"), default_timeout=60)
        at.session_state["workspace"] = ws
        at.switch_page("pages/1_Datasets.py")
        at.run()
        renders += 1
        exceptions += len(at.exception)
        errors += len(at.error)
        messages += [e.value for e in at.error][:3]
        time.sleep(0.05)
    print(json.dumps({"renders": renders, "errors": errors, "exceptions": exceptions, "messages": messages[:5]}))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))

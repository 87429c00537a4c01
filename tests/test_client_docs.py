"""docs/client.md: every Python example compiles, and the recording example runs as written on
a recording (so the doc cannot drift from the API)."""

import re
import subprocess
import sys
from pathlib import Path

from hftfeed.client.pcap import PcapWriter

from wirebuild import Stream, trade

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "client.md").read_text()
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC, re.S)


def test_every_python_example_compiles():
    assert len(EXAMPLES) >= 5
    for index, code in enumerate(EXAMPLES):
        compile(code, "docs/client.md example %d" % index, "exec")


def test_the_recording_example_runs_as_written(tmp_path):
    code = next(c for c in EXAMPLES if "from_pcap" in c)
    st = Stream()
    writer = PcapWriter(str(tmp_path / "session.pcap"))
    writer.write(123, ("10.0.0.1", 1), ("239.1.1.1", 9002), st.next([trade(1, trade_id=5)]))
    writer.close()
    out = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), timeout=60,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                         env={"PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["123", "None", "37000.00000000"]

"""Specification of hftfeed/app/cli.py: one dispatcher, and one error line with exit code 2 for any
bad command line, whichever command it is (a real subprocess, as an operator would run it)."""

import subprocess
import sys
from pathlib import Path

import pytest

ENTRY = str(Path(__file__).resolve().parents[1] / "hftfeed.py")


def run(*args):
    return subprocess.run([sys.executable, ENTRY] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)


@pytest.mark.parametrize("args, needle", [
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "--config"], "expected one argument"),
    (["demo", "--rate", "x"], "invalid int value: 'x'"),
    (["sim", "--bogus"], "unrecognized arguments: --bogus"),
    (["monitor", "--depth", "x"], "--depth"),
    (["doctor", "--pid", "notanumber"], "invalid int value: 'notanumber'"),
    (["doctor", "--pid", "0"], "no process with pid 0"),
    (["frobnicate"], "unknown command 'frobnicate'"),
])
def test_a_bad_command_line_is_one_error_line_and_exit_code_2(args, needle):
    proc = run(*args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.startswith("hftfeed")


@pytest.mark.parametrize("command", ["run", "demo", "sim", "monitor", "doctor"])
def test_help_of_every_command_exits_0_with_its_usage(command):
    proc = run(command, "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: ")


def test_no_command_prints_the_command_list_and_exits_2():
    proc = run()
    assert proc.returncode == 2 and "commands:" in proc.stderr and "doctor" in proc.stderr


def test_every_module_imports_without_running_anything():
    """Tools walk the package (pkgutil), so importing a module, __main__ ones included, must
    neither print nor exit."""
    code = ("import importlib, pkgutil, hftfeed\n"
            "for m in pkgutil.walk_packages(hftfeed.__path__, 'hftfeed.'):\n"
            "    importlib.import_module(m.name)\n"
            "print('imported')\n")
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
                          cwd=str(Path(ENTRY).parent))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "imported\n", "")

"""cxrlib.evaluate.cli: the subcommands, their options and the combinations they refuse."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cxrlib.evaluate.cli import main, parse_args

SUBCOMMANDS = ("metrics", "audit", "methods", "loso", "external")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["audit", "--record-alternative", "x"], "needs --ablate"),
        (["audit", "--record-alternative", "x", "--ablate", "--record-into", "/nonexistent/m.json"], "does not exist"),
        (["external", "--record-alternative", "x", "--record-into", "/nonexistent/m.json"], "does not exist"),
    ],
)  # fmt: skip
def test_cli_refuses_an_alternative_it_cannot_record(extra, message, capsys):
    with pytest.raises(SystemExit) as e:
        main([extra[0], "--manifest", "unused.csv", *extra[1:]])
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["metrics", "--data", "d", "--split", "test"], {"data": "d", "split": "test", "record": False}),
        (["metrics", "--record", "--bootstrap", "200"], {"record": True, "bootstrap": 200}),
        (["audit", "--ablate", "--explain", "--max-images", "9"], {"ablate": True, "explain": True, "max_images": 9}),
        (["methods", "--split", "test", "--images", "120", "--record"], {"images": 120, "record": True}),
        (["loso", "nih,cxnet", "--epochs", "14", "--steps", "0", "--views"], {"sources": "nih,cxnet", "epochs": 14, "steps": 0, "views": True}),
        (["external", "l", "--single-view"], {"lungs": "l", "single_view": True}),
    ],
)  # fmt: skip
def test_each_subcommand_parses_its_options(argv, expected):
    a = parse_args(argv)
    assert a.command == argv[0]
    assert {k: getattr(a, k) for k in expected} == expected


def test_defaults_are_the_old_commands():
    a = parse_args(["methods"])
    assert a.images == 200 and a.split is None and a.manifest is None
    assert a.data == "../shared/cxr" and a.model.endswith("models/cxr_classifier.keras")
    loso = parse_args(["loso", "nih"])
    assert (loso.epochs, loso.steps) == (4, 150)
    assert parse_args(["metrics"]).bootstrap == 1000
    assert parse_args(["external"]).lungs == "../shared/lungs"


@pytest.mark.parametrize("sub", [None, *SUBCOMMANDS])
def test_help_exits_0_and_is_short(sub, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args([*([sub] if sub else []), "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "usage: python -m cxrlib.evaluate" in out
    assert len(out.splitlines()) < 50


def test_help_does_not_load_tensorflow():
    code = (
        "import sys; from cxrlib.evaluate.cli import parse_args\n"
        "try:\n    parse_args(['audit', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_a_subcommand_is_required(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args([])
    assert e.value.code == 2 and "required: SUBCOMMAND" in capsys.readouterr().err


def test_an_unknown_flag_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(["metrics", "--no-such-flag"])
    assert e.value.code == 2 and "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["audit"], "needs --ablate, --explain, --shortcuts or a mix"),
        (["metrics", "--record", "--split", "test"], "leave out --split"),
        (["metrics", "--record", "--views"], "leave out --views"),
        (["loso"], "required: sources"),
        (["metrics", "--views", "--single-view"], "not allowed with argument"),
    ],
)  # fmt: skip
def test_a_subcommand_refuses_what_it_cannot_do(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err

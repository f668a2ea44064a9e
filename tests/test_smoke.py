import privagg
from privagg.cli import main


def test_version_is_exposed():
    assert privagg.__version__.count(".") == 2


def test_cli_without_command_prints_help(capsys):
    assert main([]) == 1
    assert "usage: privagg" in capsys.readouterr().out

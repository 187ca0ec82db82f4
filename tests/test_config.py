"""Suite settings: defaults, parsing, one-line errors, and the SUT command check."""

import shutil
import sys
import time
from pathlib import Path

import psutil
import pytest

from support import config
from support.config import KNOWN_KEYS, Settings, Thresholds, check_mlxk, load_settings, parse_sut_version
from support.errors import ConfigError

VENV_MLXK = Path(sys.executable).parent / "mlxk"


def script(tmp_path: Path, name: str, body: str) -> tuple[str, ...]:
    """A tiny executable Python program standing in for mlxk."""
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return (str(path),)


def config_error(userdata: dict, environ: dict | None = None) -> str:
    """The message of the ConfigError load_settings raises; asserts it is one line."""
    with pytest.raises(ConfigError) as caught:
        load_settings(userdata, environ or {})
    message = str(caught.value)
    assert "\n" not in message and message.strip() == message, message
    return message


def test_defaults():
    settings = load_settings({}, {})
    assert settings == Settings(hf_home=None, mlxk=settings.mlxk)
    assert (settings.startup_timeout, settings.request_timeout, settings.stream_timeout,
            settings.cli_timeout) == (120, 60, 60, 120)
    assert settings.server_reuse is True
    assert (settings.include, settings.exclude, settings.max_models, settings.ram_budget_gb,
            settings.shard) == ((), (), None, None, None)


def test_the_target_is_mlxk_unless_given(tmp_path):
    assert load_settings({}, {}).target == "mlxk" and load_settings({}, {}).mlx_lm is None
    settings = load_settings({"target": "mlx_lm", "mlx_lm": str(tmp_path)}, {})
    assert (settings.target, settings.mlx_lm) == ("mlx_lm", tmp_path)


def test_default_mlxk_is_the_one_beside_the_running_python():
    assert VENV_MLXK.exists(), "the venv has no mlxk: run make .venv/.installed"
    assert load_settings({}, {}).mlxk == (str(VENV_MLXK),)


def test_default_mlxk_falls_back_to_path(monkeypatch, tmp_path):
    monkeypatch.setattr(config.sys, "executable", str(tmp_path / "python"))
    assert config.default_mlxk() == (shutil.which("mlxk") or "mlxk",)


def test_every_setting_parses(tmp_path):
    settings = load_settings({
        "hf_home": str(tmp_path), "mlxk": "python -m 'mlx knife'", "include": "org/*, x*",
        "exclude": "*-4bit", "max_models": "3", "ram_budget_gb": "6.5", "shard": "2/4",
        "startup_timeout": "30", "request_timeout": "1.5", "stream_timeout": "2",
        "cli_timeout": "9", "server_reuse": "off"}, {})
    assert settings == Settings(
        hf_home=tmp_path, mlxk=("python", "-m", "mlx knife"), include=("org/*", "x*"),
        exclude=("*-4bit",), max_models=3, ram_budget_gb=6.5, shard=(2, 4), startup_timeout=30.0,
        request_timeout=1.5, stream_timeout=2.0, cli_timeout=9.0, server_reuse=False)


@pytest.mark.parametrize("value, expected", [
    ("on", True), ("TRUE", True), ("yes", True), ("1", True),
    ("off", False), ("False", False), ("no", False), ("0", False)])
def test_server_reuse_values(value, expected):
    assert load_settings({"server_reuse": value}, {}).server_reuse is expected


def test_keys_with_a_dot_belong_to_formatters_and_are_ignored():
    load_settings({"AllureFormatter.issue_pattern": "x/{}", "behave.formatter.foo": "1"}, {})


def test_thresholds_from_userdata():
    assert load_settings({}, {}).thresholds == Thresholds()
    assert not load_settings({"max_ttft_s": " "}, {}).thresholds.given
    limits = load_settings({"max_ttft_s": "2", "min_tokens_per_s": "20.5"}, {}).thresholds
    assert limits == Thresholds(2.0, 20.5) and limits.given
    assert limits.describe() == "time to first token <= 2 s, >= 20.5 tokens/s"


@pytest.mark.parametrize("value", ["fast", "0", "-1", "nan", "inf"])
def test_a_bad_threshold_is_one_line_naming_the_key(value):
    with pytest.raises(ConfigError, match=rf"^-D min_tokens_per_s={value}: expected a number of tokens per second > 0$"):
        load_settings({"min_tokens_per_s": value}, {})


def test_hf_home_comes_from_userdata_then_the_environment(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    assert load_settings({}, {"HF_HOME": str(tmp_path)}).hf_home == tmp_path
    assert load_settings({"hf_home": str(other)}, {"HF_HOME": str(tmp_path)}).hf_home == other
    assert load_settings({}, {"HF_HOME": ""}).hf_home is None


def test_hf_home_without_hub_is_allowed(tmp_path):
    assert not (tmp_path / "hub").exists()
    assert load_settings({"hf_home": str(tmp_path)}, {}).hf_home == tmp_path


def test_unknown_key():
    message = config_error({"colour": "red"})
    assert message.startswith("unknown setting -D colour=red; known settings: cli_timeout, exclude, ")
    assert all(key in message for key in KNOWN_KEYS)


@pytest.mark.parametrize("key, value, expected", [
    ("max_models", "abc", "-D max_models=abc: expected a whole number >= 1"),
    ("max_models", "0", "-D max_models=0: expected a whole number >= 1"),
    ("max_models", "2.5", "-D max_models=2.5: expected a whole number >= 1"),
    ("shard", "3/2", "-D shard=3/2: expected i/n with 1 <= i <= n, e.g. -D shard=1/4"),
    ("shard", "0/2", "-D shard=0/2: expected i/n with 1 <= i <= n"),
    ("shard", "1", "-D shard=1: expected i/n with 1 <= i <= n"),
    ("startup_timeout", "-1", "-D startup_timeout=-1: expected a number of seconds > 0"),
    ("request_timeout", "0", "-D request_timeout=0: expected a number of seconds > 0"),
    ("stream_timeout", "soon", "-D stream_timeout=soon: expected a number of seconds > 0"),
    ("cli_timeout", "inf", "-D cli_timeout=inf: expected a number of seconds > 0"),
    ("ram_budget_gb", "nan", "-D ram_budget_gb=nan: expected a number of GB > 0"),
    ("server_reuse", "maybe", "-D server_reuse=maybe: expected on or off"),
    ("mlxk", "mlxk 'unclosed", "-D mlxk=mlxk 'unclosed: expected a command line"),
    ("target", "ollama", "-D target=ollama: expected one of mlxk, mlx_lm"),
    ("mlx_lm", "/no/such/venv", "-D mlx_lm=/no/such/venv: expected an existing venv, bin folder or executable"),
])
def test_bad_values(key, value, expected):
    message = config_error({key: value})
    assert message.startswith(expected), message


def test_a_value_with_a_newline_stays_on_one_line():
    assert config_error({"max_models": "1\n2"}).startswith("-D max_models='1\\n2': expected")


def test_hf_home_that_does_not_exist():
    message = config_error({}, {"HF_HOME": "/nope"})
    assert message == ("hf_home /nope (from HF_HOME) does not exist: set HF_HOME or -D hf_home=DIR "
                       "to a Hugging Face cache, or unset both to use the demo portfolio")
    assert "(from -D hf_home)" in config_error({"hf_home": "/nope"})


def test_hf_home_that_is_a_file(tmp_path):
    file = tmp_path / "cache.txt"
    file.write_text("")
    assert config_error({"hf_home": str(file)}).startswith(f"hf_home {file} (from -D hf_home) is not a directory: ")


def test_check_mlxk_with_the_real_mlxk():
    version = check_mlxk((str(VENV_MLXK),))
    assert version == "mlxk 2.0.8"
    assert parse_sut_version(version) == "2.0.8"


def check_error(cmd: tuple[str, ...], timeout: float = 30) -> str:
    """The one-line ConfigError check_mlxk raises for cmd."""
    with pytest.raises(ConfigError) as caught:
        check_mlxk(cmd, timeout=timeout)
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.endswith(": point -D mlxk at an mlx-knife executable"), message
    return message


def test_check_mlxk_with_a_missing_path():
    assert check_error(("/bad/path",)) == ("-D mlxk=/bad/path does not run (No such file or directory): "
                                           "point -D mlxk at an mlx-knife executable")


def test_check_mlxk_with_a_program_that_fails(tmp_path):
    cmd = script(tmp_path, "mlxk", "import sys\nprint('starting', file=sys.stderr)\n"
                                   "print('boom: no module mlxk2', file=sys.stderr)\nsys.exit(1)\n")
    assert check_error(cmd) == (f"-D mlxk={cmd[0]} does not run (--version exited 1: boom: no module mlxk2): "
                                "point -D mlxk at an mlx-knife executable")


def test_check_mlxk_sees_the_offline_flag(tmp_path):
    cmd = script(tmp_path, "mlxk", "import os\nprint('mlxk 2.0.8', os.environ.get('HF_HUB_OFFLINE'))\n")
    assert check_mlxk(cmd) == "mlxk 2.0.8 1"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # -- orphans may wait for init
    except psutil.NoSuchProcess:
        return True


def test_check_mlxk_kills_a_program_that_hangs_with_its_children(tmp_path):
    pids = tmp_path / "pids"
    cmd = script(tmp_path, "mlxk", f"""import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
time.sleep(60)
""")
    started = time.monotonic()
    assert "(no answer to --version within 1 s)" in check_error(cmd, timeout=1)
    assert time.monotonic() - started < 15
    for pid in map(int, pids.read_text().split()):
        deadline = time.monotonic() + 5
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid), f"process {pid} survived the timeout"


@pytest.mark.parametrize("text, version", [
    ("mlxk 2.0.8", "2.0.8"), ("mlxk 2.1.0rc1\n", "2.1.0rc1"), ("mlxk version 2.0.8.dev3", "2.0.8.dev3")])
def test_parse_sut_version(text, version):
    assert parse_sut_version(text) == version


def test_parse_sut_version_without_a_version():
    with pytest.raises(ConfigError, match=r"^mlxk --version printed 'hello', expected e\.g\. 'mlxk 2\.0\.8'"):
        parse_sut_version("hello")

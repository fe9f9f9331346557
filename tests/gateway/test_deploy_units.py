"""The systemd units shipped in deploy/ are valid: `systemd-analyze verify` accepts them with no
warning (an unknown key is only a warning there, and systemd ignores it at run time), and a
parser check of their sections and keys runs on machines without systemd. Both are shown to
catch a typo'd key."""

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ("rating-gateway.service", "rating-backup.service", "rating-backup.timer")
INSTALLED_RATING = "/opt/rating/venv/bin/rating"

# the keys of systemd.unit(5), .service(5), .exec(5), .kill(5), .resource-control(5), .timer(5)
# that a unit of this kind may sensibly use; a key outside is a typo or needs adding here
KNOWN = {
    "Unit": "Description Documentation Wants Requires Requisite BindsTo PartOf Upholds Conflicts Before After "
    "OnFailure OnSuccess StartLimitIntervalSec StartLimitBurst ConditionPathExists AssertPathExists",
    "Service": "Type ExecStart ExecStartPre ExecStartPost ExecReload ExecStop ExecStopPost Restart RestartSec "
    "TimeoutStartSec TimeoutStopSec TimeoutSec WatchdogSec RemainAfterExit KillSignal KillMode SendSIGKILL "
    "User Group SupplementaryGroups DynamicUser Environment EnvironmentFile WorkingDirectory UMask "
    "StateDirectory StateDirectoryMode LogsDirectory RuntimeDirectory ConfigurationDirectory "
    "NoNewPrivileges ProtectSystem ProtectHome PrivateTmp PrivateDevices ProtectKernelTunables "
    "ProtectKernelModules ProtectKernelLogs ProtectControlGroups ProtectClock ProtectHostname "
    "RestrictAddressFamilies RestrictNamespaces RestrictRealtime RestrictSUIDSGID LockPersonality "
    "MemoryDenyWriteExecute SystemCallArchitectures SystemCallFilter CapabilityBoundingSet "
    "AmbientCapabilities ReadWritePaths ReadOnlyPaths InaccessiblePaths LimitNOFILE MemoryMax CPUQuota "
    "StandardOutput StandardError SyslogIdentifier",
    "Timer": "OnCalendar OnBootSec OnUnitActiveSec OnActiveSec Persistent RandomizedDelaySec AccuracySec Unit",
    "Install": "WantedBy RequiredBy Alias Also",
}
KNOWN = {section: set(keys.split()) for section, keys in KNOWN.items()}


def key_problems(path):
    """Lines naming a section or key systemd does not know (per KNOWN), or a unit without its
    required parts."""
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(path, encoding="utf-8")
    problems = []
    for section in parser.sections():
        if section not in KNOWN:
            problems.append("%s: unknown section [%s]" % (path.name, section))
            continue
        problems += [
            "%s: unknown key %s in [%s]" % (path.name, k, section) for k in parser[section] if k not in KNOWN[section]
        ]
    kind = path.suffix.lstrip(".").capitalize()
    if kind in ("Service", "Timer") and not parser.has_section(kind):
        problems.append("%s: no [%s] section" % (path.name, kind))
    if kind == "Service" and parser.has_section("Service") and "ExecStart" not in parser["Service"]:
        problems.append("%s: no ExecStart" % path.name)
    return problems


def analyze(folder):
    """systemd-analyze verify on the units of `folder` (the installed path of `rating` swapped for
    this checkout's, which must exist for verify): (exit status, what it printed)."""
    here = shutil.which("rating") or str(Path(sys.executable).with_name("rating"))
    for name in UNITS:
        text = (folder / name).read_text(encoding="utf-8").replace(INSTALLED_RATING, here)
        (folder / name).write_text(text, encoding="utf-8")
    done = subprocess.run(
        ["systemd-analyze", "verify"] + [str(folder / n) for n in UNITS],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=folder,
    )
    return done.returncode, (done.stdout + done.stderr).strip()


def copy_units(tmp_path, typo=None):
    for name in UNITS:
        text = (DEPLOY / name).read_text(encoding="utf-8")
        if typo and name == "rating-gateway.service":
            text = text.replace(*typo)
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_the_shipped_units_use_only_known_sections_and_keys():
    for name in UNITS:
        assert key_problems(DEPLOY / name) == []


def test_the_key_check_catches_a_typo(tmp_path):
    folder = copy_units(tmp_path, typo=("ProtectHome=", "ProtectHomee="))
    assert key_problems(folder / "rating-gateway.service") == [
        "rating-gateway.service: unknown key ProtectHomee in [Service]"
    ]


@pytest.mark.e2e
@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verifies_the_shipped_units_without_a_warning(tmp_path):
    assert analyze(copy_units(tmp_path)) == (0, "")
    typo = tmp_path / "typo"
    typo.mkdir()
    _status, said = analyze(copy_units(typo, ("User=", "Usr=")))
    assert "Unknown key 'Usr'" in said


def test_the_gateway_unit_runs_the_gateway_with_its_settings_file():
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str
    parser.read(DEPLOY / "rating-gateway.service", encoding="utf-8")
    service = parser["Service"]
    assert service["ExecStart"].split() == [INSTALLED_RATING, "gateway", "run", "--config", "/etc/rating/gateway.toml"]
    assert service["User"] != "root" and service["KillSignal"] == "SIGTERM"
    assert service["NoNewPrivileges"] == "yes" and service["UMask"] == "0077"

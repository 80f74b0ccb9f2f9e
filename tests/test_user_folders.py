"""The user's files go to the platform's folders, each kind to its own, never next to the installed app; an
upgrade from a version that kept the recent-projects list in the cache folder still finds it."""
import json
import sys

import pytest

from studio import paths
from ui import recent


@pytest.fixture
def platform_folders(tmp_path, monkeypatch):
    """No FTSTUDIO_HOME: the platform's folders, which platformdirs takes from the XDG variables on Linux."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the XDG variables steer platformdirs on Linux only")
    monkeypatch.delenv("FTSTUDIO_HOME", raising=False)
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DOCUMENTS_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    return tmp_path


def test_each_kind_of_file_has_its_own_platform_folder(platform_folders):
    assert paths.home() == platform_folders / "xdg_cache_home" / "fine-tune-studio"
    assert paths.settings_dir() == platform_folders / "xdg_config_home" / "fine-tune-studio"
    assert paths.projects_dir() == platform_folders / "xdg_documents_dir" / "Fine-Tune Studio"
    package = paths.RESOURCES.parent
    for folder in (paths.home(), paths.settings_dir(), paths.projects_dir()):
        assert folder.is_dir() and not folder.is_relative_to(package)


def test_recent_projects_are_a_setting_and_survive_the_move_from_the_cache(platform_folders, tmp_path):
    project = tmp_path / "mine.ftproj.toml"
    project.write_text("")
    old = paths.home() / recent.NAME  # where 0.1.0 kept the list
    old.write_text(json.dumps([str(project)]))
    assert recent.load() == [project]
    other = tmp_path / "other.ftproj.toml"
    other.write_text("")
    recent.add(other)
    assert json.loads((paths.settings_dir() / recent.NAME).read_text()) == [str(other), str(project)]
    old.unlink()  # a cache cleaner may empty the cache folder: the list is not there any more
    assert recent.load() == [other, project]

"""The project file and the CLI's answers to bad input: one clear sentence, a non-zero exit, nothing written."""
import pytest

from studio.cli import main
from studio.errors import ModelError, ProjectError
from studio.models import resolve_model
from studio.project import Project, load_project, save_project


def test_round_trip(tmp_path):
    project = Project(name="x")
    project.method.rank = 8
    project.export.quant = ["q4_k_m"]
    path = save_project(project, tmp_path / "x.ftproj.toml")
    again = load_project(path)
    assert again == project and again.path == path


def test_typo_names_the_key(tmp_path):
    path = tmp_path / "bad.ftproj.toml"
    path.write_text('[train]\nlerning_rate = 1e-4\n')
    with pytest.raises(ProjectError, match="'lerning_rate'.*Did you mean 'learning_rate'"):
        load_project(path)


@pytest.mark.parametrize("text, key", [('[method]\nmethod = "qlara"\n', "method.method"),
                                       ('[train]\nbatch_size = 0\n', "train.batch_size"),
                                       ('[train]\nbatch_size = "4"\n', "train.batch_size"),
                                       ('[trian]\nepochs = 1\n', "'trian'")])
def test_impossible_values_name_the_key(tmp_path, text, key):
    path = tmp_path / "bad.ftproj.toml"
    path.write_text(text)
    with pytest.raises(ProjectError, match=key.replace(".", r"\.")):
        load_project(path)


def test_model_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_hub_id_without_network():
    with pytest.raises(ModelError, match="Could not download|no model"):
        resolve_model("someone/not-a-real-model-xyz")


def test_cli_missing_project(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.ftproj.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["new", str(blocker / "sub" / "p")]) == 2
    assert "Cannot write to the folder" in capsys.readouterr().err
    assert blocker.read_text() == "x"


def test_cli_new_refuses_overwrite(tmp_path, capsys):
    assert main(["new", str(tmp_path / "p")]) == 0
    assert main(["new", str(tmp_path / "p")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_new_with_a_preset_matches_the_method_page(tmp_path, capsys):
    assert main(["new", str(tmp_path / "full"), "--method", "full", "--preset", "Max quality"]) == 0
    project = load_project(tmp_path / "full.ftproj.toml")
    assert project.method.method == "full" and project.method.rank == 64
    assert project.train.learning_rate == 1e-5 and project.train.gradient_checkpointing  # the full-FT variant
    assert main(["new", str(tmp_path / "typo"), "--preset", "fast"]) == 2
    assert "Presets: Quick test, Balanced, Max quality" in capsys.readouterr().err
    assert not (tmp_path / "typo.ftproj.toml").exists()

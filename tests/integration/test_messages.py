"""One clear line for each way a run can be refused or fail: layer names, huge
numbers, image headers and pixel limits, pickled weights, running out of memory."""

import argparse
import pickle
import warnings

from nst.cli import main

# --- layer names -------------------------------------------------------------------


# --- numbers too large to use ------------------------------------------------------


def test_a_seed_torch_cannot_take_is_one_line_on_the_command_line(tmp_path, capsys, content_path, style_path):
    code = main(["transfer", str(content_path), str(style_path), "-o", str(tmp_path / "o.png"),
                 "--seed", str(2**64), "--size", "32", "--steps", "1", "--device", "cpu", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "2**64-1" in err, err


# --- image files -------------------------------------------------------------------


# --- weights files -----------------------------------------------------------------


def _pickled(path):
    """A plain pickle holding more than tensors: torch refuses it with weights_only."""
    with open(path, "wb") as handle:
        pickle.dump({"features.0.weight": argparse.Namespace(note="not a tensor")}, handle)
    return path


def test_a_pickle_torch_refuses_is_one_line_naming_the_file(tmp_path, capsys, content_path, style_path):
    bad = _pickled(tmp_path / "net.pth")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["transfer", str(content_path), str(style_path), "-o", str(tmp_path / "o.png"),
                     "--weights", str(bad), "--size", "32", "--steps", "1", "--device", "cpu", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert str(bad) in err and "plain state dict (.pth saved with torch.save(state_dict))" in err
    assert ".safetensors" in err and "\x1b" not in err
    assert not [w for w in caught if "pickle" in str(w.message)]


# --- running out of memory ---------------------------------------------------------

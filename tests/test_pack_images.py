"""``mmali_tf.tools.pack_images`` packs a folder of image files (one sub-folder per modality, files matched by name)
into the ``image`` dataset's files; ``mmali_tf.tools.digits_to_images`` writes the embedded digits as such a folder
(the README's example). Bad input is one error line and writes nothing."""

import os

import numpy as np
import pytest
from PIL import Image

from mmali_tf.data import datasets
from mmali_tf.errors import DataError
from mmali_tf.tools import digits_to_images, pack_images
from tests.cli_driver import run_in_one_interpreter

QUIET = {"print_fn": lambda _: None}


def save(path, array, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)


def solid(h, w, value, channels=3):
    return np.full((h, w, channels), value, np.uint8) if channels > 1 else np.full((h, w), value, np.uint8)


def test_digits_folder_packs_into_pairs_of_the_same_digit(tmp_path):
    folders = digits_to_images.write_digit_images(str(tmp_path / "digits"), colour_size=20, grey_size=16, **QUIET)
    assert sorted(os.listdir(folders["colour"]))[:2] == ["0000.png", "0001.png"] and len(os.listdir(folders["grey"])) == 1797
    expected = digits_to_images.digit_images(20, 16)
    packed = pack_images.pack(str(tmp_path / "digits"), str(tmp_path / "arrays"), labels_csv=folders["labels"],
                              **QUIET)
    assert packed.rows == {"train": 1438, "test": 359} and packed.labelled
    assert packed.shapes == {"colour": (20, 20, 3), "grey": (16, 16, 1)}
    for split in ("train", "test"):
        colour = np.load(tmp_path / "arrays" / f"colour_{split}.npz")
        grey = np.load(tmp_path / "arrays" / f"grey_{split}.npz")
        np.testing.assert_array_equal(colour["stems"], grey["stems"])  # row t is one tuple in both modalities
        rows = np.array([int(s) for s in colour["stems"]])
        assert list(rows) == sorted(rows)
        np.testing.assert_array_equal(colour["images"], expected["colour"][rows])  # PNG round trip is lossless
        np.testing.assert_array_equal(grey["images"], expected["grey"][rows])
        np.testing.assert_array_equal(colour["labels"], expected["labels"][rows])
        np.testing.assert_array_equal(grey["labels"], expected["labels"][rows])
        test_counts = np.bincount(colour["labels"], minlength=10)
        if split == "test":  # 20% of each class
            all_counts = np.bincount(expected["labels"], minlength=10)
            np.testing.assert_array_equal(test_counts, np.round(0.2 * all_counts).astype(int))
    loaded = datasets.load_dataset("image", "train", str(tmp_path / "arrays"), modality="colour")
    assert loaded.examples.shape == (1438, 20, 20, 3) and loaded.labels is not None
    with pytest.raises(DataError, match="already exists"):
        digits_to_images.write_digit_images(str(tmp_path / "digits"), **QUIET)


def test_resize_and_channel_conversion(tmp_path):
    src = tmp_path / "src"
    for stem, size in (("a", (20, 30)), ("b", (40, 40))):
        save(str(src / "photo" / f"{stem}.png"), solid(*size, (200, 100, 50)))
        save(str(src / "depth" / f"{stem}.png"), np.full(size, 250 * 257, np.uint16))  # 16-bit grey
    for stem in ("a", "b"):
        save(str(src / "mask" / f"{stem}.png"), solid(16, 16, 255, 1))
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 3] = 128
    save(str(src / "mask" / "b.png"), rgba)  # one file with alpha: the modality keeps 4 channels
    packed = pack_images.pack(str(src), str(tmp_path / "out"), size=(16, 24), test_fraction=0.5, **QUIET)
    assert packed.shapes == {"depth": (16, 24, 1), "mask": (16, 24, 4), "photo": (16, 24, 3)}
    photo = np.concatenate([np.load(tmp_path / "out" / f"photo_{s}.npz")["images"] for s in ("train", "test")])
    assert np.all(photo == np.array([200, 100, 50], np.uint8))  # resized, colour unchanged
    depth = np.concatenate([np.load(tmp_path / "out" / f"depth_{s}.npz")["images"] for s in ("train", "test")])
    assert np.all(np.abs(depth.astype(int) - 250) <= 1)  # 16 bits scaled to 8
    masks = {s: np.load(tmp_path / "out" / f"mask_{s}.npz") for s in ("train", "test")}
    by_stem = {str(m["stems"][0]): m["images"][0] for m in masks.values()}
    assert np.all(by_stem["a"] == 255) and np.all(by_stem["b"][..., 3] == 128) and np.all(by_stem["b"][..., :3] == 0)
    grey = pack_images.pack(str(src), str(tmp_path / "grey"), size=(16, 16), channels=1, modalities=["photo", "mask"],
                            test_fraction=0.5, **QUIET)
    assert grey.shapes == {"photo": (16, 16, 1), "mask": (16, 16, 1)}  # in the order given


def test_unmatched_files_labels_names_and_split(tmp_path):
    src = tmp_path / "src"
    for stem in ("0", "1", "2", "3", "4", "5", "6", "7", "x"):
        save(str(src / "left" / f"{stem}.png"), solid(16, 16, 10, 1))
    for stem in ("0", "1", "2", "3", "4", "5", "6", "7", "y"):
        save(str(src / "right" / f"{stem}.jpg"), solid(16, 16, 10))
    (src / "right" / "notes.txt").write_text("not an image")
    labels = tmp_path / "labels.csv"
    labels.write_text("stem,label\n" + "".join(f"{i},{'cat' if i % 2 else 'dog'}\n" for i in range(7)) + "y,cat\n")
    with pytest.raises(DataError, match=r"1 file\(s\) of left have no match in right: x \(files are matched"):
        pack_images.pack(str(src), str(tmp_path / "out"), **QUIET)
    os.rename(src / "left" / "x.png", tmp_path / "x.png")
    os.rename(src / "right" / "y.jpg", tmp_path / "y.jpg")
    with pytest.raises(DataError, match=r"no label for 1 file name\(s\): 7 \(pass --skip_unmatched"):
        pack_images.pack(str(src), str(tmp_path / "out"), labels_csv=str(labels), **QUIET)
    os.rename(tmp_path / "x.png", src / "left" / "x.png")
    os.rename(tmp_path / "y.jpg", src / "right" / "y.jpg")
    lines = []
    packed = pack_images.pack(str(src), str(tmp_path / "out"), labels_csv=str(labels), skip_unmatched=True,
                              test_fraction=0.3, seed=4, print_fn=lines.append)
    assert packed.rows == {"train": 5, "test": 2}  # stems 0..6; 30% of 4 dogs and of 3 cats, rounded
    assert "left: 1 file(s) without a match in every modality left out" in lines
    assert any("1 file(s) without an image extension left out" in line for line in lines)
    train, test = (np.load(tmp_path / "out" / f"left_{s}.npz") for s in ("train", "test"))
    assert sorted(list(train["stems"]) + list(test["stems"])) == [str(i) for i in range(7)]
    stems = list(train["stems"]) + list(test["stems"])
    labels_of = dict(zip(stems, list(train["labels"]) + list(test["labels"])))
    assert all(labels_of[str(i)] == (0 if i % 2 else 1) for i in range(7))  # cat = 0, dog = 1 (sorted names)
    assert (tmp_path / "out" / "label_names.txt").read_text() == "0,cat\n1,dog\n"
    again = pack_images.pack(str(src), str(tmp_path / "again"), labels_csv=str(labels), skip_unmatched=True,
                             test_fraction=0.3, seed=4, **QUIET)
    assert again.rows == packed.rows
    assert list(np.load(tmp_path / "again" / "left_test.npz")["stems"]) == list(test["stems"])  # seeded


def _bad_folders(root):
    """{case: (argv, error text)}: each folder broken in one way."""
    def folder(name, files):
        for path, array in files.items():
            save(str(root / name / path), array)
        return root / name

    ok = {"a/1.png": solid(16, 16, 0, 1), "b/1.png": solid(16, 16, 0, 1), "a/2.png": solid(16, 16, 0, 1),
          "b/2.png": solid(16, 16, 0, 1)}
    cases = {}

    def case(name, files, *flags, error):
        directory = folder(name, files) if files is not None else root / name
        cases[name] = ([f"--image_dir={directory}", f"--out_dir={root / 'out' / name}", "--test_fraction=0.5",
                        *flags], error)

    case("unmatched", {**ok, "a/3.png": solid(16, 16, 0, 1)},
         error="error: 1 file(s) of a have no match in b: 3 (files are matched by name; pass --skip_unmatched to "
               "leave them out)")
    case("mixed_sizes", {**ok, "a/2.png": solid(20, 16, 0, 1)}, error="error: a: images of different sizes (16x16 ")
    case("too_small", {f"{m}/{i}.png": solid(8, 8, 0, 1) for m in "ab" for i in (1, 2)},
         error="error: a: images are 8x8, but the image kind takes 16 to 128 pixels a side; pass --height and "
               "--width to resize them")
    case("one_folder", {"a/1.png": solid(16, 16, 0, 1)},
         error="needs one sub-folder of image files per modality, at least 2; found a")
    case("bad_name", {**ok, "my-photos/1.png": solid(16, 16, 0, 1)},
         error="sub-folder names are modality names and must be a letter followed by letters, digits or _ ; rename "
               "my-photos")
    case("duplicate", {**ok, "a/1.jpg": solid(16, 16, 0)},
         error="two files share the name '1' (1.jpg, 1.png); the name without its extension identifies a tuple")
    case("short_labels", ok, f"--labels_csv={root / 'labels_short.csv'}",
         error=f"error: {root / 'labels_short.csv'}: no label for 1 file name(s): 2 (pass --skip_unmatched to leave "
               "them out)")
    case("bad_csv", ok, f"--labels_csv={root / 'labels_bad.csv'}",
         error=f"error: {root / 'labels_bad.csv'}, line 2: expected stem,label, got '2'")
    case("height_only", ok, "--height=32", error="give both --height and --width")
    case("fraction_one", ok, "--test_fraction=1", error="--test_fraction must lie strictly between 0 and 1")
    case("no_dir", None, error=f"no such directory: {root / 'no_dir'}")
    (root / "labels_short.csv").write_text("1,0\n")
    (root / "labels_bad.csv").write_text("1,0\n2\n")
    # a folder with an unreadable image and one with no images at all
    folder("unreadable", ok)
    (root / "unreadable" / "b" / "2.png").write_bytes(b"\x89PNG not really")
    cases["unreadable"] = ([f"--image_dir={root / 'unreadable'}", f"--out_dir={root / 'out' / 'unreadable'}",
                            "--test_fraction=0.5"],
                           f"error: {root / 'unreadable' / 'b' / '2.png'}: cannot read the image")
    folder("empty_folder", ok)
    os.makedirs(root / "empty_folder" / "c")
    (root / "empty_folder" / "c" / "readme.txt").write_text("no images here")
    cases["empty_folder"] = ([f"--image_dir={root / 'empty_folder'}", f"--out_dir={root / 'out' / 'empty_folder'}"],
                             f"error: {root / 'empty_folder' / 'c'}: no image files")
    return cases


def test_bad_input_is_one_error_line_and_writes_nothing(tmp_path):
    cases = _bad_folders(tmp_path)
    existing = tmp_path / "existing"
    pack_images.pack(str(tmp_path / "unmatched"), str(existing), skip_unmatched=True, test_fraction=0.5, **QUIET)
    before = {p: (existing / p).read_bytes() for p in os.listdir(existing)}
    cases["existing"] = ([f"--image_dir={tmp_path / 'unmatched'}", f"--out_dir={existing}", "--skip_unmatched",
                          "--test_fraction=0.5"], f"error: {existing / 'a_train.npz'} already exists (pass --overwrite "
                                                  "to replace the image files)")
    results = run_in_one_interpreter([{"module": "mmali_tf.tools.pack_images", "argv": argv,
                                       "env": {"TF_CPP_MIN_LOG_LEVEL": "3"}} for argv, _ in cases.values()],
                                     str(tmp_path))
    for (name, (_, error)), result in zip(cases.items(), results):
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        assert result["code"] != 0, name
        assert len(lines) == 1 and lines[0].startswith("error: ") and error in lines[0], (name, result["stderr"])
        assert not (tmp_path / "out" / name).exists(), name
    assert {p: (existing / p).read_bytes() for p in os.listdir(existing)} == before
    good = run_in_one_interpreter([{"module": "mmali_tf.tools.pack_images", "argv": [
        f"--image_dir={tmp_path / 'unmatched'}", f"--out_dir={existing}", "--skip_unmatched", "--overwrite",
        "--test_fraction=0.5", "--height=32", "--width=24"]}], str(tmp_path))[0]
    assert good["code"] == 0, good["stderr"]
    assert "train with: --data_dir=" in good["stdout"] and "--modality_option=a:height=32,width=24,channels=1" in \
        good["stdout"]
    assert np.load(existing / "a_train.npz")["images"].shape == (1, 32, 24, 1)

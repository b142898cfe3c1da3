"""Tests of the exporters' plain-Python parts (no torch): `python3 -m unittest` in tools/,
which tests/tools.rs runs in `cargo test`."""

import json
import tempfile
import unittest
from pathlib import Path

import audioset
import hf_features


class SavedFeatureExtractor(unittest.TestCase):
    """Issue 25 (4): `export_ast.py --hf-id` wrote AudioSet's statistics whatever the
    checkpoint's preprocessor_config.json said."""

    def folder(self, cfg):
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        if cfg is not None:
            (Path(d.name) / "preprocessor_config.json").write_text(json.dumps(cfg))
        return d.name

    def test_issue_25_the_checkpoints_own_statistics_are_used(self):
        cfg = {"feature_extractor_type": "ASTFeatureExtractor", "feature_size": 1,
               "sampling_rate": 16000, "num_mel_bins": 128, "max_length": 1024,
               "do_normalize": True, "mean": -6.845978, "std": 5.5654526,
               "padding_value": 0.0, "return_attention_mask": False}
        got = hf_features.read(self.folder(cfg), 128, 1024)
        self.assertEqual((got["mean"], got["std"]), (-6.845978, 5.5654526))
        self.assertEqual((got["sample_rate"], got["mel_bins"], got["max_length"]),
                         (16000, 128, 1024))
        self.assertTrue(got["source"].endswith("preprocessor_config.json"))

    def test_other_rates_and_windows_are_carried_over(self):
        cfg = {"sampling_rate": 22050, "num_mel_bins": 64, "max_length": 512,
               "mean": 1.5, "std": 2.5}
        got = hf_features.read(self.folder(cfg), 64, 512)
        self.assertEqual((got["sample_rate"], got["mel_bins"], got["max_length"]),
                         (22050, 64, 512))

    def test_without_the_file_the_extractors_defaults_apply(self):
        got = hf_features.read(self.folder(None), 128, 1024)
        self.assertEqual(got["source"], "defaults")
        self.assertEqual((got["mean"], got["std"]), (-4.2677393, 4.5689974))

    def test_no_normalisation_is_the_identity(self):
        got = hf_features.read(self.folder({"do_normalize": False}), 128, 1024)
        self.assertEqual((got["mean"], 2 * got["std"]), (0.0, 1.0))

    def test_what_the_pipeline_cannot_do_is_refused_with_the_reason(self):
        for cfg, model, reason in [
            ({"feature_extractor_type": "WhisperFeatureExtractor"}, (128, 1024), "Whisper"),
            ({"sampling_rate": 100}, (128, 1024), "sampling_rate"),
            ({"num_mel_bins": 80}, (128, 1024), "num_mel_bins 80 but the model takes 128"),
            ({"max_length": 998}, (128, 1024), "max_length 998"),
            ({"feature_size": 2}, (128, 1024), "feature_size"),
            ({"std": 0.0}, (128, 1024), "std > 0"),
            ({"mean": float("nan")}, (128, 1024), "finite"),
        ]:
            with self.assertRaises(SystemExit) as e:
                hf_features.read(self.folder(cfg), *model)
            self.assertIn(reason, str(e.exception))
        with self.assertRaises(SystemExit) as e:
            d = self.folder(None)
            (Path(d) / "preprocessor_config.json").write_text("{not json")
            hf_features.read(d, 128, 1024)
        self.assertIn("not readable JSON", str(e.exception))


class AudioSetNames(unittest.TestCase):
    """Issue 25 (5): BEATs checkpoints whose label_dict maps index -> AudioSet id lost their
    names ("/t/000", "Label 000")."""

    def test_the_table_is_audiosets_527_classes(self):
        rows = audioset.table()
        self.assertEqual(len(rows), 527)
        self.assertEqual(rows[0], ("/m/09x0r", "Speech"))
        self.assertEqual(rows[137], ("/m/04rlf", "Music"))
        self.assertEqual(len({mid for mid, _ in rows}), 527)

    def test_issue_25_index_to_id_label_dicts_get_their_names(self):
        rows = audioset.table()
        label_dict = {i: mid for i, (mid, _) in enumerate(rows)}
        labels, used = audioset.from_label_dict(label_dict, 527)
        self.assertTrue(used)
        self.assertEqual(labels, rows)

    def test_id_to_index_and_unknown_ids(self):
        labels, used = audioset.from_label_dict({"/m/04rlf": 1, "/x/new": 0}, 2)
        self.assertTrue(used)
        self.assertEqual(labels, [("/x/new", "/x/new"), ("/m/04rlf", "Music")])

    def test_a_label_dict_that_misses_outputs_is_refused(self):
        with self.assertRaises(SystemExit) as e:
            audioset.from_label_dict({0: "/m/09x0r"}, 3)
        self.assertIn("has 3", str(e.exception))

    def test_no_label_dict_gives_generic_names(self):
        labels, used = audioset.from_label_dict(None, 2)
        self.assertFalse(used)
        self.assertEqual(labels, [("/t/000", "Label 000"), ("/t/001", "Label 001")])

    def test_ast_display_names_get_their_ids(self):
        labels, used = audioset.from_display_names(["Speech", "Dog", "My own sound"])
        self.assertTrue(used)
        self.assertEqual(labels[0], ("/m/09x0r", "Speech"))
        self.assertEqual(labels[1][1], "Dog")
        self.assertTrue(labels[1][0].startswith("/m/"))
        self.assertEqual(labels[2], ("/hf/2", "My own sound"))


if __name__ == "__main__":
    unittest.main()

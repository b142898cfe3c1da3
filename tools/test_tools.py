"""Tests of the exporters' plain-Python parts (no torch): `python3 -m unittest` in tools/,
which tests/tools.rs runs in `cargo test`."""

import json
import struct
import tempfile
import unittest
import zlib
from pathlib import Path

import audioset
import hf_features
import real_sounds


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



class RealSounds(unittest.TestCase):
    """Issue 27: the containers, licences and labelling rules of tools/real_sounds.py."""

    def test_every_rule_compiles_and_names_audioset_labels_of_a_fetched_package(self):
        names = {n for _, n in audioset.table()}
        rules = real_sounds.load_rules()
        self.assertGreater(len(rules), 50)
        for pkg, _, labels, _ in rules:
            self.assertIn(pkg, real_sounds.PACKAGES)
            for lab in (labels or "").split(";"):
                if lab:
                    self.assertIn(lab, names)

    def test_no_reserved_package_is_fetched_and_both_splits_exist(self):
        fetched = set(real_sounds.PACKAGES)
        self.assertFalse(fetched & real_sounds.RESERVED)
        self.assertFalse([p for p in fetched if p.startswith("asterisk-")])
        self.assertEqual({s for _, s in real_sounds.PACKAGES.values()}, {"train", "test"})

    def test_the_first_matching_rule_decides_and_an_unmatched_file_is_left_out(self):
        rules = real_sounds.load_rules()
        d = lambda pkg, path: real_sounds.decide(rules, pkg, path)[0]
        v = "usr/share/games/hedgewars/Data/Sounds/voices/Default/"
        self.assertEqual(d("hedgewars-data", v + "Hello.ogg"), "Speech")
        self.assertIsNone(d("hedgewars-data", v + "Laugh.ogg"))
        self.assertIsNone(d("hedgewars-data", "usr/share/games/hedgewars/Data/Sounds/voices/Robot/Hello.ogg"))
        cat = "usr/share/games/openttd/baseset/opensfx/opensfx.cat!"
        self.assertEqual(d("openttd-opensfx", cat + "33 Jackhammer"), "Jackhammer")
        self.assertEqual(d("openttd-opensfx", cat + "06 Ship horn"), "")
        self.assertIsNone(d("openttd-opensfx", cat + "21 Beep"))
        self.assertEqual(real_sounds.decide(rules, "openttd-opensfx", cat + "99 New")[1],
                         "no rule decides it")
        pk3 = "usr/share/games/openarena/baseoa/pak0.pk3!sound/"
        self.assertEqual(d("openarena-data", pk3 + "weapons/shotgun/sshotf1b.wav"), "")
        self.assertEqual(d("openarena-data", pk3 + "world/waterfall.wav"), "Water")
        self.assertIsNone(d("openarena-data", pk3 + "weapons/bfg/bfg_fire.wav"))
        wn = "usr/share/games/wesnoth/1.16/data/core/sounds/"
        self.assertEqual(d("wesnoth-1.16-data", wn + "ambient/birds2.ogg"), "Bird;Animal")
        self.assertEqual(d("wesnoth-1.16-data", wn + "gunshot.wav"), "")
        self.assertIsNone(d("wesnoth-1.16-data", wn + "magic-holy-1.ogg"))
        self.assertIsNone(d("wesnoth-1.16-data", wn + "orc-die-1.ogg"))

    def test_an_openttd_cat_gives_each_sample_with_the_licence_in_its_name(self):
        def entry(title, wav):
            name = title.encode() + b"\0"
            return bytes([len(name)]) + name + wav
        a = entry('"Horn". By X. License: Creative Commons Zero 1.0.', b"RIFFaaaa")
        b = entry('"Saw". By Y. License: Creative Commons Attribution 3.0 Unported.', b"RIFFbb")
        head = 16
        blob = struct.pack("<IIII", head | 0x80000000, len(a), head + len(a), len(b)) + a + b
        got = real_sounds.cat_members(blob)
        self.assertEqual(list(got), ['00 "Horn"', '01 "Saw"'])
        self.assertEqual(got['00 "Horn"'], (b"RIFFaaaa", "Creative Commons Zero 1.0"))
        self.assertEqual(got['01 "Saw"'][1], "Creative Commons Attribution 3.0 Unported")

    def test_a_qt_resource_file_gives_its_sound_files_compressed_or_not(self):
        def name(s):
            u = s.encode("utf-16-be")
            return struct.pack(">HI", len(s), 0) + u
        names = name("snd") + name("a.ogg") + name("b.wav") + name("c.png")
        n_snd, n_a = 0, len(name("snd"))
        n_b, n_c = n_a + len(name("a.ogg")), n_a + len(name("a.ogg")) + len(name("b.wav"))
        raw_b = b"WAVE" * 8
        data = struct.pack(">I", 5) + b"OggS!"
        off_b = len(data)
        comp = struct.pack(">I", len(raw_b)) + zlib.compress(raw_b)
        data += struct.pack(">I", len(comp)) + comp
        off_c = len(data)
        data += struct.pack(">I", 3) + b"png"
        node = lambda noff, flags, a, b: struct.pack(">IHII", noff, flags, a, b) + b"\0" * 8
        leaf = lambda noff, flags, off: struct.pack(">IHHHI", noff, flags, 0, 0, off) + b"\0" * 8
        tree = (node(0, 2, 1, 1) + node(n_snd, 2, 3, 2)
                + leaf(n_a, 0, 0) + leaf(n_b, 1, off_b) + leaf(n_c, 0, off_c))
        header = 24
        blob = (b"qres" + struct.pack(">IIIII", 2, header, header + len(tree),
                                      header + len(tree) + len(data), 0) + tree + data + names)
        got = real_sounds.rcc_members(blob)
        self.assertEqual(got, {"snd/a.ogg": b"OggS!", "snd/b.wav": raw_b})

    def test_the_last_matching_copyright_paragraph_gives_the_licence(self):
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        doc = Path(d.name) / "usr/share/doc/pkg"
        doc.mkdir(parents=True)
        (doc / "copyright").write_text(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: *\nCopyright: A\nLicense: GPL-2+\n\n"
            "Files: data/sfx/*.ogg\n data/music/x.ogg\nCopyright: B\nLicense: CC-BY-SA-3.0\n\n"
            "License: GPL-2+\n text\n")
        paras = real_sounds.dep5(Path(d.name), "pkg")
        self.assertEqual(real_sounds.licence_of(paras, "usr/share/games/pkg/data/sfx/horn.ogg"),
                         "CC-BY-SA-3.0")
        self.assertEqual(real_sounds.licence_of(paras, "usr/share/games/pkg/data/music/x.ogg"),
                         "CC-BY-SA-3.0")
        self.assertEqual(real_sounds.licence_of(paras, "usr/share/games/pkg/other.ogg"), "GPL-2+")

    def test_long_files_give_their_start_middle_and_end(self):
        sr = real_sounds.SR
        self.assertEqual(real_sounds.segments(3 * sr), [(0, 3 * sr)])
        self.assertEqual(real_sounds.segments(30 * sr), [(0, 10 * sr), (10 * sr, 10 * sr),
                                                         (20 * sr, 10 * sr)])


if __name__ == "__main__":
    unittest.main()

"""Reads a Hugging Face AST checkpoint's saved feature extractor (preprocessor_config.json)
into what model.toml needs, and refuses settings the pipeline cannot reproduce. Plain Python,
no torch."""

import json
from pathlib import Path

# ASTFeatureExtractor's defaults (transformers), for a checkpoint saved without the file.
DEFAULTS = {"feature_size": 1, "sampling_rate": 16000, "num_mel_bins": 128, "max_length": 1024,
            "do_normalize": True, "mean": -4.2677393, "std": 4.5689974}
KNOWN_EXTRACTORS = ("ASTFeatureExtractor",)


def read(folder, model_mel_bins, model_max_length):
    """The feature settings of the checkpoint in `folder`: a dict with sample_rate, mel_bins,
    max_length, mean, std and `source` (the file, or "defaults"). Raises SystemExit with the
    reason when the pipeline cannot feed the model as its extractor does."""
    path = Path(folder) / "preprocessor_config.json"
    if path.is_file():
        try:
            cfg = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"{path}: not readable JSON ({e})")
        source = str(path)
    else:
        cfg, source = {}, "defaults"
    get = lambda k: cfg.get(k, DEFAULTS[k])
    problems = []
    kind = cfg.get("feature_extractor_type", "ASTFeatureExtractor")
    if kind not in KNOWN_EXTRACTORS:
        problems.append(f"feature_extractor_type {kind!r}: only {', '.join(KNOWN_EXTRACTORS)} "
                        "(Kaldi fbank, Hanning window) is reproduced")
    rate = get("sampling_rate")
    if not isinstance(rate, int) or not 4000 <= rate <= 192000:
        problems.append(f"sampling_rate {rate!r}: must be an integer from 4000 to 192000 Hz")
    bins = get("num_mel_bins")
    if not isinstance(bins, int) or not 1 <= bins <= 512:
        problems.append(f"num_mel_bins {bins!r}: must be an integer from 1 to 512")
    elif bins != model_mel_bins:
        problems.append(f"num_mel_bins {bins} but the model takes {model_mel_bins}")
    frames = get("max_length")
    if not isinstance(frames, int) or frames != model_max_length:
        problems.append(f"max_length {frames!r} but the model's window is {model_max_length} "
                        "frames")
    if get("feature_size") != 1:
        problems.append(f"feature_size {get('feature_size')!r}: only mono (1) audio")
    if get("do_normalize"):
        mean, std = get("mean"), get("std")
        finite = all(isinstance(v, (int, float)) and v == v and abs(v) < 1e30 for v in (mean, std))
        if not finite or not std > 0:
            problems.append(f"mean {mean!r} / std {std!r}: must be finite numbers, std > 0")
    else:
        # No normalisation: (x - 0) / (2 * 0.5) is the identity.
        mean, std = 0.0, 0.5
    if problems:
        raise SystemExit(f"{source}: the pipeline cannot feed this model as its feature "
                         "extractor does:\n  " + "\n  ".join(problems))
    return {"sample_rate": rate, "mel_bins": bins, "max_length": frames, "mean": float(mean),
            "std": float(std), "source": source}

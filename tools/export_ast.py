#!/usr/bin/env python3
"""Exports an AST (transformers.ASTForAudioClassification) to a soundsentry model folder.

Either from a Hugging Face id (needs internet once) or a saved checkpoint folder, e.g.
    python tools/export_ast.py --hf-id MIT/ast-finetuned-audioset-10-10-0.4593 --out models/ast-audioset
or with random weights of a chosen size (tests, benchmarks):
    python tools/export_ast.py --random --hidden 768 --layers 12 --heads 12 --mlp 3072 --out bench-out/ast-full

--frames 512 (or 256) exports the same model for a shorter window (5.12 s, 2.56 s): the
position embeddings are sliced, so attention costs a quarter (a sixteenth) and scores stay
close to the full model's on sounds that fit the window.

With --hf-id, the checkpoint's saved feature extractor (preprocessor_config.json) gives the
sampling rate, mel bins, window length and normalisation statistics; settings the pipeline
cannot reproduce are refused. Outputs whose display names AudioSet's table knows
(tools/data/) get their ontology ids, and the folder a NOTICE with the table's attribution.

The ONNX model takes normalised fbank features (1, frames, 128) and returns logits
(1, labels). onnxruntime must agree with PyTorch within 1e-4 or nothing is written.
--int8 also writes <out>-int8 (onnxruntime dynamic quantisation; the patch embedding and the
first layer stay fp32 unless --int8-keep-fp32 says otherwise).
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from transformers import ASTConfig, ASTForAudioClassification

import audioset
import export_common as ec
import hf_features

AST_MEAN, AST_STD = hf_features.DEFAULTS["mean"], hf_features.DEFAULTS["std"]


def saved_features(hf_id, config):
    """The checkpoint's own feature extractor settings (preprocessor_config.json), from its
    folder or the hub's cache; refuses settings the pipeline cannot reproduce."""
    folder = Path(hf_id)
    if not folder.is_dir():
        from transformers.utils import cached_file
        found = cached_file(hf_id, "preprocessor_config.json",
                            _raise_exceptions_for_missing_entries=False)
        folder = Path(found).parent if found else Path("/nonexistent")
    feats = hf_features.read(folder, config.num_mel_bins, config.max_length)
    print(f"features from {feats['source']}: {feats['sample_rate']} Hz, {feats['mel_bins']} mel "
          f"bins, {feats['max_length']} frames, mean {feats['mean']}, std {feats['std']}")
    return feats


def build(args):
    """(model, labels, features, labels_from_audioset)."""
    if args.hf_id:
        model = ASTForAudioClassification.from_pretrained(args.hf_id, attn_implementation="eager")
        feats = saved_features(args.hf_id, model.config)
        names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        labels, from_table = audioset.from_display_names(names)
        if args.labels_csv:
            labels, from_table = read_labels_csv(args.labels_csv), False
            if len(labels) != model.config.num_labels:
                raise SystemExit(f"{args.labels_csv}: {len(labels)} labels, the model has "
                                 f"{model.config.num_labels} outputs")
        return model, labels, feats, from_table
    torch.manual_seed(args.seed)
    labels = ec.generic_labels(args.labels)
    if args.label_names:
        names = [n.strip() for n in Path(args.label_names).read_text().splitlines() if n.strip()]
        labels = [(f"/t/{i:03d}", n) for i, n in enumerate(names)]
    cfg = ASTConfig(hidden_size=args.hidden, num_hidden_layers=args.layers,
                    num_attention_heads=args.heads, intermediate_size=args.mlp,
                    max_length=args.base_frames, num_mel_bins=128, num_labels=len(labels),
                    initializer_range=args.init_range, attn_implementation="eager")
    model = ASTForAudioClassification(cfg)
    feats = {"sample_rate": 16000, "mel_bins": 128, "mean": AST_MEAN, "std": AST_STD}
    return model, labels, feats, False


def read_labels_csv(path):
    """(mid, display_name) pairs from an AudioSet-style index,mid,display_name file."""
    import csv
    with open(path, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
    return [(r["mid"], r["display_name"]) for r in rows]


def shorten(model, frames):
    """The same AST for a shorter window: the position embeddings of the first time columns.

    Patches are laid out frequency-major (12 frequency rows x T time columns, after the CLS
    and distillation tokens), so a window of `frames` keeps, in every frequency row, the
    embeddings of the first (frames - 16) // 10 + 1 time columns: what those patches had in
    the full window.
    """
    cfg = model.config
    if frames == cfg.max_length:
        return model
    if frames > cfg.max_length or frames < cfg.patch_size:
        raise SystemExit(f"--frames {frames} must lie in {cfg.patch_size}..{cfg.max_length}")
    emb = model.audio_spectrogram_transformer.embeddings
    f_dim, t_dim = emb.get_shape(cfg)
    new_cfg = cfg.__class__.from_dict({**cfg.to_dict(), "max_length": frames})
    new_cfg._attn_implementation = "eager"
    short = ASTForAudioClassification(new_cfg)
    _, t_new = short.audio_spectrogram_transformer.embeddings.get_shape(new_cfg)
    state = model.state_dict()
    key = "audio_spectrogram_transformer.embeddings.position_embeddings"
    pos = state[key]
    grid = pos[:, 2:].reshape(1, f_dim, t_dim, -1)[:, :, :t_new]
    state[key] = torch.cat([pos[:, :2], grid.reshape(1, f_dim * t_new, -1)], dim=1)
    short.load_state_dict(state)
    return short.eval()


class Logits(torch.nn.Module):
    """The classifier's logits and, as the embedding, the pooled tokens it reads
    (ASTForAudioClassification: the mean of the CLS and distillation tokens after the
    encoder's layer norm, before the head's own layer norm and linear layer)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, features):
        pooled = self.model.audio_spectrogram_transformer(input_values=features).pooler_output
        return self.model.classifier(pooled), pooled


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--hf-id")
    src.add_argument("--random", action="store_true")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--name")
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--mlp", type=int, default=3072)
    p.add_argument("--frames", type=int,
                   help="window length (default: the model's own); below it, position embeddings are sliced")
    p.add_argument("--base-frames", type=int, default=1024,
                   help="window of the random model before slicing (random weights only)")
    p.add_argument("--labels", type=int, default=527)
    p.add_argument("--label-names", help="text file, one display name per line")
    p.add_argument("--labels-csv", help="with --hf-id: index,mid,display_name file naming the outputs")
    p.add_argument("--thresholds", type=Path,
                   help="JSON file {display name: on score} written to model.toml's [thresholds]")
    p.add_argument("--description", help="model.toml description (default: where the weights came from)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init-range", type=float, default=0.02,
                   help="std of random weights (larger gives livelier outputs for parity tests)")
    p.add_argument("--int8", action="store_true")
    p.add_argument("--int8-attention", action="store_true",
                   help="with --int8: quantise the attention products too (default: weights only)")
    p.add_argument("--int8-keep-fp32", nargs="*", metavar="NAME", default=list(ec.KEEP_FP32),
                   help="with --int8: leave the products whose node names contain one of these in "
                        "fp32 (default: %(default)s; give the option alone to quantise them all)")
    p.add_argument("--fixture", action="store_true",
                   help="also save input.npy / expected.npy (onnxruntime output) in the folder")
    args = p.parse_args()

    model, labels, feats, from_table = build(args)
    model = shorten(model.eval(), args.frames or model.config.max_length)
    frames = model.config.max_length
    wrapped = Logits(model).eval()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    bins = feats["mel_bins"]
    inputs = [rng.standard_normal((1, frames, bins)).astype(np.float32) * 0.5 for _ in range(2)]
    ec.export_onnx(wrapped, torch.from_numpy(inputs[0]), out / "model.onnx", dynamic_frames=False)
    outs = ec.check_parity(wrapped, out / "model.onnx", inputs)
    name = args.name or out.name
    desc = args.description or (f"AST from {args.hf_id}" if args.hf_id else
            f"random-weight AST, hidden {args.hidden}, {args.layers} layers, seed {args.seed}")
    ec.write_model_folders(out, name=name, description=desc, labels=labels, inputs=inputs,
                           outputs=outs, int8=args.int8, fixture=args.fixture,
                           int8_keep_fp32=tuple(args.int8_keep_fp32),
                           int8_attention=args.int8_attention,
                           fbank={"window": "hanning", "waveform_scale": 1.0},
                           normalize={"mean": feats["mean"], "std": feats["std"]},
                           sample_rate=feats["sample_rate"], mel_bins=bins,
                           notice=audioset.ATTRIBUTION if from_table else None,
                           window_frames=frames, output="sigmoid", dynamic_frames=False,
                           embedding_size=model.config.hidden_size,
                           thresholds=json.loads(args.thresholds.read_text()) if args.thresholds else None)

if __name__ == "__main__":
    main()

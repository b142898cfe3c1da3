#!/usr/bin/env python3
"""Exports BEATs (speechbrain's implementation of microsoft/unilm BEATs) to a model folder.

From an official fine-tuned checkpoint (downloaded by the user), e.g.
    python tools/export_beats.py --checkpoint BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt --out models/beats-as2m
or with random weights of a chosen size (tests, benchmarks):
    python tools/export_beats.py --random --out bench-out/beats-full

The fbank stays outside the graph: the ONNX model takes normalised fbank features
(1, frames, 128), any number of frames, and returns probabilities (1, labels), as the
fine-tuned BEATs does (predictor per token, mean over tokens, sigmoid).
onnxruntime must agree with PyTorch within 1e-4 or nothing is written.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
import speechbrain.lobes.models.beats as sb_beats

import audioset
import export_common as ec

BEATS_MEAN, BEATS_STD = 15.41663, 6.55582
# The configuration of the official fine-tuned AS2M checkpoints.
FINETUNED_CFG = dict(encoder_layers=12, encoder_embed_dim=768, encoder_ffn_embed_dim=3072,
                     encoder_attention_heads=12, embed_dim=512, input_patch_size=16,
                     relative_position_embedding=True, num_buckets=320, max_distance=800,
                     gru_rel_pos=True, deep_norm=True, layer_norm_first=False,
                     conv_pos=128, conv_pos_groups=16, finetuned_model=True,
                     predictor_class=527, dropout=0.0, attention_dropout=0.0)


def make_beats(cfg):
    """speechbrain builds its config from a checkpoint only; hand it ours instead."""
    orig = sb_beats.BEATsConfig
    sb_beats.BEATsConfig = lambda c=None: orig({**cfg, **(c or {})})
    try:
        return sb_beats.BEATs(ckp_path=None, freeze=True)
    finally:
        sb_beats.BEATsConfig = orig


def load_checkpoint(path):
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    cfg = {**ckpt["cfg"], "dropout": 0.0, "attention_dropout": 0.0}
    model = make_beats(cfg)
    state = {}
    for k, v in ckpt["model"].items():  # unilm uses old-style weight_norm names
        k = k.replace("pos_conv.0.weight_g", "pos_conv.0.parametrizations.weight.original0")
        k = k.replace("pos_conv.0.weight_v", "pos_conv.0.parametrizations.weight.original1")
        state[k] = v
    model.load_state_dict(state)
    # The official checkpoints' label_dict maps each output index to an AudioSet id; the
    # names come from AudioSet's table (tools/data/).
    labels, from_table = audioset.from_label_dict(ckpt.get("label_dict"), cfg["predictor_class"])
    return model, labels, from_table


class FromFbank(torch.nn.Module):
    """BEATs.extract_features from the normalised fbank on, with no padding mask."""

    def __init__(self, beats):
        super().__init__()
        self.b = beats

    def forward(self, features):
        b = self.b
        x = b.patch_embedding(features.unsqueeze(1))
        x = x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2)
        x = b.layer_norm(x)
        if b.post_extract_proj is not None:
            x = b.post_extract_proj(x)
        x, _ = b.encoder(x, padding_mask=None)
        # the embedding: the encoder's output averaged over time, what the predictor sees
        return torch.sigmoid(b.predictor(x).mean(dim=1)), x.mean(dim=1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path)
    src.add_argument("--random", action="store_true")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--name")
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--patch-dim", type=int, default=512)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--mlp", type=int, default=3072)
    p.add_argument("--conv-pos", type=int, default=128)
    p.add_argument("--conv-groups", type=int, default=16)
    p.add_argument("--labels", type=int, default=527)
    p.add_argument("--frames", type=int, default=998, help="window length (10 s = 998 frames)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--int8", action="store_true")
    p.add_argument("--int8-keep-fp32", nargs="*", metavar="NAME", default=list(ec.KEEP_FP32),
                   help="with --int8: leave the products whose node names contain one of these in "
                        "fp32 (default: %(default)s; give the option alone to quantise them all)")
    p.add_argument("--fixture", action="store_true")
    args = p.parse_args()

    torch.manual_seed(args.seed)
    if args.checkpoint:
        beats, labels, from_table = load_checkpoint(args.checkpoint)
        desc = f"BEATs from {args.checkpoint.name}"
    else:
        cfg = {**FINETUNED_CFG, "encoder_embed_dim": args.dim, "embed_dim": args.patch_dim,
               "encoder_layers": args.layers, "encoder_attention_heads": args.heads,
               "encoder_ffn_embed_dim": args.mlp, "conv_pos": args.conv_pos,
               "conv_pos_groups": args.conv_groups, "predictor_class": args.labels}
        beats = make_beats(cfg)
        labels, from_table = ec.generic_labels(args.labels), False
        desc = f"random-weight BEATs, dim {args.dim}, {args.layers} layers, seed {args.seed}"
    beats.eval()
    conv = beats.encoder.pos_conv[0]
    torch.nn.utils.parametrize.remove_parametrizations(conv, "weight")
    model = FromFbank(beats).eval()

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    inputs = [rng.standard_normal((1, n, 128)).astype(np.float32) * 0.5
              for n in (args.frames, args.frames // 2 + 7)]
    ec.export_onnx(model, torch.from_numpy(inputs[0]), out / "model.onnx", dynamic_frames=True)
    outs = ec.check_parity(model, out / "model.onnx", inputs)
    name = args.name or out.name
    ec.write_model_folders(out, name=name, description=desc, labels=labels, inputs=inputs,
                           outputs=outs, int8=args.int8, fixture=args.fixture,
                           int8_keep_fp32=tuple(args.int8_keep_fp32),
                           fbank={"window": "povey", "waveform_scale": 32768.0},
                           normalize={"mean": BEATS_MEAN, "std": BEATS_STD},
                           notice=audioset.ATTRIBUTION if from_table else None,
                           window_frames=args.frames, output="none", dynamic_frames=True,
                           embedding_size=beats.predictor.in_features,
                           frame_multiple=16)

if __name__ == "__main__":
    main()

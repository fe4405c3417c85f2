"""Small widths for spandrel's network classes (infer.training.zoo.spandrel_walk), by class
name: few blocks and channels, so that each exports in seconds and runs on a CPU Vulkan
device. What must match the real thing is the op pattern the exporter emits, not accuracy.
A class not named here is built with its own defaults (already small, or nothing to shrink).
"""

from __future__ import annotations

from typing import Any

TORCHVISION_STAND_IN = (
    "torchvision is a stand-in here (PyPI's torchvision for torch 2.13.0 links CUDA torch)"
)

# classes built for one input size (their small config's), traced and tested at it
FIXED_SIZE = {"GFPGANv1Clean": 64, "RestoreFormer": 32, "Uformer": 32}

_WIN = {"window_size": 8, "upscale": 2}

SMALL: dict[str, dict[str, Any]] = {
    "SRVGGNetCompact": {"num_feat": 16, "num_conv": 4},
    "Generator": {"num_channels": 16, "num_blocks": 2},  # SwiftSRGAN
    "HAT": {"embed_dim": 16, "depths": (2,), "num_heads": (2,), "compress_ratio": 2,
            "squeeze_factor": 4, "upsampler": "pixelshuffle", **_WIN},
    "GRL": {"embed_dim": 16, "depths": [1], "num_heads_window": [2], "num_heads_stripe": [2],
            "stripe_size": [8, 8], "mlp_ratio": 2, "upsampler": "pixelshuffledirect", **_WIN},
    "Swin2SR": {"embed_dim": 16, "depths": [2], "num_heads": [2],
                "upsampler": "pixelshuffledirect", **_WIN},
    "SwinIR": {"embed_dim": 16, "depths": [2], "num_heads": [2],
               "upsampler": "pixelshuffledirect", **_WIN},
    "SRFormer": {"embed_dim": 16, "depths": (2,), "num_heads": (2,),
                 "upsampler": "pixelshuffledirect", **_WIN},
    "DRCT": {"embed_dim": 16, "depths": (2,), "num_heads": (2,), "gc": 8,
             "upsampler": "pixelshuffle", **_WIN},
    "ATD": {"embed_dim": 16, "depths": (2,), "num_heads": (2,), "category_size": 32,
            "num_tokens": 16, "upsampler": "pixelshuffledirect", **_WIN},
    "RGT": {"embed_dim": 16, "depth": [2], "num_heads": [2], "split_size": [8, 8], "upscale": 2},
    "DAT": {"embed_dim": 16, "depth": [2], "num_heads": [2], "expansion_factor": 2.0,
            "upscale": 2},
    "CRAFT": {"embed_dim": 16, "depths": [2], "num_heads": [2], "upscale": 2},
    "DITN_Real": {"dim": 16, "ITL_blocks": 1, "SAL_blocks": 1, "upscale": 2},
    "MMRRDBNet_test": {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 16, "num_block": 1,
                       "num_grow_ch": 8},
    "SPAN": {"num_in_ch": 3, "num_out_ch": 3, "feature_channels": 16},
    "SAFMN": {"dim": 16, "n_blocks": 2},
    "SAFMN_BCIE": {"dim": 16, "n_blocks": 2, "num_layers": 2},
    "DCTLSA": {"nf": 16, "num_modules": 1, "num_head": 2},
    "FFTformer": {"dim": 8, "num_blocks": [1, 1, 1], "num_refinement_blocks": 1},
    "DRUNet": {"nc": [8, 16, 32, 64], "nb": 1},
    "DnCNN": {"nc": 16, "nb": 4},
    "IPT": {"n_feats": 16, "num_heads": 2, "num_layers": 1},
    "RRDBNet": {"num_filters": 16, "num_blocks": 2},
    "PLKSR": {"dim": 16, "n_blocks": 2, "kernel_size": 9},
    "RealPLKSR": {"dim": 16, "n_blocks": 2, "kernel_size": 9},
    "RetinexFormer": {"n_feat": 8, "stage": 1, "num_blocks": [1, 1, 1]},
    "CIDNet": {"channels": [8, 8, 16, 32], "heads": [1, 1, 2, 4]},
    "SeemoRe": {"embedding_dim": 16, "num_layers": 1, "num_experts": 3},
    "MoSR": {"n_block": 2, "dim": 16},
    "MoESR": {"dim": 16, "n_blocks": 1, "n_block": 1, "upsample_dim": 16},
    "RCAN": {"n_resgroups": 1, "n_resblocks": 2, "n_feats": 16, "reduction": 4},
    "FDAT": {"embed_dim": 16, "num_groups": 1, "depth_per_group": 1, "num_heads": 2,
             "mid_dim": 16},
    "UnetUpsampler": {"dim": 16, "image_size": 64, "input_image_size": 16},
    "GFPGANv1Clean": {"out_size": 64, "num_style_feat": 64, "channel_multiplier": 1},
    "RestoreFormer": {"n_embed": 64, "embed_dim": 16, "ch": 32, "ch_mult": (1, 2),
                      "num_res_blocks": 1, "resolution": 32, "z_channels": 16, "head_size": 2},
    "SCUNet": {"config": [1] * 7, "dim": 16},
    "FBCNN": {"nc": [8, 16, 32, 64], "nb": 1},
    "Uformer": {"embed_dim": 8, "depths": [1] * 9, "num_heads": [1] * 9, "img_size": 32,
                "win_size": 8},
    "KBNet_l": {"dim": 24, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1},
    "KBNet_s": {"width": 8, "middle_blk_num": 1, "enc_blk_nums": [1, 1, 1, 1],
                "dec_blk_nums": [1, 1, 1, 1]},
    "DDColor": {"encoder_name": "convnext-t", "nf": 64, "num_queries": 16, "dec_layers": 1,
                "input_size": (64, 64)},
    "AdaCodeSRNet_Contrast": {"codebook_params": [[32, 64, 16]], "gt_resolution": 64},
    "FeMaSRNet": {"codebook_params": [[32, 64, 16]], "gt_resolution": 64},
    "M3SNet": {"width": 8, "enc_blk_nums": [1, 1, 1, 1], "dec_blk_nums": [1, 1, 1, 1]},
    "Restormer": {"dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1,
                  "heads": [1, 1, 1, 1]},
    "MPRNet": {"n_feat": 16, "scale_unetfeats": 8, "scale_orsnetfeats": 8, "num_cab": 1},
    "MIRNet_v2": {"n_feat": 16, "n_MRB": 1},
    "MixDehazeNet": {"embed_dims": [8, 16, 32, 16, 8], "depths": [1, 1, 1, 1, 1]},
    "NAFNet": {"width": 16, "middle_blk_num": 1, "enc_blk_nums": [1, 1], "dec_blk_nums": [1, 1]},
    "OmniSR": {"num_feat": 16},
}  # fmt: skip

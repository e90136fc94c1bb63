"""The paper's ImageNet numbers (Wu & He, ECCV 2018; ResNet-50, 8 GPUs):
validation error in %, the project's own copy for reports and plots."""

__all__ = ["TABLE_1", "TABLE_2", "TABLE_3_GROUPS", "TABLE_3_GROUP_SIZES", "LABELS"]

# Table 1: 32 images per GPU.
TABLE_1 = {"bn": 23.6, "ln": 25.3, "in": 28.4, "gn": 24.1}

# Table 2 (and Figure 1): images per GPU -> error.
TABLE_2 = {
    "bn": {32: 23.6, 16: 23.7, 8: 24.8, 4: 27.3, 2: 34.7},
    "gn": {32: 24.1, 16: 24.2, 8: 24.0, 4: 24.2, 2: 24.1},
    # Section 4.1: Batch Renorm (r_max = 1.5, d_max = 0.5) at 4 images per GPU.
    "brn": {4: 26.3},
}

# Table 3: groups G -> error (G = 1 is LN), and channels per group -> error
# (1 channel per group is IN). The paper's group-size row gives 2 channels
# per group and IN; the other cells of that row are not in PAPER.md.
TABLE_3_GROUPS = {64: 24.6, 32: 24.1, 16: 24.6, 8: 24.4, 4: 24.6, 2: 24.7, 1: 25.3}
TABLE_3_GROUP_SIZES = {2: 25.6, 1: 28.4}

LABELS = {
    "bn": "BN",
    "gn": "GN",
    "ln": "LN",
    "in": "IN",
    "brn": "BRN",
    "syncbn": "SyncBN",
    "frozen_bn": "BN*",
    "none": "none",
    "gn+ws": "GN+WS",
}

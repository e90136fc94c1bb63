"""Writes the independent references of `test_pretrained.py`, in a process of
its own (torchvision, which timm imports, crashes a process that loaded
TensorFlow first):

    python tests/timm_reference.py OUT_DIR

From timm's own `resnet50_gn` (random weights, every GN scale and shift drawn
too, eval mode) it writes, in OUT_DIR:

- `resnet50_gn.pth` and `resnet50_gn.safetensors`: its state dict, as timm
  publishes `resnet50_gn.a1h_in1k`;
- `R-50-GN.pkl`: the same tensors under Detectron's Caffe2 names, a dict of
  NumPy arrays under "blobs" (pickle protocol 2, as Detectron wrote them),
  with conv1 folded so that Detectron's input (BGR minus pixel means) gives
  what the timm model computes on `flip(x) / (255 * std)`;
- `R-50-GN-WS.pth.tar`: a GN+WS ResNet-50 (timm's, every convolution
  replaced by the WS authors' formula: (w - mean) / (unbiased std + 1e-5))
  as the WS authors published theirs: torchvision names with a "module."
  prefix under "state_dict";
- `resnet18_gn.pth`, `resnet34_gn.pth`: torchvision's ResNet-18 and -34
  (basic blocks) with GN of 32 groups in place of BN, random weights;
- `BiT-M-R50x1.npz`: timm's resnetv2_50x1_bit (random weights) in the
  layout the BiT authors publish, read back by timm's own loader;
- `reference.npz`: uint8 RGB images at 224 x 224 and 193 x 257, the inputs
  each model saw and its logits; and res2-res5 of the GN model on a 128 x 128
  image (NCHW), for the detector.
"""

import os
import pickle
import sys

import numpy as np
import safetensors.torch
import timm
import torch
import torch.nn.functional as F

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
PIXEL_MEANS_BGR = np.array([102.9801, 115.9465, 122.7717], np.float32)


class AuthorsWSConv2d(torch.nn.Conv2d):
    """The WS authors' convolution: (w - mean) / (unbiased std + 1e-5)."""

    def forward(self, x):
        w = self.weight
        w = w - w.mean(dim=(1, 2, 3), keepdim=True)
        std = w.reshape(w.shape[0], -1).std(dim=1).reshape(-1, 1, 1, 1) + 1e-5
        return F.conv2d(x, w / std, self.bias, self.stride, self.padding, self.dilation, self.groups)


def with_ws(module):
    for name, child in module.named_children():
        if type(child) is torch.nn.Conv2d:
            ws = AuthorsWSConv2d(
                child.in_channels,
                child.out_channels,
                child.kernel_size,
                child.stride,
                child.padding,
                child.dilation,
                child.groups,
                bias=child.bias is not None,
            )
            ws.load_state_dict(child.state_dict())
            setattr(module, name, ws)
        else:
            with_ws(child)
    return module


def randomized(model, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "fc" not in name:  # GN scale and shift
                scale = name.endswith("weight")
                p.copy_(torch.rand(p.shape, generator=generator) + 0.5 if scale else 0.2 * torch.randn(p.shape))
    return model.eval()


def detectron_names(state):
    """timm/torchvision names -> Detectron's, in Caffe2's [out, in, kh, kw]."""
    out = {"conv1_w": state["conv1.weight"], "conv1_gn_s": state["bn1.weight"], "conv1_gn_b": state["bn1.bias"]}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0].startswith("layer"):
            prefix = f"res{int(parts[0][5:]) + 1}_{parts[1]}_branch"
            if parts[2].startswith("conv"):
                out[f"{prefix}2{'abc'[int(parts[2][4:]) - 1]}_w"] = value
            elif parts[2].startswith("bn"):
                out[f"{prefix}2{'abc'[int(parts[2][2:]) - 1]}_gn_{'s' if parts[3] == 'weight' else 'b'}"] = value
            elif parts[2] == "downsample":
                out[prefix + ("1_w" if parts[3] == "0" else f"1_gn_{'s' if parts[4] == 'weight' else 'b'}")] = value
    out["pred_w"], out["pred_b"] = state["fc.weight"], state["fc.bias"]
    out["conv1_w_momentum"] = np.zeros_like(out["conv1_w"])  # Detectron's files hold these; they are skipped
    return out


def main(folder):
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(0)
    gn = randomized(timm.create_model("resnet50_gn", pretrained=False), 1)
    state = {k: v.contiguous() for k, v in gn.state_dict().items()}
    torch.save(state, os.path.join(folder, "resnet50_gn.pth"))
    safetensors.torch.save_file(state, os.path.join(folder, "resnet50_gn.safetensors"))
    numpy_state = {k: v.numpy() for k, v in state.items()}

    rng = np.random.default_rng(0)
    images = {"224": rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)}
    images["odd"] = rng.integers(0, 256, (2, 193, 257, 3), dtype=np.uint8)
    ref = {}

    def run(model, x_nhwc):
        with torch.no_grad():
            return model(torch.tensor(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))).numpy()

    for size, image in images.items():
        timm_input = (image / np.float32(255) - MEAN) / STD
        ref[f"images_{size}"] = image
        ref[f"timm_input_{size}"] = timm_input.astype(np.float32)
        ref[f"timm_logits_{size}"] = run(gn, timm_input.astype(np.float32))
        # Detectron's input, and the one the timm model sees for the folded conv1.
        detectron_input = image[..., ::-1].astype(np.float32) - PIXEL_MEANS_BGR
        ref[f"detectron_input_{size}"] = detectron_input
        ref[f"detectron_logits_{size}"] = run(gn, (detectron_input[..., ::-1] / (255 * STD)).astype(np.float32))

    blobs = detectron_names(numpy_state)
    blobs["conv1_w"] = (numpy_state["conv1.weight"] / (255 * STD)[None, :, None, None])[:, ::-1].copy()
    with open(os.path.join(folder, "R-50-GN.pkl"), "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)

    ws = randomized(with_ws(timm.create_model("resnet50_gn", pretrained=False)), 2)
    torch.save(
        {"epoch": 100, "state_dict": {"module." + k: v for k, v in ws.state_dict().items()}},
        os.path.join(folder, "R-50-GN-WS.pth.tar"),
    )
    for size in images:
        ref[f"ws_logits_{size}"] = run(ws, ref[f"timm_input_{size}"])

    small = ((rng.integers(0, 256, (1, 128, 128, 3)) / 255.0 - MEAN) / STD).astype(np.float32)
    ref["features_input"] = small
    with torch.no_grad():
        x = torch.tensor(np.ascontiguousarray(small.transpose(0, 3, 1, 2)))
        x = gn.maxpool(gn.act1(gn.bn1(gn.conv1(x))))
        for level, layer in zip("2345", (gn.layer1, gn.layer2, gn.layer3, gn.layer4)):
            x = layer(x)
            ref[f"level{level}"] = x.numpy()
    # torchvision's ResNet-18 and -34 with GN (32 groups) in place of BN: basic blocks.
    import torchvision

    for depth in (18, 34):
        builder = getattr(torchvision.models, f"resnet{depth}")
        basic = randomized(builder(norm_layer=lambda channels: torch.nn.GroupNorm(32, channels)), depth)
        torch.save(basic.state_dict(), os.path.join(folder, f"resnet{depth}_gn.pth"))
        for size in images:
            ref[f"resnet{depth}_logits_{size}"] = run(basic, ref[f"timm_input_{size}"])
    bit_reference(folder, images, ref)
    np.savez(os.path.join(folder, "reference.npz"), **ref)


def bit_npz(model):
    """timm's resnetv2_*_bit state as the BiT authors publish it: their names,
    kernels in TensorFlow's [kh, kw, in, out]."""
    state = {k: v.numpy() for k, v in model.state_dict().items()}

    def hwio(w):
        return np.ascontiguousarray(w.transpose(2, 3, 1, 0))

    out = {
        "resnet/root_block/standardized_conv2d/kernel": hwio(state["stem.conv.weight"]),
        "resnet/group_norm/gamma": state["norm.weight"],
        "resnet/group_norm/beta": state["norm.bias"],
        "resnet/head/conv2d/kernel": hwio(state["head.fc.weight"]),
        "resnet/head/conv2d/bias": state["head.fc.bias"],
    }
    for key, value in state.items():
        parts = key.split(".")  # stages.0.blocks.1.conv2.weight
        if parts[0] != "stages":
            continue
        base = f"resnet/block{int(parts[1]) + 1}/unit{int(parts[3]) + 1:02d}/"
        if parts[4] == "downsample":
            out[base + "a/proj/standardized_conv2d/kernel"] = hwio(value)
        elif parts[4].startswith("conv"):
            out[base + "abc"[int(parts[4][4:]) - 1] + "/standardized_conv2d/kernel"] = hwio(value)
        elif parts[4].startswith("norm"):
            kind = "gamma" if parts[5] == "weight" else "beta"
            out[base + "abc"[int(parts[4][4:]) - 1] + f"/group_norm/{kind}"] = value
    return out


def bit_reference(folder, images, ref):
    """BiT-M-R50x1.npz (timm's resnetv2_50x1_bit with random weights, every
    kernel and GN parameter drawn: timm starts each unit's last kernel at 0),
    checked by loading it back with timm's own `_load_weights`; its logits
    and pre-logits features on BiT's input, RGB in [-1, 1]."""
    from timm.models import resnetv2

    generator = torch.Generator().manual_seed(7)
    bit = timm.create_model("resnetv2_50x1_bit", pretrained=False)
    with torch.no_grad():
        for name, p in bit.named_parameters():
            if p.dim() == 4:
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
            elif name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=generator) + 0.5)
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    bit.eval()
    path = os.path.join(folder, "BiT-M-R50x1.npz")
    np.savez(path, **bit_npz(bit))
    again = timm.create_model("resnetv2_50x1_bit", pretrained=False)
    resnetv2._load_weights(again, path)  # the layout is the published one: timm's reader takes it
    for key, value in bit.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    for size, image in images.items():
        x = (image / np.float32(127.5) - 1).astype(np.float32)
        with torch.no_grad():
            t = torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
            ref[f"bit_logits_{size}"] = again.eval()(t).numpy()
            ref[f"bit_pre_logits_{size}"] = again.forward_head(again.forward_features(t), pre_logits=True).numpy()


if __name__ == "__main__":
    main(sys.argv[1])

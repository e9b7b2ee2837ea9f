"""The local image store: only complete, verified images are found and used."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from image import store

TAGS = {
    store.VERSION: "0.1.0",
    store.COMMIT: "97711e9",
    store.BASE_IMAGE: "debian-bookworm-d5a23b887a6d",
    store.BUILT_AT: "2026-12-03T16:43:54Z",
    store.INPUTS: "837aa3f7065be1aa",
    store.VERIFIED: "true",
}


def kept(images: store.ImageStore, **tags: str) -> store.LocalImage:
    image_id = images.new_id()
    images.partial(image_id).joinpath("rootfs").mkdir(parents=True)
    return images.keep(image_id, {**TAGS, **tags})


def test_new_ids_look_like_ami_ids(tmp_path: Path) -> None:
    image_id = store.ImageStore(tmp_path).new_id()
    assert image_id.startswith("img-")
    assert len(image_id) == len("ami-0123456789abcdef0")


def test_a_kept_image_is_found_verified_with_its_rootfs(tmp_path: Path) -> None:
    images = store.ImageStore(tmp_path)
    image = kept(images)

    found = images.find_verified(image.image_id)

    assert found.rootfs == tmp_path / "images" / image.image_id / "rootfs"
    assert found.tags == TAGS
    assert found.version == "0.1.0"


def test_a_partial_image_is_neither_listed_nor_found(tmp_path: Path) -> None:
    images = store.ImageStore(tmp_path)
    image_id = images.new_id()
    images.partial(image_id).joinpath("rootfs").mkdir(parents=True)

    assert images.images() == []
    with pytest.raises(store.ImageNotFoundError, match=f"no local image {image_id}"):
        images.find(image_id)


def test_an_unverified_image_is_refused_for_use(tmp_path: Path) -> None:
    images = store.ImageStore(tmp_path)
    image = kept(images, **{store.VERIFIED: "false"})

    assert not images.find(image.image_id).is_verified
    with pytest.raises(store.ImageNotVerifiedError):
        images.find_verified(image.image_id)
    assert images.find_by_inputs(TAGS[store.INPUTS]) is None


def test_images_are_listed_newest_first(tmp_path: Path) -> None:
    images = store.ImageStore(tmp_path)
    older = kept(images, **{store.BUILT_AT: "2026-12-01T00:00:00Z"})
    newer = kept(images, **{store.BUILT_AT: "2026-12-02T00:00:00Z"})

    assert [image.image_id for image in images.images()] == [
        newer.image_id,
        older.image_id,
    ]
    assert images.find_by_inputs(TAGS[store.INPUTS]) == newer


def test_discard_removes_every_trace(tmp_path: Path) -> None:
    images = store.ImageStore(tmp_path)
    image = kept(images)

    images.discard(image.image_id)

    assert list(images.root.iterdir()) == []


def test_an_id_outside_the_store_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(store.ImageNotFoundError):
        store.ImageStore(tmp_path).find("ami-0123456789abcdef0")


@pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")
def test_discard_unmounts_before_deleting_and_spares_what_was_mounted(
    tmp_path: Path,
) -> None:
    # An interrupted build can leave the host's /dev bind-mounted in rootfs/.
    host_dir = tmp_path / "host-dev"
    host_dir.mkdir()
    (host_dir / "null").write_text("the host's own")
    images = store.ImageStore(tmp_path / "state")
    image_id = images.new_id()
    mount_point = images.partial(image_id) / "rootfs" / "dev"
    mount_point.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(host_dir), str(mount_point)], check=True)

    images.discard(image_id)

    assert (host_dir / "null").read_text() == "the host's own"
    assert not images.partial(image_id).exists()


def test_partials_of_vanished_bakes_are_removed_and_running_ones_kept(
    tmp_path: Path,
) -> None:
    images = store.ImageStore(tmp_path)
    running = images.new_id()
    images.start_partial(running)
    vanished = images.new_id()
    images.start_partial(vanished)
    gone = subprocess.run(
        ["sh", "-c", "echo $$"], capture_output=True, text=True, check=True
    )
    (images.partial(vanished) / store.OWNER).write_text(gone.stdout)

    removed = images.remove_abandoned()

    assert removed == [f"{vanished}.partial"]
    assert images.partial(running).is_dir()
    assert not images.partial(vanished).exists()


def test_a_kept_image_carries_no_owner(tmp_path: Path) -> None:
    images = store.ImageStore(tmp_path)
    image_id = images.new_id()
    images.start_partial(image_id).joinpath("rootfs").mkdir()

    image = images.keep(image_id, TAGS)

    assert sorted(path.name for path in image.path.iterdir()) == [
        "metadata.json",
        "rootfs",
    ]

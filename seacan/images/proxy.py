"""RemoteImages: the image store over gRPC (containerd's images proxy).

Every call carries the current request scope and turns RPC failures back
into error kinds, so a caller cannot tell it from the local store;
:mod:`seacan.images.testsuite` checks exactly that. The conversions are
shared with the servicer.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import grpc.aio
from google.protobuf import field_mask_pb2

from seacan import grpcutil
from seacan.api.services.images.v1 import images_pb2 as pb
from seacan.api.services.images.v1 import images_pb2_grpc
from seacan.api.types import descriptor_pb2
from seacan.images import Image
from seacan.oci import Descriptor

# -- conversions -----------------------------------------------------------------


def descriptor_to_pb(d: Descriptor) -> Any:
    return descriptor_pb2.Descriptor(
        media_type=d.media_type, digest=d.digest, size=d.size, annotations=dict(d.annotations)
    )


def descriptor_from_pb(msg: Any) -> Descriptor:
    return Descriptor(
        media_type=msg.media_type,
        digest=msg.digest,
        size=msg.size,
        annotations=dict(msg.annotations),
    )


def image_to_pb(image: Image) -> Any:
    return pb.Image(
        name=image.name,
        labels=dict(image.labels),
        target=descriptor_to_pb(image.target),
        created_at=grpcutil.timestamp(image.created_at),
        updated_at=grpcutil.timestamp(image.updated_at),
    )


def image_from_pb(msg: Any) -> Image:
    return Image(
        name=msg.name,
        labels=dict(msg.labels),
        target=descriptor_from_pb(msg.target),
        created_at=grpcutil.from_timestamp(msg.created_at),
        updated_at=grpcutil.from_timestamp(msg.updated_at),
    )


class RemoteImages:
    """:class:`~seacan.images.ImageStore` over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = images_pb2_grpc.ImagesStub(channel)

    async def get(self, name: str) -> Image:
        async with grpcutil.native_errors():
            resp = await self._stub.Get(
                pb.GetImageRequest(name=name), metadata=grpcutil.scope_metadata()
            )
        return image_from_pb(resp.image)

    async def list(self, filters: Sequence[str] = ()) -> builtins.list[Image]:
        async with grpcutil.native_errors():
            resp = await self._stub.List(
                pb.ListImagesRequest(filters=list(filters)), metadata=grpcutil.scope_metadata()
            )
        return [image_from_pb(m) for m in resp.images]

    async def create(self, image: Image) -> Image:
        async with grpcutil.native_errors():
            resp = await self._stub.Create(
                pb.CreateImageRequest(image=image_to_pb(image)),
                metadata=grpcutil.scope_metadata(),
            )
        return image_from_pb(resp.image)

    async def update(self, image: Image, fieldpaths: Sequence[str] = ()) -> Image:
        req = pb.UpdateImageRequest(image=image_to_pb(image))
        if fieldpaths:
            req.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=list(fieldpaths)))
        async with grpcutil.native_errors():
            resp = await self._stub.Update(req, metadata=grpcutil.scope_metadata())
        return image_from_pb(resp.image)

    async def delete(self, name: str, sync: bool = False) -> None:
        async with grpcutil.native_errors():
            await self._stub.Delete(
                pb.DeleteImageRequest(name=name, sync=sync), metadata=grpcutil.scope_metadata()
            )

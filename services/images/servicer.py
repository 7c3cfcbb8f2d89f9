"""containerd.services.images.v1.Images: protobuf <-> the image store.

Translation only; the interceptor in :mod:`seacan.grpcutil` sets the request
scope and turns error kinds into status codes.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2

from seacan.api.services.images.v1 import images_pb2 as pb
from seacan.api.services.images.v1 import images_pb2_grpc
from seacan.images import ImageStore
from seacan.images.proxy import image_from_pb, image_to_pb

SERVICE = "containerd.services.images.v1.Images"

Ctx = Any  # grpc.aio.ServicerContext; Any keeps mypy happy with or without grpc-stubs


class ImagesServicer:
    def __init__(self, store: ImageStore) -> None:
        self._store = store

    async def Get(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        return pb.GetImageResponse(image=image_to_pb(await self._store.get(request.name)))

    async def List(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        images = await self._store.list(list(request.filters))
        return pb.ListImagesResponse(images=[image_to_pb(i) for i in images])

    async def Create(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        image = await self._store.create(image_from_pb(request.image))
        return pb.CreateImageResponse(image=image_to_pb(image))

    async def Update(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        paths = list(request.update_mask.paths) if request.HasField("update_mask") else []
        image = await self._store.update(image_from_pb(request.image), paths)
        return pb.UpdateImageResponse(image=image_to_pb(image))

    async def Delete(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._store.delete(request.name, sync=request.sync)
        return empty_pb2.Empty()


def register(server: grpc.aio.Server, store: ImageStore) -> None:
    images_pb2_grpc.add_ImagesServicer_to_server(ImagesServicer(store), server)

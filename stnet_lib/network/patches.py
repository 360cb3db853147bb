"""Stage 3b — ST-Net patches, cut on the fly from volumes held in memory.

A subject's normalised DSC series (x, y, z, t) is padded once in-plane by ``half = size // 2``
voxels and flattened to rows of ``t`` samples; a batch of patches is then one
``index_select`` of ``n·size²`` rows, so no 49-fold copy of the cohort is ever stored.
Several subjects can share one flat table (:class:`PatchTable`), which turns the gather of a
batch drawn from many subjects into a single indexing operation (on the GPU as well).

Padding
-------
The border is padded with **zeros** ("constant" padding), not by reflection or edge
replication: after normalisation (see ``inputs.py``) every voxel outside the brain mask is 0,
so a voxel at the image edge sees exactly what a voxel at the brain edge sees, and the
padding value agrees with the zero padding that the first convolution applies at the patch
border. Reflection would invent tissue that is not there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["PatchTable", "extract_patches"]


class PatchTable:
    """Zero-padded, flattened volumes of one or more subjects, ready for batched gathers.

    Parameters
    ----------
    volumes : sequence of Tensor, each shape (x, y, z, t)
        Normalised series (0 outside the brain); all with the same t, any x, y, z.
    size : int
        Patch side (odd).
    """

    def __init__(self, volumes: Sequence[torch.Tensor], size: int = 7) -> None:
        if size % 2 != 1:
            raise ValueError(f"patch size must be odd; got {size}")
        self.size, self.half = size, size // 2
        n_frames = {int(v.shape[-1]) for v in volumes}
        if len(n_frames) != 1:
            raise ValueError(f"all volumes must have the same number of frames; got {sorted(n_frames)}")
        self.n_frames = n_frames.pop()
        rows, offsets, shapes = [], [0], []
        for vol in volumes:
            h = self.half
            padded = torch.nn.functional.pad(vol.float().permute(2, 3, 0, 1), (h, h, h, h))
            padded = padded.permute(2, 3, 0, 1).contiguous()  # (x+2h, y+2h, z, t)
            shapes.append(tuple(padded.shape[:3]))
            rows.append(padded.reshape(-1, self.n_frames))
            offsets.append(offsets[-1] + rows[-1].shape[0])
        self.rows = torch.cat(rows)  # (Σ voxels of the padded volumes, t)
        self.offsets = torch.tensor(offsets[:-1], dtype=torch.long)
        self.strides = torch.tensor([(s[1] * s[2], s[2], 1) for s in shapes], dtype=torch.long)
        d = torch.arange(size, dtype=torch.long)
        self._dx, self._dy = d.view(1, size, 1), d.view(1, 1, size)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> PatchTable:
        """Move the table to ``device`` (in place; returns self); ``dtype``: store the series in it.

        ``torch.bfloat16`` where the network runs under bf16 autocast: its first convolution rounds
        its input to bf16 anyway, so the outputs are bit-identical, and a batch is then one gather
        of half the bytes instead of an fp32 gather and autocast's bf16 copy of it (the table, the
        whole cohort when training on a GPU, also takes half the memory).
        """
        self.rows = self.rows.to(device, dtype or self.rows.dtype)  # one conversion, on the way
        for name in ("offsets", "strides", "_dx", "_dy"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def gather(self, subject: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Patches centred on voxels.

        Parameters
        ----------
        subject : Tensor of long, shape (n,)
            Which volume each voxel belongs to.
        index : Tensor of long, shape (n, 3)
            (x, y, z) of the centre voxels in the *unpadded* volume.

        Returns
        -------
        Tensor, shape (n, 1, size, size, t)
        """
        s = self.strides[subject]  # (n, 3)
        # the padded patch spans x .. x+size-1 (the centre x+half is the voxel itself)
        lin = (
            self.offsets[subject].view(-1, 1, 1)
            + (index[:, 0].view(-1, 1, 1) + self._dx) * s[:, 0].view(-1, 1, 1)
            + (index[:, 1].view(-1, 1, 1) + self._dy) * s[:, 1].view(-1, 1, 1)
            + index[:, 2].view(-1, 1, 1)
        )  # (n, size, size)
        patches = self.rows.index_select(0, lin.reshape(-1))  # (n·size², t)
        return patches.view(-1, 1, self.size, self.size, self.n_frames)


def extract_patches(volume: torch.Tensor, index: torch.Tensor, size: int = 7) -> torch.Tensor:
    """Patches of one volume (convenience wrapper of :class:`PatchTable`).

    Parameters
    ----------
    volume : Tensor, shape (x, y, z, t)
    index : Tensor of long, shape (n, 3)
    size : int

    Returns
    -------
    Tensor, shape (n, 1, size, size, t)
    """
    table = PatchTable([volume], size)
    return table.gather(torch.zeros(len(index), dtype=torch.long), index)


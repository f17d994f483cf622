"""Applying a GOFT / qGOFT operator M to row vectors: y = x @ M.

M = P_1 P_2 ... P_L, P_r one tree level (see `layout`). Every pair carries a 2 x 2
block [[m_ii, m_ij], [m_ji, m_jj]]: for GOFT the Givens block [[c, -s], [s, c]],
for qGOFT a free matrix whose columns are alpha and beta.

Why not a dense d x d matrix: multiplying by it costs as much as the adapted
layer itself, and building it every step is what makes the authors' code 5x
slower than LoRA. Here levels are fused into small block-diagonal stages (see
`layout.stage_plans`), so a forward is a few batched 16 x 16 products per stage,
O(d log d) work per token, and autograd flows through plain tensor ops.
"""
from __future__ import annotations

import torch
from torch import nn

from qgoft_core.ops.layout import check_dim, stage_plans

IDENTITY_BLOCK = (1.0, 0.0, 0.0, 1.0)


def givens_table(theta: torch.Tensor) -> torch.Tensor:
    """(d-1,) angles -> (d, 4) flattened 2 x 2 blocks, last row the identity."""
    c, s = torch.cos(theta), torch.sin(theta)
    blocks = torch.stack((c, -s, s, c), dim=-1)
    return _append_identity(blocks)


def quasi_table(blocks: torch.Tensor) -> torch.Tensor:
    """(d-1, 2, 2) free blocks -> (d, 4) flattened blocks, last row the identity."""
    return _append_identity(blocks.reshape(-1, 4))


def _append_identity(flat_blocks: torch.Tensor) -> torch.Tensor:
    eye = flat_blocks.new_tensor(IDENTITY_BLOCK).unsqueeze(0)
    return torch.cat((flat_blocks, eye), dim=0)


def _mix(grouped: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    """(N, G, b) x (G, b, c) -> (N, G, c): each group times its own block.

    A bmm over the group axis on a transposed view: on CPU its backward is ~5x
    faster than einsum's for these skinny shapes (N ~ 512 tokens, b = 8).
    """
    return torch.bmm(grouped.transpose(0, 1), blocks).transpose(0, 1)


def _grouped(x: torch.Tensor, plan) -> torch.Tensor:
    """(N, length) -> (groups, N, block) view, zero-padded to whole groups."""
    padded = plan.groups * plan.block
    if padded != plan.length:
        # Padded entries meet only identity slots, so they stay zero.
        x = nn.functional.pad(x, (0, padded - plan.length))
    return x.reshape(x.shape[0], plan.groups, plan.block).transpose(0, 1)


def _ungrouped(g: torch.Tensor, plan) -> torch.Tensor:
    """(groups, N, block) -> contiguous (N, length)."""
    out = g.transpose(0, 1).reshape(g.shape[1], plan.groups * plan.block)
    return out[:, : plan.length] if out.shape[1] != plan.length else out


class StagedRotation(torch.autograd.Function):
    """y = x @ S_1 S_2 ... S_K with a hand-written backward.

    Stage k multiplies each group of `block` entries of the survivor vector by
    its own block; the next stage works on entry 0 of every group. Autograd
    through the same ops spends more time in copies (cat, reshapes of
    transposed views) than in arithmetic; here each stage is one bmm forward and
    two backward, and survivors are written back in place.

    Higher-order gradients (create_graph=True: gradient penalties, Hessian-vector
    products, gradgradcheck) are supported: a backward that runs with grad mode
    on does not use the fast formulas (their in-place writes and saved stage
    inputs are not differentiable) but differentiates `_reference_rotate`, the
    same product through plain autograd ops, with create_graph=True. The usual
    first-order backward is unchanged.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, plans, *blocks: torch.Tensor) -> torch.Tensor:
        inputs = []

        def run(v: torch.Tensor, k: int) -> torch.Tensor:
            g = _grouped(v, plans[k])
            inputs.append(g)
            out = torch.bmm(g, blocks[k])
            if k + 1 < len(plans):
                # A copy: the survivors are overwritten in place just below,
                # and the next stage saves its input for the backward.
                out[:, :, 0] = run(out[:, :, 0].t().contiguous(), k + 1).t()
            return _ungrouped(out, plans[k])

        y = run(x, 0)
        ctx.plans = plans
        ctx.save_for_backward(x, *inputs, *blocks)
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        plans = ctx.plans
        x, *saved = ctx.saved_tensors
        inputs, blocks = saved[: len(plans)], saved[len(plans):]
        if torch.is_grad_enabled():  # create_graph=True: a differentiable backward
            return _differentiable_backward(ctx, grad_y, x, blocks)
        grad_blocks = [None] * len(plans)

        # Stage k, per group: G (N tokens x b, the stage's input `inputs[k]`) times
        # its block B gives O = G B; the survivor column O[:, :, 0] then goes
        # through the deeper stages k+1.. and is replaced by their output.
        #   g = dL/dO arrives as the grouped gradient of the stage's output, except
        #       that its survivor column is still the gradient w.r.t. the deeper
        #       stages' output: back-propagate that column through them first.
        #   dG = g B^T                 (gradient of this stage's input)
        #   dB = G^T g                 (= sum over tokens n of G[n]^T g[n])
        # Padded entries of G are 0 and only meet identity slots, so they add
        # nothing to dB, and their dG is dropped by _ungrouped.
        def run(gv: torch.Tensor, k: int) -> torch.Tensor:
            g = _grouped(gv, plans[k])
            if k + 1 < len(plans):
                g = g.clone()
                g[:, :, 0] = run(g[:, :, 0].t(), k + 1).t()
            if ctx.needs_input_grad[2 + k]:
                grad_blocks[k] = torch.bmm(inputs[k].transpose(1, 2), g)
            return _ungrouped(torch.bmm(g, blocks[k].transpose(1, 2)), plans[k])

        grad_x = run(grad_y, 0)
        return (grad_x if ctx.needs_input_grad[0] else None), None, *grad_blocks


def _reference_rotate(x: torch.Tensor, plans, blocks, k: int = 0) -> torch.Tensor:
    """What StagedRotation computes, through plain differentiable ops (no in-place)."""
    plan = plans[k]
    out = torch.bmm(_grouped(x, plan), blocks[k])
    if k + 1 < len(plans):
        survivors = _reference_rotate(out[:, :, 0].t(), plans, blocks, k + 1).t()
        out = torch.cat((survivors.unsqueeze(-1), out[:, :, 1:]), dim=-1)
    return _ungrouped(out, plan)


def _differentiable_backward(ctx, grad_y: torch.Tensor, x: torch.Tensor, blocks):
    """StagedRotation's gradients as a graph (for double backward)."""
    needs = (ctx.needs_input_grad[0], *ctx.needs_input_grad[2:])
    wanted = [t for t, need in zip((x, *blocks), needs) if need]
    y = _reference_rotate(x, ctx.plans, blocks)
    grads = iter(torch.autograd.grad(y, wanted, grad_y, create_graph=True, allow_unused=True))
    out = []
    for t, need in zip((x, *blocks), needs):
        g = next(grads) if need else None
        out.append(torch.zeros_like(t) if need and g is None else g)
    return out[0], None, *out[1:]


class GivensTree(nn.Module):
    """The fused-stage layout of one input dimension d, as device buffers.

    `rotate(x, table)` is x @ M and `rotate_transposed(x, table)` is x @ M^T
    (named so as not to shadow nn.Module.apply, which transformers calls to
    initialise weights). Both are differentiable to any order: `rotate` through
    StagedRotation (a fast hand-written first-order backward, a differentiable
    recompute when create_graph=True), `rotate_transposed` through plain ops.
    """

    def __init__(self, d: int, block_levels: int = 4):
        super().__init__()
        check_dim(d)
        self.d = d
        self.plans = stage_plans(d, block_levels)
        # All stages' blocks are built in one batch: every stage's groups padded to the
        # largest block and level count (identity there), so one scatter and one chain
        # of level products serve every stage. Building them stage by stage cost more
        # in per-op overhead than the whole forward rotation (many tiny tensors).
        self.block = max(plan.block for plan in self.plans)
        self.levels = max(plan.levels for plan in self.plans)
        self.groups = sum(plan.groups for plan in self.plans)
        positions, params, offset = [], [], 0
        for plan in self.plans:
            level, rest = plan.slot_positions.div(plan.groups * plan.block**2, rounding_mode="floor"), \
                plan.slot_positions.remainder(plan.groups * plan.block**2)
            group, rest = rest.div(plan.block**2, rounding_mode="floor"), rest.remainder(plan.block**2)
            row, col = rest.div(plan.block, rounding_mode="floor"), rest.remainder(plan.block)
            positions.append((((level * self.groups + offset + group) * self.block + row) * self.block + col)
                             .reshape(-1))
            params.append(plan.slot_params)
            offset += plan.groups
        eye = torch.eye(self.block).expand(self.levels, self.groups, self.block, self.block)
        # Not persistent: the layout is a pure function of d, not adapter state.
        self.register_buffer("slot_positions", torch.cat(positions), persistent=False)
        self.register_buffer("slot_params", torch.cat(params), persistent=False)
        self.register_buffer("identity_levels", eye.reshape(-1).clone(), persistent=False)

    def stage_blocks(self, table: torch.Tensor) -> list[torch.Tensor]:
        """One (groups, block, block) tensor per stage, from a (d, 4) table."""
        values = table.index_select(0, self.slot_params).reshape(-1)
        flat = self.identity_levels.to(table.dtype).scatter(0, self.slot_positions, values)
        levels = flat.view(self.levels, self.groups, self.block, self.block)
        product = levels[0]
        for level in levels[1:]:
            product = product @ level
        out, offset = [], 0
        for plan in self.plans:
            out.append(product[offset: offset + plan.groups, : plan.block, : plan.block])
            offset += plan.groups
        return out

    def rotate(self, x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """x @ M for x of shape (..., d); computed in the table's dtype."""
        if x.shape[-1] != self.d:
            raise ValueError(f"expected last dimension {self.d}, got {tuple(x.shape)}")
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.d).to(table.dtype)
        # Under autocast the products would silently drop to bf16/fp16; the
        # rotation stays in the table's precision (fp32 for training).
        with torch.autocast(x.device.type, enabled=False):
            y = StagedRotation.apply(flat, self.plans, *self.stage_blocks(table))
        return y.reshape(*lead, self.d)

    def rotate_transposed(self, x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """x @ M^T for x of shape (..., d): how merged weights W M^T are formed."""
        if x.shape[-1] != self.d:
            raise ValueError(f"expected last dimension {self.d}, got {tuple(x.shape)}")
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.d).to(table.dtype)
        blocks = [b.transpose(-1, -2) for b in self.stage_blocks(table)]
        y = self._rotate_stages_transposed(flat, blocks, 0)
        return y.reshape(*lead, self.d)

    def _rotate_stages_transposed(self, x: torch.Tensor, blocks: list[torch.Tensor], k: int) -> torch.Tensor:
        # M^T = S_K^T ... S_1^T: the deepest stage (on the survivors) acts first.
        plan = self.plans[k]
        padded = plan.groups * plan.block
        if padded != plan.length:
            x = nn.functional.pad(x, (0, padded - plan.length))
        grouped = x.view(x.shape[0], plan.groups, plan.block)
        if k + 1 < len(self.plans):
            survivors = self._rotate_stages_transposed(grouped[..., 0], blocks, k + 1)
            grouped = torch.cat((survivors.unsqueeze(-1), grouped[..., 1:]), dim=-1)
        mixed = _mix(grouped, blocks[k])
        out = mixed.reshape(x.shape[0], padded)
        return out[:, : plan.length] if padded != plan.length else out

    def gram_deviation(self, table: torch.Tensor, row_scale: torch.Tensor | None = None) -> float:
        """||A^T A - I||_F for A = diag(row_scale) M, without forming M.

        M = S_0 R: stage 0 is block-diagonal and R (all later stages) touches
        only the survivors s (entry 0 of every stage-0 group), as a small dense
        R_1. With G_0 = S_0^T S_0 (block-diagonal), D its survivor diagonal and
        c_g the survivor-to-rest row of group g's block of G_0:
            A^T A = [[R_1^T D R_1, R_1^T C], [C^T R_1, G_0[rest, rest]]]
        and, since the c_g sit in disjoint columns,
            ||A^T A - I||^2 = ||R_1^T D R_1 - I||^2 + 2 sum_g ||(R_1)_g||^2 ||c_g||^2
                              + ||G_0[rest, rest] - I||^2.
        The blocks are taken in the table's precision (what the forward
        applies) and the sums in float64. O(d * block^2 + (d / block)^3) work.
        """
        blocks = [b.detach().to(torch.float64) for b in self.stage_blocks(table.detach())]
        plan = self.plans[0]
        first = blocks[0]
        if row_scale is not None:
            scale = nn.functional.pad(row_scale.detach().to(first), (0, plan.groups * plan.block - plan.length),
                                      value=1.0)
            first = first * scale.view(plan.groups, plan.block, 1)
        g0 = first.transpose(1, 2) @ first
        eye = torch.eye(plan.block, dtype=torch.float64, device=g0.device)
        if len(self.plans) == 1:
            return float((g0 - eye).norm())
        rest = float((g0[:, 1:, 1:] - eye[1:, 1:]).pow(2).sum())
        c2 = g0[:, 0, 1:].pow(2).sum(-1)
        survivors = torch.eye(plan.groups, dtype=torch.float64, device=g0.device)
        r1 = self._rotate_stages_transposed(survivors, [b.transpose(-1, -2) for b in blocks], 1).T
        top = r1.T @ (g0[:, 0, 0].unsqueeze(1) * r1) - survivors
        cross = float((r1.pow(2).sum(1) * c2).sum())
        return (float(top.pow(2).sum()) + 2.0 * cross + rest) ** 0.5

    def dense(self, table: torch.Tensor) -> torch.Tensor:
        """The d x d operator M itself (for merging, metrics and tests)."""
        eye = torch.eye(self.d, dtype=table.dtype, device=table.device)
        return self.rotate(eye, table)

r"""Text for the "Learn" page, the guided tour and the notes beside each chart.

All strings are Markdown with LaTeX in ``$...$`` (inline) and ``$$...$$``
(display).  Gradio's ``gr.Markdown`` renders only ``$$`` by default, so pass
``latex_delimiters=LATEX_DELIMITERS`` to every Markdown that shows these texts.
Formulas avoid ``<`` / ``>`` (HTML sanitising) and the text has no stray ``$``.
"""

from __future__ import annotations

# "$$" must come first: Gradio pulls the math out delimiter by delimiter.
LATEX_DELIMITERS: list[dict[str, object]] = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "$", "right": "$", "display": False},
]

LEARN_MARKDOWN: str = r"""
# Learn: orthogonal fine-tuning with Givens rotations

This page explains GOFT and qGOFT (Ma et al., *Parameter Efficient Quasi-Orthogonal
Fine-Tuning via Givens Rotation*, ICML 2024) and how to read every chart of the app.

## 1. A Givens rotation

A Givens rotation $G(i, j; \theta)$ is the identity matrix except in rows and columns
$i$ and $j$, where it holds the ordinary 2-D rotation

$$\begin{pmatrix} g_{ii} & g_{ij} \\ g_{ji} & g_{jj} \end{pmatrix} = \begin{pmatrix} \cos\theta & -\sin\theta \\ \sin\theta & \cos\theta \end{pmatrix}.$$

It turns the plane spanned by coordinates $i$ and $j$ by the angle $\theta$ and leaves
every other coordinate alone. It is orthogonal ($G^\top G = I$): lengths and angles
are kept. One number, $\theta$, describes it. The **Givens playground** tab lets you
turn one (or a short chain of them) by hand.

## 2. Why orthogonal fine-tuning?

A linear layer has $n$ neurons, the rows $w_1, \dots, w_n \in \mathbb{R}^d$ of its
weight (PyTorch layout). Much of what pre-training learned sits in the **relative
geometry** of these neurons: the angles between them. Orthogonal fine-tuning does not
add to the weights; it rotates the input space by one orthogonal matrix $M$:

$$y = (x M)\, W^\top, \qquad W' = W M^\top, \qquad w_i' = M w_i .$$

Every neuron is moved by the **same** orthogonal map, so every pairwise angle and every
length stays exactly as it was, and so does the hyperspherical energy (section 5).
With all angles at $0$, $M = I$ and the model starts exactly at the pretrained one.
The map can be merged into the weight ($W' = W M^\top$), so inference costs nothing extra.

## 3. GOFT: $d - 1$ rotations in a tree

A general rotation of $\mathbb{R}^d$ has $d(d-1)/2$ degrees of freedom (294,528 for
$d = 768$), far too many. GOFT multiplies only $d - 1$ Givens rotations, arranged as a
**tree reduction** of $L = \lceil \log_2 d \rceil$ levels,
$M = P_1 P_2 \cdots P_L$. Each level $P_r$ is a set of disjoint rotations, so the
rotations of one level run in parallel:

- level $r$ pairs the indices $(2^r k,\; 2^r k + 2^{r-1})$ for $k = 0, 1, \dots$
- index $0$ is touched at every level; the matrix stays sparse.

**Example, $d = 8$** (7 rotations, 3 levels):

| level | pairs |
| --- | --- |
| 1 | (0,1) (2,3) (4,5) (6,7) |
| 2 | (0,2) (4,6) |
| 3 | (0,4) |

**When $d$ is not a power of two** (384, 768, 3072 ...) a **carry rule** applies: at each
level the active indices are paired neighbour by neighbour, and if their number is odd
the last one waits, unpaired, for the next level. **Example, $d = 12$** (11 rotations,
4 levels):

| level | pairs | carried |
| --- | --- | --- |
| 1 | (0,1) (2,3) (4,5) (6,7) (8,9) (10,11) | |
| 2 | (0,2) (4,6) (8,10) | |
| 3 | (0,4) | 8 |
| 4 | (0,8) | |

Either way there are always exactly $d - 1$ angles per adapted layer.

## 4. qGOFT: quasi-Givens blocks

qGOFT frees each $2\times 2$ rotation block: the block with columns $\alpha_i, \beta_i$
replaces $\begin{pmatrix}\cos\theta & -\sin\theta \\ \sin\theta & \cos\theta\end{pmatrix}$,
4 numbers instead of 1 (starting at the identity). The loss gets a **soft penalty**:

$$\mathcal{L} = \mathcal{L}_{\text{task}} + \lambda \sum_{\text{layers}} \sum_i \langle \alpha_i, \beta_i \rangle^2 .$$

**What the penalty does, and what it does not.** It asks each block's two columns to be
perpendicular, and nothing more.

- The column lengths $\lVert\alpha_i\rVert$, $\lVert\beta_i\rVert$ are **not** penalised:
  they act as free scales ("flexible norm").
- These lengths **compound through the tree**. With every angle at 0 and every block
  $c\,I$, $M$ is diagonal and input $i$ is scaled by $c^{m_i}$, where $m_i$ is the number of
  levels that touch $i$ (index 0 meets all of them). For $d = 3$ and $c = 1.5$ that is
  $\mathrm{diag}(2.25, 1.5, 1.5)$: the inputs are stretched unevenly, so the angles between
  neurons and the hyperspherical energy change, while the penalty is **exactly 0**.
  A common scale of all inputs would keep the energy; an uneven one does not.
- A non-zero $\langle\alpha_i, \beta_i\rangle$ (a shear of the block) also moves the angles
  between neurons ("relative angular adjustment"); that part is what $\lambda$ pushes back.
- So $\lambda$ does **not** keep $M$ orthogonal or the energy nearly kept: it controls the
  shear only. In the lesson "What λ does and does not do", $\lambda = 10$ pushes
  $\sum\langle\alpha,\beta\rangle^2$ thousands of times below $\lambda = 0.01$, yet its
  orthogonality deviation and energy drift end slightly **higher**, not lower.
- Try it in the **Givens playground**: choose the quasi-Givens blocks, set the shear to 0 and
  change the length of $\alpha$ or $\beta$. The readout shows $\langle\alpha,\beta\rangle = 0$ and
  $\sum\langle\alpha,\beta\rangle^2 = 0$ while the energy moves (for $d = 2$, equal lengths
  are one common scale and keep it; take $d = 3$ or different lengths).
- The paper uses $\lambda$ between 0.001 and 0.05; 0.5 hurts. Rotation learning rates are
  10-100 times LoRA's.

## 5. Hyperspherical energy (HE)

With $\hat w_i = w_i / \lVert w_i \rVert$ the unit-length neurons,

$$\mathrm{HE}(W) = \sum_{i \ne j} \frac{1}{\lVert \hat w_i - \hat w_j \rVert}, \qquad \lVert \hat w_i - \hat w_j \rVert^2 = 2 - 2\cos\angle(w_i, w_j).$$

It is large when neurons crowd together and small when they are spread out on the
sphere; it depends only on the pairwise angles. Any orthogonal $M$ applied to all
neurons keeps it exactly (strict GOFT), and so does one common scale of all inputs or a
per-neuron (output-side) scale. qGOFT (through a shear or through uneven column lengths,
section 4), LoRA, full fine-tuning and a per-input-coordinate scale (GOFT*) change it. The app reports the **relative drift**
$(\mathrm{HE}(W') - \mathrm{HE}(W_0)) / \mathrm{HE}(W_0)$, computed from the neurons' cosine
matrix (fp32 products, float64 sums) on at most 256 evenly spaced neurons per layer
(the same neurons before and after); rounding alone gives drifts near $10^{-8}$.

## 6. How to read each chart

- **Loss**: the training task loss per step and the held-out loss; for qGOFT the
  $\lambda$-weighted penalty gets its own panel, on its own scale. Rotations need larger
  learning rates than LoRA before the curve moves.
- **Angle heatmap**: one cell per rotation angle $\theta$ (columns: pairs, ordered level
  by level; rows: layers), on a diverging colour scale: one hue for negative angles,
  the other for positive, white for $0$ (the colour bar gives the numbers). The cells show
  the stored angle. With the default **plain** angles (`angle_param="plain"`, $\theta$ in
  radians) $\pm 180^\circ$ is a half-turn, an ordinary rotation whose gradient is not 0,
  and an angle past it is **wrapped**: $\theta$ and $\theta \pm 360^\circ$ are the same
  rotation. Only the **tanh** form ($\theta = \pi \tanh\varphi$, `angle_param="tanh"`)
  **saturates**: it reaches $\pm 180^\circ$ only as $\varphi \to \pm\infty$, where its
  gradient $\pi(1 - \tanh^2\varphi)$ vanishes. Plain angles far past a half-turn within a few
  steps mean the learning rate is too high (the lesson "Learning rate too high").
- **Angle histograms over time**: the distribution of all angles at each logged step, in
  fixed bins on $[-180^\circ, 180^\circ)$ (angles past a half-turn are wrapped, and the title
  says so). They start as a spike at $0$ and widen as training proceeds.
- **Norm changes**: per-neuron $\lVert w_i' \rVert / \lVert w_i \rVert$. Exactly 1 for
  strict GOFT without the optional scales; qGOFT's flexible norms, the scales and LoRA
  move it.
- **Orthogonality deviation**: $\lVert M^\top M - I \rVert_F$ (also divided by
  $\sqrt d$), and for qGOFT the block terms $\sum \langle\alpha,\beta\rangle^2$ and
  $\sum \cos^2\angle(\alpha, \beta)$. Zero (up to rounding) for strict GOFT. For qGOFT it
  includes the column lengths, which $\lambda$ does not touch. It is the deviation of the
  **whole input-side operator**: with input scaling (GOFT*, `scaling="input"`) that is
  $\mathrm{diag}(s)\,M$, scale included, so GOFT* shows large values by design even though
  its rotation part is exact; an output (per-neuron) scale is not part of it.
- **HE drift**: the relative change of hyperspherical energy against the pretrained
  weights, per layer. Strict GOFT stays inside the float32 rounding band (≤ ~5e-9, zero in exact
  arithmetic) without scaling or with output scaling;
  input scaling and qGOFT move it (qGOFT even with its penalty at 0, section 4).
- **CKA / representation similarity**: linear CKA between the base and the tuned model's
  sentence embeddings on a fixed probe set of 64 held-out texts; 1 means the
  representations are unchanged (up to rotation and scale).
- **Retention probe**: the base model's own task (for a sentence encoder,
  sentence-similarity ranking) before and after fine-tuning: how much was forgotten.

## 7. What the paper claims, and what it proves

- **Theorem 4.1** is a statement about aligning **one vector**: for any $x, y$ with
  $\lVert x \rVert = \lVert y \rVert$, $d - 1$ Givens rotations suffice to map $x$ to
  $y$. (This project's tree, applied level 1 first, can map any $x$ onto
  $\lVert x \rVert e_0$: choose each angle to zero the second index of its pair.)
- It does **not** show that the $d - 1$ angles reach every rotation. They cannot:
  the map from $d - 1$ angles to $M$ has rank at most $d - 1$, while the rotations of
  $\mathbb{R}^d$ form a $d(d-1)/2$-dimensional set (767 against 294,528 for $d = 768$).
  GOFT explores a thin, structured family of rotations, not "any rotation".
- The authors' public code builds a dense $d \times d$ matrix at every step (their own
  timing: 6.00 s per batch for GOFT against 1.12 s for LoRA), and in its newer version
  the element pairing from level 2 on is wrong, so the operator is a **shear, not a
  rotation** ($\lVert M^\top M - I \rVert_F \approx 24.7$ at $d = 768$), and its merge
  disagrees with its forward pass. It does not implement the qGOFT penalty either.
- **This project fixes all three**:
  - it never builds a dense $d \times d$ matrix to train: the levels are applied as small
    batched block products, $O(d \log d)$ work per token;
  - every level is a true rotation, so the strict operator is orthogonal up to rounding
    error, and merging the operator into the weight gives the same outputs as the
    unmerged forward pass (the tests check both, in `tests/core/test_qgoft_model.py`);
  - the qGOFT penalty is implemented: `QGOFTModel.regularization_loss` returns
    $\lambda \sum \langle \alpha_i, \beta_i \rangle^2$ and the trainer adds it to every
    step's loss (the Loss chart shows it in its own panel).
- The paper's "GOFT*" scale is a length-$d$ diagonal on the **input** side; it does not
  keep neuron angles or HE. A per-neuron scale on the output side does.

## 8. Parameter counts

Per adapted layer with input size $d$: GOFT $d - 1$, qGOFT $4(d - 1)$ (LoRA of rank $r$
on an $n \times d$ layer: $r(n + d)$).

| model, adapted layers | GOFT | qGOFT |
| --- | ---: | ---: |
| DeBERTaV3-base, all 6 linear layers of 12 blocks | 82,872 | 331,488 |
| LLaMA2-7B, q/k/v/o of 32 layers | 524,160 | 2,096,640 |

For DeBERTaV3-base: five layers per block take $d = 768$ and one takes $d = 3072$, so
$12 \times (5 \times 767 + 3071) = 82{,}872$, and four times that for qGOFT.
"""

# Added to a chart step ("needs_run") while the visitor's run has not trained a step yet.
TOUR_BEFORE_RUN = ("*No run yet:* this chart stays empty until a run trains. Go **◀ Back** to step 3 "
                   "and press ▶ Train first (or watch finished runs in the Lessons, step 6).")

TOUR_STEPS: list[dict[str, str]] = [
    {
        "title": "1. Start with the playground",
        "text": "Turn one Givens rotation by hand on a few toy neurons and watch the energy "
        "stay fixed; then try the LoRA-like update, or qGOFT's blocks with longer columns, and "
        "watch it move. (In a hurry? Step 6, the Lessons, plays finished runs at once.)",
        "target": "playground-tab",
    },
    {
        "title": "2. Choose a run",
        "text": "On the Train tab, pick the method (GOFT, qGOFT, LoRA ...), the scaling, the "
        "penalty weight λ (qGOFT only), the learning rate, the steps and the seed.",
        # On a teacher's link some of these are hidden: the tour then names only the others.
        "controls": (("method", "the method (GOFT, qGOFT, LoRA ...)"), ("scaling", "the scaling"),
                     ("lam", "the penalty weight λ (qGOFT only)"), ("lr", "the learning rate"),
                     ("steps", "the steps"), ("seed", "the seed")),
        "all_hidden": "On the Train tab, your teacher has fixed the run's settings: they are listed, "
        "read-only, at the top of the settings.",
        "target": "train-controls",
    },
    {
        "title": "3. Press Train",
        "text": "Press ▶ Train to start the run (the first one may take a moment to load the "
        "model). Pause stops it, Step +1 trains one step, Reset goes back to step 0 with the same "
        "seed, New seed draws another. The status line below says where the run is, and the "
        "charts below fill in as it trains: the next steps point at two of them.",
        "if_hidden": {"seed": "Press ▶ Train to start the run (the first one may take a moment to load "
                      "the model). Pause stops it, Step +1 trains one step, Reset goes back to step 0. "
                      "The status line below says where the run is, and the charts below fill in as it "
                      "trains: the next steps point at two of them."},
        "target": "transport",
    },
    {
        "title": "4. Where did the angles go?",
        "text": "Each cell is one rotation angle of one layer, coloured by sign and size (see "
        "the colour bar). ±180° is a half-turn, an ordinary rotation for the default plain "
        "angles; an angle far past it is wrapped (θ ± 360° is the same rotation) and means the "
        "learning rate is too high. Only the tanh form saturates there.",
        "target": "angle-heatmap",
        "needs_run": True,  # empty until a run trains: the tour says so (ui/learn_tab.py)
    },
    {
        "title": "5. Is the geometry kept?",
        "text": "Hyperspherical-energy drift stays at zero for strict GOFT and moves for qGOFT "
        "and LoRA. qGOFT's penalty λ only makes each block's columns perpendicular; their free "
        "lengths still move the energy.",
        "target": "energy-plot",
        "needs_run": True,  # empty until a run trains: the tour says so (ui/learn_tab.py)
    },
    {
        "title": "6. Watch finished runs: Lessons",
        "text": "Lessons replay two real training runs side by side, instantly, no waiting: strict "
        "vs quasi, what λ does and does not do, a learning rate that is too high, GOFT vs LoRA.",
        "target": "lessons-tab",
    },
    {
        "title": "7. Compare methods side by side",
        "text": "Put several methods next to each other on the same data and seed: accuracy, "
        "drift, forgetting and parameter count.",
        "target": "compare-tab",
    },
]

CHART_NOTES: dict[str, dict[str, str]] = {
    "loss-plot": {
        "see": "The training loss at every step and the held-out accuracy; for qGOFT, the only "
        "method with a penalty, also the penalty λ·Σ⟨α, β⟩² in a panel of its own scale.",
        "notice": "Rotations need a larger learning rate than LoRA before the loss moves. The "
        "penalty measures only the shear of the blocks: a penalty near 0 does not mean the "
        "operator is orthogonal (the column lengths are free).",
        "try": "Open the lesson \"What λ does and does not do\": with λ = 10 Σ⟨α, β⟩² falls "
        "thousands of times lower and the task loss falls a little more slowly.",
    },
    "angle-heatmap": {
        "see": "One cell per rotation angle θ (columns: pairs, level by level; rows: "
        "layers) on a diverging colour scale, white for 0; the cells show the stored angle.",
        "notice": "With the default plain angles ±180° is a half-turn, an ordinary rotation "
        "with a non-zero gradient; an angle past it is wrapped (θ and θ ± 360° are the same "
        "rotation). Only the tanh form θ = π·tanh φ saturates near ±180°. Angles far past a "
        "half-turn after a few steps mean the learning rate is too high.",
        "try": "Drag the timeline back to step 0: every cell is white, since the model "
        "starts exactly at the pretrained one.",
    },
    "angle-hist": {
        "see": "The distribution of the selected layer's rotation angles at each logged step "
        "(one row per step), in bins that follow the data: ± the largest angle of the run, the "
        "range in the subtitle (angles past a half-turn are wrapped; the subtitle says when).",
        "notice": "It starts as a spike at 0 and widens; a wide, flat histogram at a small "
        "learning rate hints at noisy training.",
        "try": "Compare two learning rates and see how fast the histogram spreads.",
    },
    "norm-plot": {
        "see": "For each neuron, its length after fine-tuning divided by its length before.",
        "notice": "Strict GOFT keeps every ratio at exactly 1; qGOFT's free column lengths, "
        "the scales and LoRA move them.",
        "try": "Switch between GOFT and qGOFT on the same settings and compare the spread.",
    },
    "orth-plot": {
        "see": "How far the learned input-side operator is from orthogonal: ‖MᵀM − I‖_F / √d "
        "per layer (log scale; the dashed line is the tolerance).",
        "notice": "Strict GOFT sits at rounding-error level; qGOFT moves away from it, and a "
        "larger λ does not bring it back: λ penalises only ⟨α, β⟩ (the shear of each block), not "
        "the column lengths, which compound through the tree. With input scaling (GOFT*) this is "
        "the deviation of the whole input operator diag(s)·M, scale included, so it is large by "
        "design although the rotation is exact; an output scale is not part of it.",
        "try": "Open the lesson \"What λ does and does not do\": Σ⟨α, β⟩² falls thousands of "
        "times with λ = 10, while this chart ends slightly higher than with λ = 0.01.",
    },
    "energy-plot": {
        "see": "The size of the relative drift of hyperspherical energy, |HE − HE₀|/HE₀, per layer "
        "over training, on a log scale. The grey band at the bottom is float32 rounding (up to "
        "~5e-9): a value inside it means the energy did not change.",
        "notice": "Strict GOFT (without scaling or with output scaling) stays inside the grey band: "
        "its step from exactly 0 at step 0 (drawn at 1e-16) to ~1e-10 is rounding, not drift, since "
        "every neuron gets the same rotation and no angle between neurons changes. qGOFT rises "
        "above the band to ~1e-4 even with its penalty at 0, because uneven column lengths stretch "
        "the inputs unevenly.",
        "try": "Load the lesson \"GOFT vs LoRA: what is forgotten\" and compare LoRA's drift "
        "with GOFT's; in the playground, give qGOFT's columns a length other than 1.",
    },
    "cka-plot": {
        "see": "Linear CKA between the base and the tuned model's sentence embeddings on a "
        "fixed probe set of held-out texts, at each evaluation.",
        "notice": "Values near 1 mean the representation barely changed, which usually goes "
        "with less forgetting on the retention probe.",
        "try": "Compare the CKA of GOFT and full fine-tuning after the same number of steps.",
    },
    "playground-plot": {
        "see": "Toy neurons as arrows: blue dotted before, orange after the update, on the "
        "unit circle (2-D) or sphere (3-D).",
        "notice": "A Givens rotation turns every arrow by the same map, so the angles "
        "between arrows, and the energy, do not change.",
        "try": "Switch to the quasi-Givens blocks, set the shear to 0 and take d = 3 with the "
        "length of α at 1.5: ⟨α, β⟩ and Σ⟨α, β⟩² read exactly 0, yet the energy moves. The "
        "LoRA-like update moves it too.",
    },
}

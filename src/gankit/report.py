"""``gankit report RUN``: one self-contained HTML page that shows a run.

Everything a reader needs is inside the one file: the run summary (``run.json``), the config
(``config.yaml``), loss curves (``stats.jsonl``), validation metrics (``metrics.jsonl``), eval
metrics over time and the final eval table (``eval.jsonl``), every epoch's sample grid behind a
slider, and for image-to-image runs the best and worst validation examples by L1. Images are
embedded as ``data:`` URIs and the few lines of JavaScript are inline, so the page works offline
and can be attached to an email; its Content-Security-Policy forbids any network access.
"""

from __future__ import annotations

import base64
import html
import io
import math
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from gankit.charts import fit_titles, significant, tidy_step_axes
from gankit.config import Config, ConfigError
from gankit.families import get_family
from gankit.formatting import data_source
from gankit.metrics import EVAL_META_COLUMNS, MetricUnavailable, better, eval_metric_keys
from gankit.run import RunFolder
from gankit.rundata import run_data

if TYPE_CHECKING:
    from gankit.evaluate import PairScores

NOT_COMPUTED = "not computed yet — run <code>gankit eval {run}</code>"

MAX_EMBEDDED_GRID_MB = 15.0
"""Above this total, the sample grids are re-encoded as JPEG (and the report says so) to keep the file mailable."""

N_EXAMPLES = 3
"""Best and worst validation examples shown for image-to-image runs."""


# ----------------------------------------------------------------------------- reading a run


@dataclass
class RunRecords:
    """What a run folder holds, read once."""

    run: Path
    cfg: Config
    config_text: str
    record: dict[str, Any]
    stats: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    evals: list[dict[str, Any]]
    samples: list[tuple[str, Path]] = field(default_factory=list)
    """(label, path) of every sample grid, in training order."""


def find_run(path: str | Path) -> Path:
    """The run folder ``path`` names (its ``checkpoints/`` folder also works), else a DataError (exit code 1)."""
    return RunFolder.find(path).path


def read_run(run: Path) -> RunRecords:
    """Read the records of ``run`` (a folder checked by :func:`find_run`); missing logs are empty."""
    folder = RunFolder(run)
    cfg = Config.load(folder.config)  # a damaged file is a one-line ConfigError
    metrics = folder.read_metrics()
    return RunRecords(
        run=run,
        cfg=cfg,
        config_text=folder.config_text(),
        record=folder.read_record(),  # a damaged record: the summary says "not recorded" rather than failing
        stats=folder.read_stats(),
        metrics=metrics,
        evals=folder.read_evals(),
        samples=folder.sample_grids(metrics),
    )


# ----------------------------------------------------------------------------- plots


def _png_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _figure_uri(fig: Any) -> str:
    """``fig`` as a PNG data URI, its step axes tidied and its titles wrapped to fit (closes ``fig``)."""
    import matplotlib.pyplot as plt

    for ax in fig.axes:
        tidy_step_axes(ax)
    fit_titles(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return _png_uri(buf.getvalue())


def _smoothed(ys: list[float]) -> list[float]:
    """A trailing moving average over ~1/50 of the points (as loss.png draws it)."""
    w = max(1, len(ys) // 50)
    out, total = [], 0.0
    for i, y in enumerate(ys):
        total += y
        if i >= w:
            total -= ys[i - w]
        out.append(total / min(i + 1, w))
    return out


def _series(rows: Iterable[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float) and math.isfinite(r[key])]
    return [p[0] for p in pts], [p[1] for p in pts]


def _new_axes(title: str) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.85, 2.7))
    ax.set_title(title, fontsize=9.5)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    return fig, ax


@dataclass
class Plot:
    title: str
    uri: str


FEW_POINTS = 20
"""Loss series shorter than this are drawn with a marker on every point."""

ADVERSARIAL = ("d_loss", "g_adv", "gp")
"""Losses of the G-vs-D game: their level says who is ahead, not how good the images are."""


def loss_plots(stats: list[dict[str, Any]]) -> list[Plot]:
    """The adversarial losses in one panel (a balance, neither lower nor higher is better), then each
    reconstruction loss (``g_l1``, and the total ``g_loss`` of image-to-image runs) in its own."""
    if not stats:
        return []
    keys = list(dict.fromkeys(k for r in stats for k in r if k.endswith("loss") or k in ("g_l1", "g_adv", "gp")))
    paired = "g_adv" in keys
    adversarial = [k for k in keys if k in ADVERSARIAL or (k == "g_loss" and not paired)]
    panels: list[tuple[str, list[str]]] = []
    if adversarial:
        panels.append(("adversarial losses\n(a G-vs-D balance: neither lower nor higher is better)", adversarial))
    for k in keys:
        if k not in adversarial:
            what = "g_loss = g_adv + l1_weight x g_l1" if k == "g_loss" else k
            panels.append((f"{what} (lower is better)", [k]))
    plots = []
    for title, panel in panels:
        fig, ax = _new_axes(title)
        for k in panel:
            xs, ys = _series(stats, k)
            if not xs:
                continue
            # markers while the points are few: one logged point (a 2-3 step run) is no line at all
            (line,) = ax.plot(
                xs,
                ys,
                alpha=0.3 if len(ys) >= 100 else 1.0,
                linewidth=0.8,
                marker="o" if len(ys) < FEW_POINTS else "",
                ms=3,
                label=k,
            )
            if len(ys) >= 100:
                line.set_label(None)
                ax.plot(xs, _smoothed(ys), color=line.get_color(), linewidth=1.2, label=k)
        ax.legend(fontsize=8)
        fig.tight_layout()
        plots.append(Plot(title, _figure_uri(fig)))
    return plots


def metric_plots(rows: list[dict[str, Any]], keys: list[str], *, prefix: str = "") -> list[Plot]:
    """One panel per metric against the step (with ``KEY_std`` error bars where the rows have them);
    ``colorfulness`` and ``colorfulness_real`` share one."""
    plots = []
    for k in keys:
        if k == "colorfulness_real" and "colorfulness" in keys:
            continue
        title = f"{prefix}{k} ({better(k)})"
        fig, ax = _new_axes(title)
        for key in [k, "colorfulness_real"] if k == "colorfulness" and "colorfulness_real" in keys else [k]:
            xs, ys = _series(rows, key)
            stds = [r.get(f"{key}_std", 0.0) for r in rows if isinstance(r.get(key), int | float)]
            if len(stds) == len(xs) and any(stds):
                ax.errorbar(xs, ys, yerr=stds, marker="o", ms=3, capsize=2, label=key)
            else:
                ax.plot(xs, ys, marker="o", ms=3, label=key)
        if k == "colorfulness":
            ax.legend(fontsize=8)
        fig.tight_layout()
        plots.append(Plot(title, _figure_uri(fig)))
    return plots


def val_keys(metrics: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for r in metrics for k in r if k.startswith("val_")))


def eval_plots(rows: list[dict[str, Any]], keys: list[str]) -> list[Plot]:
    """One panel per eval metric, as ``metrics.png`` draws it: a labelled series per (classifier, n),
    never one line across evaluations that are not comparable; ``colorfulness_real`` joins ``colorfulness``."""
    from gankit.metrics.plotting import draw_panel, panel_title

    plots = []
    for k in keys:
        if k == "colorfulness_real" and "colorfulness" in keys:
            continue
        title = panel_title(k)
        fig, ax = _new_axes(title)
        draw_panel(ax, rows, [k, "colorfulness_real"] if k == "colorfulness" and "colorfulness_real" in keys else [k])
        fig.tight_layout()
        plots.append(Plot(title, _figure_uri(fig)))
    return plots


# ----------------------------------------------------------------------------- best / worst


@dataclass
class Examples:
    """Best and worst validation examples of an image-to-image run, or why there are none."""

    message: str = ""
    best: list[tuple[str, float, str]] = field(default_factory=list)
    """(name, L1, image data URI), lowest L1 first."""
    worst: list[tuple[str, float, str]] = field(default_factory=list)
    """(name, L1, image data URI), highest L1 first."""
    mean_l1: float = math.nan
    n: int = 0
    checkpoint: str = ""


def best_worst(
    records: RunRecords, *, device: str = "auto", k: int = N_EXAMPLES, log: Callable[[str], None] = print
) -> Examples:
    """The ``k`` best and worst val examples of an image-to-image run as input | output | target, scored by
    :func:`gankit.evaluate.score_pairs` with the data where :meth:`~gankit.rundata.RunData.local_config` finds them."""
    from gankit.evaluate import score_pairs

    data_cfg, why = run_data(records.record, records.cfg.data).local_config()
    if data_cfg is None:
        return Examples(message=why)
    try:
        scores = score_pairs(records.run, data_cfg, device=device, log=log)
    except MetricUnavailable as e:
        return Examples(message=str(e))
    best, worst = scores.ranked(k)
    return Examples(
        best=_render_examples(scores, best),
        worst=_render_examples(scores, worst),
        mean_l1=float(scores.l1.mean()),
        n=len(scores.l1),
        checkpoint=scores.loaded.path.name,
    )


def _render_examples(scores: PairScores, indices: list[int]) -> list[tuple[str, float, str]]:
    """(name, L1, PNG data URI of input | output | target) of the pairs ``indices`` of ``scores``."""
    from gankit.visualize import paired_triplets, save_grid

    if not indices:
        return []
    triplets = paired_triplets(*scores.translate(indices), scores.loaded.info.space)
    names, shown = scores.names, []
    with tempfile.TemporaryDirectory() as tmp:
        for j, i in enumerate(indices):
            path = Path(tmp) / f"{j}.png"
            # shown 384 CSS px wide (.examples img): the column labels are HTML above it, as drawn into
            # a 776 px facade triplet they would shrink to half size; small images are upscaled to
            # twice the shown width, so that a high-density screen gets every pixel
            save_grid(triplets[3 * j : 3 * j + 3], path, nrow=3, min_width=768)
            shown.append((names[i], float(scores.l1[i]), _png_uri(path.read_bytes())))
    return shown


# ----------------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1240px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:22px;margin:4px 0 2px}
h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #d9dde3;padding-bottom:4px}
.sub{color:#5b6472;margin:0 0 10px}
table{border-collapse:collapse;background:#fff}
td,th{border:1px solid #e0e3e8;padding:3px 9px;text-align:left;vertical-align:top}
th{background:#eef0f3;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.summary{display:grid;grid-template-columns:repeat(auto-fill,minmax(370px,1fr));gap:2px 24px}
.summary div{padding:2px 0}.summary b{display:inline-block;min-width:108px;color:#5b6472;font-weight:500}
.plots{display:flex;flex-wrap:wrap;gap:10px}.plots figure{margin:0;background:#fff;border:1px solid #e0e3e8}
.plots img{display:block;width:385px;max-width:100%}
.missing{color:#8a5a00;background:#fff6e0;border:1px solid #f0dca8;padding:6px 10px;display:inline-block}
.config{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}.config table{font-size:12.5px}
.grids img{max-width:100%;max-height:85vh;image-rendering:pixelated;background:#fff;border:1px solid #e0e3e8}
.slider{display:flex;align-items:center;gap:12px;margin:6px 0 10px}.slider input{width:420px}
.examples{display:flex;flex-wrap:wrap;gap:10px}
.examples figure{margin:0;background:#fff;border:1px solid #e0e3e8;padding:4px}
.examples img{display:block;width:384px}figcaption{font-size:12.5px;color:#3b4350;padding:2px}
.columns{display:flex;width:384px;font-size:13px;color:#3b4350}.columns span{flex:1;text-align:center;padding:1px 0 3px}
code{background:#eef0f3;padding:0 4px;border-radius:3px}footer{color:#8a919c;font-size:12px;margin-top:30px}
"""

# Shows one grid at a time; the range input also moves with the arrow keys once focused.
_JS = """
(function(){
  var s=document.getElementById('grid-slider');if(!s)return;
  var imgs=document.querySelectorAll('#grids img'),lab=document.getElementById('grid-label');
  function show(i){
    for(var k=0;k<imgs.length;k++){imgs[k].hidden=(k!==i);}
    lab.textContent=imgs[i].getAttribute('data-label')+' ('+(i+1)+' of '+imgs.length+')';
  }
  s.addEventListener('input',function(){show(parseInt(s.value,10));});
  show(parseInt(s.value,10));
})();
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if v == v else "nan"
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v) or "[]"
    return str(v)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h} h {m:02d} min" if h else (f"{m} min {s % 60:02d} s" if m else f"{seconds:.1f} s")


def _summary(r: RunRecords) -> list[tuple[str, str]]:
    rec, cfg = r.record, r.cfg
    ds = rec.get("dataset", {}) if isinstance(rec.get("dataset"), dict) else {}
    last_step = max([int(x.get("step", 0)) for x in (*r.stats, *r.metrics)] or [0])
    last_epoch = max([int(x.get("epoch", 0)) for x in r.metrics] or [0])
    t = cfg.train
    total_epochs = t.pretrain_epochs + t.epochs + cfg.optim.decay_epochs
    seconds = sum(float(x.get("seconds", 0.0)) for x in r.metrics)
    speeds = [float(x["images_per_s"]) for x in r.metrics if "images_per_s" in x]
    nr = "not recorded"
    data = _e(ds.get("name") or cfg.data.name)
    if ds.get("source") or cfg.data.path:
        data += f" <small>from {_e(data_source(ds.get('source') or cfg.data.path, ds.get('given', '')))}</small>"
    images = f"{ds['train_images']} train" if "train_images" in ds else nr
    if ds.get("val_images"):
        images += f", {ds['val_images']} val" + (f" ({_e(ds['val_source'])})" if ds.get("val_source") else "")
    if ds.get("storage"):
        images += f" <small>(decoded images in {_e(ds['storage'])}; data.storage={_e(cfg.data.storage)})</small>"
    rows = [
        ("family", _e(cfg.family)),
        ("preset", _e(cfg.preset)),
        ("data", data),
        ("images", images),
        ("steps", f"{last_step}" + (f" (max_steps {t.max_steps})" if t.max_steps else "")),
        ("epochs", f"{last_epoch} of {total_epochs}"),
        (
            "batch size",
            f"{t.batch_size}" + (f" x {rec['world_size']} processes" if rec.get("world_size", 1) > 1 else ""),
        ),
        ("wall time", f"{_duration(seconds)} of training" if r.metrics else nr),
        ("speed", f"{significant(sum(speeds) / len(speeds))} img/s (mean over epochs)" if speeds else nr),
        ("device", _e(rec.get("device", nr)) + (f", amp {_e(t.amp)}" if t.amp != "none" else "")),
        (
            "versions",
            ", ".join(f"{k} {_e(rec.get(k, '?'))}" for k in ("gankit", "torch", "python")),
        ),
        ("started", _e(rec.get("started", nr).replace("T", " "))),
    ]
    return rows


def _config_tables(text: str, family: str) -> str:
    """config.yaml as one small key/value table per section (top-level scalars first); the model
    section shows only the fields ``family`` uses (config.yaml keeps every field)."""
    d = yaml.safe_load(text) or {}
    top = {k: v for k, v in d.items() if not isinstance(v, dict)}
    sections = {k: v for k, v in d.items() if isinstance(v, dict)}
    note = ""
    if isinstance(sections.get("model"), dict):
        used = get_family(family).model_fields
        hidden = [k for k in sections["model"] if k not in used]
        sections["model"] = {k: v for k, v in sections["model"].items() if k in used}
        if hidden:
            note = (
                f'<p class="sub">The model table lists the fields {_e(family)} uses; config.yaml also holds '
                f"{len(hidden)} that it ignores.</p>"
            )
    parts = []
    if top:
        parts.append(
            "<table><tr><th colspan=2>run</th></tr>"
            + "".join(f"<tr><td>{_e(k)}</td><td>{_e(_fmt(v))}</td></tr>" for k, v in top.items())
            + "</table>"
        )
    for name, sec in sections.items():
        parts.append(
            f"<table><tr><th colspan=2>{_e(name)}</th></tr>"
            + "".join(f"<tr><td>{_e(k)}</td><td>{_e(_fmt(v))}</td></tr>" for k, v in sec.items())
            + "</table>"
        )
    return note + '<div class="config">' + "".join(parts) + "</div>"


def _plots_html(plots: list[Plot]) -> str:
    return (
        '<div class="plots">'
        + "".join(
            f'<figure><img src="{p.uri}" alt="{_e(p.title)}" title="{_e(p.title.replace(chr(10), " "))}"></figure>'
            for p in plots
        )
        + "</div>"
    )


def _eval_table(row: dict[str, Any], count: int) -> str:
    meta = [
        f"step {_e(row.get('step', '?'))}",
        f"checkpoint {_e(row.get('checkpoint', '?'))}",
        f"split {_e(row.get('split', '?'))}",
        f"{_e(row.get('n', '?'))} "
        + (f"generated vs {_e(row['n_ref'])} reference images" if "n_ref" in row else "pairs"),
        f"seed {_e(row.get('seed', '?'))}",
    ]
    if row.get("classifier"):
        acc = row.get("classifier_accuracy")
        about = [str(row["classifier_source"])] if row.get("classifier_source") else []
        about += [f"test accuracy {acc:.4f}"] if isinstance(acc, int | float) else []
        detail = f" ({_e(', '.join(about))})" if about else ""
        meta.append(f"classifier {_e(Path(str(row['classifier'])).name)}{detail}")
    if "time" in row:
        meta.append("on " + time.strftime("%Y-%m-%d %H:%M", time.localtime(float(row["time"]))))
    if "seconds" in row:
        meta.append(f"took {_duration(float(row['seconds']))}")
    body = ""
    for k, v in row.items():
        if k in EVAL_META_COLUMNS or k.endswith("_std") or not isinstance(v, int | float):
            continue
        std = row.get(f"{k}_std")
        value = _fmt(float(v)) + (f" ± {_fmt(float(std))}" if isinstance(std, int | float) else "")
        body += f'<tr><td>{_e(k)}</td><td class="num">{_e(value)}</td><td>{_e(better(k))}</td></tr>'
    note = f" (the last of {count} evaluations)" if count > 1 else ""
    return (
        f'<p class="sub">{"; ".join(meta)}{note}</p>'
        f"<table><tr><th>metric</th><th>value</th><th></th></tr>{body}</table>"
    )


def _examples_html(ex: Examples, r: RunRecords) -> str:
    if ex.message:
        return f'<p class="missing">Best and worst examples not shown: {_e(ex.message)}.</p>'
    last_val = [x["val_l1"] for x in r.metrics if isinstance(x.get("val_l1"), int | float)]
    check = f"; the last epoch's validation gave val_l1 {last_val[-1]:.4f}" if last_val else ""
    parts = [
        f'<p class="sub">{ex.n} val images scored with {_e(ex.checkpoint)}: L1 in the model\'s [-1, 1] range '
        f"({better('l1')}), mean {ex.mean_l1:.4f}{check}.</p>"
    ]
    for title, items in (("best (lowest L1)", ex.best), ("worst (highest L1)", ex.worst)):
        columns = '<div class="columns"><span>input</span><span>output</span><span>target</span></div>'
        figs = "".join(
            f'<figure>{columns}<img src="{uri}" alt="{_e(name)}">'
            f"<figcaption>{_e(name)}: L1 {l1:.4f}</figcaption></figure>"
            for name, l1, uri in items
        )
        parts.append(f'<h3>{title}</h3><div class="examples" id="examples-{title.split()[0]}">{figs}</div>')
    return "".join(parts)


def _grids_html(samples: list[tuple[str, Path]], run: Path) -> str:
    if not samples:
        where = _e(RunFolder(run).samples)
        return f'<p class="missing">No sample grids in {where} yet (one is written at the end of every epoch).</p>'
    total = sum(p.stat().st_size for _, p in samples) / 2**20
    reencode = total > MAX_EMBEDDED_GRID_MB
    imgs = []
    for label, p in samples:
        data = p.read_bytes()
        mime = "image/png"
        if reencode:  # PNGs of noisy samples compress poorly; JPEG keeps a long run's report mailable
            from PIL import Image

            buf = io.BytesIO()
            Image.open(io.BytesIO(data)).convert("RGB").save(buf, format="JPEG", quality=90)
            data, mime = buf.getvalue(), "image/jpeg"
        imgs.append(f'<img src="{_png_uri(data, mime)}" data-label="{_e(label)}" alt="{_e(label)}">')
    n = len(samples)
    note = (
        f'<p class="sub">The {n} grids ({total:.0f} MB as PNG) are embedded as JPEG (quality 90) '
        "to keep this file small; "
        f"the originals are in {_e(RunFolder(run).samples)}.</p>"
        if reencode
        else ""
    )
    return (
        f'<div class="slider"><input type="range" id="grid-slider" min="0" max="{n - 1}" value="{n - 1}" step="1"'
        f'{" disabled" if n == 1 else ""} aria-label="sample grid">'
        f'<span id="grid-label">{_e(samples[-1][0])}</span></div>'
        f'{note}<div class="grids" id="grids">{"".join(imgs)}</div>'
    )


def render_html(r: RunRecords, examples: Examples | None) -> str:
    """The report page of ``r`` (``examples``: the best/worst section of image-to-image runs)."""
    run_arg = _e(r.run)
    missing = NOT_COMPUTED.format(run=run_arg)
    summary = "".join(f"<div><b>{k}</b> {v}</div>" for k, v in _summary(r))
    paired = examples is not None

    loss = loss_plots(r.stats)
    losses = (
        _plots_html(loss) if loss else f'<p class="missing">No losses logged yet ({_e(RunFolder(r.run).stats)}).</p>'
    )

    vk = val_keys(r.metrics)
    if vk:
        val = _plots_html(metric_plots(r.metrics, vk))
    elif paired:
        val = f'<p class="missing">Validation metrics: {missing}.</p>'
    else:
        val = (
            '<p class="sub">Noise-to-image runs have no validation split: their scores are the eval metrics below.</p>'
        )

    ek = eval_metric_keys(r.evals)
    evals = _plots_html(eval_plots(r.evals, ek)) if ek else f'<p class="missing">Eval metrics: {missing}.</p>'
    final = _eval_table(r.evals[-1], len(r.evals)) if ek else f'<p class="missing">{missing}.</p>'

    sections = [
        f"<h1>gankit run {_e(r.run.name)}</h1>"
        f'<p class="sub">{_e(r.cfg.family)} run in {_e(r.run.resolve())}; report written '
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}</p>",
        f'<h2 id="summary">Summary</h2><div class="summary">{summary}</div>',
        f'<h2 id="losses">Losses</h2>{losses}',
        f'<h2 id="samples">Samples of every epoch</h2>{_grids_html(r.samples, r.run)}',
        f'<h2 id="validation">Validation metrics</h2>{val}',
        f'<h2 id="eval">Eval metrics over time</h2>{evals}',
        f'<h2 id="final-eval">Final eval</h2>{final}',
    ]
    if examples is not None:
        sections.append(f'<h2 id="examples">Best and worst val examples by L1</h2>{_examples_html(examples, r)}')
    sections.append(f'<h2 id="config">Config</h2>{_config_tables(r.config_text, r.cfg.family)}')
    sections.append(
        f"<footer>config.yaml, run.json, stats.jsonl, metrics.jsonl, eval.jsonl and samples/ of {run_arg}</footer>"
    )
    # the CSP keeps the page offline: no request can leave it, whatever a future edit embeds
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>gankit report: {_e(r.run.name)}</title><style>{_CSS}</style></head>\n"
        f"<body><main>{''.join(sections)}</main><script>{_JS}</script></body></html>\n"
    )


def write_report(
    run: str | Path,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> Path:
    """Write the HTML report of ``run`` to ``out`` (default ``RUN/report.html``) and return its path.

    An existing ``out`` is replaced only with ``overwrite``; a folder that is not a run is a
    :class:`~gankit.config.ConfigError`. Missing records (no eval yet, no validation) are shown as
    such in the page rather than failing.
    """
    run_dir = find_run(run)
    path = Path(out) if out is not None else RunFolder(run_dir).report
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder; pass a file name such as {path / 'report.html'}")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists; pass --overwrite to replace it, or --out NEW.html")
    records = read_run(run_dir)
    examples = None
    if get_family(records.cfg.family).kind == "paired":  # pix2pix, colorize
        examples = best_worst(records, device=device, log=log)
    page = render_html(records, examples)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp_" + path.name)
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    log(f"wrote {path} ({len(page.encode()) / 2**20:.1f} MB); open it in a browser, or attach it to an email")
    return path

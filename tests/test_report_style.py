"""The figures' theme is seaborn's, written out so that a report need not import seaborn: hold it against seaborn."""

import seaborn as sns

from profiler.report import style


def test_the_theme_is_seaborns_whitegrid_notebook_at_085():
    reference = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.85)}
    del reference["image.cmap"]  # seaborn's own colormap: no figure draws with the default one
    assert style.SEABORN_RC == reference


def test_phase_and_model_colours_are_seaborns_colorblind():
    palette = sns.color_palette("colorblind")
    assert [style.PHASE_COLORS[phase] for phase in ("prefill", "decode", "forward")] == palette[:3]
    assert style.MODEL_COLORS[1] == palette[3]

"""The study file's section links: a 2-D section frame placed in a 3-D volume frame, and their bad input."""

from __future__ import annotations

import pytest

from multiscale.pipeline.graph import frames_of, linked_names, mask_frames
from multiscale.pipeline.study import StudyError, load_study

from .test_study import GOOD, touch_inputs, write

LINK = """\
  sections:
    - {section: "fluo:vessels", volume: tumour, z_mm: 10.0, search_mm: 0.5}
"""


def _with_link(text: str = LINK, analysis: str = "") -> str:
    out = GOOD.replace("subjects:\n", text + "subjects:\n", 1)
    return out + analysis


def test_a_link_brings_the_volume_frame_into_the_section_frame(tmp_path):
    touch_inputs(tmp_path)
    text = _with_link(analysis="  - {type: colocalisation, name: cross, masks: [tumour@fluo], "
                                "pairs: [[\"msi:doxorubicin\", pet@fluo]]}\n")
    study = load_study(write(tmp_path, text))
    s = study.subjects[0]
    (link,) = s.sections
    assert link.name == "tumour_in_fluo" and link.z_mm == 10.0 and link.search_mm == 0.5
    assert linked_names(s) == {"mri@fluo": ("map", "mri", "fluo"), "pet@fluo": ("map", "pet", "fluo"),
                               "tumour@fluo": ("mask", "tumour", "fluo")}
    assert frames_of(s)["pet@fluo"] == "fluo" and frames_of(s)["pet"] == "mri"
    assert mask_frames(s)["tumour@fluo"] == "fluo"
    assert study.analyses[-1].pairs == (("msi:doxorubicin", "pet@fluo"),)


@pytest.mark.parametrize("link, words", [
    ("    - {section: \"fluo:vessels\", volume: tumour}\n", ["z_mm", "index"]),
    ("    - {section: \"fluo:vessels\", volume: tumour, z_mm: 1, index: 3}\n", ["z_mm", "index"]),
    ("    - {section: \"msi:haem\", volume: tumour, z_mm: 1}\n", ["reference frame's own image"]),
    ("    - {section: \"fluo:vessels\", volume: liver, z_mm: 1}\n", ["neither an image nor a mask"]),
    ("    - {section: \"fluo:vessels\", volume: fluo, z_mm: 1}\n", ["section's own frame"]),
    ("    - {section: \"fluo:vessels\", volume: tumour, z_mm: 1, search_mm: -1}\n", ["search_mm", ">= 0"]),
    ("    - {section: \"fluo:vessels\", volume: tumour, z_mm: 1, step: 2}\n", ["unknown field", "step_mm"]),
    ("    - {section: \"fluo:vessels\", volume: tumour, z_mm: high}\n", ["z_mm must be a number"]),
])
def test_bad_links_name_the_line_and_field(tmp_path, link, words):
    touch_inputs(tmp_path)
    p = write(tmp_path, _with_link("  sections:\n" + link))
    with pytest.raises(StudyError) as info:
        load_study(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}:"), msg
    for w in words:
        assert w in msg, msg


def test_linked_maps_and_masks_are_checked_like_others(tmp_path):
    touch_inputs(tmp_path)
    bad = _with_link(analysis="  - {type: uptake, name: u, maps: [pet@fluo], masks: [tumour]}\n")
    with pytest.raises(StudyError, match="lives in frame 'mri'"):
        load_study(write(tmp_path, bad))
    unknown = _with_link(analysis="  - {type: radial, name: r, maps: [ct@fluo], masks: [tumour@fluo]}\n")
    with pytest.raises(StudyError, match="unknown image"):
        load_study(write(tmp_path, unknown, "u.yaml"))
